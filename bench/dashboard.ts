/**
 * The dashboard with a year of hourly rollups for 50 goals: the ledger is seeded with one request
 * per goal per hour for 365 days (438,000 requests → 438,000 hourly and 18,250 daily rollup rows,
 * embedded PGlite), a controller serves it with a real LiteLLM, then
 *   1. each API call the pages make is timed (median of 5, after a warm-up), and
 *   2. headless Chromium (Debian's, as in the tests) loads each view: from navigation to the last
 *      table or chart drawn, and each change of the spend view's period or bucket.
 * Run: npx tsx bench/dashboard.ts [days=365] [goals=50]
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ensureLiteLLMInstalled } from '../src/litellm/install.js';
import { freePort } from '../src/litellm/process.js';
import { createLogger } from '../src/log/logger.js';
import { startService } from '../src/main.js';
import { loadSettings } from '../src/settings/settings.js';
import { insertRows, type LedgerRow } from '../src/store/ledger.js';
import { openLedger } from '../src/store/migrate.js';
import { policyRepo } from '../test/helpers/repo.js';
import { testKey } from '../test/helpers/secrets.js';
import { syntheticPolicies } from '../test/helpers/synthetic.js';

const days = Number(process.argv[2] ?? 365);
const goals = Number(process.argv[3] ?? 50);
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1]!;

/** 50 goals, every fifth with a weekly budget (the budgets view draws them). */
function goalPolicies(): string {
  const lines = ['goals:'];
  for (let g = 0; g < goals; g += 1) {
    lines.push(
      `  goal-${g}: { title: "Goal ${g}"${g % 5 === 0 ? ', budget: { usd: 50, period: 7d, alert_at: [0.5, 0.8, 1.0] }' : ''} }`,
    );
  }
  lines.push('callers:');
  for (let c = 0; c < 10; c += 1) lines.push(`  caller-${c}: { description: "Caller ${c}" }`);
  return lines.join('\n');
}

function row(goal: number, hour: number, startMs: number): LedgerRow {
  const t = startMs / 1000 + hour * 3600 + (goal % 60) * 30;
  const deployment = goal % 6;
  return {
    callId: `g${goal}-h${hour}`,
    startedAt: t,
    endedAt: t + 0.5,
    status: (goal + hour) % 41 === 0 ? 'failure' : 'success',
    goal: `goal-${goal}`,
    caller: `caller-${goal % 10}`,
    conversation: null,
    profile: deployment < 3 ? 'fast' : 'deep',
    deployment: `${deployment < 3 ? 'fast' : 'deep'}/m${deployment}`,
    model: `m${deployment}`,
    provider: `p${deployment % 3}`,
    tokensIn: 300 + (hour % 200),
    tokensOut: 100 + (goal % 50),
    costUsd: 0.001 * (1 + (goal % 7)) * (1 + (hour % 24) / 24),
    latencyMs: 400 + ((goal * hour) % 900),
    ttftMs: null,
    cacheHit: false,
    errorClass: null,
    errorCode: null,
    traceId: null,
    endUser: null,
    keyAlias: null,
  };
}

await ensureLiteLLMInstalled();
const repo = await policyRepo(`${syntheticPolicies(24)}\n${goalPolicies()}\n`);
const token = testKey('mc-bench-');
const env: NodeJS.ProcessEnv = {
  LITELLM_MASTER_KEY: testKey('sk-master-'),
  MODELCENTER_LITELLM_PORT: String(await freePort()),
  MODELCENTER_API_PORT: String(await freePort()),
  MODELCENTER_ADMIN_TOKENS: token,
  MODELCENTER_POLL_SECONDS: '3600',
  MODELCENTER_RELOAD_STRATEGY: 'restart',
  MODELCENTER_LOG_LEVEL: 'warn',
  ...Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`KEY_${i}`, testKey()])),
};
const settings = await loadSettings(env, repo);

