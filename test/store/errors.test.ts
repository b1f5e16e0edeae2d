/**
 * Every row of the store's error table (store/errors.ts), each met for real where the engine or
 * the network can produce it — through the embedded store (chdb) and through `lattice store
 * serve`'s front with @clickhouse/client over HTTP — and otherwise answered by the front's
 * `error` mode through the real client. The last test checks that no row went untested.
 */
import { constants } from 'node:os';
import { Readable } from 'node:stream';
import { ClickHouseError } from '@clickhouse/client';
import { Session } from 'chdb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeRecordWriter } from '../../collector/store-writer.ts';
import { loadConfig } from '../../core/config.ts';
import { StoreError } from '../../core/errors.ts';
import { exportFeaturesArrow, readFeaturesArrow, readLabelsArrow } from '../../store/arrow.ts';
import { openStore, type Store } from '../../store/client.ts';
import { classifyStoreError, httpObservationOf, STORE_ERROR_TABLE, StoreBackendError, type StoreErrorRow } from '../../store/errors.ts';
import { readFeatureRows, refreshFeatures } from '../../store/features.ts';
import { readLabelRows } from '../../store/labels.ts';
import { completeness } from '../../store/watermark.ts';
import { migrate } from '../../store/migrations.ts';
import { countTransitions, insertTransitions, queryRows } from '../../store/transitions.ts';
import { makeRecords } from '../support/records.ts';
import { FRONT_PASSWORD, FRONT_USER, postFault, startServedStores, type ServedStores } from './served.ts';

const DB = 'lattice_errors';
const rowKey = (row: Pick<StoreErrorRow, 'source' | 'key'>) => `${row.source}:${String(row.key)}`;
const tested = new Set<string>();

let served: ServedStores;
let embedded: Store;
let server: Store;

beforeAll(async () => {
  served = await startServedStores({ database: DB });
  embedded = served.embedded;
  await migrate(embedded);
  await embedded.client.command({ query: `CREATE TABLE IF NOT EXISTS ${DB}.probe (x UInt32, s String) ENGINE = MergeTree ORDER BY x` });
  server = await served.connect(DB);
});
afterAll(async () => served?.close());

/** The classified error of a call that must fail. */
async function failure(call: () => Promise<unknown>, what = 'probe'): Promise<StoreBackendError> {
  let caught: unknown;
  try {
    await call();
  } catch (error) {
    caught = error;
  }
  expect(caught, 'the call must fail').toBeDefined();
  const classified = caught instanceof StoreError ? caught : classifyStoreError(caught, what);
  expect(classified).toBeInstanceOf(StoreBackendError);
  return classified as StoreBackendError;
}

function expectRow(error: StoreBackendError, row: StoreErrorRow): void {
  expect(error.source).toBe(row.source);
  expect(error.retriable).toBe(row.retriable);
  expect(error.code).toBe(row.retriable ? 'STORE_UNAVAILABLE' : 'STORE_REJECTED');
  if (row.source === 'clickhouse') {
    expect(error.backendCode).toBe(row.key);
    expect(error.backendName).toBe(row.name);
  } else if (row.source === 'http') {
    expect(error.backendCode).toBe(`HTTP_${error.httpStatus}`);
  } else {
    expect(error.backendCode).toBe(row.key);
  }
  tested.add(rowKey(row));
}

const rowOf = (source: StoreErrorRow['source'], key: number | string): StoreErrorRow => {
  const row = STORE_ERROR_TABLE.find((r) => r.source === source && r.key === key);
  if (row === undefined) throw new Error(`no ${source} row ${String(key)}`);
  return row;
};

describe('the table', () => {
  it('names every ClickHouse code as this engine does (system.errors)', async () => {
    const rows = await queryRows<{ code: number; name: string }>(embedded, 'SELECT DISTINCT code, name FROM system.errors SETTINGS system_events_show_zero_values = 1');
    const engine = new Map(rows.map((r) => [Number(r.code), r.name]));
    const clickhouse = STORE_ERROR_TABLE.filter((r) => r.source === 'clickhouse');
    expect(clickhouse.length).toBeGreaterThan(60);
    for (const row of clickhouse) expect(engine.get(row.key as number), `code ${String(row.key)}`).toBe(row.name);
    expect(new Set(STORE_ERROR_TABLE.map(rowKey)).size).toBe(STORE_ERROR_TABLE.length);
  });

  it('has the retriable and non-retriable codes the issue names', () => {
    for (const code of [159, 252, 202, 241, 210, 209, 242, 999, 279]) expect(rowOf('clickhouse', code).retriable, String(code)).toBe(true);
    for (const code of [62, 53, 6, 27, 38, 41, 60, 117]) expect(rowOf('clickhouse', code).retriable, String(code)).toBe(false);
  });
});

