import type { Route } from './api/server.js';
import { startApi } from './api/subsystem.js';
import type { Controller, ApplyReport } from './apply/controller.js';
import { checkServable, startApply } from './apply/subsystem.js';
import type { LiveLiteLLM } from './keys/live.js';
import type { KeyAlert } from './keys/schedule.js';
import { startKeys } from './keys/subsystem.js';
import { startVirtualKeys } from './keys/virtual-keys-subsystem.js';
import { spendSettings } from './spend/config.js';
import { webhookSink } from './spend/webhook.js';
import { MASTER_KEY_ENV } from './compile/compile.js';
import type { Logger } from './log/logger.js';
import { SecretValues } from './log/redact.js';
import { Metrics } from './metrics/metrics.js';
import { startHealth } from './health/subsystem.js';
import type { ReloadStrategy } from './reload/strategy.js';
import { startProviders } from './providers/subsystem.js';
import { envCredentials } from './providers/target.js';
import { startScheduler, type JobRun } from './scheduler/subsystem.js';
import type { Settings } from './settings/settings.js';
import { stateSecret } from './settings/state-secret.js';
import { Subsystems, type Readiness } from './shared/subsystem.js';
import type { ControllerSpend } from './spend/service.js';
import { startSpend } from './spend/subsystem.js';
import { startDemo } from './demo/subsystem.js';
import { startLeadership, type LeaderAlert } from './leader/subsystem.js';
import { guardJobs, guardRoutes, guardRun, guardService } from './leader/guard.js';
import { startTriggers } from './watch/triggers.js';
import { startUi } from './ui/subsystem.js';

export { ServiceStartError } from './shared/subsystem.js';

export const VERSION = '0.1.0';

export interface RunningService {
  /** The controller's HTTP API. */
  apiUrl: string;
  /** Where clients reach LiteLLM (the supervised process or the nginx front). */
  litellmUrl: string | undefined;
  /** The local demo upstream answering every profile (keyless first run), when on. */
  demo: { url: string | undefined; reason: string };
  controller: Controller;
  strategy: ReloadStrategy;
  /** The first apply at start-up. */
  first: ApplyReport & { recovered: boolean };
  /** The spend ledger (db for spendReport) and its ingestion/budget loop. */
  spend: ControllerSpend;
  /** Ready when every subsystem is (apply: every instance serves the committed set). */
  readiness(): Promise<Readiness>;
  /** Graceful: stop taking requests, let a running apply finish, stop jobs and LiteLLM. */
  stop(): Promise<void>;
}

/**
 * The composition root of `modelcenter serve`: it builds the shared dependencies (secrets, metrics,
 * the master key) and starts each subsystem in order — each folder's `start(deps)` returns its
 * routes, jobs, status and readiness and a `stop()` (src/shared/subsystem.ts). They stop in
 * reverse order, also when a later one fails to start. A new subsystem is one more line here.
 */
