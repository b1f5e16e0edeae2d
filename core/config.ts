/**
 * Lattice's configuration: one typed object, validated once at start-up. Sources, later ones
 * winning: built-in defaults, a config file (JSON or YAML, `--config`), environment variables
 * (`LATTICE_*`), then command-line flags.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError, type FieldError } from './errors.ts';

const positiveInt = z.number().int().positive();

export const configSchema = z
  .object({
    store: z
      .object({
        /** ClickHouse server over HTTP, e.g. http://127.0.0.1:8123. Absent: embedded chdb. */
        url: z.url().optional(),
        /** Embedded data directory (one process owns it at a time). */
        data_dir: z.string().min(1).default('.lattice/chdb'),
        database: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected a plain identifier').default('lattice'),
        username: z.string().default('default'),
        password: z.string().default(''),
        request_timeout_ms: positiveInt.default(30_000),
      })
      .strict()
      .prefault({}),
    transport: z
      .object({
        kind: z.enum(['inprocess', 'kafka']).default('inprocess'),
        brokers: z.array(z.string().regex(/^[^\s:]+:\d+$/, 'expected host:port')).min(1).default(['127.0.0.1:9092']),
        client_id: z.string().min(1).default('lattice'),
        topic: z.string().min(1).default('lattice.transitions'),
        dlq_topic: z.string().min(1).default('lattice.transitions.dlq'),
        partitions: positiveInt.max(1024).default(4),
      })
      .strict()
      .prefault({}),
    collector: z
      .object({
        group_id: z.string().min(1).default('lattice-collector'),
        batch_rows_max: positiveInt.default(5_000),
        flush_interval_ms: positiveInt.default(500),
        record_bytes_max: positiveInt.default(64 * 1024),
        /** `/metrics`, `/healthz` and `/readyz`; loopback unless an operator opens it up. */
        metrics_host: z.string().min(1).default('127.0.0.1'),
        metrics_port: z.number().int().min(0).max(65535).default(9464),
        /** Not ready when records wait (lag > 0) and no batch was handled for this long. */
        stall_after_ms: positiveInt.default(30_000),
        /** Longest backoff before a crashed consumer is rebuilt and rejoins its group. */
        consumer_restart_max_ms: positiveInt.default(10_000),
      })
      .strict()
      .prefault({}),
    /** The cluster nodes' trace producers (collector/producer-sink.ts, collector/spool.ts). */
    producer: z
      .object({
        /** Root of the on-disk spools; each producer has a directory of its own under it (`<client_id>-node-<n>`). */
        spool_dir: z.string().min(1).default('.lattice/spool'),
        /** One producer's spool files in total, at most; past it, records are dropped into gap records. */
        spool_bytes_max: positiveInt.min(64 * 1024, 'expected at least 65536').default(256 * 1024 * 1024),
        /** A spool segment file is sealed before it grows past this (or a quarter of spool_bytes_max, if smaller). */
        spool_segment_bytes: positiveInt.min(4 * 1024, 'expected at least 4096').default(8 * 1024 * 1024),
        /** Longest time spooled records stay only in the page cache (0: fdatasync every write). */
        spool_fsync_interval_ms: z.number().int().min(0).default(1_000),
        /** Records held in memory before the producer spools. */
        buffered_records_max: positiveInt.default(50_000),
        batch_records_max: positiveInt.default(2_000),
        linger_ms: z.number().int().min(0).default(20),
        retry_backoff_initial_ms: positiveInt.default(100),
        retry_backoff_max_ms: positiveInt.default(5_000),
        /** One send attempt's bound (the Kafka client's own retries run inside it); then backoff and again. */
        send_timeout_ms: positiveInt.default(10_000),
        /** How long a stopping node keeps delivering before it leaves the rest in its spool. */
        close_timeout_ms: positiveInt.default(2_000),
        /** Producer metrics of node processes on loopback: node i at metrics_port + i (0: any free port). Absent: off. */
        metrics_port: z.number().int().min(0).max(65535).optional(),
      })
      .strict()
      .prefault({}),
    /** Windowed features (store/features.ts, docs/features.md) and their completeness watermark (store/watermark.ts). */
    features: z
      .object({
        /**
         * Window width. It divides 1000 or is a multiple of 1000, so windows of every width align to
         * whole seconds since the epoch and nest: a 1 s window is exactly ten 100 ms windows.
         */
        window_ms: positiveInt
          .max(3_600_000, 'expected at most 3600000 (one hour)')
          .refine((ms) => 1_000 % ms === 0 || ms % 1_000 === 0, 'expected a divisor of 1000 (e.g. 100, 250, 500) or a multiple of 1000, so windows align to whole seconds')
          .default(100),
        /** How far (event time, ts_us) a record may trail the slowest live node's newest record and still be counted in a final window. */
        allowed_lateness_ms: z.number().int().min(0).default(250),
        /** A node this far behind the run's newest record is silent (crashed, cut off) and no longer holds the watermark back. */
        node_silence_ms: positiveInt.default(1_000),
        /** A run with nothing ingested for this long (wall time) is ended: all its windows are final. */
        run_idle_ms: positiveInt.default(10_000),
      })
      .strict()
      .prefault({}),
    log_level: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  })
  .strict();

export type LatticeConfig = z.infer<typeof configSchema>;
/** A partial config as a file or flags give it (any section, any subset of keys). */
export type ConfigInput = { [K in keyof LatticeConfig]?: LatticeConfig[K] extends object ? Partial<LatticeConfig[K]> : LatticeConfig[K] };

