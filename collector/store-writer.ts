/**
 * The RecordWriter over the real store. Valid records arrive with their original JSON bytes
 * (NDJSON blocks, see decode.ts), so an insert is one concatenation and one statement: no
 * object is serialised again on the hot path. The table is a ReplacingMergeTree keyed by the event id's parts, so a
 * redelivered batch collapses on merge and FINAL reads never see it twice.
 */
import { Readable } from 'node:stream';
import { LatticeError } from '../core/errors.ts';
import type { TraceRecord } from '../core/trace-schema.ts';
import type { Store } from '../store/client.ts';
import { classifyStoreError } from '../store/transitions.ts';
import type { RecordWriter } from './collector.ts';

const NEWLINE = Buffer.from('\n');

export function storeRecordWriter(store: Store, table = store.table('transitions')): RecordWriter {
  const insert = async (body: Buffer, rows: number): Promise<void> => {
    try {
      const result = await store.client.exec({ query: `INSERT INTO ${table} FORMAT JSONEachRow`, values: Readable.from([body], { objectMode: false }) });
      result.stream.resume();
    } catch (cause) {
      throw classifyStoreError(cause, `insert of ${rows} transitions`);
    }
  };
  return {
    async write(records, rows) {
      if (records.length === 0) return;
      if (rows === undefined || rows.length === 0) return insert(canonicalBody(records), records.length);
      try {
        await insert(joinLines(rows), records.length);
      } catch (error) {
        // The original bytes are valid JSON the schema accepts, yet a byte-level oddity (e.g. a
        // duplicated key) can still upset the engine: one more try with canonical JSON before
        // the rows are called rejected.
        if (!(error instanceof LatticeError) || error.retriable) throw error;
        await insert(canonicalBody(records), records.length);
      }
    },
  };
}

function joinLines(rows: readonly Buffer[]): Buffer {
  const parts: Buffer[] = new Array(rows.length * 2);
  for (let i = 0; i < rows.length; i++) {
    parts[2 * i] = rows[i]!;
    parts[2 * i + 1] = NEWLINE;
  }
  return Buffer.concat(parts);
}

function canonicalBody(records: readonly TraceRecord[]): Buffer {
  let text = '';
  for (const record of records) text += JSON.stringify(record) + '\n';
  return Buffer.from(text);
}
