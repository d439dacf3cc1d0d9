import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServiceApi } from '../api/routes.js';
import { HttpError, type Route } from '../api/server.js';
import { startApi } from '../api/subsystem.js';
import type { Logger } from '../log/logger.js';
import type { SecretValues } from '../log/redact.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Settings } from '../settings/settings.js';
import { describeError, ModelCenterError } from '../shared/errors.js';
import type { Subsystem } from '../shared/subsystem.js';
import { LeaderLock, type ActiveController } from '../store/leader-lock.js';
import { LockKeeper, type LockState } from './lock-keeper.js';

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
  /**
   * After losing the lock's connection, this controller reconnected and found another controller
   * holding the lock: it must step down (the service stops; its supervisor restarts it, and it
   * comes back as a standby).
   */
  onStepDown: (why: string) => void;
  /** The alert webhook (MODELCENTER_ALERT_WEBHOOK), when one is configured. */
  alert?: (alert: LeaderAlert) => Promise<void>;
  /** How often a standby tries to take the lock. */
  pollMs?: number;
  /** Reconnection backoff after the lock's connection died (default 250 ms doubling to 10 s). */
  backoff?: { initialMs: number; maxMs: number };
}

/** What the alert webhook receives: one per incident (lock lost), and one on stepping down. */
export interface LeaderAlert {
  type: 'leader';
  event: 'lock-lost' | 'stepped-down';
  message: string;
  at: string;
}

export interface LeaderSubsystem extends Subsystem<never, never> {
  /** Records where this (active) controller's API answers, for standbys to name it. */
  announce(apiUrl: string): Promise<void>;
  /**
   * Throws a 503 naming the cause while this controller does not hold the leader lock: every
   * change that needs the single active controller (applies, rotations, jobs) asks first.
   */
  requireLock(): void;
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
    return {
      announce: () => Promise.resolve(),
      requireLock: () => undefined,
      stop: () => Promise.resolve(),
    };
  }
  // The first lock's connection reports to the keeper made once this controller is active.
  const keeping: { keeper?: LockKeeper } = {};
  const lost = (why: string): void => keeping.keeper?.connectionLost(why);
  let lock = await LeaderLock.connect(url, lost);
  const self = (apiUrl: string): Omit<ActiveController, 'since'> => ({
    apiUrl,
    pid: process.pid,
    host: hostname(),
  });
  if (!(await lock.tryAcquire())) {
    const took = await standBy(deps, url, lock, lost);
    if (!took) throw new StoppedOnStandby('stopped while on standby');
    lock = took;
  }
  let announced = self(`http://${settings.apiHost}:${settings.apiPort}`);
  await lock.announce(announced);
  log.info({ lock: 'PostgreSQL advisory lock' }, 'this controller is the active one');
  const alert = (event: LeaderAlert['event'], message: string): void => {
    deps
      .alert?.({ type: 'leader', event, message, at: new Date().toISOString() })
      .catch((error: unknown) =>
        log.error({ err: describeError(error) }, 'leader alert not delivered'),
      );
  };
  const held = new LockKeeper(lock, {
    url,
    self: () => announced,
    ...(deps.backoff && { backoff: deps.backoff }),
    onLost: (reason) => {
      const message = `lost the PostgreSQL leader lock (${reason}): LiteLLM keeps serving the current config; changes are refused until the lock is retaken (reconnecting with backoff)`;
      log.error({ reason }, message);
      alert('lock-lost', message);
    },
    onRetaken: (downMs, attempts) =>
      log.warn(
        { downMs, attempts },
        'retook the PostgreSQL leader lock: changes are accepted again',
      ),
    onTakenByAnother: (active) => {
      const why = `another controller took the leader lock while this one was disconnected from PostgreSQL${
        active ? ` (pid ${active.pid} on ${active.host}, API at ${active.apiUrl})` : ''
      }: stepping down so that one controller stays active`;
      log.error({ active }, why);
      alert('stepped-down', why);
      deps.onStepDown(why);
    },
  });
  keeping.keeper = held;
  return {
    announce: async (apiUrl) => {
      announced = self(apiUrl);
      await held.heldLock()?.announce(announced);
    },
    requireLock: () => {
      const state = held.current();
      if (state.held) return;
      const seconds = Math.round((Date.now() - state.since.getTime()) / 1000);
      throw new HttpError(
        503,
        'leader_lock_lost',
        `this controller lost its PostgreSQL leader lock ${seconds} s ago (${state.reason}${
          state.lastError ? `; last reconnection attempt: ${state.lastError}` : ''
        }) and is reconnecting: changes that need the single active controller (apply, reload, rollback, rotations, jobs) are refused until it holds the lock again. LiteLLM keeps serving the current config; retry once PostgreSQL (MODELCENTER_LEDGER_URL) is reachable`,
      );
    },
    status: () => Promise.resolve({ leader: leaderStatus(held.current()) }),
    readiness: () => {
      const state = held.current();
      // LiteLLM serves without the ledger: ready, but say what does not work.
      return Promise.resolve(
        state.held
          ? { ready: true }
          : {
              ready: true,
              degraded: `leader lock lost since ${state.since.toISOString()} (${state.reason}): changes are refused until it is retaken`,
            },
      );
    },
    stop: () => held.stop(),
  };
}

