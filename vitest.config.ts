import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Everything under test/, the fault suite (test/faults) included: `npm test` runs its short
    // variant; `npm run test:faults` runs only it, long (LATTICE_FAULTS=full).
    include: ['test/**/*.test.ts'],
    // Uses the Kafka broker at LATTICE_KAFKA_BROKERS, or starts one (and stops only that one).
    globalSetup: ['test/support/global-setup.ts'],
    // Each test file is its own process (forks), which also gives each file its own embedded
    // ClickHouse (chdb allows one active data directory per process).
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
