import type { Queryable } from './db.js';
import { bucketOf, HISTOGRAM_BUCKETS } from './histogram.js';

/** One LLM call attempt as the ledger stores it (src/spend/extract.ts builds it from a payload). */
export interface LedgerRow {
  callId: string;
  /** Epoch seconds with microseconds, as LiteLLM logs them. */
  startedAt: number;
  endedAt: number;
  status: 'success' | 'failure';
  goal: string | null;
  caller: string | null;
  conversation: string | null;
  profile: string | null;
  deployment: string | null;
  model: string | null;
  provider: string | null;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
  latencyMs: number | null;
  ttftMs: number | null;
  cacheHit: boolean;
  errorClass: string | null;
  errorCode: string | null;
  traceId: string | null;
  endUser: string | null;
  keyAlias: string | null;
  /** Prompt and response, only when the policies keep content and the record carried it. */
  content?: RequestContent;
  /**
   * What was changed to make the record storable (src/spend/clean.ts: `nul`, `surrogate`,
   * `long-value`, `cost`, `tokens`, `time`); absent for a record stored as it came.
   */
  cleaned?: string[];
  /**
   * 'spend_logs' for a row the backfill took from LiteLLM's spend logs (one per request); absent
   * for a StandardLoggingPayload (one per attempt), which replaces such a row for its call.
   */
  source?: 'spend_logs';
}

/** A request attempt's content as LiteLLM logged it (`messages` and `response`), any JSON. */
export interface RequestContent {
  messages: unknown;
  response: unknown;
}

/** Report dimensions. `conversation` is not in the hourly rollups: grouping by it reads raw rows. */
export const DIMENSIONS = [
  'goal',
  'caller',
  'conversation',
  'profile',
  'model',
  'provider',
  'deployment',
  'day',
  'hour',
] as const;
export type Dimension = (typeof DIMENSIONS)[number];
export type FilterDimension = Exclude<Dimension, 'day' | 'hour'>;
/** Every dimension but the time buckets can filter a report. */
export const FILTER_DIMENSIONS = DIMENSIONS.filter(
  (d): d is FilterDimension => d !== 'day' && d !== 'hour',
);

export interface ReportSpec {
  groupBy: Dimension[];
  from: Date;
  to: Date;
  /** Keep only rows whose dimension is one of these values (`null` matches "not set"). */
  filters: Partial<Record<FilterDimension, (string | null)[]>>;
}

export interface ReportGroup {
  /** The group's value per dimension of groupBy; null when the request did not carry it. */
  keys: Partial<Record<Dimension, string | null>>;
  requests: number;
  errors: number;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
  cacheHits: number;
  latencyHistogram: number[];
  ttftHistogram: number[];
}

const ROW_COLUMNS: [string, string, (row: LedgerRow) => unknown][] = [
  // [column, SQL type, value]
  ['call_id', 'text', (r) => r.callId],
  ['started_at', 'timestamptz', (r) => timestampText(r.startedAt)],
  ['ended_at', 'timestamptz', (r) => timestampText(r.endedAt)],
  ['status', 'text', (r) => r.status],
  ['goal', 'text', (r) => r.goal],
  ['caller', 'text', (r) => r.caller],
  ['conversation', 'text', (r) => r.conversation],
  ['profile', 'text', (r) => r.profile],
  ['deployment', 'text', (r) => r.deployment],
  ['model', 'text', (r) => r.model],
  ['provider', 'text', (r) => r.provider],
  ['tokens_in', 'int4', (r) => r.tokensIn],
  ['tokens_out', 'int4', (r) => r.tokensOut],
  ['cost_usd', 'float8', (r) => r.costUsd],
  ['latency_ms', 'float8', (r) => r.latencyMs],
  ['ttft_ms', 'float8', (r) => r.ttftMs],
  ['cache_hit', 'bool', (r) => r.cacheHit],
  ['error_class', 'text', (r) => r.errorClass],
  ['error_code', 'text', (r) => r.errorCode],
  ['trace_id', 'text', (r) => r.traceId],
  ['end_user', 'text', (r) => r.endUser],
  ['key_alias', 'text', (r) => r.keyAlias],
  ['source', 'text', (r) => r.source ?? 'payload'],
  // undefined leaves the key out of the JSON: NULL, and nothing to write for a clean row.
  ['cleaned', 'text', (r) => r.cleaned?.join(',')],
];

/**
 * One JSON parameter for the whole batch: PostgreSQL parses it with json_populate_recordset several
 * times faster than 22 array parameters (measured on PGlite: 17 µs against 80 µs a row).
 */
