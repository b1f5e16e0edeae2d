/**
 * Ground truth that is true (issue 14 §1): a label means an effect. Equivocation acts through
 * whoever leads, clock faults step and drift the node's clock with timers on its monotonic
 * clock, Byzantine hooks count what they altered, and the `recovering` period runs from the
 * healing of the last fault until the protocol is back to normal. Real PBFT where the protocol
 * matters; the toy sequencer where exact counts are easier to predict.
 */
import { describe, expect, it } from 'vitest';
import { MemorySink } from '../../core/sink.ts';
import type { TraceRecord } from '../../core/trace-schema.ts';
import { createAuthenticator } from '../../cluster/auth.ts';
import { Misbehaviour, outboundCopies } from '../../cluster/chaos/byzantine.ts';
import { isFaultEvent, type FaultEvent, type FaultLogEntry, type RecoveringEvent } from '../../cluster/chaos/engine.ts';
import { judgeFaultModel } from '../../cluster/chaos/fault-model.ts';
import { isSettled, recoveryMarks } from '../../cluster/chaos/recovery.ts';
import { validateScenario, type ScenarioInput } from '../../cluster/chaos/scenario.ts';
import { ScenarioError } from '../../core/errors.ts';
import { createRng } from '../../core/rng.ts';
import { pbftProtocol } from '../../cluster/pbft/index.ts';
import { epaxosProtocol } from '../../cluster/epaxos/index.ts';
import { DEFAULT_PROTOCOL_OPTIONS, type ProtocolDefinition, type ReplicaProgress } from '../../cluster/protocol.ts';
import { runSimulation, type RunResult } from '../../cluster/run.ts';
import { SimCluster } from '../../cluster/sim/cluster.ts';
import { NodeClock } from '../../cluster/sim/node-clock.ts';
import { SIM_EPOCH_US, Simulator } from '../../cluster/sim/simulator.ts';
import { TimerTable } from '../../cluster/sim/timer-table.ts';
import { toyProtocol } from '../../cluster/sim/toy-protocol.ts';
import { initBlake3 } from '../../cluster/state/blake3.ts';
import { VerifiedStateMachine } from '../../cluster/state/verified-state-machine.ts';

const MS = 1000;
const at = (record: TraceRecord) => (record.ts_us - SIM_EPOCH_US) / MS;
const ms = (entry: FaultLogEntry) => (entry.timeUs - SIM_EPOCH_US) / MS;

interface Options {
  readonly protocol?: ProtocolDefinition;
  readonly seed?: number;
  readonly durationMs?: number;
  readonly clients?: number;
  readonly thinkMs?: number;
}

async function run(faults: ScenarioInput['faults'], o: Options = {}): Promise<{ result: RunResult; records: TraceRecord[] }> {
  const protocol = o.protocol ?? pbftProtocol;
  const scenario = validateScenario({
    name: 'ground-truth',
    nodes: 4,
    duration_ms: o.durationMs ?? 1000,
    quiet_ms: 20_000,
    clients: o.clients ?? 3,
    workload: { think_ms: o.thinkMs ?? 2 },
    faults,
  });
  const sink = new MemorySink();
  const result = await runSimulation({ protocol, scenario, seed: o.seed ?? 7, sink, batchSize: 256 });
  return { result, records: sink.records };
}

const events = (result: RunResult, action: FaultEvent['action'], kind?: string): FaultEvent[] =>
  result.faultLog.filter(isFaultEvent).filter((e) => e.action === action && (kind === undefined || e.kind === kind));
const recoveringLog = (result: RunResult): RecoveringEvent[] => result.faultLog.filter((e): e is RecoveringEvent => !isFaultEvent(e));

