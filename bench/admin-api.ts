/**
 * Commit → verified live with the admin-api strategy, 100 model changes per commit, on the
 * database-mode emulator (two instances sharing one database). Median of 5 for each kind of change
 * (100 created, 100 updated, 100 deleted). The emulated instances poll the database every
 * POLL_MS (default 100 ms) instead of LiteLLM's 30 s: with real LiteLLM, add up to one
 * proxy_config_reload_interval_seconds for the instances that did not take the writes.
 * Run: npx tsx bench/admin-api.ts [POLL_MS]   (goal: ≤ 1 s)
 */
import { rm } from 'node:fs/promises';
import { AdminApiStrategy } from '../src/reload/admin-api.js';
import { startDbEmulator } from '../test/emulator/litellm-db.js';
import { controllerFor } from '../test/helpers/controller.js';
import { commitPolicies, policyRepo } from '../test/helpers/repo.js';
import { testKey } from '../test/helpers/secrets.js';

const CHANGES = 100;
const RUNS = 5;
const pollMs = Number(process.argv[2] ?? 100);
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] ?? 0;

const base = `
providers:
  openai:
    kind: openai
    credential: env:OPENAI_API_KEY
models:
  gpt-mini:
    provider: openai
    upstream: gpt-4o-mini
    capabilities: [chat]
    pricing: { input_per_mtok: 0.15, output_per_mtok: 0.6 }
`;
const withModels = (price: number) =>
  base +
  Array.from(
    { length: CHANGES },
    (_, i) =>
      `  bench-${String(i).padStart(3, '0')}:\n    provider: openai\n    upstream: gpt-4o\n    capabilities: [chat, tools]\n    context_window: 128000\n    pricing: { input_per_mtok: ${price}, output_per_mtok: 10 }\n`,
  ).join('');

const masterKey = testKey('sk-master-');
const env = { OPENAI_API_KEY: testKey() };
const emulator = await startDbEmulator({
  masterKey,
  instances: [
    { pollMs, env },
    { pollMs, env },
  ],
});
const repo = await policyRepo(base);
/** Times the strategy's own part (plan, writes, convergence) inside each apply. */
class TimedStrategy extends AdminApiStrategy {
  readonly reloads: number[] = [];
  override async reload(configFile: string): Promise<void> {
    const start = performance.now();
    await super.reload(configFile);
    this.reloads.push(performance.now() - start);
  }
}
const strategy = new TimedStrategy({
  instances: emulator.urls,
  masterKey,
  pollIntervalMs: 20,
  convergeTimeoutMs: 10_000,
});
const controller = await controllerFor(repo, strategy);

try {
  const first = await controller.apply();
  if (first.outcome !== 'applied') throw new Error(`first apply: ${first.problems.join('; ')}`);
  const times = { create: [] as number[], update: [] as number[], delete: [] as number[] };
  let writes = 0;
  for (let run = 0; run < RUNS; run++) {
    for (const [kind, policies] of [
      ['create', withModels(2.5)],
      ['update', withModels(2 + run / 10)],
      ['delete', base],
    ] as const) {
      await commitPolicies(repo, policies, `bench: ${kind} ${CHANGES} models (run ${run})`);
      const before = emulator.writes().length;
      const start = performance.now();
      const report = await controller.apply();
      times[kind].push(performance.now() - start);
      if (report.outcome !== 'applied')
        throw new Error(`${kind} run ${run}: ${report.outcome} ${report.problems.join('; ')}`);
      const written = emulator.writes().length - before;
      if (written !== CHANGES) throw new Error(`${kind}: ${written} writes, expected ${CHANGES}`);
      writes += written;
    }
  }
  const all = [...times.create, ...times.update, ...times.delete];
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(
    `admin-api, commit → verified live on 2 emulated instances, ${CHANGES} model changes per commit (database poll ${pollMs} ms instead of LiteLLM's 30 s):`,
  );
  console.log(
    `  create ${CHANGES}: median ${s(median(times.create))}   update ${CHANGES}: median ${s(median(times.update))}   delete ${CHANGES}: median ${s(median(times.delete))}   (${RUNS} applies each)`,
  );
  console.log(
    `  all ${all.length} applies: median ${s(median(all))}, worst ${s(Math.max(...all))}; ${writes} admin API writes; goal ≤ 1 s`,
  );
  console.log(
    `  of which the strategy (plan, ${CHANGES} writes, wait for both instances): median ${s(median(strategy.reloads.slice(1)))}; the rest is compile, git commit and verify`,
  );
} finally {
  await strategy.stop();
  await emulator.close();
  await rm(repo, { recursive: true, force: true });
}