const INSERT_ROWS = `
  INSERT INTO spend_requests (${ROW_COLUMNS.map(([c]) => c).join(', ')})
  SELECT ${ROW_COLUMNS.map(([c]) => c).join(', ')}
  FROM json_populate_recordset(NULL::spend_requests, $1::json)
  ON CONFLICT DO NOTHING
  RETURNING call_id, status, (extract(epoch FROM started_at) * 1000000)::bigint::text AS us`;

/** The inserted rows' keys as one text value: one result row is much cheaper than thousands. */
const INSERT_ROWS_KEYS = `
  WITH inserted AS (${INSERT_ROWS})
  SELECT count(*)::int AS n, string_agg(call_id || '|' || status || '|' || us, E'\n') AS keys
  FROM inserted`;

export const ROLLUP_KEYS = [
  'goal',
  'caller',
  'profile',
  'deployment',
  'model',
  'provider',
] as const;
export type RollupKey = (typeof ROLLUP_KEYS)[number];

/** What one batch adds to one rollup row (hourly or daily). */
export interface RollupDelta {
  /** Start of the hour or UTC day, epoch ms. */
  start: number;
  keys: Record<RollupKey, string>;
  requests: number;
  errors: number;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
  cacheHits: number;
  latencyHist: number[];
  ttftHist: number[];
}

const HOUR_S = 3600;
const DAY_S = 86_400;

/** Rows → their sums per period (an hour or a UTC day) and rollup keys ('' for a missing key). Pure. */
export function rollupDeltas(rows: readonly LedgerRow[], periodSeconds = HOUR_S): RollupDelta[] {
  const deltas = new Map<string, RollupDelta>();
  for (const row of rows) {
    const start = Math.floor(row.startedAt / periodSeconds) * periodSeconds * 1000;
    const keys = {
      goal: row.goal ?? '',
      caller: row.caller ?? '',
      profile: row.profile ?? '',
      deployment: row.deployment ?? '',
      model: row.model ?? '',
      provider: row.provider ?? '',
    };
    const id = `${start}\u0000${ROLLUP_KEYS.map((k) => keys[k]).join('\u0000')}`;
    let delta = deltas.get(id);
    if (!delta) {
      delta = {
        start,
        keys,
        requests: 0,
        errors: 0,
        tokensIn: 0,
        tokensOut: 0,
        costUsd: 0,
        cacheHits: 0,
        latencyHist: new Array<number>(HISTOGRAM_BUCKETS).fill(0),
        ttftHist: new Array<number>(HISTOGRAM_BUCKETS).fill(0),
      };
      deltas.set(id, delta);
    }
    delta.requests += 1;
    if (row.status === 'failure') delta.errors += 1;
    delta.tokensIn += row.tokensIn;
    delta.tokensOut += row.tokensOut;
    delta.costUsd += row.costUsd;
    if (row.cacheHit) delta.cacheHits += 1;
    if (row.latencyMs !== null) delta.latencyHist[bucketOf(row.latencyMs)]! += 1;
    if (row.ttftMs !== null) delta.ttftHist[bucketOf(row.ttftMs)]! += 1;
  }
  return [...deltas.values()];
}

const upsertRollup = (table: 'spend_hourly' | 'spend_daily', time: 'hour' | 'day'): string => `
  INSERT INTO ${table} AS h (${time}, ${ROLLUP_KEYS.join(', ')}, requests, errors, tokens_in,
    tokens_out, cost_usd, cache_hits, latency_hist, ttft_hist)
  SELECT to_timestamp(hour / 1000.0), ${ROLLUP_KEYS.join(', ')}, requests, errors, tokens_in,
    tokens_out, cost_usd, cache_hits, latency_hist::int[], ttft_hist::int[]
  FROM unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::float8[], $13::int8[], $14::text[], $15::text[])
    AS u(hour, ${ROLLUP_KEYS.join(', ')}, requests, errors, tokens_in, tokens_out, cost_usd,
      cache_hits, latency_hist, ttft_hist)
  ON CONFLICT (${time}, ${ROLLUP_KEYS.join(', ')}) DO UPDATE SET
    requests = h.requests + excluded.requests,
    errors = h.errors + excluded.errors,
    tokens_in = h.tokens_in + excluded.tokens_in,
    tokens_out = h.tokens_out + excluded.tokens_out,
    cost_usd = h.cost_usd + excluded.cost_usd,
    cache_hits = h.cache_hits + excluded.cache_hits,
    latency_hist = mc_int_array_add(h.latency_hist, excluded.latency_hist),
    ttft_hist = mc_int_array_add(h.ttft_hist, excluded.ttft_hist)`;
const UPSERT_HOURLY = upsertRollup('spend_hourly', 'hour');
const UPSERT_DAILY = upsertRollup('spend_daily', 'day');