// Errors the real engine produces, each through the embedded store and through the front.
const REAL: ReadonlyArray<{ code: number; run: (store: Store) => Promise<unknown> }> = [
  { code: 62, run: (s) => s.client.command({ query: 'SELECT 1 +' }) },
  { code: 53, run: (s) => queryRows(s, 'SELECT CAST(1 AS Tuple(UInt8, UInt8))') },
  { code: 386, run: (s) => queryRows(s, "SELECT arrayConcat([1], ['a'])") },
  { code: 43, run: (s) => queryRows(s, "SELECT 1 + 'a'") },
  { code: 6, run: (s) => queryRows(s, "SELECT toUInt8('x')") },
  { code: 38, run: (s) => queryRows(s, "SELECT toDate('x')") },
  { code: 41, run: (s) => queryRows(s, "SELECT toDateTime('x')") },
  { code: 72, run: (s) => queryRows(s, "SELECT toFloat64('x')") },
  { code: 70, run: (s) => queryRows(s, "SELECT accurateCast(-1, 'UInt8')") },
  { code: 69, run: (s) => queryRows(s, 'SELECT range(100000000000)') },
  { code: 691, run: (s) => queryRows(s, "SELECT CAST('x' AS Enum8('a' = 1))") },
  { code: 47, run: (s) => queryRows(s, 'SELECT no_such_column') },
  { code: 46, run: (s) => queryRows(s, 'SELECT no_such_function(1)') },
  { code: 60, run: (s) => queryRows(s, `SELECT * FROM ${DB}.no_such_table`) },
  { code: 81, run: (s) => queryRows(s, 'SELECT * FROM no_such_database.t') },
  { code: 115, run: (s) => queryRows(s, 'SELECT 1 SETTINGS no_such_setting = 1') },
  { code: 456, run: (s) => queryRows(s, 'SELECT {x:UInt8}') },
  { code: 73, run: (s) => s.client.command({ query: 'SELECT 1 FORMAT NoSuchFormat' }) },
  { code: 57, run: (s) => s.client.command({ query: `CREATE TABLE ${DB}.probe (x UInt8) ENGINE = Memory` }) },
  { code: 164, run: (s) => s.client.command({ query: `INSERT INTO ${DB}.probe SETTINGS readonly = 1 VALUES (1, 'a')` }) },
  { code: 20, run: (s) => s.client.command({ query: `INSERT INTO ${DB}.probe (x) SELECT 1, 2` }) },
  { code: 16, run: (s) => s.client.command({ query: `INSERT INTO ${DB}.probe (no_such_column) VALUES (1)` }) },
  // Rows the engine cannot parse, sent as data after the statement (the INSERT's body over HTTP).
  { code: 27, run: (s) => s.client.insert({ table: `${DB}.probe`, values: [{ x: 'not a number', s: 'a' }], format: 'JSONEachRow' }) },
  { code: 33, run: (s) => s.client.exec({ query: `INSERT INTO ${DB}.probe FORMAT JSONEachRow`, values: Readable.from(['{"x":1,"s":"a"\n']) }) },
  { code: 25, run: (s) => s.client.exec({ query: `INSERT INTO ${DB}.probe (s) FORMAT TSV`, values: Readable.from(['ab\\']) }) },
  // Retriable ones the engine produces too.
  { code: 241, run: (s) => queryRows(s, 'SELECT groupArray(number) FROM numbers(10000000) SETTINGS max_memory_usage = 1000000') },
  { code: 159, run: (s) => queryRows(s, 'SELECT count() FROM numbers(100000000000) SETTINGS max_execution_time = 0.2') },
];

