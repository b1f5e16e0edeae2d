/**
 * Runs one seeded simulation of a protocol under a scenario: boots the cluster, plays the fault
 * schedule, then a quiet period in which every pending request must complete (liveness), and
 * checks safety. Trace records go to the sink in batches, awaited (backpressure), and are hashed
 * in emission order: the same seed and scenario give the same traceHash, byte for byte.
 *
 * Memory stays flat in run length: records leave as they are made, and the safety and
 * linearizability checks run while the simulation goes on (verify/executed-monitor.ts,
 * verify/linearizability-monitor.ts), each over a bounded window. The result carries summaries;
 * the whole history and executed logs only when asked for (keepHistory, keepExecutedLogs).
 */
import { LatticeError, ScenarioError } from '../core/errors.ts';
import type { TraceSink } from '../core/sink.ts';
import type { Protocol } from '../core/trace-schema.ts';
import { judgeFaultModel } from './chaos/fault-model.ts';
import type { Scenario } from './chaos/scenario.ts';
import { DEFAULT_PROTOCOL_OPTIONS, type NodeId, type ProtocolDefinition, type ProtocolOptions } from './protocol.ts';
import { checkExecutedLogs, monitorViolations, type RunViolation } from './sim/checks.ts';
import type { LinearizabilityReport } from './verify/linearizability.ts';
import { LinearizabilityMonitor } from './verify/linearizability-monitor.ts';
import { ExecutedMonitor, type ExecutedMonitorOptions, type ExecutedMonitorSummary } from './verify/executed-monitor.ts';
import type { ExecutedLog } from './state/verified-state-machine.ts';
import { SimCluster, type ShadowMismatch } from './sim/cluster.ts';
import type { StateMachineFactory } from './sim/harness-state.ts';
import type { HistoryEvent } from './sim/history.ts';
import type { NetworkStats } from './sim/network.ts';
import type { FaultLogEntry } from './chaos/engine.ts';
import { SIM_EPOCH_US } from './sim/simulator.ts';
import { initBlake3 } from './state/blake3.ts';
import { TraceHasher } from './sim/trace-hash.ts';
import { SNAPSHOT_INTERVAL_US } from './telemetry.ts';
import { SNAPSHOT_FIELD_TABLE, type MetricsSnapshot } from '../core/metrics-snapshot.ts';
import { VerifiedStateMachine } from './state/verified-state-machine.ts';

export interface RunOptions {
  readonly protocol: ProtocolDefinition;
  readonly scenario: Scenario;
  readonly seed: number;
  readonly runId?: string;
  readonly sink: TraceSink;
  /** Records per sink write (default 512). */
  readonly batchSize?: number;
  readonly protocolOptions?: Partial<ProtocolOptions>;
  /** Defaults to cluster/state's VerifiedStateMachine (runtime + shadow). */
  readonly createStateMachine?: StateMachineFactory;
  /** Virtual time to keep running after the last client finished, so replicas catch up (default 20 ms). */
  readonly settleUs?: number;
  /** Check the client history for linearizability (default true). */
  readonly checkLinearizability?: boolean;
  /** Search bound per key segment for the linearizability checker (its default if absent). */
  readonly linearizabilityMaxSteps?: number;
  /** Virtual time between metrics snapshots (default 100 ms; 0: no snapshots). */
  readonly snapshotIntervalUs?: number;
  /** Keep the whole client history in the result (default false: it is checked as it grows). */
  readonly keepHistory?: boolean;
  /** Keep every replica's executed-operation log in the result (default false). */
  readonly keepExecutedLogs?: boolean;
  /** Windows of the running safety checks (verify/executed-monitor.ts has the defaults). */
  readonly checkWindows?: Pick<ExecutedMonitorOptions, 'windowPositions' | 'windowPerKey' | 'requestWindowPerClient'>;
}