/**
 * Inserts rows, skipping any already in the ledger (same call, attempt start and status), and adds
 * exactly the inserted ones to the hourly rollups. Call it inside a transaction so the two never
 * disagree. Returns how many rows were new.
 */
export async function insertRows(db: Queryable, rows: readonly LedgerRow[]): Promise<number> {
  if (rows.length === 0) return 0;
  if (rows.some((r) => r.source === undefined)) {
    await lockCallChecks(db);
    await replaceBackfilled(db, rows);
  }
  const records = rows.map((row) => {
    const record: Record<string, unknown> = {};
    for (const [column, , value] of ROW_COLUMNS) record[column] = value(row);
    return record;
  });
  const [result] = await db.query<{ n: number; keys: string | null }>(INSERT_ROWS_KEYS, [
    JSON.stringify(records),
  ]);
  const count = result?.n ?? 0;
  if (count === 0) return 0;
  const fresh = new Set((result?.keys ?? '').split('\n'));
  const added =
    count === rows.length
      ? rows
      : rows.filter((r) => fresh.has(`${r.callId}|${r.status}|${Math.round(r.startedAt * 1e6)}`));
  await upsertDeltas(db, UPSERT_HOURLY, rollupDeltas(added, HOUR_S));
  await upsertDeltas(db, UPSERT_DAILY, rollupDeltas(added, DAY_S));
  await insertContent(db, added);
  return count;
}

/**
 * Serialises, until the transaction ends, the two checks that keep one request from being counted
 * twice across sources (a payload replacing a backfilled row; the backfill skipping a known call):
 * without it two transactions on PostgreSQL could each miss the other's uncommitted row.
 */
export async function lockCallChecks(db: Queryable): Promise<void> {
  await db.query('SELECT pg_advisory_xact_lock(7170012)');
}

/**
 * Payload rows (the spool's, generic_api's) replace the rows the backfill took from LiteLLM's
 * spend logs for the same calls, and the rollups lose what those rows added: a request is counted
 * once, from its per-attempt payloads, whichever source delivered first. Reads only the partial
 * index of backfilled rows, so it costs nothing when no backfill has run.
 */
async function replaceBackfilled(db: Queryable, rows: readonly LedgerRow[]): Promise<void> {
  const calls = [...new Set(rows.filter((r) => r.source === undefined).map((r) => r.callId))];
  if (calls.length === 0) return;
  const gone = await db.query<StoredRow>(
    `DELETE FROM spend_requests WHERE source = 'spend_logs' AND call_id = ANY($1::text[])
     RETURNING ${STORED_COLUMNS}`,
    [calls],
  );
  if (gone.length === 0) return;
  const removed = gone.map(rowOfStored);
  const hourly = rollupDeltas(removed, HOUR_S);
  const daily = rollupDeltas(removed, DAY_S);
  await upsertDeltas(db, UPSERT_HOURLY, hourly.map(negated));
  await upsertDeltas(db, UPSERT_DAILY, daily.map(negated));
  // A rollup row only the replaced rows made (the payload's keys differ) would stay as a zero.
  await db.query('DELETE FROM spend_hourly WHERE requests = 0 AND hour = ANY($1::timestamptz[])', [
    hourly.map((d) => new Date(d.start).toISOString()),
  ]);
  await db.query('DELETE FROM spend_daily WHERE requests = 0 AND day = ANY($1::timestamptz[])', [
    daily.map((d) => new Date(d.start).toISOString()),
  ]);
}

/** The columns rollupDeltas reads, as stored. */
const STORED_COLUMNS = `call_id, extract(epoch FROM started_at)::float8 AS started_s, status, goal,
  caller, profile, deployment, model, provider, tokens_in, tokens_out, cost_usd, latency_ms,
  ttft_ms, cache_hit`;

interface StoredRow {
  call_id: string;
  started_s: number;
  status: LedgerRow['status'];
  goal: string | null;
  caller: string | null;
  profile: string | null;
  deployment: string | null;
  model: string | null;
  provider: string | null;
  tokens_in: number;
  tokens_out: number;
  cost_usd: number;
  latency_ms: number | null;
  ttft_ms: number | null;
  cache_hit: boolean;
}

function rowOfStored(r: StoredRow): LedgerRow {
  return {
    callId: r.call_id,
    startedAt: Number(r.started_s),
    endedAt: Number(r.started_s),
    status: r.status,
    goal: r.goal,
    caller: r.caller,
    conversation: null,
    profile: r.profile,
    deployment: r.deployment,
    model: r.model,
    provider: r.provider,
    tokensIn: r.tokens_in,
    tokensOut: r.tokens_out,
    costUsd: r.cost_usd,
    latencyMs: r.latency_ms,
    ttftMs: r.ttft_ms,
    cacheHit: r.cache_hit,
    errorClass: null,
    errorCode: null,
    traceId: null,
    endUser: null,
    keyAlias: null,
  };
}