describe.each([
  ['embedded (chdb)', () => embedded],
  ['served (HTTP through the front)', () => server],
])('errors the real engine produces: %s', (_name, store) => {
  it.each(REAL.map((r) => [r.code, rowOf('clickhouse', r.code).name, r] as const))('%i %s', async (code, _n, { run }) => {
    const error = await failure(() => run(store()));
    expectRow(error, rowOf('clickhouse', code));
    // The client's own error underneath, with the code and the type parsed from the engine's text.
    const cause = error.cause as { code?: unknown; type?: unknown };
    expect(cause.code).toBe(String(code));
    expect(cause.type).toBe(rowOf('clickhouse', code).name);
    if (store() === server) expect(error.cause).toBeInstanceOf(ClickHouseError);
  });

  it('252 TOO_MANY_PARTS: an insert into a table over its parts limit, merges stopped', async () => {
    const s = store();
    const table = `${DB}.parts_${s.kind}`;
    await s.client.command({ query: `CREATE TABLE IF NOT EXISTS ${table} (x UInt32) ENGINE = MergeTree ORDER BY x SETTINGS parts_to_throw_insert = 1, parts_to_delay_insert = 1` });
    await s.client.command({ query: `SYSTEM STOP MERGES ${table}` });
    await s.client.command({ query: `INSERT INTO ${table} VALUES (1)` });
    const error = await failure(() => s.client.command({ query: `INSERT INTO ${table} VALUES (2)` }));
    expectRow(error, rowOf('clickhouse', 252));
  });

  it('202 TOO_MANY_SIMULTANEOUS_QUERIES: a second query while a long one runs, at most one allowed', async () => {
    const s = store();
    // The long query runs on a session of its own, so both are in the engine at once.
    const long = new Session(embedded.location);
    const running = long.queryAsync('SELECT count() FROM numbers(100000000000) SETTINGS max_execution_time = 2').catch(() => undefined);
    try {
      let error: StoreBackendError | undefined;
      for (let i = 0; i < 50 && error?.backendCode !== 202; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        error = await failure(() => queryRows(s, 'SELECT 1 SETTINGS max_concurrent_queries_for_user = 1')).catch(() => undefined);
      }
      expect(error).toBeDefined();
      expectRow(error!, rowOf('clickhouse', 202));
    } finally {
      await running;
      long.close();
    }
  });
});

describe('the front itself', () => {
  it('516 AUTHENTICATION_FAILED: a wrong password, as the server answers it (not retried)', async () => {
    const config = loadConfig({ overrides: { store: { url: served.front.url, database: DB, username: FRONT_USER, password: 'wrong' } } });
    const error = await failure(() => openStore(config.store));
    expectRow(error, rowOf('clickhouse', 516));
    expect(error.message).toContain(`${FRONT_USER}: Authentication failed`);
  });
});

