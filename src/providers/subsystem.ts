import type { ApplyReport } from '../apply/controller.js';
import type { Route } from '../api/server.js';
import { buildFromDir } from '../compile/build.js';
import { PolicyRepo } from '../gitstate/policy-repo.js';
import type { Logger } from '../log/logger.js';
import type { JobRun } from '../scheduler/subsystem.js';
import type { Settings } from '../settings/settings.js';
import type { Subsystem } from '../shared/subsystem.js';
import { SelfExpansion, type StoreSecret } from './expansion.js';
import { PoolStore } from './pool.js';
import { loadPriceMap } from './price-map.js';
import { providerRoutes } from './routes.js';
import { ModelSync } from './sync.js';
import { envCredentials, type CredentialLookup } from './target.js';
import { missingCurated } from './views.js';

export interface ProvidersDeps {
  settings: Pick<Settings, 'policies' | 'stateDir'>;
  env: NodeJS.ProcessEnv;
  /** The `providers` child logger. */
  log: Logger;
  /**
   * One apply through the apply subsystem's queue (API mutations take the normal path); `before`
   * (the policy commit) runs inside the apply lock.
   */
  apply: (before: () => Promise<void>) => Promise<ApplyReport>;
  /** Reads credential references; default: the environment. */
  credentials?: CredentialLookup;
  /** The secret store for literal credentials sent to the API; without one they are refused. */
  storeSecret?: StoreSecret;
}

export interface ProvidersSubsystem extends Subsystem<Route, JobRun> {
  sync: ModelSync;
  expansion: SelfExpansion;
}

/**
 * Providers and models: the live model sync into the discovered pool (`model-sync` job, routes),
 * and self-expansion through the API — providers added, changed, removed, models promoted,
 * disabled and enabled as policy commits taken by the normal apply path.
 */
export function startProviders(deps: ProvidersDeps): Promise<ProvidersSubsystem> {
  const { settings } = deps;
  const credentials = deps.credentials ?? envCredentials(deps.env);
  const pool = new PoolStore(settings.stateDir);
  const sync = new ModelSync({ store: pool, credentials, prices: () => loadPriceMap() });
  let repo: Promise<PolicyRepo> | undefined;
  const expansion = new SelfExpansion({
    policiesDir: settings.policies,
    repo: () => (repo ??= PolicyRepo.open(settings.policies)),
    apply: deps.apply,
    pool,
    ...(deps.storeSecret && { storeSecret: deps.storeSecret }),
  });
  const definedProviders = async () =>
    new Map(
      [...(await buildFromDir(settings.policies)).set.providers].map(([name, e]) => [
        name,
        e.value,
      ]),
    );
  return Promise.resolve({
    sync,
    expansion,
    routes: providerRoutes({ policiesDir: settings.policies, expansion, sync, pool, credentials }),
    jobs: {
      // Hourly by default (MODELCENTER_SCHEDULE_MODEL_SYNC): the pool only, never routing.
      'model-sync': async ({ logger }) => {
        const reports = await sync.sync(await definedProviders());
        for (const report of reports) {
          if (!report.ok)
            logger.warn({ provider: report.provider, error: report.error }, 'model sync failed');
          else if (report.disappeared.length > 0)
            logger.warn(
              { provider: report.provider, disappeared: report.disappeared },
              'models disappeared from a provider',
            );
        }
        const failed = reports.filter((r) => !r.ok);
        if (failed.length > 0 && failed.length === reports.length) {
          throw new Error(
            `every provider's sync failed: ${failed.map((r) => r.provider).join(', ')}`,
          );
        }
      },
    },
    status: async () => {
      const current = await pool.read();
      const set = (await buildFromDir(settings.policies)).set;
      const missing = missingCurated(set, current);
      return {
        models: {
          discovered: Object.keys(current.models).length,
          syncs: current.syncs,
          // A curated model its provider stopped listing: requests to it will likely fail.
          missingCurated: missing,
        },
      };
    },
    stop: () => Promise.resolve(),
  });
}
