/**
 * `lattice store serve`'s front speaks ClickHouse's HTTP interface: what @clickhouse/client 1.23
 * sends (checked with the real client) and what a hand-written request can send (checked with
 * fetch), over the real embedded engine; and its fault control endpoint.
 */
import { brotliCompressSync, deflateSync, gunzipSync, gzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { createClient, ClickHouseError, TupleParam, type ClickHouseClient, type ClickHouseSettings } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.ts';
import { ValidationError } from '../../core/errors.ts';
import { openStore } from '../../store/client.ts';
import { startStoreFront, type StoreFront } from '../../store/http-front.ts';
import { FRONT_PASSWORD, FRONT_USER, postFault, startServedStores, type ServedStores } from './served.ts';

const DB = 'lattice_front';
let served: ServedStores;
let front: StoreFront;
const clients: ClickHouseClient[] = [];
const basic = `Basic ${Buffer.from(`${FRONT_USER}:${FRONT_PASSWORD}`).toString('base64')}`;

function client(options: Parameters<typeof createClient>[0] = {}): ClickHouseClient {
  const c = createClient({ url: front.url, username: FRONT_USER, password: FRONT_PASSWORD, log: { level: 127 as never }, ...options });
  clients.push(c);
  return c;
}

/** A raw request, as any HTTP client could send it. */
async function raw(path: string, init: RequestInit & { auth?: boolean } = {}): Promise<{ status: number; headers: Headers; body: Buffer; text: string }> {
  const headers = new Headers(init.headers);
  if (init.auth !== false && !headers.has('authorization')) headers.set('authorization', basic);
  const response = await fetch(`${front.url}${path}`, { ...init, headers });
  const body = Buffer.from(await response.arrayBuffer());
  return { status: response.status, headers: response.headers, body, text: body.toString('utf8') };
}

const q = (sql: string, extra: Record<string, string> = {}) => `/?${new URLSearchParams({ query: sql, ...extra }).toString()}`;
const EXCEPTION_BODY = /^Code: (\d+)\. DB::Exception: [\s\S]+ \(([A-Z0-9_]+)\) \(version \d+\.\d+\.\d+\.\d+\)\n$/;

beforeAll(async () => {
  served = await startServedStores({ database: DB });
  front = served.front;
  await served.embedded.client.command({ query: `CREATE TABLE IF NOT EXISTS ${DB}.t (x UInt32, s String) ENGINE = MergeTree ORDER BY x` });
});
afterAll(async () => {
  for (const c of clients) await c.close();
  await served?.close();
});

describe('health and routing', () => {
  it('answers /ping, HEAD /ping and GET / with "Ok.", without credentials', async () => {
    for (const path of ['/ping', '/', '/replicas_status']) {
      const r = await raw(path, { auth: false });
      expect(r.status).toBe(200);
      expect(r.text).toBe('Ok.\n');
    }
    expect((await raw('/ping', { method: 'HEAD', auth: false })).status).toBe(200);
    expect(await client().ping()).toEqual({ success: true });
    expect(await client().ping({ select: true })).toEqual({ success: true });
  });

  it('answers 404 for other paths', async () => {
    const r = await raw('/nope?query=SELECT%201');
    expect(r.status).toBe(404);
    expect(r.text).toContain('There is no handle /nope');
  });
});

describe('authentication', () => {
  it('accepts the configured user by basic auth, X-ClickHouse-User/Key and user/password parameters', async () => {
    expect((await raw(q('SELECT 1'))).text).toBe('1\n');
    expect((await raw(q('SELECT 2'), { auth: false, headers: { 'x-clickhouse-user': FRONT_USER, 'x-clickhouse-key': FRONT_PASSWORD } })).text).toBe('2\n');
    expect((await raw(q('SELECT 3', { user: FRONT_USER, password: FRONT_PASSWORD }), { auth: false })).text).toBe('3\n');
  });

  it('refuses anyone else with AUTHENTICATION_FAILED (516, 403)', async () => {
    for (const init of [{ auth: false }, { headers: { authorization: `Basic ${Buffer.from(`${FRONT_USER}:wrong`).toString('base64')}` } }, { headers: { authorization: 'Bearer token' } }]) {
      const r = await raw(q('SELECT 1'), init);
      expect(r.status).toBe(403);
      expect(r.headers.get('x-clickhouse-exception-code')).toBe('516');
      expect(r.text).toMatch(EXCEPTION_BODY);
    }
    const wrong = client({ password: 'wrong' });
    const error = await wrong.query({ query: 'SELECT 1' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ClickHouseError);
    expect((error as ClickHouseError).code).toBe('516');
    expect((error as ClickHouseError).type).toBe('AUTHENTICATION_FAILED');
  });
});

describe('what @clickhouse/client sends', () => {
  it('query: JSON formats, query_id echoed, format and summary headers', async () => {
    const result = await client().query({ query: 'SELECT number AS n, toString(number) AS s FROM numbers(3)', format: 'JSONEachRow', query_id: 'front-test-query-1' });
    expect(result.query_id).toBe('front-test-query-1');
    expect(result.response_headers['x-clickhouse-query-id']).toBe('front-test-query-1');
    expect(result.response_headers['x-clickhouse-format']).toBe('JSONEachRow');
    expect(JSON.parse(String(result.response_headers['x-clickhouse-summary']))).toMatchObject({ read_rows: '3', result_rows: '3' });
    // ClickHouse 26 writes 64-bit integers unquoted by default (output_format_json_quote_64bit_integers = 0).
    expect(await result.json()).toEqual([{ n: 0, s: '0' }, { n: 1, s: '1' }, { n: 2, s: '2' }]);
    const json = await client().query({ query: 'SELECT 1 AS one', format: 'JSON' });
    expect(((await json.json()) as { data: unknown[] }).data).toEqual([{ one: 1 }]);
  });

  it('insert: statement in the URL, rows in the body (JSONEachRow, CSV, TSV), with the summary parsed', async () => {
    const c = client();
    const inserted = await c.insert({ table: `${DB}.t`, values: [{ x: 1, s: 'a' }, { x: 2, s: "b'\\\t\n🚀" }], format: 'JSONEachRow' });
    expect(inserted.executed).toBe(true);
    expect(inserted.summary).toMatchObject({ written_rows: '0' });
    await c.insert({ table: `${DB}.t`, values: Readable.from([Buffer.from('3,"c"\n4,"d"\n')], { objectMode: false }), format: 'CSV' });
    await c.insert({ table: `${DB}.t`, values: Readable.from([Buffer.from('5\te\n')], { objectMode: false }), format: 'TabSeparated', columns: ['x', 's'] });
    const rows = await (await c.query({ query: `SELECT x, s FROM ${DB}.t WHERE x <= 5 ORDER BY x`, format: 'JSONEachRow' })).json();
    expect(rows).toEqual([{ x: 1, s: 'a' }, { x: 2, s: "b'\\\t\n🚀" }, { x: 3, s: 'c' }, { x: 4, s: 'd' }, { x: 5, s: 'e' }]);
  });

  it('command and exec: DDL in the body, exec with values in the body, the answer as a stream', async () => {
    const c = client();
    const done = await c.command({ query: `CREATE TABLE IF NOT EXISTS ${DB}.cmd (x UInt8) ENGINE = Memory` });
    expect(done.query_id).toMatch(/^[0-9a-f-]{36}$/);
    const exec = await c.exec({ query: `INSERT INTO ${DB}.cmd FORMAT JSONEachRow`, values: Buffer.from('{"x":7}\n{"x":8}\n') as unknown as never });
    exec.stream.resume();
    const out = await c.exec({ query: `SELECT sum(x) FROM ${DB}.cmd FORMAT TabSeparated` });
    let text = '';
    for await (const chunk of out.stream) text += String(chunk);
    expect(text).toBe('15\n');
  });

  it('query parameters in their escaped text, exactly: strings, arrays, maps, tuples, dates, nulls', async () => {
    const tricky = "O'Brien \\ back\\slash\ttab\nnewline 'single' \"double\" ünï 🚀 {x:String} \\N";
    const params = { s: tricky, a: [tricky, "it's", 'x'], m: { "k'1": 'v\\1' }, t: new TupleParam([1, "t'"]), d: new Date('2026-01-02T03:04:05.000Z'), n: null, i: -42, b: true };
    const sql = 'SELECT {s:String} AS s, {a:Array(String)} AS a, {m:Map(String, String)} AS m, {t:Tuple(UInt8, String)} AS t, {d:DateTime(\'UTC\')} AS d, {n:Nullable(String)} AS n, {i:Int32} AS i, {b:Bool} AS b';
    const expected = [{ s: tricky, a: [tricky, "it's", 'x'], m: { "k'1": 'v\\1' }, t: [1, "t'"], d: '2026-01-02 03:04:05', n: null, i: -42, b: true }];
    for (const options of [{}, { use_multipart_params: true }]) {
      const rows = await (await client(options).query({ query: sql, query_params: params, format: 'JSONEachRow' })).json();
      expect(rows, JSON.stringify(options)).toEqual(expected);
    }
    // The same text as chdb binds it in this process, for comparison.
    const embedded = await (await served.embedded.client.query({ query: 'SELECT {a:Array(String)} AS a', query_params: { a: ['plain'] }, format: 'JSONEachRow' })).json();
    expect(embedded).toEqual([{ a: ['plain'] }]);
  });

  it('settings as URL parameters apply to their request only', async () => {
    const c = client();
    const get = async (settings: ClickHouseSettings) => (await (await c.query({ query: "SELECT getSetting('max_threads') AS t, getSetting('output_format_json_quote_64bit_integers') AS q", format: 'JSONEachRow', clickhouse_settings: settings })).json<{ t: string; q: number }>())[0]!;
    const defaults = await get({});
    expect(defaults.q).toBe(false);
    expect(await get({ max_threads: 3, output_format_json_quote_64bit_integers: 1 })).toEqual({ t: 3, q: true });
    expect(await get({})).toEqual(defaults);
    const unknown = await c.query({ query: 'SELECT 1', clickhouse_settings: { no_such_setting: 1 } as never }).catch((e: unknown) => e);
    expect((unknown as ClickHouseError).type).toBe('UNKNOWN_SETTING');
  });

  it('database: the current database of the request', async () => {
    const rows = await (await client({ database: DB }).query({ query: 'SELECT currentDatabase() AS db, count() AS n FROM t WHERE x = 1', format: 'JSONEachRow' })).json();
    expect(rows).toEqual([{ db: DB, n: 1 }]);
    const error = await client({ database: 'no_such_db' }).query({ query: 'SELECT 1' }).catch((e: unknown) => e);
    expect((error as ClickHouseError).code).toBe('81');
  });

  it('compression: gzip request bodies and gzip answers, as the client asks for them', async () => {
    const c = client({ compression: { request: true, response: true } });
    await c.insert({ table: `${DB}.t`, values: Array.from({ length: 100 }, (_, i) => ({ x: 1_000 + i, s: 'z'.repeat(50) })), format: 'JSONEachRow' });
    const result = await c.query({ query: `SELECT count() AS n, any(s) AS s FROM ${DB}.t WHERE x >= 1000`, format: 'JSONEachRow' });
    expect(result.response_headers['content-encoding']).toBe('gzip');
    expect(await result.json()).toEqual([{ n: 100, s: 'z'.repeat(50) }]);
    const error = await c.query({ query: 'SELECT * FROM no_such_table_anywhere' }).catch((e: unknown) => e);
    expect((error as ClickHouseError).code).toBe('60');
  });

  it('errors: a ClickHouseError with the code and type, and the status the server gives the code', async () => {
    const c = client();
    const cases: Array<[string, string, string, number]> = [
      ['SELECT 1 +', '62', 'SYNTAX_ERROR', 400],
      [`SELECT * FROM ${DB}.no_such_table`, '60', 'UNKNOWN_TABLE', 404],
      ["SELECT toUInt8('x')", '6', 'CANNOT_PARSE_TEXT', 400],
      ['SELECT count() FROM numbers(100000000000) SETTINGS max_execution_time = 0.1', '159', 'TIMEOUT_EXCEEDED', 408],
    ];
    for (const [sql, code, type, status] of cases) {
      const error = await c.command({ query: sql }).catch((e: unknown) => e);
      expect(error, sql).toBeInstanceOf(ClickHouseError);
      expect((error as ClickHouseError).code).toBe(code);
      expect((error as ClickHouseError).type).toBe(type);
      const r = await raw('/', { method: 'POST', body: sql });
      expect(r.status, sql).toBe(status);
      expect(r.headers.get('x-clickhouse-exception-code')).toBe(code);
      expect(r.text).toMatch(EXCEPTION_BODY);
      expect(EXCEPTION_BODY.exec(r.text)?.slice(1, 3)).toEqual([code, type]);
    }
  });

  it('sessions: a temporary table lives across the requests of one session_id', async () => {
    const c = client({ session_id: `front-session-${Date.now()}` });
    await c.command({ query: 'CREATE TEMPORARY TABLE tmp (x UInt8)' });
    await c.command({ query: 'INSERT INTO tmp VALUES (1), (2)' });
    expect(await (await c.query({ query: 'SELECT sum(x) AS s FROM tmp', format: 'JSONEachRow' })).json()).toEqual([{ s: 3 }]);
    const other = await client().query({ query: 'SELECT * FROM tmp' }).catch((e: unknown) => e);
    expect((other as ClickHouseError).code).toBe('60');
    const missing = await raw(q('SELECT 1', { session_id: 'never-opened', session_check: '1' }));
    expect(missing.headers.get('x-clickhouse-exception-code')).toBe('372');
    const [a, b] = await Promise.all([raw(q('SELECT sleep(0.5)', { session_id: 'busy-one' })), new Promise((r) => setTimeout(r, 100)).then(() => raw(q('SELECT 1', { session_id: 'busy-one' })))]);
    expect(a.status).toBe(200);
    expect(b.headers.get('x-clickhouse-exception-code')).toBe('373');
  });
});

describe('what a hand-written request can send', () => {
  it('the statement from the query parameter, a newline, then the body', async () => {
    const r = await raw(q(`INSERT INTO ${DB}.t FORMAT JSONEachRow`), { method: 'POST', body: '{"x":20,"s":"url+body"}\n' });
    expect(r.status).toBe(200);
    expect((await raw(q(`SELECT s FROM ${DB}.t WHERE x = 20`))).text).toBe('url+body\n');
    expect((await raw(q('SELECT 1 +'), { method: 'POST', body: ' 1' })).text).toBe('2\n');
  });

  it('default_format when the statement has none (TabSeparated otherwise), with its content type', async () => {
    const tsv = await raw('/', { method: 'POST', body: "SELECT 1, 'a'" });
    expect(tsv.text).toBe('1\ta\n');
    expect(tsv.headers.get('x-clickhouse-format')).toBe('TabSeparated');
    expect(tsv.headers.get('content-type')).toContain('tab-separated-values');
    const json = await raw(q("SELECT 1 AS n, 'a' AS s", { default_format: 'JSONEachRow' }));
    expect(json.text).toBe('{"n":1,"s":"a"}\n');
    expect(json.headers.get('x-clickhouse-format')).toBe('JSONEachRow');
  });

  it('GET is read-only', async () => {
    const r = await raw(q(`INSERT INTO ${DB}.t VALUES (99, 'get')`));
    expect(r.headers.get('x-clickhouse-exception-code')).toBe('164');
    expect((await raw(q(`SELECT count() FROM ${DB}.t WHERE x = 99`), { method: 'POST' })).text).toBe('0\n');
  });

  it('compressed bodies (gzip, deflate, br), compressed answers when enable_http_compression=1, unknown codecs refused', async () => {
    const body = `INSERT INTO ${DB}.t FORMAT JSONEachRow\n{"x":30,"s":"gz"}\n`;
    expect((await raw('/', { method: 'POST', body: gzipSync(body), headers: { 'content-encoding': 'gzip' } })).status).toBe(200);
    expect((await raw('/', { method: 'POST', body: brotliCompressSync(body.replace('30', '31').replace('gz', 'br')), headers: { 'content-encoding': 'br' } })).status).toBe(200);
    expect((await raw('/', { method: 'POST', body: deflateSync(body.replace('30', '32').replace('gz', 'df')), headers: { 'content-encoding': 'deflate' } })).status).toBe(200);
    const answer = await fetch(`${front.url}${q(`SELECT s FROM ${DB}.t WHERE x IN (30, 31, 32) ORDER BY x`, { enable_http_compression: '1' })}`, { headers: { authorization: basic, 'accept-encoding': 'gzip' } });
    expect(answer.headers.get('content-encoding')).toBe('gzip');
    expect(await answer.text()).toBe('gz\nbr\ndf\n'); // fetch decompresses
    const unknown = await raw('/', { method: 'POST', body: 'SELECT 1', headers: { 'content-encoding': 'lz4' } });
    expect(unknown.headers.get('x-clickhouse-exception-code')).toBe('89');
    const corrupt = await raw('/', { method: 'POST', body: Buffer.from('not gzip at all'), headers: { 'content-encoding': 'gzip' } });
    expect(corrupt.headers.get('x-clickhouse-exception-code')).toBe('271');
    expect(gunzipSync(gzipSync('x')).toString()).toBe('x');
  });

  it('a body that is not UTF-8 is refused, and nothing of it is stored', async () => {
    const body = Buffer.concat([Buffer.from(`INSERT INTO ${DB}.t FORMAT JSONEachRow\n{"x":40,"s":"`), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]);
    const r = await raw('/', { method: 'POST', body });
    expect(r.headers.get('x-clickhouse-exception-code')).toBe('36');
    expect(r.text).toContain('not valid UTF-8');
    expect((await raw(q(`SELECT count() FROM ${DB}.t WHERE x = 40`), { method: 'POST' })).text).toBe('0\n');
  });

  it('an empty query, ClickHouse block compression and roles are refused with their codes', async () => {
    expect((await raw('/', { method: 'POST', body: '  ' })).headers.get('x-clickhouse-exception-code')).toBe('62');
    expect((await raw(q('SELECT 1', { compress: '1' }))).headers.get('x-clickhouse-exception-code')).toBe('48');
    expect((await raw(q('SELECT 1', { role: 'admin' }))).headers.get('x-clickhouse-exception-code')).toBe('511');
  });
});

describe('limits', () => {
  it('a body over body_bytes_max is refused with QUERY_IS_TOO_LARGE (413); statements over queries_concurrent_max with TOO_MANY_SIMULTANEOUS_QUERIES', async () => {
    const small = await startStoreFront(served.embedded, { port: 0, username: FRONT_USER, password: FRONT_PASSWORD, limits: { body_bytes_max: 1_024, queries_concurrent_max: 1 } });
    try {
      const big = await fetch(`${small.url}/`, { method: 'POST', headers: { authorization: basic }, body: `SELECT '${'x'.repeat(2_000)}'` });
      expect(big.status).toBe(413);
      expect(big.headers.get('x-clickhouse-exception-code')).toBe('229');
      await big.arrayBuffer();
      const slow = fetch(`${small.url}/`, { method: 'POST', headers: { authorization: basic }, body: 'SELECT sleep(1)' });
      await new Promise((resolve) => setTimeout(resolve, 200));
      const second = await fetch(`${small.url}/`, { method: 'POST', headers: { authorization: basic }, body: 'SELECT 1' });
      expect(second.headers.get('x-clickhouse-exception-code')).toBe('202');
      await second.arrayBuffer();
      expect((await slow).status).toBe(200);
    } finally {
      await small.close();
    }
  });

  it('validates its options, naming the field; serves only an embedded store', async () => {
    await expect(startStoreFront(served.embedded, { port: 70_000 })).rejects.toThrow(/port/);
    await expect(startStoreFront(served.embedded, { limits: { body_bytes_max: -1 } } as never)).rejects.toThrow(/limits\.body_bytes_max/);
    const server = await openStore(loadConfig({ overrides: { store: { url: front.url, database: DB, username: FRONT_USER, password: FRONT_PASSWORD } } }).store);
    try {
      await expect(startStoreFront(server, { port: 0 })).rejects.toBeInstanceOf(ValidationError);
    } finally {
      await server.close();
    }
  });
});

describe('the fault control endpoint', () => {
  afterAll(async () => {
    await postFault(front, { mode: 'none' });
  });

  it('listens on loopback and reports the current fault', async () => {
    expect(front.controlUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const state = (await (await fetch(`${front.controlUrl}/fault`)).json()) as Record<string, unknown>;
    expect(state).toMatchObject({ mode: 'none', what: 'all', held_requests: 0 });
    expect(state.totals).toMatchObject({ hung: expect.any(Number), errored: expect.any(Number) });
  });

  it('refuses invalid faults with 400, naming each field', async () => {
    const cases: Array<[unknown, string[]]> = [
      [{ mode: 'explode' }, ['mode']],
      [{ mode: 'hang', status: 503 }, ['status']],
      [{ mode: 'refuse', what: 'insert' }, ['what']],
      [{ mode: 'error', code: 999_999 }, ['code']],
      [{ mode: 'error', status: 200 }, ['status']],
      [{ mode: 'hang', duration_ms: -5, extra: true }, ['duration_ms', 'extra']],
      [{ mode: 'none', duration_ms: 10 }, ['duration_ms']],
    ];
    for (const [spec, fields] of cases) {
      const r = await postFault(front, spec);
      expect(r.status, JSON.stringify(spec)).toBe(400);
      expect((r.body.field_errors as Array<{ path: string }>).map((e) => e.path).sort(), JSON.stringify(spec)).toEqual(fields.sort());
      expect(String(r.body.error)).toMatch(/^fault is invalid: /);
    }
    const notJson = await fetch(`${front.controlUrl}/fault`, { method: 'POST', body: '{mode' });
    expect(notJson.status).toBe(400);
    await notJson.arrayBuffer();
    expect(front.faultState().mode).toBe('none');
  });

  it('a fault ends by itself after duration_ms', async () => {
    const set = await postFault(front, { mode: 'error', code: 252, duration_ms: 300 });
    expect(set.body).toMatchObject({ mode: 'error', code: 252, name: 'TOO_MANY_PARTS', status: 500, duration_ms: 300 });
    expect((await raw(q('SELECT 1'))).headers.get('x-clickhouse-exception-code')).toBe('252');
    for (let i = 0; i < 500 && front.faultState().mode !== 'none'; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(front.faultState().mode).toBe('none');
    expect((await raw(q('SELECT 1'))).text).toBe('1\n');
  });

  it('refuse stops listening (connections refused) and listens again on the same port when it ends', async () => {
    const before = front.url;
    await postFault(front, { mode: 'refuse', duration_ms: 400 });
    const refused = await fetch(`${front.url}/ping`).catch((e: unknown) => e);
    expect((refused as { cause?: { code?: string } }).cause?.code).toBe('ECONNREFUSED');
    let answered = false;
    for (let i = 0; i < 200 && !answered; i++) {
      answered = await fetch(`${front.url}/ping`).then((r) => r.ok, () => false);
      if (!answered) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(answered).toBe(true);
    expect(front.url).toBe(before);
  });

  it('hang holds requests (ping included with what=all) until the fault ends, then closes them', async () => {
    await postFault(front, { mode: 'hang' });
    const pending = fetch(`${front.url}/ping`).then(() => 'answered', (e: unknown) => `failed: ${(e as Error).message}`);
    for (let i = 0; i < 200 && front.faultState().held_requests === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(front.faultState().held_requests).toBe(1);
    const cleared = await postFault(front, { mode: 'none' });
    expect(cleared.body).toMatchObject({ mode: 'none', held_requests: 0 });
    expect(await pending).toMatch(/^failed/);
    expect((await raw('/ping')).text).toBe('Ok.\n');
  });

  it('what: select hits queries and leaves inserts alone; a bare status answers like a proxy', async () => {
    await postFault(front, { mode: 'error', status: 503, what: 'select' });
    const select = await raw('/', { method: 'POST', body: 'SELECT 1' });
    expect(select.status).toBe(503);
    expect(select.headers.get('x-clickhouse-exception-code')).toBeNull();
    expect(select.text).not.toMatch(/^Code:/);
    const insert = await raw(q(`INSERT INTO ${DB}.t FORMAT JSONEachRow`), { method: 'POST', body: '{"x":50,"s":"during"}\n' });
    expect(insert.status).toBe(200);
    await postFault(front, { mode: 'none' });
    expect((await raw(q(`SELECT s FROM ${DB}.t WHERE x = 50`))).text).toBe('during\n');
  });
});

describe('shutdown', () => {
  it('close() lets a running request finish, then refuses connections', async () => {
    const extra = await startStoreFront(served.embedded, { port: 0, username: FRONT_USER, password: FRONT_PASSWORD });
    const running = fetch(`${extra.url}/`, { method: 'POST', headers: { authorization: basic }, body: 'SELECT sleep(0.5), 7' }).then(async (r) => ({ status: r.status, text: await r.text() }));
    await new Promise((resolve) => setTimeout(resolve, 150));
    await extra.close();
    expect(await running).toEqual({ status: 200, text: '0\t7\n' });
    const after = await fetch(`${extra.url}/ping`).catch((e: unknown) => e);
    expect((after as { cause?: { code?: string } }).cause?.code).toBe('ECONNREFUSED');
  });
});
