import type { PolicySet } from '../policy/policy-set.js';
import { durationSeconds } from '../shared/duration.js';
import { describeError } from '../shared/errors.js';
import type { Queryable } from '../store/db.js';
import {
  markAlertDelivered,
  queryReport,
  recordAlert,
  spendInRange,
  undeliveredAlerts,
  type FilterDimension,
  type ReportSpec,
} from '../store/ledger.js';
import { SILENT_LOGGER, type SpendLogger } from './ingest.js';

/** One budget from the policies: a goal's `budget`, or an entry of `budgets:`. */
export interface Budget {
  /** Stable name: the entry's `name`, else `goal:<id>`, `provider:<id>`, …, or `global`. */
  name: string;
  scope: Partial<Record<FilterDimension, string>>;
  usd: number;
  period: string;
  periodSeconds: number;
  alertAt: number[];
}

/** Thresholds when a budget declares none. */
export const DEFAULT_ALERT_AT = [0.8, 1];

/** Period windows are fixed and aligned to Monday 1970-01-05 00:00 UTC: days start at midnight UTC, weeks on Monday. */
const PERIOD_ANCHOR_MS = Date.UTC(1970, 0, 5);

export function budgetsFromPolicies(set: Pick<PolicySet, 'goals' | 'budgets'>): Budget[] {
  const budgets: Budget[] = [];
  for (const [id, entry] of set.goals) {
    const budget = entry.value.budget;
    if (!budget) continue;
    budgets.push({
      name: `goal:${id}`,
      scope: { goal: id },
      usd: budget.usd,
      period: budget.period,
      periodSeconds: durationSeconds(budget.period) ?? 0,
      alertAt: [...(budget.alert_at ?? DEFAULT_ALERT_AT)].sort((a, b) => a - b),
    });
  }
  for (const entry of set.budgets) {
    const budget = entry.value;
    const scope = Object.fromEntries(
      Object.entries(budget.scope).filter(([, v]) => v !== undefined),
    ) as Budget['scope'];
    const derived = Object.entries(scope)
      .map(([k, v]) => `${k}:${v}`)
      .sort()
      .join(',');
    budgets.push({
      name: budget.name ?? (derived || 'global'),
      scope,
      usd: budget.usd,
      period: budget.period,
      periodSeconds: durationSeconds(budget.period) ?? 0,
      alertAt: [...(budget.alert_at ?? DEFAULT_ALERT_AT)].sort((a, b) => a - b),
    });
  }
  return budgets.filter((b) => b.periodSeconds > 0);
}

/** The fixed window of `periodSeconds` that contains `now`. Pure. */
export function periodWindow(periodSeconds: number, now: Date): { start: Date; end: Date } {
  const length = periodSeconds * 1000;
  const index = Math.floor((now.getTime() - PERIOD_ANCHOR_MS) / length);
  const start = PERIOD_ANCHOR_MS + index * length;
  return { start: new Date(start), end: new Date(start + length) };
}

export interface BudgetStatus {
  budget: Budget;
  periodStart: Date;
  periodEnd: Date;
  spendUsd: number;
  /** spend / limit. */
  used: number;
  /** The declared thresholds the spend has reached this period. */
  reached: number[];
}

export async function budgetStatus(
  db: Queryable,
  budget: Budget,
  now: Date,
): Promise<BudgetStatus> {
  const window = periodWindow(budget.periodSeconds, now);
  const filters: ReportSpec['filters'] = {};
  for (const [dimension, value] of Object.entries(budget.scope))
    filters[dimension as FilterDimension] = [value];
  const spendUsd = await spendInRange(db, window.start, window.end, filters);
  const used = spendUsd / budget.usd;
  return {
    budget,
    periodStart: window.start,
    periodEnd: window.end,
    spendUsd,
    used,
    reached: budget.alertAt.filter((t) => used >= t),
  };
}

/** What is sent to the log and the webhook. */
export type Alert =
  | {
      type: 'budget';
      budget: string;
      scope: Budget['scope'];
      threshold: number;
      spendUsd: number;
      limitUsd: number;
      period: string;
      periodStart: string;
      periodEnd: string;
    }
  | {
      type: 'cost-spike';
      budget: string;
      caller: string;
      hourStart: string;
      spendUsd: number;
      baselineUsdPerHour: number;
      factor: number;
    };

/** Delivers an alert; rejects when it could not (it is then retried on the next check). */
export type AlertSink = (alert: Alert) => Promise<void>;

export interface SpikeOptions {
  /** Alert when the last full hour's spend of a caller is this many times its trailing hourly mean. */
  factor: number;
  /** …and at least this many USD (no alerts over cents). */
  minUsd: number;
  /** Trailing baseline, in hours before the hour looked at. */
  baselineHours: number;
}

export const DEFAULT_SPIKE: SpikeOptions = { factor: 5, minUsd: 1, baselineHours: 24 };

export interface CheckOptions {
  db: Queryable;
  budgets: Budget[];
  sink?: AlertSink;
  log?: SpendLogger;
  now?: Date;
  spike?: SpikeOptions | false;
}

/**
 * Compares spend with every budget and raises each crossed threshold once per period (the alert
 * is recorded in the ledger before it is sent, so a restart never repeats it; a failed delivery
 * is retried), then looks for callers whose spend spiked. Returns the alerts raised this time.
 */
