/**
 * Trace record → JSON text, for the producers. Same output as `JSON.stringify` of a valid record
 * (same keys, same order; the decode test checks this), about four times faster, because the
 * shape is fixed: numbers are written directly and only strings and arrays go through
 * JSON.stringify. Serialisation is the producer's main cost per transition.
 */
import type { TraceRecord } from '../core/trace-schema.ts';

const str = JSON.stringify;
const list = (values: readonly unknown[]) => (values.length === 0 ? '[]' : str(values));

export function encodeRecord(r: TraceRecord): string {
  return `{"schema_version":${r.schema_version},"run_id":${str(r.run_id)},"event_id":${str(r.event_id)},"node":${r.node},"node_seq":${r.node_seq},"protocol":${str(r.protocol)},"phase":${str(r.phase)},"view":${r.view},"seq":${r.seq},"leader":${r.leader},"ts_us":${r.ts_us},"node_clock_us":${r.node_clock_us},"msgs_sent":${r.msgs_sent},"msgs_received":${r.msgs_received},"retransmissions":${r.retransmissions},"batch_size":${r.batch_size},"deps_count":${r.deps_count},"latency_us":${r.latency_us},"state_hash":${str(r.state_hash)},"shadow_hash":${str(r.shadow_hash)},"faults":${list(r.faults)},"faulty_nodes":${list(r.faulty_nodes)}}`;
}