describe("codes answered by the front's error mode, through the real client", () => {
  afterAll(async () => {
    await postFault(served.front, { mode: 'none' });
  });

  const clickhouse = STORE_ERROR_TABLE.filter((r) => r.source === 'clickhouse');
  it.each(clickhouse.map((r) => [r.key, r.name, r.retriable ? 'retriable' : 'not retriable', r] as const))('%i %s: %s', async (code, name, _r, row) => {
    const set = await postFault(served.front, { mode: 'error', code });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ mode: 'error', code, name });
    const error = await failure(() => queryRows(server, 'SELECT 1'));
    expectRow(error, row);
    expect(error.cause).toBeInstanceOf(ClickHouseError);
    expect((error.cause as ClickHouseError).type).toBe(name);
  });

  const statuses = STORE_ERROR_TABLE.filter((r) => r.source === 'http');
  it.each(statuses.map((r) => [String(r.key), r.retriable ? 'retriable' : 'not retriable', r] as const))('HTTP %s without a ClickHouse code (a proxy answering): %s', async (key, _r, row) => {
    const status = key === '5xx' ? 507 : key === '4xx' ? 418 : Number(key);
    await postFault(served.front, { mode: 'error', status });
    const error = await failure(() => insertTransitions(server, makeRecords('run-http', 3)));
    expect(error.httpStatus).toBe(status);
    expect(httpObservationOf(error.cause)?.status).toBe(status);
    expect(error.cause).not.toBeInstanceOf(ClickHouseError);
    expectRow(error, row);
  });

  it('a ClickHouse code decides over the HTTP status it came with', async () => {
    await postFault(served.front, { mode: 'error', status: 503, code: 62 });
    const rejected = await failure(() => queryRows(server, 'SELECT 1'));
    expect(rejected.httpStatus).toBe(503);
    expect(rejected.retriable).toBe(false);
    expect(rejected.backendCode).toBe(62);
    await postFault(served.front, { mode: 'error', status: 400, code: 252 });
    const retriable = await failure(() => queryRows(server, 'SELECT 1'));
    expect(retriable.retriable).toBe(true);
    expect(retriable.backendCode).toBe(252);
  });

  it('an error mode limited to inserts leaves queries alone', async () => {
    await postFault(served.front, { mode: 'error', code: 252, what: 'insert' });
    expect(await countTransitions(server, 'run-nothing')).toBe(0);
    const error = await failure(() => insertTransitions(server, makeRecords('run-insert-only', 2)));
    expect(error.backendCode).toBe(252);
  });

  it('a ClickHouse code the table does not know is not retried, and keeps its code', async () => {
    await postFault(served.front, { mode: 'error', code: 49 });
    const error = await failure(() => queryRows(server, 'SELECT 1'));
    expect(error.code).toBe('STORE_QUERY_FAILED');
    expect(error.retriable).toBe(false);
    expect(error.backendCode).toBe(49);
    expect(error.backendName).toBe('LOGICAL_ERROR');
  });
});

