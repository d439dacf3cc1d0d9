import { randomBytes } from 'node:crypto';
import { chmod, mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { apiRoutes, type ServiceApi } from './api/routes.js';
import { createApiServer } from './api/server.js';
import { Controller, type ApplyReport } from './apply/controller.js';
import { buildFromDir } from './compile/build.js';
import { MASTER_KEY_ENV } from './compile/compile.js';
import { referencedEnv } from './compile/env-refs.js';
import { GitState } from './gitstate/git-state.js';
import { formatProblem } from './policy/problems.js';
import { ensureLiteLLMInstalled } from './litellm/install.js';
import type { Logger } from './log/logger.js';
import { AdminApiStrategy } from './reload/admin-api.js';
import { BlueGreenStrategy } from './reload/blue-green.js';
import { CommandRestartStrategy } from './reload/command.js';
import { RestartStrategy } from './reload/restart.js';
import type { ReloadStrategy } from './reload/strategy.js';
import type { Settings } from './settings/settings.js';
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
): Promise<RunningService> {
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
  const providerEnv: Record<string, string> = {};
  if (build.config) {
    const missing: string[] = [];
    for (const name of referencedEnv(build.config)) {
      if (name === MASTER_KEY_ENV) continue;
      const value = env[name];
      if (value) providerEnv[name] = value;
      else missing.push(name);
    }
    if (missing.length > 0)
      log.warn(
        { missing },
        'environment variables not set: requests to the providers that need them will fail',
      );
  }
  const state = await GitState.open(stateRepo, settings.configFile);
  const strategy = await makeStrategy(settings, masterKey, providerEnv);
  const controller = new Controller({
    policiesDir: settings.policies,
    state,
    strategy,
    stateDir: settings.stateDir,
  });
  const applyLog = log.child({ subsystem: 'apply' });

  const first = await controller.start();
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
  let lastApply: { at: string; trigger: string; outcome: string; problems: string[] } | undefined;
  const record = (trigger: string, report: ApplyReport): ApplyReport => {
    lastApply = {
      at: new Date().toISOString(),
      trigger,
      outcome: report.outcome,
      problems: report.problems,
    };
    logReport(applyLog, trigger, report);
    return report;
  };

  // Triggers: new policy commits (polled), and in dev mode the file watcher.
  const triggers = new Triggers(controller, settings, log.child({ subsystem: 'trigger' }), record);
  await triggers.start();

  // Spend ledger: LiteLLM's spool into the ledger, budgets and alerts (src/spend).
  const spend = await startControllerSpend({
    stateDir: settings.stateDir,
    env,
    policiesDir: settings.policies,
    configFile: settings.configFile,
    log: log.child({ subsystem: 'spend' }),
  });

  const service: ServiceApi = {
    status: async () => {
      const drift = await controller.driftCheck();
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
        jobs: [],
      };
    },
    plan: () => controller.plan(),
    apply: async ({ force }) => record('api', await controller.apply({ force })),
    reload: async () => record('api-reload', await controller.apply({ reload: true })),
    rollback: async (to) => record('api-rollback', await controller.rollback(to)),
    drift: () => controller.driftCheck(),
    jobs: () => [],
    runJob: () => Promise.reject(new ModelCenterError('no jobs yet')),
    metrics: () => Promise.resolve({ text: '', contentType: 'text/plain; version=0.0.4' }),
  };
  const httpLog = log.child({ subsystem: 'http' });
  const server = createApiServer({
    routes: apiRoutes(service, VERSION),
    tokens,
    maxBodyBytes: settings.maxBodyBytes,
    log: httpLog,
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        new ServiceStartError(
          `the API cannot listen on ${settings.apiHost}:${settings.apiPort}: ${describeError(error)}`,
          'failed',
        ),
      ),
    );
    server.listen(settings.apiPort, settings.apiHost, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const apiUrl = `http://${settings.apiHost}:${address.port}`;
  const litellmUrl =
    strategy instanceof BlueGreenStrategy ? strategy.url : strategy.instances()[0]?.baseUrl;
  log.info({ apiUrl, litellmUrl, strategy: strategy.name }, 'model center is serving');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      log.info({}, 'shutting down');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await triggers.stop();
      // A running apply finishes (its journal makes an abandoned one recoverable anyway).
      await Promise.race([controller.idle(), sleep(120_000)]);
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
  env: Record<string, string>,
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
    private readonly record: (trigger: string, report: ApplyReport) => ApplyReport,
  ) {}

  async start(): Promise<void> {
    let seen = JSON.stringify(await this.controller.state.provenance(this.settings.policies));
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
          seen = now;
          this.record('policy-commit', await this.controller.apply());
        } catch (error) {
          this.log.error({ err: describeError(error) }, 'policy trigger failed');
        }
      }
    })();
    if (this.settings.watch) {
      this.watcher = new PolicyWatcher({
        policiesDir: this.settings.policies,
        onChange: async () => {
          this.record('watch', await this.controller.apply());
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
  await writeFileAtomically(file, `${value}\n`);
  await chmod(file, 0o600);
  log.warn({ file }, `${name} not configured: generated one (mode 0600)`);
  return value;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
