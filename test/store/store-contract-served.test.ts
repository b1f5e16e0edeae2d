import { afterAll, beforeAll } from 'vitest';
import { startServedStores, type ServedStores } from './served.ts';
import { storeContract } from './store-contract.ts';

// The embedded engine behind `lattice store serve`'s front; the stores under test reach it as
// other processes do, through @clickhouse/client over HTTP (openStore({ url })).
let served: ServedStores;
beforeAll(async () => {
  served = await startServedStores();
});
afterAll(async () => served?.close());

storeContract('served (lattice store serve, @clickhouse/client over HTTP)', () => ({
  kind: 'server',
  open: (database) => served.connect(database),
}));
