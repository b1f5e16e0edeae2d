import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { stringify as toYaml } from 'yaml';
import { MemorySink } from '../../core/sink.ts';
import type { Protocol } from '../../core/trace-schema.ts';
import { generateScenarios } from '../../cluster/chaos/generate.ts';
import { loadScenarioFile, type FaultSpec } from '../../cluster/chaos/scenario.ts';
import { listScenarios, protocolByName, scenarioPath } from '../../cluster/protocols.ts';
import { runSimulation, type RunResult } from '../../cluster/run.ts';
import { contextOf, integerOption } from '../cli.ts';
import { Pipeline } from '../pipeline.ts';

function runSummary(result: RunResult, stored?: number) {
  return {
    run_id: result.runId,
    protocol: result.protocol,
    scenario: result.scenario,
    seed: result.seed,
    ok: result.ok,
    records: result.records,
    ...(stored !== undefined && { stored }),
    trace_hash: result.traceHash,
    ops_submitted: result.submittedOps,
    ops_completed: result.completedOps,
    ops_pending: result.pendingOps,
    safety_violations: result.safetyViolations.length,
    shadow_mismatches: result.shadowMismatches.length,
    beyond_fault_model: result.beyondFaultModel,
    faults: [...new Set(result.faultLog.flatMap((f) => (f.kind === undefined ? [] : [f.kind])))].sort(),
    virtual_ms: Math.round(result.virtualDurationUs / 1000),
    replay: result.replay,
  };
}

export function registerChaosCommands(program: Command): void {
  const chaos = program.command('chaos').description('run chaos scenarios against the simulated cluster, and generate training corpora');

  chaos
    .command('run')
    .description('run one scenario (a file, or a built-in name from `lattice chaos list`) with a seed; ships the trace into the store unless --no-ingest')
    .argument('<scenario>', 'scenario file (YAML/JSON) or built-in scenario name')
    .option('-s, --seed <n>', 'seed (same seed and scenario, same trace)', integerOption('--seed'), 1)
    .addOption(new Option('-p, --protocol <name>', 'protocol (default: the scenario\'s own)').choices(['pbft', 'epaxos']))
    .option('--no-ingest', 'only simulate and check; do not ship the trace into the store')
    .option('--json', 'print the result as one JSON object')
    .action(async (scenarioArg: string, options: { seed: number; protocol?: Protocol; ingest: boolean; json?: boolean }, command: Command) => {
      const { config, logger } = contextOf(command);
      const scenario = loadScenarioFile(scenarioPath(scenarioArg));
      const protocol = protocolByName(options.protocol ?? scenario.protocol ?? 'pbft');
      let summary: ReturnType<typeof runSummary>;
      if (options.ingest) {
        const pipeline = await Pipeline.open(config, logger);
        try {
          const { result, stored } = await pipeline.ingestRun(protocol, scenario, options.seed);
          summary = runSummary(result, stored);
        } finally {
          await pipeline.close();
        }
      } else {
        summary = runSummary(await runSimulation({ protocol, scenario, seed: options.seed, sink: new MemorySink() }));
      }
      if (options.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
      else {
        for (const [key, value] of Object.entries(summary)) process.stdout.write(`${key.padEnd(20)} ${Array.isArray(value) ? value.join(', ') : String(value)}\n`);
      }
      if (!summary.ok) {
        process.stderr.write(`run FAILED its checks; replay with: lattice chaos run ${scenarioArg} --protocol ${protocol.name} --seed ${options.seed}\n`);
        process.exitCode = 1;
      }
    });

  chaos
    .command('generate')
    .description('generate a varied, labelled corpus of scenarios (fault-free ones included), write them as files, and run + ingest each')
    .option('-n, --count <k>', 'number of scenarios', integerOption('--count', 1), 20)
    .option('-s, --seed <n>', 'seed of the corpus', integerOption('--seed'), 1)
    .addOption(new Option('-p, --protocol <name>', 'protocol').choices(['pbft', 'epaxos']).default('pbft'))
    .option('-o, --out <dir>', 'where to write the scenario files and labels.json', '.lattice/corpus')
    .option('--no-run', 'only write the scenario files')
    .option('--json', 'print a JSON summary instead of a progress bar')
    .action(async (options: { count: number; seed: number; protocol: Protocol; out: string; run: boolean; json?: boolean }, command: Command) => {
      const { config, logger } = contextOf(command);
      const out = resolve(options.out);
      mkdirSync(out, { recursive: true });
      const corpus = generateScenarios({ count: options.count, seed: options.seed, protocol: options.protocol });
      const labels = corpus.map(({ scenario, labels }) => ({ scenario: scenario.name, file: `${scenario.name}.yaml`, ...labels }));
      for (const { scenario } of corpus) writeFileSync(join(out, `${scenario.name}.yaml`), toYaml(scenario));
      writeFileSync(join(out, 'labels.json'), `${JSON.stringify(labels, null, 2)}\n`);
      if (!options.run) {
        process.stdout.write(options.json ? `${JSON.stringify({ out, scenarios: corpus.length })}\n` : `wrote ${corpus.length} scenarios and labels.json to ${out}\n`);
        return;
      }
      const protocol = protocolByName(options.protocol);
      const pipeline = await Pipeline.open(config, logger);
      const bar = options.json ? undefined : new SingleBar({ format: 'corpus [{bar}] {value}/{total} runs | {records} records | {failed} failed', hideCursor: true }, Presets.shades_classic);
      const runs: ReturnType<typeof runSummary>[] = [];
      let records = 0;
      try {
        bar?.start(corpus.length, 0, { records: 0, failed: 0 });
        for (const [i, { scenario }] of corpus.entries()) {
          const { result, stored } = await pipeline.ingestRun(protocol, scenario, options.seed * 1_000 + i);
          records += result.records;
          runs.push(runSummary(result, stored));
          bar?.update(i + 1, { records, failed: runs.filter((r) => !r.ok).length });
        }
      } finally {
        bar?.stop();
        await pipeline.close();
      }
      const failed = runs.filter((r) => !r.ok);
      const summary = { out, scenarios: corpus.length, records, failed: failed.map((r) => r.replay), store: pipeline.store.location };
      process.stdout.write(options.json ? `${JSON.stringify({ ...summary, runs })}\n` : `\n${corpus.length} runs, ${records} records ingested into ${summary.store}; scenarios in ${out}\n${failed.map((r) => `FAILED: ${r.replay}`).join('\n')}\n`);
      if (failed.length > 0) process.exitCode = 1;
    });

  chaos
    .command('list')
    .description('list the built-in scenarios')
    .action(() => {
      for (const name of listScenarios()) {
        const scenario = loadScenarioFile(scenarioPath(name));
        process.stdout.write(`${name.padEnd(32)} ${(scenario.protocol ?? 'any').padEnd(6)} ${scenario.faults.map(faultLabel).join(',') || 'fault-free'}  ${scenario.description ?? ''}\n`);
      }
    });
}

/** A fault as `chaos list` names it: its kind, and whether a crash loses the disk. */
function faultLabel(fault: FaultSpec): string {
  return fault.kind === 'crash' && fault.amnesia === true ? 'crash(amnesia)' : fault.kind;
}
