/**
 * `lattice chaos` as a user runs it: a built-in scenario by name, replayed from its seed to the
 * same trace hash; a corpus written with its labels; a bad scenario file named field by field;
 * a corpus specification generated with progress and a census of windows per label, simulated
 * only and ingested into the store.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { TINY_SPEC } from '../support/corpus.ts';

const run = promisify(execFile);
const CLI = resolve(import.meta.dirname, '../../bin/lattice.js');
const lattice = (args: string[]) => run(process.execPath, [CLI, ...args], { env: { ...process.env, LATTICE_LOG_LEVEL: 'warn' }, maxBuffer: 16 * 1024 * 1024 });

describe('lattice chaos (end to end)', () => {
  it('lists the library, amnesia marked, and stops quietly when the reader goes away (| head)', async () => {
    const { stdout } = await lattice(['chaos', 'list']);
    expect(stdout).toMatch(/^pbft-crash-amnesia +pbft +crash\(amnesia\)/m);
    const child = spawn(process.execPath, [CLI, 'chaos', 'list'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // Read one chunk, then close the pipe, as `head -1` does.
    await new Promise<void>((done) => child.stdout.once('data', () => done()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((done) => child.on('close', (exitCode) => done(exitCode)));
    expect(stderr).not.toMatch(/EPIPE|Error/);
    expect(code).toBe(0);
  });

  it('runs a library scenario, checks it, and replays it from the seed to the same trace', async () => {
    const args = ['chaos', 'run', 'pbft-crash-primary', '--seed', '7', '--no-ingest', '--json'];
    const first = JSON.parse((await lattice(args)).stdout) as Record<string, unknown>;
    expect(first).toMatchObject({ ok: true, protocol: 'pbft', scenario: 'pbft-crash-primary', seed: 7, safety_violations: 0, shadow_mismatches: 0 });
    expect(first.faults).toEqual(['crash']);
    expect(first.ops_completed).toBe(first.ops_submitted);
    const again = JSON.parse((await lattice(args)).stdout) as Record<string, unknown>;
    expect(again.trace_hash).toBe(first.trace_hash);
    const other = JSON.parse((await lattice(['chaos', 'run', 'pbft-crash-primary', '--seed', '8', '--no-ingest', '--json'])).stdout) as Record<string, unknown>;
    expect(other.trace_hash).not.toBe(first.trace_hash);
  }, 120_000);

  it('writes a labelled corpus', async () => {
    const out = mkdtempSync(join(tmpdir(), 'lattice-corpus-'));
    await lattice(['chaos', 'generate', '--count', '5', '--seed', '3', '--protocol', 'epaxos', '--out', out, '--no-run']);
    const labels = JSON.parse(readFileSync(join(out, 'labels.json'), 'utf8')) as Array<{ file: string; kinds: string[]; faultFree: boolean; beyondFaultModel: boolean }>;
    expect(labels).toHaveLength(5);
    expect(readdirSync(out).filter((f) => f.endsWith('.yaml'))).toHaveLength(5);
    for (const label of labels) {
      expect(label.beyondFaultModel).toBe(false);
      expect(label.faultFree).toBe(label.kinds.length === 0);
    }
  }, 60_000);

  it('names the field and the reason for a bad scenario file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lattice-bad-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'name: bad\nprotocol: pbft\nnodes: 5\nduration_ms: 100\nfaults:\n  - { at_ms: 10, kind: drop, rate: 2 }\n');
    const failure = await lattice(['chaos', 'run', file, '--no-ingest']).catch((error: { stderr: string; code: number }) => error);
    expect((failure as { code: number }).code).toBe(1);
    expect((failure as { stderr: string }).stderr).toMatch(/nodes: PBFT needs n = 3f\+1/);
    expect((failure as { stderr: string }).stderr).toMatch(/faults\.0\.rate: rate: expected a number <= 1/);
  }, 60_000);

  it('generates a corpus from a spec: plan, non-TTY progress with ETA, a census per label, the same traces again in worker processes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lattice-spec-'));
    const file = join(dir, 'tiny.yaml');
    writeFileSync(file, toYaml(TINY_SPEC));
    const out = join(dir, 'out');
    const args = ['chaos', 'generate', '--corpus', file, '--out', out, '--no-ingest', '--limit', '3'];
    const { stdout, stderr } = await lattice(args);
    // The plan, with its normal windows, before anything runs.
    expect(stdout).toMatch(/^corpus tiny \(.*tiny\.yaml\): 3 runs of 4000 ms — pbft 2 \(1 fault-free, 2 episodes\), epaxos 1 \(1 fault-free, 0 episodes\)$/m);
    expect(stdout).toMatch(/^planned normal 100 ms windows .*: pbft \d[\d,]* \(160 in fault-free runs\), epaxos 200 \(200 in fault-free runs\)$/m);
    // Not a terminal: progress as lines, with an ETA.
    expect(stderr).toMatch(/^corpus tiny: 1\/3 runs \(33%\) \| elapsed \d+s \| ETA \d+s \| [\d,]+ records \| 0 failed$/m);
    expect(stderr).toMatch(/^corpus tiny: 3\/3 runs \(100%\) .*\| ETA 0s/m);
    // The census: a row per label, a column per protocol.
    const table = stdout.slice(stdout.indexOf('100 ms windows per label'));
    expect(table).toMatch(/^label +epaxos +pbft$/m);
    expect(table).toMatch(/^normal +\d[\d,]* +\d[\d,]*$/m);
    expect(table).toMatch(/^\(cells\) +/m);
    expect(stdout).toMatch(/^3 runs, [\d,]+ records simulated, not ingested \(--no-ingest\)$/m);
    const labels = JSON.parse(readFileSync(join(out, 'labels.json'), 'utf8')) as Array<{ run_id: string; file: string; fault_free: boolean; episodes: Array<{ family: string; kinds: string[]; start_ms: number; end_ms: number }>; load: { level: string } }>;
    expect(labels.map((l) => l.run_id)).toEqual(['tiny-pbft-7', 'tiny-epaxos-7', 'tiny-pbft-8']);
    expect(labels.map((l) => l.fault_free)).toEqual([true, true, false]);
    expect(labels[2]!.episodes).toHaveLength(2);
    expect(labels[2]!.load.level).toBe('steady');
    for (const label of labels) expect(readdirSync(out)).toContain(label.file);
    const manifest = JSON.parse(readFileSync(join(out, 'corpus.json'), 'utf8')) as { report: { census: { protocols: Record<string, { labels: Record<string, number> }> }; outcomes: Array<{ trace_hash: string; ok: boolean }> } };
    expect(manifest.report.outcomes.every((o) => o.ok)).toBe(true);
    const faultKinds = new Set(labels[2]!.episodes.flatMap((e) => e.kinds));
    for (const kind of faultKinds) expect(manifest.report.census.protocols.pbft!.labels[kind]).toBeGreaterThan(0);
    // The same spec again, as JSON, through two worker processes: the same traces and census.
    const again = JSON.parse((await lattice([...args.slice(0, -2), '--limit', '3', '--json', '--workers', '2', '--out', join(dir, 'again')])).stdout) as { outcomes: Array<{ trace_hash: string }>; census: unknown; failed: string[] };
    expect(again.failed).toEqual([]);
    expect(again.outcomes.map((o) => o.trace_hash)).toEqual(manifest.report.outcomes.map((o) => o.trace_hash));
    expect(again.census).toEqual(manifest.report.census);
  }, 180_000);

  it('ingests a corpus run into the store, counting its windows on the way', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lattice-spec-ingest-'));
    const file = join(dir, 'tiny.json');
    writeFileSync(file, JSON.stringify(TINY_SPEC));
    const { stdout } = await lattice(['--data-dir', join(dir, 'chdb'), 'chaos', 'generate', '--corpus', file, '--out', join(dir, 'out'), '--protocol', 'epaxos', '--limit', '1', '--duration-ms', '2500', '--json']);
    const summary = JSON.parse(stdout) as { runs: number; records: number; store: string; census: { protocols: Record<string, { cells: number; labels: Record<string, number> }> }; outcomes: Array<{ run_id: string; records: number; stored: number; dead_lettered: number }> };
    expect(summary.runs).toBe(1);
    expect(summary.outcomes[0]).toMatchObject({ run_id: 'tiny-epaxos-7', dead_lettered: 0 });
    expect(summary.outcomes[0]!.stored).toBe(summary.outcomes[0]!.records);
    expect(summary.records).toBe(summary.outcomes[0]!.records);
    // A fault-free 2.5 s run of 5 nodes: 125 node × window cells (a few more in the quiet period);
    // at light load an EPaxos replica outside a command's quorum may have none in a window.
    const epaxos = summary.census.protocols.epaxos!;
    expect(Object.keys(summary.census.protocols)).toEqual(['epaxos']);
    expect(epaxos.labels).toEqual({ normal: epaxos.cells });
    expect(epaxos.cells).toBeGreaterThan(75);
    expect(epaxos.cells).toBeLessThanOrEqual(130);
  }, 180_000);

  it('names the field and the reason for a bad corpus spec, and refuses --seed beside --corpus', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lattice-bad-spec-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, toYaml({ ...TINY_SPEC, fault_free_share: 2, loads: [{ name: 'x', clients: [4, 2], think_ms: 1, keys: 4, read_share: 0.5 }] }));
    const failure = (await lattice(['chaos', 'generate', '--corpus', file, '--no-run']).catch((error: unknown) => error)) as { code: number; stderr: string };
    expect(failure.code).toBe(1);
    expect(failure.stderr).toMatch(/corpus spec .*bad\.yaml is invalid: .*fault_free_share: expected <= 1/);
    expect(failure.stderr).toMatch(/loads\.0\.clients: clients: min must be <= max/);
    const both = (await lattice(['chaos', 'generate', '--corpus', file, '--seed', '3', '--no-run']).catch((error: unknown) => error)) as { code: number; stderr: string };
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/--seed: a corpus file declares its own seeds/);
  }, 60_000);
});
