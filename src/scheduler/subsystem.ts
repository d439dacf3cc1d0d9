import type { ServiceApi } from '../api/routes.js';
import type { Route } from '../api/server.js';
import type { Logger } from '../log/logger.js';
import { ServiceStartError, type Subsystem } from '../shared/subsystem.js';
import { Scheduler, SchedulerError, type JobContext, type JobMetrics } from './scheduler.js';

/** A job's body, as a subsystem offers it; its schedule comes from the settings. */
export type JobRun = (context: JobContext) => Promise<void>;

export interface SchedulerDeps {
  /** The `scheduler` child logger. */
  log: Logger;
  metrics: JobMetrics;
  mask: (text: string) => string;
  /** Job name → cron expression (`""` turns a job off); every name must be offered in `jobs`. */
  schedules: Record<string, string>;
  /** The jobs the subsystems started before it offer. */
  jobs: Record<string, JobRun>;
}

export interface SchedulerSubsystem extends Subsystem<Route, JobRun> {
  api: Pick<ServiceApi, 'jobs' | 'runJob'>;
}

/** Scheduled jobs: each scheduled name registered with its body, the job part of the status. */
export function startScheduler(deps: SchedulerDeps): Promise<SchedulerSubsystem> {
  const scheduler = new Scheduler({ logger: deps.log, metrics: deps.metrics, mask: deps.mask });
  try {
    for (const [name, schedule] of Object.entries(deps.schedules)) {
      if (schedule.trim() === '') continue; // "" disables a job
      const job = deps.jobs[name];
      if (!job) {
        throw new ServiceStartError(
          `schedule for unknown job "${name}" — known jobs: ${Object.keys(deps.jobs).sort().join(', ')}`,
          'invalid',
        );
      }
      scheduler.register({ name, schedule, run: job });
    }
  } catch (error) {
    throw error instanceof SchedulerError ? new ServiceStartError(error.message, 'invalid') : error;
  }
  scheduler.start();
  return Promise.resolve({
    api: {
      jobs: () => scheduler.status(),
      runJob: (name) => scheduler.runNow(name),
    },
    status: () => Promise.resolve({ jobs: scheduler.status() }),
    stop: async () => {
      await scheduler.stop();
    },
  });
}
