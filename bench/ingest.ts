/**
 * Ingestion throughput: spool files (real StandardLoggingPayload lines as the spool callback
 * writes them, about 4.6 KB each) into the ledger, on embedded PGlite (a directory on disk) and
 * on PostgreSQL (a throw-away Debian-package cluster). Goal: ≥ 10,000 events/s embedded.
 * With `content`, every line also carries a prompt and a response (about 1 KB) and the policies
 * keep them (`spend.keep_content`): what storing content costs.
 * With `poison`, one line in 100 is one the ledger cannot store as it is (in turn: a NUL in a
 * tag, a cost of -1e12, not JSON, a start in 1970): cleaned or dead-lettered, the rest stored.
 * Run: npx tsx bench/ingest.ts [events=100000] [lines per transaction=2000] [content] [poison]
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { DeadLetterBox } from '../src/spend/dead-letter.js';
import { deploymentCatalog } from '../src/spend/extract.js';
import { ingestOnce } from '../src/spend/ingest.js';
import { countRawRows } from '../src/store/ledger.js';
import { openLedger } from '../src/store/migrate.js';
import { startPostgres } from '../test/helpers/postgres.js';
import { payloadFixture } from '../test/helpers/spool.js';

const events = Number(process.argv[2] ?? 100_000);
const batchLines = Number(process.argv[3] ?? 2000);
const withContent = process.argv.slice(4).includes('content');
const withPoison = process.argv.slice(4).includes('poison');
/** Lines that cannot be stored at all (with `poison`): the not-JSON and 1970 ones. */
const deadLines = withPoison
  ? Array.from({ length: events }, (_, i) => i).filter(
      (i) => i % 100 === 99 && Math.floor(i / 100) % 4 >= 2,
    ).length
  : 0;
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
      if (withPoison && i % 100 === 99) {
        lines.push(poisonLine(base, i, t));
        continue;
      }
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

/** One line of the four kinds `poison` mixes in, by turn. */
function poisonLine(base: Record<string, unknown>, i: number, t: number): string {
  const kind = Math.floor(i / 100) % 4;
  const record = { ...base, litellm_call_id: `bench-${i}`, startTime: t, endTime: t + 0.2 };
  if (kind === 0) return JSON.stringify({ ...record, request_tags: [`goal:g\u0000${i % 20}`] });
  if (kind === 1) return JSON.stringify({ ...record, response_cost: -1e12 });
  if (kind === 2) return `{"litellm_call_id": "bench-${i}", not json`;
  return JSON.stringify({ ...record, startTime: 0, endTime: 1 });
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
      deadLetters: new DeadLetterBox({ dir: path.join(dir, `dead-letter-${label}`) }),
      batchLines,
    });
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    const cpuSeconds = (used.user + used.system) / 1e6;
    const rows = await countRawRows(db);
    const stored = events - deadLines;
    if (rows !== stored || result.inserted !== stored || result.rejected !== deadLines)
      throw new Error(`${label}: expected ${stored} rows, got ${rows}`);
    const [kept] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM spend_content');
    if ((kept?.n ?? 0) !== (withContent ? stored : 0))
      throw new Error(
        `${label}: expected content for ${withContent ? stored : 0} rows, got ${kept?.n}`,
      );
    // PGlite runs inside this process, so its CPU time measures the work without the noise of a
    // shared machine; PostgreSQL's server time is in another process and not in this figure.
    console.log(
      `${label}: ${events} events${withContent ? ' with content' : ''}${withPoison ? ` (1 in 100 poisoned: ${result.cleaned} cleaned, ${result.rejected} dead-lettered)` : ''} (${(bytes / 1e6).toFixed(0)} MB of spool) in ${seconds.toFixed(2)} s = ${Math.round(events / seconds)} events/s` +
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
