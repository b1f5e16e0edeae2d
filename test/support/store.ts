import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../core/config.ts';
import { openStore, type Store } from '../../store/client.ts';

/** A fresh embedded store in its own temp directory (one per test file: chdb allows one per process). */
export async function openTestStore(database = 'lattice_test'): Promise<Store> {
  const dir = mkdtempSync(join(tmpdir(), 'lattice-store-'));
  const config = loadConfig({ overrides: { store: { data_dir: dir, database } } });
  return openStore(config.store);
}