/** The leader part of `GET /v1/status`. */
function leaderStatus(state: LockState): Record<string, unknown> {
  return state.held
    ? { role: 'active', lock: 'held', pid: process.pid }
    : {
        role: 'active',
        lock: 'lost',
        pid: process.pid,
        lostSince: state.since.toISOString(),
        lostReason: state.reason,
        reconnectAttempts: state.attempts,
        ...(state.lastError && { lastError: state.lastError }),
      };
}

/**
 * Serves the standby API until the lock is taken (the lock now held) or the service is asked to
 * stop (undefined). The standby API is stopped before the active service starts its own on the
 * same port. A standby's own connection may die too (a PostgreSQL restart): it reconnects at the
 * next poll and keeps answering reads meanwhile.
 */
async function standBy(
  deps: LeaderDeps,
  url: string,
  first: LeaderLock,
  lost: (why: string) => void,
): Promise<LeaderLock | undefined> {
  const { log } = deps;
  let lock: LeaderLock | undefined = first;
  // Who is active, as last read: a standby cut off from PostgreSQL still names the last one known.
  let known: ActiveController | undefined;
  const active = async (): Promise<ActiveController | undefined> => {
    known = (await lock?.active().catch(() => undefined)) ?? known;
    return known;
  };
  log.warn(
    { active: await active() },
    'another controller holds the leader lock: on standby (read routes only) until it stops',
  );
  const refuse = async (): Promise<never> => {
    const now = await active();
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
      leader: { role: 'standby', active: await active(), ledgerReachable: lock !== undefined },
    }),
    readiness: async () => {
      const now = await active();
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
  let unreachable: string | undefined;
  try {
    while (!stop) {
      try {
        lock ??= await LeaderLock.connect(url, lost);
        if (await lock.tryAcquire()) {
          log.warn({ previous: await active() }, 'the leader lock is free: taking over');
          return lock;
        }
        if (unreachable) log.info({}, 'standby reconnected to PostgreSQL');
        unreachable = undefined;
      } catch (error) {
        // Logged once per outage; the next poll reconnects.
        if (!unreachable) {
          unreachable = describeError(error);
          log.warn({ err: unreachable }, 'standby cannot reach PostgreSQL: reconnecting');
        }
        await lock?.release();
        lock = undefined;
      }
      await Promise.race([sleep(deps.pollMs ?? 1000), deps.stopRequested]);
    }
    await lock?.release();
    return undefined;
  } finally {
    await api.stop();
    await reads.stop();
  }
}