describe('equivocation acts through whoever leads (PBFT)', () => {
  it('an equivocating primary sends conflicting pre-prepares: progress stalls and a view change follows, which a fault-free run never has', async () => {
    const base = await run([]);
    const { result, records } = await run([{ at_ms: 100, duration_ms: 600, kind: 'equivocation', nodes: 'leader' }]);
    expect(base.records.filter((r) => r.phase === 'view_change')).toHaveLength(0);
    // `leader` resolved to the primary of view 0 at injection time.
    expect(events(result, 'start', 'equivocation').map((e) => e.nodes)).toEqual([[0]]);
    const viewChanges = records.filter((r) => r.phase === 'view_change');
    expect(viewChanges.length).toBeGreaterThan(0);
    expect(records.some((r) => r.phase === 'new_view' && r.view >= 1)).toBe(true);

    // Labelled from node 0's first rewritten pre-prepare until it stopped leading (its own view change).
    const [started] = events(result, 'effect_start', 'equivocation');
    const [ended] = events(result, 'effect_end', 'equivocation');
    expect(started?.nodes).toEqual([0]);
    expect(ended?.nodes).toEqual([0]);
    expect(ended?.reason).toBe('no longer leads');
    const labelled = records.filter((r) => r.faults.includes('equivocation'));
    expect(labelled.length).toBeGreaterThan(0);
    expect(labelled.every((r) => r.faulty_nodes.includes(0) && r.ts_us >= started!.timeUs && r.ts_us <= ended!.timeUs)).toBe(true);
    // The first labelled record is node 0's pre-prepare that carried the two-faced proposal.
    expect(labelled[0]).toMatchObject({ node: 0, phase: 'pre_prepare' });
    expect(records.filter((r) => r.ts_us > ended!.timeUs).every((r) => !r.faults.includes('equivocation'))).toBe(true);
    // Safety holds: PBFT tolerates one equivocating primary; the requests complete after the view change.
    expect(result.ok, result.replay).toBe(true);
    // The node `leader` resolved to is the run's Byzantine node: the running checks stopped
    // comparing its executions when the fault started, and the result says so.
    expect(result.byzantineNodes).toEqual([0]);
  });

  it('aimed at a backup that never becomes primary, it changes nothing: no label, logged as no_effect, the same trace as without it', async () => {
    const base = await run([]);
    const { result, records } = await run([{ at_ms: 0, kind: 'equivocation', nodes: [2] }]);
    expect(records.every((r) => r.faults.length === 0 && r.faulty_nodes.length === 0)).toBe(true);
    const [noEffect] = events(result, 'no_effect', 'equivocation');
    expect(noEffect?.nodes).toEqual([2]);
    expect(noEffect?.reason).toMatch(/only a leader proposes/);
    expect(result.traceHash).toBe(base.result.traceHash);
    // It never acted, so its end starts no recovering period.
    expect(recoveringLog(result)).toEqual([]);
  });

  it('a backup that becomes primary equivocates from then on, and only then is it labelled', async () => {
    // Node 0 (primary of view 0) is cut off, so the others move to view 1, whose primary is node 1.
    const { result, records } = await run([
      { at_ms: 50, kind: 'equivocation', nodes: [1] },
      { at_ms: 100, duration_ms: 500, kind: 'partition', groups: [[1, 2, 3], [0]] },
    ]);
    const newView1 = records.find((r) => r.node === 1 && r.phase === 'new_view' && r.view === 1);
    expect(newView1).toBeDefined();
    const [started] = events(result, 'effect_start', 'equivocation');
    expect(started?.nodes).toEqual([1]);
    expect(started!.timeUs).toBeGreaterThanOrEqual(newView1!.ts_us);
    const labelled = records.filter((r) => r.faults.includes('equivocation'));
    expect(labelled.length).toBeGreaterThan(0);
    expect(labelled.every((r) => r.ts_us >= started!.timeUs && r.faulty_nodes.includes(1))).toBe(true);
    // Before it led, the records carry the partition only.
    expect(records.filter((r) => r.ts_us < newView1!.ts_us).every((r) => !r.faults.includes('equivocation'))).toBe(true);
  });

  it('`leader` is accepted for equivocation only where there is one; the fault model counts the node it resolved to', () => {
    const base = { name: 'x', nodes: 5, duration_ms: 100 };
    expect(() => validateScenario({ ...base, protocol: 'epaxos', faults: [{ at_ms: 0, kind: 'equivocation', nodes: 'leader' }] })).toThrow(ScenarioError);
    try {
      validateScenario({ ...base, protocol: 'epaxos', faults: [{ at_ms: 0, kind: 'equivocation', nodes: 'leader' }] });
    } catch (error) {
      expect((error as ScenarioError).fieldErrors.map((e) => e.path)).toEqual(['faults.0.nodes']);
    }
    const pbft = validateScenario({ name: 'y', protocol: 'pbft', nodes: 4, duration_ms: 100, faults: [{ at_ms: 0, kind: 'equivocation', nodes: 'leader' }, { at_ms: 0, kind: 'crash', nodes: [2] }] });
    // Unresolved, `leader` is one more node: with the crash, two > f = 1.
    expect(judgeFaultModel('pbft', 4, pbft.faults).beyondFaultModel).toBe(true);
    expect(judgeFaultModel('pbft', 4, [{ ...pbft.faults[0]!, nodes: [2] } as never, pbft.faults[1]!]).beyondFaultModel).toBe(false);
  });
});

