/**
 * Bytes → trace record (or gap record), or a dead-letter reason. Pure: no I/O, so every malformed
 * shape can be tested on fixtures. One JSON pass: a valid record keeps its original bytes, which
 * go to the store as they are (the schema is strict, so a valid record's JSON is exactly a row).
 *
 * Nothing is repaired on the way: bytes that are not UTF-8 are rejected (decoding them would
 * store U+FFFD in their place), and so are strings the store cannot hold unchanged.
 */
import { isUtf8 } from 'node:buffer';
import type { FieldError } from '../core/errors.ts';
import { claimsToBeGap, validateGapRecord, type GapRecord } from '../core/gap-record.ts';
import { claimsToBeSnapshot, snapshotJson, validateMetricsSnapshot, type MetricsSnapshot } from '../core/metrics-snapshot.ts';
import { validateTraceRecord, type TraceRecord } from '../core/trace-schema.ts';
import type { DeadLetterReason } from './dead-letter.ts';
import { isCertainlyValidRecord } from './fast-validate.ts';

/**
 * `row`: the record as one JSONEachRow line (no trailing newline), ready for the store. A gap
 * record (core/gap-record.ts) decodes as `gap` and goes to its own table.
 */
export type Decoded =
  | { ok: true; kind: 'transition'; record: TraceRecord; row: Buffer }
  | { ok: true; kind: 'gap'; gap: GapRecord }
  | { ok: true; kind: 'snapshot'; snapshot: MetricsSnapshot; row: string }
  | { ok: false; reason: DeadLetterReason; errors: FieldError[] };

const NEWLINE = 0x0a;

