import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.ts';
import { ConfigError } from '../../core/errors.ts';

describe('configuration', () => {
  it('has embedded defaults that need no servers', () => {
    const config = loadConfig();
    expect(config.store.url).toBeUndefined();
    expect(config.transport.kind).toBe('inprocess');
    expect(config.transport.topic).toBe('lattice.transitions');
    expect(config.transport.dlq_topic).toBe('lattice.transitions.dlq');
  });

  it('layers file < environment < flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lattice-config-'));
    const file = join(dir, 'lattice.yaml');
    writeFileSync(file, 'transport:\n  kind: kafka\n  brokers: ["a:1"]\n  topic: from-file\ncollector:\n  batch_rows_max: 7\n');
    const config = loadConfig({
      file,
      env: { LATTICE_KAFKA_BROKERS: 'b:2,c:3', LATTICE_CLICKHOUSE_URL: 'http://127.0.0.1:8123' },
      overrides: { transport: { topic: 'from-flag' } },
    });
    expect(config.transport.kind).toBe('kafka');
    expect(config.transport.brokers).toEqual(['b:2', 'c:3']);
    expect(config.transport.topic).toBe('from-flag');
    expect(config.collector.batch_rows_max).toBe(7);
    expect(config.store.url).toBe('http://127.0.0.1:8123');
  });

  it('names the field and the reason for bad values', () => {
    const attempt = () => loadConfig({ env: { LATTICE_KAFKA_PARTITIONS: 'many', LATTICE_TRANSPORT: 'pigeon' } });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (error) {
      const paths = (error as ConfigError).fieldErrors.map((e) => e.path);
      expect(paths).toContain('transport.partitions');
      expect(paths).toContain('transport.kind');
      expect((error as ConfigError).message).toMatch(/environment/);
    }
  });

  it('rejects unknown settings and bad broker addresses', () => {
    expect(() => loadConfig({ overrides: { transport: { brokers: ['no-port'] } } })).toThrow(/transport\.brokers\.0: expected host:port/);
    expect(() => loadConfig({ overrides: { collector: { batch_rows: 5 } as never } })).toThrow(/collector\.batch_rows: unknown setting/);
  });

  it('reports an unreadable or malformed file by name', () => {
    expect(() => loadConfig({ file: '/nonexistent/lattice.yaml' })).toThrow(/cannot read config file/);
    const dir = mkdtempSync(join(tmpdir(), 'lattice-config-'));
    const file = join(dir, 'bad.json');
    writeFileSync(file, '{ not json');
    expect(() => loadConfig({ file })).toThrow(/not valid JSON/);
  });
  it('features: window_ms defaults to 100 ms and must divide 1000 or be a multiple of it, the error naming field and reason', () => {
    const config = loadConfig();
    expect(config.features).toEqual({ window_ms: 100, allowed_lateness_ms: 250, node_silence_ms: 1_000, run_idle_ms: 10_000 });
    for (const ok of [1, 100, 250, 500, 1_000, 2_000, 60_000]) expect(loadConfig({ overrides: { features: { window_ms: ok } } }).features.window_ms).toBe(ok);
    expect(loadConfig({ env: { LATTICE_FEATURES_WINDOW_MS: '1000' } }).features.window_ms).toBe(1_000);
    for (const [bad, reason] of [[300, 'divisor of 1000'], [1_500, 'multiple of 1000'], [0, 'expected'], [2.5, 'expected'], [7_200_000, 'at most 3600000']] as const) {
      try {
        loadConfig({ overrides: { features: { window_ms: bad } } });
        expect.unreachable(`window_ms ${bad} accepted`);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        const [fieldError] = (error as ConfigError).fieldErrors;
        expect(fieldError?.path).toBe('features.window_ms');
        expect(fieldError?.message).toContain(reason);
      }
    }
  });
});
