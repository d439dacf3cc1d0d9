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
  const kept = profile.max_deployments ? ranked.slice(0, profile.max_deployments) : ranked;
  // Demotion moves a provider's models to the end after the cut: the profile keeps the same
  // deployments (the same ids to verify), only in another order.
  const demoted = demotedProviders(set);
  const models = [
    ...kept.filter((m) => !demoted.has(m.value.provider)),
    ...kept.filter((m) => demoted.has(m.value.provider)),
  ];
  return { models, dropped };
}

/** Providers the health overlay demoted, by name. */
export function demotedProviders(set: PolicySet): Map<string, { since: string; reason: string }> {
  return new Map(Object.entries(set.healthOverlay?.value.demoted ?? {}));
}

/** What the ledger measured for a catalog model, when the overlay holds it. */
export function measuredOf(set: PolicySet, model: string): Measured | undefined {
  return set.healthOverlay?.value.measured[model];
}
type Measured = NonNullable<PolicySet['healthOverlay']>['value']['measured'][string];

/**
 * Why `first` comes before `second` in the profile's order, in words: the demotion, or the first
 * preference that tells them apart with the values it compared, or the name. Used by plan.
 */
export function whyBefore(
  set: PolicySet,
  profile: Profile,
  first: Entry<Model>,
  second: Entry<Model>,
): string {
  const demoted = demotedProviders(set);
  const demotion = demoted.get(second.value.provider);
  if (demotion && !demoted.has(first.value.provider)) {
    return `${first.name} before ${second.name}: provider "${second.value.provider}" is demoted (${demotion.reason})`;
  }
  for (const preference of profile.prefer) {
    const order = comparePreference(set, preference, first, second);
    if (order < 0) {
      return `${first.name} before ${second.name}: prefer ${preference}, ${describeValue(set, preference, first, second)} against ${describeValue(set, preference, second, first)}`;
    }
    if (order > 0) break;
  }
  return `${first.name} before ${second.name}: by name (the preferences do not tell them apart)`;
}

function describeValue(
  set: PolicySet,
  preference: Preference,
  entry: Entry<Model>,
  other: Entry<Model>,
): string {
  const measured = measuredOf(set, entry.name);
  const n = measured ? ` (measured, n=${measured.samples})` : '';
  switch (preference) {
    case 'latency':
      return measured?.p50_latency_ms !== undefined
        ? `p50 ${Math.round(measured.p50_latency_ms)} ms${n}`
        : 'no measured latency';
    case 'reliability':
      return measured
        ? `success ${(measured.success_rate * 100).toFixed(1)}%${n}`
        : 'no measurements';
    case 'cost':
      return measured?.cost_per_request_usd !== undefined &&
        measuredOf(set, other.name)?.cost_per_request_usd !== undefined
        ? `$${measured.cost_per_request_usd.toPrecision(3)} per request${n}`
        : `declared $${modelCost(set, entry.value)} per Mtok`;
    case 'local':
      return isLocalModel(set, entry.value) ? 'local' : 'remote';
    case 'quality':
      return `quality ${entry.value.quality ?? 0}`;
    case 'context':
      return `context ${entry.value.context_window ?? 0}`;
  }
}

function compareByPreferences(
  set: PolicySet,
  prefer: readonly Preference[],
  a: Entry<Model>,
  b: Entry<Model>,
): number {
  for (const preference of prefer) {
    const order = comparePreference(set, preference, a, b);
    if (order !== 0) return order;
  }
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** How two candidates compare on one preference: < 0 when `entryA` comes first. */
export function comparePreference(
  set: PolicySet,
  preference: Preference,
  entryA: Entry<Model>,
  entryB: Entry<Model>,
): number {
  const [a, b] = [entryA.value, entryB.value];
  const [ma, mb] = [measuredOf(set, entryA.name), measuredOf(set, entryB.name)];
  switch (preference) {
    case 'local':
      return Number(isLocalModel(set, b)) - Number(isLocalModel(set, a));
    case 'cost':
      // Measured cost per request where both were measured, declared pricing otherwise.
      if (ma?.cost_per_request_usd !== undefined && mb?.cost_per_request_usd !== undefined)
        return compareNumbers(ma.cost_per_request_usd, mb.cost_per_request_usd);
      return compareNumbers(modelCost(set, a), modelCost(set, b));
    case 'quality':
      return compareNumbers(b.quality ?? 0, a.quality ?? 0);
    case 'context':
      return compareNumbers(b.context_window ?? 0, a.context_window ?? 0);
    case 'latency':
      // The catalog declares no latency: unmeasured candidates are left to the next preference.
      if (ma?.p50_latency_ms === undefined || mb?.p50_latency_ms === undefined) return 0;
      return compareNumbers(ma.p50_latency_ms, mb.p50_latency_ms);
    case 'reliability':
      if (!ma || !mb) return 0;
      return compareNumbers(mb.success_rate, ma.success_rate);
  }
}

function compareNumbers(a: number, b: number): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}
