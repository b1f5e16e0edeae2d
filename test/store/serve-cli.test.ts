/**
 * `lattice store serve` as a user runs it: a separate process owning an embedded data directory,
 * other processes sharing the store through @clickhouse/client over HTTP, outages injected on
 * its control port, and a graceful stop on SIGTERM that releases the directory.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.ts';
import { openStore } from '../../store/client.ts';
import { StoreBackendError } from '../../store/errors.ts';
import { countTransitions, insertTransitions } from '../../store/transitions.ts';
import { makeRecords } from '../support/records.ts';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const CLI = join(ROOT, 'bin/lattice.js');
const children: ChildProcessWithoutNullStreams[] = [];

function lattice(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcessWithoutNullStreams {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, LATTICE_LOG_LEVEL: 'warn', LATTICE_CLICKHOUSE_URL: '', ...env } });
  children.push(child);
  return child;
}

function collect(child: ChildProcessWithoutNullStreams): { stdout: () => string; stderr: () => string; exit: Promise<number | null> } {
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exit = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return { stdout: () => out, stderr: () => err, exit };
}

async function until<T>(what: string, probe: () => T | undefined, boundMs = 60_000): Promise<T> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
});

describe('lattice store serve', () => {
  it('serves one embedded store to other processes over HTTP, injects outages, and stops gracefully on SIGTERM', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'lattice-serve-cli-'));
    const serve = lattice(['--data-dir', dataDir, 'store', 'serve', '--port', '0', '--control-port', '0'], { LATTICE_CLICKHOUSE_USER: 'svc', LATTICE_CLICKHOUSE_PASSWORD: 'pw' });
    const io = collect(serve);
    const [, url, control] = await until('the URL line', () => /lattice store serve: (http:\/\/127\.0\.0\.1:\d+) \(embedded store .*; fault control (http:\/\/127\.0\.0\.1:\d+)\/fault\)/.exec(io.stdout()) ?? undefined);

    // A second process on the same directory is told clearly that it cannot have it.
    const second = lattice(['--data-dir', dataDir, 'migrate']);
    const secondIo = collect(second);
    expect(await secondIo.exit).toBe(1);
    expect(secondIo.stderr()).toMatch(/STORE_UNAVAILABLE/);

    // Other processes share the store through the front (this test process is one of them).
    const store = await openStore(loadConfig({ overrides: { store: { url: url!, database: 'lattice', username: 'svc', password: 'pw', request_timeout_ms: 2_000 } } }).store);
    try {
      await insertTransitions(store, makeRecords('run-cli', 40));
      expect(await countTransitions(store, 'run-cli')).toBe(40); // the serving process migrated the schema at start

      const fault = await fetch(`${control}/fault`, { method: 'POST', body: JSON.stringify({ mode: 'error', code: 252, what: 'insert', duration_ms: 60_000 }) });
      expect(await fault.json()).toMatchObject({ mode: 'error', code: 252, name: 'TOO_MANY_PARTS' });
      const error = await insertTransitions(store, makeRecords('run-cli-2', 4)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreBackendError);
      expect((error as StoreBackendError).retriable).toBe(true);
      expect((error as StoreBackendError).backendCode).toBe(252);
      await fetch(`${control}/fault`, { method: 'POST', body: '{"mode":"none"}' }).then((r) => r.arrayBuffer());
    } finally {
      await store.close();
    }

    serve.kill('SIGTERM');
    expect(await io.exit).toBe(0);
    expect(io.stdout()).toContain('lattice store serve: stopped (SIGTERM)');

    // The directory is free again, and the rows are in it.
    const embedded = await openStore(loadConfig({ overrides: { store: { data_dir: dataDir, database: 'lattice' } } }).store);
    try {
      expect(await countTransitions(embedded, 'run-cli')).toBe(40);
    } finally {
      await embedded.close();
    }
  });

  it('rejects bad flags and a server URL, naming the flag or setting', async () => {
    const badPort = collect(lattice(['store', 'serve', '--port', 'eighty']));
    expect(await badPort.exit).toBe(1);
    expect(badPort.stderr()).toContain('--port: expected a port number');
    const badControl = collect(lattice(['store', 'serve', '--control-port', '70000']));
    expect(await badControl.exit).toBe(1);
    expect(badControl.stderr()).toContain('--control-port: expected a port number');
    const server = collect(lattice(['--clickhouse-url', 'http://127.0.0.1:8123', 'store', 'serve']));
    expect(await server.exit).toBe(1);
    expect(server.stderr()).toContain('store.url: store serve serves the embedded store');
  });
});
