import { randomUUID } from 'node:crypto';
import {
  createTask,
  validateDetailed,
  type Logger as CronLogger,
  type ScheduledTask,
} from 'node-cron';
import type { Logger } from '../log/logger.js';
import { describeError, ModelCenterError } from '../shared/errors.js';
import type { JobStatus, RunOutcome, RunResult, RunTrigger } from './schema.js';

export type SchedulerErrorReason = 'invalid-schedule' | 'invalid-job' | 'unknown-job' | 'stopped';

/** A job could not be registered or run; `reason` lets the API pick 400, 404 or 503. */
export class SchedulerError extends ModelCenterError {
  constructor(
    message: string,
    readonly reason: SchedulerErrorReason,
    readonly job?: string,
  ) {
    super(message);
  }
}

/** Milliseconds since the epoch; tests hand in a fixed or stepped one. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** What a run of a job is handed. */
export interface JobContext {
  runId: string;
  trigger: RunTrigger;
  /** Carries `job` and `runId` on every line. */
  logger: Logger;
  /** Aborted when shutdown gives up waiting for this run: stop at the next safe point. */
  signal: AbortSignal;
}

export interface Job {
  /** Lower-case letters, digits and `-`: it appears in URLs and metric labels. */
  name: string;
  /** Cron expression: 5 fields, or 6 with seconds first (see cronProblem). */
  schedule: string;
  run(context: JobContext): Promise<void> | void;
}

/** Where finished and skipped runs are counted (the Metrics object fits). */
export interface JobMetrics {
  recordJob(job: string, outcome: RunOutcome, seconds?: number): void;
}

export interface SchedulerOptions {
  /** The scheduler's subsystem logger; each run gets a child with `job` and `runId`. */
  logger: Logger;
  clock?: Clock;
  metrics?: JobMetrics;
  /** IANA time zone the expressions are read in. Default: the process's local time zone. */
  timezone?: string;
  /** Masks secrets in a failed run's message before it is kept for status (SecretValues.mask). */
  mask?: (text: string) => string;
  newRunId?: () => string;
}

export interface StopReport {
  /** Jobs whose running run finished within the timeout. */
  finished: string[];
  /** Jobs still running at the timeout: their signal was aborted and they were left behind. */
  abandoned: string[];
}

const JOB_NAME = /^[a-z0-9][a-z0-9-]*$/;
const CRON_FORMAT =
  'use 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, ' +
  'e.g. "*/15 * * * *" for every 15 minutes or "0 3 * * *" for 03:00 every day';

/** Why `expression` is not a cron expression node-cron accepts, or undefined when it is one. */
export function cronProblem(expression: string): string | undefined {
  const { valid, errors } = validateDetailed(expression);
  if (valid) return undefined;
  const reasons = errors.map((error) =>
    error.field === 'expression'
      ? error.message
      : `${error.field}: ${error.message.replace(' is a invalid ', ' is an invalid ')}`,
  );
  return `${reasons.join('; ') || 'not a cron expression'} — ${CRON_FORMAT}`;
}

interface Run {
  runId: string;
  trigger: RunTrigger;
  startedAt: number;
  abort: AbortController;
  done?: Promise<RunResult>;
}

interface Entry {
  job: Job;
  task: ScheduledTask;
  current?: Run;
  last?: { run: Run; durationMs: number; outcome: 'ok' | 'failed'; error?: string };
  runs: number;
  failures: number;
  skips: number;
}

/**
 * Runs named jobs on cron schedules (node-cron is only the clock: it calls `trigger`, which
 * returns at once). A job never overlaps itself: a run due while the previous one still goes —
 * scheduled or asked for through `runNow` — is skipped and counted. A failing run is recorded and
 * logged; the schedule goes on.
 */
export class Scheduler {
  private readonly entries = new Map<string, Entry>();
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly mask: (text: string) => string;
  private readonly newRunId: () => string;
  private state: 'idle' | 'running' | 'stopped' = 'idle';

