import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { apiRoutes, type ServiceApi } from './api/routes.js';
import { createApiServer, HttpError, type Route } from './api/server.js';
import { LiteLLMApiError } from './litellm/errors.js';
import { Controller, type ApplyReport, type DriftReport } from './apply/controller.js';
import { ApplyBusyError } from './apply/lock.js';
import { readFileSync } from 'node:fs';
import { buildFromDir } from './compile/build.js';
import { parseRendered } from './compile/render.js';
import { spendSettings } from './spend/config.js';
import { deploymentCatalog, readGeneratedConfig } from './spend/extract.js';
import { IngestBodyError, parseGenericApiBody } from './spend/ingest.js';
import { MASTER_KEY_ENV } from './compile/compile.js';
import { referencedEnv } from './compile/env-refs.js';
import { GitState } from './gitstate/git-state.js';
import { formatProblem } from './policy/problems.js';
import { ensureLiteLLMInstalled } from './litellm/install.js';
import type { Logger } from './log/logger.js';
import { SecretValues } from './log/redact.js';
import { Metrics } from './metrics/metrics.js';
import { describeVerify } from './reload/verify.js';
import { Scheduler, SchedulerError, type JobContext } from './scheduler/scheduler.js';
import { AdminApiStrategy } from './reload/admin-api.js';
import { BlueGreenStrategy } from './reload/blue-green.js';
import { CommandRestartStrategy } from './reload/command.js';
import { RestartStrategy } from './reload/restart.js';
import type { ReloadStrategy } from './reload/strategy.js';
import type { Settings } from './settings/settings.js';
import { BackfillBusyError, BackfillRequestError } from './spend/backfill.js';
import { ReportQueryError, spendReport } from './spend/report.js';
import { callRecord, UnknownCallError } from './spend/request.js';
import {
  backfillQuerySchema,
  callRecordSchema,
  reportQuerySchema,
  type BackfillQuery,
} from './spend/schema.js';
import { startControllerSpend, type ControllerSpend } from './spend/service.js';
import { describeError, ModelCenterError } from './shared/errors.js';
import { readIfExists, writeFileAtomically } from './shared/fs.js';
import { PolicyWatcher } from './watch/policy-watcher.js';

export const VERSION = '0.1.0';

export interface RunningService {
  /** The controller's HTTP API. */
  apiUrl: string;
  /** Where clients reach LiteLLM (the supervised process or the nginx front). */
  litellmUrl: string | undefined;
  controller: Controller;
  strategy: ReloadStrategy;
  /** The first apply at start-up. */
  first: ApplyReport & { recovered: boolean };
  /** The spend ledger (db for spendReport) and its ingestion/budget loop. */
  spend: ControllerSpend;
  /** Graceful: stop taking requests, let a running apply finish, stop jobs and LiteLLM. */
  stop(): Promise<void>;
}

/**
 * The composition root of `modelcenter serve`: settings, logger, git state, reload strategy,
 * controller, triggers (policy commits, the dev watcher), scheduled jobs and the HTTP API.
 */