export function decodeRecord(value: Buffer, recordBytesMax: number): Decoded {
  if (value.length > recordBytesMax) {
    return { ok: false, reason: 'oversized', errors: [{ path: '', message: `record is ${value.length} bytes, more than record_bytes_max ${recordBytesMax}` }] };
  }
  if (!isUtf8(value)) return { ok: false, reason: 'invalid_utf8', errors: [{ path: '', message: `not valid UTF-8 (first bad byte at offset ${firstInvalidUtf8Byte(value)})` }] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch (cause) {
    return { ok: false, reason: 'malformed_json', errors: [{ path: '', message: `not JSON: ${(cause as Error).message}` }] };
  }
  // A pretty-printed record spans lines; JSONEachRow wants one per line, so that one is re-encoded.
  if (isCertainlyValidRecord(parsed)) return { ok: true, kind: 'transition', record: parsed, row: value.includes(NEWLINE) ? Buffer.from(JSON.stringify(parsed)) : value };
  if (claimsToBeSnapshot(parsed)) return decodeSnapshot(parsed, value);
  if (claimsToBeGap(parsed)) {
    const gap = validateGapRecord(parsed);
    return gap.ok ? { ok: true, kind: 'gap', gap: gap.value } : { ok: false, reason: 'schema_invalid', errors: gap.errors };
  }
  const result = validateTraceRecord(parsed);
  return result.ok ? { ok: true, kind: 'transition', record: result.value, row: Buffer.from(JSON.stringify(result.value)) } : { ok: false, reason: 'schema_invalid', errors: result.errors };
}

/** A snapshot keeps its bytes as its row, like a record (re-encoded only if it spans lines). */
function decodeSnapshot(parsed: unknown, value: Buffer): Decoded {
  const result = validateMetricsSnapshot(parsed);
  if (!result.ok) return { ok: false, reason: 'schema_invalid', errors: result.errors };
  return { ok: true, kind: 'snapshot', snapshot: result.value, row: value.includes(NEWLINE) ? snapshotJson(result.value) : value.toString('utf8') };
}

/** One record of a message, decoded, with its position in the message (0 for a single record). */
export type DecodedLine = Decoded & { readonly index: number; readonly bytes: Buffer };

/**
 * A message carries one record, or several of one node as NDJSON (one per line; producers bundle
 * them to spare the transport its per-message cost). Each line is decoded on its own, so one bad
 * record does not sink its neighbours. A message none of whose lines is a record (a binary blob,
 * a pretty-printed record, garbage) is one input and fails as one: a single result for the whole
 * message, whose bytes are then dead-lettered exactly as they came.
 */
export function decodeMessage(value: Buffer, recordBytesMax: number): DecodedLine[] {
  let end = value.length;
  while (end > 0 && (value[end - 1] === NEWLINE || value[end - 1] === 0x0d)) end--;
  const body = end === value.length ? value : value.subarray(0, end);
  if (!body.includes(NEWLINE)) return [{ ...decodeRecord(body, recordBytesMax), index: 0, bytes: value }];
  const out: DecodedLine[] = [];
  let start = 0;
  let index = 0;
  let anyOk = false;
  while (start <= body.length) {
    let stop = body.indexOf(NEWLINE, start);
    if (stop < 0) stop = body.length;
    const line = body.subarray(start, stop);
    start = stop + 1;
    if (line.length === 0) continue;
    const decoded = decodeRecord(line, recordBytesMax);
    anyOk ||= decoded.ok;
    out.push({ ...decoded, index: index++, bytes: line });
  }
  if (anyOk) return out;
  const whole = decodeRecord(body, recordBytesMax);
  // A bundle of well-formed JSON records that all fail the schema is still a bundle: each line
  // keeps its own reason. Anything else is one input (binary, garbage, a pretty-printed record).
  const bundleOfJson = out.every((d) => !d.ok && d.reason !== 'malformed_json' && d.reason !== 'invalid_utf8');
  if (!whole.ok && bundleOfJson) return out;
  return [{ ...whole, index: 0, bytes: value }];
}

/**
 * The common case, cheaply: a message whose every line is a record the fast check accepts, or a
 * valid metrics snapshot, comes back as its records plus their NDJSON block (the message body
 * itself when it holds only records: one string decode, no per-record buffers; the store takes
 * the text as it is) and its snapshots with their lines. Anything else — a bad or oversized line,
 * a gap record, a pretty-printed record, bytes that are not UTF-8, a message larger than one
 * record may be — returns undefined, and `decodeMessage` decides.
 */
export interface FastDecoded {
  readonly records: TraceRecord[];
  readonly block: string;
  /** Each record's line number in the message, when snapshots share it (else the position). */
  readonly recordIndexes: number[] | undefined;
  readonly snapshots: { snapshot: MetricsSnapshot; row: string; index: number }[];
}

export function decodeMessageFast(value: Buffer, recordBytesMax: number): FastDecoded | undefined {
  let end = value.length;
  while (end > 0 && value[end - 1] === NEWLINE) end--;
  if (end === 0 || end > recordBytesMax) return undefined;
  // toString would replace bad bytes with U+FFFD and the record would still look valid.
  if (!isUtf8(end === value.length ? value : value.subarray(0, end))) return undefined;
  const text = value.toString('utf8', 0, end);
  const records: TraceRecord[] = [];
  const snapshots: { snapshot: MetricsSnapshot; row: string; index: number }[] = [];
  /** Set at the first snapshot: the message is no longer only records, so the block is rebuilt. */
  let recordLines: string[] | undefined;
  let recordIndexes: number[] | undefined;
  let start = 0;
  for (let index = 0; start <= text.length; index++) {
    let stop = text.indexOf('\n', start);
    if (stop < 0) stop = text.length;
    const lineStart = start;
    const line = text.slice(start, stop);
    start = stop + 1;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return undefined;
    }
    if (isCertainlyValidRecord(parsed)) {
      records.push(parsed);
      recordLines?.push(line);
      recordIndexes?.push(index);
      continue;
    }
    if (!claimsToBeSnapshot(parsed)) return undefined;
    const snapshot = validateMetricsSnapshot(parsed);
    if (!snapshot.ok) return undefined;
    // Every line before this one was a record.
    recordLines ??= lineStart === 0 ? [] : text.slice(0, lineStart - 1).split('\n');
    recordIndexes ??= records.map((_, i) => i);
    snapshots.push({ snapshot: snapshot.value, row: line, index });
  }
  return { records, block: recordLines === undefined ? text : recordLines.join('\n'), recordIndexes, snapshots };
}

function firstInvalidUtf8Byte(bytes: Buffer): number {
  for (let i = 0; i < bytes.length; ) {
    const lead = bytes[i]!;
    const width = lead < 0x80 ? 1 : lead >= 0xc2 && lead < 0xe0 ? 2 : lead >= 0xe0 && lead < 0xf0 ? 3 : lead >= 0xf0 && lead < 0xf5 ? 4 : 0;
    if (width === 0 || !isUtf8(bytes.subarray(i, i + width))) return i;
    i += width;
  }
  return -1;
}