  constructor(private readonly options: SchedulerOptions) {
    this.logger = options.logger;
    this.clock = options.clock ?? systemClock;
    this.mask = options.mask ?? ((text) => text);
    this.newRunId = options.newRunId ?? randomUUID;
    if (options.timezone !== undefined) checkTimezone(options.timezone);
  }

  /** Adds a job; it starts ticking at `start()`, or now if the scheduler already runs. */
  register(job: Job): void {
    if (this.state === 'stopped') {
      throw new SchedulerError(
        `job "${job.name}" cannot be registered: the scheduler has been stopped`,
        'stopped',
        job.name,
      );
    }
    if (!JOB_NAME.test(job.name)) {
      throw new SchedulerError(
        `job name "${job.name}" is not allowed — use lower-case letters, digits and "-", e.g. "drift-check"`,
        'invalid-job',
        job.name,
      );
    }
    if (this.entries.has(job.name)) {
      throw new SchedulerError(
        `job "${job.name}" is registered twice — give each job its own name`,
        'invalid-job',
        job.name,
      );
    }
    const problem = cronProblem(job.schedule);
    if (problem !== undefined) {
      throw new SchedulerError(
        `job "${job.name}" has an invalid cron expression "${job.schedule}": ${problem}`,
        'invalid-schedule',
        job.name,
      );
    }
    const task = createTask(
      job.schedule,
      () => {
        const entry = this.entries.get(job.name);
        if (entry && this.state === 'running') void this.trigger(entry, 'schedule');
      },
      { name: job.name, timezone: this.options.timezone, logger: this.cronLogger(job.name) },
    );
    this.entries.set(job.name, { job, task, runs: 0, failures: 0, skips: 0 });
    if (this.state === 'running') void task.start();
    this.logger.debug({ job: job.name, schedule: job.schedule }, 'job registered');
  }

  start(): void {
    if (this.state !== 'idle') return;
    this.state = 'running';
    for (const entry of this.entries.values()) void entry.task.start();
    this.logger.info({ jobs: [...this.entries.keys()] }, 'scheduler started');
  }

  /**
   * Runs a job now, outside its schedule, and resolves when the run ends. If the job is running,
   * nothing starts: the answer is `skipped` with the running run's id.
   */
  runNow(name: string): Promise<RunResult> {
    const entry = this.entries.get(name);
    if (!entry) {
      const known = [...this.entries.keys()].join(', ') || 'none';
      return Promise.reject(
        new SchedulerError(`no job is named "${name}" (jobs: ${known})`, 'unknown-job', name),
      );
    }
    if (this.state === 'stopped') {
      return Promise.reject(
        new SchedulerError(
          `job "${name}" cannot run: the controller is shutting down`,
          'stopped',
          name,
        ),
      );
    }
    return this.trigger(entry, 'manual');
  }

  /** Every job's schedule, counters, last run and next run, in registration order. */
  status(): JobStatus[] {
    return [...this.entries.values()].map((entry) => {
      const next = this.state === 'running' ? entry.task.getNextRun() : null;
      const { current, last } = entry;
      return {
        name: entry.job.name,
        schedule: entry.job.schedule,
        running: current !== undefined,
        ...(current && { currentRunId: current.runId }),
        ...(last && {
          lastRunId: last.run.runId,
          lastTrigger: last.run.trigger,
          lastStartedAt: new Date(last.run.startedAt).toISOString(),
          lastDurationMs: last.durationMs,
          lastOutcome: last.outcome,
          ...(last.error !== undefined && { lastError: last.error }),
        }),
        runs: entry.runs,
        failures: entry.failures,
        skips: entry.skips,
        ...(next && { nextRunAt: next.toISOString() }),
      };
    });
  }

