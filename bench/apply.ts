/**
 * Commit → verified live with the restart strategy (median of 5), next to LiteLLM's own cold start
 * measured in the same run, and requests that failed while each restart happened.
 * Run: npx tsx bench/apply.ts   (goal: restart ≤ cold start + 1 s)
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import OpenAI from 'openai';
import { ensureLiteLLMInstalled } from '../src/litellm/install.js';
import { freePort, startLiteLLM } from '../src/litellm/process.js';
import { repoController } from '../test/helpers/controller.js';
import { commitPolicies, policyRepo } from '../test/helpers/repo.js';
import {
  allFakes,
  newKeys,
  providerEnv,
  scenarioPolicies,
  startFakes,
} from '../test/helpers/stack.js';

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] ?? 0;

await ensureLiteLLMInstalled();
const keys = newKeys();
const env = providerEnv(keys);
const fakes = await startFakes(keys);
const base = scenarioPolicies(fakes);
const repo = await policyRepo(base);
const port = await freePort();
const { controller, strategy } = await repoController(repo, { port, masterKey: keys.master, env });
const client = new OpenAI({
  baseURL: `http://127.0.0.1:${port}/v1`,
  apiKey: keys.master,
  maxRetries: 0,
  timeout: 10_000,
});

try {
  await controller.apply();
  const applyTimes: number[] = [];
  const failures: number[] = [];
  const sentCounts: number[] = [];
  for (let run = 0; run < 5; run++) {
    await commitPolicies(
      repo,
      run % 2 === 0 ? base.replace('quality: 72', 'quality: 73') : base,
      `bench change ${run}`,
    );
    let failed = 0;
    let sent = 0;
    let running = true;
    const traffic = (async () => {
      while (running && sent < 10_000) {
        sent++;
        await client.chat.completions
          .create({ model: 'fast', messages: [{ role: 'user', content: 'hi' }] })
          .catch(() => failed++);
        await new Promise((resolve) => setTimeout(resolve, 20)); // paced: ~40 requests/s
      }
    })();
    const start = performance.now();
    const report = await controller.apply();
    applyTimes.push(performance.now() - start);
    running = false;
    await traffic;
    if (report.outcome !== 'applied')
      throw new Error(`apply ${run}: ${report.outcome} ${report.problems.join('; ')}`);
    failures.push(failed);
    sentCounts.push(sent);
  }
  await strategy.stop();

  const cold: number[] = [];
  const configPath = path.join(repo, 'cold.yaml');
  await writeFile(configPath, (await controller.state.committedConfig()) ?? '');
  for (let run = 0; run < 5; run++) {
    const start = performance.now();
    const litellm = await startLiteLLM({ configPath, masterKey: keys.master, env });
    cold.push(performance.now() - start);
    await litellm.stop();
  }
  console.log(
    `restart strategy, commit → verified live: median ${(median(applyTimes) / 1000).toFixed(2)} s (5 applies)`,
  );
  console.log(
    `LiteLLM cold start to ready, same config: median ${(median(cold) / 1000).toFixed(2)} s (5 starts)`,
  );
  console.log(
    `failed/sent requests during each restart (one client, a request every 20 ms): ${failures.map((f, i) => `${f}/${sentCounts[i]}`).join(', ')}`,
  );
} finally {
  await strategy.stop();
  await Promise.all(allFakes(fakes).map((f) => f.close()));
  await rm(repo, { recursive: true, force: true });
}
