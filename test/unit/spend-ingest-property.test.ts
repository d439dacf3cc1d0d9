import fc from 'fast-check';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeadLetterBox } from '../../src/spend/dead-letter.js';
import { deploymentCatalog } from '../../src/spend/extract.js';
import { ingestOnce, ingestPayloads } from '../../src/spend/ingest.js';
import { openDatabase, type Database } from '../../src/store/db.js';
import { callIdCounts } from '../../src/store/ledger.js';
import { migrate } from '../../src/store/migrate.js';
import { deadLetterEntries } from '../helpers/ledger-suite.js';
import { payload } from '../helpers/spool.js';

let db: Database;
beforeAll(async () => {
  db = await openDatabase({});
  await migrate(db);
});
afterAll(() => db?.close());

const catalog = deploymentCatalog(undefined);
/** Any UTF-16 text, NUL and lone surrogates included, on one line. */
const anyText = fc.string({ unit: 'binary', maxLength: 60 }).map((s) => s.replaceAll('\n', ' '));
/** Numbers as JSON text, including what JSON.stringify never writes. */
const anyNumberText = fc.oneof(
  fc.double().map((n) => (Number.isFinite(n) ? String(n) : 'null')),
  fc.integer().map(String),
  fc.constantFrom('1e400', '-1e400', '-1e12', '1e12', '0', '-0', '3000000000', '"12"', 'true'),
);
const FIELDS = [
  'response_cost',
  'prompt_tokens',
  'completion_tokens',
  'startTime',
  'endTime',
  'completionStartTime',
] as const;

/**
 * One spool line: `kind` says what it is meant to be. `payload` lines have the unique call id
 * `p-<n>`, so where each one went can be checked; `good` lines must always be stored.
 */
type Line = { kind: 'good' | 'payload' | 'junk'; text: string; callId?: string };
const lineOf = (n: number): fc.Arbitrary<Line> =>
  fc.oneof(
    fc.constant<Line>({
      kind: 'good',
      text: JSON.stringify(payload(`g-${n}`)),
      callId: `g-${n}`,
    }),
    // A payload with arbitrary text in its tags and names, and arbitrary numbers.
    fc
      .record({
        tags: fc.array(anyText, { maxLength: 3 }),
        model: anyText,
        alias: anyText,
        numbers: fc.array(fc.tuple(fc.constantFrom(...FIELDS), anyNumberText), { maxLength: 3 }),
      })
      .map(({ tags, model, alias, numbers }): Line => {
        const callId = `p-${n}`;
        let text = JSON.stringify(
          payload(callId, {
            request_tags: tags.map((t, i) => `${['goal', 'caller', 'conversation'][i]}:${t}`),
            model,
            metadata: { user_api_key_alias: alias },
            stream: true,
          }),
        );
        for (const [field, value] of numbers)
          text = text.replace(new RegExp(`"${field}":[^,}]*`), `"${field}":${value}`);
        return { kind: 'payload', text, callId };
      }),
    // Anything at all: text, JSON values, payloads with an arbitrary call id.
    anyText.map((text): Line => ({ kind: 'junk', text })),
    fc.jsonValue().map((v): Line => ({ kind: 'junk', text: JSON.stringify(v) ?? 'null' })),
    anyText.map((id): Line => ({ kind: 'junk', text: JSON.stringify(payload(id)) })),
  );

const spool = fc
  .integer({ min: 1, max: 12 })
  .chain((count) => fc.tuple(...Array.from({ length: count }, (_, n) => lineOf(n))));

