/**
 * Health figures.
 * 1. Sustained failure → demoted and verified live: the real service and LiteLLM, two fake
 *    OpenAI-compatible upstreams, steady traffic to a profile; the preferred upstream starts
 *    answering 500. Seconds from the first failure to the demotion commit, to the overlay's apply
 *    verified, and to the first request answered by the other provider first. The policy's
 *    thresholds (window 10 s, demoted after 5 s failing) are part of the figure.
 * 2. Reloads per hour under flapping (every 2 s), on a compressed clock (test/helpers/health-flap.ts:
 *    the real monitor, ledger and commits; applies counted): default thresholds, and thresholds
 *    that trip on every flap.
 * Run: npx tsx bench/health.ts
 */
import { rm } from 'node:fs/promises';
import OpenAI from 'openai';
import { ensureLiteLLMInstalled } from '../src/litellm/install.js';
import { freePort } from '../src/litellm/process.js';
import { createLogger } from '../src/log/logger.js';
import { startService } from '../src/main.js';
import { loadSettings } from '../src/settings/settings.js';
import { flap } from '../test/helpers/health-flap.js';
import {
  healthPolicies,
  keepAsking,
  startHealthFakes,
  whoAnswers,
} from '../test/helpers/health-scenario.js';
import { git, policyRepo } from '../test/helpers/repo.js';
import { newKeys, providerEnv } from '../test/helpers/stack.js';

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function demotionFigure(): Promise<void> {
  await ensureLiteLLMInstalled();
  const keys = newKeys();
  const fakes = await startHealthFakes(keys);
  const repo = await policyRepo(
    healthPolicies(
      fakes,
      `  window: 10s
  evaluate_every: 1s
  demotion: { error_rate: 0.5, min_requests: 3, after: 5s, recover_after: 10m }`,
      '  chat: { requires: [chat], prefer: [quality] }',
    ),
  );
  const token = 'mc-bench-health-token-0123456789abcdef';
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    LITELLM_MASTER_KEY: keys.master,
    ...providerEnv(keys),
    MODELCENTER_LITELLM_PORT: String(port),
    MODELCENTER_API_PORT: String(await freePort()),
    MODELCENTER_ADMIN_TOKENS: token,
    MODELCENTER_POLL_SECONDS: '0.5',
  };
  const settings = await loadSettings(env, repo);
  const log = createLogger({
    level: 'warn',
    destination: { write: () => undefined },
    pretty: false,
  });
  const service = await startService(settings, env, log);
  const client = new OpenAI({
    baseURL: `http://127.0.0.1:${port}/v1`,
    apiKey: keys.master,
    maxRetries: 0,
    timeout: 60_000,
  });
  try {
    if ((await whoAnswers(client, 'chat')) !== 'alpha')
      throw new Error('alpha should answer first');
    const traffic = keepAsking(client, 'chat');
    const faultAt = Date.now();
    fakes.alpha.setFault({ kind: 'status', status: 500 });
    const committedAt = await waitFor(
      () =>
        Promise.resolve(
          git(repo, 'log', '--format=%s', '--', 'policies/modelcenter-health.yaml').includes(
            'modelcenter health: demote alpha',
          )
            ? Date.now()
            : undefined,
        ),
      600_000,
    );
    const liveAt = await waitFor(async () => {
      const report = (await (
        await fetch(`${service.apiUrl}/v1/health/providers`, {
          headers: { authorization: `Bearer ${token}` },
        })
      ).json()) as { lastChange?: { outcome: string } };
      return report.lastChange?.outcome === 'applied' ? Date.now() : undefined;
    }, 600_000);
    await traffic.stop();
    const betaAt = await waitFor(
      async () => ((await whoAnswers(client, 'chat')) === 'beta' ? Date.now() : undefined),
      60_000,
    );
    const failed = traffic.answers.filter((a) => a === 'failed').length;
    console.log(
      `sustained failure → demoted (window 10 s, after 5 s): commit ${seconds(committedAt - faultAt)}, ` +
        `verified live ${seconds(liveAt - faultAt)} (strategy ${service.strategy.name}), ` +
        `beta answers first ${seconds(betaAt - faultAt)}; ${failed} of ${traffic.answers.length} requests failed meanwhile`,
    );
  } finally {
    await service.stop();
    await Promise.all([fakes.alpha.close(), fakes.beta.close()]);
    await rm(repo, { recursive: true, force: true });
  }
}

async function flappingFigures(): Promise<void> {
  const started = performance.now();
  const defaults = await flap('  evaluate_every: 1s', 60);
  console.log(
    `flapping every 2 s for 1 simulated hour, default thresholds: ${defaults.applies} reload(s)/hour ` +
      `(${defaults.wanted} condition flips; ${defaults.commits.join(', ') || 'no commit'})`,
  );
  const tripping = await flap(
    `  window: 1s
  evaluate_every: 1s
  demotion: { error_rate: 0.5, min_requests: 2, after: 1s, recover_below: 0.2, recover_after: 1s, max_reloads_per_hour: 4 }`,
    60,
  );
  console.log(
    `flapping every 2 s for 1 simulated hour, thresholds tripping on every flap, max 4/hour: ` +
      `${tripping.applies} reload(s)/hour (${tripping.wanted} condition flips)` +
      ` [simulated in ${seconds(performance.now() - started)}]`,
  );
}

await flappingFigures();
await demotionFigure();