describe('clock faults: offset and drift, timers on the node’s monotonic clock', () => {
  it('NodeClock and TimerTable: a fast clock fires timers early, a step moves no deadline, a drift change re-times pending timers', () => {
    const sim = new Simulator(0);
    const clock = new NodeClock(() => sim.nowUs());
    const timers = new TimerTable(sim, clock);
    const fired: Array<[string, number]> = [];
    clock.addDrift(1_000_000); // twice as fast
    timers.set(1000, () => fired.push(['a', sim.nowUs()]));
    clock.step(50_000); // a wall-clock step: the timer above does not move
    timers.set(4000, () => fired.push(['b', sim.nowUs()]));
    sim.runUntil(1000);
    expect(fired).toEqual([['a', 500]]);
    expect(clock.wallUs()).toBe(1000 + 1000 + 50_000);
    // b was set at monotonic 0 (the step did not move that clock): its deadline is 4000. At 1000
    // true µs the monotonic clock reads 2000; back to the true rate, b fires 2000 true µs later
    // (at 3000), not at 2000 as it would have at the fast rate.
    clock.addDrift(-1_000_000);
    timers.retime();
    sim.runUntil(10_000);
    expect(fired).toEqual([['a', 500], ['b', 3000]]);
    // Set right: the wall clock loses the accumulated drift; the step stays until undone.
    clock.resetWallDrift();
    expect(clock.wallUs()).toBe(10_000 + 50_000);
    clock.step(-50_000);
    expect(clock.wallUs()).toBe(10_000);
  });

  it('node_clock_us in records is true time + offset + accumulated drift, and is set right when the fault ends', async () => {
    const { records, result } = await run([{ at_ms: 100, duration_ms: 300, kind: 'clock_skew', nodes: [1], skew_ms: 50, drift_ppm: 100_000 }], { protocol: toyProtocol });
    const node1 = records.filter((r) => r.node === 1 && at(r) > 100 && at(r) < 400);
    expect(node1.length).toBeGreaterThan(20);
    for (const r of node1) {
      const expected = 50_000 + (r.ts_us - (SIM_EPOCH_US + 100 * MS)) * 0.1;
      expect(Math.abs(r.node_clock_us - r.ts_us - expected)).toBeLessThanOrEqual(1);
    }
    expect(records.filter((r) => r.node !== 1 || at(r) >= 400 || at(r) < 100).every((r) => r.node_clock_us === r.ts_us)).toBe(true);
    // With drift it acts (timers) and is labelled.
    expect(node1.every((r) => r.faults.includes('clock_skew') && r.faulty_nodes.includes(1))).toBe(true);
    expect(events(result, 'no_effect')).toHaveLength(0);
  });

  it('an offset alone is logged as no_effect where no decision reads the wall clock (PBFT), and labels nothing', async () => {
    const { records, result } = await run([{ at_ms: 100, duration_ms: 300, kind: 'clock_skew', nodes: [1], skew_ms: -40 }]);
    const [noEffect] = events(result, 'no_effect', 'clock_skew');
    expect(noEffect?.nodes).toEqual([1]);
    expect(noEffect?.reason).toMatch(/monotonic/);
    expect(records.every((r) => r.faults.length === 0)).toBe(true);
    // The clock itself is still off, as the records show.
    expect(records.filter((r) => r.node === 1 && at(r) > 100 && at(r) < 400).every((r) => r.node_clock_us - r.ts_us === -40_000)).toBe(true);
    expect(recoveringLog(result)).toEqual([]);
  });

  it('an offset alone does act on EPaxos, whose deadlines are read from the wall clock: labelled, and the protocol runs differently', async () => {
    const protocol = epaxosProtocol;
    const shape = (records: TraceRecord[]) => records.map((r) => `${r.node}:${r.phase}:${r.seq}`).join(' ');
    const scenario = (faults: ScenarioInput['faults']) => validateScenario({ name: 'ep', nodes: 5, duration_ms: 1000, clients: 3, workload: { think_ms: 2 }, faults });
    const go = async (faults: ScenarioInput['faults']) => {
      const sink = new MemorySink();
      const result = await runSimulation({ protocol, scenario: scenario(faults), seed: 7, sink, batchSize: 256 });
      return { result, records: sink.records };
    };
    const base = await go([]);
    const skewed = await go([{ at_ms: 100, duration_ms: 600, kind: 'clock_skew', nodes: [0], skew_ms: 300 }]);
    expect(events(skewed.result, 'no_effect')).toHaveLength(0);
    expect(skewed.records.filter((r) => at(r) > 100 && at(r) < 700).every((r) => r.faults.includes('clock_skew'))).toBe(true);
    expect(shape(skewed.records)).not.toBe(shape(base.records));
  });

  it('a fast-drifting backup’s view-change timer fires early: it starts view changes a correct backup would not', async () => {
    // The primary's links are slow (150 ms each way), so an operation takes ≈300 ms: clients time
    // out at 200 ms and broadcast, backups then suspect the primary for 200 ms of their own clock.
    // A correct backup's timer would fire at ≈400 ms: after the operation completed. Node 3's
    // clock runs 3× fast, so its timer fires after ≈67 true ms, before the operation completes.
    const slow = { at_ms: 0, kind: 'delay' as const, delay_ms: 150, nodes: [0] };
    const correct = await run([slow], { clients: 2, thinkMs: 5, durationMs: 1500 });
    const drifting = await run([slow, { at_ms: 0, kind: 'clock_skew', nodes: [3], drift_ppm: 2_000_000 }], { clients: 2, thinkMs: 5, durationMs: 1500 });
    expect(correct.records.filter((r) => r.phase === 'view_change')).toHaveLength(0);
    const viewChanges = drifting.records.filter((r) => r.phase === 'view_change');
    expect(viewChanges.length).toBeGreaterThan(0);
    // Node 3 suspects the primary first, alone; the others follow only later (with node 3 busy
    // in its view change, commits wait for the slow primary's, and their own timers expire too).
    expect(viewChanges[0]!.node).toBe(3);
    const firstOther = viewChanges.find((r) => r.node !== 3);
    if (firstOther !== undefined) expect(firstOther.ts_us).toBeGreaterThan(viewChanges[0]!.ts_us);
    expect(viewChanges.every((r) => r.faults.includes('clock_skew') && r.faulty_nodes.includes(3))).toBe(true);
    expect(drifting.result.ok, drifting.result.replay).toBe(true);
  });

  it('clock_skew validation names the field', () => {
    const base = { name: 'x', nodes: 4, duration_ms: 100 };
    const paths = (fault: Record<string, unknown>): string[] => {
      try {
        validateScenario({ ...base, faults: [{ at_ms: 0, kind: 'clock_skew', nodes: [1], ...fault }] });
        return [];
      } catch (error) {
        return (error as ScenarioError).fieldErrors.map((e) => `${e.path}: ${e.message}`);
      }
    };
    expect(paths({ skew_ms: 10 })).toEqual([]);
    expect(paths({ drift_ppm: -500_000 })).toEqual([]);
    expect(paths({})).toEqual(['faults.0.skew_ms: a clock fault needs a non-zero skew_ms (a step) or drift_ppm (a rate), or both']);
    expect(paths({ drift_ppm: -1_000_000 })[0]).toMatch(/^faults\.0\.drift_ppm: .*expected > -1000000 \(at -1000000 the clock stops\)/);
    expect(paths({ drift_ppm: 'fast' })[0]).toMatch(/^faults\.0\.drift_ppm: .*expected a number/);
  });
});

