import type { DemotionSettings } from './settings.js';

/**
 * Demotion as a pure state machine (STYLE §1): signals in, a decision out, time passed in. The
 * monitor (monitor.ts) feeds it every evaluation and carries the state from one to the next.
 */

/** What one evaluation saw of a provider. */
export interface ProviderSignal {
  provider: string;
  /** Requests and failed attempts in the sliding window (the ledger). */
  requests: number;
  errors: number;
  /** LiteLLM's background probes of its deployments, when probes are on. */
  probes?: { healthy: number; unhealthy: number };
}

/**
 * `failing`: at or above the error-rate threshold (with enough requests), or every probe
 * unhealthy. `recovered`: below the recovery threshold (no traffic counts) and no probe says
 * otherwise. Anything else is `between`: it starts neither clock.
 */
export type Condition = 'failing' | 'recovered' | 'between';

export interface ProviderCondition {
  condition: Condition;
  /** Since when (ms) the condition has held without a break. */
  since: number;
  /** In words, with the figures. */
  why: string;
}

export function conditionOf(
  signal: ProviderSignal,
  settings: DemotionSettings,
): Omit<ProviderCondition, 'since'> {
  const rate = signal.requests > 0 ? signal.errors / signal.requests : 0;
  const figures = `${signal.errors} of ${signal.requests} requests failed (${percent(rate)})`;
  const probesDown =
    signal.probes !== undefined && signal.probes.unhealthy > 0 && signal.probes.healthy === 0;
  if (probesDown) {
    return {
      condition: 'failing',
      why: `every background probe failed (${signal.probes!.unhealthy}); ${figures}`,
    };
  }
  if (signal.requests >= settings.minRequests && rate >= settings.errorRate) {
    return {
      condition: 'failing',
      why: `${figures}, threshold ${percent(settings.errorRate)}`,
    };
  }
  if (rate < settings.recoverBelow) {
    return {
      condition: 'recovered',
      why: signal.requests === 0 ? 'no requests in the window' : figures,
    };
  }
  return { condition: 'between', why: figures };
}

/** Carries each provider's clock forward: it restarts whenever the condition changes. */
export function track(
  previous: Readonly<Record<string, ProviderCondition>>,
  signals: readonly ProviderSignal[],
  settings: DemotionSettings,
  now: number,
): Record<string, ProviderCondition> {
  const next: Record<string, ProviderCondition> = {};
  for (const signal of signals) {
    const seen = conditionOf(signal, settings);
    const before = previous[signal.provider];
    next[signal.provider] = {
      ...seen,
      since: before?.condition === seen.condition ? before.since : now,
    };
  }
  return next;
}

export interface ProviderMove {
  provider: string;
  reason: string;
}

export interface Decision {
  demote: ProviderMove[];
  restore: ProviderMove[];
  /** Moves were due but the reload budget is spent until then (ms); nothing moves now. */
  deferredUntil?: number;
}

/** Health reloads (ms timestamps) that still count against the hourly budget at `now`. */
export function reloadsInLastHour(reloads: readonly number[], now: number): number[] {
  return reloads.filter((t) => t > now - HOUR_MS && t <= now);
}

/** When the next health reload is allowed (now, or when the oldest counted one ages out). */
export function budgetFreeAt(reloads: readonly number[], now: number, maxPerHour: number): number {
  const counted = reloadsInLastHour(reloads, now).sort((a, b) => a - b);
  if (counted.length < maxPerHour) return now;
  return counted[counted.length - maxPerHour]! + HOUR_MS;
}

const HOUR_MS = 3_600_000;

/**
 * Demote a provider failing for `afterMs` without a break; restore a demoted one recovered for
 * `recoverAfterMs` without a break. All due moves go out as one change (one reload), and only
 * while the hourly reload budget lasts. Never demotes the last provider not demoted: with every
 * provider failing there is nowhere better to send traffic.
 */
export function decide(input: {
  conditions: Readonly<Record<string, ProviderCondition>>;
  demoted: ReadonlySet<string>;
  reloads: readonly number[];
  settings: DemotionSettings;
  now: number;
}): Decision {
  const { conditions, demoted, settings, now } = input;
  if (!settings.enabled) return { demote: [], restore: [] };
  const demote: ProviderMove[] = [];
  const restore: ProviderMove[] = [];
  for (const [provider, c] of Object.entries(conditions).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const held = now - c.since;
    if (!demoted.has(provider) && c.condition === 'failing' && held >= settings.afterMs) {
      demote.push({ provider, reason: `failing for ${seconds(held)}: ${c.why}` });
    }
    if (demoted.has(provider) && c.condition === 'recovered' && held >= settings.recoverAfterMs) {
      restore.push({ provider, reason: `recovered for ${seconds(held)}: ${c.why}` });
    }
  }
  const stillServing = Object.keys(conditions).filter(
    (p) => !demoted.has(p) && !demote.some((d) => d.provider === p),
  );
  if (demote.length > 0 && stillServing.length === 0 && restore.length === 0) {
    return { demote: [], restore: [] };
  }
  if (demote.length === 0 && restore.length === 0) return { demote, restore };
  const freeAt = budgetFreeAt(input.reloads, now, settings.maxReloadsPerHour);
  if (freeAt > now) return { demote: [], restore: [], deferredUntil: freeAt };
  return { demote, restore };
}

function percent(rate: number): string {
  return `${Math.round(rate * 1000) / 10}%`;
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}
