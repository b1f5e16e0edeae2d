import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../store/client.ts';
import { appliedVersions, migrate, MIGRATIONS } from '../../store/migrations.ts';
import { countTransitions, eventIds, insertTransitions, queryRows } from '../../store/transitions.ts';
import { makeRecords } from '../support/records.ts';
import { openTestStore } from '../support/store.ts';

describe('store migrations (embedded ClickHouse)', () => {
  let store: Store;
  beforeAll(async () => {
    store = await openTestStore();
  });
  afterAll(async () => store?.close());

  const schemaOf = async () => queryRows<{ name: string; type: string }>(store, `SELECT name, type FROM system.columns WHERE database = {db:String} ORDER BY table, position`, { db: store.database });

  it('applies every migration once, and applying twice equals applying once', async () => {
    const first = await migrate(store);
    expect(first.applied).toEqual(MIGRATIONS.map((m) => m.version));
    const schemaAfterFirst = await schemaOf();
    const second = await migrate(store);
    expect(second.applied).toEqual([]);
    expect(second.alreadyApplied).toEqual(MIGRATIONS.map((m) => m.version));
    expect(await schemaOf()).toEqual(schemaAfterFirst);
    expect(await appliedVersions(store)).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it('applies only the migrations that are missing', async () => {
    const extra = { version: 9_999, name: 'test_extra', statements: ['CREATE TABLE IF NOT EXISTS {db}.extra_probe (x UInt8) ENGINE = MergeTree ORDER BY x'] };
    const report = await migrate(store, [...MIGRATIONS, extra]);
    expect(report.applied).toEqual([9_999]);
    expect((await migrate(store, [...MIGRATIONS, extra])).applied).toEqual([]);
  });

  it('stores records, and a redelivered batch adds no duplicates', async () => {
    await migrate(store);
    const records = makeRecords('run-dup', 500);
    await insertTransitions(store, records);
    await insertTransitions(store, records.slice(100, 300));
    expect(await countTransitions(store, 'run-dup')).toBe(500);
    expect(new Set(await eventIds(store, 'run-dup'))).toEqual(new Set(records.map((r) => r.event_id)));
  });

  it('round-trips every field of a record', async () => {
    const [record] = makeRecords('run-roundtrip', 1);
    const withFaults = { ...record!, faults: ['crash', 'drop'] as const, faulty_nodes: [2], latency_us: null };
    await insertTransitions(store, [{ ...withFaults, faults: [...withFaults.faults] }]);
    const rows = await queryRows<Record<string, unknown>>(store, `SELECT * EXCEPT (ingested_at) FROM ${store.table('transitions')} FINAL WHERE run_id = 'run-roundtrip'`);
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    for (const [key, value] of Object.entries(withFaults)) {
      const stored = row[key];
      // UInt64/Int64 come back as strings in JSON; compare as numbers.
      if (typeof value === 'number') expect(Number(stored), key).toBe(value);
      else expect(stored, key).toEqual(value);
    }
  });
});
