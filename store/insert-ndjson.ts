/**
 * An INSERT of rows already encoded as JSON lines, with no object serialised again on the way.
 * The embedded engine takes the statement as one JS string, so the body stays text there (an
 * object-mode stream hands the string over as it is; a byte stream would encode it to UTF-8 only
 * for chdb to decode it again). A server gets bytes over HTTP.
 */
import { Readable } from 'node:stream';
import type { Store } from './client.ts';
import { classifyStoreError } from './errors.ts';

/** `body`: JSONEachRow text, one row per line, ending in a newline. `what` names the rows in errors. */
export async function insertNdjson(store: Store, table: string, body: string, what: string): Promise<void> {
  try {
    const values = store.kind === 'embedded' ? Readable.from([body], { objectMode: true }) : Readable.from([Buffer.from(body)], { objectMode: false });
    const result = await store.client.exec({ query: `INSERT INTO ${table} FORMAT JSONEachRow`, values });
    result.stream.resume();
  } catch (cause) {
    throw classifyStoreError(cause, `insert of ${what}`);
  }
}
