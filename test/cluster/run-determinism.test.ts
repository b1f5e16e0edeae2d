import { describe, expect, it } from 'vitest';
import { ScenarioError } from '../../core/errors.ts';
import { MemorySink, type TraceSink } from '../../core/sink.ts';
import { validateTraceRecord, type TraceRecord } from '../../core/trace-schema.ts';
import { validateScenario } from '../../cluster/chaos/scenario.ts';
import { runSimulation } from '../../cluster/run.ts';
import { toyProtocol } from '../../cluster/sim/toy-protocol.ts';

const scenario = validateScenario({
  name: 'determinism',
  nodes: 4,
  duration_ms: 500,
  clients: 4,
  workload: { think_ms: 1 },
  faults: [
    { at_ms: 50, duration_ms: 100, kind: 'crash', nodes: [2] },
    { at_ms: 100, duration_ms: 200, kind: 'drop', rate: 0.1 },
    { at_ms: 150, duration_ms: 200, kind: 'reorder', rate: 0.3 },
    // An offset alone changes nothing the toy protocol does (no_effect, unlabelled): with drift its timers run fast.
    { at_ms: 200, duration_ms: 100, kind: 'clock_skew', nodes: [1], skew_ms: 30, drift_ppm: 200_000 },
  ],
});

describe('runSimulation determinism', () => {
  it('same seed gives the same trace hash and records; different seeds differ', async () => {
    const a = new MemorySink();
    const b = new MemorySink();
    const first = await runSimulation({ protocol: toyProtocol, scenario, seed: 42, sink: a, batchSize: 100, keepHistory: true });
    // A different batch size changes only how records are written, not what they are.
    const second = await runSimulation({ protocol: toyProtocol, scenario, seed: 42, sink: b, batchSize: 7, keepHistory: true });
    const other = await runSimulation({ protocol: toyProtocol, scenario, seed: 43, sink: new MemorySink() });
    expect(second.traceHash).toBe(first.traceHash);
    expect(JSON.stringify(b.records)).toBe(JSON.stringify(a.records));
    expect(second.history).toEqual(first.history);
    expect(other.traceHash).not.toBe(first.traceHash);
    expect(first.traceHash).toMatch(/^[0-9a-f]{64}$/);
    expect(first.records).toBe(a.records.length);
    expect(first.runId).toBe('pbft-determinism-42');
  });

  it('emits schema-valid records with per-node sequence numbers and fault labels', async () => {
    const sink = new MemorySink();
    const result = await runSimulation({ protocol: toyProtocol, scenario, seed: 5, sink });
    const invalid = sink.records.map(validateTraceRecord).filter((v) => !v.ok);
    expect(invalid).toEqual([]);
    const nextSeq = new Map<number, number>();
    for (const record of sink.records) {
      expect(record.node_seq).toBe(nextSeq.get(record.node) ?? 0);
      nextSeq.set(record.node, record.node_seq + 1);
    }
    const kinds = new Set(sink.records.flatMap((r) => r.faults));
    expect([...kinds].sort()).toEqual(['clock_skew', 'crash', 'drop', 'reorder']);
    const times = sink.records.map((r) => r.ts_us);
    expect([...times].sort((x, y) => x - y)).toEqual(times);
    expect(result.ok).toBe(true);
    expect(result.beyondFaultModel).toBe(false);
  });

  it('records a well-formed history: one completion per invoke, all completed after the quiet period', async () => {
    const result = await runSimulation({ protocol: toyProtocol, scenario, seed: 8, sink: new MemorySink(), keepHistory: true });
    expect(result.submittedOps).toBeGreaterThan(100);
    expect(result.completedOps).toBe(result.submittedOps);
    expect(result.pendingOps).toBe(0);
    const open = new Map<number, string>();
    expect(result.history).not.toBeNull();
    const history = result.history ?? [];
    expect(result.historyEvents).toBe(history.length);
    for (const event of history) {
      if (event.type === 'invoke') {
        expect(open.has(event.process)).toBe(false);
        open.set(event.process, event.f);
      } else {
        expect(open.get(event.process)).toBe(event.f);
        open.delete(event.process);
      }
    }
    expect(open.size).toBe(0);
    expect(history.some((e) => e.type === 'ok' && e.f === 'read')).toBe(true);
    expect(history.some((e) => e.f === 'cas')).toBe(true);
  });

  it('marks operations that never complete as info and reports a liveness violation', async () => {
    // A 1 ms quiet period with 5 ms links: operations in flight at the end cannot finish.
    const stuck = validateScenario({ name: 'stuck', nodes: 4, duration_ms: 200, quiet_ms: 1, clients: 2, network: { latency_us: 5000, jitter: 0 }, faults: [] });
    const result = await runSimulation({ protocol: toyProtocol, scenario: stuck, seed: 1, sink: new MemorySink(), keepHistory: true });
    expect(result.pendingOps).toBeGreaterThan(0);
    expect((result.history ?? []).filter((e) => e.type === 'info')).toHaveLength(result.pendingOps);
    expect(result.safetyViolations.map((v) => v.kind)).toContain('liveness');
    expect(result.ok).toBe(false);
  });

  it('awaits the sink for every batch (backpressure) and never exceeds the batch size', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const sizes: number[] = [];
    const records: TraceRecord[] = [];
    const slowSink: TraceSink = {
      async write(batch) {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        sizes.push(batch.length);
        await new Promise((resolve) => setImmediate(resolve));
        records.push(...batch);
        inFlight--;
      },
      async writeSnapshots() {},
    };
    const result = await runSimulation({ protocol: toyProtocol, scenario, seed: 42, sink: slowSink, batchSize: 64 });
    expect(maxInFlight).toBe(1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64);
    expect(records.length).toBe(result.records);
  });

  it('rejects a scenario written for another protocol, naming the field', async () => {
    const epaxosScenario = validateScenario({ name: 'e', protocol: 'epaxos', nodes: 5, duration_ms: 100 });
    await expect(runSimulation({ protocol: toyProtocol, scenario: epaxosScenario, seed: 1, sink: new MemorySink() })).rejects.toMatchObject({
      constructor: ScenarioError,
      fieldErrors: [{ path: 'protocol' }],
    });
  });
});
