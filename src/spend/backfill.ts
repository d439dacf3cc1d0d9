import { createHash } from 'node:crypto';
import type { MalformedSpendLog, SpendLogRow, SpendLogsPage } from '../litellm/schema.js';
import { redactUrl } from '../shared/redact-url.js';
import { describeError, ModelCenterError } from '../shared/errors.js';
import { isDataError, type Database } from '../store/db.js';
import {
  backfillMark,
  insertRows,
  knownCallIds,
  lockCallChecks,
  saveBackfillMark,
  type LedgerRow,
} from '../store/ledger.js';
import type { BackfillSettings } from './config.js';
import { pointInTime } from './report.js';
import type { BackfillQuery } from './schema.js';
import { isRejection, ledgerRow, mapOf, textOf, type DeploymentCatalog } from './extract.js';
import { DeadLetterBox, type DeadLetter } from './dead-letter.js';
import { countCleaned, jsonText, SILENT_LOGGER, type SpendLogger } from './ingest.js';

/** LiteLLM's spend logs as the backfill reads them (LiteLLMAdminClient in the service). */
export interface SpendLogsSource {
  readonly baseUrl: string;
  spendLogs(from: Date, to: Date, page: number, pageSize: number): Promise<SpendLogsPage>;
}

export interface BackfillOptions {
  db: Database;
  source: SpendLogsSource;
  /** Deployment id → Model Center's model and provider (from the committed config). */
  catalog: DeploymentCatalog;
  from: Date;
  to: Date;
  /** First window; it halves while LiteLLM's count reaches its cap and doubles while sparse. */
  windowMs?: number;
  /** Rows per page; LiteLLM takes at most 1,000. */
  pageSize?: number;
  /**
   * Saves progress under this name after every window (the scheduled job resumes from it). Only
   * when the range starts at or before the saved mark, so a later range never claims a gap.
   */
  markAs?: string;
  log?: SpendLogger;
  /**
   * Where rows that cannot be stored go (the spool's dead-letter file, counters and one warning
   * per kind) and where cleaned rows are counted; default: a box that only counts and logs.
   */
  deadLetters?: DeadLetterBox;
}

export interface BackfillResult {
  from: string;
  to: string;
  /** Windows read (each whole in one query, or a crowded second paged through). */
  windows: number;
  /** Times a window held more than one page and was made smaller. */
  splits: number;
  /** Distinct spend-log rows read. */
  fetched: number;
  /** Rows new to the ledger. */
  inserted: number;
  /** Requests the ledger already had (from the spool, generic_api, or an earlier backfill). */
  known: number;
  /** Rows that were not a usable request record (dead-lettered). */
  rejected: number;
  /** Rows stored after cleaning a value the ledger could not store as it was. */
  cleaned: number;
  /** Rows LiteLLM counted in a crowded second that no read returned (logged). */
  missed: number;
}

/** LiteLLM's SPEND_LOGS_PAGINATION_COUNT_CAP: its count stops there (spend_management_endpoints.py). */
export const SPEND_LOGS_CAP = 10_000;
const SECOND = 1000;
const HOUR = 3600 * SECOND;
const MAX_WINDOW = 24 * HOUR;
/** Rows a window aims at, below a page, so the next window rarely holds more than one page. */
const TARGET_ROWS = 600;
/** How far a spool attempt's start may lie from LiteLLM's row for the same request. */
const SAME_CALL_SLACK = HOUR;

/**
 * Reads LiteLLM's own spend logs (`GET /spend/logs/v2`, database mode) for [from, to] into the
 * ledger, for requests no spool recorded: history from before Model Center, or instances that
 * cannot load the callback. LiteLLM counts at most 10,000 rows per query and pages by offset over
 * rows ordered by start time alone, so a page boundary among equal start times, or a row written
 * between two pages, can skip or repeat a row. So the range is read in windows that each fit one
 * page (1,000 rows, LiteLLM's maximum): a window holding more is made smaller and read again,
 * sized from LiteLLM's count; a sparse one lets the next grow (up to a day). Only a second with
 * more than a page of requests is paged through (twice, to catch rows the order moved). Windows
 * share their boundary second (the route's bounds are whole seconds, both included), so no row
 * falls between two. A request the ledger already knows by its call id is skipped, whichever
 * source recorded it; running the same range twice adds nothing.
 */