/** A rollup delta that takes away what `delta` added. */
function negated(delta: RollupDelta): RollupDelta {
  return {
    ...delta,
    requests: -delta.requests,
    errors: -delta.errors,
    tokensIn: -delta.tokensIn,
    tokensOut: -delta.tokensOut,
    costUsd: -delta.costUsd,
    cacheHits: -delta.cacheHits,
    latencyHist: delta.latencyHist.map((n) => -n),
    ttftHist: delta.ttftHist.map((n) => -n),
  };
}

const INSERT_CONTENT = `
  INSERT INTO spend_content (started_at, call_id, status, messages, response)
  SELECT started_at, call_id, status, messages, response
  FROM json_populate_recordset(NULL::spend_content, $1::json)
  ON CONFLICT DO NOTHING`;

/** The content of the rows just inserted that carry some (none: no statement at all). */
async function insertContent(db: Queryable, added: readonly LedgerRow[]): Promise<void> {
  const records: string[] = [];
  for (const row of added) {
    if (!row.content) continue;
    const record = {
      started_at: timestampText(row.startedAt),
      call_id: row.callId,
      status: row.status,
      messages: row.content.messages ?? null,
      response: row.content.response ?? null,
    };
    const text = JSON.stringify(record);
    // JSON.stringify writes NUL as \u0000 and a lone surrogate as \udXXX: only then the slow way.
    records.push(UNSTORABLE_ESCAPE.test(text) ? JSON.stringify(record, storableText) : text);
  }
  if (records.length > 0) await db.query(INSERT_CONTENT, [`[${records.join(',')}]`]);
}

const UNSTORABLE_ESCAPE = /\\u(0000|d[89a-f])/i;

/**
 * jsonb refuses NUL characters and lone surrogates, in values and in keys, and one refused value
 * would fail its whole batch again and again: NUL becomes U+FFFD, lone surrogates are made
 * well-formed. A JSON.stringify replacer: an object with such a key is copied with clean keys.
 */
function storableText(_key: string, value: unknown): unknown {
  if (typeof value === 'string') return storableString(value);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const entries = Object.entries(value);
  if (!entries.some(([key]) => UNSTORABLE_CHAR.test(key))) return value;
  return Object.fromEntries(entries.map(([key, item]) => [storableString(key), item]));
}

// eslint-disable-next-line no-control-regex -- NUL is exactly what this looks for
const UNSTORABLE_CHAR = /[\u0000\ud800-\udfff]/;

function storableString(value: string): string {
  const text = (value as string & { toWellFormed(): string }).toWellFormed();
  return text.includes('\u0000') ? text.replaceAll('\u0000', '\ufffd') : text;
}

async function upsertDeltas(db: Queryable, sql: string, deltas: RollupDelta[]): Promise<void> {
  await db.query(sql, [
    deltas.map((d) => d.start),
    ...ROLLUP_KEYS.map((k) => deltas.map((d) => d.keys[k])),
    deltas.map((d) => d.requests),
    deltas.map((d) => d.errors),
    deltas.map((d) => d.tokensIn),
    deltas.map((d) => d.tokensOut),
    deltas.map((d) => d.costUsd),
    deltas.map((d) => d.cacheHits),
    deltas.map((d) => `{${d.latencyHist.join(',')}}`),
    deltas.map((d) => `{${d.ttftHist.join(',')}}`),
  ]);
}

/** Epoch seconds → an exact timestamptz literal with microseconds (no float rounding in SQL). */
function timestampText(seconds: number): string {
  const us = Math.round(seconds * 1e6);
  const ms = Math.floor(us / 1000);
  return `${new Date(ms).toISOString().slice(0, 23)}${String(us - ms * 1000).padStart(3, '0')}Z`;
}

/** Read positions of the spool files, by file name. */
export async function readOffsets(db: Queryable): Promise<Map<string, number>> {
  const rows = await db.query<{ file: string; byte_offset: string | number }>(
    'SELECT file, byte_offset FROM spend_spool_offsets',
  );
  return new Map(rows.map((r) => [r.file, Number(r.byte_offset)]));
}

export async function saveOffset(db: Queryable, file: string, offset: number): Promise<void> {
  await db.query(
    `INSERT INTO spend_spool_offsets (file, byte_offset) VALUES ($1, $2)
     ON CONFLICT (file) DO UPDATE SET byte_offset = excluded.byte_offset, updated_at = now()`,
    [file, offset],
  );
}

