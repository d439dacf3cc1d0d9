/** Durations in policies: a whole number and one unit, e.g. `30s`, `15m`, `24h`, `7d`, `2w`. */
export const DURATION_PATTERN = /^([1-9][0-9]*)(s|m|h|d|w)$/;

const SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** Seconds in a duration string, or undefined when it is not one. */
export function durationSeconds(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text);
  if (!match) return undefined;
  const [, amount, unit] = match;
  return Number(amount) * (SECONDS[unit ?? 's'] ?? 1);
}
