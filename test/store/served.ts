/**
 * A store served by `lattice store serve`'s front in this process: the embedded engine (chdb) on
 * a fresh data directory, the front on a free loopback port (with its fault control endpoint),
 * and stores that reach it the way other processes do — `openStore({ url })`, i.e.
 * @clickhouse/client over HTTP.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type LatticeConfig } from '../../core/config.ts';
import { openStore, type Store } from '../../store/client.ts';
import { startStoreFront, type StoreFront, type StoreFrontOptions } from '../../store/http-front.ts';

export const FRONT_USER = 'lattice_test_user';
export const FRONT_PASSWORD = "s3cret 'quoted' \\ pass";

export interface ServedStores {
  /** The embedded store the front serves (same process). */
  readonly embedded: Store;
  readonly front: StoreFront;
  /** A store over HTTP through the front, on `database`. */
  connect(database: string, store?: Partial<LatticeConfig['store']>): Promise<Store>;
  close(): Promise<void>;
}

export async function startServedStores(options: { database?: string; front?: StoreFrontOptions } = {}): Promise<ServedStores> {
  const dataDir = mkdtempSync(join(tmpdir(), 'lattice-served-'));
  const embedded = await openStore(loadConfig({ overrides: { store: { data_dir: dataDir, database: options.database ?? 'lattice_served' } } }).store);
  const front = await startStoreFront(embedded, { port: 0, control_port: 0, username: FRONT_USER, password: FRONT_PASSWORD, ...options.front });
  const opened: Store[] = [];
  return {
    embedded,
    front,
    async connect(database, store = {}) {
      const config = loadConfig({ overrides: { store: { url: front.url, database, username: FRONT_USER, password: FRONT_PASSWORD, ...store } } });
      const served = await openStore(config.store);
      opened.push(served);
      return served;
    },
    async close() {
      for (const store of opened) await store.close().catch(() => undefined);
      await front.close();
      await embedded.close();
    },
  };
}

/** Sets a fault through the control endpoint, as another process would. */
export async function postFault(front: StoreFront, spec: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${front.controlUrl}/fault`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}
