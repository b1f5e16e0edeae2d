/**
 * Progress of a corpus run for a person: a bar with ETA on a terminal (cli-progress), and on
 * anything else (a pipe, a CI log) one line per run at first, then one at most every
 * `intervalMs`, and always the last — a log that grows slowly but never goes silent for long.
 */
import { Presets, SingleBar } from 'cli-progress';
import type { CorpusProgress } from '../cluster/chaos/corpus-run.ts';

/** What a progress display needs of a corpus's progress (the legacy form has no outcomes). */
export type ProgressCounts = Pick<CorpusProgress, 'done' | 'total' | 'records' | 'failed'>;

export interface ProgressReporter {
  start(total: number): void;
  update(progress: ProgressCounts): void;
  stop(): void;
}

export interface ProgressOptions {
  readonly label: string;
  readonly stream?: NodeJS.WriteStream;
  /** Whether to draw a bar (default: whether the stream is a terminal). */
  readonly tty?: boolean;
  /** Non-terminal output: at most one line per interval, after the first (default 10 s). */
  readonly intervalMs?: number;
  /** Milliseconds, monotonic; a parameter so tests can drive it. */
  readonly now?: () => number;
}

export function progressReporter(options: ProgressOptions): ProgressReporter {
  const stream = options.stream ?? process.stderr;
  return (options.tty ?? stream.isTTY === true) ? barReporter(options.label, stream) : lineReporter(options, stream);
}

function barReporter(label: string, stream: NodeJS.WriteStream): ProgressReporter {
  const bar = new SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} runs | {percentage}% | elapsed {duration_formatted} | ETA {eta_formatted} | {records} records | {failed} failed`,
      hideCursor: true,
      stream,
      etaBuffer: 20,
      etaAsynchronousUpdate: true,
    },
    Presets.shades_classic,
  );
  return {
    start: (total) => bar.start(total, 0, { records: '0', failed: 0 }),
    update: (p) => bar.update(p.done, { records: p.records.toLocaleString('en-US'), failed: p.failed }),
    stop: () => bar.stop(),
  };
}

function lineReporter(options: ProgressOptions, stream: NodeJS.WriteStream): ProgressReporter {
  const now = options.now ?? (() => performance.now());
  const intervalMs = options.intervalMs ?? 10_000;
  let startedAt = 0;
  let printedAt: number | undefined;
  return {
    start: (total) => {
      startedAt = now();
      stream.write(`${options.label}: ${total} runs\n`);
    },
    update: (p) => {
      const at = now();
      if (printedAt !== undefined && at - printedAt < intervalMs && p.done < p.total) return;
      printedAt = at;
      stream.write(`${progressLine(options.label, p, at - startedAt)}\n`);
    },
    stop: () => {},
  };
}

/** `corpus train: 3/12 runs (25%) | elapsed 7s | ETA 21s | 513,000 records | 0 failed` */
export function progressLine(label: string, p: ProgressCounts, elapsedMs: number): string {
  const percent = p.total === 0 ? 100 : Math.floor((100 * p.done) / p.total);
  return `${label}: ${p.done}/${p.total} runs (${percent}%) | elapsed ${formatDuration(elapsedMs)} | ETA ${formatDuration(etaMs(p.done, p.total, elapsedMs))} | ${p.records.toLocaleString('en-US')} records | ${p.failed} failed`;
}

/** Remaining time at the mean pace so far (runs of a corpus have the same length). */
export function etaMs(done: number, total: number, elapsedMs: number): number {
  if (done >= total) return 0;
  if (done === 0) return Number.NaN;
  return (elapsedMs / done) * (total - done);
}

/** `45s`, `3m05s`, `1h02m`; `?` when not known yet. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
