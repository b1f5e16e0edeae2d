/**
 * The trace record: one protocol transition of one node. This file is the single definition of
 * the record; the store's table, the collector's validation and the features all follow it.
 */
import { z } from 'zod';
import type { FieldError } from './errors.ts';

export const TRACE_SCHEMA_VERSION = 1;

export const PROTOCOLS = ['pbft', 'epaxos'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** Transitions each protocol can report; a phase outside its protocol's list is rejected. */
export const PHASES = {
  pbft: ['request', 'pre_prepare', 'prepare', 'commit', 'execute', 'reply', 'checkpoint', 'view_change', 'new_view', 'state_transfer'],
  epaxos: ['request', 'pre_accept', 'pre_accept_reply', 'accept', 'accept_reply', 'commit', 'execute', 'prepare', 'prepare_reply', 'reply'],
} as const satisfies Record<Protocol, readonly string[]>;
export type Phase = (typeof PHASES)[Protocol][number];

/** Ground-truth fault labels, one per fault type the chaos engine can inject. */
export const FAULT_KINDS = [
  'crash',
  'partition',
  'delay',
  'drop',
  'duplicate',
  'reorder',
  'clock_skew',
  'equivocation',
  'forged_vote',
  'withheld_vote',
  'replay',
  'silent',
  'state_corruption',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

const HASH_HEX = /^[0-9a-f]{64}$/;
/** A lone UTF-16 surrogate has no UTF-8 form: storing it would change it (to U+FFFD) or fail. */
const wellFormed = (schema: z.ZodString) => schema.refine((s) => s.isWellFormed(), 'contains a lone UTF-16 surrogate, which has no UTF-8 encoding');
const uint = (what: string) => z.number({ error: `${what}: expected a number` }).int(`${what}: expected an integer`).nonnegative(`${what}: expected >= 0`);
const nodeId = z.number({ error: 'expected a node id (integer 0..65535)' }).int('expected an integer node id').min(0, 'expected a node id >= 0').max(65535, 'expected a node id <= 65535');

export const traceRecordSchema = z
  .object({
    schema_version: z.literal(TRACE_SCHEMA_VERSION, { error: `expected schema_version ${TRACE_SCHEMA_VERSION}` }),
    run_id: wellFormed(z.string({ error: 'expected a string' }).min(1, 'must not be empty').max(128, 'must be at most 128 characters')),
    /** Deterministic: `${run_id}/${node}/${node_seq}`, so a redelivered record has the same id. */
    event_id: wellFormed(z.string({ error: 'expected a string' }).min(1, 'must not be empty').max(200, 'must be at most 200 characters')),
    node: nodeId,
    /** Per-node transition counter starting at 0: orders one node's records and deduplicates them. */
    node_seq: uint('node_seq'),
    protocol: z.enum(PROTOCOLS, { error: `expected one of ${PROTOCOLS.join(', ')}` }),
    phase: z.string({ error: 'expected a string' }),
    /** PBFT view number, or EPaxos ballot. */
    view: uint('view'),
    /** PBFT sequence number, or EPaxos instance number (within the leader's instance space). */
    seq: uint('seq'),
    /** PBFT primary of `view`, or EPaxos command leader (owner of the instance space). */
    leader: nodeId,
    /** Global (true) time of the transition, microseconds since the Unix epoch. Virtual in simulation. */
    ts_us: uint('ts_us'),
    /** The node's own clock at the transition, microseconds; differs from ts_us under clock skew. */
    node_clock_us: uint('node_clock_us'),
    msgs_sent: uint('msgs_sent'),
    msgs_received: uint('msgs_received'),
    /** Messages re-sent by this transition (timeouts, retransmits). */
    retransmissions: uint('retransmissions'),
    /** Client operations covered by this transition (a PBFT batch, an EPaxos command). */
    batch_size: uint('batch_size'),
    /** EPaxos dependency count of the instance; 0 for PBFT. */
    deps_count: uint('deps_count'),
    /** From request arrival to this transition, microseconds; null where it does not apply. */
    latency_us: uint('latency_us').nullable(),
    state_hash: z.string({ error: 'expected a string' }).regex(HASH_HEX, 'expected 64 lowercase hex characters (BLAKE3-256)'),
    shadow_hash: z.string({ error: 'expected a string' }).regex(HASH_HEX, 'expected 64 lowercase hex characters (BLAKE3-256)'),
    /** Fault kinds active at this moment anywhere in the run (ground truth), sorted and unique. */
    faults: z.array(z.enum(FAULT_KINDS, { error: `expected one of ${FAULT_KINDS.join(', ')}` }), { error: 'expected an array' }).max(FAULT_KINDS.length, 'too many fault labels'),
    /** Nodes targeted by the active faults (crashed, partitioned away, Byzantine, skewed...), sorted and unique. */
    faulty_nodes: z.array(nodeId, { error: 'expected an array of node ids' }).max(1024, 'too many nodes'),
  })
  .strict()
  .superRefine((record, ctx) => {
    const allowed: readonly string[] = PHASES[record.protocol];
    if (!allowed.includes(record.phase)) {
      ctx.addIssue({ code: 'custom', path: ['phase'], message: `expected one of ${allowed.join(', ')} for protocol ${record.protocol}` });
    }
    const expectedId = eventIdOf(record.run_id, record.node, record.node_seq);
    if (record.event_id !== expectedId) {
      ctx.addIssue({ code: 'custom', path: ['event_id'], message: `expected ${expectedId} (run_id/node/node_seq), the key that makes redelivery idempotent` });
    }
  });

/** The record's fields in their defined order (the canonical order of its JSON). */
export const TRACE_FIELDS = Object.keys(traceRecordSchema.shape) as readonly (keyof TraceRecord)[];

/** One record as canonical JSON (fields in defined order): equal contents give equal strings. */
export function canonicalRecordJson(record: TraceRecord): string {
  const ordered: Record<string, unknown> = {};
  for (const field of TRACE_FIELDS) ordered[field] = record[field];
  return JSON.stringify(ordered);
}

export type TraceRecord = Omit<z.infer<typeof traceRecordSchema>, 'phase'> & { phase: Phase };

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

/** Checks an unknown value against the trace schema; returns every field-level problem, not only the first. */
export function validateTraceRecord(input: unknown): ValidationResult<TraceRecord> {
  const parsed = traceRecordSchema.safeParse(input);
  if (parsed.success) return { ok: true, value: parsed.data as TraceRecord };
  return { ok: false, errors: parsed.error.issues.map((issue) => issueToFieldError(issue, input)) };
}

function issueToFieldError(issue: z.core.$ZodIssue, input: unknown): FieldError {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') return { path: path || issue.keys.join(','), message: `unknown field(s): ${issue.keys.join(', ')}` };
  if (issue.code === 'invalid_type' && issue.path.length > 0 && !hasPath(input, issue.path)) return { path, message: 'is required' };
  return { path, message: issue.message };
}

function hasPath(value: unknown, path: readonly PropertyKey[]): boolean {
  let current = value;
  for (const key of path) {
    if (typeof current !== 'object' || current === null || !Object.hasOwn(current, key)) return false;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current !== undefined;
}

export function eventIdOf(runId: string, node: number, nodeSeq: number): string {
  return `${runId}/${node}/${nodeSeq}`;
}