export async function startService(
  settings: Settings,
  env: NodeJS.ProcessEnv,
  log: Logger,
  secrets: SecretValues = new SecretValues(),
  /** Jobs and routes other subsystems add (the spend ledger). */
  extensions: {
    jobs?: Record<string, (context: JobContext) => Promise<void>>;
    routes?: Route[];
  } = {},
): Promise<RunningService> {
  const extraJobs = extensions.jobs ?? {};
  const extraRoutes = extensions.routes ?? [];
  secrets.addFromEnv(env);
  const build = await buildFromDir(settings.policies);
  const stateRepo = settings.stateRepo ?? settings.policies;
  const fallback = build.yaml
    ? undefined
    : await GitState.open(stateRepo, settings.configFile)
        .then((s) => s.committedConfig())
        .catch(() => undefined);
  if (!build.yaml && fallback === undefined) {
    throw new ServiceStartError(
      `LiteLLM was not started: ${build.findings.errors.length} problem(s) in the policies and no committed config to fall back on:\n${build.findings.errors.map((p) => `  ${formatProblem(p)}`).join('\n')}`,
      'invalid',
    );
  }
  const masterKey =
    env[MASTER_KEY_ENV] ?? (await stateSecret(settings.stateDir, 'master-key', 'sk-', log));
  secrets.add(masterKey);
  // The environment LiteLLM needs is read from the config it is about to load, at every start,
  // so a provider added by a later policy commit gets its key too.
  const providerEnv = (): Record<string, string> => {
    const config = parseRendered(readFileSync(settings.configFile, 'utf8'));
    const found: Record<string, string> = {};
    const missing: string[] = [];
    for (const name of referencedEnv(config)) {
      if (name === MASTER_KEY_ENV) continue;
      const value = env[name];
      if (value) found[name] = value;
      else missing.push(name);
    }
    if (missing.length > 0) {
      log.warn(
        { missing },
        'environment variables not set: requests to the providers that need them will fail',
      );
    }
    return found;
  };
  const spool = spendSettings(env, settings.stateDir).spoolDir;
  const state = await GitState.open(stateRepo, settings.configFile);
  const strategy = await makeStrategy(settings, masterKey, providerEnv, spool);
  const controller = new Controller({
    policiesDir: settings.policies,
    state,
    strategy,
    stateDir: settings.stateDir,
  });
  const applyLog = log.child({ subsystem: 'apply' });
  // What has been started so far, stopped in reverse if a later start-up step fails.
  const started: (() => Promise<unknown>)[] = [() => strategy.stop()];
  const undoStarted = async (): Promise<void> => {
    for (const undo of started.reverse()) await undo().catch(() => undefined);
  };
  const guard = async <T>(step: Promise<T>): Promise<T> => {
    try {
      return await step;
    } catch (error) {
      await undoStarted();
      throw error;
    }
  };

  const seenAtStart = JSON.stringify(await state.provenance(settings.policies));
  const firstStarted = performance.now();
  const first = await controller.start();
  const firstSeconds = (performance.now() - firstStarted) / 1000;
  logReport(applyLog, 'start', first);
  if (first.recovered) applyLog.warn({}, 'recovered an apply that was interrupted');
  if (strategy.instances().length === 0) {
    await strategy.stop();
    throw new ServiceStartError(
      first.outcome === 'invalid' || first.outcome === 'drift'
        ? `LiteLLM was not started:\n${first.problems.map((p) => `  ${p}`).join('\n')}`
        : `LiteLLM could not be started:\n${first.problems.map((p) => `  ${p}`).join('\n')}`,
      first.outcome === 'invalid' || first.outcome === 'drift' ? 'invalid' : 'failed',
    );
  }

  const tokens = {
    read: settings.readTokens,
    admin:
      settings.adminTokens.length > 0
        ? settings.adminTokens
        : [await stateSecret(settings.stateDir, 'api-token', 'mc-', log)],
  };
  for (const token of [...tokens.read, ...tokens.admin]) secrets.add(token);
  const metrics = new Metrics({ defaultMetrics: true });
  metrics.setStrategy(strategy.name);
  metrics.recordApply(first.outcome, firstSeconds);
  let lastApply: { at: string; trigger: string; outcome: string; problems: string[] } | undefined;
  let closing = false;
  /** An API mutation: refused once shutdown began (it would outlive the LiteLLM it changes). */
  const mutate = async (
    trigger: string,
    work: () => Promise<ApplyReport>,
  ): Promise<ApplyReport> => {
    if (closing)
      throw new HttpError(
        503,
        'shutting_down',
        'the controller is shutting down; retry against the next one',
      );
    try {
      return await run(trigger, work);
    } catch (error) {
      if (error instanceof ApplyBusyError) throw new HttpError(409, 'busy', error.message);
      throw error;
    }
  };
  const run = async (trigger: string, work: () => Promise<ApplyReport>): Promise<ApplyReport> => {
    const started = performance.now();
    const report = await work();
    metrics.recordApply(report.outcome, (performance.now() - started) / 1000);
    lastApply = {
      at: new Date().toISOString(),
      trigger,
      outcome: report.outcome,
      problems: report.problems,
    };
    logReport(applyLog, trigger, report);
    return report;
  };
  const checkDrift = async (): Promise<DriftReport> => {
    const drift = await controller.driftCheck();
    metrics.setDrift('config-edited', drift.workingTreeEdited);
    metrics.setDrift('foreign-commit', drift.foreignCommit !== undefined);
    if (!drift.applying) metrics.setDrift('live-models', !drift.live.ok);
    return drift;
  };

  // Triggers: new policy commits (polled), and in dev mode the file watcher.
  const triggers = new Triggers(controller, settings, log.child({ subsystem: 'watch' }), run);
  await guard(triggers.start(seenAtStart));
  started.push(() => triggers.stop());

  // Spend ledger: LiteLLM's spool into the ledger, budgets and alerts (src/spend).
  const spend = await guard(
    startControllerSpend({
      stateDir: settings.stateDir,
      env,
      policiesDir: settings.policies,
      configFile: settings.configFile,
      log: log.child({ subsystem: 'spend' }),
      onProblem: (outcome, reason, n) => metrics.recordSpendProblem(outcome, reason, n),
      litellm: () => ({
        url:
          settings.litellmUrls[0] ??
          (strategy instanceof BlueGreenStrategy ? strategy.url : strategy.instances()[0]?.baseUrl),
        masterKey,
      }),
    }),
  );
  started.push(() => spend.stop());

  const scheduler = new Scheduler({
    logger: log.child({ subsystem: 'scheduler' }),
    metrics,
    mask: (text) => secrets.mask(text),
  });
  const jobs: Record<string, (context: JobContext) => Promise<void>> = {
    'drift-check': async ({ logger }) => {
      const drift = await checkDrift();
      if (drift.drifted) {
        logger.warn(
          {
            workingTreeEdited: drift.workingTreeEdited,
            foreignCommit: drift.foreignCommit,
            live: describeVerify(drift.live) || 'as committed',
          },
          'drift: the generated config or the live model set differs from what was committed',
        );
      }
    },
    // Off unless scheduled (MODELCENTER_SCHEDULE_SPEND_BACKFILL): database mode only.
    'spend-backfill': async () => {
      await spend.backfiller.catchUp(); // it logs what it read
    },
    ...extraJobs,
  };
  try {
    for (const [name, schedule] of Object.entries(settings.schedules)) {
      if (schedule.trim() === '') continue; // "" disables a job
      const job = jobs[name];
      if (!job) {
        throw new ServiceStartError(
          `schedule for unknown job "${name}" — known jobs: ${Object.keys(jobs).join(', ')}`,
          'invalid',
        );
      }
      scheduler.register({ name, schedule, run: job });
    }
  } catch (error) {
    await undoStarted();
    throw error instanceof SchedulerError ? new ServiceStartError(error.message, 'invalid') : error;
  }
  scheduler.start();
  started.push(() => scheduler.stop());

  const service: ServiceApi = {
    status: async () => {
      const drift = await checkDrift();
      return {
        version: VERSION,
        strategy: strategy.name,
        generatedCommit: (await state.generatedCommits(1))[0],
        lastKnownGood: await state.lastKnownGood(),
        drift: {
          workingTreeEdited: drift.workingTreeEdited,
          foreignCommit: drift.foreignCommit,
          drifted: drift.drifted,
        },
        instances: drift.live.instances,
        lastApply,
        jobs: scheduler.status(),
        spend: spend.status(),
      };
    },
    plan: () => controller.plan(),
    apply: ({ force }) => mutate('api', () => controller.apply({ force })),
    reload: () => mutate('api-reload', () => controller.apply({ reload: true })),
    rollback: async (to) => {
      if (to !== undefined && (await state.resolve(to)) === undefined) {
        throw new HttpError(404, 'not_found', `no commit "${to}" in ${state.repoDir}`);
      }
      return mutate('api-rollback', () => controller.rollback(to));
    },
    drift: checkDrift,
    jobs: () => scheduler.status(),
    runJob: (name) => scheduler.runNow(name),
    metrics: async () => ({ text: await metrics.render(), contentType: metrics.contentType }),
    extraRoutes: [
      ...extraRoutes,
      {
        method: 'GET',
        path: '/v1/spend/report',
        scope: 'read',
        summary:
          'Spend report: cost, tokens, requests, errors, latency and TTFT percentiles, cache hits, grouped by any of goal, caller, conversation, profile, model, provider, deployment, day, hour',
        query: reportQuerySchema,
        handle: async ({ query }) => {
          const policies = (await buildFromDir(settings.policies)).set;
          try {
            return {
              status: 200,
              body: await spendReport(spend.db, query, { policies }),
            };
          } catch (error) {
            if (error instanceof ReportQueryError) {
              throw new HttpError(400, 'invalid_request', error.message);
            }
            throw error;
          }
        },
      },
      {
        method: 'POST',
        path: '/v1/spend/backfill',
        scope: 'admin',
        summary:
          "Reads LiteLLM's own spend logs (database mode, /spend/logs/v2, in windows under its 10,000-row cap) into the ledger: `since`/`until` for a range, or nothing to continue after the last backfill; requests the ledger has are skipped",
        body: backfillQuerySchema,
        handle: async ({ body }) => {
          try {
            const result = await spend.backfiller.forQuery(body as BackfillQuery);
            return { status: 200, body: result };
          } catch (error) {
            if (error instanceof BackfillBusyError) throw new HttpError(409, 'busy', error.message);
            if (error instanceof LiteLLMApiError)
              throw new HttpError(502, 'litellm_failed', error.message);
            if (error instanceof BackfillRequestError || error instanceof ReportQueryError)
              throw new HttpError(400, 'invalid_request', error.message);
            throw error;
          }
        },
      },
      {
        method: 'POST',
        path: '/v1/spend/ingest',
        scope: 'admin',
        summary:
          "LiteLLM's generic_api logger format (json_array, ndjson or single StandardLoggingPayload), for deployments that cannot load the spool callback; deduplicated like the spool",
        rawBody: true,
        maxBodyBytes: 32 * 1024 * 1024, // generic_api batches hundreds of payloads
        handle: async ({ body }) => {
          let payloads: unknown[];
          try {
            payloads = parseGenericApiBody(String(body));
          } catch (error) {
            if (error instanceof IngestBodyError)
              throw new HttpError(400, 'invalid_request', error.message);
            throw error;
          }
          const catalog = deploymentCatalog(await readGeneratedConfig(settings.configFile));
          return {
            status: 200,
            body: await spend.ingest(payloads, catalog),
          };
        },
      },
      {
        method: 'GET',
        path: '/v1/spend/requests/{callId}',
        scope: 'admin', // prompts and responses are sensitive
        summary:
          'Every attempt of one request (its x-litellm-call-id): time, status, profile, model, provider, tokens, cost, error class, latency; prompt and response when the policies keep content (spend.keep_content)',
        response: callRecordSchema,
        handle: async ({ params }) => {
          try {
            return { status: 200, body: await callRecord(spend.db, params.callId ?? '') };
          } catch (error) {
            if (error instanceof UnknownCallError) {
              throw new HttpError(404, 'not_found', error.message);
            }
            throw error;
          }
        },
      },
    ],
  };
  const httpLog = log.child({ subsystem: 'http' });
  const server = createApiServer({
    routes: apiRoutes(service, VERSION),
    tokens,
    maxBodyBytes: settings.maxBodyBytes,
    log: httpLog,
    mask: (text) => secrets.mask(text),
    onRequest: (method, route, status, seconds) =>
      metrics.recordHttp(method, route, status, seconds),
  });
  await guard(
    new Promise<void>((resolve, reject) => {
      server.once('error', (error) =>
        reject(
          new ServiceStartError(
            `the API cannot listen on ${settings.apiHost}:${settings.apiPort}: ${describeError(error)}`,
            'failed',
          ),
        ),
      );
      server.listen(settings.apiPort, settings.apiHost, () => resolve());
    }),
  );
  const address = server.address() as AddressInfo;
  const apiUrl = `http://${settings.apiHost}:${address.port}`;
  const litellmUrl =
    strategy instanceof BlueGreenStrategy ? strategy.url : strategy.instances()[0]?.baseUrl;
  log.info({ apiUrl, litellmUrl, strategy: strategy.name }, 'model center is serving');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      closing = true;
      log.info({}, 'shutting down');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await triggers.stop();
      await scheduler.stop();
      // A running apply finishes (its journal makes an abandoned one recoverable anyway).
      await Promise.race([controller.idle(), sleep(120_000, undefined, { ref: false })]);
      await strategy.stop();
      await spend.stop();
      server.closeAllConnections();
      await closed;
      log.info({}, 'stopped');
    })());
  return { apiUrl, litellmUrl, controller, strategy, first, spend, stop };
}

