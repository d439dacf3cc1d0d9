import { open, readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Database } from '../store/db.js';
import {
  forgetOffset,
  insertRows,
  readOffsets,
  saveOffset,
  type LedgerRow,
} from '../store/ledger.js';
import { describeError } from '../shared/errors.js';
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
  /** Lines that were not a usable payload (logged). */
  rejected: number;
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
    removedFiles: 0,
  };
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
      offset = await ingestFile(options, name, file, offset, info.size, result, keepContent);
    const finished =
      isSealed(name, newestSeq) || now - info.mtimeMs > (options.finishedAfterMs ?? 70 * 60 * 1000);
    if (!finished) continue;
    if (offset < info.size) {
      // A finished file that ends in half a line: its writer died mid-write; nothing will follow.
      log.warn(
        { file, bytes: info.size - offset },
        'finished spool file ends in an incomplete line; skipping it',
      );
      await saveOffset(options.db, name, info.size);
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
  options: IngestOptions,
  name: string,
  file: string,
  start: number,
  size: number,
  result: IngestResult,
  keepContent: boolean,
): Promise<number> {
  const log = options.log ?? SILENT_LOGGER;
  const batchLines = options.batchLines ?? 2000;
  const chunkBytes = options.chunkBytes ?? 4 * 1024 * 1024;
  const handle = await open(file, 'r');

  /** The complete lines from `at` on (at most chunkBytes), parsed. */
  const readChunk = async (
    at: number,
  ): Promise<{ at: number; end: number; parsed: ParsedChunk } | 'partial' | 'long'> => {
    const length = Math.min(chunkBytes, size - at);
    const buffer = new Uint8Array(length);
    const { bytesRead } = await handle.read(buffer, 0, length, at);
    const last = buffer.lastIndexOf(NEWLINE, bytesRead - 1);
    if (last < 0) return bytesRead === chunkBytes ? 'long' : 'partial';
    return {
      at,
      end: at + last + 1,
      parsed: parseChunk(buffer.subarray(0, last + 1), keepContent),
    };
  };

  let offset = start;
  try {
    let next = offset < size ? await readChunk(offset) : 'partial';
    while (typeof next === 'object') {
      const current = next;
      const chunk = current.parsed;
      applyCatalog(chunk.rows, options.catalog);
      for (let first = 0; ; first += batchLines) {
        const batch = chunk.rows.slice(first, first + batchLines);
        const last = first + batchLines >= chunk.rows.length;
        // The last batch of a chunk also covers the rejected and blank lines after its rows.
        const upTo = last ? current.end : current.at + chunk.rowEnds[first + batch.length - 1]!;
        const inserted = await options.db.transaction(async (tx) => {
          const n = await insertRows(tx, batch);
          await saveOffset(tx, name, upTo);
          return n;
        });
        result.inserted += inserted;
        result.duplicates += batch.length - inserted;
        if (last) break;
      }
      offset = current.end;
      next = offset < size ? await readChunk(offset) : 'partial';
      result.lines += chunk.lines;
      result.rejected += chunk.rejected;
      if (chunk.rejected > 0)
        log.warn(
          { file, rejected: chunk.rejected, first: chunk.firstProblem },
          'spool lines that are not request records were skipped',
        );
    }
    if (next === 'long') {
      log.warn({ file, offset }, `spool line longer than ${chunkBytes} bytes; skipping it`);
      offset = await skipLongLine(handle, offset, size, options, name);
    }
    // 'partial': half a line (still being written, or cut by a crash) waits for the rest.
  } finally {
    await handle.close();
  }
  return offset;
}

/** Moves past one absurdly long line (a writer bug), so it cannot block the file forever. */
async function skipLongLine(
  handle: Awaited<ReturnType<typeof open>>,
  offset: number,
  size: number,
  options: IngestOptions,
  name: string,
): Promise<number> {
  const chunk = Buffer.allocUnsafe(64 * 1024);
  let position = offset;
  while (position < size) {
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
    const newline = chunk.subarray(0, bytesRead).indexOf(NEWLINE);
    if (newline >= 0) {
      await saveOffset(options.db, name, position + newline + 1);
      return position + newline + 1;
    }
    position += bytesRead;
  }
  return size; // no newline yet: the caller stops at size and waits
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
  readonly totals: IngestResult = {
    lines: 0,
    inserted: 0,
    duplicates: 0,
    rejected: 0,
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
    this.timer = setTimeout(() => {
      void this.runOnce()
        .catch((error: unknown) =>
          (this.options.log ?? SILENT_LOGGER).warn(
            { error: describeError(error) },
            'spool ingestion failed; retrying',
          ),
        )
        .finally(() => this.schedule(this.options.intervalMs ?? 1000));
    }, delay);
  }
}

/**
 * The body LiteLLM's `generic_api` logger POSTs (litellm-facts §4.1): a JSON array of
 * StandardLoggingPayloads (`json_array`), one per line (`ndjson`), or a single object (`single`).
 * For the HTTP ingest route of deployments that cannot load the spool callback.
 */
export function parseGenericApiBody(text: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  try {
    const value: unknown = JSON.parse(trimmed);
    return Array.isArray(value) ? value : [value];
  } catch {
    return trimmed
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        try {
          return JSON.parse(line) as unknown;
        } catch {
          return { unparsable: line.slice(0, 80) };
        }
      });
  }
}

/**
 * Inserts payloads received over HTTP; a batch sent twice is counted once. Content is stored only
 * with `keepContent` (the policies'), so a sender cannot make the ledger keep prompts by sending them.
 */
export async function ingestPayloads(
  db: Database,
  payloads: readonly unknown[],
  catalog: DeploymentCatalog,
  keepContent = false,
): Promise<Pick<IngestResult, 'inserted' | 'duplicates' | 'rejected'>> {
  const rows: LedgerRow[] = [];
  let rejected = 0;
  for (const payload of payloads) {
    const row = ledgerRow(payload, catalog, keepContent);
    if (isRejection(row)) rejected += 1;
    else rows.push(row);
  }
  const inserted = await db.transaction((tx) => insertRows(tx, rows));
  return { inserted, duplicates: rows.length - inserted, rejected };
}
