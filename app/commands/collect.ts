import type { Command } from 'commander';
import { runCollectorService } from '../../collector/run.ts';
import { contextOf, integerOption } from '../cli.ts';

export function registerCollectCommand(program: Command): void {
  program
    .command('collect')
    .description('run a collector: consume trace records from the transport (a Kafka consumer group), validate, store in ClickHouse, dead-letter malformed records; stops gracefully on SIGTERM/SIGINT')
    .option('--metrics-port <port>', 'port of /metrics, /healthz and /readyz (0: any free port; default collector.metrics_port, 9464)', integerOption('--metrics-port'))
    .option('--metrics-host <host>', 'address they listen on (default collector.metrics_host, 127.0.0.1)')
    .option('--group <id>', 'consumer group (collectors with the same group share the partitions)')
    .action(async (options: { metricsPort?: number; metricsHost?: string; group?: string }, command: Command) => {
      const { config, logger } = contextOf(command);
      const effective = options.group === undefined ? config : { ...config, collector: { ...config.collector, group_id: options.group } };
      const handle = await runCollectorService({ config: effective, logger, ...(options.metricsPort !== undefined && { metricsPort: options.metricsPort }), ...(options.metricsHost !== undefined && { metricsHost: options.metricsHost }) });
      process.stderr.write(`collector running (group ${effective.collector.group_id}, ${effective.transport.kind} → ${handle.store.kind} store); metrics at ${handle.metricsUrl}; Ctrl-C to stop\n`);
      await handle.stopped;
      process.stderr.write(`collector stopped: ${JSON.stringify(handle.stats)}\n`);
    });
}
