/** Durations in policies: a whole number and one unit, e.g. `30s`, `15m`, `24h`, `7d`, `2w`. */
export const DURATION_PATTERN = /^([1-9][0-9]*)(s|m|h|d|w)$/;

const SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/**
 * The longest duration anything may be: ten years. Far beyond any schedule, window or budget
 * period, and far below what breaks date arithmetic (`99999999999999999999d` from now is no date:
 * the key list answered 500, a rotation's grace end could not be written).
 */
export const MAX_DURATION_SECONDS = 3650 * 86_400;
export const MAX_DURATION_TEXT = '3650d (ten years)';

/** Seconds in a duration string, or undefined when it is not one or is longer than the maximum. */
export function durationSeconds(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text);
  if (!match) return undefined;
  const [, amount, unit] = match;
  const seconds = Number(amount) * (SECONDS[unit ?? 's'] ?? 1);
  return seconds <= MAX_DURATION_SECONDS ? seconds : undefined;
}

/**
 * The longest delay a Node timer takes (2^31 - 1 ms, about 24.8 days): a longer one fires at once,
 * so a loop sleeping for a policy's `30d` would spin. Sleep at most this long and look again.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The range of instants a report or backfill may name: what the ledger and its database store. */
export const EARLIEST_INSTANT = Date.UTC(1970, 0, 1);
export const LATEST_INSTANT = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

const DATE_PATTERN =
  /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?Z?)?$/;
const RELATIVE_PATTERN = /^(\d+)([hdw])$/;

export type PointInTime = { ok: true; date: Date } | { ok: false; reason: string };

/**
 * `7d` (that long before `now`; units h, d, w) or a date `2026-11-01` / UTC time
 * `2026-11-01T12:00:00Z` → the instant, or why it is none: an impossible date (February 30th, hour
 * 24) is refused, never rolled over, and so is an instant before 1970 or after 9999. Pure.
 */
export function parsePointInTime(text: string, now: Date): PointInTime {
  const shown = JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
  const relative = RELATIVE_PATTERN.exec(text);
  if (relative) {
    // Not durationSeconds: a report may reach back further than the longest policy duration.
    const seconds = Number(relative[1]) * (SECONDS[relative[2] ?? 'd'] ?? 86_400);
    const time = now.getTime() - seconds * 1000;
    if (Number(relative[1]) === 0)
      return { ok: false, reason: `${shown} is no duration: use 1${relative[2]} or more` };
    if (!Number.isFinite(time) || time < EARLIEST_INSTANT)
      return { ok: false, reason: `${shown} reaches back before 1970-01-01` };
    return { ok: true, date: new Date(time) };
  }
  const match = DATE_PATTERN.exec(text);
  if (!match)
    return {
      ok: false,
      reason: `${shown} is neither a duration (24h, 7d, 2w) nor a date (2026-11-01, 2026-11-01T12:00:00Z)`,
    };
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map((v) => Number(v ?? 0)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const fraction = Math.floor(Number(`0.${match[7] ?? '0'}`) * 1000);
  if (month < 1 || month > 12) return { ok: false, reason: `${shown} has no month ${month}` };
  const days =
    new Date(Date.UTC(2000, month, 0)).getUTCDate() - (month === 2 && !leap(year) ? 1 : 0);
  if (day < 1 || day > days)
    return { ok: false, reason: `${shown} is not a day: ${year}-${match[2]} has ${days} days` };
  if (hour > 23 || minute > 59 || second > 59)
    return { ok: false, reason: `${shown} is not a time of day (00:00:00 to 23:59:59)` };
  const time = Date.UTC(year, month - 1, day, hour, minute, second, fraction);
  if (time < EARLIEST_INSTANT || time > LATEST_INSTANT)
    return { ok: false, reason: `${shown} lies outside 1970-01-01 to 9999-12-31` };
  return { ok: true, date: new Date(time) };
}

function leap(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}
