import type { Logger } from '../log/logger.js';
import type { SecretValues } from '../log/redact.js';
import type { PolicySet } from '../policy/policy-set.js';
import { resolveCredential } from '../secrets/references.js';
import type { SecretStore } from '../secrets/store.js';
import { durationSeconds } from '../shared/duration.js';
import { describeError } from '../shared/errors.js';
import { DEFAULT_SPIKE, isSpike, type SpikeOptions } from '../spend/budgets.js';
import type { Queryable } from '../store/db.js';
import { fingerprint, newRotationId, SCHEDULE_ACTOR, type KeyAudit } from './audit.js';
import type { CredentialRotator } from './credential-rotation.js';
import { credentialedProviders, credentialStatus, providerSubject } from './credentials.js';
import { runHook } from './hooks.js';
import { MASTER_STORE_NAME, MASTER_SUBJECT, type MasterKeyRotator } from './master-rotation.js';
import type { RotationLog } from './rotations.js';

/**
 * The keys job (`key-rotation`, every minute by default): rotations that are due by the policies'
 * `rotate_every` (a provider's new value from its `issue` hook), and anomalies in the ledger — a
 * burst of 401s from a provider, a caller's cost spike — which raise an alert naming the key's
 * fingerprint, and with `on_anomaly: rotate` rotate it at once (audited, the owner notified through
 * the alert webhook). A failed rotation changed nothing (the rotators restore), alerts, and is
 * retried with backoff.
 */

/** What keys sends to the log and the alert webhook. */
export type KeyAlert =
  | {
      type: 'key-rotation-failed';
      subject: string;
      trigger: 'schedule' | 'anomaly';
      error: string;
      attempt: number;
      retryAt: string;
    }
  | {
      type: 'key-anomaly';
      subject: string;
      kind: 'provider-auth-failures' | 'caller-cost-spike';
      /** The fingerprint of the key in use when the anomaly was seen. */
      fingerprint: string;
      detail: string;
      /** What was done: alerted only, or rotated (and the rotation's id), or the rotation failed. */
      action: 'alert' | 'rotated' | 'rotation-failed';
      rotationId?: string;
      newFingerprint?: string;
    };

export interface AnomalyOptions {
  /** 401/403 answers of one provider within `windowMinutes` that count as a burst. */
  authFailures: number;
  windowMinutes: number;
  spike: SpikeOptions;
}

export const DEFAULT_ANOMALY: AnomalyOptions = {
  authFailures: 5,
  windowMinutes: 5,
  spike: DEFAULT_SPIKE,
};

export interface KeyScheduleOptions {
  policies: () => Promise<PolicySet>;
  db: Queryable;
  store: SecretStore;
  env: NodeJS.ProcessEnv;
  rotator: CredentialRotator;
  master: MasterKeyRotator;
  rotations: RotationLog;
  audit: KeyAudit;
  secrets: SecretValues;
  /** Sends an alert (the webhook); undefined: log only. */
  alert?: (alert: KeyAlert) => Promise<void>;
  /** The fingerprint of the key a caller sends (database mode: its virtual key); default: the master key's. */
  callerKeyFingerprint?: (caller: string) => string | undefined;
  anomaly?: AnomalyOptions;
  /** First retry after a failed scheduled rotation (doubling, at most 6 h). */
  retryBaseMs?: number;
  log: Logger;
  now?: () => Date;
}

interface Backoff {
  attempts: number;
  nextAt: number;
}

export class KeySchedule {
  private readonly backoff = new Map<string, Backoff>();
  /** Anomalies already acted on, until when (one alert per burst). */
  private readonly quiet = new Map<string, number>();
  private readonly now: () => Date;

  constructor(private readonly options: KeyScheduleOptions) {
    this.now = options.now ?? (() => new Date());
  }

  /** One run of the job: due rotations, then anomalies. */
  async run(): Promise<void> {
    const set = await this.options.policies();
    await this.dueRotations(set);
    await this.anomalies(set);
  }

