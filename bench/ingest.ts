/**
 * Ingestion throughput: spool files (real StandardLoggingPayload lines as the spool callback
 * writes them, about 4.6 KB each) into the ledger, on embedded PGlite (a directory on disk) and
 * on PostgreSQL (a throw-away Debian-package cluster). Goal: ≥ 10,000 events/s embedded.
 * With `content`, every line also carries a prompt and a response (about 1 KB) and the policies
 * keep them (`spend.keep_content`): what storing content costs.
 * Run: npx tsx bench/ingest.ts [events=100000] [lines per transaction=2000] [content]
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { deploymentCatalog } from '../src/spend/extract.js';
import { ingestOnce } from '../src/spend/ingest.js';
import { countRawRows } from '../src/store/ledger.js';
import { openLedger } from '../src/store/migrate.js';
import { startPostgres } from '../test/helpers/postgres.js';
import { payloadFixture } from '../test/helpers/spool.js';

const events = Number(process.argv[2] ?? 100_000);
const batchLines = Number(process.argv[3] ?? 2000);
const withContent = process.argv[4] === 'content';
const dir = await mkdtemp(path.join(tmpdir(), 'mc-bench-ingest-'));

/** `events` lines over 4 files, like 2 workers that each rotated once; varied goals and models. */
async function writeSpool(spoolDir: string): Promise<number> {
  await mkdir(spoolDir, { recursive: true });
  const base = payloadFixture('success-tagged');
  const start = Date.now() / 1000 - 3 * 86_400;
  const perFile = Math.ceil(events / 4);
  let bytes = 0;
  for (let file = 0; file < 4; file += 1) {
    const lines: string[] = [];
    for (let i = file * perFile; i < Math.min(events, (file + 1) * perFile); i += 1) {
      const t = start + i * 2.5;
      lines.push(
        JSON.stringify({
          ...base,
          litellm_call_id: `bench-${i}`,
          startTime: t,
          endTime: t + 0.2 + (i % 50) / 100,
          request_tags: [`goal:g${i % 20}`, `caller:c${i % 30}`],
          model_id: `fast/m${i % 6}`,
          prompt_tokens: 100 + (i % 400),
          completion_tokens: 20 + (i % 300),
          response_cost: 0.0001 * (1 + (i % 7)),
          ...(withContent && {
            messages: [
              { role: 'system', content: 'You write concise quarterly reports.' },
              { role: 'user', content: `Summarise item ${i}: ${'revenue and costs '.repeat(20)}` },
            ],
            response: {
              id: `chatcmpl-${i}`,
              choices: [
                {
                  index: 0,
                  message: { role: 'assistant', content: `Item ${i}: ${'stable '.repeat(40)}` },
                  finish_reason: 'stop',
                },
              ],
            },
          }),
        }),
      );
    }
    const text = `${lines.join('\n')}\n`;
    bytes += Buffer.byteLength(text);
    await writeFile(
      path.join(spoolDir, `spool-1-${100 + (file >> 1)}-00000${file & 1}.jsonl`),
      text,
    );
  }
  return bytes;
}

async function run(label: string, ledger: Parameters<typeof openLedger>[0]): Promise<void> {
  const spoolDir = path.join(dir, `spool-${label}`);
  const bytes = await writeSpool(spoolDir);
  const db = await openLedger(ledger);
  try {
    const started = performance.now();
    const cpu = process.cpuUsage();
    const result = await ingestOnce({
      db,
      spoolDir,
      catalog: deploymentCatalog(undefined),
      keepContent: () => withContent,
      batchLines,
    });
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    const cpuSeconds = (used.user + used.system) / 1e6;
    const rows = await countRawRows(db);
    if (rows !== events || result.inserted !== events)
      throw new Error(`${label}: expected ${events} rows, got ${rows}`);
    const [stored] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM spend_content');
    if ((stored?.n ?? 0) !== (withContent ? events : 0))
      throw new Error(
        `${label}: expected content for ${withContent ? events : 0} rows, got ${stored?.n}`,
      );
    // PGlite runs inside this process, so its CPU time measures the work without the noise of a
    // shared machine; PostgreSQL's server time is in another process and not in this figure.
    console.log(
      `${label}: ${events} events${withContent ? ' with content' : ''} (${(bytes / 1e6).toFixed(0)} MB of spool) in ${seconds.toFixed(2)} s = ${Math.round(events / seconds)} events/s` +
        ` (this process used ${cpuSeconds.toFixed(2)} CPU s = ${Math.round(events / cpuSeconds)} events per CPU second; load average ${loadavg()[0]!.toFixed(1)})`,
    );
  } finally {
    await db.close();
  }
}

try {
  await run('PGlite (embedded, on disk)', { dataDir: path.join(dir, 'pglite') });
  const cluster = await startPostgres();
  try {
    await run('PostgreSQL 15 (Debian package, local)', { url: cluster.url });
  } finally {
    await cluster.stop();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
