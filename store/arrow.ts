/**
 * Features and labels as Apache Arrow tables, apart (a model reads the features; evaluation
 * joins the labels by row: both are on the same window grid, in the same order), for training
 * and export. ClickHouse writes ArrowStream; its
 * default LZ4 body compression is off here because apache-arrow (JS) cannot decode it, and the
 * stream is collected as bytes (a text decode would corrupt them).
 */
import { writeFile } from 'node:fs/promises';
import { tableFromIPC, tableToIPC, type Table } from 'apache-arrow';
import type { Store } from './client.ts';
import { featureReadQuery, type FeatureFilter } from './features.ts';
import { labelQuery, type LabelFilter } from './labels.ts';
import { classifyStoreError } from './transitions.ts';

export async function queryArrow(store: Store, query: string, params: Record<string, unknown> = {}): Promise<Table> {
  try {
    const result = await store.client.exec({
      query: `${query} FORMAT ArrowStream`,
      query_params: params,
      clickhouse_settings: { output_format_arrow_compression_method: 'none' },
    });
    const chunks: Buffer[] = [];
    for await (const chunk of result.stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
    const bytes = Buffer.concat(chunks);
    return bytes.length === 0 ? tableFromIPC([]) : tableFromIPC(bytes);
  } catch (cause) {
    throw classifyStoreError(cause, 'Arrow query');
  }
}

/** Features at the filter's window width (default 100 ms), without labels. */
export async function readFeaturesArrow(store: Store, filter: FeatureFilter): Promise<Table> {
  const { query, params } = featureReadQuery(store, filter);
  return queryArrow(store, query, params);
}

/** Writes the features as an Arrow IPC file (readable by pyarrow, pandas, polars, DuckDB). */
export async function exportFeaturesArrow(store: Store, path: string, filter: FeatureFilter = { level: 'node' }): Promise<{ rows: number; bytes: number }> {
  const table = await readFeaturesArrow(store, filter);
  const bytes = tableToIPC(table, 'file');
  await writeFile(path, bytes);
  return { rows: table.numRows, bytes: bytes.byteLength };
}

/** Labels at the filter's window width, on the features' grid and in their row order. */
export async function readLabelsArrow(store: Store, filter: LabelFilter): Promise<Table> {
  const { query, params } = labelQuery(store, filter);
  return queryArrow(store, query, params);
}

/** Writes the labels as an Arrow IPC file, apart from the features. */
export async function exportLabelsArrow(store: Store, path: string, filter: LabelFilter = { level: 'node' }): Promise<{ rows: number; bytes: number }> {
  const table = await readLabelsArrow(store, filter);
  const bytes = tableToIPC(table, 'file');
  await writeFile(path, bytes);
  return { rows: table.numRows, bytes: bytes.byteLength };
}
