/**
 * A collector service in its own process, for the SIGTERM test: configured by the environment
 * (LATTICE_*), prints its stats as one JSON line on stdout once stopped, then exits.
 */
import { runCollectorService } from '../../collector/run.ts';
import { loadConfig } from '../../core/config.ts';
import { createLogger } from '../../core/logging.ts';

const config = loadConfig({ env: process.env });
const service = await runCollectorService({ config, logger: createLogger('info'), metricsPort: 0, metricsHost: '127.0.0.1', featuresIntervalMs: 60_000 });
process.stdout.write(`${JSON.stringify({ ready: true, metricsUrl: service.metricsUrl })}\n`);
await service.stopped;
process.stdout.write(`${JSON.stringify({ stopped: true, stats: service.stats })}\n`);
