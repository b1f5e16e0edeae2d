/**
 * Which store failures are worth retrying, decided in one table and never from message text.
 *
 * A failure is looked up by what the backend says about it, in this order:
 *   1. the client's own request timeout (the socket was idle for `store.request_timeout_ms`);
 *   2. a ClickHouse error code — `ClickHouseError.code` from @clickhouse/client (HTTP), the same
 *      shape from chdb's connection (embedded), or chdb's `clickhouseCode`;
 *   3. the HTTP status, only when the response carried no ClickHouse code (a proxy or a load
 *      balancer answered, not ClickHouse: ClickHouse itself answers 500 for most of its codes,
 *      so for its responses the code decides);
 *   4. a Node socket errno code (`ECONNREFUSED`, ...);
 *   5. chdb's binding error code (`CHDB_TIMEOUT`).
 * A ClickHouse code that is not in the table, and anything else, is unknown: not retried
 * (retrying a bug only hides it).
 *
 * @clickhouse/client 1.23 keeps the HTTP status of a failed response to itself, and signals its
 * request timeout with a bare `Error("Timeout error.")` (no class, no code). So a server client
 * is wrapped by `observeHttpFailures`: each call runs in an async-local scope, the request it
 * makes is watched through Node's `http.client.request.start` diagnostics channel (status of the
 * response, `timeout` event of the request), and what was seen is kept for the error the call
 * rejected with (`httpObservationOf`) — the error object itself is not touched.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import diagnosticsChannel from 'node:diagnostics_channel';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { StoreError } from '../core/errors.ts';

export type StoreFailureSource = 'client' | 'clickhouse' | 'http' | 'errno' | 'chdb';

export interface StoreErrorRow {
  readonly source: StoreFailureSource;
  /** ClickHouse error code (number), HTTP status (number) or class ('4xx'/'5xx'), errno or client/chdb code (string). */
  readonly key: number | string;
  /** ClickHouse's name of the code, or a short description. */
  readonly name: string;
  readonly retriable: boolean;
}

const transient = (code: number, name: string): StoreErrorRow => ({ source: 'clickhouse', key: code, name, retriable: true });
const rejected = (code: number, name: string): StoreErrorRow => ({ source: 'clickhouse', key: code, name, retriable: false });
const http = (status: number | '4xx' | '5xx', name: string, retriable: boolean): StoreErrorRow => ({ source: 'http', key: status, name, retriable });
const errno = (code: string, name: string): StoreErrorRow => ({ source: 'errno', key: code, name, retriable: true });

