/**
 * One worker of cluster/run-pool.ts: a child process that runs the simulations it is sent, one at
 * a time, each streaming its records to a sink built here, and answers with the RunResult. It
 * exits when the pool disconnects.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { isAbsolute, resolve } from 'node:path';
import { LatticeError, ValidationError } from '../core/errors.ts';
import { snapshotJson, type MetricsSnapshot } from '../core/metrics-snapshot.ts';
import { DiscardSink, type TraceSink } from '../core/sink.ts';
import type { TraceRecord } from '../core/trace-schema.ts';
import { protocolByName } from './protocols.ts';
import type { FromWorker, PoolJob, PoolSinkSpec, ToWorker } from './run-pool.ts';
import { runSimulation, type RunResult } from './run.ts';

type ClosableSink = TraceSink & { close?(): Promise<void> };

const discard: ClosableSink = new DiscardSink();

/** NDJSON, one record (or metrics snapshot) a line; awaits the stream's drain, so a slow disk slows the run instead of filling memory. */
function ndjsonSink(path: string): ClosableSink {
  const stream: WriteStream = createWriteStream(path, { encoding: 'utf8' });
  let failed: Error | null = null;
  stream.on('error', (error) => (failed = error));
  return {
    async write(records: readonly TraceRecord[]) {
      if (failed !== null) throw failed;
      let text = '';
      for (const record of records) text += `${JSON.stringify(record)}\n`;
      if (!stream.write(text)) await new Promise<void>((done) => stream.once('drain', done));
    },
    async writeSnapshots(snapshots: readonly MetricsSnapshot[]) {
      if (failed !== null) throw failed;
      let text = '';
      for (const snapshot of snapshots) text += `${snapshotJson(snapshot)}\n`;
      if (!stream.write(text)) await new Promise<void>((done) => stream.once('drain', done));
    },
    async close() {
      await new Promise<void>((done, fail) => stream.end((error?: Error | null) => (error ? fail(error) : done())));
      if (failed !== null) throw failed;
    },
  };
}

async function sinkFor(spec: PoolSinkSpec | undefined, job: PoolJob): Promise<ClosableSink> {
  if (spec === undefined || spec.kind === 'discard') return discard;
  if (spec.kind === 'ndjson') return ndjsonSink(spec.path);
  const url = spec.module.startsWith('file:') ? spec.module : pathToFileURL(isAbsolute(spec.module) ? spec.module : resolve(spec.module)).href;
  const loaded = (await import(url)) as Record<string, unknown>;
  const factory = loaded[spec.export ?? 'createSink'];
  if (typeof factory !== 'function') {
    throw new ValidationError('pool sink', [{ path: 'sink.export', message: `${spec.module} exports no function ${spec.export ?? 'createSink'}` }]);
  }
  const sink = (await (factory as (options: unknown, job: PoolJob) => unknown)(spec.options, job)) as Partial<ClosableSink> | null;
  for (const method of ['write', 'writeSnapshots'] as const) {
    if (typeof sink?.[method] !== 'function') throw new ValidationError('pool sink', [{ path: 'sink.module', message: `${spec.module}'s ${spec.export ?? 'createSink'} returned a sink without a ${method} method` }]);
  }
  return sink as ClosableSink;
}

async function runJob(job: PoolJob): Promise<{ result: RunResult }> {
  const sink = await sinkFor(job.sink, job);
  try {
    const result = await runSimulation({
      protocol: protocolByName(job.protocol),
      scenario: job.scenario,
      seed: job.seed,
      sink,
      ...(job.runId !== undefined && { runId: job.runId }),
      ...(job.protocolOptions !== undefined && { protocolOptions: job.protocolOptions }),
      ...(job.checkLinearizability !== undefined && { checkLinearizability: job.checkLinearizability }),
    });
    return { result };
  } finally {
    await sink.close?.();
  }
}

// One job at a time, in arrival order: the simulation is synchronous, a second would only wait.
let chain: Promise<void> = Promise.resolve();
process.on('message', (message: ToWorker) => {
  if (message.type !== 'run') return;
  chain = chain.then(async () => {
    let reply: FromWorker;
    try {
      reply = { type: 'done', id: message.id, ...(await runJob(message.job)) };
    } catch (error) {
      const lattice = error instanceof LatticeError ? error : null;
      reply = { type: 'failed', id: message.id, error: { code: lattice?.code ?? null, message: (error as Error).message ?? String(error), retriable: lattice?.retriable ?? false } };
    }
    process.send?.(reply);
  });
});
process.on('disconnect', () => {
  // Let a run in progress finish writing its sink, then leave.
  void chain.then(() => process.exit(0));
});
