/**
 * One long simulation in a process of its own, so its peak RSS is its own: the baseline scenario
 * of a protocol at its default load, for a given virtual duration, records discarded (every record
 * still built, shadow-checked and hashed; safety and linearizability checked as the run goes).
 * Prints one JSON line. Run by bench/cluster-sim.ts and test/cluster/sim-memory.test.ts with
 * `node --expose-gc` (tsx loader): the live heap is sampled after a full GC at exponentially
 * spaced sink writes (1, 2, 4, ...), while the cluster is alive, so the figure is what the run
 * holds, not what the collector has not yet reclaimed.
 *
 *   node --expose-gc --import tsx bench/sim-long-run.ts pbft 60000 [sink: discard|memory]
 */
import { loadScenarioFile } from '../cluster/chaos/scenario.ts';
import { protocolByName, scenarioPath } from '../cluster/protocols.ts';
import { runSimulation } from '../cluster/run.ts';
import { DiscardSink, MemorySink, type TraceSink } from '../core/sink.ts';

export interface LongRunFigures {
  readonly protocol: string;
  readonly duration_ms: number;
  readonly sink: string;
  /** Without the sampling GCs (sample_gc_s). */
  readonly wall_s: number;
  readonly sample_gc_s: number;
  readonly cpu_s: number;
  readonly virtual_s: number;
  readonly virtual_s_per_wall_s: number;
  readonly peak_rss_mb: number;
  /** Largest live heap seen after a full GC during the run (null without --expose-gc). */
  readonly live_heap_mb: number | null;
  readonly records: number;
  readonly ops: number;
  readonly ok: boolean;
  readonly trace_hash: string;
}

const [protocolName = 'pbft', durationArg = '60000', sinkKind = 'discard'] = process.argv.slice(2);
const gc = (globalThis as { gc?: () => void }).gc;
const file = loadScenarioFile(scenarioPath(`${protocolName}-baseline`));
const scenario = { ...file, duration_ms: Number(durationArg) };
let writes = 0;
let nextSample = 1;
let liveHeap = 0;
/** Wall time spent in the sampling GCs, left out of wall_s (they are the measurement, not the run). */
let sampleMs = 0;
const sample = (): void => {
  if (gc === undefined) return;
  const at = performance.now();
  gc();
  liveHeap = Math.max(liveHeap, process.memoryUsage().heapUsed);
  sampleMs += performance.now() - at;
};
const inner: TraceSink = sinkKind === 'memory' ? new MemorySink() : new DiscardSink();
const sink: TraceSink = {
  async write(records) {
    await inner.write(records);
    if (++writes === nextSample) {
      nextSample *= 2;
      sample();
    }
  },
  writeSnapshots: (snapshots) => inner.writeSnapshots(snapshots),
};
const started = performance.now();
const cpu = process.cpuUsage();
const result = await runSimulation({ protocol: protocolByName(protocolName), scenario, seed: 1, sink });
const wallS = (performance.now() - started - sampleMs) / 1000;
const used = process.cpuUsage(cpu);
const figures: LongRunFigures = {
  protocol: protocolName,
  duration_ms: scenario.duration_ms,
  sink: sinkKind,
  wall_s: Number(wallS.toFixed(2)),
  sample_gc_s: Number((sampleMs / 1000).toFixed(2)),
  cpu_s: Number(((used.user + used.system) / 1e6).toFixed(2)),
  virtual_s: Number((result.virtualDurationUs / 1e6).toFixed(2)),
  virtual_s_per_wall_s: Number((result.virtualDurationUs / 1e6 / wallS).toFixed(2)),
  peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  live_heap_mb: gc === undefined ? null : Number((liveHeap / 2 ** 20).toFixed(1)),
  records: result.records,
  ops: result.completedOps,
  ok: result.ok,
  trace_hash: result.traceHash,
};
process.stdout.write(`${JSON.stringify(figures)}\n`);