/** Every classified failure. Codes and names are ClickHouse's (src/Common/ErrorCodes.cpp), checked against the engine's `system.errors` in the tests. */
export const STORE_ERROR_TABLE: readonly StoreErrorRow[] = [
  { source: 'client', key: 'CLIENT_REQUEST_TIMEOUT', name: '@clickhouse/client request_timeout elapsed', retriable: true },

  // The server is overloaded, short of a resource, or between states: the same request can succeed later.
  transient(159, 'TIMEOUT_EXCEEDED'),
  transient(252, 'TOO_MANY_PARTS'),
  transient(202, 'TOO_MANY_SIMULTANEOUS_QUERIES'),
  transient(241, 'MEMORY_LIMIT_EXCEEDED'),
  transient(173, 'CANNOT_ALLOCATE_MEMORY'),
  transient(210, 'NETWORK_ERROR'),
  transient(209, 'SOCKET_TIMEOUT'),
  transient(95, 'CANNOT_READ_FROM_SOCKET'),
  transient(96, 'CANNOT_WRITE_TO_SOCKET'),
  transient(242, 'TABLE_IS_READ_ONLY'),
  transient(999, 'KEEPER_EXCEPTION'),
  transient(225, 'NO_ZOOKEEPER'),
  transient(279, 'ALL_CONNECTION_TRIES_FAILED'),
  transient(203, 'NO_FREE_CONNECTION'),
  transient(198, 'DNS_ERROR'),
  transient(201, 'QUOTA_EXCEEDED'),
  transient(236, 'ABORTED'),
  transient(243, 'NOT_ENOUGH_SPACE'),
  transient(254, 'NO_ACTIVE_REPLICAS'),
  transient(285, 'TOO_FEW_LIVE_REPLICAS'),
  transient(286, 'UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE'),
  transient(319, 'UNKNOWN_STATUS_OF_INSERT'),
  transient(364, 'RECEIVED_ERROR_TOO_MANY_REQUESTS'),
  transient(373, 'SESSION_IS_LOCKED'),
  transient(384, 'PART_IS_TEMPORARILY_LOCKED'),
  transient(394, 'QUERY_WAS_CANCELLED'),
  transient(415, 'ALL_REPLICAS_LOST'),
  transient(439, 'CANNOT_SCHEDULE_TASK'),
  transient(473, 'DEADLOCK_AVOIDED'),
  transient(762, 'HTTP_CONNECTION_LIMIT_REACHED'),

  // The statement or its data is wrong: sending it again gives the same answer.
  rejected(62, 'SYNTAX_ERROR'),
  rejected(53, 'TYPE_MISMATCH'),
  rejected(386, 'NO_COMMON_TYPE'),
  rejected(43, 'ILLEGAL_TYPE_OF_ARGUMENT'),
  rejected(6, 'CANNOT_PARSE_TEXT'),
  rejected(25, 'CANNOT_PARSE_ESCAPE_SEQUENCE'),
  rejected(26, 'CANNOT_PARSE_QUOTED_STRING'),
  rejected(27, 'CANNOT_PARSE_INPUT_ASSERTION_FAILED'),
  rejected(38, 'CANNOT_PARSE_DATE'),
  rejected(41, 'CANNOT_PARSE_DATETIME'),
  rejected(72, 'CANNOT_PARSE_NUMBER'),
  rejected(376, 'CANNOT_PARSE_UUID'),
  rejected(467, 'CANNOT_PARSE_BOOL'),
  rejected(675, 'CANNOT_PARSE_IPV4'),
  rejected(676, 'CANNOT_PARSE_IPV6'),
  rejected(33, 'CANNOT_READ_ALL_DATA'),
  rejected(117, 'INCORRECT_DATA'),
  rejected(70, 'CANNOT_CONVERT_TYPE'),
  rejected(69, 'ARGUMENT_OUT_OF_BOUND'),
  rejected(321, 'VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE'),
  rejected(407, 'DECIMAL_OVERFLOW'),
  rejected(691, 'UNKNOWN_ELEMENT_OF_ENUM'),
  rejected(349, 'CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN'),
  rejected(20, 'NUMBER_OF_COLUMNS_DOESNT_MATCH'),
  rejected(16, 'NO_SUCH_COLUMN_IN_TABLE'),
  rejected(47, 'UNKNOWN_IDENTIFIER'),
  rejected(46, 'UNKNOWN_FUNCTION'),
  rejected(60, 'UNKNOWN_TABLE'),
  rejected(81, 'UNKNOWN_DATABASE'),
  rejected(73, 'UNKNOWN_FORMAT'),
  rejected(115, 'UNKNOWN_SETTING'),
  rejected(456, 'UNKNOWN_QUERY_PARAMETER'),
  rejected(57, 'TABLE_ALREADY_EXISTS'),
  rejected(36, 'BAD_ARGUMENTS'),
  rejected(131, 'TOO_LARGE_STRING_SIZE'),
  rejected(229, 'QUERY_IS_TOO_LARGE'),
  rejected(565, 'TOO_MANY_PARTITIONS'),
  rejected(164, 'READONLY'),
  rejected(774, 'TABLE_IS_PERMANENTLY_READ_ONLY'),
  rejected(497, 'ACCESS_DENIED'),
  rejected(516, 'AUTHENTICATION_FAILED'),
  rejected(194, 'REQUIRED_PASSWORD'),
  rejected(511, 'UNKNOWN_ROLE'),
  rejected(48, 'NOT_IMPLEMENTED'),
  rejected(1, 'UNSUPPORTED_METHOD'),
  rejected(89, 'UNKNOWN_COMPRESSION_METHOD'),

  // HTTP statuses of responses without a ClickHouse code: exact statuses first, then the class.
  http(408, 'Request Timeout', true),
  http(429, 'Too Many Requests', true),
  http(500, 'Internal Server Error', true),
  http(502, 'Bad Gateway', true),
  http(503, 'Service Unavailable', true),
  http(504, 'Gateway Timeout', true),
  http('5xx', 'any other 5xx', true),
  http(400, 'Bad Request', false),
  http(401, 'Unauthorized', false),
  http(403, 'Forbidden', false),
  http(404, 'Not Found', false),
  http(413, 'Payload Too Large', false),
  http('4xx', 'any other 4xx', false),

  // The connection itself failed: nothing about the statement is known to be wrong.
  errno('ECONNREFUSED', 'connection refused'),
  errno('ECONNRESET', 'connection reset by peer'),
  errno('ECONNABORTED', 'connection aborted'),
  errno('ETIMEDOUT', 'connect or read timed out'),
  errno('EPIPE', 'broken pipe'),
  errno('EHOSTUNREACH', 'host unreachable'),
  errno('ENETUNREACH', 'network unreachable'),
  errno('ENETDOWN', 'network down'),
  errno('EHOSTDOWN', 'host down'),
  errno('EADDRNOTAVAIL', 'address not available'),
  errno('EAI_AGAIN', 'DNS lookup timed out'),
  errno('ENOTFOUND', 'DNS name not found (yet)'),

  { source: 'chdb', key: 'CHDB_TIMEOUT', name: 'chdb query deadline elapsed', retriable: true },
];

