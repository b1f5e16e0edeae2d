/**
 * `npm run bench`: every benchmark, each with its baseline measured in the same run, printed as
 * one JSON object. Speed targets live here, never as timed assertions in tests.
 * `npm run bench -- sim ingest` runs a subset (sim, sim-long, ingest, tcp, features).
 */
// Loaded lazily: each suite pulls in different engines (chdb, child processes).
const SUITES: Record<string, () => Promise<Record<string, unknown>>> = {
  sim: async () => (await import('./cluster-sim.ts')).benchClusterSim(),
  // Each long run in a child process of its own, so its peak RSS is its own.
  'sim-long': async () => (await import('./cluster-sim.ts')).benchSimLongRuns(),
  ingest: async () => (await import('./ingest.ts')).benchIngest({}),
  tcp: async () => (await import('./cluster-tcp.ts')).benchClusterTcp(),
  features: async () => (await import('./features.ts')).benchFeatures(),
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = wanted.filter((w) => !(w in SUITES));
if (unknown.length > 0) {
  process.stderr.write(`unknown bench suite(s): ${unknown.join(', ')}; known: ${Object.keys(SUITES).join(', ')}\n`);
  process.exit(2);
}
const results: Record<string, unknown> = { machine: { cpus: (await import('node:os')).cpus().length, node: process.version } };
for (const name of wanted.length > 0 ? wanted : Object.keys(SUITES)) {
  process.stderr.write(`bench: ${name}...\n`);
  const started = performance.now();
  results[name] = await SUITES[name]!();
  process.stderr.write(`bench: ${name} done in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
}
process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
