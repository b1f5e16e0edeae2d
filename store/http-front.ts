/**
 * `lattice store serve`: ClickHouse's HTTP interface over the embedded engine, so several local
 * processes can share one embedded store through @clickhouse/client's HTTP path (one process owns
 * a chdb data directory; the others reach it over HTTP). Also the store's fault injector: a
 * control endpoint on loopback makes it refuse connections, hang requests or answer errors.
 *
 * What a request becomes, as ClickHouse's HTTP server does it:
 * - the statement is the `query` URL parameter, a newline, then the body (so an INSERT carries its
 *   statement in the URL and its rows in the body); GET reads only the URL and runs read-only
 *   (`readonly = 2`); `multipart/form-data` bodies (the client's `use_multipart_params`) give
 *   `query` and `param_*` fields;
 * - `database` is the current database, `default_format` the output format when the statement
 *   has no FORMAT clause (TabSeparated), `query_id` is echoed (a UUID when absent),
 *   `session_id`/`session_timeout`/`session_check` keep a session, `param_<name>` are query
 *   parameters in ClickHouse's escaped text form, and every other URL parameter is a setting;
 * - credentials come from basic auth, `X-ClickHouse-User`/`X-ClickHouse-Key` or `user`/`password`;
 * - request bodies may be `Content-Encoding: gzip|deflate|br` (not zstd: Node 20 has no zstd); with
 *   `enable_http_compression=1` the response is compressed with what `Accept-Encoding` allows;
 * - answers carry `X-ClickHouse-Query-Id`, `-Format`, `-Timezone`, `-Summary`; errors carry
 *   `X-ClickHouse-Exception-Code`, the status ClickHouse gives that code
 *   (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp) and the body
 *   `Code: N. DB::Exception: ... (NAME) (version V)`, which @clickhouse/client parses into a
 *   ClickHouseError with `.code` and `.type`.
 *
 * Each request runs on its own chdb session (a native connection to the same data directory,
 * with its own settings and parameters — what a server's per-query context is), so settings and
 * parameters never leak between requests. Parameters are handed over as `SET param_x = '<text>'`:
 * the engine then parses exactly the text the client sent, with the placeholder's type.
 * (@clickhouse/client over chdb's connection would escape that text a second time.)
 *
 * Differences from a server, all from the embedded engine: results and request bodies are
 * buffered, not streamed (bounded by `body_bytes_max`); bodies must be UTF-8 (the engine takes
 * statement and inline data as one string), so binary input formats (RowBinary, Native, Parquet)
 * are refused; ClickHouse's own `compress`/`decompress` block compression is not implemented;
 * X-ClickHouse-Summary has the engine's read/result counters but 0 written rows (the engine does
 * not report them through this API); multi-statement queries run as chdb runs them.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { hostname } from 'node:os';
import zlib from 'node:zlib';
import { Session } from 'chdb';
import { z } from 'zod';
import { ValidationError, type FieldError } from '../core/errors.ts';
import { silentLogger, type Logger } from '../core/logging.ts';
import type { Store } from './client.ts';

// ---------------------------------------------------------------------------------------------
// Options and the fault control API.

export const storeFrontLimitsSchema = z
  .object({
    /** Largest request body, after decompression. */
    body_bytes_max: z.number().int().positive().default(256 * 1024 * 1024),
    /** Statements running at once; more are answered TOO_MANY_SIMULTANEOUS_QUERIES (202). */
    queries_concurrent_max: z.number().int().positive().max(1024).default(32),
    /** Open HTTP sessions (`session_id`). */
    sessions_max: z.number().int().positive().default(256),
    /** Longest `session_timeout` a client may ask for. */
    session_timeout_s_max: z.number().int().positive().default(3_600),
    /** How long close() waits for running requests before cutting them off. */
    shutdown_grace_ms: z.number().int().nonnegative().default(10_000),
    /** Idle keep-alive connections are closed after this (the server's keep_alive_timeout). */
    keep_alive_timeout_ms: z.number().int().positive().default(10_000),
  })
  .strict();
export type StoreFrontLimits = z.infer<typeof storeFrontLimitsSchema>;

const port = z.number().int().min(0).max(65_535);

export const storeFrontOptionsSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1'),
    /** 0: any free port (the URL says which). */
    port: port.default(8123),
    /** The fault control endpoint, always on 127.0.0.1; absent: no control endpoint. */
    control_port: port.optional(),
    username: z.string().min(1).default('default'),
    password: z.string().default(''),
    limits: storeFrontLimitsSchema.prefault({}),
  })
  .strict();
export type StoreFrontOptions = z.input<typeof storeFrontOptionsSchema>;

export const FAULT_MODES = ['none', 'refuse', 'hang', 'error'] as const;
export type FaultMode = (typeof FAULT_MODES)[number];
export type FaultTarget = 'all' | 'insert' | 'select';