const rowsBy = (source: StoreFailureSource) => new Map(STORE_ERROR_TABLE.filter((r) => r.source === source).map((r) => [r.key, r]));
const CLICKHOUSE_ROWS = rowsBy('clickhouse');
const HTTP_ROWS = rowsBy('http');
const ERRNO_ROWS = rowsBy('errno');
const CLIENT_ROWS = rowsBy('client');
const CHDB_ROWS = rowsBy('chdb');

/** A classified store failure: the code the backend gave travels with it. */
export class StoreBackendError extends StoreError {
  readonly source: StoreFailureSource | undefined;
  /** The ClickHouse error code (number), `HTTP_<status>`, the errno code, or the client/chdb code. */
  readonly backendCode: number | string | undefined;
  /** The ClickHouse name of the code (`TOO_MANY_PARTS`), or the row's description. */
  readonly backendName: string | undefined;
  readonly httpStatus: number | undefined;

  constructor(
    code: 'STORE_UNAVAILABLE' | 'STORE_REJECTED' | 'STORE_QUERY_FAILED',
    message: string,
    details: { retriable: boolean; cause: unknown; source?: StoreFailureSource; backendCode?: number | string; backendName?: string; httpStatus?: number },
  ) {
    super(code, message, { retriable: details.retriable, cause: details.cause });
    this.source = details.source;
    this.backendCode = details.backendCode;
    this.backendName = details.backendName;
    this.httpStatus = details.httpStatus;
  }
}

/** What the classifier found out about a failure, before it becomes an error. */
export interface StoreFailure {
  readonly row: StoreErrorRow | undefined;
  readonly source: StoreFailureSource | undefined;
  readonly backendCode: number | string | undefined;
  readonly backendName: string | undefined;
  readonly httpStatus: number | undefined;
}

export function describeStoreFailure(cause: unknown): StoreFailure {
  const observed = httpObservationOf(cause);
  const status = observed?.status ?? numericField(cause, 'httpStatus');
  const found = (row: StoreErrorRow | undefined, source: StoreFailureSource, backendCode: number | string, backendName?: string): StoreFailure => ({
    row,
    source,
    backendCode,
    backendName: backendName ?? row?.name,
    httpStatus: status,
  });
  if (observed?.timedOut) return found(CLIENT_ROWS.get('CLIENT_REQUEST_TIMEOUT'), 'client', 'CLIENT_REQUEST_TIMEOUT');
  const clickhouse = clickHouseCodeOf(cause);
  if (clickhouse !== undefined) return found(CLICKHOUSE_ROWS.get(clickhouse.code), 'clickhouse', clickhouse.code, clickhouse.name);
  if (status !== undefined && status >= 400) {
    const row = HTTP_ROWS.get(status) ?? HTTP_ROWS.get(status >= 500 ? '5xx' : '4xx');
    return found(row, 'http', `HTTP_${status}`);
  }
  for (const error of causeChain(cause)) {
    const code = (error as { code?: unknown }).code;
    if (typeof code !== 'string') continue;
    const row = ERRNO_ROWS.get(code) ?? CHDB_ROWS.get(code);
    if (row) return found(row, row.source, code);
  }
  return { row: undefined, source: undefined, backendCode: undefined, backendName: undefined, httpStatus: status };
}

/**
 * The one classifier of store failures: retriable ones become `STORE_UNAVAILABLE`, known
 * rejections `STORE_REJECTED`, anything else `STORE_QUERY_FAILED` (not retriable). A
 * StoreError passes through unchanged (it was classified where it arose).
 */