  private async dueRotations(set: PolicySet): Promise<void> {
    const { options } = this;
    const now = this.now();
    for (const entry of credentialedProviders(set)) {
      const rotation = entry.value.rotation;
      if (!rotation?.rotate_every || !rotation.issue) continue;
      const subject = providerSubject(entry.name);
      if (!this.mayTry(subject, now)) continue;
      const latest = await options.rotations.latest(subject);
      if (
        latest &&
        (latest.state === 'started' || latest.state === 'live' || latest.state === 'retiring')
      )
        continue;
      const status = credentialStatus(entry, {
        env: options.env,
        store: options.store,
        latest,
        now,
      });
      if (!status.nextRotation || Date.parse(status.nextRotation) > now.getTime()) continue;
      await this.attempt(subject, 'schedule', async () => {
        const value = await this.issue(entry.name, rotation.issue!, subject);
        await options.rotator.rotate({
          provider: entry.name,
          value,
          actor: SCHEDULE_ACTOR,
          action: 'credential.rotate.scheduled',
        });
      });
    }
    const master = set.master_key?.value;
    const every = master?.rotate_every ? durationSeconds(master.rotate_every) : undefined;
    if (every !== undefined && this.mayTry(MASTER_SUBJECT, now)) {
      const latest = await options.rotations.latest(MASTER_SUBJECT);
      const since = latest?.startedAt ?? options.store.peek(MASTER_STORE_NAME)?.current.createdAt;
      const open = latest && ['started', 'live', 'retiring'].includes(latest.state);
      if (!open && (since === undefined || Date.parse(since) + every * 1000 <= now.getTime())) {
        await this.attempt(MASTER_SUBJECT, 'schedule', async () => {
          await options.master.rotate({ actor: SCHEDULE_ACTOR, action: 'master.rotate.scheduled' });
        });
      }
    }
  }

  /** Runs the provider's issue hook: its stdout (trimmed) is the new value. */
  private async issue(
    provider: string,
    command: string | readonly string[],
    subject: string,
  ): Promise<string> {
    const { options } = this;
    try {
      const value = (
        await runHook({
          what: `issue hook of provider "${provider}"`,
          command,
          env: { MODELCENTER_PROVIDER: provider },
          mask: (text) => options.secrets.mask(text),
        })
      ).trim();
      if (!value || /\s/.test(value)) throw new Error('it printed no single value on stdout');
      options.secrets.add(value);
      return value;
    } catch (error) {
      const message = options.secrets.mask(describeError(error));
      await options.audit.record({
        rotationId: newRotationId(),
        actor: SCHEDULE_ACTOR,
        action: 'credential.rotate.scheduled',
        subject,
        step: 'issue',
        outcome: 'failed',
        detail: message,
      });
      throw error;
    }
  }

  private mayTry(subject: string, now: Date): boolean {
    const backoff = this.backoff.get(subject);
    return !backoff || backoff.nextAt <= now.getTime();
  }

  /** Runs one rotation; a failure is logged, alerted and retried with backoff. */
  private async attempt(
    subject: string,
    trigger: 'schedule' | 'anomaly',
    work: () => Promise<void>,
  ): Promise<boolean> {
    try {
      await work();
      this.backoff.delete(subject);
      return true;
    } catch (error) {
      const message = this.options.secrets.mask(describeError(error));
      const attempts = (this.backoff.get(subject)?.attempts ?? 0) + 1;
      const delay = Math.min(
        6 * 3_600_000,
        (this.options.retryBaseMs ?? 60_000) * 2 ** (attempts - 1),
      );
      const nextAt = this.now().getTime() + delay;
      this.backoff.set(subject, { attempts, nextAt });
      await this.raise({
        type: 'key-rotation-failed',
        subject,
        trigger,
        error: message,
        attempt: attempts,
        retryAt: new Date(nextAt).toISOString(),
      });
      return false;
    }
  }

  private async anomalies(set: PolicySet): Promise<void> {
    const { options } = this;
    const settings = options.anomaly ?? DEFAULT_ANOMALY;
    const now = this.now();
    const since = new Date(now.getTime() - settings.windowMinutes * 60_000);
    const bursts = await options.db.query<{ provider: string; failures: string | number }>(
      `SELECT provider, count(*) AS failures FROM spend_requests
        WHERE status = 'failure' AND started_at >= $1 AND provider IS NOT NULL
          AND (error_code IN ('401', '403') OR error_class ILIKE '%authentication%')
        GROUP BY provider`,
      [since.toISOString()],
    );
    for (const burst of bursts) {
      const failures = Number(burst.failures);
      if (failures < settings.authFailures) continue;
      const entry = set.providers.get(burst.provider);
      if (!entry?.value.credential) continue;
      const subject = providerSubject(burst.provider);
      if (!this.quietOver(subject, now, settings.windowMinutes)) continue;
      const current = resolveCredential(entry.value.credential, options.env, options.store);
      const detail = `${failures} requests to provider "${burst.provider}" were refused (401/403) in the last ${settings.windowMinutes} minutes`;
      const base = {
        type: 'key-anomaly' as const,
        subject,
        kind: 'provider-auth-failures' as const,
        fingerprint: current.value ? fingerprint(current.value) : 'missing',
        detail,
      };
      const rotation = entry.value.rotation;
      if (rotation?.on_anomaly !== 'rotate' || !rotation.issue) {
        await this.raise({ ...base, action: 'alert' });
        continue;
      }
      let report: { rotationId: string; newFingerprint: string } | undefined;
      const ok = await this.attempt(subject, 'anomaly', async () => {
        const value = await this.issue(burst.provider, rotation.issue!, subject);
        report = await options.rotator.rotate({
          provider: burst.provider,
          value,
          now: true,
          actor: 'anomaly',
          action: 'credential.rotate.anomaly',
        });
      });
      await this.raise({
        ...base,
        action: ok ? 'rotated' : 'rotation-failed',
        ...(report && { rotationId: report.rotationId, newFingerprint: report.newFingerprint }),
      });
    }
    await this.callerSpikes(set, settings, now);
  }

