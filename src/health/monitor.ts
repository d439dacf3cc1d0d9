import type { LiteLLMConfig } from '../compile/litellm-config.js';
import type { ProbeResult } from '../litellm/health-client.js';
import type { PolicySet } from '../policy/policy-set.js';
import type { HealthOverlay } from '../policy/schema.js';
import { demotedProviders } from '../policy/select.js';
import { describeError } from '../shared/errors.js';
import type { Queryable } from '../store/db.js';
import { windowStats, type WindowStats } from '../store/window-stats.js';
import {
  decide,
  reloadsInLastHour,
  track,
  type Decision,
  type ProviderCondition,
  type ProviderSignal,
} from './decide.js';
import { overlayCommitMessage, type OverlayChange, type OverlayWrite } from './overlay.js';
import { measuredFromStats, measuredProfiles, rerank, type Reranking } from './ranking.js';
import { healthSettings, type HealthSettings } from './settings.js';

/** What the alert webhook receives when a provider's error rate spikes (once per incident). */
export interface HealthAlert {
  type: 'provider-health';
  event: 'error-rate';
  provider: string;
  errorRate: number;
  requests: number;
  errors: number;
  windowSeconds: number;
  message: string;
  at: string;
}

export interface HealthLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface MonitorDeps {
  db: Queryable;
  /** The clock (ms): injected, so a test can compress hours into seconds. */
  now: () => number;
  /** The current valid policies, or undefined when they do not build. */
  policies: () => Promise<PolicySet | undefined>;
  /** The config LiteLLM serves (deployment id → provider for the probes). */
  served: () => Promise<LiteLLMConfig | undefined>;
  /** LiteLLM's background probes; only asked when the policy turns probes on. */
  probes?: () => Promise<ProbeResult[]>;
  /** Commits the overlay and applies it (OverlayWriter.write). */
  writeOverlay: (overlay: HealthOverlay, message: string) => Promise<OverlayWrite>;
  alert?: (alert: HealthAlert) => Promise<void>;
  mask?: (text: string) => string;
  log: HealthLog;
}

export interface DeploymentHealth extends Omit<WindowStats, 'provider' | 'model' | 'deployment'> {
  deployment: string;
  model?: string;
  errorRate: number;
  probe?: { healthy: boolean; error?: string };
}

export interface ProviderHealth extends Omit<WindowStats, 'provider' | 'model' | 'deployment'> {
  provider: string;
  errorRate: number;
  condition: ProviderCondition['condition'];
  /** Since when the condition has held (ISO). */
  conditionSince: string;
  why: string;
  demoted?: { since: string; reason: string };
  probes?: { healthy: number; unhealthy: number };
  deployments: DeploymentHealth[];
}

/** `GET /v1/health/providers`: the last evaluation. */
export interface HealthReport {
  evaluatedAt: string;
  windowSeconds: number;
  providers: ProviderHealth[];
  demotion: {
    enabled: boolean;
    reloadsLastHour: number;
    maxReloadsPerHour: number;
    /** Moves that are due but wait for the reload budget, and until when. */
    deferredUntil?: string;
  };
  /** The last overlay change: its commit, what moved, and the apply's outcome. */
  lastChange?: {
    at: string;
    commit?: string;
    message: string;
    outcome: string;
    reverted: boolean;
  };
  probesError?: string;
  /** This evaluation's overlay change could not be committed; the next evaluation retries. */
  changeError?: { at: string; message: string; error: string };
}

/**
 * Health, evaluated on a timer: the ledger's sliding window and LiteLLM's probes per provider
 * and deployment, alerts on error-rate spikes, demotion and restoration through the overlay, and
 * re-ranking by measurements. The decisions are the pure ones in decide.ts and ranking.ts; this
 * class only reads, remembers and writes.
 */
export class HealthMonitor {
  private conditions: Record<string, ProviderCondition> = {};
  /** Health reloads done (ms), for the hourly budget. */
  private reloads: number[] = [];
  private alerted = new Set<string>();
  private report: HealthReport | undefined;
  private running: Promise<HealthReport | undefined> | undefined;
  /** How many overlay changes went live: the figure the hysteresis bounds. */
  reloadCount = 0;

  constructor(private readonly deps: MonitorDeps) {}

  last(): HealthReport | undefined {
    return this.report;
  }

  /** Resolves once the evaluation in flight (if any) has finished. */
  async idle(): Promise<void> {
    await this.running?.catch(() => undefined);
  }