export function classifyStoreError(cause: unknown, what: string): StoreError {
  if (cause instanceof StoreError) return cause;
  const failure = describeStoreFailure(cause);
  const message = cause instanceof Error ? cause.message : String(cause);
  const label = failure.backendCode === undefined ? '' : ` (${failure.source} ${String(failure.backendCode)}${failure.backendName !== undefined && failure.source === 'clickhouse' ? ` ${failure.backendName}` : ''})`;
  const details = { cause, source: failure.source, backendCode: failure.backendCode, backendName: failure.backendName, httpStatus: failure.httpStatus };
  if (failure.row?.retriable) return new StoreBackendError('STORE_UNAVAILABLE', `${what} failed, store unavailable${label}: ${message}`, { ...details, retriable: true });
  if (failure.row) return new StoreBackendError('STORE_REJECTED', `${what} rejected by the store${label}: ${message}`, { ...details, retriable: false });
  return new StoreBackendError('STORE_QUERY_FAILED', `${what} failed${label}: ${message}`, { ...details, retriable: false });
}

/**
 * The ClickHouse code of an error, by its shape: @clickhouse/client's ClickHouseError (its own
 * bundled class) and chdb's (from @clickhouse/client-common) both carry `code` as a string of
 * digits and `type` as the code's name; chdb's native errors carry `clickhouseCode`.
 */
function clickHouseCodeOf(cause: unknown): { code: number; name: string | undefined } | undefined {
  for (const error of causeChain(cause)) {
    const { code, type, clickhouseCode } = error as { code?: unknown; type?: unknown; clickhouseCode?: unknown };
    if (typeof code === 'string' && /^\d+$/.test(code)) return { code: Number(code), name: typeof type === 'string' && type !== '' ? type : undefined };
    if (typeof clickhouseCode === 'number' && Number.isInteger(clickhouseCode)) return { code: clickhouseCode, name: undefined };
  }
  return undefined;
}

/** The error, its `cause`s and the first of an AggregateError's `errors` (Node's happy-eyeballs connect), bounded. */
function causeChain(cause: unknown): object[] {
  const chain: object[] = [];
  let current: unknown = cause;
  while (typeof current === 'object' && current !== null && chain.length < 8 && !chain.includes(current)) {
    chain.push(current);
    const errors = (current as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.length > 0 && typeof errors[0] === 'object' && errors[0] !== null) chain.push(errors[0] as object);
    current = (current as { cause?: unknown }).cause;
  }
  return chain;
}

function numericField(value: unknown, key: string): number | undefined {
  const field = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  return typeof field === 'number' ? field : undefined;
}

// ---------------------------------------------------------------------------------------------
// What the HTTP layer saw for a failed server call.

export interface HttpObservation {
  /** Status of the response, if one arrived. */
  status?: number;
  /** The request's socket went idle for the client's request_timeout. */
  timedOut?: boolean;
}

const callScope = new AsyncLocalStorage<HttpObservation>();
const observations = new WeakMap<object, HttpObservation>();
let watchingRequests = false;

function watchRequests(): void {
  if (watchingRequests) return;
  watchingRequests = true;
  diagnosticsChannel.subscribe('http.client.request.start', (message) => {
    const scope = callScope.getStore();
    if (scope === undefined) return; // not a request of an observed client call
    const { request } = message as { request: ClientRequest };
    request.once('response', (response: IncomingMessage) => {
      scope.status = response.statusCode;
    });
    request.once('timeout', () => {
      scope.timedOut = true;
    });
  });
}

/** What the HTTP layer saw for the call that rejected with `error` (undefined: not observed, or embedded). */
export function httpObservationOf(error: unknown): HttpObservation | undefined {
  return typeof error === 'object' && error !== null ? observations.get(error) : undefined;
}

const OBSERVED_METHODS = new Set<PropertyKey>(['query', 'insert', 'exec', 'command']);

/** The same client, whose failed calls remember the HTTP status and request timeout they met. */
export function observeHttpFailures<C extends object>(client: C): C {
  watchRequests();
  return new Proxy(client, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (!OBSERVED_METHODS.has(property)) return value.bind(target);
      return (...args: unknown[]) => {
        const scope: HttpObservation = {};
        return callScope.run(scope, async () => {
          try {
            return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          } catch (error) {
            if (typeof error === 'object' && error !== null && (scope.status !== undefined || scope.timedOut)) observations.set(error, { ...scope });
            throw error;
          }
        });
      };
    },
  });
}
