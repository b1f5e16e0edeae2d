/**
 * A fast check of the trace schema for the hot path, derived from the record's field table
 * (core/record-fields.ts) plus the schema's two cross-field rules. zod (core/trace-schema.ts) stays
 * the source of every error message; this check only answers "certainly valid?" several times
 * faster. It is sound, not complete: when it says yes the zod schema says yes
 * (test/collector/decode.test.ts checks this on mutated fixtures), and anything it is unsure of
 * goes to zod, which decides and explains.
 */
import { fastCheckOf } from '../core/record-fields.ts';
import { PHASES, TRACE_FIELD_TABLE, type TraceRecord } from '../core/trace-schema.ts';

const fieldsValid = fastCheckOf(TRACE_FIELD_TABLE);
const PHASE_SETS: Readonly<Record<string, ReadonlySet<string>>> = { pbft: new Set(PHASES.pbft), epaxos: new Set(PHASES.epaxos) };

export function isCertainlyValidRecord(value: unknown): value is TraceRecord {
  if (!fieldsValid(value)) return false;
  const r = value as TraceRecord;
  return PHASE_SETS[r.protocol]!.has(r.phase) && r.event_id === `${r.run_id}/${r.node}/${r.node_seq}`;
}