  /** One evaluation; concurrent calls share the one in flight. */
  evaluate(): Promise<HealthReport | undefined> {
    this.running ??= this.evaluateOnce().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async evaluateOnce(): Promise<HealthReport | undefined> {
    const set = await this.deps.policies();
    if (!set) return this.report;
    const settings = healthSettings(set);
    const now = this.deps.now();
    const stats = await windowStats(this.deps.db, new Date(now - settings.windowMs), new Date(now));
    const { probes, probesError } = await this.readProbes(settings);
    const served = await this.deps.served();
    const providerOf = new Map(
      (served?.model_list ?? []).map((d) => [d.model_info.id, d.model_info.modelcenter_provider]),
    );
    const signals = [...set.providers.keys()].map((provider) =>
      signalOf(provider, stats, probes, providerOf),
    );
    this.conditions = track(this.conditions, signals, settings.demotion, now);
    const demoted = demotedProviders(set);
    await this.alertOnSpikes(signals, settings, now);

    const decision = decide({
      conditions: this.conditions,
      demoted: new Set(demoted.keys()),
      reloads: this.reloads,
      settings: settings.demotion,
      now,
    });
    const reranking = await this.rerankIfDue(set, settings, now);
    const report = this.buildReport(set, settings, stats, signals, probes, providerOf, now);
    if (probesError) report.probesError = probesError;
    if (decision.deferredUntil) {
      report.demotion.deferredUntil = new Date(decision.deferredUntil).toISOString();
    }
    this.report = report;
    await this.change(set, decision, reranking, now);
    return this.report;
  }

  private async readProbes(
    settings: HealthSettings,
  ): Promise<{ probes: ProbeResult[]; probesError?: string }> {
    if (settings.probeIntervalMs === undefined || !this.deps.probes) return { probes: [] };
    try {
      return { probes: await this.deps.probes() };
    } catch (error) {
      return { probes: [], probesError: this.mask(describeError(error)) };
    }
  }

  /** Fresh measurements, when a profile ranks by them and the reload budget has room. */
  private async rerankIfDue(
    set: PolicySet,
    settings: HealthSettings,
    now: number,
  ): Promise<Reranking | undefined> {
    if (measuredProfiles(set).length === 0) return undefined;
    const { ranking } = settings;
    const stats = await windowStats(this.deps.db, new Date(now - ranking.windowMs), new Date(now));
    const models = new Set(set.models.keys());
    // A model without fresh samples keeps its last measurement: losing it would reorder the
    // profile back and forth as traffic moves between candidates.
    const kept = Object.fromEntries(
      Object.entries(set.healthOverlay?.value.measured ?? {}).filter(([m]) => models.has(m)),
    );
    const fresh = { ...kept, ...measuredFromStats(stats, models, ranking.minSamples) };
    const result = rerank(set, fresh, ranking.margin);
    return result.changed ? result : undefined;
  }

  private async change(
    set: PolicySet,
    decision: Decision,
    reranking: Reranking | undefined,
    now: number,
  ): Promise<void> {
    const moves = decision.demote.length + decision.restore.length;
    if (moves === 0 && !reranking) return;
    const settings = healthSettings(set).demotion;
    // Re-ranking shares the reload budget; a due demotion already checked it in decide().
    if (moves === 0 && reloadsInLastHour(this.reloads, now).length >= settings.maxReloadsPerHour)
      return;
    const current = set.healthOverlay?.value ?? { demoted: {}, measured: {} };
    const demoted = { ...current.demoted };
    const at = new Date(now).toISOString();
    for (const move of decision.demote) demoted[move.provider] = { since: at, reason: move.reason };
    for (const move of decision.restore) delete demoted[move.provider];
    const overlay: HealthOverlay = {
      demoted,
      measured: reranking ? reranking.measured : current.measured,
    };
    const change: OverlayChange = {
      demote: decision.demote,
      restore: decision.restore,
      rerank: reranking?.moves ?? [],
    };
    const message = overlayCommitMessage(change);
    try {
      const written = await this.deps.writeOverlay(overlay, message);
      this.reloads = [...reloadsInLastHour(this.reloads, now), now];
      if (!written.reverted) this.reloadCount += 1;
      const outcome = written.report.outcome;
      this.deps.log[written.reverted ? 'error' : 'info'](
        { commit: written.commit, outcome, problems: written.report.problems, change },
        written.reverted ? 'health overlay did not go live: reverted' : 'health overlay applied',
      );
      if (this.report) {
        this.report.lastChange = {
          at,
          ...(written.commit && { commit: written.commit }),
          message: message.split('\n')[0]!,
          outcome,
          reverted: written.reverted,
        };
        this.report.demotion.reloadsLastHour = this.reloads.length;
        for (const provider of this.report.providers) {
          const d = demoted[provider.provider];
          if (d && !written.reverted) provider.demoted = d;
          else if (!written.reverted) delete provider.demoted;
        }
      }
    } catch (error) {
      const err = this.mask(describeError(error));
      this.deps.log.error(
        { err, change },
        'health overlay could not be committed; retrying at the next evaluation',
      );
      if (this.report)
        this.report.changeError = { at, message: message.split('\n')[0]!, error: err };
    }
  }

  /** One alert per incident: a provider at or above the alert rate; re-armed once below. */
  private async alertOnSpikes(
    signals: readonly ProviderSignal[],
    settings: HealthSettings,
    now: number,
  ): Promise<void> {
    for (const signal of signals) {
      const rate = signal.requests > 0 ? signal.errors / signal.requests : 0;
      const spiking =
        signal.requests >= settings.alert.minRequests && rate >= settings.alert.errorRate;
      if (!spiking) {
        this.alerted.delete(signal.provider);
        continue;
      }
      if (this.alerted.has(signal.provider)) continue;
      this.alerted.add(signal.provider);
      const message = `provider ${signal.provider}: ${signal.errors} of ${signal.requests} requests failed in the last ${Math.round(settings.windowMs / 1000)} s (${Math.round(rate * 1000) / 10}%, alert at ${Math.round(settings.alert.errorRate * 1000) / 10}%)`;
      this.deps.log.warn({ provider: signal.provider, errorRate: rate }, message);
      const alert: HealthAlert = {
        type: 'provider-health',
        event: 'error-rate',
        provider: signal.provider,
        errorRate: rate,
        requests: signal.requests,
        errors: signal.errors,
        windowSeconds: settings.windowMs / 1000,
        message,
        at: new Date(now).toISOString(),
      };
      await this.deps
        .alert?.(alert)
        .catch((error: unknown) =>
          this.deps.log.error(
            { err: this.mask(describeError(error)) },
            'health alert not delivered',
          ),
        );
    }
  }

  private buildReport(
    set: PolicySet,
    settings: HealthSettings,
    stats: readonly WindowStats[],
    signals: readonly ProviderSignal[],
    probes: readonly ProbeResult[],
    providerOf: ReadonlyMap<string, string>,
    now: number,
  ): HealthReport {
    const demoted = demotedProviders(set);
    const probeOf = new Map(probes.map((p) => [p.deploymentId, p]));
    const providers = signals.map((signal): ProviderHealth => {
      const line = stats.find((s) => s.provider === signal.provider && s.model === undefined);
      const condition = this.conditions[signal.provider]!;
      const deployments = new Map<string, DeploymentHealth>();
      for (const s of stats) {
        if (s.provider !== signal.provider || s.deployment === undefined) continue;
        deployments.set(s.deployment, {
          ...figures(s),
          deployment: s.deployment,
          ...(s.model !== undefined && { model: s.model }),
        });
      }
      for (const [id, provider] of providerOf) {
        if (provider !== signal.provider) continue;
        const probe = probeOf.get(id);
        if (!probe && !deployments.has(id)) continue;
        const entry = deployments.get(id) ?? {
          deployment: id,
          requests: 0,
          errors: 0,
          measured: 0,
          errorRate: 0,
        };
        if (probe) {
          entry.probe = {
            healthy: probe.healthy,
            ...(probe.error && { error: this.mask(probe.error) }),
          };
        }
        deployments.set(id, entry);
      }
      const demotion = demoted.get(signal.provider);
      return {
        provider: signal.provider,
        ...(line ? figures(line) : { requests: 0, errors: 0, measured: 0, errorRate: 0 }),
        condition: condition.condition,
        conditionSince: new Date(condition.since).toISOString(),
        why: condition.why,
        ...(demotion && { demoted: demotion }),
        ...(signal.probes && { probes: signal.probes }),
        deployments: [...deployments.values()].sort((a, b) =>
          a.deployment < b.deployment ? -1 : 1,
        ),
      };
    });
    return {
      evaluatedAt: new Date(now).toISOString(),
      windowSeconds: settings.windowMs / 1000,
      providers,
      demotion: {
        enabled: settings.demotion.enabled,
        reloadsLastHour: reloadsInLastHour(this.reloads, now).length,
        maxReloadsPerHour: settings.demotion.maxReloadsPerHour,
      },
      ...(this.report?.lastChange && { lastChange: this.report.lastChange }),
    };
  }

  private mask(text: string): string {
    return this.deps.mask ? this.deps.mask(text) : text;
  }
}

function figures(s: WindowStats): Omit<WindowStats, 'provider' | 'model' | 'deployment'> & {
  errorRate: number;
} {
  const rest: Omit<WindowStats, 'provider' | 'model' | 'deployment'> = {
    requests: s.requests,
    errors: s.errors,
    measured: s.measured,
  };
  for (const key of [
    'p50LatencyMs',
    'p95LatencyMs',
    'p50TtftMs',
    'p95TtftMs',
    'costPerRequestUsd',
  ] as const) {
    if (s[key] !== undefined) rest[key] = s[key];
  }
  return { ...rest, errorRate: s.requests > 0 ? s.errors / s.requests : 0 };
}

/** A provider's signal: its ledger line, and its deployments' probes. */
function signalOf(
  provider: string,
  stats: readonly WindowStats[],
  probes: readonly ProbeResult[],
  providerOf: ReadonlyMap<string, string>,
): ProviderSignal {
  const line = stats.find((s) => s.provider === provider && s.model === undefined);
  const own = probes.filter((p) => providerOf.get(p.deploymentId) === provider);
  return {
    provider,
    requests: line?.requests ?? 0,
    errors: line?.errors ?? 0,
    ...(own.length > 0 && {
      probes: {
        healthy: own.filter((p) => p.healthy).length,
        unhealthy: own.filter((p) => !p.healthy).length,
      },
    }),
  };
}