describe('Byzantine hooks count the outbound messages they altered', () => {
  async function cluster(seed = 3): Promise<SimCluster> {
    await initBlake3();
    return new SimCluster({
      runId: 'altered',
      seed,
      protocol: toyProtocol,
      options: DEFAULT_PROTOCOL_OPTIONS,
      nodes: 4,
      clients: 3,
      network: { latencyUs: 300, jitter: 0.3, tailRate: 0, tailUs: 0, drop: 0, duplicate: 0, reorder: 0, reorderDelayUs: 0 },
      workload: { keys: 4, read: 0.4, write: 0.4, cas: 0.2, thinkUs: 2000 },
      createStateMachine: () => new VerifiedStateMachine(),
    });
  }

  it('per record: a silent sequencer drops 3 orders with each pre-prepare and 1 reply with each reply; nothing else counts', async () => {
    const c = await cluster();
    const seen: Array<{ phase: string; altered: number }> = [];
    c.onRecord((r) => {
      if (r.node === 0) seen.push({ phase: r.phase, altered: r.byzantine_altered });
      expect(r.byzantine_altered).toBe(c.hosts[r.node]!.lastRecordAltered);
    });
    c.chaos.start(validateScenario({ name: 's', nodes: 4, duration_ms: 500, faults: [{ at_ms: 0, kind: 'silent', nodes: [0] }] }).faults[0]!);
    c.boot();
    c.sim.runUntil(SIM_EPOCH_US + 200 * MS);
    const expected: Record<string, number> = { pre_prepare: 3, reply: 1 };
    expect(seen.length).toBeGreaterThan(20);
    for (const { phase, altered } of seen) expect(altered, phase).toBe(expected[phase] ?? 0);
    expect(c.hosts[0]!.alteredSinceRecord).toBe(0);
    expect(c.hosts.slice(1).every((h) => h.misbehaviour.altered === 0)).toBe(true);
  });

  it('totals: withheld acks equal the acks the follower would have sent; a fault-free node alters nothing', async () => {
    const c = await cluster(4);
    let summed = 0;
    c.onRecord((r) => {
      if (r.node === 1) summed += c.hosts[1]!.lastRecordAltered;
    });
    c.chaos.start(validateScenario({ name: 'w', nodes: 4, duration_ms: 500, faults: [{ at_ms: 0, kind: 'withheld_vote', nodes: [1], rate: 1 }] }).faults[0]!);
    c.boot();
    c.sim.runUntil(SIM_EPOCH_US + 200 * MS);
    const host = c.hosts[1]!;
    // The toy follower sends one ack per order it accepts, and traces `prepare` for each.
    const prepares = c.takePendingRecords().filter((r) => r.node === 1 && r.phase === 'prepare').length;
    expect(prepares).toBeGreaterThan(20);
    expect(host.misbehaviour.altered).toBe(prepares);
    expect(summed + host.alteredSinceRecord).toBe(prepares);
    expect(c.hosts[2]!.misbehaviour.altered).toBe(0);
  });

  it('the filter counts each rewritten, dropped or added message once', () => {
    const auth = createAuthenticator('secret', 1, 4);
    const misbehaviour = new Misbehaviour();
    const node = { id: 1, replicas: [0, 1, 2, 3], auth, chaosRng: createRng(5), misbehaviour, byzantineHooks: toyProtocol.byzantine };
    const vote = auth.sign({ type: 'ack', from: 1, seq: 4, digest: 'abcd' });
    const order = auth.sign({ type: 'order', from: 1, seq: 4, request: { clientId: 0, requestId: 1, op: { kind: 'read', key: 'k' } } });
    misbehaviour.impersonate = 1;
    misbehaviour.wrongDigest = 1;
    expect(outboundCopies(node, 0, vote)).toHaveLength(2); // the wrong-digest vote + an impersonated copy
    expect(misbehaviour.altered).toBe(2);
    misbehaviour.impersonate = 0;
    misbehaviour.wrongDigest = 0;
    misbehaviour.equivocate = 1;
    outboundCopies(node, 2, order); // even: the toy hook leaves it as is
    expect(misbehaviour.altered).toBe(2);
    outboundCopies(node, 3, order); // odd: rewritten
    expect([misbehaviour.altered, misbehaviour.equivocated]).toEqual([3, 1]);
    misbehaviour.equivocate = 0;
    misbehaviour.startReplaying(1);
    misbehaviour.remember(order);
    expect(outboundCopies(node, 2, vote)).toHaveLength(2);
    expect(misbehaviour.altered).toBe(4);
  });
});

