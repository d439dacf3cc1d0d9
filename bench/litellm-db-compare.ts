/**
 * Side by side with LiteLLM's own database mode, in one run on one machine (one PostgreSQL, one
 * fake OpenAI upstream, the pinned LiteLLM, Prisma engines from ../shared/litellm-db):
 * (a) request throughput: a database-mode LiteLLM writing its own spend logs (LiteLLM_SpendLogs,
 *     flushed every 1 s) vs a configuration-mode LiteLLM with Model Center's spool callback; the
 *     same clients, alternating windows, one LiteLLM worker each;
 * (b) a spend report over ROWS requests: LiteLLM's own report routes (`GET /spend/logs` summarized
 *     by day × key × user × model, `GET /spend/tags` by tag; /global/spend/report is Enterprise)
 *     over rows inserted into LiteLLM_SpendLogs by SQL, vs Model Center's spend report (the
 *     function behind `GET /v1/spend/report`) over the same number of requests in its PostgreSQL
 *     ledger, same cluster;
 * (c) a model change: `POST /model/new` on instance A, time until instance B answers a request
 *     for it (its database poll, 2 s in this harness, LiteLLM's default 30 s), vs Model Center's
 *     verified apply (commit → written through the admin API → verified on both instances).
 * Prints one table.
 * Run: npx tsx bench/litellm-db-compare.ts [ROWS=1000000] [SECONDS_PER_WINDOW=3] [ROUNDS=4]
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { buildFromTexts } from '../src/compile/build.js';
import { render } from '../src/compile/render.js';
import { startLiteLLM } from '../src/litellm/process.js';
import { AdminApiStrategy } from '../src/reload/admin-api.js';
import { spendReport } from '../src/spend/report.js';
import type { ReportQuery } from '../src/spend/schema.js';
import { insertRows, type LedgerRow } from '../src/store/ledger.js';
import { openLedger } from '../src/store/migrate.js';
import { startOpenAIFake } from '../test/fakes/openai.js';
import { controllerFor } from '../test/helpers/controller.js';
import { databaseUrl, prepareLiteLLMDb, sql, startDbStack } from '../test/helpers/litellm-db.js';
import { commitPolicies, policyRepo } from '../test/helpers/repo.js';
import { testKey } from '../test/helpers/secrets.js';

const ROWS = Number(process.argv[2] ?? 1_000_000);
const WINDOW_SECONDS = Number(process.argv[3] ?? 3);
const ROUNDS = Number(process.argv[4] ?? 4);
const CLIENTS = 8;
const CHANGES = 5;
/** The instances poll their database every 2 s: each change starts at a random moment of that. */
const POLL_MS = 2000;
const SPAN_SECONDS = 30 * 86_400;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] ?? 0;
const percentile = (v: number[], p: number) =>
  [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor((v.length * p) / 100))] ?? 0;
const ms = (n: number) => `${n.toFixed(0)} ms`;
const s = (n: number) => `${(n / 1000).toFixed(2)} s`;
const table: [string, string, string][] = [];
const log = (line: string) => process.stderr.write(`${line}\n`);

const masterKey = testKey('sk-master-');
const openaiKey = testKey();
const dir = await mkdtemp(path.join(tmpdir(), 'mc-bench-dbcompare-'));
const upstream = await startOpenAIFake({ name: 'openai', apiKey: openaiKey });
const env = { OPENAI_API_KEY: openaiKey };
const loadAtStart = loadavg();
log('preparing PostgreSQL, the Prisma engines and the migrated template database…');
const { context, cluster } = await prepareLiteLLMDb();
const stack = await startDbStack({
  context,
  masterKey,
  count: 2,
  env,
  extraModels: `  - model_name: gpt-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: ${upstream.url}/v1
      api_key: os.environ/OPENAI_API_KEY
    model_info:
      id: yaml-gpt-mini`,
});

const providers = `
providers:
  openai:
    kind: openai
    credential: env:OPENAI_API_KEY
    base_url: ${upstream.url}/v1
models:
  gpt-mini:
    provider: openai
    upstream: gpt-4o-mini
    capabilities: [chat]
    pricing: { input_per_mtok: 0.15, output_per_mtok: 0.6 }
`;

