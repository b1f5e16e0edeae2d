/**
 * `lattice chaos` as a user runs it: a built-in scenario by name, replayed from its seed to the
 * same trace hash; a corpus written with its labels; a bad scenario file named field by field.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

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
});
