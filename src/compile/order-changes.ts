import type { PolicySet } from '../policy/policy-set.js';
import { whyBefore } from '../policy/select.js';
import type { LiteLLMConfig } from './litellm-config.js';

/** A profile whose deployments are tried in another order than the committed config's. */
export interface OrderChange {
  profile: string;
  /** Catalog models, first tried first: as committed, and as planned. */
  before: string[];
  after: string[];
  /** One sentence per pair of models that swapped: why the first now comes before the other. */
  why: string[];
}

/** The catalog models of a profile's group, in LiteLLM's `order`. */
export function profileOrder(config: LiteLLMConfig | undefined, profile: string): string[] {
  return (config?.model_list ?? [])
    .filter((d) => d.model_info.modelcenter_profile === profile)
    .sort((a, b) => (a.litellm_params.order ?? 0) - (b.litellm_params.order ?? 0))
    .map((d) => d.model_info.modelcenter_model);
}

/**
 * Pure: every profile whose order moved between the committed config and the planned one, with
 * the reason for each swapped pair (a demotion, the preference and the measured or declared values
 * that decided it). Models added or removed are the plan's `added`/`removed`, not order changes.
 */
export function orderChanges(
  committed: LiteLLMConfig | undefined,
  set: PolicySet,
  planned: LiteLLMConfig,
): OrderChange[] {
  const changes: OrderChange[] = [];
  for (const [name, entry] of set.profiles) {
    const before = profileOrder(committed, name);
    const after = profileOrder(planned, name);
    const kept = after.filter((m) => before.includes(m));
    const was = before.filter((m) => after.includes(m));
    if (kept.join('\n') === was.join('\n')) continue;
    const why: string[] = [];
    for (let i = 0; i < kept.length; i += 1) {
      for (let j = i + 1; j < kept.length; j += 1) {
        const [first, second] = [kept[i]!, kept[j]!];
        if (was.indexOf(first) < was.indexOf(second)) continue;
        const a = set.models.get(first);
        const b = set.models.get(second);
        if (a && b) why.push(whyBefore(set, entry.value, a, b));
      }
    }
    changes.push({ profile: name, before, after, why });
  }
  return changes;
}
