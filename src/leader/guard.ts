import type { ServiceApi } from '../api/routes.js';
import type { Route } from '../api/server.js';
import type { RunApply } from '../apply/subsystem.js';
import type { JobRun } from '../scheduler/subsystem.js';

/**
 * Admin routes that change nothing a second active controller could conflict with: testing a
 * provider's connection, and ingest (the ledger deduplicates what two controllers store).
 */
const NEEDS_NO_LOCK = new Set(['POST /v1/providers/test', 'POST /v1/spend/ingest']);

/**
 * Every admin route that changes something asks `requireLock` first (it throws the 503 that says
 * why while the leader lock is lost); reads and the routes above answer as before.
 */
export function guardRoutes(routes: readonly Route[], requireLock: () => void): Route[] {
  return routes.map((route) =>
    route.method === 'GET' ||
    route.scope !== 'admin' ||
    NEEDS_NO_LOCK.has(`${route.method} ${route.path}`)
      ? route
      : {
          ...route,
          handle: (context) => {
            requireLock();
            return route.handle(context);
          },
        },
  );
}

/** The API's applies, reloads, rollbacks and job runs, each asking `requireLock` first. */
export function guardService<T extends Partial<ServiceApi>>(api: T, requireLock: () => void): T {
  const guarded: Partial<ServiceApi> = { ...api };
  for (const name of ['apply', 'reload', 'rollback', 'runJob'] as const) {
    const method: ((...args: never[]) => Promise<unknown>) | undefined = api[name];
    if (!method) continue;
    (guarded as Record<string, unknown>)[name] = async (...args: never[]) => {
      requireLock();
      return method(...args);
    };
  }
  return guarded as T;
}

/** An apply started by a trigger (policy commit, health), refused while the lock is lost. */
export function guardRun(run: RunApply, requireLock: () => void): RunApply {
  return async (trigger, work) => {
    requireLock();
    return run(trigger, work);
  };
}

/** Scheduled jobs (rotations, syncs, drift checks), each refused while the lock is lost. */
export function guardJobs(
  jobs: Record<string, JobRun>,
  requireLock: () => void,
): Record<string, JobRun> {
  return Object.fromEntries(
    Object.entries(jobs).map(([name, job]) => [
      name,
      async (context) => {
        requireLock();
        await job(context);
      },
    ]),
  );
}
