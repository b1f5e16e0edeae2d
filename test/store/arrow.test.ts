import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../store/client.ts';
import { exportFeaturesArrow, readFeaturesArrow } from '../../store/arrow.ts';
import { featureColumns, refreshFeatures } from '../../store/features.ts';
import { migrate } from '../../store/migrations.ts';
import { insertTransitions } from '../../store/transitions.ts';
import { makeRecord } from '../support/records.ts';
import { openTestStore } from '../support/store.ts';

const T0 = 1_767_225_600_000_000;

describe('features as Arrow (embedded ClickHouse)', () => {
  let store: Store;
  beforeAll(async () => {
    store = await openTestStore();
    await migrate(store);
    // 3 nodes x 3 seconds, 10 records per node and second; node 2 reports a fault in second 1.
    const records = [];
    for (let node = 0; node < 3; node++) {
      for (let i = 0; i < 30; i++) {
        const second = Math.floor(i / 10);
        const faulty = node === 2 && second === 1;
        records.push(makeRecord({ run_id: 'arrow-run', node, node_seq: i, phase: i % 2 === 0 ? 'commit' : 'execute', batch_size: 2, ts_us: T0 + second * 1_000_000 + (i % 10) * 1_000, node_clock_us: T0 + second * 1_000_000 + (i % 10) * 1_000, faults: faulty ? ['drop'] : [], faulty_nodes: faulty ? [2] : [] }));
      }
    }
    await insertTransitions(store, records);
    await insertTransitions(store, [makeRecord({ run_id: 'other-run' })]);
    await refreshFeatures(store);
  });
  afterAll(async () => store?.close());

  it('reads node features of one run as an Arrow table with every feature column', async () => {
    const table = await readFeaturesArrow(store, { runId: 'arrow-run', level: 'node' });
    expect(table.numRows).toBe(9);
    expect(table.schema.fields.map((f) => f.name)).toEqual(featureColumns('node'));
    expect(table.getChild('executed_ops')!.toArray().length).toBe(9);
    expect([...table.getChild('node')!.toArray()].map(Number)).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2]);
    expect([...table.getChild('transitions')!.toArray()].map(Number)).toEqual(Array(9).fill(10));
    expect([...table.getChild('executed_ops')!.toArray()].map(Number)).toEqual(Array(9).fill(10));
    expect([...table.getChild('node_faulty')!.toArray()].map(Number)).toEqual([0, 0, 0, 0, 0, 1, 0, 0, 0]);
    const faults = table.getChild('active_faults')!;
    expect([...faults.get(5)!].map(String)).toEqual(['drop']);
    expect(faults.get(0)!.length).toBe(0);
  });

  it('reads cluster features of all runs, and exports an Arrow IPC file that reads back', async () => {
    const all = await readFeaturesArrow(store, { level: 'cluster' });
    expect(all.numRows).toBe(4);
    const path = join(mkdtempSync(join(tmpdir(), 'lattice-arrow-')), 'features.arrow');
    const written = await exportFeaturesArrow(store, path, { runId: 'arrow-run', level: 'cluster' });
    expect(written.rows).toBe(3);
    const back = tableFromIPC(readFileSync(path));
    expect(back.numRows).toBe(3);
    expect([...back.getChild('nodes_reporting')!.toArray()].map(Number)).toEqual([3, 3, 3]);
    expect([...back.getChild('transitions')!.toArray()].map(Number)).toEqual([30, 30, 30]);
  });

  it('an empty selection is an empty table, not an error', async () => {
    const table = await readFeaturesArrow(store, { runId: 'no-such-run', level: 'node' });
    expect(table.numRows).toBe(0);
  });
});