export async function forgetOffset(db: Queryable, file: string): Promise<void> {
  await db.query('DELETE FROM spend_spool_offsets WHERE file = $1', [file]);
}

/**
 * The call ids among `callIds` that have a row starting within [from, to]: a request is known
 * whatever source recorded it (the spool logs every attempt, LiteLLM's spend logs one row per
 * request, so their rows differ even for the same call).
 */
export async function knownCallIds(
  db: Queryable,
  callIds: readonly string[],
  from: Date,
  to: Date,
): Promise<Set<string>> {
  if (callIds.length === 0) return new Set();
  const rows = await db.query<{ call_id: string }>(
    `SELECT DISTINCT call_id FROM spend_requests
     WHERE started_at BETWEEN $1 AND $2 AND call_id = ANY($3::text[])`,
    [from.toISOString(), to.toISOString(), callIds],
  );
  return new Set(rows.map((r) => r.call_id));
}

/** Where the spend-log backfill of `source` has read up to (every start before it is in). */
export async function backfillMark(db: Queryable, source: string): Promise<Date | undefined> {
  const rows = await db.query<{ done_until: string | Date }>(
    'SELECT done_until FROM spend_backfill WHERE source = $1',
    [source],
  );
  return rows[0] ? new Date(rows[0].done_until) : undefined;
}

/** Moves the mark forward only (a backfill of an older range never moves it back). */
export async function saveBackfillMark(db: Queryable, source: string, until: Date): Promise<void> {
  await db.query(
    `INSERT INTO spend_backfill (source, done_until) VALUES ($1, $2)
     ON CONFLICT (source) DO UPDATE SET
       done_until = greatest(spend_backfill.done_until, excluded.done_until), updated_at = now()`,
    [source, until.toISOString()],
  );
}

/**
 * Deletes raw rows that started before `before`, with their content; the hourly rollups keep
 * their totals. One statement, so rows and content go together.
 */
export async function pruneRawRows(db: Queryable, before: Date): Promise<number> {
  const rows = await db.query<{ n: number }>(
    `WITH gone AS (DELETE FROM spend_requests WHERE started_at < $1 RETURNING 1),
          content AS (DELETE FROM spend_content WHERE started_at < $1)
     SELECT count(*)::int AS n FROM gone`,
    [before.toISOString()],
  );
  return rows[0]?.n ?? 0;
}

/** Number of raw rows (tests and status). */
export async function countRawRows(db: Queryable): Promise<number> {
  const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM spend_requests');
  return rows[0]?.n ?? 0;
}

/** Raw rows of one call (tests, and looking up a request by its x-litellm-call-id). */
export async function rowsOfCall(
  db: Queryable,
  callId: string,
): Promise<Record<string, unknown>[]> {
  return db.query('SELECT * FROM spend_requests WHERE call_id = $1 ORDER BY started_at', [callId]);
}

/** All call ids in the ledger with how many rows each has (tests). */
export async function callIdCounts(db: Queryable): Promise<Map<string, number>> {
  const rows = await db.query<{ call_id: string; n: number }>(
    'SELECT call_id, count(*)::int AS n FROM spend_requests GROUP BY call_id',
  );
  return new Map(rows.map((r) => [r.call_id, r.n]));
}

/** True when the report needs raw rows: conversation is not kept in the rollups. */
export function needsRawRows(spec: ReportSpec): boolean {
  return spec.groupBy.includes('conversation') || spec.filters.conversation !== undefined;
}

const ROLLUP_COLUMNS = [
  ...ROLLUP_KEYS,
  'requests',
  'errors',
  'tokens_in',
  'tokens_out',
  'cost_usd',
  'cache_hits',
  'latency_hist',
  'ttft_hist',
].join(', ');

/**
 * The rollup rows covering [from, to) widened to whole hours: daily rows for the whole UTC days
 * inside it, hourly rows for the partial days at either end (all hourly when grouping by hour).
 * Each row's period start is `ts`.
 */