describe('two overlapping faults of each toggled kind: the first to end leaves the other acting, and labelled', () => {
  const cases = [
    { kind: 'equivocation', node: 0 },
    { kind: 'forged_vote', node: 1, behaviour: 'both' },
    { kind: 'silent', node: 0 },
    { kind: 'withheld_vote', node: 1, rate: 1 },
    { kind: 'replay', node: 0, rate: 1 },
  ] as const;
  for (const c of cases) {
    it(c.kind, async () => {
      await initBlake3();
      const cluster = new SimCluster({
        runId: 'overlap',
        seed: 9,
        protocol: toyProtocol,
        options: DEFAULT_PROTOCOL_OPTIONS,
        nodes: 4,
        clients: 3,
        network: { latencyUs: 300, jitter: 0.3, tailRate: 0, tailUs: 0, drop: 0, duplicate: 0, reorder: 0, reorderDelayUs: 0 },
        workload: { keys: 4, read: 0.4, write: 0.4, cas: 0.2, thinkUs: 2000 },
        createStateMachine: () => new VerifiedStateMachine(),
      });
      const { node, ...rest } = c;
      const spec = validateScenario({ name: 'o', nodes: 4, duration_ms: 1000, faults: [{ at_ms: 0, nodes: [node], ...rest }] }).faults[0]!;
      const host = cluster.hosts[node]!;
      const altered = () => host.misbehaviour.altered;
      const until = (msAt: number) => cluster.sim.runUntil(SIM_EPOCH_US + msAt * MS);
      cluster.boot();
      const a = cluster.chaos.start(spec);
      until(50);
      const b = cluster.chaos.start(spec);
      until(100);
      cluster.chaos.end(a);
      const afterA = altered();
      until(200);
      // B alone: still acting and still labelled.
      expect(altered()).toBeGreaterThan(afterA);
      expect(cluster.chaos.activeFaults()).toEqual([c.kind]);
      expect(cluster.chaos.activeFaultyNodes()).toEqual([node]);
      cluster.chaos.end(b);
      const afterB = altered();
      until(300);
      expect(altered()).toBe(afterB);
      expect(cluster.chaos.activeFaults()).toEqual([]);
    });
  }

  it('clock_skew: steps and drifts add; the first to end leaves the other’s step and rate', async () => {
    await initBlake3();
    const cluster = new SimCluster({
      runId: 'overlap-clock',
      seed: 9,
      protocol: toyProtocol,
      options: DEFAULT_PROTOCOL_OPTIONS,
      nodes: 4,
      clients: 1,
      network: { latencyUs: 300, jitter: 0.3, tailRate: 0, tailUs: 0, drop: 0, duplicate: 0, reorder: 0, reorderDelayUs: 0 },
      workload: { keys: 4, read: 0.4, write: 0.4, cas: 0.2, thinkUs: 2000 },
      createStateMachine: () => new VerifiedStateMachine(),
    });
    const faults = validateScenario({
      name: 'c',
      nodes: 4,
      duration_ms: 1000,
      faults: [
        { at_ms: 0, kind: 'clock_skew', nodes: [2], skew_ms: 10, drift_ppm: 100_000 },
        { at_ms: 0, kind: 'clock_skew', nodes: [2], skew_ms: 5, drift_ppm: 200_000 },
      ],
    }).faults;
    const host = cluster.hosts[2]!;
    const offset = () => host.nowUs() - cluster.sim.nowUs();
    const until = (msAt: number) => cluster.sim.runUntil(SIM_EPOCH_US + msAt * MS);
    cluster.boot();
    const a = cluster.chaos.start(faults[0]!);
    const b = cluster.chaos.start(faults[1]!);
    until(100);
    expect(host.clock.driftPpm).toBe(300_000);
    expect(offset()).toBe(15_000 + 30_000); // both steps, 100 ms at +30 %
    cluster.chaos.end(a);
    // A's step undone, the wall clock set right; B's step stays and its drift goes on.
    expect(host.clock.driftPpm).toBe(200_000);
    expect(offset()).toBe(5_000);
    until(200);
    expect(offset()).toBe(5_000 + 20_000);
    expect(cluster.chaos.activeFaults()).toEqual(['clock_skew']);
    cluster.chaos.end(b);
    expect(offset()).toBe(0);
    expect(host.clock.driftPpm).toBe(0);
    expect(cluster.chaos.activeFaults()).toEqual([]);
  });
});

