/**
 * NDJSON encoding of a trace record, written out field by field. It produces exactly what
 * `JSON.stringify(record)` gives for a record whose keys are in the schema's order (the order
 * node-process.ts builds them in), at a fraction of the cost: a replica writes two or three
 * records per client operation, and the generic stringify walks each one as an unknown object.
 * Strings that could need escaping go through JSON.stringify; the rest are numbers.
 */
import type { TraceRecord } from '../../core/trace-schema.ts';

const str = (s: string): string => JSON.stringify(s);
/** JSON's rendering of a number (NaN and infinities become null, as in JSON.stringify). */
const num = (n: number): string => (Number.isFinite(n) ? String(n) : 'null');

export function traceRecordJson(r: TraceRecord): string {
  return (
    `{"schema_version":${num(r.schema_version)},"run_id":${str(r.run_id)},"event_id":${str(r.event_id)}` +
    `,"node":${num(r.node)},"node_seq":${num(r.node_seq)},"protocol":${str(r.protocol)},"phase":${str(r.phase)}` +
    `,"view":${num(r.view)},"seq":${num(r.seq)},"leader":${num(r.leader)},"ts_us":${num(r.ts_us)}` +
    `,"node_clock_us":${num(r.node_clock_us)},"msgs_sent":${num(r.msgs_sent)},"msgs_received":${num(r.msgs_received)}` +
    `,"retransmissions":${num(r.retransmissions)},"batch_size":${num(r.batch_size)},"deps_count":${num(r.deps_count)}` +
    `,"latency_us":${r.latency_us === null ? 'null' : num(r.latency_us)},"state_hash":${str(r.state_hash)}` +
    `,"shadow_hash":${str(r.shadow_hash)},"faults":${r.faults.length === 0 ? '[]' : JSON.stringify(r.faults)}` +
    `,"faulty_nodes":${r.faulty_nodes.length === 0 ? '[]' : JSON.stringify(r.faulty_nodes)}}`
  );
}
