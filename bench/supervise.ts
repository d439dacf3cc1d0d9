/**
 * Supervision and proven configs, per reload strategy, with steady traffic (2 senders, the `openai`
 * client, no retries) against fake upstreams:
 *  - recovery after kill -9 of LiteLLM: seconds until a request succeeds again, failed requests,
 *    beside the cold start of the LiteLLM that replaced it;
 *  - failed requests per ordinary apply (3 applies);
 *  - failed requests when a config LiteLLM refuses is applied, and when it silently drops a
 *    deployment.
 * Run: npx tsx bench/supervise.ts [restart|blue-green]...   (default: both)
 * Goals: recovery ≤ cold start + 2 s; 0 failed requests for refused configs everywhere and per
 * apply for the default (blue-green).
 */
import { rm } from 'node:fs/promises';
import { ensureLiteLLMInstalled } from '../src/litellm/install.js';
import { freePort } from '../src/litellm/process.js';
import { BlueGreenStrategy } from '../src/reload/blue-green.js';
import { RestartStrategy } from '../src/reload/restart.js';
import type { SupervisionEvent } from '../src/reload/supervisor.js';
import { killRecorded } from '../test/helpers/children.js';
import { measureColdStart } from '../test/helpers/cold-start.js';
import { controllerFor, stateDirOf } from '../test/helpers/controller.js';
import { commitPolicies, policyRepo } from '../test/helpers/repo.js';
import {
  allFakes,
  newKeys,
  providerEnv,
  scenarioPolicies,
  startFakes,
} from '../test/helpers/stack.js';
import { steadyTraffic, trafficClient, underTraffic } from '../test/helpers/traffic.js';

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

await ensureLiteLLMInstalled();
const wanted = process.argv.slice(2).length ? process.argv.slice(2) : ['restart', 'blue-green'];
const keys = newKeys();
const fakes = await startFakes(keys);
const base = scenarioPolicies(fakes);
const withModel = (name: string) =>
  base.replace(
    'profiles:',
    `  ${name}:\n    provider: openai\n    upstream: gpt-4o\n    capabilities: [chat]\n    context_window: 128000\n\nprofiles:`,
  );
const rows: string[][] = [];
try {
  const cold = await measureColdStart(base, keys);
  console.log(
    `LiteLLM cold start on this machine now: ${seconds(cold.readyMs)} to readiness, then ${seconds(cold.firstAnswerMs)} to its first answer`,
  );
  for (const name of wanted) {
    const repo = await policyRepo(base);
    const port = await freePort();
    const common = {
      port,
      masterKey: keys.master,
      env: providerEnv(keys),
      stateDir: stateDirOf(repo),
    };
    const strategy =
      name === 'restart' ? new RestartStrategy(common) : new BlueGreenStrategy(common);
    const events: SupervisionEvent[] = [];
    strategy.onSupervision((e) => events.push(e));
    try {
      const controller = await controllerFor(repo, strategy);
      const first = await controller.apply();
      if (first.outcome !== 'applied') throw new Error(first.problems.join('\n'));
      const client = trafficClient(`http://127.0.0.1:${port}`, keys.master);

      // kill -9 of LiteLLM under traffic.
      const traffic = steadyTraffic(client);
      while (!traffic.outcomes.some((o) => o.ok)) await new Promise((r) => setTimeout(r, 100));
      const pid = strategy.process()!.pid;
      const killedAt = Date.now();
      process.kill(pid, 'SIGKILL');
      while (!traffic.firstSuccessSince(killedAt)) await new Promise((r) => setTimeout(r, 100));
      const back = traffic.firstSuccessSince(killedAt)!;
      await new Promise((r) => setTimeout(r, 1000));
      await traffic.stop();
      const restarted = events.find((e) => e.kind === 'restarted');
      const cold = restarted?.kind === 'restarted' ? (restarted.coldStartMs ?? 0) : 0;
      rows.push([
        name,
        'kill -9 of LiteLLM',
        `served again after ${seconds(back.endedAt - killedAt)} (its cold start ${seconds(cold)})`,
        `${traffic.outcomes.filter((o) => !o.ok).length} failed of ${traffic.outcomes.length}`,
      ]);

      // Ordinary applies.
      for (let run = 1; run <= 3; run++) {
        await commitPolicies(repo, withModel(`extra-${run}`), `policies: extra-${run}`);
        const { result, sent, failures } = await underTraffic(client, () => controller.apply());
        rows.push([
          name,
          `apply ${run} (${result.outcome})`,
          '',
          `${failures.length} failed of ${sent}`,
        ]);
      }

      // A config LiteLLM refuses, and one where it silently drops a deployment.
      const bad = [
        [
          'refused config',
          `${base}\nlitellm:\n  litellm_settings:\n    callbacks: [no_such_module.handler]\n`,
        ],
        [
          'silently dropped deployment',
          base.replace(
            '    credential: env:GROQ_API_KEY\n',
            '    credential: env:GROQ_API_KEY\n    params: { max_retries: often }\n',
          ),
        ],
      ] as const;
      for (const [label, text] of bad) {
        await commitPolicies(repo, text, `policies: ${label}`);
        const { result, sent, failures } = await underTraffic(client, () => controller.apply());
        rows.push([
          name,
          `${label} (${result.outcome})`,
          '',
          `${failures.length} failed of ${sent}`,
        ]);
      }
    } finally {
      await strategy.stop();
      await killRecorded(stateDirOf(repo));
      await rm(repo, { recursive: true, force: true });
    }
  }
} finally {
  await Promise.all(allFakes(fakes).map((f) => f.close()));
}
const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const row of rows) console.log(row.map((c, i) => c.padEnd(widths[i]!)).join('  '));
