import type { PolicySet } from '../policy/policy-set.js';
import { parsePointInTime } from '../shared/duration.js';
import { InputError } from '../shared/errors.js';
import { formatCount, formatPercent, formatUsd } from '../shared/format.js';
import type { Queryable } from '../store/db.js';
import { histogramQuantile } from '../store/histogram.js';
import {
  FILTER_DIMENSIONS,
  needsRawRows,
  queryReport,
  type Dimension,
  type ReportGroup,
  type ReportSpec,
} from '../store/ledger.js';
import { reportQuerySchema, type ParsedReportQuery, type ReportQuery } from './schema.js';

/** A report request that cannot be answered as written (exit code 1 in the CLI, 400 in the API). */
export class ReportQueryError extends InputError {
  constructor(message: string, field?: string) {
    super(message, { status: 400, ...(field && { field }) });
  }
}

export interface Measures {
  requests: number;
  errors: number;
  /** errors / requests, 0..1. */
  errorRate: number;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
  ttftP50Ms: number | null;
  ttftP95Ms: number | null;
  /** cache hits / requests, 0..1. */
  cacheHitRate: number;
}

/** What the policies say about a goal or caller in a report line. */
export interface Registration {
  registered: boolean;
  title?: string;
  owner?: string;
  budgetUsd?: number;
  budgetPeriod?: string;
}

export interface ReportLine extends Measures {
  keys: Partial<Record<Dimension, string | null>>;
  goal?: Registration;
  caller?: Registration;
}

export interface SpendReport {
  from: string;
  to: string;
  groupBy: Dimension[];
  /** `rollup`: hourly rollups (range widened to whole hours); `raw`: raw rows within retention. */
  source: 'rollup' | 'raw';
  lines: ReportLine[];
  total: Measures;
}

/** The value that stands for "not set" in a filter (`--goal -`: requests without a goal). */
export const UNSET = '-';

/** Query (CLI flags or API parameters) → the store's report spec. Pure. */
export function reportSpec(query: ParsedReportQuery, now: Date): ReportSpec {
  const from = pointInTime(query.since, now, 'since');
  const to = query.until ? pointInTime(query.until, now, 'until') : now;
  if (from.getTime() >= to.getTime())
    throw new ReportQueryError(
      `since (${from.toISOString()}) must be before until (${to.toISOString()})`,
      'since',
    );
  const filters: ReportSpec['filters'] = {};
  for (const dimension of FILTER_DIMENSIONS) {
    const values = query[dimension];
    if (values) filters[dimension] = values.map((v) => (v === UNSET ? null : v));
  }
  return { groupBy: [...new Set(query.groupBy)], from, to, filters };
}

/** `7d` (that long before now) or a date / UTC time → a Date; ReportQueryError naming the parameter. */
export function pointInTime(text: string, now: Date, flag: string): Date {
  const parsed = parsePointInTime(text, now);
  if (!parsed.ok) throw new ReportQueryError(`${flag}: ${parsed.reason}`, flag);
  return parsed.date;
}

export interface ReportOptions {
  /** Goals and callers to join (title, owner, budget); unknown ids are marked unregistered. */
  policies?: Pick<PolicySet, 'goals' | 'callers'>;
  now?: Date;
}

/**
 * The spend report: measures per group of the requested dimensions, joined to the goals and
 * callers in the policies. Shared by `modelcenter spend report` and `GET /v1/spend/report`.
 */
export async function spendReport(
  db: Queryable,
  query: ReportQuery,
  options: ReportOptions = {},
): Promise<SpendReport> {
  const parsed = reportQuerySchema.safeParse(query);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || undefined;
    throw new ReportQueryError(
      `invalid report query: ${field ?? 'query'}: ${issue?.message ?? 'invalid'}`,
      field,
    );
  }
  const spec = reportSpec(parsed.data, options.now ?? new Date());
  const groups = await queryReport(db, spec);
  const lines = groups.map((group) => reportLine(group, spec.groupBy, options.policies));
  sortLines(lines, parsed.data.sort, spec.groupBy);
  return {
    from: spec.from.toISOString(),
    to: spec.to.toISOString(),
    groupBy: spec.groupBy,
    source: needsRawRows(spec) ? 'raw' : 'rollup',
    lines: parsed.data.limit ? lines.slice(0, parsed.data.limit) : lines,
    total: measures(sumGroups(groups)),
  };
}

