/**
 * The fault suite's accounting: after a fault, is every record a node produced in exactly one
 * place — stored (`transitions FINAL`), dead-lettered (the DLQ topic) or accounted by a gap
 * (`trace_gaps`)?
 *
 * Input: what was produced (per run and node, `node_seq` 0..N-1), the store, and the dead letters
 * read back from the DLQ topic (`readDeadLetters`). Output: a report with the counts and, per
 * node, the ranges that are missing, covered twice, or covered but never produced; `ok` when
 * produced = stored + dead-lettered + gap-accounted with nothing missing, duplicated or
 * overlapping; and a one-line `summary`.
 *
 * What is not a problem: the same event id in several *non-FINAL* rows (ReplacingMergeTree
 * collapses redeliveries on merge; counted as `redeliveredRows`), or the same record dead-lettered
 * twice (an at-least-once redelivery of a rejected batch; counted as `repeatedDeadLetters`).
 * What is: an event id both stored and dead-lettered, or twice in FINAL (`duplicates`); any
 * position covered by two of stored / dead letters / gaps, or by two gaps (`overlaps`); a stored
 * row whose event id is not `run_id/node/node_seq` (`mismatchedIds`); a dead letter that names no
 * record (`unattributedDeadLetters`).
 */
import type { DeadLetter } from '../../collector/dead-letter.ts';
import { parseDeadLetter } from '../../collector/dead-letter.ts';
import type { Transport } from '../../collector/transport/transport.ts';
import { claimsToBeGap, validateGapRecord } from '../../core/gap-record.ts';
import { eventIdOf, type TraceRecord } from '../../core/trace-schema.ts';
import type { Store } from '../../store/client.ts';
import type { StoredGap } from '../../store/gaps.ts';
import { queryRows } from '../../store/transitions.ts';

/** Records a run produced: node → N (that node's records are node_seq 0..N-1). */
export interface ProducedRun {
  readonly runId: string;
  readonly nodes: ReadonlyMap<number, number> | Readonly<Record<number, number>>;
}

/** An inclusive node_seq range. */
export interface SeqRange {
  readonly first: number;
  readonly last: number;
}

export type Source = 'stored' | 'dead_lettered' | 'gap';

export interface Overlap extends SeqRange {
  /** Which sources cover these positions (`gap` twice when two gaps overlap). */
  readonly sources: readonly Source[];
}

export interface NodeAccounting {
  readonly runId: string;
  readonly node: number;
  readonly produced: number;
  /** Produced positions covered by each source (a position covered twice counts in both). */
  readonly stored: number;
  readonly deadLettered: number;
  readonly gapAccounted: number;
  readonly missing: readonly SeqRange[];
  readonly overlaps: readonly Overlap[];
  /** Covered (stored, dead-lettered or in a gap) but at or beyond N, or on a node that produced nothing. */
  readonly unexpected: readonly SeqRange[];
  /** stored ∪ gaps ∪ dead letters cover 0..N-1 exactly, with no overlap and nothing beyond. */
  readonly inOrder: boolean;
}

export interface Duplicate {
  readonly eventId: string;
  readonly kind: 'stored_and_dead_lettered' | 'final_twice';
}

export interface AccountingReport {
  readonly ok: boolean;
  readonly runs: readonly string[];
  readonly produced: number;
  readonly stored: number;
  readonly deadLettered: number;
  readonly gapAccounted: number;
  /** Produced records in none of stored / dead letters / gaps. */
  readonly missing: number;
  /** Event ids stored and dead-lettered, or twice in FINAL (`duplicateIds` lists up to 100). */
  readonly duplicates: number;
  readonly duplicateIds: readonly Duplicate[];
  /** Positions covered more than once (stored and dead-lettered included). */
  readonly overlaps: number;
  /** Positions covered that were never produced. */
  readonly unexpected: number;
  /** Stored rows whose event_id is not run_id/node/node_seq. */
  readonly mismatchedIds: number;
  /** Dead letters whose bytes name no record of any run (unparseable, no identity). */
  readonly unattributedDeadLetters: number;
  /** Informational: rows beyond FINAL's (redeliveries not yet merged). */
  readonly redeliveredRows: number;
  /** Informational: dead letters of a record already dead-lettered. */
  readonly repeatedDeadLetters: number;
  /** Informational: dead letters of runs not being checked (ignored). */
  readonly otherRunDeadLetters: number;
  readonly nodes: readonly NodeAccounting[];
  readonly summary: string;
}