/** (a) The same clients against each instance in alternating windows. */
async function throughput(): Promise<void> {
  const build = buildFromTexts([{ name: 'bench.yaml', text: providers }]);
  if (!build.config) throw new Error('bench policies do not compile');
  const configPath = path.join(dir, 'spool.yaml');
  await writeFile(configPath, render(build.config));
  const spoolDir = path.join(dir, 'spool');
  const spooled = await startLiteLLM({ configPath, masterKey, spoolDir, env });
  const sides = [
    { label: 'db', url: stack.urls[0]!, latencies: [] as number[], seconds: 0, failed: 0, ok: 0 },
    { label: 'spool', url: spooled.url, latencies: [] as number[], seconds: 0, failed: 0, ok: 0 },
  ];
  type Side = (typeof sides)[number];
  const send = async (side: Side, record: boolean) => {
    const started = performance.now();
    const response = await fetch(`${side.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${masterKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'gpt-mini',
        messages: [{ role: 'user', content: 'hello' }],
        tags: ['goal:bench', 'caller:bench'],
      }),
    }).catch(() => undefined);
    await response?.arrayBuffer().catch(() => undefined);
    if (response?.ok) side.ok++;
    if (!record) return;
    if (response?.ok) side.latencies.push(performance.now() - started);
    else side.failed++;
  };
  const window = async (side: Side, seconds: number, record = true) => {
    const started = performance.now();
    const end = Date.now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (Date.now() < end) await send(side, record);
      }),
    );
    if (record) side.seconds += (performance.now() - started) / 1000;
  };
  try {
    const [db, spool] = sides as [Side, Side];
    for (const side of sides) await window(side, 2, false); // warm-up
    for (let round = 0; round < ROUNDS; round++)
      for (const side of round % 2 === 0 ? [db, spool] : [spool, db])
        await window(side, WINDOW_SECONDS);
    await spooled.stop(); // flushes the spool
    await sleep(3000); // LiteLLM flushes its spend logs every 1 s here (default 10 s)
    const logged = await spendLogCount();
    let lines = 0;
    for (const file of await readdir(spoolDir).catch(() => [] as string[]))
      lines += (await readFile(path.join(spoolDir, file), 'utf8'))
        .split('\n')
        .filter(Boolean).length;
    const figure = (side: Side) =>
      `${(side.latencies.length / side.seconds).toFixed(1)} req/s, p50 ${ms(percentile(side.latencies, 50))}, p95 ${ms(percentile(side.latencies, 95))}${side.failed ? `, ${side.failed} failed` : ''}`;
    table.push([
      `(a) throughput, ${CLIENTS} clients, ${ROUNDS} × ${WINDOW_SECONDS} s alternating windows each, 1 worker each`,
      `${figure(db)}; ${logged} SpendLogs rows for ${db.ok} answers (warm-up included)`,
      `${figure(spool)}; ${lines} spool lines for ${spool.ok} answers (warm-up included)`,
    ]);
  } finally {
    await spooled.stop();
  }
}

async function spendLogCount(): Promise<number> {
  const result = await sql(
    context.clusterUrl,
    stack.database,
    'SELECT count(*)::int AS n FROM "LiteLLM_SpendLogs"',
  );
  return (result.rows[0] as { n: number }).n;
}

/** The same shape of traffic on both sides: 20 goals, 30 callers, 6 models, over 30 days. */
const shape = (i: number) => {
  const caller = i % 30;
  const goal = i % 2 === 0 ? caller % 20 : (caller * 7 + 3) % 20;
  const model = (caller + (i % 4 < 2 ? 0 : 3)) % 6;
  return { caller, goal, model };
};

function ledgerRow(i: number, start: number): LedgerRow {
  const { caller, goal, model } = shape(i);
  const t = start + (i / ROWS) * SPAN_SECONDS;
  return {
    callId: `r${i}`,
    startedAt: t,
    endedAt: t + 0.5,
    status: 'success',
    goal: `goal-${goal}`,
    caller: `caller-${caller}`,
    conversation: null,
    profile: 'fast',
    deployment: `fast/model-${model}`,
    model: `model-${model}`,
    provider: `provider-${model % 3}`,
    tokensIn: 200 + (i % 800),
    tokensOut: 50 + (i % 400),
    costUsd: 0.0004 * (1 + (i % 9)),
    latencyMs: 500,
    ttftMs: null,
    cacheHit: false,
    errorClass: null,
    errorCode: null,
    traceId: null,
    endUser: null,
    keyAlias: null,
  };
}

/** Runs `fn` three times; the median. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let run = 0; run < 3; run++) {
    const started = performance.now();
    await fn();
    times.push(performance.now() - started);
  }
  return median(times);
}

/** (b) LiteLLM's own spend routes over SQL-inserted SpendLogs vs Model Center's ledger report. */
async function spendReports(): Promise<void> {
  const now = new Date();
  const start = now.getTime() / 1000 - SPAN_SECONDS;
  // LiteLLM: rows as its spend writer leaves them (tags in request_tags), by SQL in 100k chunks.
  let seeded = performance.now();
  for (let from = 0; from < ROWS; from += 100_000) {
    const to = Math.min(ROWS, from + 100_000) - 1;
    await sql(
      context.clusterUrl,
      stack.database,
      `INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, api_key, spend, total_tokens,
         prompt_tokens, completion_tokens, "startTime", "endTime", model, model_id, model_group,
         custom_llm_provider, "user", request_tags, status, updated_at)
       SELECT 'bench-' || i, 'acompletion', 'key-' || (i % 30), 0.0004 * (1 + i % 9),
         250 + i % 800 + i % 400, 200 + i % 800, 50 + i % 400,
         to_timestamp(${start} + (i::float8 / ${ROWS}) * ${SPAN_SECONDS}),
         to_timestamp(${start} + (i::float8 / ${ROWS}) * ${SPAN_SECONDS} + 0.5),
         'model-' || ((i % 30 + CASE WHEN i % 4 < 2 THEN 0 ELSE 3 END) % 6), '', 'fast', 'openai',
         'caller-' || (i % 30),
         jsonb_build_array('goal:goal-' || CASE WHEN i % 2 = 0 THEN (i % 30) % 20
           ELSE ((i % 30) * 7 + 3) % 20 END, 'caller:caller-' || (i % 30)),
         'success', now()
       FROM generate_series(${from}, ${to}) AS i`,
    );
  }
  await sql(context.clusterUrl, stack.database, 'ANALYZE "LiteLLM_SpendLogs"');
  seeded = performance.now() - seeded;
  log(`LiteLLM_SpendLogs: ${ROWS} rows inserted in ${s(seeded)}`);
  const day = (d: Date) => d.toISOString().slice(0, 10);
  const from = day(new Date((start - 86_400) * 1000));
  const to = day(new Date(now.getTime() + 86_400_000));
  const ask = async (route: string) => {
    const response = await fetch(`${stack.urls[0]}${route}`, {
      headers: { authorization: `Bearer ${masterKey}` },
    });
    const body = await response.text();
    if (!response.ok) throw new Error(`${route}: ${response.status} ${body.slice(0, 300)}`);
    return body;
  };
  const byDay = await timed(() => ask(`/spend/logs?start_date=${from}&end_date=${to}`));
  const byTag = await timed(() => ask('/spend/tags'));

  // Model Center: the same number of requests in its ledger (a database of the same cluster).
  await sql(context.clusterUrl, 'postgres', 'CREATE DATABASE mc_ledger');
  const ledger = await openLedger({ url: databaseUrl(context.clusterUrl, 'mc_ledger') });
  try {
    let loaded = performance.now();
    for (let i = 0; i < ROWS; i += 5000) {
      const batch = Array.from({ length: Math.min(5000, ROWS - i) }, (_, k) =>
        ledgerRow(i + k, start),
      );
      await ledger.transaction((tx) => insertRows(tx, batch));
    }
    loaded = performance.now() - loaded;
    log(`Model Center ledger: ${ROWS} rows inserted in ${s(loaded)}`);
    const report = (query: ReportQuery) => () => spendReport(ledger, query, { now });
    const goalModel = await timed(report({ groupBy: 'goal,model', since: '30d' }));
    const callerDay = await timed(report({ groupBy: 'caller,day', since: '30d' }));
    table.push(
      [
        `(b) spend report over N = ${ROWS.toLocaleString('en')} requests, 30 days (median of 3)`,
        `GET /spend/logs (day × key × user × model): ${ms(byDay)}; GET /spend/tags (goal and caller tags): ${ms(byTag)}`,
        `report goal × model: ${ms(goalModel)}; caller × day: ${ms(callerDay)}`,
      ],
      [
        '    seeding those rows (not a report figure)',
        `SQL INSERT … generate_series: ${s(seeded)}`,
        `ledger insert (rollups kept): ${s(loaded)}`,
      ],
    );
  } finally {
    await ledger.close();
  }
}

/** (c) One model change to two instances on one database. */
async function modelChange(): Promise<void> {
  const gptBig = `  gpt-big:\n    provider: openai\n    upstream: gpt-4o\n    capabilities: [chat]\n    pricing: { input_per_mtok: 2.5, output_per_mtok: 10 }\n`;
  const repo = await policyRepo(providers);
  const strategy = new AdminApiStrategy({
    instances: stack.urls,
    masterKey,
    pollIntervalMs: 100,
    convergeTimeoutMs: 120_000,
  });
  const answers = async (url: string, model: string) => {
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${masterKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
    }).catch(() => undefined);
    const body = (await response?.text().catch(() => '')) ?? '';
    if (response?.ok !== true) return undefined;
    return (JSON.parse(body) as { model?: string }).model ?? '?';
  };
  try {
    // Model Center first: its plan would remove the models added by hand below.
    const controller = await controllerFor(repo, strategy);
    const first = await controller.apply();
    if (first.outcome !== 'applied') throw new Error(`first apply: ${first.problems.join('; ')}`);
    const applies: number[] = [];
    for (let run = 0; run < CHANGES; run++) {
      const adding = run % 2 === 0;
      await commitPolicies(repo, adding ? providers + gptBig : providers, `bench change ${run}`);
      await sleep(Math.random() * POLL_MS);
      const started = performance.now();
      const report = await controller.apply();
      applies.push(performance.now() - started);
      if (report.outcome !== 'applied')
        throw new Error(`apply ${run}: ${report.outcome} ${report.problems.join('; ')}`);
      if (((await answers(stack.urls[1]!, 'gpt-big')) !== undefined) !== adding)
        throw new Error(`apply ${run}: instance B does not serve what was applied`);
    }
    const propagations: number[] = [];
    for (let run = 0; run < CHANGES; run++) {
      const id = `raw-${run}`;
      if ((await answers(stack.urls[1]!, id)) !== undefined)
        throw new Error(`B answers for ${id} before it exists`);
      await sleep(Math.random() * POLL_MS);
      const started = performance.now();
      const response = await fetch(`${stack.urls[0]}/model/new`, {
        method: 'POST',
        headers: { authorization: `Bearer ${masterKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model_name: id,
          litellm_params: {
            model: 'openai/gpt-4o',
            api_base: `${upstream.url}/v1`,
            api_key: 'os.environ/OPENAI_API_KEY',
          },
          model_info: { id },
        }),
      });
      if (!response.ok) throw new Error(`/model/new: ${response.status} ${await response.text()}`);
      for (;;) {
        const served = await answers(stack.urls[1]!, id);
        if (served !== undefined) {
          propagations.push(performance.now() - started);
          break;
        }
        if (performance.now() - started > 120_000) throw new Error(`${id} never reached B`);
        await sleep(50);
      }
    }
    const list = (v: number[]) => v.map(s).join(', ');
    table.push([
      `(c) one model change, 2 instances on one database (database poll 2 s; LiteLLM's default is 30 s)`,
      `POST /model/new on A → B answers for it: median ${s(median(propagations))} (${list(propagations)})`,
      `commit → verified apply on A and B: median ${s(median(applies))} (${list(applies)})`,
    ]);
  } finally {
    await strategy.stop();
    await rm(repo, { recursive: true, force: true });
  }
}

try {
  log('(a) throughput…');
  await throughput();
  log('(b) spend report…');
  await spendReports();
  log('(c) model change…');
  await modelChange();
} finally {
  await stack.stop();
  await cluster.stop();
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
}

const widths = [0, 1, 2].map((c) => Math.max(...table.map((row) => row[c]!.length)));
const lock = await readFile(
  path.join(import.meta.dirname, '..', 'litellm', 'requirements.lock'),
  'utf8',
);
const version = /^litellm==([\d.]+)/m.exec(lock)?.[1] ?? '?';
// The header names the version: bench:all keeps only the lines with a figure in them.
const header: [string, string, string] = ['', `LiteLLM ${version} database mode`, 'Model Center'];
const line = (row: string[]) =>
  row
    .map((cell, c) => (c === 2 ? cell : cell.padEnd(Math.max(widths[c]!, header[c]!.length))))
    .join(' | ');
console.log(
  `LiteLLM database mode vs Model Center, one run, one machine (load average ${loadAtStart.map((n) => n.toFixed(2)).join(' ')} → ${loadavg()
    .map((n) => n.toFixed(2))
    .join(' ')}); N = ${ROWS.toLocaleString('en')}`,
);
console.log(line(header));
for (const row of table) console.log(line(row));