export class ServiceStartError extends ModelCenterError {
  constructor(
    message: string,
    readonly kind: 'invalid' | 'failed',
  ) {
    super(message);
  }
}

async function makeStrategy(
  settings: Settings,
  masterKey: string,
  env: () => Record<string, string>,
  spoolDir: string,
): Promise<ReloadStrategy> {
  switch (settings.strategy) {
    case 'admin-api':
      return new AdminApiStrategy({ instances: settings.litellmUrls, masterKey });
    case 'blue-green':
      await ensureLiteLLMInstalled();
      return new BlueGreenStrategy({
        port: settings.litellmPort,
        masterKey,
        env,
        stateDir: settings.stateDir,
        spoolDir,
      });
    case 'restart':
      if (settings.restartCommand) {
        return new CommandRestartStrategy({
          command: settings.restartCommand,
          instances: settings.litellmUrls,
          masterKey,
        });
      }
      await ensureLiteLLMInstalled();
      return new RestartStrategy({
        port: settings.litellmPort,
        masterKey,
        env,
        stateDir: settings.stateDir,
        spoolDir,
      });
  }
}

/** Applies on every new policy commit (or uncommitted edit) and, in dev mode, on file changes. */
class Triggers {
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();
  private watcher: PolicyWatcher | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly controller: Controller,
    private readonly settings: Settings,
    private readonly log: Logger,
    private readonly run: (
      trigger: string,
      work: () => Promise<ApplyReport>,
    ) => Promise<ApplyReport>,
  ) {}

  /** `seen`: the policies' provenance read before the first apply, so a commit during it counts. */
  async start(seenAtStart: string): Promise<void> {
    let seen = seenAtStart;
    this.loop = (async () => {
      while (!this.stopped) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.settings.pollSeconds * 1000);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        if (this.stopped) break;
        try {
          const now = JSON.stringify(
            await this.controller.state.provenance(this.settings.policies),
          );
          if (now === seen) continue;
          await this.run('policy-commit', () => this.controller.apply());
          seen = now; // only once handled: an apply that threw is tried again next time
        } catch (error) {
          this.log.error({ err: describeError(error) }, 'policy trigger failed');
        }
      }
    })();
    if (this.settings.watch) {
      this.watcher = new PolicyWatcher({
        policiesDir: this.settings.policies,
        onChange: async () => {
          await this.run('watch', () => this.controller.apply());
        },
        onInvalid: (problems) =>
          this.log.warn({ problems }, 'policy edit is invalid: the last good policies stay live'),
      });
      await this.watcher.start();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.watcher?.close();
    await this.loop;
  }
}

function logReport(log: Logger, trigger: string, report: ApplyReport): void {
  const details = {
    trigger,
    outcome: report.outcome,
    commit: report.commit,
    problems: report.problems,
  };
  if (report.outcome === 'applied' || report.outcome === 'unchanged') log.info(details, 'apply');
  else log.error({ ...details, litellmOutput: report.litellmOutput }, 'apply did not go live');
}

/** A secret kept in the state directory (mode 0600), generated once, never logged. */
async function stateSecret(
  stateDir: string,
  name: string,
  prefix: string,
  log: Logger,
): Promise<string> {
  const file = path.join(stateDir, name);
  const existing = (await readIfExists(file))?.trim();
  if (existing) return existing;
  await mkdir(stateDir, { recursive: true });
  const value = `${prefix}${randomBytes(32).toString('hex')}`;
  await writeFileAtomically(file, `${value}\n`, { mode: 0o600 });
  log.warn({ file }, `${name} not configured: generated one (mode 0600)`);
  return value;
}
