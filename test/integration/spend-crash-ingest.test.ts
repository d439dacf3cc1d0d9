import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openLedger } from '../../src/store/migrate.js';
import { callIdCounts } from '../../src/store/ledger.js';
import { deadLetterEntries } from '../helpers/ledger-suite.js';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.js';
import { payload } from '../helpers/spool.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(300_000), hookTimeout: scaled(120_000) });

const LINES = 6000;
/** Every 100th line is poison, by turn: a NUL (cleaned), -1e12 (cleaned), not JSON, 1970. */
const isDead = (i: number): boolean => i % 100 === 99 && Math.floor(i / 100) % 4 >= 2;

/** A backlog of spool lines, as after a burst of traffic: two files of one writer. */
async function writeBacklog(spoolDir: string): Promise<{ stored: string[]; dead: number }> {
  await mkdir(spoolDir, { recursive: true });
  const start = Date.now() / 1000 - 86_400;
  const stored: string[] = [];
  let dead = 0;
  const files: string[][] = [[], []];
  for (let i = 0; i < LINES; i += 1) {
    const id = `crash-${i}`;
    const t = start + i;
    const base = payload(id, { startTime: t, endTime: t + 0.3, request_tags: [`goal:g${i % 7}`] });
    let line = JSON.stringify(base);
    if (i % 100 === 99) {
      const kind = Math.floor(i / 100) % 4;
      if (kind === 0) line = JSON.stringify({ ...base, request_tags: ['goal:x\u0000y'] });
      if (kind === 1) line = JSON.stringify({ ...base, response_cost: -1e12 });
      if (kind === 2) line = `{"litellm_call_id": "${id}", not json`;
      if (kind === 3) line = JSON.stringify({ ...base, startTime: 10, endTime: 11 });
    }
    if (isDead(i)) dead += 1;
    else stored.push(id);
    files[i < LINES / 2 ? 0 : 1]!.push(line);
  }
  await writeFile(path.join(spoolDir, 'spool-1-700-000000.jsonl'), `${files[0]!.join('\n')}\n`);
  await writeFile(path.join(spoolDir, 'spool-1-700-000001.jsonl'), `${files[1]!.join('\n')}\n`);
  return { stored, dead };
}

function startIngester(spoolDir: string, ledger: string, deadDir: string): Promise<ChildProcess> {
  // node itself (not the tsx wrapper), so SIGKILL hits the process that holds the ledger.
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.resolve('test/helpers/ingest-forever.ts'),
      spoolDir,
      ledger,
      deadDir,
      '50',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`ingester exited with ${code}`)));
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(['PGlite', 'PostgreSQL'] as const)(
  'the ingesting controller killed with SIGKILL again and again (%s ledger)',
  (kind) => {
    let dir: string;
    let postgres: PostgresCluster | undefined;
    const children: ChildProcess[] = [];
    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'mc-crash-ingest-'));
      if (kind === 'PostgreSQL') postgres = await startPostgres();
    });
    afterAll(async () => {
      for (const child of children) child.kill('SIGKILL');
      await Promise.all(children.map(exited));
      await postgres?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    it('recovers on every restart: each line in the ledger or the dead-letter file exactly once', async () => {
      const spoolDir = path.join(dir, 'spool');
      const deadDir = path.join(dir, 'spend-dead-letter');
      const ledger = postgres?.url ?? path.join(dir, 'ledger');
      const { stored, dead } = await writeBacklog(spoolDir);
      const rowsNow = async (): Promise<number> => {
        const db = await openLedger(postgres ? { url: postgres.url } : { dataDir: ledger });
        try {
          return (await callIdCounts(db)).size;
        } finally {
          await db.close();
        }
      };

      // Killed mid-ingest until the backlog is through; at least one kill lands mid-way.
      const partials: number[] = [];
      for (let kill = 0; kill < 12; kill += 1) {
        const child = await startIngester(spoolDir, ledger, deadDir);
        children.push(child);
        await sleep(scaled(150 + 100 * kill));
        child.kill('SIGKILL');
        await exited(child);
        const rows = await rowsNow();
        if (rows >= stored.length) break;
        partials.push(rows);
      }
      expect(partials.some((n) => n > 0 && n < stored.length)).toBe(true);

      // A last run that stops cleanly once everything is read.
      const last = await startIngester(spoolDir, ledger, deadDir);
      children.push(last);
      const deadline = Date.now() + scaled(120_000);
      while ((await deadLetterEntries(deadDir)).length < dead && Date.now() < deadline)
        await sleep(200);
      await sleep(500);
      last.kill('SIGTERM');
      await exited(last);

      const db = await openLedger(postgres ? { url: postgres.url } : { dataDir: ledger });
      try {
        const counts = await callIdCounts(db);
        const missing = stored.filter((id) => !counts.has(id));
        const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
        expect({ missing, twice, rows: counts.size }).toEqual({
          missing: [],
          twice: [],
          rows: stored.length,
        });
        // The rollups took each stored line once, too.
        const [sums] = await db.query<{ raw: number; rolled: number }>(
          `SELECT (SELECT count(*)::int FROM spend_requests) AS raw,
                  (SELECT sum(requests)::int FROM spend_hourly) AS rolled`,
        );
        expect(sums).toEqual({ raw: stored.length, rolled: stored.length });
        const [cleaned] = await db.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM spend_requests WHERE cleaned IS NOT NULL',
        );
        expect(cleaned?.n).toBe(LINES / 100 / 2);
      } finally {
        await db.close();
      }
      const entries = await deadLetterEntries(deadDir);
      const places = entries.map((e) => `${e.file}:${e.offset}`);
      expect(new Set(places).size).toBe(places.length);
      expect(entries.map((e) => e.reason).sort()).toEqual(
        [
          ...Array<string>(dead / 2).fill('date-out-of-range'),
          ...Array<string>(dead / 2).fill('not-json'),
        ].sort(),
      );
    });
  },
);
