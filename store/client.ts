/**
 * The store: ClickHouse through @clickhouse/client, always. Embedded by default (chdb in this
 * process, same SQL dialect as the server), or a ClickHouse server over HTTP when a URL is given.
 * Everything above this file speaks SQL to a `Store` and never knows which one it has.
 *
 * One process owns an embedded data directory, and chdb allows one active directory per process:
 * a Store is therefore opened once by the composition root and shared, and closed before any
 * other directory is opened.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';
import { StoreError } from '../core/errors.ts';
import type { LatticeConfig } from '../core/config.ts';
import { classifyStoreError, observeHttpFailures } from './errors.ts';

export type StoreKind = 'embedded' | 'server';

export interface Store {
  readonly kind: StoreKind;
  readonly database: string;
  readonly client: ClickHouseClient;
  /** Fully qualified table name, e.g. `lattice.transitions`. */
  table(name: string): string;
  /** Where the data lives, for messages to the user. */
  readonly location: string;
  close(): Promise<void>;
}

type ClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>;

export async function openStore(config: LatticeConfig['store']): Promise<Store> {
  const { client, kind, location } = config.url ? connectServer(config, config.url) : connectEmbedded(config.data_dir, config.request_timeout_ms);
  const database = config.database;
  try {
    await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}` });
  } catch (cause) {
    await client.close().catch(() => undefined);
    // Classified by code like every store call: a refused connection is retriable, a wrong password is not.
    throw classifyStoreError(cause, `opening the ${kind} ClickHouse store at ${location}`);
  }
  let closed = false;
  return {
    kind,
    database,
    client,
    location,
    table: (name) => `${database}.${name}`,
    async close() {
      if (closed) return;
      closed = true;
      await client.close();
    },
  };
}

function connectEmbedded(dataDir: string, requestTimeoutMs: number): { client: ClickHouseClient; kind: StoreKind; location: string } {
  const path = resolve(dataDir);
  mkdirSync(path, { recursive: true });
  let connection: ClientConnection;
  try {
    // chdb types its connection against @clickhouse/client-common while the client bundles its
    // own copy of the same types; they are identical at run time, so the cast is narrow and safe.
    connection = createChdbConnection({ path }) as unknown as ClientConnection;
  } catch (cause) {
    throw new StoreError('STORE_UNAVAILABLE', `cannot open the embedded ClickHouse data directory ${path} (another Lattice process may own it): ${(cause as Error).message}`, { cause });
  }
  // No socket to time out in-process: the engine bounds each statement itself, failing with
  // TIMEOUT_EXCEEDED (159, retriable in store/errors.ts) like a server's request timeout would.
  const clickhouse_settings = { max_execution_time: Math.max(1, Math.ceil(requestTimeoutMs / 1000)), timeout_overflow_mode: 'throw' as const };
  return { client: createClient({ connection, clickhouse_settings }), kind: 'embedded', location: path };
}

function connectServer(config: LatticeConfig['store'], url: string): { client: ClickHouseClient; kind: StoreKind; location: string } {
  const client = createClient({
    url,
    username: config.username,
    password: config.password,
    request_timeout: config.request_timeout_ms,
    clickhouse_settings: { date_time_input_format: 'best_effort' },
    // Every failure reaches the caller, classified (store/errors.ts) and logged there as JSON; the
    // client's own multi-line stderr reports would repeat each one on every retry of an outage.
    log: { level: ClickHouseLogLevel.OFF },
  });
  // Failed calls remember the HTTP status and request timeout they met (the client keeps both
  // to itself), so store/errors.ts can classify them by code.
  return { client: observeHttpFailures(client), kind: 'server', location: url };
}
