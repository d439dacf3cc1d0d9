import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real LiteLLM in database mode needs the Prisma engines: its own command, `npm run test:db`.
    exclude: [...configDefaults.exclude, 'test/db/**'],
    globalSetup: ['test/global-setup.ts'],
    // Base timeouts for an idle machine; test/setup-timeouts.ts scales them by the LiteLLM cold
    // start the global set-up measures, and stops what a failed test left running.
    setupFiles: ['test/setup-timeouts.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Integration files each start their own LiteLLM; two cores run two files at once.
    maxWorkers: 2,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