function reportLine(
  group: ReportGroup,
  groupBy: Dimension[],
  policies: ReportOptions['policies'],
): ReportLine {
  const line: ReportLine = { keys: group.keys, ...measures(group) };
  if (groupBy.includes('goal')) line.goal = goalRegistration(group.keys.goal ?? null, policies);
  if (groupBy.includes('caller')) {
    const id = group.keys.caller ?? null;
    const caller = id ? policies?.callers.get(id)?.value : undefined;
    line.caller = caller
      ? { registered: true, ...(caller.description && { title: caller.description }) }
      : { registered: false };
  }
  return line;
}

function goalRegistration(id: string | null, policies: ReportOptions['policies']): Registration {
  const goal = id ? policies?.goals.get(id)?.value : undefined;
  if (!goal) return { registered: false };
  return {
    registered: true,
    title: goal.title,
    ...(goal.owner && { owner: goal.owner }),
    ...(goal.budget && { budgetUsd: goal.budget.usd, budgetPeriod: goal.budget.period }),
  };
}

/** Counts and histograms → rates and percentiles. Pure. */
export function measures(group: Omit<ReportGroup, 'keys'>): Measures {
  const rate = (n: number): number => (group.requests > 0 ? n / group.requests : 0);
  return {
    requests: group.requests,
    errors: group.errors,
    errorRate: rate(group.errors),
    tokensIn: group.tokensIn,
    tokensOut: group.tokensOut,
    costUsd: group.costUsd,
    latencyP50Ms: histogramQuantile(group.latencyHistogram, 0.5) ?? null,
    latencyP95Ms: histogramQuantile(group.latencyHistogram, 0.95) ?? null,
    ttftP50Ms: histogramQuantile(group.ttftHistogram, 0.5) ?? null,
    ttftP95Ms: histogramQuantile(group.ttftHistogram, 0.95) ?? null,
    cacheHitRate: rate(group.cacheHits),
  };
}

function sumGroups(groups: ReportGroup[]): Omit<ReportGroup, 'keys'> {
  const addInto = (target: number[], source: number[]): number[] => {
    source.forEach((c, i) => (target[i] = (target[i] ?? 0) + c));
    return target;
  };
  return groups.reduce<Omit<ReportGroup, 'keys'>>(
    (sum, g) => ({
      requests: sum.requests + g.requests,
      errors: sum.errors + g.errors,
      tokensIn: sum.tokensIn + g.tokensIn,
      tokensOut: sum.tokensOut + g.tokensOut,
      costUsd: sum.costUsd + g.costUsd,
      cacheHits: sum.cacheHits + g.cacheHits,
      latencyHistogram: addInto(sum.latencyHistogram, g.latencyHistogram),
      ttftHistogram: addInto(sum.ttftHistogram, g.ttftHistogram),
    }),
    {
      requests: 0,
      errors: 0,
      tokensIn: 0,
      tokensOut: 0,
      costUsd: 0,
      cacheHits: 0,
      latencyHistogram: [],
      ttftHistogram: [],
    },
  );
}

function sortLines(
  lines: ReportLine[],
  sort: ParsedReportQuery['sort'],
  groupBy: Dimension[],
): void {
  const keyText = (line: ReportLine): string =>
    groupBy.map((d) => line.keys[d] ?? '').join('\u0000');
  const by: Record<ParsedReportQuery['sort'], (a: ReportLine, b: ReportLine) => number> = {
    cost: (a, b) => b.costUsd - a.costUsd,
    requests: (a, b) => b.requests - a.requests,
    errors: (a, b) => b.errors - a.errors,
    error_rate: (a, b) => b.errorRate - a.errorRate,
    latency_p95: (a, b) => (b.latencyP95Ms ?? -1) - (a.latencyP95Ms ?? -1),
    key: () => 0,
  };
  // Time dimensions read best in time order; otherwise the chosen measure, then the keys.
  const timeFirst = sort === 'key' || groupBy[0] === 'day' || groupBy[0] === 'hour';
  lines.sort((a, b) => {
    if (timeFirst) return keyText(a).localeCompare(keyText(b)) || by[sort](a, b);
    return by[sort](a, b) || keyText(a).localeCompare(keyText(b));
  });
}