/** The body of `POST /fault` on the control port. */
export const faultSpecSchema = z
  .object({
    mode: z.enum(FAULT_MODES),
    /** The fault ends by itself after this long; absent: until `{ "mode": "none" }`. */
    duration_ms: z.number().int().positive().max(24 * 3_600_000).optional(),
    /** `error` only: the HTTP status (default: what ClickHouse gives the code, or 500 without one). */
    status: z.number().int().min(400).max(599).optional(),
    /** `error` only: the ClickHouse error code; absent: a bare status with a non-ClickHouse body, as a proxy answers. */
    code: z.number().int().positive().optional(),
    /** Which requests the fault hits: statements starting with INSERT, all others, or everything (pings too). */
    what: z.enum(['all', 'insert', 'select']).optional(),
  })
  .strict();
export type FaultSpec = z.infer<typeof faultSpecSchema>;

/** What `GET /fault` and `POST /fault` answer. */
export interface FaultState {
  readonly mode: FaultMode;
  readonly what: FaultTarget;
  readonly status?: number;
  readonly code?: number;
  readonly name?: string;
  readonly duration_ms?: number;
  readonly remaining_ms?: number;
  readonly started_at?: string;
  /** Requests held right now by `hang`. */
  readonly held_requests: number;
  /** Since start: requests held by `hang`, answered by `error`, connections cut by `refuse`. */
  readonly totals: { readonly hung: number; readonly errored: number; readonly connections_refused_cut: number };
}

export interface StoreFront {
  /** http://host:port of the ClickHouse HTTP interface. */
  readonly url: string;
  /** http://127.0.0.1:port of the fault control endpoint, if enabled. */
  readonly controlUrl: string | undefined;
  readonly faultState: () => FaultState;
  /** The same as `POST /fault` (validated the same way). */
  setFault(spec: unknown): Promise<FaultState>;
  /** Stops listening, lets running requests finish (bounded), closes its sessions. Does not close the store. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// ClickHouse's status for an exception code (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp), by name.

const STATUS_BY_ERROR_NAME: ReadonlyArray<readonly [number, readonly string[]]> = [
  [401, ['REQUIRED_PASSWORD']],
  [403, ['UNKNOWN_USER', 'WRONG_PASSWORD', 'AUTHENTICATION_FAILED', 'SET_NON_GRANTED_ROLE', 'ACCESS_DENIED']],
  [
    400,
    [
      'BAD_ARGUMENTS', 'CANNOT_COMPILE_REGEXP', 'CANNOT_PARSE_TEXT', 'CANNOT_PARSE_ESCAPE_SEQUENCE', 'CANNOT_PARSE_QUOTED_STRING',
      'CANNOT_PARSE_DATE', 'CANNOT_PARSE_DATETIME', 'CANNOT_PARSE_NUMBER', 'CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING', 'CANNOT_PARSE_IPV4',
      'CANNOT_PARSE_IPV6', 'CANNOT_PARSE_INPUT_ASSERTION_FAILED', 'CANNOT_PARSE_UUID', 'DUPLICATE_COLUMN', 'ILLEGAL_COLUMN',
      'UNKNOWN_ELEMENT_IN_AST', 'UNKNOWN_TYPE_OF_AST_NODE', 'THERE_IS_NO_COLUMN', 'TOO_DEEP_AST', 'TOO_BIG_AST', 'UNEXPECTED_AST_STRUCTURE',
      'SYNTAX_ERROR', 'INCORRECT_DATA', 'TYPE_MISMATCH', 'VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE',
    ],
  ],
  [
    404,
    [
      'UNKNOWN_TABLE', 'UNKNOWN_FUNCTION', 'UNKNOWN_IDENTIFIER', 'UNKNOWN_TYPE', 'UNKNOWN_STORAGE', 'UNKNOWN_DATABASE', 'UNKNOWN_SETTING',
      'UNKNOWN_DIRECTION_OF_SORTING', 'UNKNOWN_AGGREGATE_FUNCTION', 'UNKNOWN_FORMAT', 'UNKNOWN_DATABASE_ENGINE', 'UNKNOWN_TYPE_OF_QUERY', 'UNKNOWN_ROLE',
    ],
  ],
  [413, ['QUERY_IS_TOO_LARGE']],
  [501, ['NOT_IMPLEMENTED']],
  [503, ['SOCKET_TIMEOUT', 'CANNOT_OPEN_FILE', 'CANNOT_SCHEDULE_TASK']],
  [411, ['HTTP_LENGTH_REQUIRED']],
  [408, ['TIMEOUT_EXCEEDED']],
  [415, ['UNSUPPORTED_MEDIA_TYPE']],
];

/** The engine's error codes and names (`system.errors`), its version and time zone. */
interface EngineFacts {
  readonly version: string;
  readonly timezone: string;
  readonly nameOf: ReadonlyMap<number, string>;
  readonly codeOf: ReadonlyMap<string, number>;
  readonly statusOf: ReadonlyMap<number, number>;
}

async function engineFacts(dataDir: string): Promise<EngineFacts> {
  const session = new Session(dataDir);
  try {
    const [about] = (await session.queryAsync('SELECT version() AS version, timezone() AS timezone', { format: 'JSONEachRow' })).text().trim().split('\n').map((l) => JSON.parse(l) as { version: string; timezone: string });
    const rows = (await session.queryAsync('SELECT DISTINCT code, name FROM system.errors SETTINGS system_events_show_zero_values = 1', { format: 'JSONEachRow' })).text().trim().split('\n').map((l) => JSON.parse(l) as { code: number; name: string });
    const nameOf = new Map(rows.map((r) => [Number(r.code), r.name]));
    const codeOf = new Map(rows.map((r) => [r.name, Number(r.code)]));
    const statusOf = new Map<number, number>();
    for (const [status, names] of STATUS_BY_ERROR_NAME) for (const name of names) if (codeOf.has(name)) statusOf.set(codeOf.get(name)!, status);
    return { version: about!.version, timezone: about!.timezone, nameOf, codeOf, statusOf };
  } finally {
    session.close();
  }
}

/** An exception as the server reports it: code, ClickHouse's name for it, message, HTTP status. */
class HttpException {
  constructor(
    readonly code: number,
    readonly message: string,
  ) {}
}

// ---------------------------------------------------------------------------------------------
// The request pipeline.

const RESERVED_PARAMS = new Set([
  'query', 'database', 'default_format', 'query_id', 'session_id', 'session_timeout', 'session_check', 'user', 'password', 'quota_key',
  'buffer_size', 'wait_end_of_query', 'compress', 'decompress', 'role', 'stacktrace', 'client_protocol_version', 'close_session',
]);
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DEFAULT_FORMAT = 'TabSeparated';
const REQUEST_CODECS = new Set(['gzip', 'x-gzip', 'deflate', 'br']);
const RESPONSE_CODECS = ['gzip', 'deflate', 'br'];

interface ParsedRequest {
  readonly queryId: string;
  readonly statement: string;
  readonly database: string | undefined;
  readonly format: string;
  readonly settings: ReadonlyArray<readonly [string, string]>;
  readonly params: ReadonlyArray<readonly [string, string]>;
  readonly readonly: boolean;
  readonly session: { id: string; timeoutS: number; check: boolean } | undefined;
  readonly compressResponse: { codec: string; level: number } | undefined;
}

interface HttpSession {
  readonly session: Session;
  busy: boolean;
  timeoutMs: number;
  timer: NodeJS.Timeout | undefined;
}

interface HeldRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
}

