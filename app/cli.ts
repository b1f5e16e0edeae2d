/**
 * The `lattice` command line. Every subcommand parses its flags here, builds the one validated
 * configuration object, and hands over to the composition root (app/*.ts); errors from the core
 * are printed with their code, never as a stack trace.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig, type ConfigInput, type LatticeConfig } from '../core/config.ts';
import { LatticeError } from '../core/errors.ts';
import { createLogger } from '../core/logging.ts';
import { registerChaosCommands } from './commands/chaos.ts';
import { registerClusterCommands } from './commands/cluster.ts';
import { registerCollectCommand } from './commands/collect.ts';
import { registerDemoCommand } from './commands/demo.ts';
import { registerDlqCommands } from './commands/dlq.ts';
import { registerStoreCommands } from './commands/store.ts';
import { registerTrainCommand } from './commands/train.ts';
import { registerEvalCommand } from './commands/eval.ts';

export interface GlobalOptions {
  config?: string;
  clickhouseUrl?: string;
  dataDir?: string;
  transport?: 'inprocess' | 'kafka';
  kafkaBrokers?: string;
  logLevel?: LatticeConfig['log_level'];
}

/** Builds the configuration from defaults, file, environment and the global flags, once. */
export function resolveConfig(options: GlobalOptions, env: NodeJS.ProcessEnv = process.env): LatticeConfig {
  const overrides: ConfigInput = {};
  if (options.clickhouseUrl !== undefined || options.dataDir !== undefined) {
    overrides.store = { ...(options.clickhouseUrl !== undefined && { url: options.clickhouseUrl }), ...(options.dataDir !== undefined && { data_dir: options.dataDir }) };
  }
  if (options.transport !== undefined || options.kafkaBrokers !== undefined) {
    overrides.transport = {
      ...(options.transport !== undefined && { kind: options.transport }),
      ...(options.kafkaBrokers !== undefined && { brokers: options.kafkaBrokers.split(',').map((b) => b.trim()) }),
    };
  }
  if (options.logLevel !== undefined) overrides.log_level = options.logLevel;
  return loadConfig({ ...(options.config !== undefined && { file: options.config }), env, overrides });
}

export function integerOption(name: string, min = 0) {
  return (raw: string): number => {
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got "${raw}"`);
    return value;
  };
}

export function buildProgram(): Command {
  const program = new Command('lattice')
    .description('Lattice: anomaly detection and root cause for consensus clusters (PBFT, EPaxos).\nRuns embedded by default (ClickHouse in-process via chdb, in-process transport): no servers needed.')
    .version('0.1.0')
    .showHelpAfterError()
    .option('-c, --config <file>', 'configuration file (JSON or YAML)')
    .option('--clickhouse-url <url>', 'ClickHouse server (HTTP), e.g. http://127.0.0.1:8123; default: embedded (env LATTICE_CLICKHOUSE_URL)')
    .option('--data-dir <dir>', 'embedded ClickHouse data directory (env LATTICE_DATA_DIR)')
    .addOption(new Option('--transport <kind>', 'record transport (env LATTICE_TRANSPORT)').choices(['inprocess', 'kafka']))
    .option('--kafka-brokers <list>', 'comma-separated host:port list (env LATTICE_KAFKA_BROKERS)')
    .addOption(new Option('--log-level <level>', 'log level for stderr logs').choices(['debug', 'info', 'warn', 'error', 'silent']));
  registerDemoCommand(program);
  registerCollectCommand(program);
  registerDlqCommands(program);
  registerStoreCommands(program);
  registerChaosCommands(program);
  registerClusterCommands(program);
  registerTrainCommand(program);
  registerEvalCommand(program);
  return program;
}

/** Config and logger for a subcommand, from the program's global flags. */
export function contextOf(command: Command, defaults: { logLevel?: LatticeConfig['log_level'] } = {}): { config: LatticeConfig; logger: ReturnType<typeof createLogger> } {
  const options = command.optsWithGlobals<GlobalOptions>();
  // Commands that print their own report (the demo) keep stderr quiet unless a level was asked for.
  const logLevel = options.logLevel ?? (process.env.LATTICE_LOG_LEVEL ? undefined : defaults.logLevel);
  const config = resolveConfig({ ...options, ...(logLevel !== undefined && { logLevel }) });
  return { config, logger: createLogger(config.log_level) };
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') return 0;
    if (typeof code === 'string' && code.startsWith('commander.')) return 2;
    if (error instanceof LatticeError) {
      process.stderr.write(`lattice: ${error.message} [${error.code}${error.retriable ? ', retriable' : ''}]\n`);
      return 1;
    }
    process.stderr.write(`lattice: unexpected error: ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}
