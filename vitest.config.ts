import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Each test file is its own process (forks), which also gives each file its own embedded
    // ClickHouse (chdb allows one active data directory per process).
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