/** A stored row as the checker reads it. */
export interface StoredRow {
  readonly run_id: string;
  readonly node: number;
  readonly node_seq: number;
  readonly event_id: string;
}

/** A gap as the checker reads it (the `trace_gaps` columns). */
export type GapRow = StoredGap;

const DUPLICATES_LISTED = 100;
const SOURCES = ['stored', 'dead_lettered', 'gap'] as const satisfies readonly Source[];
const INDEX: Record<Source, 0 | 1 | 2> = { stored: 0, dead_lettered: 1, gap: 2 };

/** Reads the store for the produced runs and checks the accounting. */
export async function checkAccounting(input: { store: Store; produced: readonly ProducedRun[]; deadLetters: readonly DeadLetter[] }): Promise<AccountingReport> {
  const runIds = [...new Set(input.produced.map((p) => p.runId))];
  const { rows, rawRows, gaps } = await readStore(input.store, runIds);
  return computeAccounting({ produced: input.produced, stored: rows, rawStoredRows: rawRows, gaps, deadLetters: input.deadLetters });
}

export async function readStore(store: Store, runIds: readonly string[]): Promise<{ rows: StoredRow[]; rawRows: number; gaps: GapRow[] }> {
  if (runIds.length === 0) return { rows: [], rawRows: 0, gaps: [] };
  const params = { runs: runIds };
  const quoted = 'SETTINGS output_format_json_quote_64bit_integers = 0';
  const rows = await queryRows<StoredRow>(store, `SELECT run_id, node, node_seq, event_id FROM ${store.table('transitions')} FINAL WHERE run_id IN {runs:Array(String)} ${quoted}`, params);
  const [raw] = await queryRows<{ n: number }>(store, `SELECT count() AS n FROM ${store.table('transitions')} WHERE run_id IN {runs:Array(String)} ${quoted}`, params);
  const gaps = await queryRows<GapRow>(store, `SELECT run_id, node, node_seq_first, node_seq_last, records, reason FROM ${store.table('trace_gaps')} FINAL WHERE run_id IN {runs:Array(String)} ${quoted}`, params);
  return { rows, rawRows: Number(raw?.n ?? 0), gaps };
}

/** What a run produced, from the records themselves (each node's node_seq must be 0..N-1). */
export function producedOf(records: readonly Pick<TraceRecord, 'run_id' | 'node' | 'node_seq'>[]): ProducedRun[] {
  const byRun = new Map<string, Map<number, Set<number>>>();
  for (const r of records) {
    let nodes = byRun.get(r.run_id);
    if (!nodes) byRun.set(r.run_id, (nodes = new Map()));
    let seqs = nodes.get(r.node);
    if (!seqs) nodes.set(r.node, (seqs = new Set()));
    seqs.add(r.node_seq);
  }
  return [...byRun].map(([runId, nodes]) => ({
    runId,
    nodes: new Map(
      [...nodes].map(([node, seqs]) => {
        const n = Math.max(...seqs) + 1;
        if (seqs.size !== n) throw new Error(`producedOf: node ${node} of ${runId} did not produce node_seq 0..${n - 1} exactly once each`);
        return [node, n] as const;
      }),
    ),
  }));
}

