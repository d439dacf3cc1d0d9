import { afterAll, vi } from 'vitest';
import { descendantsOf, killAll } from './helpers/processes.js';
import { scaled } from './helpers/timing.js';

// Every test file: timeouts scaled by the LiteLLM cold start measured before the run, so a
// loaded machine does not turn slow starts into failures.
vi.setConfig({ testTimeout: scaled(120_000), hookTimeout: scaled(180_000) });

// A test that failed or timed out may not have reached its own clean-up: whatever this worker
// started and is still running when the file ends is stopped here.
afterAll(async () => {
  await killAll(descendantsOf(process.pid));
});
