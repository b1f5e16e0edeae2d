/**
 * A hand-written check of the trace schema for the hot path. zod (core/trace-schema.ts) stays the
 * definition and the source of every error message; this check only answers "certainly valid?"
 * about ten times faster. It is sound, not complete: when it says yes the zod schema says yes
 * (test/collector/fast-validate.test.ts checks this on mutated fixtures), and anything it is
 * unsure of goes to zod, which decides and explains.
 */
import { FAULT_KINDS, PHASES, PROTOCOLS, TRACE_SCHEMA_VERSION, type TraceRecord } from '../core/trace-schema.ts';

const FIELDS = [
  'schema_version', 'run_id', 'event_id', 'node', 'node_seq', 'protocol', 'phase', 'view', 'seq', 'leader', 'ts_us', 'node_clock_us',
  'msgs_sent', 'msgs_received', 'retransmissions', 'batch_size', 'deps_count', 'latency_us', 'state_hash', 'shadow_hash', 'faults', 'faulty_nodes',
] as const satisfies readonly (keyof TraceRecord)[];
const FIELD_SET: ReadonlySet<string> = new Set(FIELDS);
const PROTOCOL_SET: ReadonlySet<string> = new Set(PROTOCOLS);
const PHASE_SETS: Readonly<Record<string, ReadonlySet<string>>> = { pbft: new Set(PHASES.pbft), epaxos: new Set(PHASES.epaxos) };
const FAULT_SET: ReadonlySet<string> = new Set(FAULT_KINDS);
const HASH_HEX = /^[0-9a-f]{64}$/;

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isNodeId = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65535;

// Records of one run mostly repeat the same hashes; a string equal to one already matched needs
// no second regex run (a 64-byte compare is several times cheaper).
let lastHash = '';
const isHash = (v: unknown): boolean => {
  if (typeof v !== 'string' || v.length !== 64) return false;
  if (v === lastHash) return true;
  if (!HASH_HEX.test(v)) return false;
  lastHash = v;
  return true;
};

/**
 * Exactly the schema's fields, all own and enumerable. Records come in field order (every
 * producer serialises the same object shape), which is checked by plain comparison; for-in lists
 * own keys before inherited ones, so when the last of exactly 22 keys is own, all of them are.
 * Any other order takes the set lookup.
 */
function hasExactFields(r: Record<string, unknown>): boolean {
  let i = 0;
  let inOrder = true;
  for (const key in r) {
    if (inOrder && key === FIELDS[i]) {
      i++;
      continue;
    }
    inOrder = false;
    if (!FIELD_SET.has(key) || !Object.hasOwn(r, key)) return false;
    i++;
  }
  if (i !== FIELDS.length) return false;
  return inOrder ? Object.hasOwn(r, FIELDS[FIELDS.length - 1]!) : true;
}

export function isCertainlyValidRecord(value: unknown): value is TraceRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const r = value as Record<string, unknown>;
  if (!hasExactFields(r)) return false;
  if (r.schema_version !== TRACE_SCHEMA_VERSION) return false;
  const runId = r.run_id;
  if (typeof runId !== 'string' || runId.length < 1 || runId.length > 128 || !runId.isWellFormed()) return false;
  if (!isNodeId(r.node) || !isNodeId(r.leader)) return false;
  if (!isUint(r.node_seq) || !isUint(r.view) || !isUint(r.seq) || !isUint(r.ts_us) || !isUint(r.node_clock_us)) return false;
  if (!isUint(r.msgs_sent) || !isUint(r.msgs_received) || !isUint(r.retransmissions) || !isUint(r.batch_size) || !isUint(r.deps_count)) return false;
  if (r.latency_us !== null && !isUint(r.latency_us)) return false;
  const protocol = r.protocol;
  if (typeof protocol !== 'string' || !PROTOCOL_SET.has(protocol)) return false;
  if (typeof r.phase !== 'string' || !PHASE_SETS[protocol]!.has(r.phase)) return false;
  const eventId = r.event_id;
  if (typeof eventId !== 'string' || eventId.length > 200 || eventId !== `${runId}/${r.node}/${r.node_seq}`) return false;
  if (!isHash(r.state_hash) || !isHash(r.shadow_hash)) return false;
  const faults = r.faults;
  if (!Array.isArray(faults) || faults.length > FAULT_KINDS.length) return false;
  for (const f of faults) if (typeof f !== 'string' || !FAULT_SET.has(f)) return false;
  const faulty = r.faulty_nodes;
  if (!Array.isArray(faulty) || faulty.length > 1024) return false;
  for (const n of faulty) if (!isNodeId(n)) return false;
  return true;
}