  /**
   * Callers whose spend in the last hour is a spike against their trailing hourly mean: an alert
   * naming the key they send; with `master_key.on_anomaly: rotate` (callers share the master key
   * in configuration mode) the master key is rotated at once and the new one delivered.
   */
  private async callerSpikes(set: PolicySet, settings: AnomalyOptions, now: Date): Promise<void> {
    const { options } = this;
    const hourAgo = new Date(now.getTime() - 3_600_000);
    const from = new Date(hourAgo.getTime() - settings.spike.baselineHours * 3_600_000);
    const rows = await options.db.query<{ caller: string; recent: number; baseline: number }>(
      `SELECT caller,
              coalesce(sum(cost_usd) FILTER (WHERE started_at >= $2), 0) AS recent,
              coalesce(sum(cost_usd) FILTER (WHERE started_at < $2), 0) AS baseline
         FROM spend_requests
        WHERE started_at >= $1 AND caller IS NOT NULL AND caller <> ''
        GROUP BY caller`,
      [from.toISOString(), hourAgo.toISOString()],
    );
    for (const row of rows) {
      const mean = Number(row.baseline) / settings.spike.baselineHours;
      if (!isSpike(Number(row.recent), mean, settings.spike)) continue;
      const subject = `caller:${row.caller}`;
      if (!this.quietOver(subject, now, 60)) continue;
      const keyFingerprint =
        options.callerKeyFingerprint?.(row.caller) ?? fingerprint(options.master.current());
      const base = {
        type: 'key-anomaly' as const,
        subject,
        kind: 'caller-cost-spike' as const,
        fingerprint: keyFingerprint,
        detail: `caller "${row.caller}" spent ${Number(row.recent).toFixed(2)} USD in the last hour, ${settings.spike.factor}× or more its trailing mean of ${mean.toFixed(2)} USD per hour`,
      };
      const sharesMaster = options.callerKeyFingerprint?.(row.caller) === undefined;
      if (!sharesMaster || set.master_key?.value.on_anomaly !== 'rotate') {
        await this.raise({ ...base, action: 'alert' });
        continue;
      }
      let report: { rotationId: string; newFingerprint: string } | undefined;
      const ok = await this.attempt(MASTER_SUBJECT, 'anomaly', async () => {
        report = await options.master.rotate({
          now: true,
          actor: 'anomaly',
          action: 'master.rotate.anomaly',
        });
      });
      await this.raise({
        ...base,
        action: ok ? 'rotated' : 'rotation-failed',
        ...(report && { rotationId: report.rotationId, newFingerprint: report.newFingerprint }),
      });
    }
  }

  /** True once per `minutes` per subject: a burst is acted on once, not on every run. */
  private quietOver(subject: string, now: Date, minutes: number): boolean {
    const until = this.quiet.get(subject);
    if (until !== undefined && until > now.getTime()) return false;
    this.quiet.set(subject, now.getTime() + minutes * 60_000);
    return true;
  }

  private async raise(alert: KeyAlert): Promise<void> {
    const { options } = this;
    options.log.warn(
      { alert },
      alert.type === 'key-anomaly' ? 'key anomaly' : 'key rotation failed',
    );
    if (alert.type === 'key-anomaly') {
      await options.audit.record({
        rotationId: alert.rotationId ?? newRotationId(),
        actor: 'anomaly',
        action: 'anomaly.detect',
        subject: alert.subject,
        step: alert.kind,
        outcome: alert.action === 'rotation-failed' ? 'failed' : 'ok',
        fingerprints: {
          ...(/^[0-9a-f]{12}$/.test(alert.fingerprint) && { old: alert.fingerprint }),
          ...(alert.newFingerprint && { new: alert.newFingerprint }),
        },
        detail: `${alert.detail}; ${alert.action}`,
      });
    }
    await options
      .alert?.(alert)
      .catch((error: unknown) =>
        options.log.warn({ error: describeError(error) }, 'key alert not delivered'),
      );
  }
}