interface ActiveFault {
  readonly spec: FaultSpec & { what: FaultTarget };
  readonly name: string | undefined;
  readonly startedAt: number;
  readonly timer: NodeJS.Timeout | undefined;
}

export async function startStoreFront(store: Store, input: StoreFrontOptions = {}, logger: Logger = silentLogger): Promise<StoreFront> {
  if (store.kind !== 'embedded') throw new ValidationError('store serve options', [{ path: 'store', message: `serves the embedded store only (this one is a ${store.kind} store at ${store.location})` }]);
  const options = parseOrThrow(storeFrontOptionsSchema, input, 'store serve options');
  const { limits } = options;
  const dataDir = store.location;
  const engine = await engineFacts(dataDir);
  const serverName = hostname();

  const sockets = new Set<Socket>();
  const held = new Set<HeldRequest>();
  const sessions = new Map<string, HttpSession>();
  let running = 0;
  let inFlight = 0;
  let closing = false;
  let fault: ActiveFault | undefined;
  const totals = { hung: 0, errored: 0, connections_refused_cut: 0 };

  const server: Server = createServer({ keepAliveTimeout: limits.keep_alive_timeout_ms, requestTimeout: 0 }, (req, res) => {
    inFlight++;
    res.once('close', () => inFlight--);
    handle(req, res).catch((error: unknown) => {
      // A client that went away mid-request is not the front's failure.
      if (req.destroyed || res.destroyed) return logger.debug('store front: request abandoned by the client', { error });
      logger.error('store front: request failed', { error });
      if (!res.headersSent) sendException(res, randomUUID(), new HttpException(engine.codeOf.get('STD_EXCEPTION') ?? 1001, (error as Error).message), undefined);
      else res.destroy();
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_error, socket) => socket.destroy());

  let boundPort: number | undefined;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: boundPort ?? options.port, host: options.host }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen();
  boundPort = (server.address() as AddressInfo).port;
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${boundPort}`;

  // ---- the handler -----------------------------------------------------------------------

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestUrl = new URL(req.url ?? '/', 'http://front');
    const search = requestUrl.searchParams;
    const queryId = search.get('query_id') || randomUUID();
    const path = requestUrl.pathname;
    const method = req.method ?? 'GET';

    const isPing = path === '/ping' || path === '/replicas_status' || (path === '/' && (method === 'GET' || method === 'HEAD') && !search.has('query'));
    if (isPing) {
      req.resume();
      if (await faulted(req, res, 'ping', queryId)) return;
      res.writeHead(200, { 'Content-Type': 'text/html; charset=UTF-8', ...keepAliveHeaders() });
      res.end(method === 'HEAD' ? undefined : 'Ok.\n');
      return;
    }
    if (path !== '/') {
      req.resume();
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=UTF-8', ...keepAliveHeaders() });
      res.end(`There is no handle ${path}\n\nUse / or /ping for health checks.\nSend queries with POST / or GET /?query=...\n`);
      return;
    }
    if (method !== 'GET' && method !== 'POST') {
      req.resume();
      return sendException(res, queryId, exception('UNSUPPORTED_METHOD', `HTTP method ${method} is not supported; use GET or POST`), undefined, 405);
    }

    const user = credentials(req, search);
    if (!user.ok) {
      req.resume();
      return sendException(res, queryId, exception('AUTHENTICATION_FAILED', `${user.name}: Authentication failed: password is incorrect, or there is no user with such name.`), undefined);
    }

    let body: Buffer;
    try {
      body = method === 'POST' ? await readBody(req) : Buffer.alloc(0);
    } catch (error) {
      if (error instanceof HttpException) {
        res.setHeader('Connection', 'close');
        return sendException(res, queryId, error, undefined);
      }
      throw error;
    }

    let parsed: ParsedRequest;
    try {
      parsed = parseRequest(req, search, body, queryId);
    } catch (error) {
      if (error instanceof HttpException) return sendException(res, queryId, error, undefined);
      throw error;
    }
    if (await faulted(req, res, startsWithInsert(parsed.statement) ? 'insert' : 'select', queryId)) return;
    if (running >= limits.queries_concurrent_max) {
      return sendException(res, queryId, exception('TOO_MANY_SIMULTANEOUS_QUERIES', `Too many simultaneous queries. Maximum: ${limits.queries_concurrent_max}`), undefined);
    }
    running++;
    try {
      await execute(res, parsed);
    } finally {
      running--;
    }
  }

  async function execute(res: ServerResponse, request: ParsedRequest): Promise<void> {
    let httpSession: HttpSession | undefined;
    let session: Session;
    try {
      httpSession = request.session === undefined ? undefined : acquireSession(request.session);
      session = httpSession?.session ?? new Session(dataDir);
    } catch (error) {
      if (error instanceof HttpException) return sendException(res, request.queryId, error, undefined);
      throw error;
    }
    try {
      // GET is read-only (readonly = 2, as the server does); then the URL's settings, then the parameters.
      const changes = [...(request.readonly ? [['readonly', '2'] as const] : []), ...request.settings, ...request.params.map(([k, v]) => [`param_${k}`, v] as const)];
      if (request.database !== undefined) await session.queryAsync(`USE ${quoteIdentifier(request.database)}`);
      if (changes.length > 0) await session.queryAsync(`SET ${changes.map(([k, v]) => `${k} = ${quoteString(v)}`).join(', ')}`);
      const started = process.hrtime.bigint();
      const result = await session.queryAsync(request.statement, { format: request.format });
      const bytes = result.bytes();
      let payload: Buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const format = outputFormatOf(request.statement, request.format);
      const headers: Record<string, string> = {
        'Content-Type': contentTypeOf(format),
        'X-ClickHouse-Query-Id': request.queryId,
        'X-ClickHouse-Format': format,
        'X-ClickHouse-Timezone': engine.timezone,
        'X-ClickHouse-Server-Display-Name': serverName,
        'X-ClickHouse-Summary': JSON.stringify({
          read_rows: String(result.rowsRead),
          read_bytes: String(result.bytesRead),
          written_rows: '0',
          written_bytes: '0',
          total_rows_to_read: '0',
          result_rows: String(result.rowsRead),
          result_bytes: String(result.bytesRead),
          elapsed_ns: String(Math.round(result.elapsed * 1e9) || Number(process.hrtime.bigint() - started)),
        }),
        ...keepAliveHeaders(),
      };
      if (request.compressResponse !== undefined) {
        payload = compress(payload, request.compressResponse);
        headers['Content-Encoding'] = request.compressResponse.codec;
      }
      headers['Content-Length'] = String(payload.length);
      res.writeHead(200, headers);
      res.end(payload);
    } catch (error) {
      sendException(res, request.queryId, engineException(error), request.compressResponse);
    } finally {
      if (httpSession === undefined) session.close();
      else releaseSession(request.session!.id, httpSession);
    }
  }

  // ---- parsing ---------------------------------------------------------------------------

  function parseRequest(req: IncomingMessage, search: URLSearchParams, body: Buffer, queryId: string): ParsedRequest {
    const fields = new Map<string, string>();
    let bodyText = '';
    const contentType = req.headers['content-type'] ?? '';
    if (/^multipart\/form-data/i.test(contentType)) {
      for (const [name, value] of parseMultipart(body, contentType)) fields.set(name, value);
    } else {
      bodyText = utf8(body);
    }
    const get = (name: string) => fields.get(name) ?? search.get(name) ?? undefined;
    if (get('compress') === '1' || get('decompress') === '1') throw exception('NOT_IMPLEMENTED', "ClickHouse's own block compression (compress=1 / decompress=1) is not implemented by the embedded front; use HTTP compression (Content-Encoding, enable_http_compression=1)");
    if (search.getAll('role').length > 0) throw exception('UNKNOWN_ROLE', 'the embedded store has no roles');
    const queryParam = get('query') ?? '';
    const statement = (queryParam === '' ? '' : `${queryParam}\n`) + bodyText;
    if (statement.trim() === '') throw exception('SYNTAX_ERROR', 'Empty query');
    const settings: Array<[string, string]> = [];
    const params: Array<[string, string]> = [];
    const all = [...search.entries(), ...fields.entries()];
    for (const [name, value] of all) {
      if (name.startsWith('param_')) {
        const key = name.slice('param_'.length);
        if (!IDENTIFIER.test(key)) throw exception('BAD_ARGUMENTS', `Invalid query parameter name ${JSON.stringify(key)}`);
        params.push([key, value]);
      } else if (!RESERVED_PARAMS.has(name)) {
        if (!IDENTIFIER.test(name)) throw exception('UNKNOWN_SETTING', `Unknown setting '${name}'`);
        settings.push([name, value]);
      }
    }
    const setting = (name: string) => settings.find(([k]) => k === name)?.[1];
    const database = get('database');
    if (database !== undefined && database === '') throw exception('UNKNOWN_DATABASE', 'Database name is empty');
    const format = get('default_format') || DEFAULT_FORMAT;
    if (!IDENTIFIER.test(format)) throw exception('UNKNOWN_FORMAT', `Unknown format ${format}`);
    const sessionId = get('session_id');
    let session: ParsedRequest['session'];
    if (sessionId !== undefined && sessionId !== '') {
      const timeoutRaw = get('session_timeout');
      const timeoutS = timeoutRaw === undefined ? 60 : Number(timeoutRaw);
      if (!Number.isInteger(timeoutS) || timeoutS <= 0 || timeoutS > limits.session_timeout_s_max) throw exception('INVALID_SESSION_TIMEOUT', `Invalid session timeout: '${timeoutRaw}' (1..${limits.session_timeout_s_max} s)`);
      session = { id: sessionId, timeoutS, check: get('session_check') === '1' };
    }
    const compression = setting('enable_http_compression');
    const compressResponse = compression === '1' || compression === 'true' ? negotiateCompression(req.headers['accept-encoding'], setting('http_zlib_compression_level')) : undefined;
    return { queryId, statement, database, format, settings, params, readonly: req.method === 'GET', session, compressResponse };
  }

  async function readBody(req: IncomingMessage): Promise<Buffer> {
    const encoding = String(req.headers['content-encoding'] ?? '').trim().toLowerCase();
    let source: NodeJS.ReadableStream = req;
    if (encoding !== '' && encoding !== 'identity' && encoding !== 'none') {
      if (!REQUEST_CODECS.has(encoding)) {
        req.resume();
        throw exception('UNKNOWN_COMPRESSION_METHOD', `Unknown HTTP compression method ${JSON.stringify(encoding)}; supported: ${[...REQUEST_CODECS].join(', ')}`);
      }
      const decoder = encoding === 'br' ? zlib.createBrotliDecompress() : encoding === 'deflate' ? zlib.createInflate() : zlib.createGunzip();
      req.on('error', (error) => decoder.destroy(error));
      source = req.pipe(decoder);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > limits.body_bytes_max) {
          req.resume();
          throw exception('QUERY_IS_TOO_LARGE', `Request body larger than body_bytes_max (${limits.body_bytes_max} bytes)`);
        }
        chunks.push(chunk);
      }
    } catch (error) {
      if (error instanceof HttpException) throw error;
      if (source !== req) throw exception('CANNOT_DECOMPRESS', `Cannot decompress the request body (${encoding}): ${(error as Error).message}`);
      throw error;
    }
    return Buffer.concat(chunks, size);
  }

  function credentials(req: IncomingMessage, search: URLSearchParams): { ok: boolean; name: string } {
    let name = 'default';
    let password = '';
    const authorization = req.headers.authorization;
    if (typeof authorization === 'string' && /^basic /i.test(authorization)) {
      const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      name = colon < 0 ? decoded : decoded.slice(0, colon);
      password = colon < 0 ? '' : decoded.slice(colon + 1);
    } else if (typeof authorization === 'string') {
      return { ok: false, name: 'default' };
    } else if (req.headers['x-clickhouse-user'] !== undefined) {
      name = String(req.headers['x-clickhouse-user']);
      password = String(req.headers['x-clickhouse-key'] ?? '');
    } else if (search.has('user')) {
      name = search.get('user')!;
      password = search.get('password') ?? '';
    }
    return { ok: sameSecret(name, options.username) && sameSecret(password, options.password), name };
  }

  // ---- sessions (session_id) -------------------------------------------------------------

  function acquireSession(spec: NonNullable<ParsedRequest['session']>): HttpSession {
    let entry = sessions.get(spec.id);
    if (entry === undefined) {
      if (spec.check) throw exception('SESSION_NOT_FOUND', `Session ${spec.id} not found`);
      if (sessions.size >= limits.sessions_max) throw exception('USER_SESSION_LIMIT_EXCEEDED', `Too many sessions (sessions_max ${limits.sessions_max})`);
      entry = { session: new Session(dataDir), busy: false, timeoutMs: spec.timeoutS * 1000, timer: undefined };
      sessions.set(spec.id, entry);
    }
    if (entry.busy) throw exception('SESSION_IS_LOCKED', `Session ${spec.id} is locked by a concurrent client.`);
    entry.busy = true;
    entry.timeoutMs = spec.timeoutS * 1000;
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    entry.timer = undefined;
    return entry;
  }

  function releaseSession(id: string, entry: HttpSession): void {
    entry.busy = false;
    if (closing) return;
    entry.timer = setTimeout(() => {
      if (sessions.get(id) !== entry || entry.busy) return;
      sessions.delete(id);
      entry.session.close();
    }, entry.timeoutMs);
    entry.timer.unref();
  }

  // ---- faults ----------------------------------------------------------------------------

  /** Applies the current fault to a request: true when the fault answered (or holds) it. */
  async function faulted(req: IncomingMessage, res: ServerResponse, kind: 'ping' | 'insert' | 'select', queryId: string): Promise<boolean> {
    const current = fault;
    if (current === undefined || current.spec.mode === 'none' || current.spec.mode === 'refuse') return false;
    const what = current.spec.what;
    if (what !== 'all' && what !== kind) return false;
    if (current.spec.mode === 'hang') {
      totals.hung++;
      const entry: HeldRequest = { req, res };
      held.add(entry);
      res.once('close', () => held.delete(entry));
      return true;
    }
    totals.errored++;
    const status = current.spec.status ?? (current.spec.code === undefined ? 500 : engine.statusOf.get(current.spec.code) ?? 500);
    if (current.spec.code === undefined) {
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=UTF-8', ...keepAliveHeaders() });
      res.end(`${status} ${STATUS_TEXT[status] ?? 'Error'} (fault injected by lattice store serve)\n`);
      return true;
    }
    sendException(res, queryId, new HttpException(current.spec.code, `${current.name ?? 'UNKNOWN_EXCEPTION'} injected by lattice store serve (fault mode error)`), undefined, status);
    return true;
  }

  // Fault changes run one at a time (a change may have to stop or restart listening).
  let faultChain: Promise<unknown> = Promise.resolve();
  function setFault(input: unknown): Promise<FaultState> {
    const next = faultChain.then(() => applyFault(input));
    faultChain = next.catch(() => undefined);
    return next;
  }

  async function applyFault(input: unknown): Promise<FaultState> {
    const spec = parseOrThrow(faultSpecSchema, input, 'fault');
    const problems: FieldError[] = [];
    if (spec.mode !== 'error' && spec.status !== undefined) problems.push({ path: 'status', message: `only for mode "error" (mode is "${spec.mode}")` });
    if (spec.mode !== 'error' && spec.code !== undefined) problems.push({ path: 'code', message: `only for mode "error" (mode is "${spec.mode}")` });
    if (spec.mode === 'refuse' && spec.what !== undefined && spec.what !== 'all') problems.push({ path: 'what', message: 'refuse stops listening, so it can only be "all"' });
    if (spec.mode === 'none' && spec.duration_ms !== undefined) problems.push({ path: 'duration_ms', message: 'not for mode "none"' });
    if (spec.code !== undefined && !engine.nameOf.has(spec.code)) problems.push({ path: 'code', message: `${spec.code} is not a ClickHouse error code this engine knows` });
    if (problems.length > 0) throw new ValidationError('fault', problems);
    if (closing) throw new ValidationError('fault', [{ path: 'mode', message: 'the store front is closing' }]);

    const previous = fault;
    if (previous?.timer !== undefined) clearTimeout(previous.timer);
    fault = undefined;
    if (previous?.spec.mode === 'hang') releaseHeld();
    if (previous?.spec.mode === 'refuse' && spec.mode !== 'refuse') await listen();
    if (spec.mode === 'none') {
      logger.info('store front: fault cleared', { previous: previous?.spec.mode });
      return faultState();
    }
    if (spec.mode === 'refuse' && previous?.spec.mode !== 'refuse') await stopListening();
    const timer = spec.duration_ms === undefined ? undefined : setTimeout(() => void endFault(active), spec.duration_ms);
    const active: ActiveFault = { spec: { ...spec, what: spec.what ?? 'all' }, name: spec.code === undefined ? undefined : engine.nameOf.get(spec.code), startedAt: Date.now(), timer };
    fault = active;
    logger.info('store front: fault set', { fault: spec });
    return faultState();
  }

  async function endFault(active: ActiveFault): Promise<void> {
    if (fault !== active) return;
    try {
      await setFault({ mode: 'none' });
    } catch (error) {
      logger.error('store front: could not end the fault', { error });
    }
  }

  async function stopListening(): Promise<void> {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) {
      totals.connections_refused_cut++;
      socket.destroy();
    }
    await closed;
  }

  function releaseHeld(): void {
    for (const { req, res } of held) {
      req.socket.destroy();
      res.destroy();
    }
    held.clear();
  }

  function faultState(): FaultState {
    const current = fault;
    const base = { held_requests: held.size, totals: { ...totals } };
    if (current === undefined) return { mode: 'none', what: 'all', ...base };
    const { spec } = current;
    const status = spec.mode === 'error' ? (spec.status ?? (spec.code === undefined ? 500 : engine.statusOf.get(spec.code) ?? 500)) : undefined;
    return {
      mode: spec.mode,
      what: spec.what,
      ...(status !== undefined && { status }),
      ...(spec.code !== undefined && { code: spec.code }),
      ...(current.name !== undefined && { name: current.name }),
      ...(spec.duration_ms !== undefined && { duration_ms: spec.duration_ms, remaining_ms: Math.max(0, current.startedAt + spec.duration_ms - Date.now()) }),
      started_at: new Date(current.startedAt).toISOString(),
      ...base,
    };
  }

  // ---- answers ---------------------------------------------------------------------------

  function exception(name: string, message: string): HttpException {
    return new HttpException(engine.codeOf.get(name) ?? 1001, message);
  }

  function engineException(error: unknown): HttpException {
    const message = error instanceof Error ? error.message : String(error);
    const code = (error as { clickhouseCode?: unknown }).clickhouseCode;
    return new HttpException(typeof code === 'number' ? code : (engine.codeOf.get('STD_EXCEPTION') ?? 1001), message);
  }

  function sendException(res: ServerResponse, queryId: string, error: HttpException, compression: ParsedRequest['compressResponse'], status?: number): void {
    const name = engine.nameOf.get(error.code) ?? 'UNKNOWN_EXCEPTION';
    const text = error.message.trim();
    // The engine's messages already read `Code: N. DB::Exception: ... (NAME)`; ours get the same shape.
    const body = `${/^Code: \d+\./.test(text) ? text : `Code: ${error.code}. DB::Exception: ${text.replace(/\.$/, '')}. (${name})`} (version ${engine.version})\n`;
    let payload: Buffer = Buffer.from(body, 'utf8');
    const headers: Record<string, string> = {
      'Content-Type': 'text/plain; charset=UTF-8',
      'X-ClickHouse-Query-Id': queryId,
      'X-ClickHouse-Exception-Code': String(error.code),
      'X-ClickHouse-Timezone': engine.timezone,
      'X-ClickHouse-Server-Display-Name': serverName,
      ...keepAliveHeaders(),
    };
    if (compression !== undefined) {
      payload = compress(payload, compression);
      headers['Content-Encoding'] = compression.codec;
    }
    headers['Content-Length'] = String(payload.length);
    res.writeHead(status ?? engine.statusOf.get(error.code) ?? 500, headers);
    res.end(payload);
  }

  function keepAliveHeaders(): Record<string, string> {
    return closing ? { Connection: 'close' } : { 'Keep-Alive': `timeout=${Math.floor(limits.keep_alive_timeout_ms / 1000)}` };
  }

  // ---- control endpoint ------------------------------------------------------------------

  let control: Server | undefined;
  let controlUrl: string | undefined;
  if (options.control_port !== undefined) {
    control = createServer((req, res) => {
      void handleControl(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      control!.once('error', reject);
      control!.listen({ port: options.control_port, host: '127.0.0.1' }, () => resolve());
    });
    controlUrl = `http://127.0.0.1:${(control.address() as AddressInfo).port}`;
  }

  async function handleControl(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = (status: number, value: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json; charset=UTF-8' });
      res.end(`${JSON.stringify(value)}\n`);
    };
    const remote = req.socket.remoteAddress ?? '';
    if (!['127.0.0.1', '::1', '::ffff:127.0.0.1'].includes(remote)) return reply(403, { error: 'the control endpoint answers loopback only' });
    const path = new URL(req.url ?? '/', 'http://control').pathname;
    if (path !== '/fault') return reply(404, { error: `no ${path} here: GET /fault, POST /fault {"mode": "none"|"refuse"|"hang"|"error", "duration_ms"?, "status"?, "code"?, "what"?}` });
    if (req.method === 'GET') return reply(200, faultState());
    if (req.method !== 'POST') return reply(405, { error: 'GET or POST /fault' });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > 64 * 1024) return reply(413, { error: 'a fault is a small JSON object (at most 64 KiB)' });
      chunks.push(chunk);
    }
    let spec: unknown;
    try {
      spec = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (error) {
      return reply(400, { error: `fault is invalid: (root): not JSON: ${(error as Error).message}`, field_errors: [{ path: '', message: 'not JSON' }] });
    }
    try {
      return reply(200, await setFault(spec));
    } catch (error) {
      if (error instanceof ValidationError) return reply(400, { error: error.message, field_errors: error.fieldErrors });
      logger.error('store front: fault change failed', { error });
      return reply(500, { error: (error as Error).message });
    }
  }

  // ---- shutdown --------------------------------------------------------------------------

  let closed: Promise<void> | undefined;
  async function close(): Promise<void> {
    closed ??= (async () => {
      closing = true;
      if (fault?.timer !== undefined) clearTimeout(fault.timer);
      const wasRefusing = fault?.spec.mode === 'refuse';
      fault = undefined;
      releaseHeld();
      if (control !== undefined) {
        control.closeAllConnections();
        await new Promise<void>((resolve) => control!.close(() => resolve()));
      }
      if (!wasRefusing) {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const deadline = Date.now() + limits.shutdown_grace_ms;
        while (inFlight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
        server.closeAllConnections();
        await stopped;
      }
      for (const [id, entry] of sessions) {
        if (entry.timer !== undefined) clearTimeout(entry.timer);
        entry.session.close();
        sessions.delete(id);
      }
    })();
    return closed;
  }

  logger.info('store front: listening', { url, control: controlUrl, data_dir: dataDir });
  return { url, controlUrl, faultState, setFault, close };
}

