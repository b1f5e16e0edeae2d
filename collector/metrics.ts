/**
 * Prometheus metrics of one collector, fed by its typed events, on a registry of its own (two
 * collectors in one process, as in tests, do not collide). Consumer lag is read from the
 * transport when scraped, so it costs nothing between scrapes.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Collector } from './collector.ts';
import { DEAD_LETTER_REASONS } from './dead-letter.ts';

export interface CollectorMetricsOptions {
  /** Messages in the topic not yet committed by the group. */
  readonly lag: () => Promise<number>;
  readonly labels?: Record<string, string>;
  /** Also export the process metrics (CPU, RSS, event-loop lag). */
  readonly processMetrics?: boolean;
}

export class CollectorMetrics {
  readonly registry = new Registry();

  constructor(collector: Collector, options: CollectorMetricsOptions) {
    if (options.labels) this.registry.setDefaultLabels(options.labels);
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    const consumed = new Counter({ name: 'lattice_collector_records_consumed_total', help: 'Records read from the transitions topic (valid or not).', registers });
    const stored = new Counter({ name: 'lattice_collector_records_stored_total', help: 'Records written to the store (redeliveries included; the table deduplicates).', registers });
    const dead = new Counter({ name: 'lattice_collector_records_dead_lettered_total', help: 'Records sent to the dead-letter topic, by reason.', labelNames: ['reason'], registers });
    for (const reason of DEAD_LETTER_REASONS) dead.inc({ reason }, 0);
    const retries = new Counter({ name: 'lattice_collector_store_retries_total', help: 'Insert attempts retried because the store was unavailable.', registers });
    const batches = new Counter({ name: 'lattice_collector_batches_committed_total', help: 'Transport batches handled and committed.', registers });
    const insertRows = new Histogram({ name: 'lattice_collector_insert_rows', help: 'Rows per insert into the store.', buckets: [1, 10, 100, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000], registers });
    const insertSeconds = new Histogram({ name: 'lattice_collector_insert_duration_seconds', help: 'Time to store one insert, retries included.', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers });
    new Gauge({
      name: 'lattice_collector_consumer_lag',
      help: 'Messages in the transitions topic not yet committed by this consumer group.',
      registers,
      async collect() {
        try {
          this.set(await options.lag());
        } catch {
          // Keep the last value: a scrape must not fail because the broker is briefly away.
        }
      },
    });
    collector.on('batch_handled', (b) => {
      consumed.inc(b.consumed);
      batches.inc();
    });
    collector.on('batch_stored', (b) => {
      stored.inc(b.rows);
      insertRows.observe(b.rows);
      insertSeconds.observe(b.insertMs / 1_000);
    });
    collector.on('dead_lettered', (letter) => dead.inc({ reason: letter.reason }));
    collector.on('store_retry', () => retries.inc());
    const gapRecords = new Counter({ name: 'lattice_collector_gap_records_total', help: 'Trace records that producers declared lost (gap records stored), by reason.', labelNames: ['reason'], registers });
    collector.on('gaps_stored', (gaps) => {
      for (const gap of gaps) gapRecords.inc({ reason: gap.reason }, gap.records);
    });
    const snapshots = new Counter({ name: 'lattice_collector_snapshots_stored_total', help: 'Metrics snapshots stored (core/metrics-snapshot.ts).', registers });
    collector.on('snapshots_stored', (stored) => snapshots.inc(stored.length));
    new Gauge({
      name: 'lattice_collector_duplicates_skipped',
      help: 'Records skipped because the store already held them with the same contents (redeliveries).',
      registers,
      collect() {
        this.set(collector.stats.duplicatesSkipped);
      },
    });
    new Gauge({
      name: 'lattice_collector_consumer_restarts',
      help: 'Consumers rebuilt after a crash they could not recover from themselves.',
      registers,
      collect() {
        this.set(collector.health().consumers.reduce((sum, c) => sum + c.restarts, 0));
      },
    });
    new Gauge({
      name: 'lattice_collector_consuming',
      help: '1 while every consumer of this collector is running, else 0.',
      registers,
      collect() {
        const health = collector.health();
        this.set(health.state === 'running' && health.consumers.every((c) => c.state === 'running') ? 1 : 0);
      },
    });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * Serves `/metrics` over HTTP, and any JSON `routes` given (health checks: a route answers a
   * status and a body); port 0 picks a free port (see the returned url).
   */
  async serve(port: number, host: string, routes: Readonly<Record<string, () => Promise<{ status: number; body: unknown }>>> = {}): Promise<{ url: string; address: string; close(): Promise<void> }> {
    const server: Server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0] ?? '';
      const route = routes[path];
      if (req.method === 'GET' && route !== undefined) {
        route().then(
          ({ status, body }) => res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`),
          (error: unknown) => res.writeHead(500).end(`${(error as Error).message}\n`),
        );
        return;
      }
      if (req.method !== 'GET' || path !== '/metrics') {
        res.writeHead(404).end(`not found; try ${['/metrics', ...Object.keys(routes)].join(', ')}\n`);
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
        (error: unknown) => res.writeHead(500).end(`${(error as Error).message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const address = server.address() as AddressInfo;
    const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    return {
      url: `http://${shownHost}:${address.port}/metrics`,
      address: address.address,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }
}
