import type { Command } from 'commander';
import { openStore } from '../../store/client.ts';
import { migrate } from '../../store/migrations.ts';
import { contextOf } from '../cli.ts';

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
    .command('config')
    .description('print the effective configuration (defaults < file < environment < flags) as JSON')
    .action((_options, command: Command) => {
      const { config } = contextOf(command);
      const redacted = { ...config, store: { ...config.store, password: config.store.password ? '***' : '' } };
      process.stdout.write(`${JSON.stringify(redacted, null, 2)}\n`);
    });
}
