/**
 * A census that crosses a process boundary: a sink factory a worker process can load by module
 * path (the worker pool's `{ kind: 'module' }` sink: `createSink(options, job)`, closed after the
 * run), counting the run's windows as its records stream by and writing the counts to a JSON file
 * on close. The records themselves go nowhere; the parent reads the file back (`readCensusFile`).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ValidationError } from '../../core/errors.ts';
import type { TraceSink } from '../../core/sink.ts';
import { countingSink, WindowCensus, type CensusCounts } from './window-census.ts';

export interface CensusFileSinkOptions {
  /** Where the counts are written when the sink is closed. */
  readonly path: string;
  readonly windowMs?: number;
}

/** This module's path, for a pool job's `sink: { kind: 'module', module: CENSUS_SINK_MODULE, options }`. */
export const CENSUS_SINK_MODULE = fileURLToPath(import.meta.url);

export function createSink(options: CensusFileSinkOptions): TraceSink & { close(): Promise<void> } {
  if (typeof options?.path !== 'string' || options.path.length === 0) {
    throw new ValidationError('census sink options', [{ path: 'path', message: 'expected the file to write the counts to' }]);
  }
  const census = new WindowCensus(options.windowMs);
  const sink = countingSink(census);
  return {
    write: (records) => sink.write(records),
    writeSnapshots: (snapshots) => sink.writeSnapshots(snapshots),
    async close() {
      writeFileSync(options.path, JSON.stringify(census.counts()));
    },
  };
}

export function readCensusFile(path: string): CensusCounts {
  return JSON.parse(readFileSync(path, 'utf8')) as CensusCounts;
}
