import type { Command } from 'commander';
import { z } from 'zod';
import { ValidationError } from '../../core/errors.ts';
import { openStore } from '../../store/client.ts';
import { startStoreFront } from '../../store/http-front.ts';
import { migrate } from '../../store/migrations.ts';
import { contextOf } from '../cli.ts';

const portFlag = z
  .string()
  .regex(/^\d+$/, 'expected a port number 0..65535 (0: any free port)')
  .transform(Number)
  .pipe(z.number().int().max(65_535, 'expected a port number 0..65535 (0: any free port)'));

/** The flags of `lattice store serve`, validated once; errors name the flag. */
export const storeServeFlagsSchema = z
  .object({
    port: portFlag.default(8123),
    host: z.string().min(1, 'expected a host name or address').default('127.0.0.1'),
    controlPort: portFlag.optional(),
  })
  .strict()
  .refine((flags) => flags.controlPort === undefined || flags.controlPort === 0 || flags.controlPort !== flags.port, { path: ['controlPort'], message: 'must differ from --port' });

export function parseStoreServeFlags(flags: Record<string, unknown>): z.infer<typeof storeServeFlagsSchema> {
  const parsed = storeServeFlagsSchema.safeParse(flags);
  if (parsed.success) return parsed.data;
  const flagName = (key: PropertyKey | undefined) => `--${String(key ?? '').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  throw new ValidationError(
    'store serve flags',
    parsed.error.issues.map((issue) => ({ path: flagName(issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path[0]), message: issue.code === 'unrecognized_keys' ? 'unknown flag' : issue.message })),
  );
}

export function registerStoreCommands(program: Command): void {
  program
    .command('migrate')
    .description('apply the store schema migrations (idempotent; also done at start-up by every command that uses the store)')
    .action(async (_options, command: Command) => {
      const { config } = contextOf(command);
      const store = await openStore(config.store);
      try {
        const report = await migrate(store);
        process.stdout.write(`${store.kind} store at ${store.location}: applied ${JSON.stringify(report.applied)}, already applied ${JSON.stringify(report.alreadyApplied)}\n`);
      } finally {
        await store.close();
      }
    });

  program
    .command('store')
    .description('the embedded store as a service')
    .command('serve')
    .description(
      "serve the embedded store over ClickHouse's HTTP interface, so other processes (collectors, notebooks, @clickhouse/client) share it through --clickhouse-url; with --control-port, a loopback endpoint injects outages for fault tests (POST /fault). Stops gracefully on SIGTERM/SIGINT",
    )
    .option('--port <port>', 'port of the ClickHouse HTTP interface (0: any free port)', '8123')
    .option('--host <host>', 'address it listens on', '127.0.0.1')
    .option('--control-port <port>', 'port of the fault control endpoint on 127.0.0.1 (GET/POST /fault); absent: none')
    .action(async (flags: { port?: string; host?: string; controlPort?: string }, command: Command) => {
      const { config, logger } = contextOf(command);
      const options = parseStoreServeFlags(flags);
      if (config.store.url !== undefined) {
        throw new ValidationError('store serve configuration', [{ path: 'store.url', message: `store serve serves the embedded store (store.data_dir); unset store.url / --clickhouse-url (it is ${config.store.url})` }]);
      }
      const store = await openStore(config.store);
      let front;
      try {
        await migrate(store);
        front = await startStoreFront(store, { host: options.host, port: options.port, ...(options.controlPort !== undefined && { control_port: options.controlPort }), username: config.store.username, password: config.store.password }, logger.child({ component: 'store-front' }));
      } catch (error) {
        await store.close();
        throw error;
      }
      process.stdout.write(`lattice store serve: ${front.url} (embedded store ${store.location}, database ${store.database}${front.controlUrl === undefined ? '' : `; fault control ${front.controlUrl}/fault`})\n`);
      const signal = await new Promise<string>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
      logger.info('signal received, shutting down', { signal });
      try {
        await front.close();
      } finally {
        await store.close();
      }
      process.stdout.write(`lattice store serve: stopped (${signal})\n`);
    });

  program
    .command('config')
    .description('print the effective configuration (defaults < file < environment < flags) as JSON')
    .action((_options, command: Command) => {
      const { config } = contextOf(command);
      const redacted = { ...config, store: { ...config.store, password: config.store.password ? '***' : '' } };
      process.stdout.write(`${JSON.stringify(redacted, null, 2)}\n`);
    });
}
