/**
 * Time from `render` to a LiteLLM that answers /health/readiness with that config (the test
 * harness's start time), median of 5, on the pinned LiteLLM with fake upstreams.
 * Run: npx tsx bench/startup.ts
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildFromTexts } from '../src/compile/build.js';
import { ensureLiteLLMInstalled } from '../src/litellm/install.js';
import { startLiteLLM } from '../src/litellm/process.js';
import {
  allFakes,
  newKeys,
  providerEnv,
  scenarioPolicies,
  startFakes,
} from '../test/helpers/stack.js';

await ensureLiteLLMInstalled();
const keys = newKeys();
const fakes = await startFakes(keys);
const dir = await mkdtemp(path.join(tmpdir(), 'mc-bench-'));
const times: number[] = [];
try {
  for (let run = 0; run < 5; run++) {
    const start = performance.now();
    const build = buildFromTexts([{ name: 'scenario.yaml', text: scenarioPolicies(fakes) }]);
    const configPath = path.join(dir, 'config.yaml');
    await writeFile(configPath, build.yaml!);
    const litellm = await startLiteLLM({
      configPath,
      masterKey: keys.master,
      env: providerEnv(keys),
    });
    times.push(performance.now() - start);
    await litellm.stop();
  }
} finally {
  await Promise.all(allFakes(fakes).map((f) => f.close()));
  await rm(dir, { recursive: true, force: true });
}
const sorted = [...times].sort((a, b) => a - b);
console.log(
  `render → LiteLLM ready (/health/readiness 200): median ${((sorted[2] ?? 0) / 1000).toFixed(2)} s ` +
    `(min ${((sorted[0] ?? 0) / 1000).toFixed(2)} s, max ${((sorted[4] ?? 0) / 1000).toFixed(2)} s, 5 runs)`,
);