describe('spool ingestion over arbitrary lines (fast-check)', () => {
  it('never throws; every line is stored or dead-lettered exactly once, across a crash; good lines are always stored', async () => {
    await fc.assert(
      fc.asyncProperty(
        spool,
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 4 }),
        async (lines, batchLines, crashAt) => {
          await db.exec(
            'TRUNCATE spend_requests, spend_hourly, spend_daily, spend_content, spend_spool_offsets',
          );
          const dir = await mkdtemp(path.join(tmpdir(), 'modelcenter-prop-'));
          try {
            const spoolDir = path.join(dir, 'spool');
            const deadDir = path.join(dir, 'dead');
            await mkdir(spoolDir);
            const file = path.join(spoolDir, 'spool-1-1-000000.jsonl');
            await writeFile(file, lines.map((l) => `${l.text}\n`).join(''));

            // A crash at the crashAt-th commit (0: none), then a restart with a new box.
            let commits = 0;
            const crashing: Database = {
              ...db,
              query: (sql, params) => db.query(sql, params),
              exec: (sql) => db.exec(sql),
              transaction: (work) => {
                commits += 1;
                if (commits === crashAt)
                  return Promise.reject(new Error('Connection terminated unexpectedly'));
                return db.transaction(work);
              },
            };
            const options = { spoolDir, catalog, batchLines, keepContent: () => true };
            await ingestOnce({
              ...options,
              db: crashing,
              deadLetters: new DeadLetterBox({ dir: deadDir }),
            }).catch((error: Error) => expect(error.message).toMatch(/Connection terminated/));
            const box = new DeadLetterBox({ dir: deadDir });
            await ingestOnce({ ...options, db, deadLetters: box });

            // What is on disk, line by line (lone surrogates were written as U+FFFD).
            const onDisk = (await readFile(file, 'utf8')).split('\n').slice(0, -1);
            const starts: number[] = [];
            let at = 0;
            for (const text of onDisk) {
              starts.push(at);
              at += Buffer.byteLength(text) + 1;
            }
            const entries = await deadLetterEntries(deadDir);
            const deadOffsets = entries.map((e) => e.offset);
            expect(new Set(deadOffsets).size).toBe(deadOffsets.length); // once each
            for (const offset of deadOffsets) expect(starts).toContain(offset);
            const counts = await callIdCounts(db);
            for (const count of counts.values()) expect(count).toBe(1);
            const nonBlank = onDisk.filter((t) => t.trim() !== '').length;
            const [{ n } = { n: 0 }] = await db.query<{ n: number }>(
              'SELECT count(*)::int AS n FROM spend_requests',
            );
            // Lines with equal call ids (junk) are one row: rows + dead letters ≤ lines.
            expect(n + entries.length).toBeLessThanOrEqual(nonBlank);
            lines.forEach((line, i) => {
              if (line.kind === 'junk') return;
              const dead = deadOffsets.includes(starts[i]);
              if (line.kind === 'good') expect(dead).toBe(false);
              expect(dead || counts.has(line.callId!)).toBe(true);
              expect(dead && counts.has(line.callId!)).toBe(false);
            });
            // Every non-blank line is accounted for: a row (new or a duplicate) or a dead letter.
            const again = await ingestOnce({ ...options, db, deadLetters: box });
            expect(again.lines).toBe(0);
            const hourly = await db.query<{ n: number }>(
              'SELECT coalesce(sum(requests), 0)::int AS n FROM spend_hourly',
            );
            expect(hourly[0]!.n).toBe(n);
          } finally {
            await rm(dir, { recursive: true, force: true });
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('never throws on arbitrary ingest payloads; every payload is stored or rejected, good ones stored', async () => {
    await fc.assert(
      fc.asyncProperty(spool, async (lines) => {
        await db.exec('TRUNCATE spend_requests, spend_hourly, spend_daily, spend_content');
        const payloads = lines.map((l): unknown => {
          try {
            return JSON.parse(l.text);
          } catch {
            return l.text;
          }
        });
        const result = await ingestPayloads(db, payloads, catalog, true, new DeadLetterBox());
        expect(result.inserted + result.duplicates + result.rejected).toBe(payloads.length);
        const counts = await callIdCounts(db);
        for (const line of lines)
          if (line.kind === 'good') expect(counts.get(line.callId!)).toBe(1);
      }),
      { numRuns: 60 },
    );
  });
});
