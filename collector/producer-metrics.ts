/**
 * Prometheus metrics of trace producers (BatchingProducerSink), read from their stats when
 * scraped, so they cost nothing between scrapes. `registerProducerMetrics` puts them on any
 * Registry (the in-process pipeline's collector `/metrics` includes them); `serveProducerMetrics`
 * serves a registry of its own on loopback (a node process's `/metrics`).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import type { ProducerStats } from './producer-sink.ts';

/** Where the numbers come from: one producer's stats, or several to be summed. */
export type ProducerStatsSource = () => ProducerStats | readonly ProducerStats[];

const COUNTERS = [
  ['lattice_producer_records_sent_total', 'Trace records the transport accepted (replayed ones included).', 'recordsSent'],
  ['lattice_producer_records_spooled_total', 'Trace records written to the on-disk spool while the broker could not take them.', 'recordsSpooled'],
  ['lattice_producer_records_replayed_total', 'Trace records sent from the spool.', 'recordsReplayed'],
  ['lattice_producer_records_dropped_total', 'Trace records that will never be delivered (spool full, or rejected for good); each is inside a declared gap.', 'recordsDropped'],
  ['lattice_producer_gaps_total', 'Gap records declared (each names the node_seq range it covers and why).', 'gapsDeclared'],
  ['lattice_producer_send_failures_total', 'Send attempts that failed (retried after a backoff unless rejected for good).', 'sendFailures'],
] as const satisfies readonly (readonly [string, string, keyof ProducerStats])[];

const GAUGES = [
  ['lattice_producer_spool_bytes', 'Bytes of the spool files on disk.', 'spoolBytes'],
  ['lattice_producer_spool_records', 'Trace records waiting in the spool.', 'spoolRecords'],
  ['lattice_producer_buffered_records', 'Trace records held in memory (waiting and being sent).', 'recordsBuffered'],
] as const satisfies readonly (readonly [string, string, keyof ProducerStats])[];

function total(source: ProducerStatsSource, field: keyof ProducerStats): number {
  const stats = source();
  const all: readonly ProducerStats[] = Array.isArray(stats) ? stats : [stats as ProducerStats];
  let sum = 0;
  for (const s of all) sum += s[field];
  return sum;
}

/** Registers the producer metrics on `registry`; their values are read from `source` at each scrape. */
export function registerProducerMetrics(registry: Registry, source: ProducerStatsSource): void {
  const registers = [registry];
  for (const [name, help, field] of COUNTERS) {
    new Counter({
      name,
      help,
      registers,
      collect() {
        // The stats are monotonic totals already: expose them as they are.
        this.reset();
        this.inc(total(source, field));
      },
    });
  }
  for (const [name, help, field] of GAUGES) {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(total(source, field));
      },
    });
  }
}

/** Serves a registry with the producer metrics at `/metrics` (port 0: any free port). */
export async function serveProducerMetrics(source: ProducerStatsSource, port: number, host = '127.0.0.1', labels?: Record<string, string>): Promise<{ url: string; registry: Registry; close(): Promise<void> }> {
  const registry = new Registry();
  if (labels) registry.setDefaultLabels(labels);
  registerProducerMetrics(registry, source);
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end('not found; try /metrics\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (error: unknown) => res.writeHead(500).end(`${(error as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.unref();
  const address = server.address() as AddressInfo;
  return {
    url: `http://${host}:${address.port}/metrics`,
    registry,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
