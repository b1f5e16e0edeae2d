import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { clusterDown, clusterLoad, clusterStatus, clusterUp } from '../../cluster/tcp/commands.ts';
import { contextOf, integerOption } from '../cli.ts';

/** The collector's producer, loaded by each node process when its trace goes to Kafka. */
const KAFKA_TRACE_SINK = resolve(import.meta.dirname, '../../collector/kafka-trace-sink.ts');

function print(value: unknown, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(value)}\n`);
    return;
  }
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    process.stdout.write(`${key.padEnd(16)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}\n`);
  }
}

function fraction(name: string) {
  return (raw: string): number => {
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0 || value > 1) throw new Error(`${name} must be a number between 0 and 1, got "${raw}"`);
    return value;
  };
}

export function registerClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('run the cluster as real OS processes talking TCP (on 127.0.0.1 unless told otherwise), and load it');

  cluster
    .command('up')
    .description('start one process per replica (detached); records the cluster in .lattice/cluster/latest.json')
    .addOption(new Option('-p, --protocol <name>', 'protocol').choices(['pbft', 'epaxos']).default('pbft'))
    .option('-n, --nodes <n>', 'replicas (PBFT: 3f+1, EPaxos: 2f+1)', integerOption('--nodes', 3))
    .option('--base-port <port>', 'first replica port (default: free ports)', integerOption('--base-port', 1))
    .option('--listen-host <address>', 'address every replica listens on; 0.0.0.0 makes the cluster reachable from other hosts', '127.0.0.1')
    .addOption(new Option('--trace <mode>', 'where each node\'s trace records go: NDJSON files in the run directory, the Kafka transitions topic (brokers and topic from the configuration), or nowhere').choices(['ndjson', 'kafka', 'off']).default('ndjson'))
    .option('--json', 'print JSON')
    .action(async (options: { protocol: 'pbft' | 'epaxos'; nodes?: number; basePort?: number; listenHost: string; trace: 'ndjson' | 'kafka' | 'off'; json?: boolean }, command: Command) => {
      const nodes = options.nodes ?? (options.protocol === 'pbft' ? 4 : 5);
      if (options.trace === 'kafka') {
        // The node processes inherit the environment: hand them the validated Kafka settings.
        const { config } = contextOf(command);
        process.env.LATTICE_KAFKA_BROKERS = config.transport.brokers.join(',');
        process.env.LATTICE_KAFKA_TOPIC = config.transport.topic;
        process.env.LATTICE_KAFKA_PARTITIONS = String(config.transport.partitions);
        // Each node spools under this root while the broker is away; absolute, whatever its cwd.
        process.env.LATTICE_PRODUCER_SPOOL_DIR = resolve(config.producer.spool_dir);
        process.env.LATTICE_PRODUCER_SPOOL_BYTES_MAX = String(config.producer.spool_bytes_max);
      }
      const up = await clusterUp({
        protocol: options.protocol,
        nodes,
        listenHost: options.listenHost,
        trace: options.trace === 'off' ? 'off' : 'ndjson',
        ...(options.trace === 'kafka' && { traceSinkModule: KAFKA_TRACE_SINK }),
        ...(options.basePort !== undefined && { basePort: options.basePort }),
      });
      print({ ...up, trace: options.trace }, options.json);
    });

  cluster
    .command('load')
    .description('closed-loop client load against the running cluster; reports throughput and latency percentiles')
    .option('--cluster-file <file>', 'cluster.json of the cluster (default: the latest `cluster up`)')
    .option('-c, --clients <n>', 'concurrent closed-loop clients', integerOption('--clients', 1), 16)
    .option('-d, --duration-ms <ms>', 'how long to load', integerOption('--duration-ms', 1), 10_000)
    .option('--keys <n>', 'key space size', integerOption('--keys', 1), 1_000)
    .option('--read-ratio <r>', 'share of reads', fraction('--read-ratio'), 0.5)
    .option('--conflict-rate <r>', 'share of ops on one hot key', fraction('--conflict-rate'), 0.02)
    .option('--json', 'print JSON')
    .action(async (options: { clusterFile?: string; clients: number; durationMs: number; keys: number; readRatio: number; conflictRate: number; json?: boolean }) => {
      const { json, ...load } = options;
      print(await clusterLoad(load), json);
    });

  cluster
    .command('status')
    .description('ask every replica of the running cluster for its status')
    .option('--cluster-file <file>', 'cluster.json of the cluster (default: the latest `cluster up`)')
    .option('--json', 'print JSON')
    .action(async (options: { clusterFile?: string; json?: boolean }) => print(await clusterStatus(options), options.json));

  cluster
    .command('down')
    .description('stop the running cluster (SIGTERM, then SIGKILL)')
    .option('--cluster-file <file>', 'cluster.json of the cluster (default: the latest `cluster up`)')
    .option('--json', 'print JSON')
    .action(async (options: { clusterFile?: string; json?: boolean }) => print(await clusterDown(options), options.json));
}