function rollupSource(spec: ReportSpec, params: unknown[]): string {
  const hourMs = HOUR_S * 1000;
  const dayMs = DAY_S * 1000;
  const from = Math.floor(spec.from.getTime() / hourMs) * hourMs;
  const to = spec.to.getTime();
  const firstDay = Math.ceil(from / dayMs) * dayMs;
  const lastDay = Math.floor(to / dayMs) * dayMs;
  const iso = (ms: number): string => new Date(ms).toISOString();
  if (spec.groupBy.includes('hour') || firstDay >= lastDay) {
    params.push(iso(from), iso(to));
    return `(SELECT hour AS ts, ${ROLLUP_COLUMNS} FROM spend_hourly WHERE hour >= $1 AND hour < $2) AS src`;
  }
  params.push(iso(from), iso(firstDay), iso(lastDay), iso(to));
  return `(SELECT day AS ts, ${ROLLUP_COLUMNS} FROM spend_daily WHERE day >= $2 AND day < $3
           UNION ALL
           SELECT hour AS ts, ${ROLLUP_COLUMNS} FROM spend_hourly
           WHERE (hour >= $1 AND hour < $2) OR (hour >= $3 AND hour < $4)) AS src`;
}

/**
 * Sums the measures per group. From the rollups (daily for whole days, hourly for the rest; the
 * range widened to whole hours) unless the report groups or filters by conversation; then from raw
 * rows, which only reach back as far as the raw-row retention.
 */
export async function queryReport(db: Queryable, spec: ReportSpec): Promise<ReportGroup[]> {
  const raw = needsRawRows(spec);
  const params: unknown[] = [];
  let source = 'spend_requests';
  if (raw) params.push(spec.from.toISOString(), spec.to.toISOString());
  else source = rollupSource(spec, params);
  const time = raw ? 'started_at' : 'ts';
  const where = raw ? ['started_at >= $1', 'started_at < $2'] : ['true'];
  for (const [dimension, values] of Object.entries(spec.filters)) {
    if (!values) continue;
    const column = dimension as FilterDimension;
    const named = values.filter((v): v is string => v !== null);
    const parts: string[] = [];
    if (named.length > 0) {
      params.push(named);
      parts.push(`${column} = ANY($${params.length}::text[])`);
    }
    if (named.length < values.length) parts.push(raw ? `${column} IS NULL` : `${column} = ''`);
    where.push(`(${parts.join(' OR ') || 'false'})`);
  }
  const keyExpr = (d: Dimension): string => {
    if (d === 'day') return `to_char(${time} AT TIME ZONE 'UTC', 'YYYY-MM-DD')`;
    if (d === 'hour') return `to_char(${time} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":00Z"')`;
    return raw ? d : `nullif(${d}, '')`;
  };
  const keys = spec.groupBy.map((d, i) => `${keyExpr(d)} AS k${i}`);
  const measures = raw
    ? [
        'count(*)::float8 AS requests',
        `count(*) FILTER (WHERE status = 'failure')::float8 AS errors`,
        'coalesce(sum(tokens_in), 0)::float8 AS tokens_in',
        'coalesce(sum(tokens_out), 0)::float8 AS tokens_out',
        'coalesce(sum(cost_usd), 0)::float8 AS cost_usd',
        'count(*) FILTER (WHERE cache_hit)::float8 AS cache_hits',
        'mc_hist(mc_bucket(latency_ms)) AS latency_hist',
        'mc_hist(mc_bucket(ttft_ms)) AS ttft_hist',
      ]
    : [
        'sum(requests)::float8 AS requests',
        'sum(errors)::float8 AS errors',
        'sum(tokens_in)::float8 AS tokens_in',
        'sum(tokens_out)::float8 AS tokens_out',
        'sum(cost_usd)::float8 AS cost_usd',
        'sum(cache_hits)::float8 AS cache_hits',
        `ARRAY[${bucketSums('latency_hist')}] AS latency_hist`,
        `ARRAY[${bucketSums('ttft_hist')}] AS ttft_hist`,
      ];
  const groupBy = spec.groupBy.length > 0 ? `GROUP BY ${keys.map((_, i) => i + 1).join(', ')}` : '';
  const sql = `
    SELECT ${[...keys, ...measures].join(', ')}
    FROM ${source}
    WHERE ${where.join(' AND ')}
    ${groupBy}`;
  const rows = await db.query<Record<string, unknown>>(sql, params);
  return rows
    .filter((row) => Number(row.requests) > 0)
    .map((row) => ({
      keys: Object.fromEntries(
        spec.groupBy.map((d, i) => [d, (row[`k${i}`] as string | null) ?? null]),
      ),
      requests: Number(row.requests),
      errors: Number(row.errors),
      tokensIn: Number(row.tokens_in),
      tokensOut: Number(row.tokens_out),
      costUsd: Number(row.cost_usd),
      cacheHits: Number(row.cache_hits),
      latencyHistogram: toNumbers(row.latency_hist),
      ttftHistogram: toNumbers(row.ttft_hist),
    }));
}

/** `sum(h[1])::int, …, sum(h[64])::int`: plain aggregates are far faster than an array aggregate. */
function bucketSums(column: string): string {
  return Array.from(
    { length: HISTOGRAM_BUCKETS },
    (_, i) => `coalesce(sum(${column}[${i + 1}]), 0)::int`,
  ).join(', ');
}

