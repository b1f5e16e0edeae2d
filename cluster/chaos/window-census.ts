/**
 * Counts node × window cells per label from trace records as they stream by: window =
 * floor(ts_us / window_us) per node; a cell carries every label any of its records carries, and
 * is `normal` when none does. A cell with two labels counts under both, so the labels of a
 * protocol add up to at least its cells.
 *
 * Labels are read from the record, not from a fixed list: every entry of `faults`, and the name
 * of every boolean field that is true (so a `recovering: true` flag, when records carry one, is
 * counted as `recovering` with no change here). The counts are plain data, so a census made in
 * another process (a worker pool) merges with `mergeCensus`.
 */
import { invariant } from '../../core/errors.ts';
import type { TraceSink } from '../../core/sink.ts';
import type { TraceRecord } from '../../core/trace-schema.ts';

export const NORMAL_LABEL = 'normal';

export interface ProtocolCensus {
  /** Node × window cells that held at least one record. */
  readonly cells: number;
  /** Cells per label (`normal`: cells none of whose records carries a label). */
  readonly labels: Readonly<Record<string, number>>;
}

export interface CensusCounts {
  readonly window_ms: number;
  readonly protocols: Readonly<Record<string, ProtocolCensus>>;
}

/** The labels one record carries. */
export function labelsOf(record: TraceRecord): string[] {
  const labels: string[] = [...record.faults];
  // Records have no boolean fields today; any that appears is a label flag (e.g. `recovering`).
  for (const [field, value] of Object.entries(record) as [string, unknown][]) if (value === true) labels.push(field);
  return labels;
}

/**
 * One census. Cells are kept until `counts()` (bounded by nodes × run length / window; use one
 * census per run and merge the counts for a corpus).
 */
export class WindowCensus {
  private readonly windowUs: number;
  /** `protocol \0 run \0 node \0 window` → labels seen in that cell. */
  private readonly cells = new Map<string, Set<string>>();

  constructor(readonly windowMs = 100) {
    invariant(Number.isInteger(windowMs) && windowMs > 0, `window_ms must be a positive integer, got ${windowMs}`);
    this.windowUs = windowMs * 1000;
  }

  observe(record: TraceRecord): void {
    const key = `${record.protocol}\u0000${record.run_id}\u0000${record.node}\u0000${Math.floor(record.ts_us / this.windowUs)}`;
    let labels = this.cells.get(key);
    if (labels === undefined) {
      labels = new Set();
      this.cells.set(key, labels);
    }
    for (const label of labelsOf(record)) labels.add(label);
  }

  counts(): CensusCounts {
    const protocols: Record<string, { cells: number; labels: Record<string, number> }> = {};
    for (const [key, labels] of this.cells) {
      const protocol = key.slice(0, key.indexOf('\u0000'));
      const entry = (protocols[protocol] ??= { cells: 0, labels: {} });
      entry.cells++;
      if (labels.size === 0) entry.labels[NORMAL_LABEL] = (entry.labels[NORMAL_LABEL] ?? 0) + 1;
      for (const label of labels) entry.labels[label] = (entry.labels[label] ?? 0) + 1;
    }
    return { window_ms: this.windowMs, protocols };
  }
}

/** A sink that counts every record into the census, then hands it on (the store's sink, or none). */
export function countingSink(census: WindowCensus, inner?: TraceSink): TraceSink {
  return {
    async write(records) {
      for (const record of records) census.observe(record);
      if (inner !== undefined) await inner.write(records);
    },
    // Snapshots carry no per-window labels of their own: passed on, not counted.
    async writeSnapshots(snapshots) {
      if (inner !== undefined) await inner.writeSnapshots(snapshots);
    },
  };
}

export function emptyCensus(windowMs = 100): CensusCounts {
  return { window_ms: windowMs, protocols: {} };
}

/** Adds two censuses of the same window width (cells of different runs never coincide). */
export function mergeCensus(a: CensusCounts, b: CensusCounts): CensusCounts {
  invariant(a.window_ms === b.window_ms, `cannot merge censuses of ${a.window_ms} ms and ${b.window_ms} ms windows`);
  const protocols: Record<string, { cells: number; labels: Record<string, number> }> = {};
  for (const side of [a, b]) {
    for (const [protocol, census] of Object.entries(side.protocols)) {
      const entry = (protocols[protocol] ??= { cells: 0, labels: {} });
      entry.cells += census.cells;
      for (const [label, count] of Object.entries(census.labels)) entry.labels[label] = (entry.labels[label] ?? 0) + count;
    }
  }
  return { window_ms: a.window_ms, protocols };
}

/**
 * The census as a table: one row per label (normal first, then by name), one column per
 * protocol, and a total of cells. Plain text, for the end of `chaos generate`.
 */
export function formatCensus(census: CensusCounts): string {
  const protocols = Object.keys(census.protocols).sort();
  const labels = [...new Set(protocols.flatMap((p) => Object.keys(census.protocols[p]!.labels)))].sort((x, y) => (x === NORMAL_LABEL ? -1 : y === NORMAL_LABEL ? 1 : x.localeCompare(y)));
  const rows: string[][] = [['label', ...protocols]];
  for (const label of labels) rows.push([label, ...protocols.map((p) => (census.protocols[p]!.labels[label] ?? 0).toLocaleString('en-US'))]);
  rows.push(['(cells)', ...protocols.map((p) => census.protocols[p]!.cells.toLocaleString('en-US'))]);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const line = (row: string[]) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [`${census.window_ms} ms windows per label (node × window cells; a cell counts under every label its records carry)`, ...rows.map(line)].join('\n');
}
