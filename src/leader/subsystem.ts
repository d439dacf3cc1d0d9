import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServiceApi } from '../api/routes.js';
import { HttpError, type Route } from '../api/server.js';
import { startApi } from '../api/subsystem.js';
import type { Logger } from '../log/logger.js';
import type { SecretValues } from '../log/redact.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Settings } from '../settings/settings.js';
import { ModelCenterError } from '../shared/errors.js';
import type { Subsystem } from '../shared/subsystem.js';
import { LeaderLock, type ActiveController } from '../store/leader-lock.js';

/** Asked to stop while on standby: nothing was started, nothing to undo. */
export class StoppedOnStandby extends ModelCenterError {}

export interface LeaderDeps {
  settings: Settings;
  env: NodeJS.ProcessEnv;
  /** The `leader` child logger; `serviceLog` makes the standby API's token. */
  log: Logger;
  serviceLog: Logger;
  secrets: SecretValues;
  metrics: Metrics;
  version: string;
  /** The read routes a standby answers (spend reports from the shared ledger), and their stop. */
  standbyRoutes: () => Promise<{ routes: readonly Route[]; stop(): Promise<void> }>;
  /** Resolves when the service is asked to stop (a standby then gives up waiting). */
  stopRequested: Promise<void>;
  /** The lock's connection died while active: the service must stop. */
  onLost: (why: string) => void;
  /** How often a standby tries to take the lock. */
  pollMs?: number;
}

export interface LeaderSubsystem extends Subsystem<never, never> {
  /** Records where this (active) controller's API answers, for standbys to name it. */
  announce(apiUrl: string): Promise<void>;
}

/**
 * Single-active controllers on one PostgreSQL ledger (MODELCENTER_LEDGER_URL): the first takes a
 * PostgreSQL advisory lock and starts; any other waits here as a standby — its API answers read
 * routes and refuses mutations naming the active controller — and takes over within a poll of the
 * lock once the active one stops or dies (kill -9 ends its session, and the lock with it). With
 * the embedded ledger there is one controller per state directory and nothing to elect.
 */
export async function startLeadership(deps: LeaderDeps): Promise<LeaderSubsystem> {
  const { settings, env, log } = deps;
  const url = env.MODELCENTER_LEDGER_URL;
  if (!url || !/^postgres(ql)?:\/\//.test(url)) {
    return { announce: () => Promise.resolve(), stop: () => Promise.resolve() };
  }
  const lock = await LeaderLock.connect(url, deps.onLost);
  const self = (apiUrl: string): Omit<ActiveController, 'since'> => ({
    apiUrl,
    pid: process.pid,
    host: hostname(),
  });
  if (!(await lock.tryAcquire())) {
    const took = await standBy(deps, lock);
    if (!took) {
      await lock.release();
      throw new StoppedOnStandby('stopped while on standby');
    }
  }
  await lock.announce(self(`http://${settings.apiHost}:${settings.apiPort}`));
  log.info({ lock: 'PostgreSQL advisory lock' }, 'this controller is the active one');
  return {
    announce: (apiUrl) => lock.announce(self(apiUrl)),
    status: () => Promise.resolve({ leader: { role: 'active', pid: process.pid } }),
    stop: () => lock.release(),
  };
}

/**
 * Serves the standby API until the lock is taken (true) or the service is asked to stop (false).
 * The standby API is stopped before the active service starts its own on the same port.
 */
async function standBy(deps: LeaderDeps, lock: LeaderLock): Promise<boolean> {
  const { log } = deps;
  const active = await lock.active();
  log.warn(
    { active },
    'another controller holds the leader lock: on standby (read routes only) until it stops',
  );
  const refuse = async (): Promise<never> => {
    const now = await lock.active();
    throw new HttpError(
      409,
      'standby',
      now
        ? `this controller is on standby: the active controller is pid ${now.pid} on ${now.host}, API at ${now.apiUrl} — send changes there (this one takes over when it stops)`
        : 'this controller is on standby: another controller holds the leader lock — send changes to it',
    );
  };
  const reads = await deps.standbyRoutes();
  const service: ServiceApi = {
    status: async () => ({
      version: deps.version,
      leader: { role: 'standby', active: await lock.active() },
    }),
    readiness: async () => {
      const now = await lock.active();
      return {
        ready: false,
        reason: `standby: the active controller is pid ${now?.pid ?? '?'} at ${now?.apiUrl ?? '?'}`,
      };
    },
    plan: refuse,
    apply: refuse,
    reload: refuse,
    rollback: refuse,
    drift: refuse,
    jobs: () => [],
    runJob: refuse,
    metrics: async () => ({
      text: await deps.metrics.render(),
      contentType: deps.metrics.contentType,
    }),
    extraRoutes: reads.routes.filter((r) => r.method === 'GET'),
  };
  const api = await startApi({
    settings: deps.settings,
    log: log.child({ component: 'standby-api' }),
    serviceLog: deps.serviceLog,
    metrics: deps.metrics,
    secrets: deps.secrets,
    service,
    version: deps.version,
  });
  let stop = false;
  void deps.stopRequested.then(() => (stop = true));
  try {
    while (!stop) {
      if (await lock.tryAcquire()) {
        log.warn({ previous: await lock.active() }, 'the leader lock is free: taking over');
        return true;
      }
      await Promise.race([sleep(deps.pollMs ?? 1000), deps.stopRequested]);
    }
    return false;
  } finally {
    await api.stop();
    await reads.stop();
  }
}
