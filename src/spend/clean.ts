/**
 * What a ledger row may hold, and how a value that PostgreSQL would refuse (or that would poison
 * the totals) is made storable. One bad value must never fail its batch: jsonb and text refuse NUL
 * and lone surrogates, integer columns refuse 3e9, a NOT NULL float refuses Infinity (which
 * JSON.stringify writes as null), btree keys refuse values over about 2.7 kB, and a negative cost
 * would make every report total wrong. Pure.
 */

/** What was changed to make a row storable; kept on the row (`cleaned`) and counted. */
export const CLEANED_REASONS = [
  'nul',
  'surrogate',
  'long-value',
  'cost',
  'tokens',
  'time',
] as const;
export type CleanedReason = (typeof CLEANED_REASONS)[number];

/** Why a spool line or payload could not be stored at all; it goes to the dead-letter file. */
export const DEAD_LETTER_REASONS = [
  'not-json',
  'not-a-payload',
  'too-long',
  'date-out-of-range',
  'database',
  // LiteLLM's spool callback could not write records in time (a full disk): a marker line says
  // how many; they are not in the ledger.
  'spool-lost',
] as const;
export type DeadLetterReason = (typeof DEAD_LETTER_REASONS)[number];

/**
 * Bytes (UTF-8) a dimension may hold: the rollup key holds six of them plus the hour, and a btree
 * entry must stay under about 2,700 bytes.
 */
export const MAX_KEY_BYTES = 300;
/** Bytes any other text column may hold (error class and code, trace id, end user, key alias). */
export const MAX_TEXT_BYTES = 1000;
/** More than this for one attempt is not a price anyone pays: the cost is unknown. */
export const MAX_COST_USD = 1_000_000;
/** Token columns are PostgreSQL integers. */
export const MAX_TOKENS = 2_147_483_647;
/** Request times the ledger accepts (epoch seconds): 2000-01-01 up to 2100-01-01. */
export const EARLIEST_TIME_S = 946_684_800;
export const LATEST_TIME_S = 4_102_444_800;

/**
 * What was cleaned in one record, in the order found. A plain holder, not a Set: this runs for
 * every spool line, and almost every record needs nothing.
 */
export interface Flags {
  found?: CleanedReason[];
}

/** Adds `reason` to `flags` once. */
export function flag(flags: Flags, reason: CleanedReason): void {
  if (!flags.found) flags.found = [reason];
  else if (!flags.found.includes(reason)) flags.found.push(reason);
}

/** NUL, or any surrogate code unit (most are halves of well-formed pairs: checked further). */
// eslint-disable-next-line no-control-regex -- NUL is exactly what this looks for
const SUSPECT = /[\u0000\ud800-\udfff]/;
const encoder = new TextEncoder();

/** ES2024 string methods Node 20 has; the ES2023 lib does not declare them. */
type WellFormed = string & { isWellFormed(): boolean; toWellFormed(): string };

/**
 * `text` as the ledger can store it: NUL removed, lone surrogates replaced by U+FFFD, cut at a
 * character boundary to `maxBytes` of UTF-8. Each change is added to `flags`.
 */
export function storableText(text: string, maxBytes: number, flags: Flags): string {
  let out = text;
  if (SUSPECT.test(out)) {
    if (out.includes('\u0000')) {
      out = out.replaceAll('\u0000', '');
      flag(flags, 'nul');
    }
    if (!(out as WellFormed).isWellFormed()) {
      out = (out as WellFormed).toWellFormed();
      flag(flags, 'surrogate');
    }
  }
  // A UTF-16 code unit is at most 3 bytes of UTF-8 (a pair of them 4): short text needs no count.
  if (out.length * 3 > maxBytes) {
    const bytes = new Uint8Array(maxBytes);
    const { read } = encoder.encodeInto(out, bytes);
    if (read < out.length) {
      out = out.slice(0, read);
      flag(flags, 'long-value');
    }
  }
  return out;
}

/** storableText for a nullable column. */
export function storableOrNull(text: string | null, maxBytes: number, flags: Flags): string | null {
  return text === null ? null : storableText(text, maxBytes, flags);
}

/**
 * A token count: missing is 0; negative, fractional-infinite, non-numeric or beyond an integer
 * column is unknown (0) and flagged `tokens`.
 */
export function tokenCount(value: unknown, flags: Flags): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_TOKENS) {
    flag(flags, 'tokens');
    return 0;
  }
  return Math.round(value);
}

/**
 * A cost in USD: missing is 0 (LiteLLM could not price it); negative, non-finite, non-numeric or
 * absurd (over MAX_COST_USD) is unknown, counted as 0 and flagged `cost`, so one bad record
 * cannot turn a report total negative or infinite.
 */
export function costUsd(value: unknown, flags: Flags): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_COST_USD) {
    flag(flags, 'cost');
    return 0;
  }
  return value;
}

/** Whether epoch seconds are a time the ledger stores (finite, 2000 to 2100). */
export function inTimeRange(value: unknown): value is number {
  return (
    typeof value === 'number' &&
    Number.isFinite(value) &&
    value >= EARLIEST_TIME_S &&
    value < LATEST_TIME_S
  );
}

/** A JSON value for the dead-letter file: the original text, cut to `maxChars` if longer. */
export function excerpt(text: string, maxChars: number): { line: string; truncated?: number } {
  if (text.length <= maxChars) return { line: text };
  return { line: text.slice(0, maxChars), truncated: text.length };
}
