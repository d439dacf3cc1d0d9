import { appendFile, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { deploymentCatalog } from '../../src/spend/extract.js';
import {
  ingestOnce,
  ingestPayloads,
  parseGenericApiBody,
  type IngestOptions,
} from '../../src/spend/ingest.js';
import { openDatabase, type Database } from '../../src/store/db.js';
import { callIdCounts, rowsOfCall } from '../../src/store/ledger.js';
import { migrate } from '../../src/store/migrate.js';
import { payload, spoolLine } from '../helpers/spool.js';

let dir: string;
let db: Database;
let options: IngestOptions;

beforeAll(async () => {
  db = await openDatabase({});
  await migrate(db);
});
afterAll(() => db.close());

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'modelcenter-spool-'));
  await db.exec('TRUNCATE spend_requests, spend_hourly, spend_daily, spend_spool_offsets');
  options = { db, spoolDir: dir, catalog: deploymentCatalog(undefined) };
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('spool ingestion', () => {
  it('leaves a line cut in half alone and picks it up whole once the rest is written', async () => {
    const file = path.join(dir, 'spool-1-100-000000.jsonl');
    const second = spoolLine(
      payload('call-2', { request_tags: ['goal:half-written', 'caller:alice'] }),
    );
    const cut = Math.floor(second.length / 2);
    await writeFile(file, spoolLine(payload('call-1')) + second.slice(0, cut));
    expect(await ingestOnce(options)).toMatchObject({ lines: 1, inserted: 1, rejected: 0 });
    expect(await callIdCounts(db)).toEqual(new Map([['call-1', 1]]));

    await appendFile(file, second.slice(cut));
    expect(await ingestOnce(options)).toMatchObject({ lines: 1, inserted: 1, rejected: 0 });
    const [row] = await rowsOfCall(db, 'call-2');
    expect(row).toMatchObject({ goal: 'half-written', caller: 'alice', tokens_in: 3 });
  });

  it('reads each line once across runs and never twice when positions are lost', async () => {
    const file = path.join(dir, 'spool-1-100-000000.jsonl');
    await writeFile(file, spoolLine(payload('a')) + spoolLine(payload('b')));
    expect(await ingestOnce(options)).toMatchObject({ inserted: 2 });
    expect(await ingestOnce(options)).toMatchObject({ lines: 0, inserted: 0 });
    await appendFile(file, spoolLine(payload('c')));
    expect(await ingestOnce(options)).toMatchObject({ lines: 1, inserted: 1 });

    await db.query('DELETE FROM spend_spool_offsets');
    expect(await ingestOnce(options)).toMatchObject({ lines: 3, inserted: 0, duplicates: 3 });
    expect([...(await callIdCounts(db)).values()]).toEqual([1, 1, 1]);
    const [hourly] = await db.query<{ requests: number }>(
      'SELECT sum(requests)::int AS requests FROM spend_hourly',
    );
    expect(hourly?.requests).toBe(3);
  });

  it('follows rotation and removes a rotated file once it is read to the end', async () => {
    await writeFile(path.join(dir, 'spool-1-100-000000.jsonl'), spoolLine(payload('old')));
    await writeFile(path.join(dir, 'spool-1-100-000001.jsonl'), spoolLine(payload('new')));
    expect(await ingestOnce(options)).toMatchObject({ inserted: 2, removedFiles: 1 });
    expect(await readdir(dir)).toEqual(['spool-1-100-000001.jsonl']);
    await appendFile(path.join(dir, 'spool-1-100-000001.jsonl'), spoolLine(payload('newer')));
    expect(await ingestOnce(options)).toMatchObject({ inserted: 1 });
  });

  it('skips the incomplete tail of a finished file whose writer died, and lines that are not records', async () => {
    const file = path.join(dir, 'spool-1-200-000000.jsonl');
    await writeFile(file, `${spoolLine(payload('ok'))}not json\n{"half": `);
    const old = new Date(Date.now() - 3 * 3600_000);
    await utimes(file, old, old);
    // Both the line that is not JSON and the cut tail are dead-lettered.
    expect(await ingestOnce(options)).toMatchObject({ inserted: 1, rejected: 2, removedFiles: 1 });
    expect(await readdir(dir)).toEqual([]);
  });

  it('keeps the rollups equal to the raw rows', async () => {
    const lines = Array.from({ length: 50 }, (_, i) =>
      spoolLine(
        payload(`r${i}`, {
          status: i % 5 === 0 ? 'failure' : 'success',
          response_cost: i % 5 === 0 ? 0 : 0.001,
          request_tags: [`goal:g${i % 3}`],
        }),
      ),
    );
    await writeFile(path.join(dir, 'spool-1-300-000000.jsonl'), lines.join(''));
    await ingestOnce({ ...options, batchLines: 7 });
    const raw = await db.query<{ goal: string; n: number; errors: number; cost: number }>(
      `SELECT goal, count(*)::int AS n, count(*) FILTER (WHERE status = 'failure')::int AS errors,
              sum(cost_usd) AS cost FROM spend_requests GROUP BY goal ORDER BY goal`,
    );
    const rolled = await db.query<{ goal: string; n: number; errors: number; cost: number }>(
      `SELECT goal, sum(requests)::int AS n, sum(errors)::int AS errors, sum(cost_usd) AS cost
       FROM spend_hourly GROUP BY goal ORDER BY goal`,
    );
    expect(rolled.map((r) => [r.goal, r.n, r.errors])).toEqual(
      raw.map((r) => [r.goal, r.n, r.errors]),
    );
    expect(raw.map((r) => r.n)).toEqual([17, 17, 16]);
  });
});

describe('generic_api ingest bodies', () => {
  it('accepts json_array, ndjson and single bodies, and counts a resent batch once', async () => {
    const a = payload('ga-1');
    const b = payload('ga-2', { status: 'failure', error_information: { error_class: 'Timeout' } });
    expect(parseGenericApiBody(JSON.stringify([a, b]))).toHaveLength(2);
    expect(parseGenericApiBody(`${JSON.stringify(a)}\n${JSON.stringify(b)}\n`)).toHaveLength(2);
    expect(parseGenericApiBody(JSON.stringify(a))).toHaveLength(1);
    const catalog = deploymentCatalog(undefined);
    const batch = parseGenericApiBody(`${JSON.stringify(a)}\n${JSON.stringify(b)}\nnot json\n`);
    expect(await ingestPayloads(db, batch, catalog)).toEqual({
      inserted: 2,
      duplicates: 0,
      rejected: 1,
      cleaned: 0,
    });
    expect(await ingestPayloads(db, batch, catalog)).toEqual({
      inserted: 0,
      duplicates: 2,
      rejected: 1,
      cleaned: 0,
    });
    expect((await rowsOfCall(db, 'ga-2'))[0]).toMatchObject({
      status: 'failure',
      error_class: 'Timeout',
    });
  });
});
