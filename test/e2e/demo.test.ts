/**
 * The demo end to end, as a user runs it: the real CLI in a child process, on the embedded
 * default (chdb + in-process transport), and once more through the real Kafka broker.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tableFromIPC } from 'apache-arrow';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { buildProgram } from '../../app/cli.ts';
import { requireKafkaBroker } from '../support/kafka.ts';

const run = promisify(execFile);
const CLI = resolve(import.meta.dirname, '../../bin/lattice.js');

async function lattice(args: string[], env: Record<string, string> = {}) {
  return run(process.execPath, [CLI, ...args], { env: { ...process.env, LATTICE_LOG_LEVEL: 'warn', ...env }, maxBuffer: 16 * 1024 * 1024 });
}

describe('lattice demo (end to end)', () => {
  it('stores every emitted record on the embedded default, and --json has the summary fields', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'lattice-demo-'));
    const { stdout } = await lattice(['demo', '--json', '--data-dir', dataDir, '--export-dir', dataDir]);
    const summary = JSON.parse(stdout) as Record<string, unknown>;
    expect(summary.events_emitted).toBeGreaterThan(100);
    expect(summary.events_stored).toBe(summary.events_emitted);
    expect(summary.snapshots_emitted).toBeGreaterThan(0);
    expect(summary.snapshots_stored).toBe(summary.snapshots_emitted);
    expect(summary.events_dead_lettered).toBe(0);
    expect(summary.transport).toBe('inprocess');
    expect((summary.store as { kind: string }).kind).toBe('embedded');
    expect(summary.safety_violations).toBe(0);

    // Features were computed for the run and exported as an Arrow file a user can open.
    const features = summary.features as Array<{ transitions: number; active_faults: string[] }>;
    expect(features.length).toBeGreaterThan(0);
    expect(features.reduce((sum, w) => sum + w.transitions, 0)).toBe(summary.events_emitted);
    expect(features.some((w) => w.active_faults.length > 0)).toBe(true);
    const table = tableFromIPC(readFileSync(summary.features_arrow as string));
    expect(table.numRows).toBeGreaterThan(0);
    expect(table.schema.fields.map((f) => f.name)).toEqual(expect.arrayContaining(['run_id', 'window_start', 'node', 'msgs_sent', 'commit_latency_p99_us']));

    // Same seed, same trace: a second run reproduces the hash, and is idempotent in the store.
    const again = JSON.parse((await lattice(['demo', '--json', '--data-dir', dataDir])).stdout) as Record<string, unknown>;
    expect(again.trace_hash).toBe(summary.trace_hash);
    expect(again.events_stored).toBe(summary.events_emitted);
  }, 180_000);

  it('prints a human summary with where to look', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'lattice-demo-'));
    const { stdout } = await lattice(['demo', '--protocol', 'epaxos', '--seed', '3', '--data-dir', dataDir]);
    expect(stdout).toMatch(/trace records\s+(\d+) emitted, \1 stored, 0 dead-lettered \(all accounted for\)/);
    expect(stdout).toMatch(/metrics snapshots\s+(\d+) emitted, \1 stored/);
    expect(stdout).toMatch(/Where to look:/);
    expect(stdout).toContain(dataDir);
  }, 180_000);

  it('runs the same pipeline through the real Kafka broker', async () => {
    const brokers = await requireKafkaBroker();
    const dataDir = mkdtempSync(join(tmpdir(), 'lattice-demo-'));
    const suffix = randomUUID().slice(0, 8);
    const { stdout } = await lattice(['demo', '--json', '--data-dir', dataDir, '--transport', 'kafka', '--kafka-brokers', brokers.join(',')], {
      LATTICE_KAFKA_TOPIC: `demo.transitions.${suffix}`,
      LATTICE_KAFKA_DLQ_TOPIC: `demo.transitions.${suffix}.dlq`,
      LATTICE_COLLECTOR_GROUP: `demo-${suffix}`,
    });
    const summary = JSON.parse(stdout) as Record<string, unknown>;
    expect(summary.transport).toBe('kafka');
    expect(summary.events_stored).toBe(summary.events_emitted);
    expect(summary.events_emitted).toBeGreaterThan(100);
  }, 180_000);
});

describe('lattice CLI', () => {
  it('has --help for every subcommand, nested ones included', async () => {
    // The real binary prints the top-level help; the tree of subcommands is walked in-process.
    const top = (await lattice(['--help'])).stdout;
    const program = buildProgram();
    const walk = (command: Command, path: string[]): string[][] => command.commands.flatMap((c) => [[...path, c.name()], ...walk(c, [...path, c.name()])]);
    const paths = walk(program, []);
    for (const name of ['demo', 'migrate', 'config', 'chaos', 'cluster', 'collect']) expect(top).toContain(`  ${name}`);
    expect(paths).toEqual(expect.arrayContaining([['chaos', 'run'], ['chaos', 'generate'], ['chaos', 'list'], ['cluster', 'up'], ['cluster', 'load'], ['cluster', 'down']]));
    for (const path of paths) {
      let command: Command = program;
      for (const name of path) command = command.commands.find((c) => c.name() === name)!;
      const help = command.helpInformation();
      expect(help, path.join(' ')).toMatch(new RegExp(`Usage: lattice ${path.join(' ')}`));
      expect(command.description().length, `${path.join(' ')} has a description`).toBeGreaterThan(10);
    }
    const nested = await lattice(['chaos', 'run', '--help']);
    expect(nested.stdout).toMatch(/Usage: lattice chaos run \[options\] <scenario>/);
  }, 60_000);

  it('rejects a bad flag value naming the flag', async () => {
    await expect(lattice(['demo', '--seed', 'abc'])).rejects.toMatchObject({ stderr: expect.stringMatching(/--seed must be an integer/) });
    await expect(lattice(['config'], { LATTICE_KAFKA_PARTITIONS: '0' })).rejects.toMatchObject({ stderr: expect.stringMatching(/transport\.partitions/) });
  }, 60_000);
});
