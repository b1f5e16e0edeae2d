// usage: tsx measure.ts <protocol> <scenario> <seed> [reps]
import { createHash } from 'node:crypto';
import { MemorySink } from './core/sink.ts';
import { loadScenarioFile } from './cluster/chaos/scenario.ts';
import { protocolByName, scenarioPath } from './cluster/protocols.ts';
import { runSimulation } from './cluster/run.ts';
const [proto, scen, seedArg, repsArg] = process.argv.slice(2);
const protocol = protocolByName(proto as 'pbft');
const scenario = loadScenarioFile(scenarioPath(scen!));
const reps = Number(repsArg ?? 1);
for (let r = 0; r < reps; r++) {
  const sink = new MemorySink();
  const t0 = performance.now();
  const res = await runSimulation({ protocol, scenario, seed: Number(seedArg), sink });
  const wall = (performance.now() - t0) / 1000;
  const digest = createHash('sha256').update(JSON.stringify(sink.records)).update(JSON.stringify(res.history)).update(JSON.stringify({ ok: res.ok, n: res.network, ev: res.simEvents, v: res.safetyViolations, sm: res.shadowMismatches, sub: res.submittedOps })).digest('hex').slice(0, 16);
  console.log(JSON.stringify({ scen, seed: seedArg, wall: +wall.toFixed(2), ev_s: Math.round(res.simEvents / wall), events: res.simEvents, records: res.records, ok: res.ok, content: digest, trace: res.traceHash.slice(0, 16) }));
}