export async function backfillSpendLogs(options: BackfillOptions): Promise<BackfillResult> {
  const log = options.log ?? SILENT_LOGGER;
  const pageSize = options.pageSize ?? 1000;
  const target = Math.min(TARGET_ROWS, Math.max(1, Math.floor(pageSize * 0.6)));
  const from = floorSecond(options.from);
  const to = ceilSecond(options.to);
  const result: BackfillResult = {
    from: from.toISOString(),
    to: to.toISOString(),
    windows: 0,
    splits: 0,
    fetched: 0,
    inserted: 0,
    known: 0,
    rejected: 0,
    cleaned: 0,
    missed: 0,
  };
  const box = options.deadLetters ?? new DeadLetterBox({ log });
  const mark = options.markAs ? await backfillMark(options.db, options.markAs) : undefined;
  const saveMark = options.markAs !== undefined && (mark === undefined || from <= mark);
  let size = Math.max(SECOND, ceilToSecond(options.windowMs ?? HOUR));
  let at = from.getTime();
  let boundary = new Set<string>();
  let lastMalformed = new Set<string>();
  while (at < to.getTime()) {
    const end = Math.min(at + size, to.getTime());
    const first = await options.source.spendLogs(new Date(at), new Date(end), 1, pageSize);
    const whole = first.data.length < pageSize && first.total <= first.data.length;
    if (!whole && end - at > SECOND) {
      // More than one page: shrink to where about `target` rows fall (at least by half).
      const counted = Math.max(first.total, first.data.length, 1);
      size = Math.max(SECOND, ceilToSecond(Math.min(0.5, target / counted) * (end - at)));
      result.splits += 1;
      continue;
    }
    const { rows, malformed } = whole
      ? { rows: first.data, malformed: first.malformed ?? [] }
      : await readCrowdedSecond(options.source, new Date(at), new Date(end), pageSize, result, log);
    result.windows += 1;
    // The boundary second is in both windows: its rows were read (and counted) already.
    const fresh = rows.filter((row) => !boundary.has(row.request_id));
    boundary = new Set(
      rows.filter((row) => spendLogSeconds(row.startTime) * 1000 >= end).map((r) => r.request_id),
    );
    // A malformed row has no time to place it by: one the last window read is a repeat.
    const freshMalformed = malformed.filter((odd) => !lastMalformed.has(jsonText(odd.row)));
    lastMalformed = new Set(malformed.map((odd) => jsonText(odd.row)));
    await store(
      { ...options, deadLetters: box },
      fresh,
      freshMalformed,
      new Date(at),
      new Date(end),
      result,
    );
    if (saveMark) await saveBackfillMark(options.db, options.markAs!, new Date(end));
    at = end;
    const growth = Math.min(2, target / Math.max(first.total, 1));
    size = Math.min(MAX_WINDOW, Math.max(SECOND, ceilToSecond(size * growth)));
  }
  log.info({ ...result, litellm: redactUrl(options.source.baseUrl) }, 'spend logs backfilled');
  return result;
}

/**
 * Every row of one second holding more than a page: pages until one comes back short (LiteLLM's
 * flat query pages past its 10,000 count), twice, keeping every row either read saw: rows with
 * equal start times may come in another order for each page.
 */
