/**
 * Report latency over 1,000,000 recorded requests spread over 30 days: grouped by goal × model
 * over 30 days (goal: ≤ 300 ms embedded) and by caller × day, on embedded PGlite (on disk) and
 * on PostgreSQL; and one call looked up by id (`spend show`). Shape of the data: 20 goals, 30 callers (each works on 2 goals through 2 of 6
 * deployments), so an hour holds at most 120 rollup rows (about 86,000 over 30 days).
 * Run: npx tsx bench/report.ts [rows=1000000] [pglite|postgres|both]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spendReport } from '../src/spend/report.js';
import { callRecord } from '../src/spend/request.js';
import type { ReportQuery } from '../src/spend/schema.js';
import type { DatabaseOptions } from '../src/store/db.js';
import { insertRows, type LedgerRow } from '../src/store/ledger.js';
import { openLedger } from '../src/store/migrate.js';
import { startPostgres } from '../test/helpers/postgres.js';

const total = Number(process.argv[2] ?? 1_000_000);
const which = process.argv[3] ?? 'both';
const now = new Date();
const span = 30 * 86_400;
const start = now.getTime() / 1000 - span;

function row(i: number): LedgerRow {
  const caller = i % 30;
  const goal = i % 2 === 0 ? caller % 20 : (caller * 7 + 3) % 20;
  const deployment = (caller + (i % 4 < 2 ? 0 : 3)) % 6;
  const t = start + (i / total) * span;
  const failed = i % 37 === 0;
  return {
    callId: `r${i}`,
    startedAt: t,
    endedAt: t + 0.3 + (i % 100) / 50,
    status: failed ? 'failure' : 'success',
    goal: `goal-${goal}`,
    caller: `caller-${caller}`,
    conversation: `conv-${i % 5000}`,
    profile: deployment < 3 ? 'fast' : 'deep',
    deployment: `${deployment < 3 ? 'fast' : 'deep'}/model-${deployment}`,
    model: `model-${deployment}`,
    provider: `provider-${deployment % 3}`,
    tokensIn: 200 + (i % 800),
    tokensOut: failed ? 0 : 50 + (i % 400),
    costUsd: failed ? 0 : 0.0004 * (1 + (i % 9)),
    latencyMs: 300 + (i % 100) * 20,
    ttftMs: i % 3 === 0 ? 80 + (i % 50) * 4 : null,
    cacheHit: i % 11 === 0,
    errorClass: failed ? 'RateLimitError' : null,
    errorCode: failed ? '429' : null,
    traceId: null,
    endUser: null,
    keyAlias: null,
  };
}

async function bench(label: string, options: DatabaseOptions): Promise<void> {
  const db = await openLedger(options);
  try {
    const loadStart = performance.now();
    for (let i = 0; i < total; i += 5000) {
      const batch = Array.from({ length: Math.min(5000, total - i) }, (_, k) => row(i + k));
      await db.transaction((tx) => insertRows(tx, batch));
    }
    const loadSeconds = (performance.now() - loadStart) / 1000;
    const [rollups] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM spend_hourly');
    console.log(
      `${label}: loaded ${total} rows in ${loadSeconds.toFixed(0)} s (${Math.round(total / loadSeconds)} rows/s); ${rollups?.n} hourly rollup rows`,
    );
    const queries: [string, ReportQuery][] = [
      ['goal × model, 30 days', { groupBy: 'goal,model', since: '30d' }],
      ['caller × day, 30 days', { groupBy: 'caller,day', since: '30d' }],
      ['total this week', { since: '7d' }],
      ['provider reliability, 30 days', { groupBy: 'provider', since: '30d', sort: 'error_rate' }],
    ];
    for (const [name, query] of queries) {
      const times: number[] = [];
      let lines = 0;
      let requests = 0;
      for (let run = 0; run < 7; run += 1) {
        const t = performance.now();
        const report = await spendReport(db, query, { now });
        times.push(performance.now() - t);
        lines = report.lines.length;
        requests = report.total.requests;
      }
      times.sort((a, b) => a - b);
      console.log(
        `  ${name}: median ${times[3]!.toFixed(0)} ms (min ${times[0]!.toFixed(0)}, max ${times[6]!.toFixed(0)}; 7 runs) — ${lines} lines, ${requests} requests`,
      );
    }
    // `spend show` / GET /v1/spend/requests/{callId}: one call looked up among all raw rows.
    const lookups: number[] = [];
    for (let run = 0; run < 7; run += 1) {
      const t = performance.now();
      await callRecord(db, `r${Math.floor(((run + 1) * total) / 8)}`);
      lookups.push(performance.now() - t);
    }
    lookups.sort((a, b) => a - b);
    console.log(
      `  one call by id (spend show): median ${lookups[3]!.toFixed(0)} ms (min ${lookups[0]!.toFixed(0)}, max ${lookups[6]!.toFixed(0)}; 7 runs)`,
    );
  } finally {
    await db.close();
  }
}

const dir = await mkdtemp(path.join(tmpdir(), 'mc-bench-report-'));
try {
  if (which !== 'postgres')
    await bench('PGlite (embedded, on disk)', { dataDir: path.join(dir, 'pglite') });
  if (which !== 'pglite') {
    const cluster = await startPostgres();
    try {
      await bench('PostgreSQL 15 (Debian package, local)', { url: cluster.url });
    } finally {
      await cluster.stop();
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