describe('the connection fails', () => {
  it('ECONNREFUSED: the front refuses connections (real), and serves again when the fault ends', async () => {
    const set = await postFault(served.front, { mode: 'refuse' });
    expect(set.body).toMatchObject({ mode: 'refuse', what: 'all' });
    const error = await failure(() => insertTransitions(server, makeRecords('run-refused', 4)));
    expectRow(error, rowOf('errno', 'ECONNREFUSED'));
    await postFault(served.front, { mode: 'none' });
    await insertTransitions(server, makeRecords('run-refused', 4));
    expect(await countTransitions(server, 'run-refused')).toBe(4);
  });

  it('ECONNREFUSED when opening a store where nothing listens (real)', async () => {
    const config = loadConfig({ overrides: { store: { url: 'http://127.0.0.1:1', database: DB } } });
    const error = await failure(() => openStore(config.store));
    expectRow(error, rowOf('errno', 'ECONNREFUSED'));
    expect(error.message).toContain('opening the server ClickHouse store');
  });

  it('ECONNRESET: a hung request whose connection the front closes when the fault ends (real)', async () => {
    await postFault(served.front, { mode: 'hang' });
    const pending = failure(() => queryRows(server, 'SELECT 1'));
    for (let i = 0; i < 200 && served.front.faultState().held_requests === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(served.front.faultState().held_requests).toBe(1);
    await postFault(served.front, { mode: 'none' });
    expectRow(await pending, rowOf('errno', 'ECONNRESET'));
    expect(await queryRows(server, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });

  // The rest cannot be produced on one machine without root (a black-holed route, a peer that
  // vanishes mid-write, no DNS): they are Node's errors as its net and dns modules build them.
  const ERRNO_FIXTURES = STORE_ERROR_TABLE.filter((r) => r.source === 'errno' && r.key !== 'ECONNREFUSED' && r.key !== 'ECONNRESET');
  it.each(ERRNO_FIXTURES.map((r) => [String(r.key), r] as const))('%s as Node reports it', (code, row) => {
    const errnoValue = (constants.errno as Record<string, number | undefined>)[code];
    const nodeError = Object.assign(new Error(`connect ${code} 10.255.255.1:8123`), { code, syscall: code.startsWith('EAI_') || code === 'ENOTFOUND' ? 'getaddrinfo' : 'connect', ...(errnoValue !== undefined && { errno: -errnoValue }) });
    expectRow(classifyStoreError(nodeError, 'insert') as StoreBackendError, row);
    // Node's happy-eyeballs connect reports an AggregateError of the attempts.
    const aggregate = Object.assign(new AggregateError([nodeError], 'connect failed'), {});
    expect(classifyStoreError(aggregate, 'insert').retriable).toBe(true);
  });
});

describe('request timeouts on every store call: a hanging server fails them retriably within request_timeout_ms', () => {
  let impatient: Store;
  beforeAll(async () => {
    impatient = await served.connect(DB, { request_timeout_ms: 1_000 });
  });
  afterAll(async () => {
    await postFault(served.front, { mode: 'none' });
  });

  const row = () => rowOf('client', 'CLIENT_REQUEST_TIMEOUT');
  const calls: ReadonlyArray<readonly [string, (s: Store) => Promise<unknown>]> = [
    ['insertTransitions', (s) => insertTransitions(s, makeRecords('run-hang', 10))],
    ["the collector's storeRecordWriter", (s) => storeRecordWriter(s).write(makeRecords('run-hang', 10))],
    ['queryRows', (s) => queryRows(s, 'SELECT 1')],
    ['countTransitions (FINAL)', (s) => countTransitions(s, 'run-hang')],
    ['refreshFeatures', (s) => refreshFeatures(s, 'run-hang')],
    ['readFeatureRows', (s) => readFeatureRows(s, { level: 'node' })],
    ['readFeaturesArrow', (s) => readFeaturesArrow(s, { level: 'node' })],
    ['readLabelRows', (s) => readLabelRows(s, { level: 'node' })],
    ['readLabelsArrow', (s) => readLabelsArrow(s, { level: 'cluster' })],
    ['completeness', (s) => completeness(s, 'run-hang')],
    ['exportFeaturesArrow', (s) => exportFeaturesArrow(s, '/dev/null', { level: 'node' })],
  ];

  it.each(calls)('%s', async (_name, call) => {
    await postFault(served.front, { mode: 'hang' });
    const error = await failure(() => call(impatient));
    expectRow(error, row());
    expect(error.message).toContain('store unavailable');
    expect(httpObservationOf(error.cause)?.timedOut).toBe(true);
    expect(served.front.faultState().totals.hung).toBeGreaterThan(0);
  });

  it('a hang limited to inserts: inserts time out, queries answer, and after the fault inserts go through', async () => {
    await postFault(served.front, { mode: 'hang', what: 'insert', duration_ms: 60_000 });
    expect(await countTransitions(impatient, 'run-hang-insert')).toBe(0);
    const error = await failure(() => insertTransitions(impatient, makeRecords('run-hang-insert', 5)));
    expect(error.backendCode).toBe('CLIENT_REQUEST_TIMEOUT');
    await postFault(served.front, { mode: 'none' });
    await insertTransitions(impatient, makeRecords('run-hang-insert', 5));
    expect(await countTransitions(impatient, 'run-hang-insert')).toBe(5);
  });
});

describe('chdb and unknown errors', () => {
  it("CHDB_TIMEOUT: chdb's own query deadline (real)", async () => {
    const session = new Session(embedded.location);
    try {
      const error = await failure(() => session.queryAsync('SELECT count() FROM numbers(100000000000) SETTINGS max_execution_time = 1', { timeout: 50 }));
      expectRow(error, rowOf('chdb', 'CHDB_TIMEOUT'));
    } finally {
      // The engine finishes the query (max_execution_time) before the session goes.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      session.close();
    }
  });

  it('anything without a code is unknown: not retried', () => {
    const error = classifyStoreError(new Error('something odd'), 'query') as StoreBackendError;
    expect(error.code).toBe('STORE_QUERY_FAILED');
    expect(error.retriable).toBe(false);
    expect(error.backendCode).toBeUndefined();
    expect(classifyStoreError('a string', 'query').retriable).toBe(false);
    expect(classifyStoreError(Object.assign(new Error('x'), { code: 'ENOENT' }), 'query').retriable).toBe(false);
  });

  it('a StoreError passes through unchanged', () => {
    const original = new StoreError('STORE_UNAVAILABLE', 'classified upstream', { retriable: true });
    expect(classifyStoreError(original, 'again')).toBe(original);
  });
});

describe('coverage', () => {
  it('every row of the table was met by a test above', () => {
    const untested = STORE_ERROR_TABLE.filter((r) => !tested.has(rowKey(r))).map(rowKey);
    expect(untested).toEqual([]);
  });
});