  /**
   * Stops every schedule, then waits up to `timeoutMs` for the runs still going. Runs that have
   * not ended by then get their signal aborted and are reported as abandoned.
   */
  async stop(timeoutMs = 30_000): Promise<StopReport> {
    if (this.state === 'stopped') return { finished: [], abandoned: [] };
    this.state = 'stopped';
    for (const entry of this.entries.values()) await entry.task.destroy();
    const running = [...this.entries.values()].filter((entry) => entry.current?.done !== undefined);
    if (running.length === 0) return { finished: [], abandoned: [] };

    this.logger.info({ jobs: running.map((e) => e.job.name), timeoutMs }, 'waiting for jobs');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    const finished = new Set<string>();
    await Promise.race([
      Promise.all(
        running.map(async (entry) => {
          await entry.current?.done;
          finished.add(entry.job.name);
        }),
      ),
      timeout,
    ]);
    clearTimeout(timer);
    const abandoned = running.map((e) => e.job.name).filter((name) => !finished.has(name));
    for (const entry of running) {
      if (abandoned.includes(entry.job.name)) entry.current?.abort.abort();
    }
    if (abandoned.length > 0) {
      this.logger.warn({ jobs: abandoned, timeoutMs }, 'jobs still running at shutdown abandoned');
    }
    return { finished: [...finished], abandoned };
  }

  private trigger(entry: Entry, trigger: RunTrigger): Promise<RunResult> {
    const name = entry.job.name;
    if (entry.current) {
      entry.skips += 1;
      this.options.metrics?.recordJob(name, 'skipped');
      this.logger.warn(
        { job: name, trigger, runningRunId: entry.current.runId },
        'job skipped: its previous run is still going',
      );
      return Promise.resolve({ job: name, runId: entry.current.runId, outcome: 'skipped' });
    }
    // `current` is set before the job's code runs, so even a job that returns synchronously is
    // seen as running by anything it triggers.
    const run: Run = {
      runId: this.newRunId(),
      trigger,
      startedAt: this.clock.now(),
      abort: new AbortController(),
    };
    entry.current = run;
    entry.runs += 1;
    run.done = this.execute(entry, run);
    return run.done;
  }

  private async execute(entry: Entry, run: Run): Promise<RunResult> {
    const name = entry.job.name;
    const logger = this.logger.child({ job: name, runId: run.runId });
    logger.debug({ trigger: run.trigger }, 'job started');
    let outcome: 'ok' | 'failed' = 'ok';
    let error: string | undefined;
    try {
      await entry.job.run({
        runId: run.runId,
        trigger: run.trigger,
        logger,
        signal: run.abort.signal,
      });
    } catch (thrown) {
      outcome = 'failed';
      error = this.mask(describeError(thrown));
      logger.error({ err: thrown, trigger: run.trigger }, 'job failed');
    }
    const durationMs = Math.max(0, this.clock.now() - run.startedAt);
    entry.last = { run, durationMs, outcome, ...(error !== undefined && { error }) };
    if (outcome === 'failed') entry.failures += 1;
    if (entry.current === run) entry.current = undefined;
    this.options.metrics?.recordJob(name, outcome, durationMs / 1000);
    if (outcome === 'ok') logger.info({ trigger: run.trigger, durationMs }, 'job finished');
    return {
      job: name,
      runId: run.runId,
      outcome,
      durationMs,
      ...(error !== undefined && { error }),
    };
  }

  /** node-cron's own warnings (a tick missed because the event loop was blocked) go to our log. */
  private cronLogger(job: string): CronLogger {
    const logger = this.logger.child({ job });
    return {
      info: (message) => logger.info(message),
      warn: (message) => logger.warn(message),
      debug: (message) => logger.debug(describeError(message)),
      error: (message, err) =>
        message instanceof Error
          ? logger.error({ err: message }, 'node-cron error')
          : logger.error({ err }, message),
    };
  }
}

function checkTimezone(timezone: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    throw new SchedulerError(
      `time zone "${timezone}" is not an IANA time zone — use e.g. "UTC" or "Europe/Berlin"`,
      'invalid-schedule',
    );
  }
}