async function readCrowdedSecond(
  source: SpendLogsSource,
  from: Date,
  to: Date,
  pageSize: number,
  result: BackfillResult,
  log: SpendLogger,
): Promise<{ rows: SpendLogRow[]; malformed: MalformedSpendLog[] }> {
  const byId = new Map<string, SpendLogRow>();
  const malformed = new Map<string, MalformedSpendLog>();
  let counted = 0;
  for (let pass = 0; pass < 2; pass++) {
    for (let page = 1; ; page++) {
      const answer = await source.spendLogs(from, to, page, pageSize);
      counted = Math.max(counted, answer.total);
      for (const row of answer.data) byId.set(row.request_id, row);
      for (const odd of answer.malformed ?? []) malformed.set(jsonText(odd.row), odd);
      if (answer.data.length < pageSize) break;
    }
  }
  // The count is exact below LiteLLM's cap; above it, what the pages gave is all there is to know.
  const missed = counted < SPEND_LOGS_CAP ? Math.max(0, counted - byId.size - malformed.size) : 0;
  if (missed > 0) {
    result.missed += missed;
    log.warn(
      { second: from.toISOString(), counted, read: byId.size },
      'LiteLLM counted more spend-log rows in this second than its pages returned; run the backfill of this range again',
    );
  }
  return { rows: [...byId.values()], malformed: [...malformed.values()] };
}

/**
 * Converts a window's rows, drops the requests the ledger knows, inserts the rest. A row that is
 * not a request record, or that the database refuses, goes to the dead-letter file and the window
 * goes on: one odd row in LiteLLM's database must not stop the catch-up at its window for good.
 */
async function store(
  options: BackfillOptions & { deadLetters: DeadLetterBox },
  rows: readonly SpendLogRow[],
  malformed: readonly MalformedSpendLog[],
  from: Date,
  to: Date,
  result: BackfillResult,
): Promise<void> {
  const box = options.deadLetters;
  const litellm = redactUrl(options.source.baseUrl);
  const letter = (row: unknown, reason: DeadLetter['reason'], detail: string): DeadLetter => {
    const line = jsonText(row);
    const id = (row as { request_id?: unknown } | null)?.request_id;
    // Read again (a range backfilled twice), the row is known by its id, or by its content.
    const requestId =
      typeof id === 'string' && id !== ''
        ? id
        : `sha256:${createHash('sha256').update(line).digest('hex').slice(0, 32)}`;
    return { reason, detail, source: 'spend-logs', file: litellm, requestId, line };
  };
  result.fetched += rows.length + malformed.length;
  const letters = malformed.map((odd) => letter(odd.row, 'not-a-payload', odd.problem));
  const converted: LedgerRow[] = [];
  const sources: SpendLogRow[] = [];
  for (const row of rows) {
    const ledger = ledgerRow(payloadOfSpendLog(row), options.catalog);
    if (isRejection(ledger)) letters.push(letter(row, ledger.kind, ledger.reason));
    else {
      converted.push({ ...ledger, source: 'spend_logs' });
      sources.push(row);
    }
  }
  const lookFrom = new Date(from.getTime() - SAME_CALL_SLACK);
  const lookTo = new Date(to.getTime() + SAME_CALL_SLACK);
  /** Inserts the rows whose calls the ledger does not know yet; the rows inserted. */
  const insertUnknown = (batch: readonly LedgerRow[]): Promise<LedgerRow[]> =>
    options.db.transaction(async (tx) => {
      await lockCallChecks(tx);
      const known = await knownCallIds(
        tx,
        batch.map((r) => r.callId),
        lookFrom,
        lookTo,
      );
      const fresh = batch.filter((r) => !known.has(r.callId));
      result.inserted += await insertRows(tx, fresh);
      result.known += batch.length - fresh.length;
      return fresh;
    });
  let stored: LedgerRow[] = [];
  if (converted.length > 0) {
    const before = { inserted: result.inserted, known: result.known };
    try {
      stored = await insertUnknown(converted);
    } catch (error) {
      if (!isDataError(error)) throw error;
      // One row the database refuses must not hold back the others: one at a time.
      Object.assign(result, before);
      for (const [i, row] of converted.entries()) {
        try {
          stored.push(...(await insertUnknown([row])));
        } catch (rowError) {
          if (!isDataError(rowError)) throw rowError;
          letters.push(
            letter(sources[i], 'database', `the ledger refused it: ${describeError(rowError)}`),
          );
        }
      }
    }
  }
  result.rejected += letters.length;
  // A row read again (a range backfilled twice) is in the file, and counted, once.
  for (const written of await box.write(letters)) box.count('dead-lettered', written);
  countCleaned(box, stored, result);
}