export async function checkBudgets(options: CheckOptions): Promise<Alert[]> {
  const log = options.log ?? SILENT_LOGGER;
  const now = options.now ?? new Date();
  const raised: Alert[] = [];
  for (const budget of options.budgets) {
    const status = await budgetStatus(options.db, budget, now);
    for (const threshold of status.reached) {
      const fresh = await recordAlert(options.db, {
        budget: budget.name,
        periodStart: status.periodStart,
        threshold,
        spendUsd: status.spendUsd,
        limitUsd: budget.usd,
      });
      if (fresh) raised.push(budgetAlert(status, threshold));
    }
  }
  if (options.spike !== false) raised.push(...(await detectSpikes(options, now)));
  for (const alert of raised)
    log.warn({ alert }, alert.type === 'budget' ? 'budget threshold reached' : 'cost spike');
  await deliverPending(options, raised);
  return raised;
}

function budgetAlert(status: BudgetStatus, threshold: number): Alert {
  return {
    type: 'budget',
    budget: status.budget.name,
    scope: status.budget.scope,
    threshold,
    spendUsd: status.spendUsd,
    limitUsd: status.budget.usd,
    period: status.budget.period,
    periodStart: status.periodStart.toISOString(),
    periodEnd: status.periodEnd.toISOString(),
  };
}

/** Sends every recorded, undelivered alert (this check's and earlier failed ones). */
async function deliverPending(options: CheckOptions, raised: Alert[]): Promise<void> {
  const sink = options.sink;
  if (!sink) return;
  const log = options.log ?? SILENT_LOGGER;
  const fresh = new Map(raised.map((a) => [alertKey(a), a]));
  for (const pending of await undeliveredAlerts(options.db)) {
    const key = `${pending.budget}|${pending.periodStart.toISOString()}|${pending.threshold}`;
    const alert: Alert = fresh.get(key) ?? {
      type: 'budget',
      budget: pending.budget,
      scope: {},
      threshold: pending.threshold,
      spendUsd: pending.spendUsd,
      limitUsd: pending.limitUsd,
      period: '',
      periodStart: pending.periodStart.toISOString(),
      periodEnd: '',
    };
    try {
      await sink(alert);
      await markAlertDelivered(options.db, pending);
    } catch (error) {
      log.warn(
        { budget: pending.budget, error: describeError(error) },
        'alert not delivered; will retry on the next check',
      );
    }
  }
}

function alertKey(alert: Alert): string {
  return alert.type === 'budget'
    ? `${alert.budget}|${alert.periodStart}|${alert.threshold}`
    : `${alert.budget}|${alert.hourStart}|0`;
}

/**
 * A caller whose spend in the last full hour is `factor` times its mean hourly spend over the
 * trailing baseline (and at least minUsd) gets one cost-spike alert for that hour.
 */
async function detectSpikes(options: CheckOptions, now: Date): Promise<Alert[]> {
  const spike = options.spike || DEFAULT_SPIKE;
  const hourMs = 3600_000;
  const lastHour = Math.floor(now.getTime() / hourMs) * hourMs - hourMs;
  const groups = await queryReport(options.db, {
    groupBy: ['caller', 'hour'],
    from: new Date(lastHour - spike.baselineHours * hourMs),
    to: new Date(lastHour + hourMs),
    filters: {},
  });
  const series = new Map<string, Map<number, number>>();
  for (const group of groups) {
    const caller = group.keys.caller;
    if (!caller || !group.keys.hour) continue;
    const hours = series.get(caller) ?? new Map<number, number>();
    hours.set(Date.parse(group.keys.hour), group.costUsd);
    series.set(caller, hours);
  }
  const alerts: Alert[] = [];
  for (const [caller, hours] of series) {
    const current = hours.get(lastHour) ?? 0;
    let baseline = 0;
    for (const [hour, cost] of hours) if (hour < lastHour) baseline += cost;
    const mean = baseline / spike.baselineHours;
    if (!isSpike(current, mean, spike)) continue;
    const alert: Alert = {
      type: 'cost-spike',
      budget: `spike:caller:${caller}`,
      caller,
      hourStart: new Date(lastHour).toISOString(),
      spendUsd: current,
      baselineUsdPerHour: mean,
      factor: spike.factor,
    };
    const fresh = await recordAlert(options.db, {
      budget: alert.budget,
      periodStart: new Date(lastHour),
      threshold: 0,
      spendUsd: current,
      limitUsd: mean * spike.factor,
    });
    if (fresh) alerts.push(alert);
  }
  return alerts;
}

/** Pure: is `current` (USD in one hour) a spike against a trailing mean per hour? */
export function isSpike(current: number, meanPerHour: number, options: SpikeOptions): boolean {
  return current >= options.minUsd && current >= options.factor * meanPerHour;
}

/** One budget's spend this period, as `spend budgets` and `GET /v1/spend/budgets` give it. */
export interface BudgetRow {
  budget: string;
  period: string;
  periodStart: string;
  periodEnd: string;
  spendUsd: number;
  limitUsd: number;
  /** spend / limit. */
  used: number;
  reached: number[];
}

/** Spend against every budget the policies declare, this period. */
export async function budgetRows(
  db: Queryable,
  set: Pick<PolicySet, 'goals' | 'budgets'> | undefined,
  now: Date,
): Promise<BudgetRow[]> {
  const budgets = set ? budgetsFromPolicies(set) : [];
  const statuses = await Promise.all(budgets.map((b) => budgetStatus(db, b, now)));
  return statuses.map((s) => ({
    budget: s.budget.name,
    period: s.budget.period,
    periodStart: s.periodStart.toISOString(),
    periodEnd: s.periodEnd.toISOString(),
    spendUsd: s.spendUsd,
    limitUsd: s.budget.usd,
    used: s.used,
    reached: s.reached,
  }));
}