function toNumbers(value: unknown): number[] {
  if (Array.isArray(value)) return value.map(Number);
  if (typeof value === 'string')
    return value.replace(/[{}]/g, '').split(',').filter(Boolean).map(Number);
  return [];
}

/** Cost and requests of one bucket for one value of a dimension (`spendPerBucket`). */
export interface BucketSpend {
  /** The bucket's start, ms since the epoch (UTC hour or day). */
  startMs: number;
  /** The dimension's value; null when not set. */
  key: string | null;
  costUsd: number;
  requests: number;
}

/**
 * Cost and requests per hour or UTC day and per value of one rollup dimension over [from, to)
 * (widened to whole hours): the dashboard's chart. Only the two sums are read — no histograms,
 * which make a report's rollup rows costly — from daily rollups for whole days when bucketing by
 * day, hourly ones otherwise.
 */
export async function spendPerBucket(
  db: Queryable,
  spec: { bucket: 'hour' | 'day'; by: RollupKey; from: Date; to: Date },
): Promise<BucketSpend[]> {
  if (!ROLLUP_KEYS.includes(spec.by)) throw new Error(`not a rollup dimension: ${spec.by}`);
  const hourMs = HOUR_S * 1000;
  const dayMs = DAY_S * 1000;
  const from = Math.floor(spec.from.getTime() / hourMs) * hourMs;
  const to = spec.to.getTime();
  const iso = (ms: number): string => new Date(ms).toISOString();
  const columns = `${spec.by}, cost_usd, requests`;
  const firstDay = Math.ceil(from / dayMs) * dayMs;
  const lastDay = Math.floor(to / dayMs) * dayMs;
  let source: string;
  let params: unknown[];
  if (spec.bucket === 'hour' || firstDay >= lastDay) {
    params = [iso(from), iso(to)];
    source = `SELECT hour AS ts, ${columns} FROM spend_hourly WHERE hour >= $1 AND hour < $2`;
  } else {
    params = [iso(from), iso(firstDay), iso(lastDay), iso(to)];
    source = `SELECT day AS ts, ${columns} FROM spend_daily WHERE day >= $2 AND day < $3
              UNION ALL
              SELECT hour AS ts, ${columns} FROM spend_hourly
              WHERE (hour >= $1 AND hour < $2) OR (hour >= $3 AND hour < $4)`;
  }
  // Grouped on the rows' own period start (hour or day) first, the few groups then bucketed here:
  // no function evaluated per row.
  const rows = await db.query<{ ts: string | Date; k: string; cost: number; n: number }>(
    `SELECT ts, ${spec.by} AS k, sum(cost_usd)::float8 AS cost, sum(requests)::float8 AS n
     FROM (${source}) AS src
     GROUP BY 1, 2`,
    params,
  );
  const width = (spec.bucket === 'hour' ? HOUR_S : DAY_S) * 1000;
  const merged = new Map<string, BucketSpend>();
  for (const row of rows) {
    if (Number(row.n) <= 0) continue;
    const startMs = Math.floor(new Date(row.ts).getTime() / width) * width;
    const key = row.k === '' ? null : row.k;
    const id = `${startMs}\u0000${row.k}`;
    const entry = merged.get(id);
    if (entry) {
      entry.costUsd += Number(row.cost);
      entry.requests += Number(row.n);
    } else merged.set(id, { startMs, key, costUsd: Number(row.cost), requests: Number(row.n) });
  }
  return [...merged.values()];
}

/** Total spend in a range, optionally narrowed by filters: what budgets compare against. */
export async function spendInRange(
  db: Queryable,
  from: Date,
  to: Date,
  filters: ReportSpec['filters'],
): Promise<number> {
  const groups = await queryReport(db, { groupBy: [], from, to, filters });
  return groups[0]?.costUsd ?? 0;
}

/** Records an alert; false when this budget already alerted at this threshold in this period. */
export async function recordAlert(
  db: Queryable,
  alert: {
    budget: string;
    periodStart: Date;
    threshold: number;
    spendUsd: number;
    limitUsd: number;
  },
): Promise<boolean> {
  const rows = await db.query(
    `INSERT INTO spend_alerts (budget, period_start, threshold, spend_usd, limit_usd)
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING 1`,
    [
      alert.budget,
      alert.periodStart.toISOString(),
      alert.threshold,
      alert.spendUsd,
      alert.limitUsd,
    ],
  );
  return rows.length > 0;
}