/**
 * A SpendLogs row as the StandardLoggingPayload fields the ledger reads, so both sources go
 * through one extraction (goal, caller and conversation from request_tags, spend_logs_metadata,
 * the key alias and session_id; LiteLLM does not keep the request's plain `metadata` there).
 */
export function payloadOfSpendLog(row: SpendLogRow): Record<string, unknown> {
  const metadata = objectOf(row.metadata);
  const start = spendLogSeconds(row.startTime);
  const end = row.endTime ? spendLogSeconds(row.endTime) : undefined;
  const firstToken = row.completionStartTime ? spendLogSeconds(row.completionStartTime) : undefined;
  return {
    id: row.request_id,
    litellm_call_id:
      row.litellm_call_id || textOf(metadata.litellm_call_id) || row.request_id || undefined,
    session_id: row.session_id,
    call_type: row.call_type,
    status: row.status || textOf(metadata.status) || 'success',
    response_cost: row.spend ?? 0,
    prompt_tokens: row.prompt_tokens ?? 0,
    completion_tokens: row.completion_tokens ?? 0,
    startTime: start,
    endTime: end,
    completionStartTime: firstToken,
    // LiteLLM stores endTime as completionStartTime when no token streamed (get_logging_payload).
    stream: firstToken !== undefined && end !== undefined && firstToken !== end,
    model: row.model,
    model_id: row.model_id,
    model_group: row.model_group,
    custom_llm_provider: row.custom_llm_provider,
    cache_hit: String(row.cache_hit).toLowerCase() === 'true',
    request_tags: tagsOf(row.request_tags),
    end_user: row.end_user,
    error_information: objectOrNull(metadata.error_information),
    metadata: {
      user_api_key_alias: textOf(metadata.user_api_key_alias) ?? null,
      spend_logs_metadata: metadata.spend_logs_metadata,
    },
  };
}

const SPEND_LOG_TIME =
  /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/;

/** A SpendLogs time (UTC; ISO 8601 with or without a zone, up to nanoseconds) → epoch seconds. */
export function spendLogSeconds(text: string): number {
  const match = SPEND_LOG_TIME.exec(text.trim());
  if (!match) return Number.NaN;
  const [, date, time, fraction = '', zone = 'Z'] = match;
  const whole = Date.parse(`${date}T${time}${zone}`) / 1000;
  return whole + Number(`0.${fraction.padEnd(6, '0').slice(0, 6)}`);
}

function tagsOf(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  if (typeof value !== 'string') return [];
  try {
    const parsed: unknown = JSON.parse(value);
    return Array.isArray(parsed) ? parsed : [];
  } catch {
    return [];
  }
}

/** A JSON column as query_raw may hand it over: decoded, or still JSON text. */
function objectOf(value: unknown): Record<string, unknown> {
  if (typeof value !== 'string') return mapOf(value);
  try {
    return mapOf(JSON.parse(value));
  } catch {
    return {};
  }
}

function objectOrNull(value: unknown): Record<string, unknown> | null {
  const object = objectOf(value);
  return Object.keys(object).length > 0 ? object : null;
}

function floorSecond(at: Date): Date {
  return new Date(Math.floor(at.getTime() / SECOND) * SECOND);
}

function ceilSecond(at: Date): Date {
  return new Date(ceilToSecond(at.getTime()));
}

function ceilToSecond(ms: number): number {
  return Math.ceil(ms / SECOND) * SECOND;
}

/** A backfill was asked for while one runs. */
export class BackfillBusyError extends ModelCenterError {}

/**
 * A backfill that cannot be done as asked (an empty range, no LiteLLM to read). `field`: the
 * parameter at fault (`since`), when the request is.
 */
