/**
 * A dead letter: input the collector could not store, kept so that nothing disappears silently.
 * On the dead-letter topic its value is the **original bytes, exactly** (the whole message, or
 * the one line of a bundled message that failed), so a binary or non-UTF-8 message survives and
 * `lattice dlq replay` can re-ingest it as it was; everything else travels in headers: the
 * reason, the field errors, where it came from, and for a conflict the version already stored.
 */
import type { FieldError } from '../core/errors.ts';
import type { IncomingMessage, OutgoingMessage } from './transport/transport.ts';

export const DEAD_LETTER_REASONS = ['oversized', 'invalid_utf8', 'malformed_json', 'schema_invalid', 'store_rejected', 'conflict'] as const;
export type DeadLetterReason = (typeof DEAD_LETTER_REASONS)[number];

export interface DeadLetterSource {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: string | null;
  /** The line in a message that bundles several records (0 for a whole message). */
  readonly index: number;
}

export interface DeadLetter {
  readonly reason: DeadLetterReason;
  readonly errors: readonly FieldError[];
  readonly source: DeadLetterSource;
  /** The original bytes, unchanged. */
  readonly value: Buffer;
  /** For `conflict`: the record already stored under the same event id, as JSON. */
  readonly stored?: string;
  /** When it was dead-lettered (collector's wall clock), ms since the Unix epoch. */
  readonly deadLetteredAtMs: number;
}

/** Header names, all under one prefix so they never collide with a producer's own headers. */
export const DLQ_HEADERS = {
  reason: 'lattice.dlq.reason',
  errors: 'lattice.dlq.errors',
  topic: 'lattice.dlq.source.topic',
  partition: 'lattice.dlq.source.partition',
  offset: 'lattice.dlq.source.offset',
  key: 'lattice.dlq.source.key',
  index: 'lattice.dlq.source.index',
  stored: 'lattice.dlq.stored',
  at: 'lattice.dlq.at_ms',
} as const;

/** Field errors kept per dead letter: enough to explain, bounded for a pathological input. */
const ERRORS_MAX = 20;

export function deadLetterOf(message: IncomingMessage, reason: DeadLetterReason, errors: readonly FieldError[], options: { index?: number; value?: Buffer; stored?: string; nowMs?: number } = {}): DeadLetter {
  return {
    reason,
    errors: errors.slice(0, ERRORS_MAX),
    source: { topic: message.topic, partition: message.partition, offset: message.offset, key: message.key, index: options.index ?? 0 },
    value: options.value ?? message.value,
    ...(options.stored !== undefined && { stored: options.stored }),
    deadLetteredAtMs: options.nowMs ?? Date.now(),
  };
}

/** The dead letter as a message for the dead-letter topic (same key as its source). */
export function deadLetterMessage(letter: DeadLetter): OutgoingMessage {
  const headers: Record<string, string> = {
    [DLQ_HEADERS.reason]: letter.reason,
    [DLQ_HEADERS.errors]: JSON.stringify(letter.errors),
    [DLQ_HEADERS.topic]: letter.source.topic,
    [DLQ_HEADERS.partition]: String(letter.source.partition),
    [DLQ_HEADERS.offset]: letter.source.offset,
    [DLQ_HEADERS.index]: String(letter.source.index),
    [DLQ_HEADERS.at]: String(letter.deadLetteredAtMs),
  };
  if (letter.source.key !== null) headers[DLQ_HEADERS.key] = letter.source.key;
  if (letter.stored !== undefined) headers[DLQ_HEADERS.stored] = letter.stored;
  return { key: letter.source.key, value: letter.value, headers };
}

/** Reads a dead letter back from the dead-letter topic; undefined when the message is not one. */
export function parseDeadLetter(message: IncomingMessage): DeadLetter | undefined {
  const h = message.headers;
  const reason = h[DLQ_HEADERS.reason];
  if (reason === undefined || !(DEAD_LETTER_REASONS as readonly string[]).includes(reason)) return undefined;
  let errors: FieldError[] = [];
  try {
    const parsed: unknown = JSON.parse(h[DLQ_HEADERS.errors] ?? '[]');
    if (Array.isArray(parsed)) errors = parsed.filter((e): e is FieldError => typeof e === 'object' && e !== null && typeof (e as FieldError).path === 'string' && typeof (e as FieldError).message === 'string');
  } catch {
    errors = [{ path: '', message: 'dead letter carried unreadable error details' }];
  }
  const stored = h[DLQ_HEADERS.stored];
  return {
    reason: reason as DeadLetterReason,
    errors,
    source: {
      topic: h[DLQ_HEADERS.topic] ?? '',
      partition: Number(h[DLQ_HEADERS.partition] ?? -1),
      offset: h[DLQ_HEADERS.offset] ?? '',
      key: h[DLQ_HEADERS.key] ?? null,
      index: Number(h[DLQ_HEADERS.index] ?? 0),
    },
    value: message.value,
    ...(stored !== undefined && { stored }),
    deadLetteredAtMs: Number(h[DLQ_HEADERS.at] ?? 0),
  };
}
