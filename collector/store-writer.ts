/**
 * The RecordWriter over the real store. Valid records arrive with their original JSON bytes
 * (NDJSON text blocks, see decode.ts), so an insert is one join and one statement: no
 * object is serialised again on the hot path. The table is a ReplacingMergeTree keyed by the event id's parts, so a
 * redelivered batch collapses on merge and FINAL reads never see it twice.
 */
import { Readable } from 'node:stream';
import { LatticeError } from '../core/errors.ts';
import type { TraceRecord } from '../core/trace-schema.ts';
import type { Store } from '../store/client.ts';
import { insertGaps } from '../store/gaps.ts';
import { classifyStoreError, storedMaxNodeSeq, storedVersions } from '../store/transitions.ts';
import type { RecordWriter } from './collector.ts';

export function storeRecordWriter(store: Store, table = store.table('transitions')): RecordWriter {
  // The embedded engine takes the statement as one JS string, so the body stays text on the way
  // there (an object-mode stream hands the string over as it is; a byte stream would encode it
  // to UTF-8 only for chdb to decode it again). A server gets bytes over HTTP.
  const embedded = store.kind === 'embedded';
  const insert = async (body: string, rows: number): Promise<void> => {
    try {
      const values = embedded ? Readable.from([body], { objectMode: true }) : Readable.from([Buffer.from(body)], { objectMode: false });
      const result = await store.client.exec({ query: `INSERT INTO ${table} FORMAT JSONEachRow`, values });
      result.stream.resume();
    } catch (cause) {
      throw classifyStoreError(cause, `insert of ${rows} transitions`);
    }
  };
  return {
    storedVersions: (ranges) => storedVersions(store, ranges),
    storedMaxNodeSeq: (nodes) => storedMaxNodeSeq(store, nodes),
    writeGaps: (gaps) => insertGaps(store, gaps),
    async write(records, rows) {
      if (records.length === 0) return;
      if (rows === undefined || rows.length === 0) return insert(canonicalBody(records), records.length);
      try {
        await insert(rows.join('\n') + '\n', records.length);
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

function canonicalBody(records: readonly TraceRecord[]): string {
  let text = '';
  for (const record of records) text += JSON.stringify(record) + '\n';
  return text;
}
