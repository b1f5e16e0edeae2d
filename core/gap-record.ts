/**
 * The gap record: an exact account of trace records a node produced but that will never reach
 * the store, because a bound was hit on the way (the producer's spool full, a node's trace buffer
 * full, a sink that failed for good). It travels on the transitions topic with the same key as the
 * node's records (so it stays in order with them) and lands in the `trace_gaps` table, so
 * "records produced = rows stored + dead letters + gaps" can be checked per node.
 *
 * `node_seq_first..node_seq_last` (inclusive) are the missing records; `records` counts them and
 * equals the range's length, checked here. Gaps of one node never overlap; a producer that drops
 * a contiguous run reports it once. The id is deterministic, so a redelivered gap collapses.
 */
import { z } from 'zod';
import { fieldErrorsOf } from './field-errors.ts';
import type { ValidationResult } from './trace-schema.ts';

export const GAP_SCHEMA_VERSION = 1;

/** Why records were not delivered. */
export const GAP_REASONS = ['spool_full', 'buffer_full', 'sink_failed'] as const;
export type GapReason = (typeof GAP_REASONS)[number];

/** The discriminator: trace records have no `record_type` field, gap records always do. */
export const GAP_RECORD_TYPE = 'gap';

const uint = z.number({ error: 'expected a number' }).int('expected an integer').nonnegative('expected >= 0').max(Number.MAX_SAFE_INTEGER, 'expected at most 2^53 - 1');

export const gapRecordSchema = z
  .object({
    record_type: z.literal(GAP_RECORD_TYPE),
    schema_version: z.literal(GAP_SCHEMA_VERSION, { error: `expected schema_version ${GAP_SCHEMA_VERSION}` }),
    run_id: z.string({ error: 'expected a string' }).min(1, 'must not be empty').max(128, 'must be at most 128 characters'),
    /** `${run_id}/${node}/gap/${node_seq_first}`. */
    gap_id: z.string({ error: 'expected a string' }).min(1).max(220),
    node: z.number({ error: 'expected a node id' }).int().min(0).max(65535),
    node_seq_first: uint,
    node_seq_last: uint,
    records: uint,
    reason: z.enum(GAP_REASONS, { error: `expected one of ${GAP_REASONS.join(', ')}` }),
    /** When the producer declared the gap (its clock), microseconds since the Unix epoch. */
    declared_at_us: uint,
  })
  .strict()
  .superRefine((gap, ctx) => {
    if (gap.node_seq_last < gap.node_seq_first) ctx.addIssue({ code: 'custom', path: ['node_seq_last'], message: 'must be >= node_seq_first' });
    else if (gap.records !== gap.node_seq_last - gap.node_seq_first + 1) ctx.addIssue({ code: 'custom', path: ['records'], message: 'must equal node_seq_last - node_seq_first + 1' });
    const expected = gapIdOf(gap.run_id, gap.node, gap.node_seq_first);
    if (gap.gap_id !== expected) ctx.addIssue({ code: 'custom', path: ['gap_id'], message: `expected ${expected}` });
  });

export type GapRecord = z.infer<typeof gapRecordSchema>;

export function gapIdOf(runId: string, node: number, nodeSeqFirst: number): string {
  return `${runId}/${node}/gap/${nodeSeqFirst}`;
}

export function makeGapRecord(fields: { runId: string; node: number; first: number; last: number; reason: GapReason; declaredAtUs: number }): GapRecord {
  return {
    record_type: GAP_RECORD_TYPE,
    schema_version: GAP_SCHEMA_VERSION,
    run_id: fields.runId,
    gap_id: gapIdOf(fields.runId, fields.node, fields.first),
    node: fields.node,
    node_seq_first: fields.first,
    node_seq_last: fields.last,
    records: fields.last - fields.first + 1,
    reason: fields.reason,
    declared_at_us: fields.declaredAtUs,
  };
}

/** True for anything that claims to be a gap record (then validate it with `validateGapRecord`). */
export function claimsToBeGap(value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as { record_type?: unknown }).record_type === GAP_RECORD_TYPE;
}

export function validateGapRecord(input: unknown): ValidationResult<GapRecord> {
  const parsed = gapRecordSchema.safeParse(input);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, errors: fieldErrorsOf(parsed.error.issues, input) };
}