export async function startService(
  settings: Settings,
  env: NodeJS.ProcessEnv,
  log: Logger,
  secrets: SecretValues = new SecretValues(),
  /**
   * Jobs and routes added from outside the subsystems (tests, embedders); `stopRequested` ends a
   * standby's wait, `onFatal` is told when the service must stop by itself (another controller
   * took the leader lock while this one was cut off from PostgreSQL).
   */
  extensions: {
    jobs?: Record<string, JobRun>;
    routes?: Route[];
    stopRequested?: Promise<void>;
    onFatal?: (why: string) => void;
  } = {},
): Promise<RunningService> {
  secrets.addFromEnv(env);
  await checkServable(settings);
  const masterKey =
    env[MASTER_KEY_ENV] ?? (await stateSecret(settings.stateDir, 'master-key', 'sk-', log));
  secrets.add(masterKey);
  // Rotated by the keys subsystem (started after the ledger); read at every use.
  const master: { current: () => string } = { current: () => masterKey };
  const currentKey = (): string => master.current();
  const metrics = new Metrics({ defaultMetrics: true });
  const shutdown = new AbortController();
  const running = new Subsystems<Route, JobRun>((subsystem, error) =>
    log.error({ subsystem, err: error }, 'subsystem did not stop cleanly'),
  );
  // Spend asks for LiteLLM's URL only at a backfill (a job or a route, started after apply).
  const litellm: { url: () => string | undefined } = { url: () => undefined };

  // One alert webhook for every subsystem that alerts (leader, keys).
  const alertWebhook = spendSettings(env, settings.stateDir).webhook;
  // Single-active on a PostgreSQL ledger: a standby waits here, answering read routes.
  const leader = await running.start('leader', () =>
    startLeadership({
      settings,
      env,
      log: log.child({ subsystem: 'leader' }),
      serviceLog: log,
      secrets,
      metrics,
      version: VERSION,
      standbyRoutes: async () => {
        const reads = await startSpend({
          settings,
          env,
          log: log.child({ subsystem: 'spend' }),
          litellm: () => ({ url: undefined, masterKey }),
        });
        return { routes: reads.routes ?? [], stop: () => reads.stop() };
      },
      stopRequested: extensions.stopRequested ?? new Promise<void>(() => undefined),
      // Losing the lock's connection keeps LiteLLM serving (src/leader/lock-keeper.ts); only
      // another controller holding the lock on reconnection stops this one.
      onStepDown: (why) => extensions.onFatal?.(why),
      ...(alertWebhook && { alert: webhookSink<LeaderAlert>(alertWebhook) }),
    }),
  );
  // While the lock is lost, every change that needs the single active controller is refused.
  const requireLock = (): void => leader.requireLock();

  // The ledger first: it is stopped after LiteLLM, so its last run reads what LiteLLM wrote last.
  const spend = await running.start('spend', () =>
    startSpend({
      settings,
      env,
      log: log.child({ subsystem: 'spend' }),
      onProblem: (outcome, reason, n) => metrics.recordSpendProblem(outcome, reason, n),
      litellm: () => ({ url: settings.litellmUrls[0] ?? litellm.url(), masterKey: currentKey() }),
    }),
  );
  // Before LiteLLM: the secret store supplies its credentials; the audit goes to the ledger.
  // Rotations reach the LiteLLM started next through `live`, set once it runs.
  const live: { current?: LiveLiteLLM } = {};
  // A caller's own virtual key (database mode), once that subsystem runs; else it shares the master key.
  const callerKeys: { fingerprintOf?: (caller: string) => string | undefined } = {};
  const keys = await running.start('keys', () =>
    startKeys({
      settings,
      env,
      log: log.child({ subsystem: 'keys' }),
      db: spend.ledger.db,
      secrets,
      masterKey,
      live: () => live.current,
      callerKeyFingerprint: (caller) => callerKeys.fingerprintOf?.(caller),
      ...(alertWebhook && { alert: webhookSink<KeyAlert>(alertWebhook) }),
    }),
  );
  master.current = () => keys.masterKey();
  // Keyless first run: a labelled local demo upstream when no provider key is set.
  const demo = await running.start('demo', () =>
    startDemo({ settings, env: keys.litellmEnv(), log: log.child({ subsystem: 'demo' }) }),
  );
  const apply = await running.start('apply', () =>
    startApply({
      settings,
      env,
      log: log.child({ subsystem: 'apply' }),
      metrics,
      masterKey: () => keys.masterKey(),
      keyAliases: () => keys.frontKeyAliases(),
      spoolDir: spend.spoolDir,
      shutdown: shutdown.signal,
      mask: (text) => secrets.mask(text),
      litellmEnv: () => keys.litellmEnv(),
      prepareConfig: demo.prepareConfig,
    }),
  );
  const { controller, strategy, first } = apply;
  litellm.url = () => apply.litellmUrl();
  live.current = {
    url: () => apply.litellmUrl(),
    masterKey: () => keys.masterKey(),
    strategy,
    reload: (trigger) => apply.run(trigger, () => controller.apply({ reload: true })),
  };
  // After LiteLLM: callers' virtual keys live in its database (database mode).
  const virtualKeys = await running.start('virtual-keys', () =>
    startVirtualKeys({
      settings,
      env,
      log: log.child({ subsystem: 'virtual-keys' }),
      audit: keys.audit,
      litellm: () => ({
        url: settings.litellmUrls[0] ?? apply.litellmUrl(),
        masterKey: keys.masterKey(),
      }),
    }),
  );
  callerKeys.fingerprintOf = (caller) => virtualKeys.fingerprintOf(caller);
  await running.start('triggers', () =>
    startTriggers({
      controller,
      settings,
      log: log.child({ subsystem: 'watch' }),
      run: guardRun(apply.run, requireLock),
      seenAtStart: apply.seenAtStart,
    }),
  );
  await running.start('health', () =>
    startHealth({
      settings,
      env,
      log: log.child({ subsystem: 'health' }),
      db: spend.ledger.db,
      controller,
      run: guardRun(apply.run, requireLock),
      litellmUrl: () => apply.litellmUrl(),
      masterKey: () => keys.masterKey(),
      mask: (text) => secrets.mask(text),
    }),
  );
  await running.start('providers', () =>
    startProviders({
      settings,
      env,
      log: log.child({ subsystem: 'providers' }),
      apply: (before) => apply.api.apply({ force: false, before }),
      // Credentials as LiteLLM gets them: stored values over the environment.
      credentials: (reference) => envCredentials(keys.litellmEnv())(reference),
      // A literal credential sent to the API goes into the secret store, never the repository.
      storeSecret: async (reference, value) => {
        secrets.add(value);
        await keys.store.put(reference, value);
      },
    }),
  );
  await running.start('ui', () => startUi({ log: log.child({ subsystem: 'ui' }) }));
  const scheduler = await running.start('scheduler', () =>
    startScheduler({
      log: log.child({ subsystem: 'scheduler' }),
      metrics,
      mask: (text) => secrets.mask(text),
      schedules: settings.schedules,
      jobs: guardJobs({ ...running.jobs(), ...extensions.jobs }, requireLock),
    }),
  );
  const api = await running.start('api', () =>
    startApi({
      settings,
      log: log.child({ subsystem: 'http' }),
      serviceLog: log,
      metrics,
      secrets,
      version: VERSION,
      service: {
        ...guardService(apply.api, requireLock),
        ...guardService(scheduler.api, requireLock),
        status: async () => ({ version: VERSION, ...(await running.status()) }),
        readiness: () => running.readiness(),
        metrics: async () => ({ text: await metrics.render(), contentType: metrics.contentType }),
        extraRoutes: guardRoutes([...(extensions.routes ?? []), ...running.routes()], requireLock),
      },
    }),
  );

  await leader.announce(api.url);
  const litellmUrl = apply.litellmUrl();
  log.info(
    {
      apiUrl: api.url,
      litellmUrl,
      strategy: strategy.name,
      strategyReason: settings.strategyReason,
    },
    'model center is serving',
  );
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      shutdown.abort();
      log.info({}, 'shutting down');
      await running.stop();
      log.info({}, 'stopped');
    })());
  return {
    apiUrl: api.url,
    litellmUrl,
    demo: { url: demo.url, reason: demo.reason },
    controller,
    strategy,
    first,
    spend: spend.ledger,
    readiness: () => running.readiness(),
    stop,
  };
}
