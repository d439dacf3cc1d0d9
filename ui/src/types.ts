/** The slices of the API's answers the page reads (the OpenAPI document has them all). */

export interface InstanceState {
  url: string;
  ready: boolean;
  missing: string[];
  unexpected: string[];
  error?: string;
  servedCommit?: string;
  restarts: number;
}

export interface Status {
  version: string;
  strategy: string;
  strategyReason?: string;
  generatedCommit?: { commit: string; subject: string };
  policyCommit?: string;
  lastKnownGood?: string;
  drift: { workingTreeEdited: boolean; foreignCommit?: string; drifted: boolean };
  instances: InstanceState[];
  supervision?: { ready: boolean; reason?: string };
}

export interface ApplyRecord {
  at: string;
  trigger: string;
  outcome: string;
  commit?: string;
  durationMs: number;
  problems: string[];
}

export interface GeneratedCommit {
  commit: string;
  at: string;
  subject: string;
  policyCommit?: string;
  rollbackTo?: string;
  lastKnownGood: boolean;
}

export interface ApplyReport {
  outcome: string;
  commit?: string;
  lastKnownGood?: string;
  problems: string[];
  verify?: { ok: boolean; instances: InstanceState[] };
}

export interface SpendSeries {
  from: string;
  to: string;
  by: string;
  bucket: 'hour' | 'day';
  buckets: string[];
  series: {
    key: string;
    costUsd: number[];
    requests: number[];
    totalCostUsd: number;
    totalRequests: number;
  }[];
  totalCostUsd: number;
  totalRequests: number;
}

export interface Measures {
  requests: number;
  errors: number;
  errorRate: number;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
  ttftP50Ms: number | null;
  ttftP95Ms: number | null;
  cacheHitRate: number;
}

export interface SpendReport {
  from: string;
  to: string;
  groupBy: string[];
  lines: (Measures & { keys: Record<string, string | null> })[];
  total: Measures;
}

export interface BudgetState {
  name: string;
  limitUsd: number;
  period: string;
  periodStart: string;
  periodEnd: string;
  spendUsd: number;
  used: number;
  alertAt: number[];
  reached: number[];
}

export interface BudgetsReport {
  budgets: BudgetState[];
  alerts: {
    budget: string;
    periodStart: string;
    threshold: number;
    spendUsd: number;
    limitUsd: number;
    firedAt: string;
  }[];
}

export interface CallRecord {
  callId: string;
  costUsd: number;
  attempts: Record<string, unknown>[];
}
