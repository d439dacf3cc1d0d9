import type { Provider } from '../policy/schema.js';
import { describeError } from '../shared/errors.js';
import { enrich } from './enrich.js';
import { keptByDiscovery } from './glob.js';
import { listModels, type ProviderTarget } from './list-models.js';
import {
  dropExcluded,
  mergeSync,
  recordFailure,
  type Pool,
  type PoolStore,
  type SyncReport,
} from './pool.js';
import type { PriceMap } from './price-map.js';
import { targetFor, type CredentialLookup } from './target.js';

export interface SyncDeps {
  store: PoolStore;
  credentials: CredentialLookup;
  prices: () => Promise<PriceMap>;
  clock?: () => Date;
}

/**
 * Model sync: each provider's live list, through its discovery globs, enriched, merged into the
 * pool. It writes only the pool file: the policies, the generated config and LiteLLM are not
 * touched, so a sync never changes routing. Syncs run one at a time (one pool file).
 */
export class ModelSync {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: SyncDeps) {}

  /** Syncs `providers` (name → definition) concurrently; one report each, in name order. */
  sync(providers: ReadonlyMap<string, Provider>): Promise<SyncReport[]> {
    const run = this.queue.then(() => this.syncNow(providers));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async syncNow(providers: ReadonlyMap<string, Provider>): Promise<SyncReport[]> {
    const prices = await this.deps.prices();
    const names = [...providers.keys()].sort();
    const listings = await Promise.all(
      names.map(async (name) => {
        const provider = providers.get(name)!;
        try {
          const target: ProviderTarget = targetFor(name, provider, this.deps.credentials);
          const list = await listModels(target);
          return { name, provider, list };
        } catch (error) {
          return { name, provider, error: describeError(error) };
        }
      }),
    );
    const now = (this.deps.clock?.() ?? new Date()).toISOString();
    let pool: Pool = await this.deps.store.read();
    const reports: SyncReport[] = [];
    for (const listing of listings) {
      if (listing.error !== undefined || !listing.list) {
        pool = recordFailure(pool, listing.name, now, listing.error ?? 'no list');
        reports.push({
          provider: listing.name,
          ok: false,
          error: listing.error,
          listed: 0,
          kept: 0,
          added: [],
          disappeared: [],
          returned: [],
          excluded: [],
        });
        continue;
      }
      const { provider, list, name } = listing;
      const keep = (upstream: string): boolean => keptByDiscovery(upstream, provider.discovery);
      const dropped = dropExcluded(pool, name, keep);
      const seen = list.models
        .filter((m) => keep(m.id))
        .map((m) => enrich(provider.kind, m, prices));
      const merged = mergeSync(dropped.pool, name, seen, list.models.length, now, {
        endpoint: list.endpoint,
        latencyMs: list.latencyMs,
      });
      pool = merged.pool;
      reports.push({ ...merged.report, excluded: dropped.dropped });
    }
    await this.deps.store.write(pool);
    return reports;
  }
}
