/**
 * Transition → trace record: the one place that fills a TraceRecord from what a replica reported
 * and what its host knows (run, clocks, message counters, digests, fault labels). The simulator
 * and the TCP node process both call it, so the two paths cannot drift apart.
 */
import { eventIdOf, TRACE_SCHEMA_VERSION, type FaultKind, type Protocol, type TraceRecord } from '../core/trace-schema.ts';
import type { NodeId, Transition } from './protocol.ts';

export interface TraceContext {
  readonly runId: string;
  readonly node: NodeId;
  readonly nodeSeq: number;
  readonly protocol: Protocol;
  /** True time of the transition (virtual in simulation). */
  readonly tsUs: number;
  /** The node's own clock at that moment (skewed under a clock-skew fault). */
  readonly nodeClockUs: number;
  readonly msgsSent: number;
  readonly msgsReceived: number;
  readonly runtimeHash: string;
  readonly shadowHash: string;
  readonly faults: FaultKind[];
  readonly faultyNodes: NodeId[];
  /** Outbound messages a Byzantine hook altered since the node's previous record. */
  readonly byzantineAltered: number;
  /** The cluster is back from a fault but not yet normal again (chaos/engine.ts). */
  readonly recovering: boolean;
}

export function traceRecordOf(context: TraceContext, transition: Transition): TraceRecord {
  const latency = transition.latencyUs;
  return {
    schema_version: TRACE_SCHEMA_VERSION,
    run_id: context.runId,
    event_id: eventIdOf(context.runId, context.node, context.nodeSeq),
    node: context.node,
    node_seq: context.nodeSeq,
    protocol: context.protocol,
    phase: transition.phase,
    view: transition.view,
    seq: transition.seq,
    leader: transition.leader,
    ts_us: context.tsUs,
    node_clock_us: Math.max(0, context.nodeClockUs),
    msgs_sent: context.msgsSent,
    msgs_received: context.msgsReceived,
    retransmissions: transition.retransmissions ?? 0,
    batch_size: transition.batchSize ?? 0,
    deps_count: transition.depsCount ?? 0,
    latency_us: latency === undefined || latency === null ? null : Math.max(0, Math.round(latency)),
    byzantine_altered: context.byzantineAltered,
    state_hash: context.runtimeHash,
    shadow_hash: context.shadowHash,
    faults: context.faults,
    faulty_nodes: context.faultyNodes,
    recovering: context.recovering,
  };
}
