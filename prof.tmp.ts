import { MemorySink } from './core/sink.ts';
import { loadScenarioFile } from './cluster/chaos/scenario.ts';
import { protocolByName, scenarioPath } from './cluster/protocols.ts';
import { runSimulation } from './cluster/run.ts';
const [proto, scen] = process.argv.slice(2);
const r = await runSimulation({ protocol: protocolByName(proto!), scenario: loadScenarioFile(scenarioPath(scen!)), seed: 1, sink: new MemorySink() });
console.log(r.simEvents, r.records);