/** The records a dead letter stands for: each line of its bytes that names one (or a gap's range). */
export function identifyDeadLetter(letter: DeadLetter): { runId: string; node: number; first: number; last: number }[] {
  const out: { runId: string; node: number; first: number; last: number }[] = [];
  for (const line of letter.value.toString('utf8').split('\n')) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof value !== 'object' || value === null) continue;
    if (claimsToBeGap(value)) {
      const gap = validateGapRecord(value);
      if (gap.ok) out.push({ runId: gap.value.run_id, node: gap.value.node, first: gap.value.node_seq_first, last: gap.value.node_seq_last });
      continue;
    }
    const v = value as Record<string, unknown>;
    if (typeof v.run_id === 'string' && Number.isSafeInteger(v.node) && Number.isSafeInteger(v.node_seq) && (v.node as number) >= 0 && (v.node_seq as number) >= 0) {
      out.push({ runId: v.run_id, node: v.node as number, first: v.node_seq as number, last: v.node_seq as number });
      continue;
    }
    const id = typeof v.event_id === 'string' ? /^(.+)\/(\d+)\/(\d+)$/.exec(v.event_id) : null;
    if (id) out.push({ runId: id[1]!, node: Number(id[2]), first: Number(id[3]), last: Number(id[3]) });
  }
  return out;
}

interface NodeState {
  readonly runId: string;
  readonly node: number;
  readonly n: number;
  /** Per source (stored, dead letters, gaps), per produced position: how often covered (saturating at 255). */
  readonly counts: readonly [Uint8Array, Uint8Array, Uint8Array];
  /** Positions beyond n that something covers. */
  readonly beyond: SeqRange[];
}

