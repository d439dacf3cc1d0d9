import type { PolicySet } from '../policy/policy-set.js';
import { poolId, type Pool } from './pool.js';

/** One row of `GET /v1/models` and `modelcenter models list`. */
export interface ModelView {
  id: string;
  source: 'curated' | 'discovered';
  provider: string;
  upstream: string;
  capabilities: string[];
  contextWindow?: number;
  pricing?: { input_per_mtok: number; output_per_mtok: number };
  /** curated: served (false when `enabled: false`); discovered: already in the catalog. */
  enabled?: boolean;
  curatedAs?: string;
  firstSeen?: string;
  lastSeen?: string;
  /** The provider's last sync did not list it. */
  missingSince?: string;
  filledFrom?: string;
}

export function catalogView(set: PolicySet, pool: Pool): ModelView[] {
  return [...set.models.values()].map(({ name, value }) => {
    const upstream = value.upstream ?? name;
    const seen = pool.models[poolId(value.provider, upstream)];
    return {
      id: name,
      source: 'curated' as const,
      provider: value.provider,
      upstream,
      capabilities: value.capabilities,
      ...(value.context_window && { contextWindow: value.context_window }),
      ...(value.pricing && { pricing: value.pricing }),
      enabled: value.enabled !== false,
      ...(seen?.missingSince && { missingSince: seen.missingSince }),
    };
  });
}

export function discoveredView(set: PolicySet, pool: Pool): ModelView[] {
  const curated = new Map(
    [...set.models.values()].map((m) => [
      poolId(m.value.provider, m.value.upstream ?? m.name),
      m.name,
    ]),
  );
  return Object.values(pool.models)
    .sort((a, b) => (a.id < b.id ? -1 : 1))
    .map((m) => ({
      id: m.id,
      source: 'discovered' as const,
      provider: m.provider,
      upstream: m.upstream,
      capabilities: m.capabilities,
      ...(m.contextWindow && { contextWindow: m.contextWindow }),
      ...(m.pricing && { pricing: m.pricing }),
      ...(curated.has(m.id) && { curatedAs: curated.get(m.id) }),
      firstSeen: m.firstSeen,
      lastSeen: m.lastSeen,
      ...(m.missingSince && { missingSince: m.missingSince }),
      filledFrom: m.filledFrom,
    }));
}

/** Curated models whose provider stopped listing them: flagged in status. */
export function missingCurated(
  set: PolicySet,
  pool: Pool,
): { model: string; provider: string; since: string }[] {
  return catalogView(set, pool)
    .filter((m) => m.missingSince)
    .map((m) => ({ model: m.id, provider: m.provider, since: m.missingSince! }));
}
