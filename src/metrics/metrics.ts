import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ApplyOutcome } from '../apply/controller.js';
import type { ReloadStrategy } from '../reload/strategy.js';
import type { RunOutcome } from '../scheduler/schema.js';
import { PROBLEM_LABELS, type ProblemOutcome } from '../spend/dead-letter.js';

export type StrategyName = ReloadStrategy['name'];

/**
 * What can drift (DESIGN §4): the generated config edited by hand, a commit to it not made by
 * Model Center, and live LiteLLM serving a model set other than the committed one.
 */
export type DriftKind = 'config-edited' | 'foreign-commit' | 'live-models';

const APPLY_OUTCOMES: readonly ApplyOutcome[] = [
  'applied',
  'unchanged',
  'invalid',
  'drift',
  'rolled-back',
  'failed',
];
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** An apply restarts or swaps LiteLLM: seconds to minutes. */
const APPLY_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300];
/** Jobs range from a drift check (milliseconds) to a spend backfill (minutes). */
const JOB_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900];
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface MetricsOptions {
  /** Node.js process metrics (memory, CPU, event loop lag, GC) under their standard names. */
  defaultMetrics?: boolean;
}

/**
 * The controller's Prometheus metrics, on a registry of its own (never prom-client's global one,
 * so two instances in one test process do not collide). `render()` is the body of `/metrics`.
 * Label values come from closed sets or route templates, never from raw URLs or user input.
 */
export class Metrics {
  /** The Content-Type `/metrics` answers with (Prometheus text format 0.0.4). */
  readonly contentType: string;
  private readonly registry = new Registry();
  private readonly applies: Counter<'outcome'>;
  private readonly applyDuration: Histogram;
  private readonly strategy: Gauge<'strategy'>;
  private readonly drift: Gauge<'kind'>;
  private readonly jobRuns: Counter<'job' | 'outcome'>;
  private readonly jobDuration: Histogram<'job'>;
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly httpDuration: Histogram<'method' | 'route'>;
  private readonly restarts: Counter<'process' | 'cause'>;
  private readonly givenUp: Gauge<'process'>;
  private readonly spendProblems: Counter<'outcome' | 'reason'>;

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    this.contentType = this.registry.contentType;
    this.applies = new Counter({
      name: 'modelcenter_applies_total',
      help: 'Applies (validate, commit, reload, verify) by outcome',
      labelNames: ['outcome'],
      registers,
    });
    // Every outcome is exported from the start, so rate() and alerts see 0 rather than nothing.
    for (const outcome of APPLY_OUTCOMES) this.applies.inc({ outcome }, 0);
    this.applyDuration = new Histogram({
      name: 'modelcenter_apply_duration_seconds',
      help: 'Time from the start of an apply to its verified (or rolled-back) end',
      buckets: APPLY_BUCKETS,
      registers,
    });
    this.strategy = new Gauge({
      name: 'modelcenter_reload_strategy_info',
      help: 'The reload strategy in use: 1 on its label, no other series',
      labelNames: ['strategy'],
      registers,
    });
    this.drift = new Gauge({
      name: 'modelcenter_drift',
      help: 'Drift found by the last check, by kind: 0 none, else how many things differ',
      labelNames: ['kind'],
      registers,
    });
    this.jobRuns = new Counter({
      name: 'modelcenter_job_runs_total',
      help: 'Scheduled and manual job runs by outcome (skipped: the previous run still went)',
      labelNames: ['job', 'outcome'],
      registers,
    });
    this.jobDuration = new Histogram({
      name: 'modelcenter_job_duration_seconds',
      help: 'Duration of finished job runs (ok or failed)',
      labelNames: ['job'],
      buckets: JOB_BUCKETS,
      registers,
    });
    this.httpRequests = new Counter({
      name: 'modelcenter_http_requests_total',
      help: 'HTTP API requests by method, route template and status code',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'modelcenter_http_request_duration_seconds',
      help: 'HTTP API request duration by method and route template',
      labelNames: ['method', 'route'],
      buckets: HTTP_BUCKETS,
      registers,
    });
    this.restarts = new Counter({
      name: 'modelcenter_litellm_restarts_total',
      help: 'Supervised restarts of a process the controller runs (litellm, nginx) by cause: exit (it died) or unready (readiness failed N times in a row)',
      labelNames: ['process', 'cause'],
      registers,
    });
    for (const process of ['litellm', 'nginx'])
      for (const cause of ['exit', 'unready']) this.restarts.inc({ process, cause }, 0);
    this.givenUp = new Gauge({
      name: 'modelcenter_supervision_given_up',
      help: '1 while supervision has stopped restarting a process (intensity limit reached), else 0',
      labelNames: ['process'],
      registers,
    });
    this.spendProblems = new Counter({
      name: 'modelcenter_spend_records_problems_total',
      help: 'Spool lines and ingest payloads the ledger could not store as they came: cleaned and stored, or dead-lettered (not stored), by reason',
      labelNames: ['outcome', 'reason'],
      registers,
    });
    for (const [outcome, reason] of PROBLEM_LABELS) this.spendProblems.inc({ outcome, reason }, 0);
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  recordApply(outcome: ApplyOutcome, seconds: number): void {
    this.applies.inc({ outcome });
    this.applyDuration.observe(seconds);
  }

  /**
   * One HTTP request. `route` is the matched template (`/v1/jobs/:name/run`), or a fixed word such
   * as `unmatched` for a 404: a raw path would make one series per URL anyone cares to send.
   */
  recordHttp(method: string, route: string, status: number, seconds: number): void {
    const verb = method.toUpperCase();
    const label = HTTP_METHODS.has(verb) ? verb : 'OTHER';
    this.httpRequests.inc({ method: label, route, status: String(status) });
    this.httpDuration.observe({ method: label, route }, seconds);
  }

  /** One job run; skipped runs have no duration. Fits the scheduler's `metrics` hook. */
  recordJob(job: string, outcome: RunOutcome, seconds?: number): void {
    this.jobRuns.inc({ job, outcome });
    if (outcome !== 'skipped' && seconds !== undefined) this.jobDuration.observe({ job }, seconds);
  }

  /** Spend records cleaned or dead-lettered (reasons: src/spend/clean.ts, a closed set). */
  recordSpendProblem(outcome: ProblemOutcome, reason: string, n = 1): void {
    this.spendProblems.inc({ outcome, reason }, n);
  }

  /** What the last drift check found for one kind: a count, or true/false. */
  setDrift(kind: DriftKind, value: number | boolean): void {
    this.drift.set({ kind }, typeof value === 'boolean' ? Number(value) : value);
  }

  /** One supervised restart attempt. */
  recordRestart(process: 'litellm' | 'nginx', cause: 'exit' | 'unready'): void {
    this.restarts.inc({ process, cause });
  }

  /** Supervision stopped trying (true) or runs again after a reload (false). */
  setSupervisionGivenUp(process: 'litellm' | 'nginx', given: boolean): void {
    this.givenUp.set({ process }, Number(given));
  }

  setStrategy(strategy: StrategyName): void {
    this.strategy.reset();
    this.strategy.set({ strategy }, 1);
  }

  /** The Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
