import { z } from 'zod';

/** How a run ended. `skipped`: it was due while the previous run of the same job still ran. */
export const runOutcomeSchema = z.enum(['ok', 'failed', 'skipped']);
export type RunOutcome = z.infer<typeof runOutcomeSchema>;

/** What a scheduled run was started by: its cron schedule, or a person through the API. */
export const runTriggerSchema = z.enum(['schedule', 'manual']);
export type RunTrigger = z.infer<typeof runTriggerSchema>;

/** One job as `GET /v1/status` shows it. Times are ISO 8601; durations in milliseconds. */
export const jobStatusSchema = z.strictObject({
  name: z.string(),
  schedule: z.string().describe('cron expression; 6 fields when the first is seconds'),
  running: z.boolean(),
  currentRunId: z.string().optional(),
  lastRunId: z.string().optional(),
  lastTrigger: runTriggerSchema.optional(),
  lastStartedAt: z.iso.datetime().optional(),
  lastDurationMs: z.number().nonnegative().optional(),
  lastOutcome: z.enum(['ok', 'failed']).optional(),
  /** Why the last run failed, secrets masked. */
  lastError: z.string().optional(),
  runs: z.number().int().nonnegative().describe('runs started (not counting skips)'),
  failures: z.number().int().nonnegative(),
  skips: z.number().int().nonnegative().describe('times a run was due while one still ran'),
  nextRunAt: z.iso.datetime().optional().describe('absent when the scheduler is not running'),
});
export type JobStatus = z.infer<typeof jobStatusSchema>;

/** What `runNow` answers. A run refused because one is going is `skipped`, with that run's id. */
export const runResultSchema = z.strictObject({
  job: z.string(),
  runId: z.string(),
  outcome: runOutcomeSchema,
  durationMs: z.number().nonnegative().optional(),
  error: z.string().optional(),
});
export type RunResult = z.infer<typeof runResultSchema>;
