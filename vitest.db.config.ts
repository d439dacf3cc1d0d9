import { defineConfig } from 'vitest/config';

/**
 * `npm run test:db`: the tests against real LiteLLM in database mode (PostgreSQL + Prisma engines
 * from ../shared/litellm-db). Kept out of `npm test`, which runs on any machine.
 */
export default defineConfig({
  test: {
    include: ['test/db/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts', 'test/db/global-setup.ts'],
    setupFiles: ['test/setup-timeouts.ts'],
    testTimeout: 60_000,
    hookTimeout: 300_000,
    maxWorkers: 2,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
