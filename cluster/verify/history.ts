/**
 * Client histories in the shape Knossos, Elle and Porcupine read (one JSON object per line, in
 * real-time order), so a run of Lattice's cluster can be checked by tools nobody here wrote:
 *
 *   {"process":3,"type":"invoke","f":"write","key":"k1","value":"v7","time":1200}
 *   {"process":3,"type":"ok","f":"write","key":"k1","value":"v7","time":1900}
 *
 * `ok`: took effect, result known. `fail`: surely did not take effect (a cas that did not apply).
 * `info`: unknown, may take effect at any later time (a timed-out request; never `fail`).
 * cas values are `[expected, new]`; a read's invoke has no value and its ok carries what was read.
 * After an `info` the client continues under a new process number (Jepsen's rule), which
 * `HistoryRecorder` does for you.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { ValidationError, type FieldError } from '../../core/errors.ts';
import type { Operation, OperationResult } from '../protocol.ts';

export type HistoryEventType = 'invoke' | 'ok' | 'fail' | 'info';
export type HistoryFunction = 'read' | 'write' | 'cas';
export type CasValue = readonly [expected: string | null, value: string];
export type HistoryValue = string | null | CasValue;

export interface HistoryEvent {
  readonly process: number;
  readonly type: HistoryEventType;
  readonly f: HistoryFunction;
  readonly key: string;
  /** Absent on a read's invoke (and on completions that carry nothing). */
  readonly value?: HistoryValue;
  /** Monotonic nanoseconds or virtual ticks; only order matters. */
  readonly time: number;
}

const historyEventSchema = z.strictObject({
  process: z.number().int(),
  type: z.enum(['invoke', 'ok', 'fail', 'info']),
  f: z.enum(['read', 'write', 'cas']),
  key: z.string(),
  value: z.union([z.string(), z.null(), z.tuple([z.string().nullable(), z.string()])]).optional(),
  time: z.number().finite(),
});

/** The invoke event for a client operation. */
export function invokeEvent(process: number, op: Operation, time: number): HistoryEvent {
  switch (op.kind) {
    case 'read':
      return { process, type: 'invoke', f: 'read', key: op.key, time };
    case 'write':
      return { process, type: 'invoke', f: 'write', key: op.key, value: op.value, time };
    case 'cas':
      return { process, type: 'invoke', f: 'cas', key: op.key, value: [op.expected, op.value], time };
  }
}

/**
 * The completion event: `ok` with the result, `fail` for a cas that did not apply (it surely had
 * no effect), `info` when the result is unknown (`result` null: timeout, crash, lost reply).
 */
export function completionEvent(process: number, op: Operation, result: OperationResult | null, time: number): HistoryEvent {
  const invoked = invokeEvent(process, op, time);
  if (result === null) return { ...invoked, type: 'info' };
  if (op.kind === 'read') return { process, type: 'ok', f: 'read', key: op.key, value: result.value, time };
  if (op.kind === 'cas' && !result.applied) return { ...invoked, type: 'fail' };
  return { ...invoked, type: 'ok' };
}

/**
 * Records a history while a run goes on. A client id maps to a process number until one of its
 * operations ends in `info`; then it gets a fresh process number, so the checker does not see a
 * process with two operations outstanding.
 */
export class HistoryRecorder {
  private readonly recorded: HistoryEvent[] = [];
  private readonly processOf = new Map<number, number>();
  private readonly outstanding = new Map<number, { process: number; op: Operation }>();
  private nextProcess = 0;

  invoke(clientId: number, op: Operation, time: number): void {
    if (this.outstanding.has(clientId)) {
      throw new ValidationError('history', [{ path: `client ${clientId}`, message: 'already has an operation outstanding' }]);
    }
    let process = this.processOf.get(clientId);
    if (process === undefined) {
      process = this.nextProcess++;
      this.processOf.set(clientId, process);
    }
    this.outstanding.set(clientId, { process, op });
    this.recorded.push(invokeEvent(process, op, time));
  }

  /** `result` null: the outcome is unknown (timeout); the client moves to a new process. */
  complete(clientId: number, result: OperationResult | null, time: number): void {
    const pending = this.outstanding.get(clientId);
    if (pending === undefined) {
      throw new ValidationError('history', [{ path: `client ${clientId}`, message: 'completes an operation it never invoked' }]);
    }
    this.outstanding.delete(clientId);
    this.recorded.push(completionEvent(pending.process, pending.op, result, time));
    if (result === null) this.processOf.delete(clientId);
  }

  /** Operations still outstanding stay open (the checker treats them as `info`). */
  events(): readonly HistoryEvent[] {
    return this.recorded;
  }
}

export function formatHistory(events: Iterable<HistoryEvent>): string {
  let text = '';
  for (const event of events) text += `${formatHistoryEvent(event)}\n`;
  return text;
}

/** Fixed field order, so equal histories give byte-identical files. */
export function formatHistoryEvent(event: HistoryEvent): string {
  const { process, type, f, key, value, time } = event;
  return JSON.stringify(value === undefined ? { process, type, f, key, time } : { process, type, f, key, value, time });
}

export function parseHistory(text: string, source = 'history'): HistoryEvent[] {
  const events: HistoryEvent[] = [];
  const errors: FieldError[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]?.trim() ?? '';
    if (line === '') continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (error) {
      errors.push({ path: `line ${i + 1}`, message: `not JSON: ${(error as Error).message}` });
      continue;
    }
    const parsed = historyEventSchema.safeParse(json);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        errors.push({ path: `line ${i + 1}${issue.path.length > 0 ? `.${issue.path.join('.')}` : ''}`, message: issue.message });
      }
      continue;
    }
    const { value, ...rest } = parsed.data;
    events.push(value === undefined ? rest : { ...rest, value: value as HistoryValue });
  }
  if (errors.length > 0) throw new ValidationError(source, errors.slice(0, 20));
  return events;
}

export async function writeHistoryFile(path: string, events: Iterable<HistoryEvent>): Promise<void> {
  await writeFile(path, formatHistory(events), 'utf8');
}

export async function readHistoryFile(path: string): Promise<HistoryEvent[]> {
  return parseHistory(await readFile(path, 'utf8'), path);
}
