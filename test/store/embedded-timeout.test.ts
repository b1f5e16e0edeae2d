/**
 * The embedded store has no socket to time out, so the engine bounds every statement by
 * `store.request_timeout_ms` itself: a statement that runs longer fails, retriably, as a
 * server request would.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.ts';
import { LatticeError } from '../../core/errors.ts';
import { openStore } from '../../store/client.ts';
import { queryRows } from '../../store/transitions.ts';

describe('embedded store: statements bounded by store.request_timeout_ms', () => {
  it('a statement past the bound fails as STORE_UNAVAILABLE (TIMEOUT_EXCEEDED, retriable); short ones run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lattice-timeout-'));
    const store = await openStore(loadConfig({ overrides: { store: { data_dir: dir, request_timeout_ms: 1_000 } } }).store);
    try {
      const [short] = await queryRows<{ n: string | number }>(store, 'SELECT count() AS n FROM numbers(1000)');
      expect(Number(short?.n)).toBe(1000);
      const error = await queryRows(store, 'SELECT count() FROM numbers_mt(1000000000000)').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LatticeError);
      expect((error as LatticeError).code).toBe('STORE_UNAVAILABLE');
      expect((error as LatticeError).retriable).toBe(true);
      expect((error as { backendCode?: unknown }).backendCode).toBe(159);
    } finally {
      await store.close();
    }
  });
});
