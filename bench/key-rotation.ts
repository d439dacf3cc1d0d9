/**
 * Provider-key rotation, probe → verified live (the rotate call: probe, store, swap through the
 * reload strategy, canary), per strategy, median of 5 rotations, and the requests that failed
 * under steady traffic to the rotated provider's model while each rotation ran. The real service
 * (`modelcenter serve` in-process), real LiteLLM, real nginx; a fake OpenAI upstream that accepts
 * every key it was given.
 * Run: npx tsx bench/key-rotation.ts [restart|blue-green]...   (default: both)
 * Goal: blue-green 0 failed requests.
 */
import { rm } from 'node:fs/promises';
import OpenAI from 'openai';
import { ensureLiteLLMInstalled } from '../src/litellm/install.js';
import { policyRepo } from '../test/helpers/repo.js';
import { testKey } from '../test/helpers/secrets.js';
import { serveEnv, serveInProcess } from '../test/helpers/serve.js';
import { allFakes, newKeys, scenarioPolicies, startFakes } from '../test/helpers/stack.js';
import { steadyTraffic } from '../test/helpers/traffic.js';

/** Polls `probe` until it gives a value (the test helpers' `until` needs vitest). */
async function until<T>(probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 200));
  }
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] ?? 0;
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

await ensureLiteLLMInstalled();
const wanted = process.argv.slice(2).length ? process.argv.slice(2) : ['restart', 'blue-green'];
const keys = newKeys();
const fakes = await startFakes(keys);
const values = Array.from({ length: 5 }, () => testKey());
fakes.openai.acceptKeys([keys.openai, ...values]);

async function measure(strategy: string): Promise<void> {
  const repo = await policyRepo(scenarioPolicies(fakes));
  const admin = testKey('mc-admin-');
  const { env, port, apiPort } = await serveEnv(
    keys,
    { admin },
    {
      MODELCENTER_RELOAD_STRATEGY: strategy,
      MODELCENTER_LOG_LEVEL: 'info',
    },
  );
  const service = serveInProcess(repo, env);
  try {
    await Promise.race([
      until(
        () => Promise.resolve(service.logs().includes('model center is serving') || undefined),
        600_000,
      ),
      service.exit.then((code) => {
        throw new Error(`serve exited with ${code}: ${service.stderr()}`);
      }),
    ]);
    const api = `http://127.0.0.1:${apiPort}`;
    const client = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: keys.master,
      maxRetries: 0,
      timeout: 30_000,
    });
    const times: number[] = [];
    const runs: string[] = [];
    for (const [run, value] of values.entries()) {
      const traffic = steadyTraffic(client, 2, 'gpt-mini');
      const started = performance.now();
      const response = await fetch(`${api}/v1/credentials/openai/rotate`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ value, grace: '1s' }),
      });
      const elapsed = performance.now() - started;
      await traffic.stop();
      const body = (await response.json()) as { error?: { message: string } };
      if (!response.ok) throw new Error(`rotation ${run + 1}: ${body.error?.message}`);
      times.push(elapsed);
      runs.push(
        `${seconds(elapsed)} (${traffic.failures().length} failed of ${traffic.outcomes.length})`,
      );
      // The next rotation waits for this one's grace period to end and its old value to retire.
      await until(async () => {
        const status = (await (
          await fetch(`${api}/v1/credentials`, { headers: { authorization: `Bearer ${admin}` } })
        ).json()) as { credentials: { provider: string; rotation?: { state: string } }[] };
        const openai = status.credentials.find((c) => c.provider === 'openai');
        return openai?.rotation?.state === 'retired' ? true : undefined;
      }, 60_000);
    }
    const failed = runs.map((r) => Number(/\((\d+) failed/.exec(r)?.[1] ?? 0));
    console.log(
      `${strategy}: probe → verified live median ${seconds(median(times))} over 5 rotations; failed requests per rotation: ${failed.join(', ')}\n  runs: ${runs.join('; ')}`,
    );
  } finally {
    service.stop();
    await service.exit;
    await rm(repo, { recursive: true, force: true });
  }
}

try {
  for (const strategy of wanted) await measure(strategy);
} finally {
  await Promise.all(allFakes(fakes).map((f) => f.close()));
}
