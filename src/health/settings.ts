import type { PolicySet } from '../policy/policy-set.js';
import { durationSeconds, MAX_TIMER_MS } from '../shared/duration.js';

/** The policy's `health` section with every default filled in; durations in milliseconds. */
export interface HealthSettings {
  /** LiteLLM's background probe interval; undefined: no probes. */
  probeIntervalMs: number | undefined;
  windowMs: number;
  evaluateEveryMs: number;
  alert: { errorRate: number; minRequests: number };
  demotion: DemotionSettings;
  ranking: RankingSettings;
}

export interface DemotionSettings {
  enabled: boolean;
  errorRate: number;
  minRequests: number;
  afterMs: number;
  recoverBelow: number;
  recoverAfterMs: number;
  maxReloadsPerHour: number;
}

export interface RankingSettings {
  minSamples: number;
  windowMs: number;
  margin: number;
}

/**
 * The defaults, and why: a 5-minute window is long enough for a p95 at modest traffic and short
 * enough to notice an outage within minutes; demotion after 2 minutes of sustained failure leaves
 * seconds-long trouble to LiteLLM's own cooldowns; restoring only after 10 quiet minutes and at
 * most 4 health reloads an hour keeps a flapping provider from reloading LiteLLM over and over.
 */
export const HEALTH_DEFAULTS = {
  window: '5m',
  evaluateEvery: '15s',
  alert: { errorRate: 0.5, minRequests: 10 },
  demotion: {
    errorRate: 0.5,
    minRequests: 5,
    after: '2m',
    recoverBelow: 0.1,
    recoverAfter: '10m',
    maxReloadsPerHour: 4,
  },
  ranking: { minSamples: 20, window: '1h', margin: 0.2 },
} as const;

function ms(text: string | undefined, fallback: string): number {
  return (durationSeconds(text ?? fallback) ?? durationSeconds(fallback)!) * 1000;
}

/** Pure: the policies' health section (maybe absent) → settings with defaults. */
export function healthSettings(set: Pick<PolicySet, 'health'> | undefined): HealthSettings {
  const h = set?.health?.value ?? {};
  const d = HEALTH_DEFAULTS;
  return {
    probeIntervalMs: h.probe_interval ? ms(h.probe_interval, '5m') : undefined,
    windowMs: ms(h.window, d.window),
    // The loop sleeps this long: a Node timer over MAX_TIMER_MS fires at once, so `30d` would spin.
    evaluateEveryMs: Math.min(ms(h.evaluate_every, d.evaluateEvery), MAX_TIMER_MS),
    alert: {
      errorRate: h.alert?.error_rate ?? d.alert.errorRate,
      minRequests: h.alert?.min_requests ?? d.alert.minRequests,
    },
    demotion: {
      enabled: h.demotion?.enabled ?? true,
      errorRate: h.demotion?.error_rate ?? d.demotion.errorRate,
      minRequests: h.demotion?.min_requests ?? d.demotion.minRequests,
      afterMs: ms(h.demotion?.after, d.demotion.after),
      recoverBelow: h.demotion?.recover_below ?? d.demotion.recoverBelow,
      recoverAfterMs: ms(h.demotion?.recover_after, d.demotion.recoverAfter),
      maxReloadsPerHour: h.demotion?.max_reloads_per_hour ?? d.demotion.maxReloadsPerHour,
    },
    ranking: {
      minSamples: h.ranking?.min_samples ?? d.ranking.minSamples,
      windowMs: ms(h.ranking?.window, d.ranking.window),
      margin: h.ranking?.margin ?? d.ranking.margin,
    },
  };
}
