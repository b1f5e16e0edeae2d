/**
 * Records the store may already hold. At-least-once delivery repeats records, and a producer can
 * send one event id twice; before an insert, each record is checked against what is stored (and
 * against the rest of its batch): the same contents again are dropped (a redelivery), *other*
 * contents under a stored event id become a `conflict` dead letter carrying both versions, rather
 * than the table's deduplication silently keeping one. The store is asked only about records at
 * or below their node's watermark (stored-watermarks.ts), so steady consumption asks nothing.
 */
import { canonicalRecordJson, type TraceRecord } from '../core/trace-schema.ts';
import type { NodeSeqRange } from '../store/transitions.ts';
import { deadLetterOf, DLQ_HEADERS, type DeadLetter } from './dead-letter.ts';
import { nodeKeyOf, type NodeKey, type StoredWatermarks } from './stored-watermarks.ts';
import type { IncomingMessage } from './transport/transport.ts';

/** A valid record of the batch and where it came from (for dead letters). */
export interface Entry {
  readonly record: TraceRecord;
  readonly message: IncomingMessage;
  readonly index: number;
  /** The record's own bytes when the message was decoded line by line (fast path: undefined). */
  readonly bytes: Buffer | undefined;
  /** Its JSONEachRow line, when not part of its message's block. */
  readonly row: string | undefined;
}

/** One message's valid records; `block` is its body as NDJSON when all of it can go as it is. */
export interface Unit {
  readonly message: IncomingMessage;
  readonly block: string | undefined;
  readonly entries: readonly Entry[];
}

/** A record's own bytes: the line it was on in its message (fast-path entries keep none). */
export function bytesOf(entry: Entry): Buffer {
  if (entry.bytes !== undefined) return entry.bytes;
  const value = entry.message.value;
  let start = 0;
  for (let line = 0; line < entry.index; line++) start = value.indexOf(0x0a, start) + 1;
  const end = value.indexOf(0x0a, start);
  return value.subarray(start, end < 0 ? value.length : end);
}

/** The store's answers, already retried by the caller. */
export interface StoredLookup {
  /** The highest stored node_seq of each node (absent: nothing stored). */
  maxima(nodes: readonly NodeKey[]): Promise<readonly { runId: string; node: number; max: number }[]>;
  /** Every stored version of the records in these ranges. */
  versions(ranges: readonly NodeSeqRange[]): Promise<readonly TraceRecord[]>;
}

export interface KnownRecordsResult {
  /** The units with only the records to insert (a unit whose records all stay keeps its block). */
  readonly kept: Unit[];
  /** Records dropped as repeats of what is stored or earlier in the batch. */
  readonly duplicates: number;
  readonly conflicts: DeadLetter[];
}

export async function withoutKnownRecords(slot: string, units: readonly Unit[], watermarks: StoredWatermarks, store: StoredLookup): Promise<KnownRecordsResult> {
  // Nodes nothing is known about: ask the store how far each has been stored.
  const unknown = new Map<string, { runId: string; node: number }>();
  for (const unit of units) {
    for (const { record } of unit.entries) {
      const key = nodeKeyOf(record.run_id, record.node);
      if (watermarks.maxOf(key) === undefined && !unknown.has(key)) unknown.set(key, { runId: record.run_id, node: record.node });
    }
  }
  if (unknown.size > 0) {
    const maxima = await store.maxima([...unknown.values()]);
    const found = new Map(maxima.map((m) => [nodeKeyOf(m.runId, m.node), m.max]));
    for (const key of unknown.keys()) watermarks.learn(key, slot, found.get(key) ?? -1);
  }
  // Only records at or below a node's watermark can be in the store already.
  const ranges = new Map<string, { runId: string; node: number; first: number; last: number }>();
  for (const unit of units) {
    for (const { record } of unit.entries) {
      const key = nodeKeyOf(record.run_id, record.node);
      if (record.node_seq > watermarks.maxOf(key)!) continue;
      const range = ranges.get(key);
      if (range === undefined) ranges.set(key, { runId: record.run_id, node: record.node, first: record.node_seq, last: record.node_seq });
      else {
        if (record.node_seq < range.first) range.first = record.node_seq;
        if (record.node_seq > range.last) range.last = record.node_seq;
      }
    }
  }
  const stored = ranges.size === 0 ? [] : await store.versions([...ranges.values()]);
  const storedById = new Map<string, string[]>();
  for (const record of stored) {
    const versions = storedById.get(record.event_id);
    const json = canonicalRecordJson(record);
    if (versions === undefined) storedById.set(record.event_id, [json]);
    else if (!versions.includes(json)) versions.push(json);
  }
  const inBatch = new Map<string, TraceRecord>();
  const conflicts: DeadLetter[] = [];
  let duplicates = 0;
  const out: Unit[] = [];
  for (const unit of units) {
    const kept: Entry[] = [];
    for (const entry of unit.entries) {
      const id = entry.record.event_id;
      const versions = storedById.get(id);
      const earlier = inBatch.get(id);
      if (versions === undefined && earlier === undefined) {
        inBatch.set(id, entry.record);
        kept.push(entry);
        continue;
      }
      const json = canonicalRecordJson(entry.record);
      const known = versions ?? [canonicalRecordJson(earlier!)];
      if (known.includes(json)) {
        duplicates++;
        continue;
      }
      conflicts.push(deadLetterOf(entry.message, 'conflict', [{ path: 'event_id', message: `${id} is already stored with different contents (the stored version is in the ${DLQ_HEADERS.stored} header)` }], { index: entry.index, value: bytesOf(entry), stored: known[0]! }));
    }
    if (kept.length === unit.entries.length) out.push(unit);
    else if (kept.length > 0) out.push({ message: unit.message, block: undefined, entries: kept });
  }
  return { kept: out, duplicates, conflicts };
}
