import { kindInfo } from './provider-kinds.js';
import type { Entry, PolicySet } from './policy-set.js';
import type { Model, Preference, Profile } from './schema.js';

export function isLocalModel(set: PolicySet, model: Model): boolean {
  const provider = set.providers.get(model.provider)?.value;
  if (!provider) return false;
  return provider.local ?? kindInfo(provider.kind).localByDefault;
}

/** Blended price per million tokens; local models cost nothing, unpriced remote ones sort last. */
export function modelCost(set: PolicySet, model: Model): number {
  if (isLocalModel(set, model)) return 0;
  if (!model.pricing) return Number.POSITIVE_INFINITY;
  return model.pricing.input_per_mtok + model.pricing.output_per_mtok;
}

export interface Selection {
  models: Entry<Model>[];
  /** Why models were left out, stage by stage, for the "no model satisfies" message. */
  dropped: { reason: string; count: number }[];
}

/** The catalog models a profile routes to, most preferred first. Pure and deterministic. */
export function selectModels(set: PolicySet, profile: Profile): Selection {
  let pool = [...set.models.values()];
  const dropped: Selection['dropped'] = [];
  const keep = (reason: string, test: (m: Entry<Model>) => boolean): void => {
    const before = pool.length;
    pool = pool.filter(test);
    if (pool.length < before) dropped.push({ reason, count: before - pool.length });
  };
  keep('disabled (enabled: false)', (m) => m.value.enabled !== false);
  if (profile.models) {
    const listed = new Set(profile.models);
    keep('not listed in models', (m) => listed.has(m.name));
  }
  if (profile.exclude) {
    const excluded = new Set(profile.exclude);
    keep('excluded', (m) => !excluded.has(m.name));
  }
  if (profile.providers) {
    const allowed = new Set(profile.providers);
    keep(`provider not in [${profile.providers.join(', ')}]`, (m) => allowed.has(m.value.provider));
  }
  for (const capability of profile.requires) {
    keep(`lacks capability "${capability}"`, (m) => m.value.capabilities.includes(capability));
  }
  if (profile.min_context !== undefined) {
    const min = profile.min_context;
    keep(
      `context_window below ${min} (or not declared)`,
      (m) => (m.value.context_window ?? 0) >= min,
    );
  }
  if (profile.only === 'local') keep('not local', (m) => isLocalModel(set, m.value));
  if (profile.only === 'remote') keep('local', (m) => !isLocalModel(set, m.value));

  const ranked = pool.sort((a, b) => compareByPreferences(set, profile.prefer, a, b));
  const models = profile.max_deployments ? ranked.slice(0, profile.max_deployments) : ranked;
  return { models, dropped };
}

function compareByPreferences(
  set: PolicySet,
  prefer: readonly Preference[],
  a: Entry<Model>,
  b: Entry<Model>,
): number {
  for (const preference of prefer) {
    const order = comparePreference(set, preference, a.value, b.value);
    if (order !== 0) return order;
  }
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function comparePreference(set: PolicySet, preference: Preference, a: Model, b: Model): number {
  switch (preference) {
    case 'local':
      return Number(isLocalModel(set, b)) - Number(isLocalModel(set, a));
    case 'cost':
      return compareNumbers(modelCost(set, a), modelCost(set, b));
    case 'quality':
      return compareNumbers(b.quality ?? 0, a.quality ?? 0);
    case 'context':
      return compareNumbers(b.context_window ?? 0, a.context_window ?? 0);
  }
}

function compareNumbers(a: number, b: number): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}
