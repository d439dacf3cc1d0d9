import { setTimeout as sleep } from 'node:timers/promises';
import type { ServiceApi } from '../api/routes.js';
import { HttpError, type Route } from '../api/server.js';
import { buildFromDir } from '../compile/build.js';
import { GitState, GitStateError } from '../gitstate/git-state.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { formatProblem } from '../policy/problems.js';
import { litellmUrl, makeStrategy, providerEnv } from '../reload/make-strategy.js';
import { reportSupervision, type SupervisionAlert } from '../reload/supervision-report.js';
import { spendSettings } from '../spend/config.js';
import { webhookSink } from '../spend/webhook.js';
import type { KeyAlias } from '../reload/nginx.js';
import type { ReloadStrategy } from '../reload/strategy.js';
import { describeVerify } from '../reload/verify.js';
import type { JobRun } from '../scheduler/subsystem.js';
import type { Settings } from '../settings/settings.js';
import { ServiceStartError, type Subsystem } from '../shared/subsystem.js';
import { Controller, type ApplyReport, type DriftReport } from './controller.js';
import { ApplyBusyError } from './lock.js';
import { ApplyHistory } from './history.js';
import { diskSpace, DiskFullError, isDiskFull } from '../shared/disk.js';
import { FailureStreak } from '../shared/failure-streak.js';
import { liveStateRoutes } from './live-routes.js';

export interface ApplyDeps {
  settings: Settings;
  env: NodeJS.ProcessEnv;
  /** The `apply` child logger. */
  log: Logger;
  metrics: Metrics;
  /** LiteLLM's master key now (it changes when rotated). */
  masterKey: () => string;
  /** Keys the blue-green front maps to others (a master key rotation's grace period). */
  keyAliases?: () => readonly KeyAlias[];
  /** Where LiteLLM's spool callback writes (the spend subsystem reads it). */
  spoolDir: string;
  /** Aborted when shutdown begins: API mutations are refused from then on. */
  shutdown: AbortSignal;
  /** Masks secret values (supervision alerts carry LiteLLM's output). */
  mask: (text: string) => string;
  /** The environment LiteLLM's variables are read from at every start (default: `env`). */
  litellmEnv?: () => NodeJS.ProcessEnv;
  /** Demo mode: the config LiteLLM loads instead of the generated one (src/demo). */
  prepareConfig?: ((configFile: string) => Promise<string>) | undefined;
}

/** Runs one apply for a trigger: timed, counted, logged, remembered as the last apply. */
export type RunApply = (trigger: string, work: () => Promise<ApplyReport>) => Promise<ApplyReport>;

export interface ApplySubsystem extends Subsystem<Route, JobRun> {
  controller: Controller;
  strategy: ReloadStrategy;
  /** The first apply at start-up. */
  first: ApplyReport & { recovered: boolean };
  /** The policies' provenance read before the first apply, so a commit during it counts. */
  seenAtStart: string;
  /** Where clients reach LiteLLM (the supervised process or the nginx front). */
  litellmUrl(): string | undefined;
  run: RunApply;
  /** The API's view of the controller. */
  api: Pick<ServiceApi, 'plan' | 'apply' | 'reload' | 'rollback' | 'drift'>;
}

/**
 * Refuses to start when the policies are invalid and no committed config can stand in:
 * LiteLLM would have nothing to serve. Run before anything is started.
 */
export async function checkServable(settings: Settings): Promise<void> {
  const build = await buildFromDir(settings.policies);
  if (build.yaml) return;
  const fallback = await GitState.open(settings.stateRepo ?? settings.policies, settings.configFile)
    .then((s) => s.committedConfig())
    .catch(() => undefined);
  if (fallback !== undefined) return;
  throw new ServiceStartError(
    `LiteLLM was not started: ${build.findings.errors.length} problem(s) in the policies and no committed config to fall back on:\n${build.findings.errors.map((p) => `  ${formatProblem(p)}`).join('\n')}`,
    'invalid',
  );
}

/**
 * The controller and its reload strategy: the first apply (which starts LiteLLM), API mutations
 * through one queue, the drift-check job, and the apply part of the status.
 */