export class BackfillRequestError extends ModelCenterError {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export interface SpendBackfillerOptions {
  db: Database;
  /** Asked at every run (it may throw when no LiteLLM is known). */
  source: () => SpendLogsSource;
  /** Read at every run, so deployments added since are named. */
  catalog: () => DeploymentCatalog;
  settings: BackfillSettings;
  /**
   * Runs before every backfill: the service ingests the spool here first, so a request both
   * sources hold is found from the spool's rows (with every attempt) and skipped in LiteLLM's.
   */
  beforeRun?: () => Promise<unknown>;
  log?: SpendLogger;
  /** The spool's dead-letter box: rows that cannot be stored go there, counted the same way. */
  deadLetters?: DeadLetterBox;
  now?: () => Date;
}

/**
 * The name of a LiteLLM's catch-up mark: its origin (so pointing the backfill at another LiteLLM
 * database starts that one's history afresh; instances sharing one database share the reads).
 */
export function markName(baseUrl: string): string {
  try {
    return `litellm-spend-logs ${new URL(baseUrl).origin}`;
  } catch {
    return `litellm-spend-logs ${baseUrl}`;
  }
}

/** Backfills one at a time: catch-up runs (the scheduled job) and ranges asked for by a person. */
export class SpendBackfiller {
  private running: Promise<BackfillResult> | undefined;

  constructor(private readonly options: SpendBackfillerOptions) {}

  /**
   * From the last catch-up's mark (less the settle time; the first time, from the configured
   * lookback) to now less the settle time. Saves the mark as it goes.
   */
  async catchUp(): Promise<BackfillResult> {
    return this.run(async (source) => {
      const now = this.now();
      const settleMs = this.options.settings.settleSeconds * 1000;
      const mark = await backfillMark(this.options.db, markName(source.baseUrl));
      const start =
        mark ?? new Date(now.getTime() - this.options.settings.firstLookbackSeconds * 1000);
      return [new Date(start.getTime() - settleMs), new Date(now.getTime() - settleMs)];
    });
  }

  /**
   * As `modelcenter spend backfill` and `POST /v1/spend/backfill` ask: `since` (7d or a date) to
   * `until` (default now), or without `since` the catch-up. ReportQueryError for a bad time.
   */
  async forQuery(query: BackfillQuery): Promise<BackfillResult> {
    if (!query.since) return this.catchUp();
    const now = this.now();
    return this.range(
      pointInTime(query.since, now, 'since'),
      query.until ? pointInTime(query.until, now, 'until') : now,
    );
  }

  /**
   * One range, as asked (history before Model Center, or a gap), up to now at the latest; moves
   * the mark only forward.
   */
  async range(from: Date, until: Date): Promise<BackfillResult> {
    const to = new Date(Math.min(until.getTime(), this.now().getTime()));
    if (from.getTime() >= to.getTime())
      throw new BackfillRequestError(
        `nothing to backfill: the range starts (${from.toISOString()}) at or after its end (${to.toISOString()}; ranges end at now at the latest)`,
        'since',
      );
    return this.run(() => Promise.resolve([from, to]));
  }

  private now(): Date {
    return (this.options.now ?? (() => new Date()))();
  }

  /** One backfill at a time; `range` picks [from, to] once the source is known. */
  private async run(
    range: (source: SpendLogsSource) => Promise<[Date, Date]>,
  ): Promise<BackfillResult> {
    if (this.running)
      throw new BackfillBusyError(
        'a spend-log backfill is already running — wait for it (GET /v1/jobs shows spend-backfill) and ask again',
      );
    this.running = (async () => {
      const source = this.options.source();
      await this.options.beforeRun?.();
      const [from, to] = await range(source);
      return backfillSpendLogs({
        db: this.options.db,
        source,
        catalog: this.options.catalog(),
        from,
        to,
        markAs: markName(source.baseUrl),
        ...(this.options.log && { log: this.options.log }),
        ...(this.options.deadLetters && { deadLetters: this.options.deadLetters }),
      });
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }
}
