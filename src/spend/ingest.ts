import { open, readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { isDataError, type Database } from '../store/db.js';
import {
  forgetOffset,
  insertRows,
  readOffsets,
  saveOffset,
  type LedgerRow,
} from '../store/ledger.js';
import { describeError, ModelCenterError } from '../shared/errors.js';
import type { CleanedReason } from './clean.js';
import { DeadLetterBox, MAX_LINE_CHARS, type DeadLetter } from './dead-letter.js';
import { isRejection, ledgerRow, type DeploymentCatalog } from './extract.js';
import { applyCatalog, parseChunk, type ParsedChunk } from './parse.js';

/** The subset of a pino logger the spend subsystem uses. */
export interface SpendLogger {
  info(details: Record<string, unknown>, message: string): void;
  warn(details: Record<string, unknown>, message: string): void;
}

export const SILENT_LOGGER: SpendLogger = { info: () => undefined, warn: () => undefined };

export interface IngestOptions {
  db: Database;
  spoolDir: string;
  catalog: DeploymentCatalog;
  /**
   * Whether the policies ask for prompts and responses (`spend.keep_content`), asked once per
   * run. Without it, or when it says no, content in the spool is dropped, whichever callback
   * instance wrote it.
   */
  keepContent?: () => boolean;
  log?: SpendLogger;
  /**
   * Where lines that cannot be stored go (file, counters, one warning per kind); default: a box
   * without a file that only counts and logs.
   */
  deadLetters?: DeadLetterBox;
  /** Lines per insert transaction. */
  batchLines?: number;
  /** Bytes read from a file at a time. */
  chunkBytes?: number;
  /**
   * A spool file whose last change is older than this is finished (the writer rotates before
   * writing to a file older than MODELCENTER_SPOOL_MAX_AGE_S); default: 1 h plus 10 min margin.
   */
  finishedAfterMs?: number;
  now?: () => number;
}

export interface IngestResult {
  /** Complete lines read. */
  lines: number;
  /** Rows new to the ledger. */
  inserted: number;
  /** Rows the ledger already had (the same event read twice). */
  duplicates: number;
  /** Lines that were not a usable payload (dead-lettered). */
  rejected: number;
  /** Rows stored after cleaning a value the ledger could not store as it was. */
  cleaned: number;
  /** Finished, fully read spool files removed. */
  removedFiles: number;
}

const SPOOL_FILE = /^spool-(\d+)-(\d+)-(\d+)\.jsonl$/;
const NEWLINE = 0x0a;

/**
 * Reads every complete line the spool files gained since the last run into the ledger. Each batch
 * of rows is inserted in the same transaction as the file's new read position, so a crash at any
 * point neither loses nor repeats a line; a line without its newline yet is left for the next run.
 * Re-reading is still harmless: rows are deduplicated by call id, attempt start and status.
 */
export async function ingestOnce(options: IngestOptions): Promise<IngestResult> {
  const log = options.log ?? SILENT_LOGGER;
  const result: IngestResult = {
    lines: 0,
    inserted: 0,
    duplicates: 0,
    rejected: 0,
    cleaned: 0,
    removedFiles: 0,
  };
  const deadLetters = options.deadLetters ?? new DeadLetterBox({ log });
  let names: string[];
  try {
    names = (await readdir(options.spoolDir)).filter((n) => n.endsWith('.jsonl')).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return result;
    throw error;
  }
  const offsets = await readOffsets(options.db);
  const keepContent = options.keepContent?.() === true;
  const newestSeq = newestSequences(names);
  const now = (options.now ?? Date.now)();
  for (const name of names) {
    const file = path.join(options.spoolDir, name);
    let info;
    try {
      info = await stat(file);
    } catch {
      continue; // removed meanwhile
    }
    let offset = offsets.get(name) ?? 0;
    if (info.size < offset) {
      log.warn(
        { file, offset, size: info.size },
        'spool file shrank; reading it again from the start',
      );
      offset = 0;
    }
    if (info.size > offset)
      offset = await ingestFile(
        { ...options, deadLetters },
        name,
        file,
        offset,
        info.size,
        result,
        keepContent,
      );
    const finished =
      isSealed(name, newestSeq) || now - info.mtimeMs > (options.finishedAfterMs ?? 70 * 60 * 1000);
    if (!finished) continue;
    if (offset < info.size) {
      // A finished file that ends in half a line: its writer died mid-write; nothing will follow.
      const letter: DeadLetter = {
        reason: 'not-json',
        detail: `finished spool file ends in an incomplete line of ${info.size - offset} bytes (its writer died mid-write)`,
        source: 'spool',
        file: name,
        offset,
        line: await readText(file, offset, info.size),
      };
      await deadLetters.write([letter]);
      await saveOffset(options.db, name, info.size);
      deadLetters.count('dead-lettered', letter);
      result.rejected += 1;
      offset = info.size;
    }
    await unlink(file).catch(() => undefined);
    await forgetOffset(options.db, name);
    result.removedFiles += 1;
  }
  return result;
}

/** Reads [offset, size) of one file in chunks and batches; returns the new read position. */
async function ingestFile(
  options: IngestOptions & { deadLetters: DeadLetterBox },
  name: string,
  file: string,
  start: number,
  size: number,
  result: IngestResult,
  keepContent: boolean,
): Promise<number> {
  const batchLines = options.batchLines ?? 2000;
  const chunkBytes = options.chunkBytes ?? 4 * 1024 * 1024;
  const box = options.deadLetters;
  const handle = await open(file, 'r');

  type Chunk = { at: number; end: number; parsed: ParsedChunk };
  /** The complete lines from `at` on (at most chunkBytes), parsed. */
  const readChunk = async (at: number): Promise<Chunk | 'partial' | { long: Buffer }> => {
    const length = Math.min(chunkBytes, size - at);
    const buffer = new Uint8Array(length);
    const { bytesRead } = await handle.read(buffer, 0, length, at);
    const last = buffer.lastIndexOf(NEWLINE, bytesRead - 1);
    if (last < 0)
      return bytesRead === chunkBytes ? { long: Buffer.from(buffer.buffer) } : 'partial';
    return {
      at,
      end: at + last + 1,
      parsed: parseChunk(buffer.subarray(0, last + 1), keepContent),
    };
  };
  const spoolLetter = (
    at: number,
    reason: DeadLetter['reason'],
    detail: string,
    line: string,
  ): DeadLetter => ({ reason, detail, source: 'spool', file: name, offset: at, line });

  let offset = start;
  try {
    while (offset < size) {
      const next = await readChunk(offset);
      // Half a line (still being written, or cut by a crash) waits for the rest.
      if (next === 'partial') break;
      if ('long' in next) {
        // A line longer than a chunk (a writer bug): kept in part, and never blocks the file.
        const past = await endOfLine(handle, offset, size);
        if (past === undefined) break; // its end is not written yet
        const letter = spoolLetter(
          offset,
          'too-long',
          `spool line of ${past - offset} bytes, longer than ${chunkBytes}`,
          next.long.toString('utf8', 0, MAX_LINE_CHARS),
        );
        await box.write([letter]);
        await saveOffset(options.db, name, past);
        box.count('dead-lettered', letter);
        result.lines += 1;
        result.rejected += 1;
        offset = past;
        continue;
      }
      const { at, end, parsed: chunk } = next;
      applyCatalog(chunk.rows, options.catalog);
      let dead = 0;
      for (let first = 0; ; first += batchLines) {
        const batch = chunk.rows.slice(first, first + batchLines);
        const last = first + batchLines >= chunk.rows.length;
        // The last batch of a chunk also covers the rejected and blank lines after its rows.
        const upTo = last ? end : at + chunk.rowEnds[first + batch.length - 1]!;
        // Dead lines are in the dead-letter file before the read position passes them.
        const letters: DeadLetter[] = [];
        for (; dead < chunk.dead.length && at + chunk.dead[dead]!.end <= upTo; dead += 1) {
          const line = chunk.dead[dead]!;
          letters.push(spoolLetter(at + line.start, line.reason, line.detail, line.text));
        }
        await box.write(letters);
        let inserted: number;
        let stored = batch;
        try {
          inserted = await options.db.transaction(async (tx) => {
            const n = await insertRows(tx, batch);
            await saveOffset(tx, name, upTo);
            return n;
          });
        } catch (error) {
          if (!isDataError(error)) throw error;
          // One row the database refuses must not hold back the others: one at a time.
          inserted = 0;
          stored = [];
          for (let i = first; i < first + batch.length; i += 1) {
            const row = chunk.rows[i]!;
            const lineEnd = at + chunk.rowEnds[i]!;
            const one = await insertOne(options.db, row, name, lineEnd);
            if (typeof one === 'number') {
              inserted += one;
              stored.push(row);
              continue;
            }
            const letter = spoolLetter(
              at + chunk.rowStarts[i]!,
              'database',
              `the ledger refused it: ${describeError(one.error)}`,
              await readRange(handle, at + chunk.rowStarts[i]!, at + chunk.rowEnds[i]! - 1),
            );
            await box.write([letter]);
            await saveOffset(options.db, name, lineEnd);
            box.count('dead-lettered', letter);
            result.rejected += 1;
          }
          await saveOffset(options.db, name, upTo);
        }
        result.inserted += inserted;
        result.duplicates += stored.length - inserted;
        for (const letter of letters) box.count('dead-lettered', letter);
        countCleaned(box, stored, result, name);
        if (last) break;
      }
      offset = end;
      result.lines += chunk.lines;
      result.rejected += chunk.rejected;
    }
  } finally {
    await handle.close();
  }
  return offset;
}

/**
 * One row in its own transaction with the read position past its line: the number of rows new to
 * the ledger, or the data error the database answered (anything else is thrown: retried later).
 */
async function insertOne(
  db: Database,
  row: LedgerRow,
  name: string,
  upTo: number,
): Promise<number | { error: unknown }> {
  try {
    return await db.transaction(async (tx) => {
      const n = await insertRows(tx, [row]);
      await saveOffset(tx, name, upTo);
      return n;
    });
  } catch (error) {
    if (isDataError(error)) return { error };
    throw error;
  }
}

/** Counts the stored rows that were cleaned, once per reason. */
function countCleaned(
  box: DeadLetterBox,
  rows: readonly LedgerRow[],
  result: Pick<IngestResult, 'cleaned'>,
  file?: string,
): void {
  let counts: Map<CleanedReason, number> | undefined;
  let example: string | undefined;
  for (const row of rows) {
    if (!row.cleaned) continue;
    counts ??= new Map();
    example ??= row.callId;
    result.cleaned += 1;
    for (const reason of row.cleaned as CleanedReason[])
      counts.set(reason, (counts.get(reason) ?? 0) + 1);
  }
  for (const [reason, n] of counts ?? [])
    box.count('cleaned', reason, n, { callId: example, ...(file !== undefined && { file }) });
}

/** The byte offset just past the newline that ends the line at `offset`, if it is written yet. */
async function endOfLine(
  handle: Awaited<ReturnType<typeof open>>,
  offset: number,
  size: number,
): Promise<number | undefined> {
  const chunk = Buffer.allocUnsafe(64 * 1024);
  let position = offset;
  while (position < size) {
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
    if (bytesRead === 0) break;
    const newline = chunk.subarray(0, bytesRead).indexOf(NEWLINE);
    if (newline >= 0) return position + newline + 1;
    position += bytesRead;
  }
  return undefined;
}

/** Up to MAX_LINE_CHARS bytes of [from, to) of a file, as text (for the dead-letter file). */
async function readText(file: string, from: number, to: number): Promise<string> {
  const handle = await open(file, 'r');
  try {
    return await readRange(handle, from, to);
  } finally {
    await handle.close();
  }
}

/**
 * Up to MAX_LINE_CHARS bytes of [from, to) of an open file, as text. Read again when needed
 * rather than kept: holding each chunk's buffer while its rows are inserted costs garbage
 * collection time on every batch.
 */
async function readRange(
  handle: Awaited<ReturnType<typeof open>>,
  from: number,
  to: number,
): Promise<string> {
  const buffer = Buffer.alloc(Math.min(to - from, MAX_LINE_CHARS));
  const { bytesRead } = await handle.read(buffer, 0, buffer.length, from);
  return buffer.toString('utf8', 0, bytesRead);
}

/** Per writer (start time + pid), its highest sequence number among the files present. */
function newestSequences(names: string[]): Map<string, number> {
  const newest = new Map<string, number>();
  for (const name of names) {
    const match = SPOOL_FILE.exec(name);
    if (!match) continue;
    const writer = `${match[1]}-${match[2]}`;
    newest.set(writer, Math.max(newest.get(writer) ?? -1, Number(match[3])));
  }
  return newest;
}

/** A file is sealed when its writer has already moved on to a later sequence number. */
function isSealed(name: string, newest: Map<string, number>): boolean {
  const match = SPOOL_FILE.exec(name);
  if (!match) return false;
  return Number(match[3]) < (newest.get(`${match[1]}-${match[2]}`) ?? -1);
}

export interface SpoolIngesterOptions extends IngestOptions {
  intervalMs?: number;
  /** Runs before every ingestion run (the controller notices a new config here). */
  beforeRun?: () => Promise<void>;
}

/** Runs ingestOnce every interval (one run at a time) until stopped; stop() waits for a run. */
export class SpoolIngester {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<IngestResult> | undefined;
  private stopped = false;
  /** Scheduled runs failing since: logged once, and once more on recovery. */
  private failing: { since: string; runs: number } | undefined;
  readonly totals: IngestResult = {
    lines: 0,
    inserted: 0,
    duplicates: 0,
    rejected: 0,
    cleaned: 0,
    removedFiles: 0,
  };

  constructor(private readonly options: SpoolIngesterOptions) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** One run now (or the one in progress). */
  async runOnce(): Promise<IngestResult> {
    if (this.running) return this.running;
    const run = async (): Promise<IngestResult> => {
      await this.options.beforeRun?.();
      return ingestOnce(this.options);
    };
    this.running = run().finally(() => {
      this.running = undefined;
    });
    const result = await this.running;
    for (const key of Object.keys(this.totals) as (keyof IngestResult)[])
      this.totals[key] += result[key];
    return result;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    const log = this.options.log ?? SILENT_LOGGER;
    this.timer = setTimeout(() => {
      void this.runOnce()
        .then(() => {
          // The lines stayed in the spool (offsets move only with the rows they stored).
          if (this.failing)
            log.info(
              { failedRuns: this.failing.runs, since: this.failing.since },
              'spool ingestion recovered: the lines spooled meanwhile are in the ledger',
            );
          this.failing = undefined;
        })
        .catch((error: unknown) => {
          // Once per outage (a ledger restart fails every run until it is back), not every second.
          if (this.failing) this.failing.runs += 1;
          else {
            this.failing = { since: new Date().toISOString(), runs: 1 };
            log.warn(
              { error: describeError(error) },
              'spool ingestion failed; retrying every run, the lines stay in the spool',
            );
          }
        })
        .finally(() => this.schedule(this.options.intervalMs ?? 1000));
    }, delay);
  }
}

/** A `POST /v1/spend/ingest` body that is not LiteLLM's generic_api format at all. */
export class IngestBodyError extends ModelCenterError {}

/** An NDJSON line of a generic_api body that is not JSON (the other lines are still read). */
export class UnparsableLine {
  constructor(
    readonly line: string,
    readonly detail: string,
  ) {}
}

/**
 * The body LiteLLM's `generic_api` logger POSTs (litellm-facts §4.1): a JSON array of
 * StandardLoggingPayloads (`json_array`), one per line (`ndjson`), or a single object (`single`).
 * For the HTTP ingest route of deployments that cannot load the spool callback. An NDJSON line
 * that is not JSON becomes an UnparsableLine (dead-lettered by ingestPayloads); a body with no
 * JSON object or array in it at all is an IngestBodyError (the route's 400).
 */
export function parseGenericApiBody(text: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  let whole: unknown;
  try {
    whole = JSON.parse(trimmed);
  } catch {
    const items = trimmed
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        try {
          return JSON.parse(line) as unknown;
        } catch (error) {
          return new UnparsableLine(line, `not JSON: ${describeError(error)}`);
        }
      });
    if (items.every((item) => item instanceof UnparsableLine))
      throw new IngestBodyError(
        `the body is not JSON: send a JSON array of StandardLoggingPayloads, one object, or one object per line (LiteLLM's generic_api logger formats) — ${(items[0] as UnparsableLine).detail}`,
      );
    return items;
  }
  if (typeof whole !== 'object' || whole === null)
    throw new IngestBodyError(
      `the body is JSON ${whole === null ? 'null' : typeof whole}, not a StandardLoggingPayload object or an array of them`,
    );
  return Array.isArray(whole) ? whole : [whole];
}