export async function startApply(deps: ApplyDeps): Promise<ApplySubsystem> {
  const { settings, log, metrics } = deps;
  const state = await GitState.open(settings.stateRepo ?? settings.policies, settings.configFile);
  const strategy = await makeStrategy(
    settings,
    deps.masterKey,
    providerEnv(settings.configFile, deps.litellmEnv ?? deps.env, log),
    deps.spoolDir,
    {
      ...(deps.keyAliases && { keyAliases: deps.keyAliases }),
      ...(deps.prepareConfig && { prepareConfig: deps.prepareConfig }),
      log,
    },
  );
  // Supervised restarts: logged, counted, alerted (src/reload/supervision-report.ts).
  const { webhook } = spendSettings(deps.env, settings.stateDir);
  reportSupervision(strategy, {
    log: log.child({ component: 'supervisor' }),
    recordRestart: (process, cause) => metrics.recordRestart(process, cause),
    setGivenUp: (process, given) => metrics.setSupervisionGivenUp(process, given),
    ...(webhook && { alert: webhookSink<SupervisionAlert>(webhook) }),
    mask: deps.mask,
  });
  const controller = new Controller({
    policiesDir: settings.policies,
    state,
    strategy,
    stateDir: settings.stateDir,
    // Git is the desired state; dev mode (MODELCENTER_WATCH) serves the files as edited.
    policySource: settings.watch ? 'working' : 'committed',
  });

  // The dashboard's live state: recent applies (kept across restarts) and supervised restarts.
  const history = await ApplyHistory.open(settings.stateDir);
  const restarts: Record<string, number> = {};
  strategy.onSupervision?.((event) => {
    if (event.kind === 'restarted') restarts[event.process] = (restarts[event.process] ?? 0) + 1;
  });

  const seenAtStart = JSON.stringify(await state.provenance(settings.policies));
  const firstStarted = performance.now();
  const first = await controller.start().catch(async (error: unknown) => {
    await strategy.stop();
    throw error;
  });
  const firstSeconds = (performance.now() - firstStarted) / 1000;
  logReport(log, 'start', first);
  if (first.recovered) log.warn({}, 'recovered an apply that was interrupted');
  if (
    controller.policySource === 'committed' &&
    (JSON.parse(seenAtStart) as { dirty?: boolean }).dirty
  ) {
    log.warn(
      { policies: settings.policies },
      'uncommitted policy edits are not applied: commit them to apply (or set MODELCENTER_WATCH=true for dev mode)',
    );
  }
  if (strategy.instances().length === 0) {
    await strategy.stop();
    throw new ServiceStartError(
      first.outcome === 'invalid' || first.outcome === 'drift'
        ? `LiteLLM was not started:\n${first.problems.map((p) => `  ${p}`).join('\n')}`
        : `LiteLLM could not be started:\n${first.problems.map((p) => `  ${p}`).join('\n')}`,
      first.outcome === 'invalid' || first.outcome === 'drift' ? 'invalid' : 'failed',
    );
  }
  metrics.setStrategy(strategy.name);
  metrics.recordApply(first.outcome, firstSeconds);
  await history.record({
    at: new Date(Date.now() - firstSeconds * 1000).toISOString(),
    trigger: 'start',
    outcome: first.outcome,
    ...(first.commit && { commit: first.commit }),
    durationMs: Math.round(firstSeconds * 1000),
    problems: first.problems,
  });

  let lastApply: { at: string; trigger: string; outcome: string; problems: string[] } | undefined;
  const applyFailures = new FailureStreak(log, 'apply (it did not go live)', { level: 'error' });
  const historyFailures = new FailureStreak(
    log,
    'writing the apply history (the dashboard misses it)',
  );
  const run: RunApply = async (trigger, work) => {
    const started = performance.now();
    const startedAt = new Date().toISOString();
    const record = (
      outcome: ApplyReport['outcome'],
      problems: string[],
      commit: string | undefined,
    ): void => {
      const seconds = (performance.now() - started) / 1000;
      metrics.recordApply(outcome, seconds);
      lastApply = { at: new Date().toISOString(), trigger, outcome, problems };
      history
        .record({
          at: startedAt,
          trigger,
          outcome,
          ...(commit && { commit }),
          durationMs: Math.round(seconds * 1000),
          problems,
        })
        .then(
          () => historyFailures.succeeded(),
          (error: unknown) => historyFailures.failed(error),
        );
    };
    let report: ApplyReport;
    try {
      report = await work();
    } catch (caught) {
      const error = diskFullApply(caught, state, trigger);
      // Git refused the commit or the disk is full: the apply failed (status and metrics say so)
      // and is retried. A busy lock or a refused rollback target is not an apply and is not counted.
      if (error instanceof GitStateError || error instanceof DiskFullError) {
        record('failed', [error.message], undefined);
        // Once per kind: the poll retries every few seconds while the disk stays full.
        applyFailures.failed(error, { trigger, outcome: 'failed', problems: [error.message] });
      }
      throw error;
    }
    applyFailures.succeeded();
    record(report.outcome, report.problems, report.commit);
    logReport(log, trigger, report);
    return report;
  };
  /** An API mutation: refused once shutdown began (it would outlive the LiteLLM it changes). */
  const mutate = async (
    trigger: string,
    work: () => Promise<ApplyReport>,
  ): Promise<ApplyReport> => {
    if (deps.shutdown.aborted)
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
  const checkDrift = async (): Promise<DriftReport> => {
    const drift = await controller.driftCheck();
    metrics.setDrift('config-edited', drift.workingTreeEdited);
    metrics.setDrift('foreign-commit', drift.foreignCommit !== undefined);
    if (!drift.applying) metrics.setDrift('live-models', !drift.live.ok);
    return drift;
  };

  return {
    controller,
    strategy,
    first,
    // Git refused the first commit (a lock left behind): the next poll applies the policies again.
    seenAtStart: first.commitFailed ? '' : seenAtStart,
    litellmUrl: () => litellmUrl(strategy),
    run,
    api: {
      plan: () => controller.plan(),
      apply: ({ force, before }) =>
        mutate('api', () => controller.apply({ force, ...(before && { before }) })),
      reload: () => mutate('api-reload', () => controller.apply({ reload: true })),
      // The controller refuses a target that is not one generated commit (RevisionError → 400/404).
      rollback: (to) => mutate('api-rollback', () => controller.rollback(to)),
      drift: checkDrift,
    },
    jobs: {
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
    },
    routes: liveStateRoutes({ state, history }),
    // /readyz: every process up and serving the committed deployment set.
    readiness: async () => {
      const { ready, reason } = await controller.readiness();
      return ready ? { ready } : { ready, reason: reason ?? 'not ready' };
    },
    status: async () => {
      const drift = await checkDrift();
      const policies = await state.provenance(settings.policies);
      return {
        policies: {
          commit: policies.commit,
          uncommittedEdits: policies.dirty,
          applies:
            controller.policySource === 'committed' ? 'committed' : 'working tree (dev mode)',
        },
        strategy: strategy.name,
        strategyReason: settings.strategyReason,
        // The state directory's disk (spool, ledger, secrets, generated config when it is there).
        disk: await diskSpace(settings.stateDir),
        supervision: strategy.readiness?.(),
        generatedCommit: (await state.generatedCommits(1))[0],
        policyCommit: await policyCommitOf(state),
        lastKnownGood: await state.lastKnownGood(),
        drift: {
          workingTreeEdited: drift.workingTreeEdited,
          foreignCommit: drift.foreignCommit,
          drifted: drift.drifted,
        },
        // An instance serving exactly the committed set serves the commit last made live; the
        // restart count is the supervised process's (every instance of a strategy shares it).
        instances: drift.live.instances.map((instance) => ({
          ...instance,
          servedCommit:
            instance.ready && instance.missing.length === 0 && instance.unexpected.length === 0
              ? history.liveCommit()
              : undefined,
          restarts: restarts.litellm ?? 0,
        })),
        restarts,
        lastApply,
      };
    },
    stop: async () => {
      // A running apply finishes (its journal makes an abandoned one recoverable anyway).
      await Promise.race([controller.idle(), sleep(120_000, undefined, { ref: false })]);
      await strategy.stop();
    },
  };
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

/**
 * The policy commit the generated config came from: its own trailer, or for a rollback commit the
 * trailer of the commit it restored.
 */
async function policyCommitOf(state: GitState): Promise<string | undefined> {
  const history = await state.generatedHistory(50);
  let current = history[0];
  // A rollback to a rollback: follow the chain (bounded by the history read).
  for (let hops = 0; current?.rollbackTo && hops < history.length; hops += 1) {
    const target = current.rollbackTo;
    current = history.find((c) => c.commit === target);
  }
  return current?.policyCommit;
}

/**
 * A full disk met anywhere in an apply (the lock, the journal, the generated file, git's objects):
 * one error that says so. Each of those steps leaves things as they were when it fails.
 */
function diskFullApply(error: unknown, state: GitState, trigger: string): unknown {
  if (error instanceof DiskFullError || !isDiskFull(error)) return error;
  return new DiskFullError(
    state.repoDir,
    `${trigger === 'api-rollback' ? 'rollback' : 'apply'} failed`,
    `nothing was applied: ${state.configPath} and the policies are as they were, LiteLLM serves what it served, and the next apply after space is freed retries`,
    { cause: error },
  );
}
