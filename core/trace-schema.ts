/**
 * The trace record: one protocol transition of one node. This file is the single definition of
 * the record (its field table, below); the store's table, the collector's validation, the
 * encoders, the trace hash and the features all follow it.
 */
import type { z } from 'zod';
import type { FieldError } from './errors.ts';
import { fieldErrorsOf } from './field-errors.ts';
import { field, fieldNamesOf, jsonEncoderOf, zodObjectOf, type FieldTable, type RecordOf } from './record-fields.ts';

/** 2: byzantine_altered and recovering (issue 14). */
export const TRACE_SCHEMA_VERSION = 2;

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

/**
 * The trace record's fields, in canonical order. Everything that handles a record derives from
 * this table (core/record-fields.ts): validation, canonical JSON, the fast check, the NDJSON
 * encoder, the trace hash's layout, and the store's column types.
 */
export const TRACE_FIELD_TABLE = {
  schema_version: field.literal(TRACE_SCHEMA_VERSION, 'UInt8', 'Version of this table; a record of another version is dead-lettered, never reinterpreted.'),
  run_id: field.text(1, 128, 'LowCardinality(String)', 'The run the record belongs to.'),
  event_id: field.text(1, 200, 'String', 'Deterministic `${run_id}/${node}/${node_seq}`, so a redelivered record has the same id.'),
  node: field.nodeId('The replica that made the transition.'),
  node_seq: field.uint('node_seq', 'UInt64', 'Per-node transition counter starting at 0: orders one node\'s records and deduplicates them.'),
  protocol: field.enumOf(PROTOCOLS, 'pbft or epaxos.'),
  phase: field.looseEnum([...new Set<string>([...PHASES.pbft, ...PHASES.epaxos])], 'The transition, one of its protocol\'s phases.'),
  view: field.uint('view', 'UInt64', 'PBFT view number, or EPaxos ballot.'),
  seq: field.uint('seq', 'UInt64', 'PBFT sequence number, or EPaxos instance number (within the leader\'s instance space).'),
  leader: field.nodeId('PBFT primary of `view`, or EPaxos command leader (owner of the instance space).'),
  ts_us: field.uint('ts_us', 'Int64', 'Global (true) time of the transition, microseconds since the Unix epoch; virtual in simulation.'),
  node_clock_us: field.uint('node_clock_us', 'Int64', 'The node\'s own clock at the transition, microseconds; differs from ts_us under a clock fault.'),
  msgs_sent: field.uint('msgs_sent', 'UInt64', 'Messages this node sent since its previous record.'),
  msgs_received: field.uint('msgs_received', 'UInt64', 'Messages delivered to this node since its previous record (before any authentication check).'),
  retransmissions: field.uint('retransmissions', 'UInt64', 'Messages re-sent by this transition (timeouts, retransmits).'),
  batch_size: field.uint('batch_size', 'UInt64', 'Client operations covered by this transition (a PBFT batch, an EPaxos command).'),
  deps_count: field.uint('deps_count', 'UInt64', 'EPaxos dependency count of the instance; 0 for PBFT.'),
  latency_us: field.nullableUint('latency_us', 'UInt64', 'From request arrival to this transition, microseconds; null where it does not apply.'),
  byzantine_altered: field.uint('byzantine_altered', 'UInt64', 'Outbound messages a Byzantine hook altered (dropped, forged, duplicated, replayed, equivocated) since the previous record: 0 on a correct node.'),
  state_hash: field.hash('BLAKE3-256 digest of the node\'s runtime state after the transition.'),
  shadow_hash: field.hash('BLAKE3-256 digest of the shadow model\'s state at the same point (runtime verification).'),
  faults: field.enumArray(FAULT_KINDS, FAULT_KINDS.length, 'Fault kinds active at this moment anywhere in the run (ground truth), sorted and unique.'),
  faulty_nodes: field.nodeArray(1024, 'Nodes targeted by the active faults (crashed, partitioned away, Byzantine, skewed...), sorted and unique.'),
  recovering: field.flag('True from when the last fault healed until the protocol is back to normal (view settled, backlog drained): neither faulty nor normal.'),
} as const satisfies FieldTable;

export const traceRecordSchema = zodObjectOf(TRACE_FIELD_TABLE).superRefine((record, ctx) => {
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
export const TRACE_FIELDS = fieldNamesOf(TRACE_FIELD_TABLE);

const encodeTraceRecord = jsonEncoderOf(TRACE_FIELD_TABLE);

/** One record as canonical JSON (fields in defined order): equal contents give equal strings. */
export function canonicalRecordJson(record: TraceRecord): string {
  return encodeTraceRecord(record);
}

export type TraceRecord = Omit<RecordOf<typeof TRACE_FIELD_TABLE>, 'phase'> & { phase: Phase };

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

/** Checks an unknown value against the trace schema; returns every field-level problem, not only the first. */
export function validateTraceRecord(input: unknown): ValidationResult<TraceRecord> {
  const parsed = traceRecordSchema.safeParse(input);
  if (parsed.success) return { ok: true, value: parsed.data as TraceRecord };
  return { ok: false, errors: fieldErrorsOf(parsed.error.issues, input) };
}

export function eventIdOf(runId: string, node: number, nodeSeq: number): string {
  return `${runId}/${node}/${nodeSeq}`;
}