// ---------------------------------------------------------------------------------------------
// Helpers.

function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, what: string): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw new ValidationError(
    what,
    parsed.error.issues.map((issue) => ({
      path: issue.code === 'unrecognized_keys' ? [...issue.path, ...issue.keys].join('.') : issue.path.join('.'),
      message: issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message,
    })),
  );
}

const SQL_ESCAPES: Record<string, string> = { '\\': '\\\\', "'": "\\'", '\0': '\\0', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** A ClickHouse string literal holding `value` exactly. */
export function quoteString(value: string): string {
  return `'${value.replace(/[\\'\0\b\f\n\r\t]/g, (c) => SQL_ESCAPES[c]!)}'`;
}

function quoteIdentifier(name: string): string {
  return `\`${name.replace(/[\\`]/g, (c) => `\\${c}`)}\``;
}

function sameSecret(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(a), digest(b));
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function utf8(body: Buffer): string {
  try {
    return UTF8.decode(body);
  } catch {
    throw new HttpException(36, 'Request body is not valid UTF-8: the embedded store takes the statement and its inline data as text, so binary input formats are not supported over this front');
  }
}

/** `INSERT ...` after leading comments and whitespace: what the fault's `what: "insert"` hits. */
export function startsWithInsert(statement: string): boolean {
  return /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*INSERT\b/i.test(statement);
}

