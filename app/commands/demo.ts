import { Option, type Command } from 'commander';
import { contextOf, integerOption } from '../cli.ts';
import { formatDemoSummary, runDemo } from '../demo.ts';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run the whole pipeline once on the embedded default: a seeded chaos run of the cluster, shipped through the transport into the store, with a summary')
    .addOption(new Option('-p, --protocol <name>', 'consensus protocol').choices(['pbft', 'epaxos']).default('pbft'))
    .option('-s, --seed <n>', 'seed of the run (same seed, same trace)', integerOption('--seed'), 1)
    .option('--scenario <file>', 'chaos scenario file (YAML or JSON); default: the built-in demo scenario')
    .option('--export-dir <dir>', 'where the run\'s features are written as an Arrow file', '.lattice/exports')
    .option('--json', 'print the summary as one JSON object on stdout')
    .action(async (options: { protocol: 'pbft' | 'epaxos'; seed: number; scenario?: string; exportDir: string; json?: boolean }, command: Command) => {
      const { config, logger } = contextOf(command, { logLevel: 'warn' });
      const quiet = options.json === true;
      const summary = await runDemo(config, logger, {
        protocol: options.protocol,
        seed: options.seed,
        exportDir: options.exportDir,
        ...(options.scenario !== undefined && { scenario: options.scenario }),
        onProgress: (stage) => {
          if (!quiet) process.stderr.write(`• ${stage}\n`);
        },
      });
      process.stdout.write(quiet ? `${JSON.stringify(summary)}\n` : formatDemoSummary(summary));
      if (summary.events_stored + summary.events_dead_lettered !== summary.events_emitted) process.exitCode = 1;
    });
}
