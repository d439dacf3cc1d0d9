/**
 * Commit → verified live per reload strategy (median of 5 applies each), next to LiteLLM's own
 * cold start measured in the same run, and the requests that failed while each reload happened.
 * Run: npx tsx bench/apply.ts [restart|blue-green]...   (default: both)
 * Goals: restart ≤ cold start + 1 s; blue-green: 0 failed requests.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { buildFromTexts } from '../src/compile/build.js';
import { ensureLiteLLMInstalled } from '../src/litellm/install.js';
import { freePort, startLiteLLM } from '../src/litellm/process.js';
import { BlueGreenStrategy } from '../src/reload/blue-green.js';
import { RestartStrategy } from '../src/reload/restart.js';
import type { ReloadStrategy } from '../src/reload/strategy.js';
import { controllerFor, stateDirOf } from '../test/helpers/controller.js';
import { commitPolicies, policyRepo } from '../test/helpers/repo.js';
import {
  allFakes,
  newKeys,
  providerEnv,
  scenarioPolicies,
  startFakes,
} from '../test/helpers/stack.js';

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] ?? 0;
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

await ensureLiteLLMInstalled();
const wanted = process.argv.slice(2).length ? process.argv.slice(2) : ['restart', 'blue-green'];
const keys = newKeys();
const env = providerEnv(keys);
const fakes = await startFakes(keys);
const base = scenarioPolicies(fakes);
const withExtraModel = base.replace(
  'profiles:',
  '  extra:\n    provider: openai\n    upstream: gpt-4o\n    capabilities: [chat]\n    context_window: 128000\n\nprofiles:',
);

async function measure(name: string): Promise<void> {
  const repo = await policyRepo(base);
  const port = await freePort();
  const options = { port, masterKey: keys.master, env };
  const strategy: ReloadStrategy =
    name === 'blue-green'
      ? new BlueGreenStrategy({ ...options, stateDir: stateDirOf(repo) })
      : new RestartStrategy(options);
  const controller = await controllerFor(repo, strategy);
  const client = new OpenAI({
    baseURL: `http://127.0.0.1:${port}/v1`,
    apiKey: keys.master,
    maxRetries: 0,
    timeout: 10_000,
  });
  try {
    const first = await controller.apply();
    if (first.outcome !== 'applied') throw new Error(`first apply: ${first.problems.join('; ')}`);
    const applyTimes: number[] = [];
    const runs: string[] = [];
    const causes = new Map<string, number>();
    for (let run = 0; run < 5; run++) {
      await commitPolicies(
        repo,
        run % 2 === 0 ? withExtraModel : base, // every apply changes the served model set
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
            .catch((error: unknown) => {
              failed++;
              const cause = (error as { cause?: { code?: string } }).cause;
              const key = `${String(error)}${cause?.code ? ` (${cause.code})` : ''}`;
              causes.set(key, (causes.get(key) ?? 0) + 1);
            });
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
      runs.push(`${failed}/${sent}`);
    }
    console.log(
      `${name}, commit → verified live: median ${seconds(median(applyTimes))} (5 applies: ${applyTimes.map(seconds).join(', ')})`,
    );
    console.log(
      `${name}, failed/sent requests during each apply (a request every 20 ms): ${runs.join(', ')}`,
    );
    for (const [cause, count] of causes) console.log(`  ${count} × ${cause}`);
  } finally {
    await strategy.stop();
    await rm(repo, { recursive: true, force: true });
  }
}

async function coldStart(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mc-cold-'));
  const configPath = path.join(dir, 'config.yaml');
  try {
    const build = buildFromTexts([{ name: 'scenario.yaml', text: base }]);
    await writeFile(configPath, build.yaml ?? '');
    const cold: number[] = [];
    for (let run = 0; run < 5; run++) {
      const start = performance.now();
      const litellm = await startLiteLLM({ configPath, masterKey: keys.master, env });
      cold.push(performance.now() - start);
      await litellm.stop();
    }
    console.log(
      `LiteLLM cold start to ready, same config: median ${seconds(median(cold))} (5 starts)`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

try {
  for (const name of wanted) await measure(name);
  await coldStart();
} finally {
  await Promise.all(allFakes(fakes).map((f) => f.close()));
}