describe('recovering: from the healing of the last fault until the protocol is back to normal', () => {
  it('never in a fault-free run', async () => {
    const { result } = await run([]);
    expect(recoveringLog(result)).toEqual([]);
  });

  it('after a partition heals: starts at the heal, ends once the cut-off backup has caught up', async () => {
    const { result, records } = await run([{ at_ms: 100, duration_ms: 300, kind: 'partition', groups: [[0, 1, 2], [3]] }]);
    const log = recoveringLog(result);
    expect(log.map((e) => `${e.action}:${e.reason ?? ''}`)).toEqual(['recovering_start:', 'recovering_end:settled']);
    const [start, end] = log;
    expect(ms(start!)).toBe(400);
    expect(end!.timeUs).toBeGreaterThan(start!.timeUs);
    // Node 3 missed what was executed during the partition: it catches up after the heal, and
    // recovering ends no earlier than its catch-up reached what the others had executed at the heal.
    const executedAtHeal = Math.max(...records.filter((r) => r.node !== 3 && r.phase === 'execute' && r.ts_us <= start!.timeUs).map((r) => r.seq));
    const caughtUp = records.find((r) => r.node === 3 && (r.phase === 'execute' || r.phase === 'state_transfer') && r.seq >= executedAtHeal);
    expect(caughtUp).toBeDefined();
    expect(end!.timeUs).toBeGreaterThanOrEqual(caughtUp!.ts_us);
    expect(result.ok, result.replay).toBe(true);
    // The records carry it: recovering exactly between the two log entries, never with a fault label.
    for (const r of records) expect(r.recovering, `${r.event_id} at ${r.ts_us}`).toBe(r.ts_us >= start!.timeUs && r.ts_us < end!.timeUs);
    expect(records.filter((r) => r.recovering).every((r) => r.faults.length === 0)).toBe(true);
  });

  it('after a crashed primary restarts: the view change is over and the old primary has caught up', async () => {
    const { result, records } = await run([{ at_ms: 100, duration_ms: 400, kind: 'crash', nodes: [0] }]);
    const log = recoveringLog(result);
    expect(log.map((e) => e.action)).toEqual(['recovering_start', 'recovering_end']);
    const [start, end] = log;
    expect(ms(start!)).toBe(500);
    expect(end!.reason).toBe('settled');
    // A view change happened during the crash, so settling needs node 0 in the new view.
    const lastView = Math.max(...records.filter((r) => r.phase === 'new_view').map((r) => r.view));
    expect(lastView).toBeGreaterThanOrEqual(1);
    const node0InView = records.find((r) => r.node === 0 && r.ts_us >= start!.timeUs && r.view === lastView);
    expect(node0InView).toBeDefined();
    expect(end!.timeUs).toBeGreaterThanOrEqual(node0InView!.ts_us);
  });

  it('a new fault cuts a recovering period short; a protocol that never settles is bounded by the run end', async () => {
    // The toy sequencer has no catch-up: a follower that missed orders never settles.
    const { result } = await run(
      [
        { at_ms: 100, duration_ms: 100, kind: 'crash', nodes: [2] },
        { at_ms: 250, duration_ms: 100, kind: 'drop', rate: 0.1 },
      ],
      { protocol: toyProtocol },
    );
    const log = recoveringLog(result).map((e) => `${e.action}@${ms(e)}:${e.reason ?? ''}`);
    expect(log[0]).toBe('recovering_start@200:');
    expect(log[1]).toBe('recovering_end@250:fault_started');
    expect(log[2]).toBe('recovering_start@350:');
    expect(log[3]).toMatch(/^recovering_end@\d+(\.\d+)?:run_end$/);
    expect(log).toHaveLength(4);
  });

  it('isSettled: a view change, a differing view, a lagging replica or a request older than the heal keep it recovering', () => {
    const ok: ReplicaProgress = { view: 2, leader: 2, viewChanging: false, backlog: 0, oldestRequestUs: null, committed: 10, executed: 10, logSize: 3 };
    const marks = recoveryMarks([ok, ok, { ...ok, committed: 12, executed: 12 }], [1000, 1000, 1000]);
    expect(marks.committedAtHeal).toBe(12);
    const all = (third: Partial<ReplicaProgress>) => [{ ...ok, executed: 12 }, { ...ok, executed: 12 }, { ...ok, executed: 12, ...third }];
    expect(isSettled(all({}), marks)).toBe(true);
    expect(isSettled(all({ viewChanging: true }), marks)).toBe(false);
    expect(isSettled(all({ view: 3 }), marks)).toBe(false);
    expect(isSettled(all({ executed: 11 }), marks)).toBe(false);
    expect(isSettled(all({ backlog: 1, oldestRequestUs: 999 }), marks)).toBe(false);
    // Work that arrived after the heal does not keep it recovering (steady load always has some).
    expect(isSettled(all({ backlog: 1, oldestRequestUs: 1001 }), marks)).toBe(true);
    // A replica that is down is not judged.
    expect(isSettled([...all({}).slice(0, 2), null], marks)).toBe(true);
  });
});
