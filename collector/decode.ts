/**
 * Bytes → trace record, or a dead-letter reason. Pure: no I/O, so every malformed shape can be
 * tested on fixtures. One JSON pass: a valid record keeps its original bytes, which go to the
 * store as they are (the schema is strict, so a valid record's JSON is exactly a table row).
 */
import type { FieldError } from '../core/errors.ts';
import { validateTraceRecord, type TraceRecord } from '../core/trace-schema.ts';
import { isCertainlyValidRecord } from './fast-validate.ts';
import type { IncomingMessage } from './transport/transport.ts';

export type DeadLetterReason = 'oversized' | 'malformed_json' | 'schema_invalid' | 'store_rejected';
export const DEAD_LETTER_REASONS: readonly DeadLetterReason[] = ['oversized', 'malformed_json', 'schema_invalid', 'store_rejected'];

/** `row`: the record as one JSONEachRow line (no trailing newline), ready for the store. */
export type Decoded = { ok: true; record: TraceRecord; row: Buffer } | { ok: false; reason: DeadLetterReason; errors: FieldError[] };

const NEWLINE = 0x0a;

export function decodeRecord(value: Buffer, recordBytesMax: number): Decoded {
  if (value.length > recordBytesMax) {
    return { ok: false, reason: 'oversized', errors: [{ path: '', message: `record is ${value.length} bytes, more than record_bytes_max ${recordBytesMax}` }] };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch (cause) {
    return { ok: false, reason: 'malformed_json', errors: [{ path: '', message: `not JSON: ${(cause as Error).message}` }] };
  }
  // A pretty-printed record spans lines; JSONEachRow wants one per line, so that one is re-encoded.
  if (isCertainlyValidRecord(parsed)) return { ok: true, record: parsed, row: value.includes(NEWLINE) ? Buffer.from(JSON.stringify(parsed)) : value };
  const result = validateTraceRecord(parsed);
  return result.ok ? { ok: true, record: result.value, row: Buffer.from(JSON.stringify(result.value)) } : { ok: false, reason: 'schema_invalid', errors: result.errors };
}

/** What lands on the dead-letter topic: the reason, where the record came from, and its bytes. */
export interface DeadLetter {
  readonly reason: DeadLetterReason;
  readonly errors: readonly FieldError[];
  readonly source: { readonly topic: string; readonly partition: number; readonly offset: string; readonly key: string | null };
  /** The original bytes as UTF-8, cut to `raw_bytes_max` for oversized records (see raw_bytes). */
  readonly raw: string;
  readonly raw_bytes: number;
  readonly raw_truncated: boolean;
}

const RAW_BYTES_MAX = 16 * 1024;

export function deadLetterOf(message: IncomingMessage, reason: DeadLetterReason, errors: readonly FieldError[]): DeadLetter {
  const truncated = message.value.length > RAW_BYTES_MAX;
  return {
    reason,
    errors,
    source: { topic: message.topic, partition: message.partition, offset: message.offset, key: message.key },
    raw: (truncated ? message.value.subarray(0, RAW_BYTES_MAX) : message.value).toString('utf8'),
    raw_bytes: message.value.length,
    raw_truncated: truncated,
  };
}
