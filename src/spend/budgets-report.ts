import { z } from 'zod';
import type { PolicySet } from '../policy/policy-set.js';
import type { Queryable } from '../store/db.js';
import { alertsSince } from '../store/ledger.js';
import { budgetsFromPolicies, budgetStatus } from './budgets.js';

/** How far back `GET /v1/spend/budgets` lists raised alerts. */
const ALERT_HISTORY_DAYS = 30;

export const budgetsReportSchema = z.object({
  budgets: z.array(
    z.object({
      name: z.string(),
      scope: z.record(z.string(), z.string()),
      limitUsd: z.number(),
      period: z.string(),
      periodStart: z.string(),
      periodEnd: z.string(),
      spendUsd: z.number(),
      used: z.number().describe('spend / limit'),
      alertAt: z.array(z.number()),
      reached: z.array(z.number()).describe('the thresholds reached this period'),
    }),
  ),
  alerts: z.array(
    z.object({
      budget: z.string(),
      periodStart: z.string(),
      threshold: z.number(),
      spendUsd: z.number(),
      limitUsd: z.number(),
      firedAt: z.string(),
      delivered: z.boolean().describe('sent to the webhook (always false without one)'),
    }),
  ),
});
export type BudgetsReport = z.infer<typeof budgetsReportSchema>;

/** The budgets of the policies with this period's spend, and the alerts raised recently. */
export async function budgetsReport(
  db: Queryable,
  policies: Pick<PolicySet, 'goals' | 'budgets'> | undefined,
  now: Date,
): Promise<BudgetsReport> {
  const budgets = policies ? budgetsFromPolicies(policies) : [];
  const statuses = await Promise.all(budgets.map((b) => budgetStatus(db, b, now)));
  const alerts = await alertsSince(db, new Date(now.getTime() - ALERT_HISTORY_DAYS * 86_400_000));
  return {
    budgets: statuses.map((s) => ({
      name: s.budget.name,
      scope: s.budget.scope,
      limitUsd: s.budget.usd,
      period: s.budget.period,
      periodStart: s.periodStart.toISOString(),
      periodEnd: s.periodEnd.toISOString(),
      spendUsd: s.spendUsd,
      used: s.used,
      alertAt: s.budget.alertAt,
      reached: s.reached,
    })),
    alerts: alerts.map((a) => ({
      budget: a.budget,
      periodStart: a.periodStart.toISOString(),
      threshold: a.threshold,
      spendUsd: a.spendUsd,
      limitUsd: a.limitUsd,
      firedAt: a.firedAt.toISOString(),
      delivered: a.delivered,
    })),
  };
}
