import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { deploymentCatalog } from '../../src/spend/extract.js';
import { ingestOnce, ingestPayloads } from '../../src/spend/ingest.js';
import { callRecord, formatCall, UnknownCallError } from '../../src/spend/request.js';
import { openDatabase, type Database } from '../../src/store/db.js';
import { countRawRows, pruneRawRows } from '../../src/store/ledger.js';
import { migrate } from '../../src/store/migrate.js';
import { payload, spoolLine } from '../helpers/spool.js';

let db: Database;
let dir: string;
const catalog = deploymentCatalog(undefined);
const MESSAGES = [{ role: 'user', content: 'what is in the quarterly report?' }];
const RESPONSE = { choices: [{ message: { role: 'assistant', content: 'revenue went up' } }] };

const withContent = (callId: string, overrides: Record<string, unknown> = {}) =>
  payload(callId, { messages: MESSAGES, response: RESPONSE, ...overrides });

async function contentRows(): Promise<{ call_id: string; messages: unknown; response: unknown }[]> {
  return db.query('SELECT call_id, messages, response FROM spend_content ORDER BY call_id');
}

beforeAll(async () => {
  db = await openDatabase({});
  await migrate(db);
  dir = await mkdtemp(path.join(tmpdir(), 'modelcenter-content-'));
});
afterAll(async () => {
  await db?.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() =>
  db.exec('TRUNCATE spend_requests, spend_hourly, spend_daily, spend_alerts, spend_content'),
);

describe('request content in the ledger', () => {
  it('generic_api ingest stores content only when the policies allow it, whatever the sender sends', async () => {
    expect(await ingestPayloads(db, [withContent('denied')], catalog, false)).toEqual({
      inserted: 1,
      duplicates: 0,
      rejected: 0,
      cleaned: 0,
    });
    expect(
      await ingestPayloads(db, [withContent('allowed'), payload('bare')], catalog, true),
    ).toMatchObject({ inserted: 2 });
    expect(await countRawRows(db)).toBe(3);
    expect(await contentRows()).toEqual([
      { call_id: 'allowed', messages: MESSAGES, response: RESPONSE },
    ]);
    const denied = await callRecord(db, 'denied');
    expect(denied.attempts).toHaveLength(1);
    expect(denied.attempts[0]!.content).toBeUndefined();
    expect(formatCall(denied)).toContain('content: not kept');
  });

  it('stores content once for an event read twice, and only for the rows actually inserted', async () => {
    await ingestPayloads(db, [payload('first-without')], catalog, true);
    // The same attempt again, now carrying content: the row is a duplicate, so no content either.
    const again = await ingestPayloads(
      db,
      [withContent('first-without'), withContent('twice'), withContent('twice')],
      catalog,
      true,
    );
    expect(again).toMatchObject({ inserted: 1, duplicates: 2 });
    await ingestPayloads(db, [withContent('twice')], catalog, true);
    expect((await contentRows()).map((r) => r.call_id)).toEqual(['twice']);
  });

  it('shows every attempt of a call with its content, and refuses an unknown call id', async () => {
    const start = 1_795_279_699.5;
    await ingestPayloads(
      db,
      [
        withContent('retried', {
          startTime: start,
          endTime: start + 0.1,
          status: 'failure',
          response: null,
          response_cost: 0,
          error_information: { error_class: 'RateLimitError', error_code: '429' },
        }),
        withContent('retried', { startTime: start + 1, endTime: start + 1.4 }),
      ],
      catalog,
      true,
    );
    const record = await callRecord(db, 'retried');
    expect(
      record.attempts.map((a) => [a.status, a.errorClass, a.errorCode, Math.round(a.latencyMs!)]),
    ).toEqual([
      ['failure', 'RateLimitError', '429', 100],
      ['success', null, null, 400],
    ]);
    expect(record.attempts[0]!.content).toEqual({ messages: MESSAGES, response: null });
    expect(record.attempts[1]!.content).toEqual({ messages: MESSAGES, response: RESPONSE });
    expect(record.attempts[1]!.startedAt).toBe(new Date((start + 1) * 1000).toISOString());
    const text = formatCall(record);
    expect(text).toMatch(/^call retried: 2 attempt\(s\)/);
    expect(text).toContain('failure RateLimitError (429)');
    expect(text).toContain('"content": "revenue went up"');
    await expect(callRecord(db, 'never-sent')).rejects.toThrow(UnknownCallError);
    await expect(callRecord(db, 'never-sent')).rejects.toThrow(
      /no request with call id "never-sent"/,
    );
  });

  it('keeps text jsonb cannot hold (NUL, lone surrogates) instead of failing the batch', async () => {
    await ingestPayloads(
      db,
      [withContent('odd', { messages: [{ role: 'user', content: 'a\u0000b \ud800 c' }] })],
      catalog,
      true,
    );
    expect((await contentRows())[0]?.messages).toEqual([
      { role: 'user', content: 'a\ufffdb \ufffd c' },
    ]);
  });

  it('spool ingestion drops content unless the policies keep it, whichever callback wrote it', async () => {
    const spoolDir = path.join(dir, 'spool');
    await mkdir(spoolDir, { recursive: true });
    await writeFile(
      path.join(spoolDir, 'spool-1-1-000000.jsonl'),
      [withContent('s1'), withContent('s2')].map(spoolLine).join(''),
    );
    let keep = false;
    const options = { db, spoolDir, catalog, keepContent: () => keep, finishedAfterMs: 1e9 };
    expect((await ingestOnce(options)).inserted).toBe(2);
    expect(await contentRows()).toEqual([]);
    keep = true;
    await writeFile(
      path.join(spoolDir, 'spool-1-1-000000.jsonl'),
      [withContent('s1'), withContent('s2'), withContent('s3'), payload('s4')]
        .map(spoolLine)
        .join(''),
    );
    expect((await ingestOnce(options)).inserted).toBe(2);
    expect((await contentRows()).map((r) => r.call_id)).toEqual(['s3']);
  });

  it('raw-row retention deletes content with its rows', async () => {
    const old = 1_700_000_000;
    const recent = 1_795_279_699;
    await ingestPayloads(
      db,
      [
        withContent('old', { startTime: old, endTime: old + 1 }),
        withContent('recent', { startTime: recent, endTime: recent + 1 }),
      ],
      catalog,
      true,
    );
    expect(await pruneRawRows(db, new Date((old + 86_400) * 1000))).toBe(1);
    expect((await contentRows()).map((r) => r.call_id)).toEqual(['recent']);
    await expect(callRecord(db, 'old')).rejects.toThrow(UnknownCallError);
  });
});