export interface RunResult {
  readonly runId: string;
  readonly seed: number;
  readonly protocol: Protocol;
  readonly scenario: string;
  /** Trace records emitted (all of them were written to the sink). */
  readonly records: number;
  /** Metrics snapshots taken (all of them were written to the sink). */
  readonly snapshots: number;
  /** The same fingerprint over every snapshot, in the order taken. */
  readonly snapshotHash: string;
  /** SHA-256 over every record's canonical binary encoding (sim/trace-hash.ts), in emission order. */
  readonly traceHash: string;
  /** The client history, with `keepHistory`; else null (it was checked as it grew). */
  readonly history: readonly HistoryEvent[] | null;
  /** Client history events recorded (invokes and completions). */
  readonly historyEvents: number;
  /** Every replica's executed log, with `keepExecutedLogs`; else null. */
  readonly executedLogs: ReadonlyMap<NodeId, ExecutedLog> | null;
  /** Operations each replica's current state machine executed itself (state transfers excluded). */
  readonly executedCounts: ReadonlyMap<NodeId, number>;
  /** What the running safety checks saw (null when a custom state machine was plugged in). */
  readonly executedChecks: ExecutedMonitorSummary | null;
  /** The first 1,000 shadow mismatches (one per divergence of a node); `shadowMismatchCount` counts all. */
  readonly shadowMismatches: readonly ShadowMismatch[];
  readonly shadowMismatchCount: number;
  readonly safetyViolations: readonly RunViolation[];
  /** Null when the check was turned off. */
  readonly linearizability: LinearizabilityReport | null;
  readonly submittedOps: number;
  readonly completedOps: number;
  /** Operations still pending when the quiet period ran out (recorded as `info`). */
  readonly pendingOps: number;
  /** Nodes targeted by any node fault in the scenario. */
  readonly faultyNodes: readonly NodeId[];
  /** Nodes that misbehaved (excluded from the safety comparison of executed logs). */
  readonly byzantineNodes: readonly NodeId[];
  readonly beyondFaultModel: boolean;
  readonly faultModelReasons: readonly string[];
  readonly virtualDurationUs: number;
  readonly simEvents: number;
  readonly network: NetworkStats;
  readonly faultLog: readonly FaultLogEntry[];
  /** Safe, and (within the fault model) live. */
  readonly ok: boolean;
  /** How to reproduce this run. */
  readonly replay: string;
}

const DEFAULT_BATCH = 512;