/**
 * Inserts payloads received over HTTP; a batch sent twice is counted once. Content is stored only
 * with `keepContent` (the policies'), so a sender cannot make the ledger keep prompts by sending them.
 * A payload that cannot be stored is dead-lettered and counted in `rejected`; one the database
 * refuses does not fail the others.
 */
export async function ingestPayloads(
  db: Database,
  payloads: readonly unknown[],
  catalog: DeploymentCatalog,
  keepContent = false,
  deadLetters: DeadLetterBox = new DeadLetterBox(),
): Promise<Pick<IngestResult, 'inserted' | 'duplicates' | 'rejected' | 'cleaned'>> {
  const rows: LedgerRow[] = [];
  const sources: unknown[] = [];
  const letters: DeadLetter[] = [];
  const apiLetter = (reason: DeadLetter['reason'], detail: string, value: unknown): DeadLetter => ({
    reason,
    detail,
    source: 'api',
    line: value instanceof UnparsableLine ? value.line : jsonText(value),
  });
  for (const payload of payloads) {
    if (payload instanceof UnparsableLine) {
      letters.push(apiLetter('not-json', payload.detail, payload));
      continue;
    }
    const row = ledgerRow(payload, catalog, keepContent);
    if (isRejection(row)) letters.push(apiLetter(row.kind, row.reason, payload));
    else {
      rows.push(row);
      sources.push(payload);
    }
  }
  let inserted = 0;
  let stored = rows;
  try {
    inserted = await db.transaction((tx) => insertRows(tx, rows));
  } catch (error) {
    if (!isDataError(error)) throw error;
    // One payload the database refuses must not fail the others: one at a time.
    stored = [];
    for (const [i, row] of rows.entries()) {
      try {
        inserted += await db.transaction((tx) => insertRows(tx, [row]));
        stored.push(row);
      } catch (rowError) {
        if (!isDataError(rowError)) throw rowError;
        letters.push(
          apiLetter('database', `the ledger refused it: ${describeError(rowError)}`, sources[i]),
        );
      }
    }
  }
  await deadLetters.write(letters);
  for (const letter of letters) deadLetters.count('dead-lettered', letter);
  const result = {
    inserted,
    duplicates: stored.length - inserted,
    rejected: letters.length,
    cleaned: 0,
  };
  countCleaned(deadLetters, stored, result);
  return result;
}

/**
 * A payload as JSON text for the dead-letter file; never throws. Cycles cannot come from JSON, but
 * nesting deep enough to exhaust the stack can (`[[[[…]]]]` in an ingest body): its type stands in.
 */
function jsonText(value: unknown): string {
  try {
    return JSON.stringify(value) ?? typeof value;
  } catch {
    return `(${Array.isArray(value) ? 'array' : typeof value} nested too deeply to write out)`;
  }
}