/** The accounting itself, on rows already read (pure; `checkAccounting` reads and calls it). */
export function computeAccounting(input: {
  produced: readonly ProducedRun[];
  stored: readonly StoredRow[];
  rawStoredRows?: number;
  gaps: readonly GapRow[];
  deadLetters: readonly DeadLetter[];
}): AccountingReport {
  const runs = new Set(input.produced.map((p) => p.runId));
  const nodes = new Map<string, NodeState>();
  const keyOf = (runId: string, node: number) => `${runId}\u0000${node}`;
  const stateOf = (runId: string, node: number, n = 0): NodeState => {
    const key = keyOf(runId, node);
    let s = nodes.get(key);
    if (!s) nodes.set(key, (s = { runId, node, n, counts: [new Uint8Array(n), new Uint8Array(n), new Uint8Array(n)], beyond: [] }));
    return s;
  };
  for (const run of input.produced) {
    const entries = run.nodes instanceof Map ? [...run.nodes] : Object.entries(run.nodes).map(([k, v]) => [Number(k), v] as const);
    for (const [node, n] of entries) {
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`produced: node ${node} of ${run.runId} has an invalid count ${n}`);
      if (nodes.has(keyOf(run.runId, node))) throw new Error(`produced: node ${node} of ${run.runId} given twice`);
      stateOf(run.runId, node, n);
    }
  }
  const cover = (s: NodeState, first: number, last: number, source: Source) => {
    const counts = s.counts[INDEX[source]];
    const end = Math.min(last, s.n - 1);
    for (let i = first; i <= end; i++) if (counts[i]! < 255) counts[i]!++;
    if (last >= s.n) s.beyond.push({ first: Math.max(first, s.n), last });
  };

  // Stored (FINAL: one row per (run, node, node_seq)).
  const finalIds = new Map<string, number>();
  let mismatchedIds = 0;
  for (const row of input.stored) {
    if (!runs.has(row.run_id)) continue;
    const node = Number(row.node);
    const seq = Number(row.node_seq);
    if (row.event_id !== eventIdOf(row.run_id, node, seq)) mismatchedIds++;
    finalIds.set(row.event_id, (finalIds.get(row.event_id) ?? 0) + 1);
    cover(stateOf(row.run_id, node), seq, seq, 'stored');
  }

  // Gaps.
  for (const gap of input.gaps) {
    if (!runs.has(gap.run_id)) continue;
    const first = Number(gap.node_seq_first);
    const last = Number(gap.node_seq_last);
    if (last < first) continue; // the schema forbids it; such a row accounts for nothing
    cover(stateOf(gap.run_id, Number(gap.node)), first, last, 'gap');
  }

  // Dead letters: each record once; a record dead-lettered again is a redelivery, not a second copy.
  const duplicateIds: Duplicate[] = [];
  let duplicates = 0;
  const addDuplicate = (d: Duplicate) => {
    duplicates++;
    if (duplicateIds.length < DUPLICATES_LISTED) duplicateIds.push(d);
  };
  for (const [eventId, count] of finalIds) if (count > 1) addDuplicate({ eventId, kind: 'final_twice' });
  const lettered = new Set<string>();
  let unattributedDeadLetters = 0;
  let repeatedDeadLetters = 0;
  let otherRunDeadLetters = 0;
  for (const letter of input.deadLetters) {
    const ids = identifyDeadLetter(letter);
    if (ids.length === 0) unattributedDeadLetters++;
    for (const id of ids) {
      if (!runs.has(id.runId)) {
        otherRunDeadLetters++;
        continue;
      }
      const key = `${id.runId}/${id.node}/${id.first}..${id.last}`;
      if (lettered.has(key)) {
        repeatedDeadLetters++;
        continue;
      }
      lettered.add(key);
      cover(stateOf(id.runId, id.node), id.first, id.last, 'dead_lettered');
    }
  }

  // Per node: missing, overlaps, unexpected, and records both stored and dead-lettered.
  const perNode: NodeAccounting[] = [];
  for (const s of [...nodes.values()].sort((a, b) => (a.runId === b.runId ? a.node - b.node : a.runId < b.runId ? -1 : 1))) {
    const missing: SeqRange[] = [];
    const overlaps: Overlap[] = [];
    let stored = 0;
    let deadLettered = 0;
    let gapAccounted = 0;
    const [storedAt, letteredAt, gapAt] = s.counts;
    for (let i = 0; i < s.n; i++) {
      if (storedAt[i]! > 0) stored++;
      if (letteredAt[i]! > 0) deadLettered++;
      if (gapAt[i]! > 0) gapAccounted++;
      if (storedAt[i]! > 0 && letteredAt[i]! > 0) addDuplicate({ eventId: eventIdOf(s.runId, s.node, i), kind: 'stored_and_dead_lettered' });
      const hits = storedAt[i]! + letteredAt[i]! + gapAt[i]!;
      if (hits === 0) extend(missing, i);
      else if (hits > 1) {
        const sources: Source[] = SOURCES.flatMap((src) => Array<Source>(s.counts[INDEX[src]][i]!).fill(src));
        const prev = overlaps[overlaps.length - 1];
        if (prev && prev.last === i - 1 && prev.sources.join() === sources.join()) overlaps[overlaps.length - 1] = { ...prev, last: i };
        else overlaps.push({ first: i, last: i, sources });
      }
    }
    const unexpected = mergeRanges(s.beyond);
    perNode.push({
      runId: s.runId,
      node: s.node,
      produced: s.n,
      stored,
      deadLettered,
      gapAccounted,
      missing,
      overlaps,
      unexpected,
      inOrder: missing.length === 0 && overlaps.length === 0 && unexpected.length === 0,
    });
  }

  const sum = (f: (n: NodeAccounting) => number) => perNode.reduce((acc, n) => acc + f(n), 0);
  const rangeLen = (r: SeqRange) => r.last - r.first + 1;
  const totals = {
    produced: sum((n) => n.produced),
    stored: sum((n) => n.stored),
    deadLettered: sum((n) => n.deadLettered),
    gapAccounted: sum((n) => n.gapAccounted),
    missing: sum((n) => n.missing.reduce((a, r) => a + rangeLen(r), 0)),
    overlaps: sum((n) => n.overlaps.reduce((a, r) => a + rangeLen(r), 0)),
    unexpected: sum((n) => n.unexpected.reduce((a, r) => a + rangeLen(r), 0)),
  };
  const ok = totals.missing === 0 && duplicates === 0 && totals.overlaps === 0 && totals.unexpected === 0 && mismatchedIds === 0 && unattributedDeadLetters === 0;
  const finalRows = input.stored.filter((r) => runs.has(r.run_id)).length;
  const report = {
    ok,
    runs: [...runs],
    ...totals,
    duplicates,
    duplicateIds,
    mismatchedIds,
    unattributedDeadLetters,
    redeliveredRows: Math.max(0, (input.rawStoredRows ?? finalRows) - finalRows),
    repeatedDeadLetters,
    otherRunDeadLetters,
    nodes: perNode,
  };
  return { ...report, summary: summarize(report) };
}