export async function runSimulation(options: RunOptions): Promise<RunResult> {
  const { protocol, scenario, seed, sink } = options;
  if (scenario.protocol !== undefined && scenario.protocol !== protocol.name) {
    throw new ScenarioError(scenario.name, [{ path: 'protocol', message: `scenario is for ${scenario.protocol}, run with ${protocol.name}` }]);
  }
  if (scenario.nodes < protocol.minReplicas) {
    throw new ScenarioError(scenario.name, [{ path: 'nodes', message: `${protocol.name} needs at least ${protocol.minReplicas} replicas` }]);
  }
  const runId = options.runId ?? `${protocol.name}-${scenario.name}-${seed}`.slice(0, 128);
  const batchSize = Math.max(1, options.batchSize ?? DEFAULT_BATCH);
  const replay = `seed=${seed} protocol=${protocol.name} scenario=${scenario.name}`;
  await initBlake3();
  const hasher = new TraceHasher();
  const snapshotHasher = new TraceHasher<MetricsSnapshot>(SNAPSHOT_FIELD_TABLE);
  // The fault model is known from the scenario alone, so the checks can skip Byzantine nodes from the start.
  const verdict = judgeFaultModel(protocol.name, scenario.nodes, scenario.faults, protocol.faultTolerance(scenario.nodes));
  const byzantine = new Set(verdict.byzantineNodes);
  const correctNodes = Array.from({ length: scenario.nodes }, (_, i) => i).filter((node) => !byzantine.has(node));
  const monitor = options.createStateMachine === undefined ? new ExecutedMonitor({ ...options.checkWindows, totalOrder: protocol.name === 'pbft', nodes: correctNodes }) : null;
  const keepLogs = options.keepExecutedLogs ?? false;
  const executedByNode = new Array<number>(scenario.nodes).fill(0);
  const monitoredStateMachine = (node: NodeId): VerifiedStateMachine => {
    monitor?.reset(node);
    executedByNode[node] = 0;
    return new VerifiedStateMachine({
      keepLog: keepLogs,
      onExecute: (op) => {
        executedByNode[node]!++;
        monitor?.executed(node, op);
      },
      onRestore: (count) => monitor?.restored(node, count),
    });
  };
  const linearizabilityMonitor =
    (options.checkLinearizability ?? true)
      ? new LinearizabilityMonitor(options.linearizabilityMaxSteps === undefined ? {} : { maxStepsPerKey: options.linearizabilityMaxSteps })
      : null;

  const cluster = new SimCluster({
    runId,
    seed,
    protocol,
    options: { ...DEFAULT_PROTOCOL_OPTIONS, ...options.protocolOptions },
    nodes: scenario.nodes,
    clients: scenario.clients,
    network: {
      latencyUs: scenario.network.latency_us,
      jitter: scenario.network.jitter,
      tailRate: scenario.network.tail_rate,
      tailUs: scenario.network.tail_us,
      drop: scenario.network.drop,
      duplicate: scenario.network.duplicate,
      reorder: scenario.network.reorder,
      reorderDelayUs: scenario.network.reorder_delay_us,
    },
    workload: {
      keys: scenario.workload.keys,
      read: scenario.workload.read,
      write: scenario.workload.write,
      cas: scenario.workload.cas,
      thinkUs: Math.round(scenario.workload.think_ms * 1000),
    },
    createStateMachine: options.createStateMachine ?? monitoredStateMachine,
    keepHistory: options.keepHistory ?? false,
  });
  cluster.chaos.onLeaderResolved = (nodes) => {
    for (const node of nodes) {
      monitor?.exclude(node);
      byzantine.add(node);
    }
  };
  let historyEvents = 0;
  cluster.onHistory((event) => {
    historyEvents++;
    linearizabilityMonitor?.observe(event);
  });

  const sim = cluster.sim;
  const flush = async (): Promise<void> => {
    if (cluster.pendingSnapshots.length > 0) {
      const snapshots = cluster.takePendingSnapshots();
      snapshotHasher.update(snapshots);
      await sink.writeSnapshots(snapshots);
    }
    if (cluster.pendingRecords.length === 0) return;
    const pending = cluster.takePendingRecords();
    hasher.update(pending);
    // One event may emit several records, so a pause can overshoot the batch size by a few.
    for (let i = 0; i < pending.length; i += batchSize) {
      await sink.write(pending.length <= batchSize ? pending : pending.slice(i, i + batchSize));
    }
  };
  // Asked after every event: one closure and a length compare (no `stop` call) on the common path.
  const batchFull = (): boolean => cluster.pendingRecords.length >= batchSize;
  const never = (): boolean => false;
  /** Runs to `untilUs` or until `stop()`, flushing (and awaiting the sink) every full batch. */
  const runTo = async (untilUs: number, stop: () => boolean = never): Promise<void> => {
    const pause = stop === never ? batchFull : () => batchFull() || stop();
    for (;;) {
      const reached = sim.runUntil(untilUs, pause);
      if (cluster.pendingRecords.length >= batchSize) await flush();
      if (reached || stop()) return;
    }
  };

  const startUs = SIM_EPOCH_US;
  const faultEndUs = startUs + scenario.duration_ms * 1000;
  try {
    cluster.chaos.schedule(scenario.faults, startUs, faultEndUs);
    cluster.boot();
    const snapshotIntervalUs = options.snapshotIntervalUs ?? SNAPSHOT_INTERVAL_US;
    if (snapshotIntervalUs > 0) cluster.startTelemetry(snapshotIntervalUs);
    await runTo(faultEndUs);
    cluster.chaos.endAll();
    for (const client of cluster.clients) client.submitting = false;
    await runTo(faultEndUs + scenario.quiet_ms * 1000, () => cluster.clientsIdle);
    if (cluster.clientsIdle) await runTo(sim.nowUs() + (options.settleUs ?? 20_000));
  } catch (error) {
    throw new LatticeError('CLUSTER_INVARIANT_VIOLATED', `simulation failed (${replay}): ${(error as Error).message}`, { cause: error });
  }
  let pendingOps = 0;
  for (const client of cluster.clients) if (client.abandonPending()) pendingOps++;
  cluster.chaos.finish();
  await flush();

  // Judged again now that `leader` targets are resolved to the nodes that led: what the result reports.
  const resolvedVerdict = judgeFaultModel(protocol.name, scenario.nodes, cluster.chaos.resolvedFaults(scenario.faults), cluster.f);
  for (const node of resolvedVerdict.byzantineNodes) byzantine.add(node);
  const executedLogs = new Map<NodeId, ExecutedLog>();
  const executedCounts = new Map<NodeId, number>();
  const correctLogs = new Map<NodeId, ExecutedLog>();
  for (const host of cluster.hosts) {
    const log = host.stateMachine.executedLog();
    executedLogs.set(host.id, log);
    if (!byzantine.has(host.id)) correctLogs.set(host.id, log);
    // A custom state machine reports no executions as they happen: count its log.
    executedCounts.set(host.id, monitor === null ? log.reduce((n, op) => (op === undefined ? n : n + 1), 0) : (executedByNode[host.id] ?? 0));
  }
  // A plugged-in state machine keeps its own log: check it the batch way.
  const violations: RunViolation[] = monitor !== null ? monitorViolations(monitor.violations()) : checkExecutedLogs(protocol.name, correctLogs);
  for (const mismatch of cluster.shadowMismatches) {
    if (!byzantine.has(mismatch.node)) {
      violations.push({ kind: 'shadow-mismatch', node: mismatch.node, detail: `node ${mismatch.node} runtime ${mismatch.runtime} != shadow ${mismatch.shadow} at node_seq ${mismatch.nodeSeq}` });
    }
  }
  if (pendingOps > 0 && !resolvedVerdict.beyondFaultModel) {
    violations.push({ kind: 'liveness', detail: `${pendingOps} operation(s) still pending ${scenario.quiet_ms} ms after the faults ended` });
  }
  let linearizability: LinearizabilityReport | null = null;
  if (linearizabilityMonitor !== null) {
    linearizability = linearizabilityMonitor.finish();
    // `unknown` (search bound hit) is reported in the result but is not evidence of a bug.
    if (linearizability.result === 'illegal') violations.push({ kind: 'linearizability', detail: linearizability.explanation });
  }
  const faultyNodes = new Set<NodeId>();
  for (const entry of cluster.chaos.log) for (const node of entry.nodes) faultyNodes.add(node);

  return {
    runId,
    seed,
    protocol: protocol.name,
    scenario: scenario.name,
    records: cluster.recordCount,
    snapshots: cluster.snapshotCount,
    snapshotHash: snapshotHasher.digest(),
    traceHash: hasher.digest(),
    history: options.keepHistory === true ? cluster.history : null,
    historyEvents,
    executedLogs: keepLogs || monitor === null ? executedLogs : null,
    executedCounts,
    executedChecks: monitor?.summary() ?? null,
    shadowMismatches: cluster.shadowMismatches,
    shadowMismatchCount: cluster.shadowMismatchCount,
    safetyViolations: violations,
    linearizability,
    submittedOps: cluster.clients.reduce((sum, c) => sum + c.submitted, 0),
    completedOps: cluster.clients.reduce((sum, c) => sum + c.completed, 0),
    pendingOps,
    faultyNodes: [...faultyNodes].sort((a, b) => a - b),
    byzantineNodes: resolvedVerdict.byzantineNodes,
    beyondFaultModel: resolvedVerdict.beyondFaultModel,
    faultModelReasons: resolvedVerdict.reasons,
    virtualDurationUs: sim.nowUs() - startUs,
    simEvents: sim.processed,
    network: { ...cluster.network.stats },
    faultLog: cluster.chaos.log,
    ok: violations.length === 0,
    replay,
  };
}
