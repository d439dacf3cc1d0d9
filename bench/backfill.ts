/**
 * Backfill throughput: LiteLLM's own spend logs (`GET /spend/logs/v2`, served by the database-mode
 * emulator over HTTP) into the embedded ledger, over 7 days with two busy hours above LiteLLM's
 * 10,000-row cap. Prints rows/s, windows, splits and HTTP reads; checks every row arrived once.
 * Run: npx tsx bench/backfill.ts [rows=100000]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { LiteLLMAdminClient } from '../src/litellm/admin-client.js';
import { backfillSpendLogs } from '../src/spend/backfill.js';
import { countRawRows } from '../src/store/ledger.js';
import { openLedger } from '../src/store/migrate.js';
import { startDbEmulator } from '../test/emulator/litellm-db.js';
import { testKey } from '../test/helpers/secrets.js';
import { spendLogFixture } from '../test/helpers/spend-logs.js';

const rows = Number(process.argv[2] ?? 100_000);
const masterKey = testKey('sk-master-');
const DAY = 86_400_000;
const to = Date.now() - 3_600_000;
const from = to - 7 * DAY;

const emulator = await startDbEmulator({ masterKey, instances: [{}] });
const busy = Math.min(30_000, Math.floor(rows * 0.3));
const spread = rows - busy;
for (let i = 0; i < spread; i++)
  emulator.spendLogs.push(
    spendLogFixture(from + Math.floor((i * 7 * DAY) / spread), {
      request_tags: [`goal:g${i % 20}`, `caller:c${i % 30}`],
    }),
  );
// Two busy hours, 15,000 requests each.
for (let i = 0; i < busy; i++) {
  const hour = from + (i % 2 === 0 ? 2 : 5) * DAY;
  emulator.spendLogs.push(spendLogFixture(hour + Math.floor((i / 2) * (3_600_000 / (busy / 2)))));
}

const dir = await mkdtemp(path.join(tmpdir(), 'mc-bench-backfill-'));
const db = await openLedger({ dataDir: path.join(dir, 'ledger') });
try {
  const started = performance.now();
  const result = await backfillSpendLogs({
    db,
    source: new LiteLLMAdminClient(emulator.urls[0]!, masterKey, 60_000),
    catalog: () => undefined,
    from: new Date(from),
    to: new Date(to),
  });
  const seconds = (performance.now() - started) / 1000;
  const stored = await countRawRows(db);
  console.log(
    `backfill ${rows} spend-log rows over 7 days (two hours of ${busy / 2} each): ${seconds.toFixed(1)} s, ${Math.round(
      rows / seconds,
    )} rows/s; ${result.windows} windows, ${result.splits} splits, ${emulator.requests.length} HTTP reads; ledger rows ${stored} (${stored === rows ? 'all, once' : 'MISMATCH'}); load ${loadavg()[0]!.toFixed(1)}`,
  );
  const again = performance.now();
  const second = await backfillSpendLogs({
    db,
    source: new LiteLLMAdminClient(emulator.urls[0]!, masterKey, 60_000),
    catalog: () => undefined,
    from: new Date(from),
    to: new Date(to),
  });
  console.log(
    `the same range again: ${((performance.now() - again) / 1000).toFixed(1)} s, ${second.inserted} new, ${second.known} known`,
  );
} finally {
  await db.close();
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
}
