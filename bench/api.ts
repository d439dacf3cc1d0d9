/**
 * API latency for GET /v1/status and POST /v1/plan with 1,000 deployments served by a real LiteLLM
 * (restart strategy), and the controller's memory at idle and after 10,000 API calls.
 * Run: npx tsx bench/api.ts
 */
import { rm } from 'node:fs/promises';
import { ensureLiteLLMInstalled } from '../src/litellm/install.js';
import { freePort } from '../src/litellm/process.js';
import { createLogger } from '../src/log/logger.js';
import { startService } from '../src/main.js';
import { loadSettings } from '../src/settings/settings.js';
import { policyRepo } from '../test/helpers/repo.js';
import { testKey } from '../test/helpers/secrets.js';
import { syntheticPolicies } from '../test/helpers/synthetic.js';

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
};
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

await ensureLiteLLMInstalled();
const repo = await policyRepo(syntheticPolicies(1000));
const token = testKey('mc-bench-');
const env: NodeJS.ProcessEnv = {
  LITELLM_MASTER_KEY: testKey('sk-master-'),
  MODELCENTER_LITELLM_PORT: String(await freePort()),
  MODELCENTER_API_PORT: String(await freePort()),
  MODELCENTER_ADMIN_TOKENS: token,
  MODELCENTER_POLL_SECONDS: '3600',
  MODELCENTER_LOG_LEVEL: 'warn',
  ...Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`KEY_${i}`, testKey()])),
};
const settings = await loadSettings(env, repo);
const log = createLogger({ level: 'warn', destination: { write: () => undefined }, pretty: false });
const started = performance.now();
const service = await startService(settings, env, log);
console.log(
  `service up with ${(await service.strategy.instances()[0]!.deployments()).length} deployments in ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

async function timed(route: string, method: 'GET' | 'POST', runs: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const response = await fetch(`${service.apiUrl}${route}`, {
      method,
      headers,
      ...(method === 'POST' && { body: '{}' }),
    });
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`${route}: ${response.status}`);
    times.push(performance.now() - start);
  }
  return times;
}

try {
  global.gc?.();
  const idle = process.memoryUsage();
  for (const [route, method] of [
    ['/v1/status', 'GET'],
    ['/v1/plan', 'POST'],
  ] as const) {
    await timed(route, method, 5); // warm-up
    const times = await timed(route, method, 100);
    console.log(
      `${method} ${route} (1,000 deployments): median ${percentile(times, 50).toFixed(1)} ms, p95 ${percentile(times, 95).toFixed(1)} ms (100 calls)`,
    );
  }
  const direct: number[] = [];
  for (let i = 0; i < 20; i++) {
    const start = performance.now();
    await service.strategy.instances()[0]!.deployments();
    direct.push(performance.now() - start);
  }
  console.log(
    `  of which LiteLLM's own /v1/model/info (1,000 deployments), asked directly: median ${percentile(direct, 50).toFixed(1)} ms`,
  );
  const routes = ['/v1/jobs', '/metrics', '/healthz', '/openapi.json'];
  for (let i = 0; i < 10_000; i++) {
    const response = await fetch(`${service.apiUrl}${routes[i % routes.length]}`, { headers });
    await response.arrayBuffer();
  }
  global.gc?.();
  const after = process.memoryUsage();
  console.log(
    `controller memory: idle rss ${mb(idle.rss)} heap ${mb(idle.heapUsed)}; after 10,000 API calls (jobs, metrics, healthz, openapi) rss ${mb(after.rss)} heap ${mb(after.heapUsed)}`,
  );
} finally {
  await service.stop();
  await rm(repo, { recursive: true, force: true });
}
