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

/** One record of a message, decoded, with its position in the message (0 for a single record). */
export type DecodedLine = Decoded & { readonly index: number; readonly bytes: Buffer };

/**
 * A message carries one record, or several of one node as NDJSON (one per line; producers bundle
 * them to spare the transport its per-message cost). Each line is decoded on its own, so one bad
 * record does not sink its neighbours. A single record pretty-printed over several lines is
 * recognised as one.
 */
export function decodeMessage(value: Buffer, recordBytesMax: number): DecodedLine[] {
  let end = value.length;
  while (end > 0 && (value[end - 1] === NEWLINE || value[end - 1] === 0x0d)) end--;
  const body = end === value.length ? value : value.subarray(0, end);
  if (!body.includes(NEWLINE)) return [{ ...decodeRecord(body, recordBytesMax), index: 0, bytes: body }];
  const out: DecodedLine[] = [];
  let start = 0;
  let index = 0;
  while (start <= body.length) {
    let stop = body.indexOf(NEWLINE, start);
    if (stop < 0) stop = body.length;
    const line = body.subarray(start, stop);
    start = stop + 1;
    if (line.length === 0) continue;
    out.push({ ...decodeRecord(line, recordBytesMax), index: index++, bytes: line });
  }
  if (out.some((d) => !d.ok && d.reason === 'malformed_json') && body.length <= recordBytesMax) {
    const whole = decodeRecord(body, recordBytesMax);
    if (whole.ok || whole.reason !== 'malformed_json') return [{ ...whole, index: 0, bytes: body }];
  }
  return out;
}

/**
 * The common case, cheaply: a message whose every line is a record the fast check accepts comes
 * back as its records plus the message body itself as their NDJSON block, already decoded to
 * text (one string decode, no per-record buffers; the store takes the text as it is). Anything
 * else — a bad or oversized line, a pretty-printed record, a message larger than one record may
 * be — returns undefined, and `decodeMessage` decides.
 */
export function decodeMessageFast(value: Buffer, recordBytesMax: number): { records: TraceRecord[]; block: string } | undefined {
  let end = value.length;
  while (end > 0 && value[end - 1] === NEWLINE) end--;
  if (end === 0 || end > recordBytesMax) return undefined;
  const block = value.toString('utf8', 0, end);
  const records: TraceRecord[] = [];
  let start = 0;
  while (start <= block.length) {
    let stop = block.indexOf('\n', start);
    if (stop < 0) stop = block.length;
    let parsed: unknown;
    try {
      parsed = JSON.parse(block.slice(start, stop));
    } catch {
      return undefined;
    }
    if (!isCertainlyValidRecord(parsed)) return undefined;
    records.push(parsed);
    start = stop + 1;
  }
  return { records, block };
}

/** What lands on the dead-letter topic: the reason, where the record came from, and its bytes. */
export interface DeadLetter {
  readonly reason: DeadLetterReason;
  readonly errors: readonly FieldError[];
  /** Where the record was: `index` is its line in a message that bundles several (else 0). */
  readonly source: { readonly topic: string; readonly partition: number; readonly offset: string; readonly key: string | null; readonly index: number };
  /** The record's original bytes as UTF-8, cut to 16 KiB for oversized records (see raw_bytes). */
  readonly raw: string;
  readonly raw_bytes: number;
  readonly raw_truncated: boolean;
}

const RAW_BYTES_MAX = 16 * 1024;

export function deadLetterOf(message: IncomingMessage, reason: DeadLetterReason, errors: readonly FieldError[], index = 0, bytes: Buffer = message.value): DeadLetter {
  const truncated = bytes.length > RAW_BYTES_MAX;
  return {
    reason,
    errors,
    source: { topic: message.topic, partition: message.partition, offset: message.offset, key: message.key, index },
    raw: (truncated ? bytes.subarray(0, RAW_BYTES_MAX) : bytes).toString('utf8'),
    raw_bytes: bytes.length,
    raw_truncated: truncated,
  };
}
