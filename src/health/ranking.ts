import type { Entry, PolicySet } from '../policy/policy-set.js';
import type { HealthOverlay, Model, Preference, Profile } from '../policy/schema.js';
import { comparePreference, measuredOf, selectModels, whyBefore } from '../policy/select.js';
import type { WindowStats } from '../store/window-stats.js';

export type Measured = HealthOverlay['measured'];

/** The preferences that rank by what the ledger measured. */
const MEASURED_PREFERENCES: ReadonlySet<Preference> = new Set(['latency', 'reliability', 'cost']);

/** Profiles that rank by measurements: the only ones a re-ranking can move. */
export function measuredProfiles(set: PolicySet): [string, Entry<Profile>][] {
  return [...set.profiles].filter(([, p]) =>
    p.value.prefer.some((x) => MEASURED_PREFERENCES.has(x)),
  );
}

/**
 * Pure: the ledger's per-model lines → the overlay's measurements, for catalog models with at
 * least `minSamples` requests in the window (fewer: the catalog's declared values rank them).
 * Rounded, so the overlay does not churn on noise.
 */
export function measuredFromStats(
  stats: readonly WindowStats[],
  models: ReadonlySet<string>,
  minSamples: number,
): Measured {
  const measured: Measured = {};
  for (const line of stats) {
    if (line.model === undefined || line.deployment !== undefined) continue;
    if (!models.has(line.model) || line.requests < minSamples) continue;
    const entry: Measured[string] = {
      samples: line.requests,
      success_rate: Math.round((1 - line.errors / line.requests) * 10_000) / 10_000,
    };
    if (line.p50LatencyMs !== undefined)
      entry.p50_latency_ms = Math.round(line.p50LatencyMs * 10) / 10;
    if (line.costPerRequestUsd !== undefined)
      entry.cost_per_request_usd = Number(line.costPerRequestUsd.toPrecision(4));
    // The same model under two providers' names cannot happen: catalog names are unique.
    measured[line.model] = entry;
  }
  return measured;
}

/** The set as it would rank with `measured` in its overlay (for comparison only). */
export function withMeasured(set: PolicySet, measured: Measured): PolicySet {
  const current = set.healthOverlay;
  const value: HealthOverlay = { demoted: current?.value.demoted ?? {}, measured };
  return {
    ...set,
    healthOverlay: current
      ? { ...current, value }
      : // Only `value` is read when ranking; the entry is never reported on.
        ({
          name: 'health_overlay',
          value,
          path: ['health_overlay'],
        } as unknown as Entry<HealthOverlay>),
  };
}

export interface Reranking {
  /** True when some profile's order moves beyond the margin: write `measured` and reload. */
  changed: boolean;
  measured: Measured;
  /** Per profile that moves: its order before and after and why (with the figures). */
  moves: { profile: string; before: string[]; after: string[]; why: string[] }[];
}

/**
 * Pure: would the fresh measurements reorder a profile, by more than `margin`? A swap of two
 * models counts only when the value that now decides between them differs by more than the
 * margin (relative to the smaller); a swap decided by anything else (a model newly measured, a
 * declared value) always counts. Below the margin nothing is written and nothing reloads.
 */
export function rerank(set: PolicySet, fresh: Measured, margin: number): Reranking {
  const next = withMeasured(set, fresh);
  const moves: Reranking['moves'] = [];
  for (const [name, profile] of measuredProfiles(set)) {
    const before = selectModels(set, profile.value).models;
    const after = selectModels(next, profile.value).models;
    const swapped = swappedPairs(
      before.map((m) => m.name),
      after.map((m) => m.name),
    );
    const decisive = swapped.filter(([first, second]) => {
      const a = next.models.get(first)!;
      const b = next.models.get(second)!;
      return beyondMargin(next, profile.value, a, b, margin);
    });
    if (decisive.length === 0) continue;
    moves.push({
      profile: name,
      before: before.map((m) => m.name),
      after: after.map((m) => m.name),
      why: decisive.map(([first, second]) =>
        whyBefore(next, profile.value, next.models.get(first)!, next.models.get(second)!),
      ),
    });
  }
  return { changed: moves.length > 0, measured: fresh, moves };
}

/** Pairs [x, y] with x after y in `before` and x before y in `after`. */
function swappedPairs(before: readonly string[], after: readonly string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i < after.length; i += 1) {
    for (let j = i + 1; j < after.length; j += 1) {
      const [x, y] = [after[i]!, after[j]!];
      const bx = before.indexOf(x);
      const by = before.indexOf(y);
      if (bx >= 0 && by >= 0 && bx > by) pairs.push([x, y]);
    }
  }
  return pairs;
}

function beyondMargin(
  set: PolicySet,
  profile: Profile,
  a: Entry<Model>,
  b: Entry<Model>,
  margin: number,
): boolean {
  const [ma, mb] = [measuredOf(set, a.name), measuredOf(set, b.name)];
  for (const preference of profile.prefer) {
    if (comparePreference(set, preference, a, b) === 0) continue;
    const values = measuredValues(preference, ma, mb);
    // Declared values decided (or a model newly measured): no noise to damp.
    if (values === undefined) return true;
    const [x, y] = values;
    const smaller = Math.min(Math.abs(x), Math.abs(y));
    return Math.abs(x - y) > margin * Math.max(smaller, Number.EPSILON);
  }
  return true;
}

/** The two measured values a preference compared, or undefined when it compared declared ones. */
function measuredValues(
  preference: Preference,
  a: Measured[string] | undefined,
  b: Measured[string] | undefined,
): [number, number] | undefined {
  if (!a || !b) return undefined;
  switch (preference) {
    case 'latency':
      return a.p50_latency_ms !== undefined && b.p50_latency_ms !== undefined
        ? [a.p50_latency_ms, b.p50_latency_ms]
        : undefined;
    case 'reliability':
      // Compared as failure rates: 1% against 5% is a real difference, 99% against 95% looks small.
      return [1 - a.success_rate, 1 - b.success_rate];
    case 'cost':
      return a.cost_per_request_usd !== undefined && b.cost_per_request_usd !== undefined
        ? [a.cost_per_request_usd, b.cost_per_request_usd]
        : undefined;
    default:
      return undefined;
  }
}