/** Each measure's column: its name, the cell for a person (table), the cell for a program (csv). */
const MEASURE_COLUMNS: [string, (l: Measures) => string, (l: Measures) => string][] = [
  ['requests', (l) => formatCount(l.requests), (l) => String(l.requests)],
  ['errors', (l) => formatCount(l.errors), (l) => String(l.errors)],
  ['error_rate', (l) => formatPercent(l.errorRate), (l) => String(l.errorRate)],
  ['cost_usd', (l) => formatUsd(l.costUsd), (l) => String(l.costUsd)],
  ['tokens_in', (l) => formatCount(l.tokensIn), (l) => String(l.tokensIn)],
  ['tokens_out', (l) => formatCount(l.tokensOut), (l) => String(l.tokensOut)],
  ['latency_p50_ms', (l) => ms(l.latencyP50Ms), (l) => raw(l.latencyP50Ms)],
  ['latency_p95_ms', (l) => ms(l.latencyP95Ms), (l) => raw(l.latencyP95Ms)],
  ['ttft_p50_ms', (l) => ms(l.ttftP50Ms), (l) => raw(l.ttftP50Ms)],
  ['ttft_p95_ms', (l) => ms(l.ttftP95Ms), (l) => raw(l.ttftP95Ms)],
  ['cache_hit_rate', (l) => formatPercent(l.cacheHitRate), (l) => String(l.cacheHitRate)],
];

function raw(value: number | null): string {
  return value === null ? '' : String(value);
}

function keyCell(line: ReportLine, dimension: Dimension): string {
  const value = line.keys[dimension];
  if (value === null || value === undefined) return UNSET;
  if (dimension === 'goal' && line.goal && !line.goal.registered) return `${value} (unregistered)`;
  return value;
}

/** Rows of cells: header first, then one per line, then the total. */
function cells(report: SpendReport, withTitles: boolean, human: boolean): string[][] {
  const titled = withTitles && report.groupBy.includes('goal');
  const header = [
    ...report.groupBy,
    ...(titled ? ['goal_title', 'goal_owner', 'goal_budget_usd'] : []),
    ...MEASURE_COLUMNS.map(([name]) => name),
  ];
  const rows = report.lines.map((line) => [
    ...report.groupBy.map((d) => keyCell(line, d)),
    ...(titled
      ? [line.goal?.title ?? '', line.goal?.owner ?? '', line.goal?.budgetUsd?.toString() ?? '']
      : []),
    ...MEASURE_COLUMNS.map(([, person, program]) => (human ? person : program)(line)),
  ]);
  return [header, ...rows];
}

export type ReportFormat = 'table' | 'json' | 'csv';

/** The report as text for a person (table), a program (json) or a spreadsheet (csv). */
export function formatReport(report: SpendReport, format: ReportFormat): string {
  if (format === 'json') return `${JSON.stringify(report, null, 2)}\n`;
  if (format === 'csv') {
    return cells(report, true, false)
      .map((row) => row.map(csvCell).join(','))
      .join('\n')
      .concat('\n');
  }
  const table = cells(report, true, true);
  const totalRow = [
    ...(report.groupBy.length > 0 ? ['total', ...report.groupBy.slice(1).map(() => '')] : []),
    ...(report.groupBy.includes('goal') ? ['', '', ''] : []),
    ...MEASURE_COLUMNS.map(([, cell]) => cell(report.total)),
  ];
  const all = [...table, totalRow];
  const widths = all[0]!.map((_, i) => Math.max(...all.map((row) => row[i]?.length ?? 0)));
  const render = (row: string[]): string =>
    row
      .map((cell, i) =>
        i < report.groupBy.length ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!),
      )
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  const body = table.slice(1).map(render);
  return [
    `spend ${report.from} → ${report.to}${report.source === 'rollup' ? ' (hourly rollups)' : ' (raw rows)'}`,
    render(table[0]!),
    rule,
    ...(body.length > 0 ? body : ['(no requests in this range)']),
    rule,
    render(totalRow),
    '',
  ].join('\n');
}

function csvCell(value: string): string {
  return /[",\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function ms(value: number | null): string {
  return value === null ? '' : value < 10 ? value.toFixed(1) : Math.round(value).toString();
}