/** One line: the identity and every non-zero problem count, with the first example of each. */
export function summarize(r: Omit<AccountingReport, 'summary'>): string {
  const fmt = (x: SeqRange) => (x.first === x.last ? `${x.first}` : `${x.first}..${x.last}`);
  const first = <T>(pick: (n: NodeAccounting) => readonly T[], show: (n: NodeAccounting, x: T) => string) => {
    for (const n of r.nodes) {
      const xs = pick(n);
      if (xs.length > 0) return ` (first: ${show(n, xs[0]!)})`;
    }
    return '';
  };
  const where = (n: NodeAccounting) => `${n.runId} node ${n.node}`;
  const identity = `produced ${r.produced} ${r.ok ? '=' : 'vs'} stored ${r.stored} + dead-lettered ${r.deadLettered} + gaps ${r.gapAccounted}`;
  const problems = [
    `missing ${r.missing}${r.missing > 0 ? first((n) => n.missing, (n, x) => `${where(n)} seq ${fmt(x)}`) : ''}`,
    `duplicates ${r.duplicates}${r.duplicateIds[0] ? ` (first: ${r.duplicateIds[0].eventId}, ${r.duplicateIds[0].kind})` : ''}`,
    `overlaps ${r.overlaps}${r.overlaps > 0 ? first((n) => n.overlaps, (n, x) => `${where(n)} seq ${fmt(x)} ${x.sources.join('+')}`) : ''}`,
    `unexpected ${r.unexpected}${r.unexpected > 0 ? first((n) => n.unexpected, (n, x) => `${where(n)} seq ${fmt(x)}`) : ''}`,
  ];
  if (r.mismatchedIds > 0) problems.push(`mismatched ids ${r.mismatchedIds}`);
  if (r.unattributedDeadLetters > 0) problems.push(`unattributed dead letters ${r.unattributedDeadLetters}`);
  const info = [r.redeliveredRows > 0 && `${r.redeliveredRows} redelivered rows not yet merged`, r.repeatedDeadLetters > 0 && `${r.repeatedDeadLetters} repeated dead letters`].filter(Boolean);
  const outOfOrder = r.nodes.filter((n) => !n.inOrder).length;
  return `accounting ${r.ok ? 'OK' : 'FAILED'}: ${identity}; ${problems.join(', ')}; ${r.nodes.length - outOfOrder}/${r.nodes.length} nodes in order (${r.runs.length} run${r.runs.length === 1 ? '' : 's'})${info.length > 0 ? `; ${info.join(', ')}` : ''}`;
}

/** Appends position i to a list of ranges, extending the last one when contiguous. */
function extend(ranges: SeqRange[], i: number): void {
  const last = ranges[ranges.length - 1];
  if (last && last.last === i - 1) ranges[ranges.length - 1] = { first: last.first, last: i };
  else ranges.push({ first: i, last: i });
}

function mergeRanges(ranges: readonly SeqRange[]): SeqRange[] {
  const sorted = [...ranges].sort((a, b) => a.first - b.first);
  const out: SeqRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.first <= last.last + 1) out[out.length - 1] = { first: last.first, last: Math.max(last.last, r.last) };
    else out.push(r);
  }
  return out;
}

/**
 * Every dead letter on `topic` (the transport's own bounded read, as `lattice dlq` uses it).
 * `other` counts messages on the topic that are not dead letters.
 */
export async function readDeadLetters(transport: Transport, topic: string, options: { messagesMax?: number } = {}): Promise<{ letters: DeadLetter[]; other: number }> {
  const letters: DeadLetter[] = [];
  let other = 0;
  for (const message of await transport.readTopic(topic, { messagesMax: options.messagesMax ?? 1_000_000 })) {
    const letter = parseDeadLetter(message);
    if (letter) letters.push(letter);
    else other++;
  }
  return { letters, other };
}
