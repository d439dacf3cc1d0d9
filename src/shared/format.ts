/**
 * Numbers for people, in tables: decimal USD, thousands separators. JSON and CSV keep full
 * precision and never go through these. `en-US` so output is the same on every machine.
 */
const COUNT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const USD_CENTS = new Intl.NumberFormat('en-US', {
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});
/** Small amounts (one request costs fractions of a cent): four significant digits, never 1e-5. */
const USD_SMALL = new Intl.NumberFormat('en-US', {
  maximumSignificantDigits: 4,
  notation: 'standard',
  maximumFractionDigits: 10,
});
const PERCENT = new Intl.NumberFormat('en-US', {
  style: 'percent',
  minimumFractionDigits: 1,
  maximumFractionDigits: 1,
});

/** `1,234.50` (USD, the column or text says so); below a cent four significant digits: `0.000043`. */
export function formatUsd(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const sign = value < 0 ? '-' : '';
  const magnitude = Math.abs(value);
  const digits = magnitude !== 0 && magnitude < 0.01 ? USD_SMALL : USD_CENTS;
  return `${sign}${digits.format(magnitude)}`;
}

/** `1,234,567`. */
export function formatCount(value: number): string {
  return Number.isFinite(value) ? COUNT.format(value) : String(value);
}

/** `12.5%` from 0.125. */
export function formatPercent(value: number): string {
  return Number.isFinite(value) ? PERCENT.format(value) : String(value);
}

/** Rows as aligned columns: the first `textColumns` left-aligned, the rest (numbers) right-aligned. */
export function alignTable(rows: readonly string[][], textColumns: number): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]?.length ?? 0)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i < textColumns ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}