/** The format of the answer: the statement's trailing FORMAT clause, else default_format. (For the headers only.) */
export function outputFormatOf(statement: string, defaultFormat: string): string {
  if (startsWithInsert(statement)) return defaultFormat;
  const match = /\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)\s*(?:SETTINGS\b[^;]*)?;?\s*$/i.exec(statement);
  return match?.[1] ?? defaultFormat;
}

function contentTypeOf(format: string): string {
  const f = format.toLowerCase();
  if (f === 'jsoneachrow' || f === 'ndjson' || f === 'jsonlines' || f === 'jsoncompacteachrow' || f.startsWith('jsoneachrow') || f.startsWith('jsoncompacteachrow')) return 'application/x-ndjson; charset=UTF-8';
  if (f.startsWith('json')) return 'application/json; charset=UTF-8';
  if (f.startsWith('tabseparated') || f.startsWith('tsv')) return 'text/tab-separated-values; charset=UTF-8';
  if (f.startsWith('csv')) return 'text/csv; charset=UTF-8; header=absent';
  if (['arrow', 'arrowstream', 'parquet', 'native', 'rowbinary', 'orc', 'avro', 'msgpack', 'protobuf', 'capnproto', 'npy'].some((b) => f.startsWith(b))) return 'application/octet-stream';
  return 'text/plain; charset=UTF-8';
}

