import { Option, type Command } from 'commander';
import { DEAD_LETTER_REASONS, type DeadLetterReason } from '../../collector/dead-letter.ts';
import { describeValue, readDeadLetters, replayDeadLetters, selectDeadLetters, type StoredDeadLetter } from '../../collector/dlq.ts';
import { transportFromConfig } from '../../collector/run.ts';
import { LatticeError } from '../../core/errors.ts';
import { contextOf, integerOption } from '../cli.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerDlqCommands(program: Command): void {
  const dlq = program
    .command('dlq')
    .description('inspect dead letters (input the collector could not store, kept byte for byte with the reason) and re-ingest them after a fix');

  dlq
    .command('list')
    .description('one line per dead letter: position on the dead-letter topic, reason, source, size, first error')
    .addOption(new Option('--reason <reason>', 'only this reason (repeatable)').choices([...DEAD_LETTER_REASONS]).argParser(collect))
    .option('--limit <n>', 'read at most this many dead letters', integerOption('--limit', 1), 10_000)
    .option('--json', 'one JSON object per line (value as base64)')
    .action(async (options: { reason?: DeadLetterReason[]; limit: number; json?: boolean }, command: Command) => {
      const letters = await read(command, options.limit);
      const shown = options.reason ? letters.filter((l) => options.reason!.includes(l.letter.reason)) : letters;
      if (options.json) {
        for (const l of shown) process.stdout.write(`${JSON.stringify(toJson(l))}\n`);
        return;
      }
      if (shown.length === 0) {
        process.stdout.write('no dead letters\n');
        return;
      }
      const rows = shown.map((l) => [l.position, l.letter.reason, `${l.letter.source.topic}[${l.letter.source.partition}]@${l.letter.source.offset}${l.letter.source.index > 0 ? `#${l.letter.source.index}` : ''}`, l.letter.source.key ?? '-', `${l.letter.value.length} B`, firstError(l)]);
      const header = ['position', 'reason', 'source', 'key', 'size', 'first error'];
      const widths = header.map((h, i) => Math.min(48, Math.max(h.length, ...rows.map((r) => r[i]!.length))));
      const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
      process.stdout.write(`${line(header)}\n${rows.map(line).join('\n')}\n${shown.length} dead letter(s)\n`);
    });

  dlq
    .command('show')
    .description('one dead letter in full: reason, errors, source, headers, and its bytes (text, or a hex dump when binary)')
    .argument('<position>', 'partition:offset on the dead-letter topic (from `lattice dlq list`)')
    .option('--raw', 'write the original bytes exactly to stdout, nothing else')
    .action(async (position: string, options: { raw?: boolean }, command: Command) => {
      const letters = await read(command, Number.MAX_SAFE_INTEGER);
      const [found] = selectDeadLetters(letters, { positions: [position] });
      if (found === undefined) throw new LatticeError('NOT_FOUND', `no dead letter at ${position}`);
      if (options.raw) {
        process.stdout.write(found.letter.value);
        return;
      }
      const { letter } = found;
      const value = describeValue(letter.value);
      const out = [
        `position     ${found.position}`,
        `reason       ${letter.reason}`,
        `source       ${letter.source.topic} partition ${letter.source.partition} offset ${letter.source.offset}${letter.source.index > 0 ? ` line ${letter.source.index}` : ''}`,
        `key          ${letter.source.key ?? '(none)'}`,
        `dead-lettered ${letter.deadLetteredAtMs > 0 ? new Date(letter.deadLetteredAtMs).toISOString() : 'unknown'}`,
        `errors`,
        ...letter.errors.map((e) => `  ${e.path || '(record)'}: ${e.message}`),
        ...(letter.stored !== undefined ? ['stored version (conflict)', `  ${letter.stored}`] : []),
        `value        ${letter.value.length} bytes, ${value.kind}`,
        value.text,
      ];
      process.stdout.write(`${out.join('\n')}\n`);
    });

  dlq
    .command('replay')
    .description('send dead letters back to their source topic (original key and bytes) so the collector ingests them again, e.g. after a fix; a letter that fails again is dead-lettered again, naming this one')
    .argument('[positions...]', 'partition:offset of each dead letter to replay')
    .addOption(new Option('--reason <reason>', 'replay every dead letter with this reason (repeatable)').choices([...DEAD_LETTER_REASONS]).argParser(collect))
    .option('--all', 'replay every dead letter')
    .option('--to-topic <topic>', 'send them here instead of their source topic')
    .option('--dry-run', 'list what would be replayed, send nothing')
    .action(async (positions: string[], options: { reason?: DeadLetterReason[]; all?: boolean; toTopic?: string; dryRun?: boolean }, command: Command) => {
      const { config, logger } = contextOf(command);
      const transport = transportFromConfig(config, logger);
      try {
        const letters = await readDeadLetters(transport, config.transport.dlq_topic, { messagesMax: Number.MAX_SAFE_INTEGER });
        const chosen = selectDeadLetters(letters, { positions, ...(options.reason && { reasons: options.reason }), ...(options.all && { all: true }) });
        if (options.dryRun) {
          for (const l of chosen) process.stdout.write(`would replay ${l.position} (${l.letter.reason}, ${l.letter.value.length} B) to ${options.toTopic ?? l.letter.source.topic}\n`);
          process.stdout.write(`${chosen.length} dead letter(s) selected; nothing sent (--dry-run)\n`);
          return;
        }
        const sent = await replayDeadLetters(transport, config.transport.dlq_topic, chosen, { ...(options.toTopic !== undefined && { toTopic: options.toTopic }) });
        process.stdout.write(`replayed ${sent} dead letter(s)\n`);
      } finally {
        await transport.close();
      }
    });
}

async function read(command: Command, messagesMax: number): Promise<StoredDeadLetter[]> {
  const { config, logger } = contextOf(command);
  const transport = transportFromConfig(config, logger);
  try {
    return await readDeadLetters(transport, config.transport.dlq_topic, { messagesMax });
  } finally {
    await transport.close();
  }
}

function firstError(l: StoredDeadLetter): string {
  const e = l.letter.errors[0];
  if (e === undefined) return '';
  const text = `${e.path ? `${e.path}: ` : ''}${e.message}`;
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function toJson(l: StoredDeadLetter) {
  return { position: l.position, reason: l.letter.reason, errors: l.letter.errors, source: l.letter.source, bytes: l.letter.value.length, value_base64: l.letter.value.toString('base64'), ...(l.letter.stored !== undefined && { stored: l.letter.stored }), dead_lettered_at_ms: l.letter.deadLetteredAtMs };
}