// Seed the ledger the controller will open (its default place in the state directory).
const seedStarted = performance.now();
const ledger = await openLedger({ dataDir: path.join(settings.stateDir, 'ledger') });
const hours = days * 24;
const startMs = Math.floor(Date.now() / 3600_000) * 3600_000 - hours * 3600_000;
const batchHours = 100;
for (let h = 0; h < hours; h += batchHours) {
  const batch: LedgerRow[] = [];
  for (let hour = h; hour < Math.min(hours, h + batchHours); hour += 1)
    for (let g = 0; g < goals; g += 1) batch.push(row(g, hour, startMs));
  await ledger.transaction((tx) => insertRows(tx, batch));
}
const [hourly] = await ledger.query<{ n: number }>('SELECT count(*)::int AS n FROM spend_hourly');
const [daily] = await ledger.query<{ n: number }>('SELECT count(*)::int AS n FROM spend_daily');
await ledger.close();
console.log(
  `seeded ${hours * goals} requests (${days} days × ${goals} goals, hourly): ${hourly?.n} hourly and ${daily?.n} daily rollup rows in ${((performance.now() - seedStarted) / 1000).toFixed(0)} s`,
);

const log = createLogger({ level: 'warn', destination: { write: () => undefined }, pretty: false });
const service = await startService(settings, env, log);
const headers = { authorization: `Bearer ${token}` };
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  console.log('API calls the pages make (median of 5 after a warm-up):');
  const calls = [
    '/v1/status',
    '/v1/applies?limit=20',
    '/v1/generated-commits?limit=20',
    '/v1/spend/series?by=goal&bucket=day&since=7d',
    '/v1/spend/series?by=goal&bucket=hour&since=7d',
    '/v1/spend/series?by=goal&bucket=hour&since=30d',
    '/v1/spend/series?by=goal&bucket=day&since=365d',
    '/v1/spend/budgets',
    '/v1/spend/report?groupBy=goal&since=365d&limit=10',
    '/v1/spend/report?groupBy=caller&since=365d&limit=10',
    '/v1/spend/report?groupBy=provider&since=365d',
    '/v1/spend/report?groupBy=goal,provider&since=365d',
    '/v1/providers',
    '/v1/models?source=all',
    '/v1/health/providers',
    '/v1/spend/series?by=provider&bucket=hour&since=24h',
    '/v1/credentials',
    '/v1/keys',
    '/v1/keys/audit?limit=200',
  ];
  for (const call of calls) {
    const times: number[] = [];
    let bytes = 0;
    for (let run = 0; run < 6; run += 1) {
      const started = performance.now();
      const response = await fetch(`${service.apiUrl}${call}`, { headers });
      bytes = (await response.arrayBuffer()).byteLength;
      if (!response.ok) throw new Error(`${call}: ${response.status}`);
      if (run > 0) times.push(performance.now() - started);
    }
    console.log(
      `  ${call.padEnd(52)} ${median(times).toFixed(0).padStart(5)} ms  (${(bytes / 1024).toFixed(0)} KiB)`,
    );
  }

  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  await context.addInitScript(
    `sessionStorage.setItem('modelcenter.token', ${JSON.stringify(token)})`,
  );
  const page = await context.newPage();
  const timeIt = async (label: string, work: () => Promise<unknown>): Promise<number> => {
    const started = performance.now();
    await work();
    const ms = performance.now() - started;
    console.log(`  ${label.padEnd(60)} ${ms.toFixed(0).padStart(5)} ms`);
    return ms;
  };
  /** The chart's legend lists `count` series of `buckets` buckets of that width. */
  /** The chart's legend lists `count` series over at least `buckets` buckets of that width. */
  const seriesDrawn = (count: number, bucket: 'hour' | 'day', buckets: number) =>
    page.waitForFunction(
      `[...document.querySelectorAll('[data-testid=chart-series][data-bucket=${bucket}]')].some(
        (ul) => Number(ul.dataset.buckets) >= ${buckets} && ul.querySelectorAll('li').length === ${count})`,
      undefined,
      { timeout: 30_000 },
    );
  console.log(`page loads in headless Chromium (${goals} goals, a year of hourly rollups):`);
  const results: number[] = [];
  // The browser's own first navigation (process start-up) is not the page's: one before timing.
  await page.goto(`${service.apiUrl}/ui/#live`);
  await page.waitForSelector('[data-table=commits] .tabulator-row');
  for (let run = 0; run < 3; run += 1) {
    results.push(
      await timeIt(
        `Live state: navigation → instances, applies, commits drawn (run ${run + 1})`,
        async () => {
          await page.goto('about:blank');
          await page.goto(`${service.apiUrl}/ui/#live`);
          await page.waitForSelector('[data-table=commits] .tabulator-row');
          await page.waitForSelector('[data-table=instances] .tabulator-row');
        },
      ),
    );
  }
  for (let run = 0; run < 3; run += 1) {
    results.push(
      await timeIt(
        `Spend (7 days, daily): navigation → chart, budgets, tables drawn (run ${run + 1})`,
        async () => {
          await page.goto('about:blank');
          await page.goto(`${service.apiUrl}/ui/#spend`);
          await page.waitForSelector('[data-testid=chart-series] li');
          await page.waitForSelector('[data-table=providers] .tabulator-row');
          await page.waitForSelector('[data-table=top-callers] .tabulator-row');
          await page.waitForSelector('li[data-budget] progress');
        },
      ),
    );
  }
  for (let run = 0; run < 3; run += 1) {
    results.push(
      await timeIt(
        `Providers and models: navigation → providers, health, catalog, chart (run ${run + 1})`,
        async () => {
          await page.goto('about:blank');
          await page.goto(`${service.apiUrl}/ui/#providers`);
          await page.waitForSelector('[data-view=providers] [data-table=providers] .tabulator-row');
          await page.waitForSelector('[data-view=providers] [data-table=curated] .tabulator-row');
          await page.waitForSelector('[data-view=providers] [data-table=health] .tabulator-row');
          await page.waitForSelector('[data-view=providers] [data-testid=chart-series] li');
        },
      ),
    );
  }
  for (let run = 0; run < 3; run += 1) {
    results.push(
      await timeIt(
        `Keys: navigation → credentials, keys, audit drawn (run ${run + 1})`,
        async () => {
          await page.goto('about:blank');
          await page.goto(`${service.apiUrl}/ui/#keys`);
          await page.waitForSelector('[data-view=keys] [data-table=keys] .tabulator-row');
          await page.waitForSelector('[data-view=keys] [data-table=audit] .tabulator-tableholder');
        },
      ),
    );
  }
  // Back to the spend view for the period and bucket changes.
  await page.goto('about:blank');
  await page.goto(`${service.apiUrl}/ui/#spend`);
  await page.waitForSelector('[data-testid=chart-series] li');
  results.push(
    await timeIt('Spend: period → last 90 days (daily, 91 buckets × 50)', async () => {
      await page.selectOption('[data-testid=period]', '90d');
      await seriesDrawn(goals, 'day', 90);
    }),
  );
  results.push(
    await timeIt('Spend: period → last year (daily, 365 buckets × 50 series)', async () => {
      await page.selectOption('[data-testid=period]', '365d');
      await seriesDrawn(goals, 'day', 365);
    }),
  );
  results.push(
    await timeIt('Spend: period → last 30 days, bucket → hourly (720 buckets × 50)', async () => {
      await page.selectOption('[data-testid=period]', '30d');
      await page.selectOption('[data-testid=bucket]', 'hour');
      await seriesDrawn(goals, 'hour', 720);
    }),
  );
  results.push(
    await timeIt('Spend: period → last 7 days, hourly (168 buckets × 50)', async () => {
      await page.selectOption('[data-testid=period]', '7d');
      await seriesDrawn(goals, 'hour', 168);
    }),
  );
  console.log(`slowest: ${Math.max(...results).toFixed(0)} ms`);
} finally {
  await browser.close();
  await service.stop();
  await rm(repo, { recursive: true, force: true });
}