export async function markAlertDelivered(
  db: Queryable,
  alert: { budget: string; periodStart: Date; threshold: number },
): Promise<void> {
  await db.query(
    'UPDATE spend_alerts SET delivered = true WHERE budget = $1 AND period_start = $2 AND threshold = $3',
    [alert.budget, alert.periodStart.toISOString(), alert.threshold],
  );
}

/** Alerts recorded but not yet delivered (a webhook that was down), oldest first. */
export async function undeliveredAlerts(
  db: Queryable,
): Promise<
  { budget: string; periodStart: Date; threshold: number; spendUsd: number; limitUsd: number }[]
> {
  const rows = await db.query<{
    budget: string;
    period_start: string | Date;
    threshold: number;
    spend_usd: number;
    limit_usd: number;
  }>(
    'SELECT budget, period_start, threshold, spend_usd, limit_usd FROM spend_alerts WHERE NOT delivered ORDER BY fired_at',
  );
  return rows.map((r) => ({
    budget: r.budget,
    periodStart: new Date(r.period_start),
    threshold: Number(r.threshold),
    spendUsd: Number(r.spend_usd),
    limitUsd: Number(r.limit_usd),
  }));
}

/** Budget alerts raised since `since` (delivered or not), newest first. */
export async function alertsSince(
  db: Queryable,
  since: Date,
): Promise<
  {
    budget: string;
    periodStart: Date;
    threshold: number;
    spendUsd: number;
    limitUsd: number;
    firedAt: Date;
    delivered: boolean;
  }[]
> {
  const rows = await db.query<{
    budget: string;
    period_start: string | Date;
    threshold: number;
    spend_usd: number;
    limit_usd: number;
    fired_at: string | Date;
    delivered: boolean;
  }>(
    `SELECT budget, period_start, threshold, spend_usd, limit_usd, fired_at, delivered
     FROM spend_alerts WHERE fired_at >= $1 ORDER BY fired_at DESC, threshold DESC LIMIT 500`,
    [since.toISOString()],
  );
  return rows.map((r) => ({
    budget: r.budget,
    periodStart: new Date(r.period_start),
    threshold: Number(r.threshold),
    spendUsd: Number(r.spend_usd),
    limitUsd: Number(r.limit_usd),
    firedAt: new Date(r.fired_at),
    delivered: r.delivered,
  }));
}

/** One attempt of a call as `spend show` and `GET /v1/spend/requests/{callId}` present it. */
export interface CallAttempt extends Omit<
  LedgerRow,
  'callId' | 'startedAt' | 'endedAt' | 'traceId' | 'endUser' | 'keyAlias' | 'content'
> {
  startedAt: Date;
  endedAt: Date;
  /** Present only when the ledger kept this attempt's content. */
  content?: RequestContent;
}

/**
 * Every attempt of one call (retries and fallbacks share the call id), oldest first, with its
 * content where kept (jsonb arrives parsed from both drivers).
 */
export async function attemptsOfCall(db: Queryable, callId: string): Promise<CallAttempt[]> {
  const rows = await db.query<Record<string, unknown>>(
    `SELECT r.started_at, r.ended_at, r.status, r.goal, r.caller, r.conversation, r.profile,
            r.deployment, r.model, r.provider, r.tokens_in, r.tokens_out, r.cost_usd,
            r.latency_ms, r.ttft_ms, r.cache_hit, r.error_class, r.error_code, r.cleaned,
            c.call_id IS NOT NULL AS has_content, c.messages, c.response
     FROM spend_requests r
     LEFT JOIN spend_content c USING (started_at, call_id, status)
     WHERE r.call_id = $1
     ORDER BY r.started_at, r.status`,
    [callId],
  );
  const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);
  const number = (value: unknown): number | null => (value === null ? null : Number(value));
  return rows.map((r) => ({
    startedAt: new Date(r.started_at as string | Date),
    endedAt: new Date(r.ended_at as string | Date),
    status: r.status as CallAttempt['status'],
    goal: text(r.goal),
    caller: text(r.caller),
    conversation: text(r.conversation),
    profile: text(r.profile),
    deployment: text(r.deployment),
    model: text(r.model),
    provider: text(r.provider),
    tokensIn: Number(r.tokens_in),
    tokensOut: Number(r.tokens_out),
    costUsd: Number(r.cost_usd),
    latencyMs: number(r.latency_ms),
    ttftMs: number(r.ttft_ms),
    cacheHit: r.cache_hit === true,
    errorClass: text(r.error_class),
    errorCode: text(r.error_code),
    ...(typeof r.cleaned === 'string' && { cleaned: r.cleaned.split(',') }),
    ...(r.has_content === true && {
      content: { messages: r.messages, response: r.response },
    }),
  }));
}
