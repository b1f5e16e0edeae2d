import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../core/config.ts';
import { openStore } from '../../store/client.ts';
import { storeContract } from './store-contract.ts';

// One data directory for the file (chdb: one active directory per process), a database per part.
const dataDir = mkdtempSync(join(tmpdir(), 'lattice-contract-'));

storeContract('embedded (chdb in this process)', () => ({
  kind: 'embedded',
  open: (database) => openStore(loadConfig({ overrides: { store: { data_dir: dataDir, database } } }).store),
}));
