import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Controller } from '../apply/controller.js';
import type { RunApply } from '../apply/subsystem.js';
import { HttpError, type Route } from '../api/server.js';
import { buildFromDir } from '../compile/build.js';
import { LiteLLMHealthClient } from '../litellm/health-client.js';
import type { Logger } from '../log/logger.js';
import type { JobRun } from '../scheduler/subsystem.js';
import type { Settings } from '../settings/settings.js';
import { describeError } from '../shared/errors.js';
import type { Subsystem } from '../shared/subsystem.js';
import { spendSettings } from '../spend/config.js';
import { readGeneratedConfig } from '../spend/extract.js';
import { webhookSink } from '../spend/webhook.js';
import type { Queryable } from '../store/db.js';
import { HealthMonitor, type HealthAlert } from './monitor.js';
import { OverlayWriter } from './overlay.js';
import { healthReportSchema } from './schema.js';
import { healthSettings } from './settings.js';

export interface HealthDeps {
  settings: Pick<Settings, 'policies' | 'configFile' | 'stateDir'>;
  env: NodeJS.ProcessEnv;
  /** The `health` child logger. */
  log: Logger;
  /** The spend ledger: the live error rates and latencies. */
  db: Queryable;
  controller: Controller;
  run: RunApply;
  /** Where LiteLLM answers (its `/health`), once it runs. */
  litellmUrl: () => string | undefined;
  /** Read at every probe: a master-key rotation changes it. */
  masterKey: () => string;
  mask: (text: string) => string;
  /** The clock (ms); tests pass a compressed one. */
  now?: () => number;
}

export interface HealthSubsystem extends Subsystem<Route, JobRun> {
  monitor: HealthMonitor;
}

/**
 * Provider health (src/health/): evaluated every `health.evaluate_every` of the policies, served at
 * `GET /v1/health/providers`, evaluated on demand by `POST /v1/health/evaluate` and the
 * `health-evaluate` job. Demotions and re-rankings are policy commits applied by the normal
 * apply path (overlay.ts).
 */
export async function startHealth(deps: HealthDeps): Promise<HealthSubsystem> {
  const { settings, log } = deps;
  const { webhook } = spendSettings(deps.env, settings.stateDir);
  const writer = new OverlayWriter(settings.policies, () =>
    deps.run('health', () => deps.controller.apply()),
  );
  const monitor = new HealthMonitor({
    db: deps.db,
    now: deps.now ?? (() => Date.now()),
    policies: async () => {
      const build = await buildFromDir(settings.policies);
      return build.config ? build.set : undefined;
    },
    served: () => readGeneratedConfig(settings.configFile),
    probes: () => {
      const url = deps.litellmUrl();
      if (!url) return Promise.resolve([]);
      return new LiteLLMHealthClient(url, deps.masterKey(), 10_000).probes();
    },
    writeOverlay: (overlay, message) => writer.write(overlay, message),
    ...(webhook && { alert: webhookSink<HealthAlert>(webhook) }),
    mask: deps.mask,
    log,
  });

  const evaluate = async (): Promise<void> => {
    try {
      await monitor.evaluate();
    } catch (error) {
      log.warn({ err: deps.mask(describeError(error)) }, 'health evaluation failed; retrying');
    }
  };
  // The first evaluation before the API serves: `GET /v1/health/providers` has a report from the
  // start (nothing is due yet: every condition's clock starts now).
  await evaluate();
  const stopping = new AbortController();
  const loop = (async () => {
    while (!stopping.signal.aborted) {
      const build = await buildFromDir(settings.policies).catch(() => undefined);
      const every = healthSettings(build?.set).evaluateEveryMs;
      await sleep(every, undefined, { signal: stopping.signal }).catch(() => undefined);
      if (!stopping.signal.aborted) await evaluate();
    }
  })();

  return {
    monitor,
    routes: [
      {
        method: 'GET',
        path: '/v1/health/providers',
        scope: 'read',
        summary:
          "Health per provider and deployment: the ledger's error rate, p50/p95 latency and TTFT over the sliding window, LiteLLM's background probes, demotions and the reload budget (the last evaluation)",
        response: healthReportSchema,
        handle: () => {
          const report = monitor.last();
          if (!report) {
            throw new HttpError(
              503,
              'not_evaluated',
              'health could not be evaluated yet (see the log: the ledger or the policies): retry in a few seconds',
            );
          }
          return Promise.resolve({ status: 200, body: report });
        },
      },
      {
        method: 'POST',
        path: '/v1/health/evaluate',
        scope: 'admin',
        summary:
          'Evaluates health now (as the timer does): may demote or restore a provider or reorder a profile, each a policy commit applied by the normal apply path',
        body: z.object({}).strict(),
        response: healthReportSchema,
        handle: async () => {
          const report = await monitor.evaluate();
          if (!report) {
            throw new HttpError(
              422,
              'invalid_policies',
              'the policies do not build, so health cannot be evaluated: run modelcenter validate',
            );
          }
          return { status: 200, body: report };
        },
      },
    ],
    jobs: {
      'health-evaluate': async () => {
        await monitor.evaluate();
      },
    },
    status: () => {
      const report = monitor.last();
      return Promise.resolve({
        health: report
          ? {
              evaluatedAt: report.evaluatedAt,
              demoted: report.providers.filter((p) => p.demoted).map((p) => p.provider),
              failing: report.providers
                .filter((p) => p.condition === 'failing')
                .map((p) => p.provider),
              reloadsLastHour: report.demotion.reloadsLastHour,
            }
          : { evaluatedAt: undefined },
      });
    },
    stop: async () => {
      stopping.abort();
      await loop;
      await monitor.idle();
    },
  };
}
