/**
 * The RecordWriter over the real store. Valid records arrive with their original JSON bytes
 * (NDJSON text blocks, see decode.ts), so an insert is one join and one statement: no
 * object is serialised again on the hot path. The table is a ReplacingMergeTree keyed by the event id's parts, so a
 * redelivered batch collapses on merge and FINAL reads never see it twice.
 */
import { LatticeError } from '../core/errors.ts';
import type { TraceRecord } from '../core/trace-schema.ts';
import type { Store } from '../store/client.ts';
import { insertGaps } from '../store/gaps.ts';
import { insertNdjson } from '../store/insert-ndjson.ts';
import { insertSnapshots } from '../store/snapshots.ts';
import { storedMaxNodeSeq, storedVersions } from '../store/transitions.ts';
import type { RecordWriter } from './collector.ts';

export function storeRecordWriter(store: Store, table = store.table('transitions')): RecordWriter {
  const insert = (body: string, rows: number): Promise<void> => insertNdjson(store, table, body, `${rows} transitions`);
  return {
    storedVersions: (ranges) => storedVersions(store, ranges),
    storedMaxNodeSeq: (nodes) => storedMaxNodeSeq(store, nodes),
    writeGaps: (gaps) => insertGaps(store, gaps),
    writeSnapshots: (snapshots, rows) => insertSnapshots(store, snapshots, rows),
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
