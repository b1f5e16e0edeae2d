/**
 * Memory flat in run length (issue 14 §4), as heap growth, not time: the live heap of a PBFT run
 * (sampled after a full GC while the cluster is alive) is about the same at 3 and at 15 virtual
 * seconds when records go to a streaming sink. Before the running checks, the harness kept the
 * client history and every executed log: this very test measured 21.4 MB at 3 s and 35.7 MB at
 * 15 s on that code (2026-12-02), and 19.1 / 19.4 MB on this one, so the bound fails on the old.
 * The check windows are made small so they are full within the first second.
 *
 * EPaxos the same way: before its instances were garbage-collected (every record, its deps and the
 * exactly-once map kept for the whole run) this test measured 30.7 MB at 3 s and 80.1 MB at 15 s;
 * with GC 22.7 / 23.4 MB (2026-12-02).
 */
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { loadScenarioFile } from '../../cluster/chaos/scenario.ts';
import { epaxosProtocol } from '../../cluster/epaxos/index.ts';
import { pbftProtocol } from '../../cluster/pbft/index.ts';
import type { ProtocolDefinition } from '../../cluster/protocol.ts';
import { scenarioPath } from '../../cluster/protocols.ts';
import { runSimulation } from '../../cluster/run.ts';
import type { TraceSink } from '../../core/sink.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Largest live heap after a full GC, sampled every 64 sink writes of the run. */
async function liveHeapMb(protocol: ProtocolDefinition, durationMs: number): Promise<number> {
  const scenario = { ...loadScenarioFile(scenarioPath(`${protocol.name}-baseline`)), duration_ms: durationMs };
  let writes = 0;
  let peak = 0;
  const sink: TraceSink = {
    async writeSnapshots() {},
    async write() {
      if (++writes % 64 !== 0) return;
      gc();
      peak = Math.max(peak, process.memoryUsage().heapUsed);
    },
  };
  const result = await runSimulation({
    protocol,
    scenario,
    seed: 3,
    sink,
    checkWindows: { windowPositions: 1_024, windowPerKey: 256, requestWindowPerClient: 64 },
  });
  expect(result.ok, result.replay).toBe(true);
  expect(result.linearizability?.result).toBe('ok');
  return peak / 2 ** 20;
}

describe('simulator memory', () => {
  it('does not grow with the run: live heap at 15 virtual seconds within 6 MB of that at 3', { timeout: 120_000 }, async () => {
    await liveHeapMb(pbftProtocol, 500); // warm-up: compiled code and caches count in neither figure
    const short = await liveHeapMb(pbftProtocol, 3_000);
    const long = await liveHeapMb(pbftProtocol, 15_000);
    expect(long - short, `live heap ${short.toFixed(1)} MB at 3 s, ${long.toFixed(1)} MB at 15 s`).toBeLessThan(6);
  });

  it('EPaxos does not grow with the run either: live heap at 15 virtual seconds within 6 MB of that at 3', { timeout: 180_000 }, async () => {
    await liveHeapMb(epaxosProtocol, 500);
    const short = await liveHeapMb(epaxosProtocol, 3_000);
    const long = await liveHeapMb(epaxosProtocol, 15_000);
    expect(long - short, `live heap ${short.toFixed(1)} MB at 3 s, ${long.toFixed(1)} MB at 15 s`).toBeLessThan(6);
  });
});