function negotiateCompression(acceptEncoding: string | undefined, levelSetting: string | undefined): { codec: string; level: number } | undefined {
  const accepted = new Set(String(acceptEncoding ?? '').toLowerCase().split(',').map((s) => s.split(';')[0]!.trim()).filter(Boolean));
  const codec = RESPONSE_CODECS.find((c) => accepted.has(c));
  if (codec === undefined) return undefined;
  const level = levelSetting === undefined ? 3 : Math.min(9, Math.max(1, Math.trunc(Number(levelSetting)) || 3));
  return { codec, level };
}

function compress(payload: Buffer, { codec, level }: { codec: string; level: number }): Buffer {
  if (codec === 'gzip') return zlib.gzipSync(payload, { level });
  if (codec === 'deflate') return zlib.deflateSync(payload, { level });
  return zlib.brotliCompressSync(payload, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: level } });
}

/** The fields of a multipart/form-data body (no files: external tables are not supported). */
function parseMultipart(body: Buffer, contentType: string): Array<[string, string]> {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  if (!boundary) throw new HttpException(36, 'multipart/form-data without a boundary');
  const delimiter = Buffer.from(`--${boundary[1] ?? boundary[2]!.trim()}`);
  const fields: Array<[string, string]> = [];
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const next = body.indexOf(delimiter, start);
    if (next < 0) break;
    const part = body.subarray(start + 2, next - 2); // skip the CRLF after the delimiter and before the next one
    const headerEnd = part.indexOf('\r\n\r\n');
    if (headerEnd < 0) throw new HttpException(36, 'malformed multipart/form-data part');
    const headers = part.subarray(0, headerEnd).toString('utf8');
    const disposition = /content-disposition:[^\r\n]*\bname="([^"]*)"/i.exec(headers);
    if (!disposition) throw new HttpException(36, 'multipart/form-data part without a name');
    if (/\bfilename=/i.test(headers)) throw new HttpException(48, 'external tables (multipart file parts) are not supported by the embedded front');
    fields.push([disposition[1]!, utf8(part.subarray(headerEnd + 4))]);
    at = next;
  }
  return fields;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};