/** Environment variables and the config path each maps to. */
const ENV_KEYS: ReadonlyArray<readonly [string, readonly [keyof LatticeConfig, string?], 'string' | 'int' | 'list']> = [
  ['LATTICE_CLICKHOUSE_URL', ['store', 'url'], 'string'],
  ['LATTICE_CLICKHOUSE_USER', ['store', 'username'], 'string'],
  ['LATTICE_CLICKHOUSE_PASSWORD', ['store', 'password'], 'string'],
  ['LATTICE_CLICKHOUSE_DATABASE', ['store', 'database'], 'string'],
  ['LATTICE_DATA_DIR', ['store', 'data_dir'], 'string'],
  ['LATTICE_TRANSPORT', ['transport', 'kind'], 'string'],
  ['LATTICE_KAFKA_BROKERS', ['transport', 'brokers'], 'list'],
  ['LATTICE_KAFKA_TOPIC', ['transport', 'topic'], 'string'],
  ['LATTICE_KAFKA_DLQ_TOPIC', ['transport', 'dlq_topic'], 'string'],
  ['LATTICE_KAFKA_PARTITIONS', ['transport', 'partitions'], 'int'],
  ['LATTICE_COLLECTOR_GROUP', ['collector', 'group_id'], 'string'],
  ['LATTICE_PRODUCER_SPOOL_DIR', ['producer', 'spool_dir'], 'string'],
  ['LATTICE_PRODUCER_SPOOL_BYTES_MAX', ['producer', 'spool_bytes_max'], 'int'],
  ['LATTICE_PRODUCER_SPOOL_SEGMENT_BYTES', ['producer', 'spool_segment_bytes'], 'int'],
  ['LATTICE_PRODUCER_SPOOL_FSYNC_INTERVAL_MS', ['producer', 'spool_fsync_interval_ms'], 'int'],
  ['LATTICE_PRODUCER_BUFFERED_RECORDS_MAX', ['producer', 'buffered_records_max'], 'int'],
  ['LATTICE_PRODUCER_RETRY_BACKOFF_MAX_MS', ['producer', 'retry_backoff_max_ms'], 'int'],
  ['LATTICE_PRODUCER_SEND_TIMEOUT_MS', ['producer', 'send_timeout_ms'], 'int'],
  ['LATTICE_PRODUCER_CLOSE_TIMEOUT_MS', ['producer', 'close_timeout_ms'], 'int'],
  ['LATTICE_PRODUCER_METRICS_PORT', ['producer', 'metrics_port'], 'int'],
  ['LATTICE_COLLECTOR_BATCH_ROWS_MAX', ['collector', 'batch_rows_max'], 'int'],
  ['LATTICE_COLLECTOR_FLUSH_INTERVAL_MS', ['collector', 'flush_interval_ms'], 'int'],
  ['LATTICE_COLLECTOR_METRICS_HOST', ['collector', 'metrics_host'], 'string'],
  ['LATTICE_COLLECTOR_METRICS_PORT', ['collector', 'metrics_port'], 'int'],
  ['LATTICE_FEATURES_WINDOW_MS', ['features', 'window_ms'], 'int'],
  ['LATTICE_LOG_LEVEL', ['log_level'], 'string'],
];

export function configFromEnv(env: NodeJS.ProcessEnv): ConfigInput {
  const out: Record<string, unknown> = {};
  for (const [name, [section, key], kind] of ENV_KEYS) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    const value = kind === 'int' ? Number(raw) : kind === 'list' ? raw.split(',').map((s) => s.trim()).filter(Boolean) : raw;
    if (key === undefined) out[section] = value;
    else out[section] = { ...(out[section] as object | undefined), [key]: value };
  }
  return out as ConfigInput;
}

export function configFromFile(path: string): ConfigInput {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ConfigError([{ path: '', message: `cannot read config file: ${(cause as Error).message}` }], path);
  }
  try {
    const parsed: unknown = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
    return (parsed ?? {}) as ConfigInput;
  } catch (cause) {
    throw new ConfigError([{ path: '', message: `not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(cause as Error).message}` }], path);
  }
}

/** Merges the sources (later wins, section by section) and validates once. */
export function loadConfig(sources: { file?: string; env?: NodeJS.ProcessEnv; overrides?: ConfigInput } = {}): LatticeConfig {
  const layers: ConfigInput[] = [];
  const names: string[] = ['defaults'];
  if (sources.file) {
    layers.push(configFromFile(sources.file));
    names.push(sources.file);
  }
  if (sources.env) {
    layers.push(configFromEnv(sources.env));
    names.push('environment');
  }
  if (sources.overrides) {
    layers.push(sources.overrides);
    names.push('flags');
  }
  const merged: Record<string, unknown> = {};
  for (const layer of layers) {
    if (typeof layer !== 'object' || layer === null || Array.isArray(layer)) {
      throw new ConfigError([{ path: '', message: 'expected an object' }], names.join(' + '));
    }
    for (const [section, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      const previous = merged[section];
      merged[section] = isPlainObject(previous) && isPlainObject(value) ? { ...previous, ...value } : value;
    }
  }
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const errors: FieldError[] = parsed.error.issues.map((issue) => ({
      path: issue.code === 'unrecognized_keys' ? [...issue.path, ...issue.keys].join('.') : issue.path.join('.'),
      message: issue.code === 'unrecognized_keys' ? 'unknown setting' : issue.message,
    }));
    throw new ConfigError(errors, names.join(' + '));
  }
  return parsed.data;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
