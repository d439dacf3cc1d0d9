import { ApplyBusyError } from '../apply/lock.js';
import type { Logger } from '../log/logger.js';
import type { SecretValues } from '../log/redact.js';
import type { Entry, PolicySet } from '../policy/policy-set.js';
import type { Provider } from '../policy/schema.js';
import { resolveCredential, storeName } from '../secrets/references.js';
import type { SecretStore } from '../secrets/store.js';
import { durationSeconds } from '../shared/duration.js';
import { describeError, InputError, ModelCenterError } from '../shared/errors.js';
import { fingerprint, newRotationId, type AuditOutcome, type KeyAudit } from './audit.js';
import { DEFAULT_GRACE, providerSubject } from './credentials.js';
import { runHook } from './hooks.js';
import { probeCredential, ProbeError, type LiteLLMProbe } from './probe.js';
import type { Rotation, RotationLog } from './rotations.js';

/**
 * Rotating a provider's credential: probe → store → swap → canary → grace → retire.
 *
 * - probe: the new value against the provider (probe.ts); refused, nothing changes.
 * - store: the secret store keeps the new value as current and the old one as previous until
 *   the grace period ends (the store's write is atomic).
 * - swap: LiteLLM is made to use it, through a `CredentialSwap` — configuration mode reloads
 *   through the reload strategy with the new environment (blue-green: zero failed requests);
 *   database mode may `PATCH /credentials/{name}` instead (the seam is `CredentialSwap`).
 * - canary: one request through LiteLLM to a model of that provider. A failed swap or canary
 *   restores the old value (and swaps back): never half-applied.
 * - grace: the old value stays valid at the provider (a rollback can bring it back); then the
 *   retire step runs the policy's `retire` hook once (claimed in the database: once also across
 *   restarts and controllers) and drops the old value from the store.
 *
 * Every step is audited with fingerprints; no value ever leaves this module except on a hook's
 * stdin and in LiteLLM's environment.
 */

/** Makes LiteLLM use the value the store now holds for a credential. */
export interface CredentialSwap {
  /** For audit and status: `reload:blue-green`, `credentials-api`, … */
  readonly name: string;
  /** Resolves once every instance uses the stored value; throws a message naming what failed. */
  swap(credential: SwapTarget): Promise<void>;
}

export interface SwapTarget {
  provider: string;
  /** `env:NAME` or `secret:name`. */
  reference: string;
  /** The environment variable LiteLLM reads it from. */
  variable: string;
  /** The value the store holds now (database mode writes it to LiteLLM's credential). */
  value: string;
}

/**
 * A swap that failed after LiteLLM already took the new value (database mode: the PATCH went
 * through, a check after it failed): the rollback swaps the old value back in.
 */
export class PartialSwapError extends ModelCenterError {}

/** One request through LiteLLM that only this provider can answer; throws when it fails. */
export type Canary = (provider: string, set: PolicySet) => Promise<CanaryResult>;
export type CanaryResult =
  { outcome: 'ok'; model: string } | { outcome: 'skipped'; reason: string };

export interface RotateRequest {
  provider: string;
  value: string;
  /** A duration (`1h`); default: the policy's `rotation.grace`, else 1h. */
  grace?: string;
  /** Compromised: no grace, the old value is retired right after the swap. */
  now?: boolean;
  actor: string;
  /** `credential.rotate` (asked for), `credential.rotate.scheduled`, `credential.rotate.anomaly`. */
  action?: string;
}

export interface RotationReport {
  rotationId: string;
  provider: string;
  state: Rotation['state'];
  oldFingerprint?: string;
  newFingerprint: string;
  probe: { endpoint: string; status: number };
  swap: string;
  canary: CanaryResult;
  graceUntil?: string;
  /** Whether the old value was retired already (`--now`). */
  retired: boolean;
}

/** A rotation could not finish: what failed; the old value serves (it was restored). */
export class RotationError extends ModelCenterError {
  constructor(
    message: string,
    readonly rotationId: string,
    readonly step: string,
    /** Nothing was tried: another apply held the lock (the API answers 409: try again). */
    readonly busy = false,
  ) {
    super(message);
  }
}

export interface CredentialRotatorOptions {
  policies: () => Promise<PolicySet>;
  store: SecretStore;
  audit: KeyAudit;
  rotations: RotationLog;
  secrets: SecretValues;
  env: NodeJS.ProcessEnv;
  /** The swap for the running strategy; undefined while LiteLLM is not started. */
  swap: () => CredentialSwap | undefined;
  canary: Canary;
  /** LiteLLM to probe through, for kinds without a model list. */
  litellmProbe?: (provider: Entry<Provider>) => LiteLLMProbe | undefined;
  log: Logger;
  now?: () => Date;
  /** Retire hooks failing are retried after this (doubling, at most an hour). */
  retireBackoffMs?: number;
}

const ACTION = 'credential.rotate';

export class CredentialRotator {
  private readonly busy = new Set<string>();
  private readonly now: () => Date;

  constructor(private readonly options: CredentialRotatorOptions) {
    this.now = options.now ?? (() => new Date());
  }

  /** Rotates one provider's credential; see the module comment for the steps. */
  async rotate(request: RotateRequest): Promise<RotationReport> {
    const { options } = this;
    const set = await options.policies();
    const entry = set.providers.get(request.provider);
    if (!entry) {
      throw new InputError(
        `no provider "${request.provider}" in the policies — known: ${[...set.providers.keys()].join(', ') || 'none'}`,
        { status: 404, field: 'provider' },
      );
    }
    const reference = entry.value.credential;
    if (!reference) {
      throw new InputError(
        `provider "${request.provider}" has no credential to rotate — add credential: env:NAME or secret:name to it`,
        { field: 'provider' },
      );
    }
    const graceText = request.grace ?? entry.value.rotation?.grace ?? DEFAULT_GRACE;
    const graceSeconds = durationSeconds(graceText);
    if (graceSeconds === undefined) {
      throw new InputError(`grace "${graceText}" is not a duration — write e.g. 30m, 1h or 1d`, {
        field: 'grace',
      });
    }
    const value = request.value.trim();
    if (value.length < 8 || /\s/.test(value)) {
      throw new InputError(
        'the new value is empty, shorter than 8 characters or contains whitespace — pass the key alone',
        { field: 'value' },
      );
    }
    const subject = providerSubject(request.provider);
    if (this.busy.has(subject)) {
      throw new InputError(`a rotation of ${subject} is running — wait for it to finish`, {
        status: 409,
        code: 'busy',
      });
    }
    this.busy.add(subject);
    try {
      return await this.rotateLocked(request, entry, reference, value, graceSeconds, set);
    } finally {
      this.busy.delete(subject);
    }
  }

  private async rotateLocked(
    request: RotateRequest,
    entry: Entry<Provider>,
    reference: string,
    value: string,
    graceSeconds: number,
    set: PolicySet,
  ): Promise<RotationReport> {
    const { options } = this;
    options.secrets.add(value); // from now on masked wherever it might appear
    const subject = providerSubject(request.provider);
    const current = resolveCredential(reference, options.env, options.store);
    const oldValue = current.value;
    const fingerprints = {
      ...(oldValue !== undefined && { old: fingerprint(oldValue) }),
      new: fingerprint(value),
    };
    if (oldValue === value) {
      throw new InputError(
        `the new value of provider "${request.provider}" is the one in use (fingerprint ${fingerprints.new}) — nothing to rotate`,
        { status: 409, code: 'unchanged', field: 'value' },
      );
    }
    const rotationId = newRotationId();
    const action = request.action ?? ACTION;
    const step = (name: string, outcome: AuditOutcome, detail?: string): Promise<unknown> =>
      options.audit.record({
        rotationId,
        actor: request.actor,
        action,
        subject,
        step: name,
        outcome,
        fingerprints,
        ...(detail !== undefined && { detail }),
      });

    // An earlier rotation still in its grace period holds the value before the current one.
    const pending = (await options.rotations.open('credential')).filter(
      (r) => r.subject === subject,
    );
    if (pending.some((r) => r.state === 'started' || r.state === 'retiring')) {
      throw new InputError(`a rotation of ${subject} is under way — wait for it to finish`, {
        status: 409,
        code: 'busy',
      });
    }
    if (pending.length > 0 && !request.now) {
      const until = pending[0]!.graceUntil;
      throw new InputError(
        `the previous rotation of ${subject} (${pending[0]!.id}) keeps the value before it until ${until ?? 'its grace ends'} — wait until then, or rotate with --now (compromised) to retire it at once`,
        { status: 409, code: 'in_grace' },
      );
    }

    await options.rotations.create({
      id: rotationId,
      kind: 'credential',
      subject,
      actor: request.actor,
      ...(fingerprints.old && { oldFingerprint: fingerprints.old }),
      newFingerprint: fingerprints.new,
      data: { provider: request.provider, reference, oldSource: current.source },
    });

    // 1. Probe: refused → nothing changed.
    let probe;
    try {
      probe = await probeCredential({ name: request.provider, provider: entry.value }, value, {
        litellm: () => options.litellmProbe?.(entry),
      });
    } catch (error) {
      const message =
        error instanceof ProbeError ? error.message : `probe failed: ${describeError(error)}`;
      await step('probe', 'failed', message);
      await options.rotations.update(rotationId, { state: 'failed', data: { failedAt: 'probe' } });
      throw new RotationError(options.secrets.mask(message), rotationId, 'probe');
    }
    await step('probe', 'ok', `${probe.endpoint} answered ${probe.status}`);

    const swap = options.swap();
    if (!swap) {
      await step('swap', 'failed', 'LiteLLM is not running');
      await options.rotations.update(rotationId, { state: 'failed', data: { failedAt: 'swap' } });
      throw new RotationError(
        'LiteLLM is not running, so the new credential cannot be swapped in — nothing was changed',
        rotationId,
        'swap',
      );
    }

    // Compromised values retire at once; the earlier rotation's old value goes first.
    if (request.now) {
      for (const earlier of pending) await this.retire(earlier, { early: true });
    }

    // 2. Store: the new value current, the old one previous until the grace ends (it starts
    // once the new value is live: moved after the canary).
    const graceMs = request.now ? 0 : graceSeconds * 1000;
    const name = storeName(reference);
    await options.store.put(name, value, {
      keepPreviousUntil: new Date(this.now().getTime() + graceMs),
      ...(current.source === 'env' && oldValue !== undefined && { replacing: oldValue }),
    });
    await step('store', 'ok', `${options.store.backend}: ${name}`);

    // 3. Swap, 4. canary: a failure restores the old value.
    const target = { provider: request.provider, reference, variable: current.variable, value };
    let canary: CanaryResult;
    try {
      await swap.swap(target);
      await step('swap', 'ok', swap.name);
    } catch (error) {
      const message = options.secrets.mask(describeError(error));
      await step('swap', 'failed', message);
      const applied = error instanceof PartialSwapError;
      await this.restore(rotationId, reference, current.source, step, swap, applied);
      throw new RotationError(
        `the new credential of provider "${request.provider}" could not be swapped in (${message}) — the old value was kept and serves`,
        rotationId,
        'swap',
        error instanceof ApplyBusyError,
      );
    }
    try {
      canary = await options.canary(request.provider, set);
      await step(
        'canary',
        canary.outcome === 'ok' ? 'ok' : 'skipped',
        canary.outcome === 'ok' ? `model ${canary.model}` : canary.reason,
      );
    } catch (error) {
      const message = options.secrets.mask(describeError(error));
      await step('canary', 'failed', message);
      await this.restore(rotationId, reference, current.source, step, swap, true);
      throw new RotationError(
        `the canary request through LiteLLM failed with the new credential of provider "${request.provider}" (${message}) — the old value was restored and serves`,
        rotationId,
        'canary',
      );
    }

    // 5. Grace, from now: the new value is live.
    const graceUntil = new Date(this.now().getTime() + graceMs);
    await options.store.setPreviousExpiry(name, graceUntil);
    await options.rotations.update(rotationId, { state: 'live', graceUntil });
    await step('grace', 'ok', `old value kept until ${graceUntil.toISOString()}`);
    options.log.info(
      {
        rotationId,
        provider: request.provider,
        fingerprints,
        graceUntil: graceUntil.toISOString(),
      },
      'credential rotated',
    );
    let retired = false;
    if (request.now) {
      const live = await options.rotations.get(rotationId);
      if (live) retired = await this.retire(live, { early: true });
    }
    return {
      rotationId,
      provider: request.provider,
      state: retired ? 'retired' : 'live',
      ...(fingerprints.old && { oldFingerprint: fingerprints.old }),
      newFingerprint: fingerprints.new,
      probe,
      swap: swap.name,
      canary,
      ...(!retired && { graceUntil: graceUntil.toISOString() }),
      retired,
    };
  }

  /** Puts the old value back after a failed swap or canary, and swaps back when it had swapped. */
  private async restore(
    rotationId: string,
    reference: string,
    oldSource: string,
    step: (name: string, outcome: AuditOutcome, detail?: string) => Promise<unknown>,
    swap: CredentialSwap,
    swapped: boolean,
  ): Promise<void> {
    const { options } = this;
    const name = storeName(reference);
    try {
      if (oldSource === 'store') await options.store.restorePrevious(name);
      else await options.store.delete(name); // the environment's value is the old one again
      const restored = resolveCredential(reference, options.env, options.store);
      if (swapped && restored.value !== undefined) {
        await swap.swap({
          provider: reference,
          reference,
          variable: restored.variable,
          value: restored.value,
        });
      }
      await step('rollback', 'ok', 'the old value serves');
      await options.rotations.update(rotationId, { state: 'rolled-back' });
    } catch (error) {
      const message = options.secrets.mask(describeError(error));
      await step('rollback', 'failed', message);
      await options.rotations.update(rotationId, { state: 'failed', data: { rollback: message } });
      options.log.error({ rotationId, error: message }, 'restoring the old credential failed');
    }
  }

  /**
   * Rolls a rotation in its grace period back: the old value current again, swapped in. Refused
   * once the old value was retired.
   */
  async rollback(provider: string, actor: string): Promise<Rotation> {
    const subject = providerSubject(provider);
    const live = (await this.options.rotations.open('credential')).find(
      (r) => r.subject === subject && r.state === 'live',
    );
    if (!live) {
      throw new InputError(
        `no rotation of ${subject} is in its grace period — only a rotation whose old value was not retired yet can be rolled back`,
        { status: 409, code: 'nothing_to_roll_back' },
      );
    }
    const reference = dataText(live.data.reference);
    const swap = this.options.swap();
    if (!swap) throw new ModelCenterError('LiteLLM is not running: nothing to roll back on');
    const step = (name: string, outcome: AuditOutcome, detail?: string): Promise<unknown> =>
      this.options.audit.record({
        rotationId: live.id,
        actor,
        action: 'credential.rollback',
        subject,
        step: name,
        outcome,
        fingerprints: {
          ...(live.oldFingerprint && { old: live.oldFingerprint }),
          ...(live.newFingerprint && { new: live.newFingerprint }),
        },
        ...(detail !== undefined && { detail }),
      });
    await this.restore(live.id, reference, dataText(live.data.oldSource), step, swap, true);
    return (await this.options.rotations.get(live.id)) ?? live;
  }

  /** Retires every rotation whose grace period ended; returns how many retired. */
  async retireDue(): Promise<number> {
    const now = this.now().getTime();
    let retired = 0;
    for (const rotation of await this.options.rotations.open('credential')) {
      if (rotation.state !== 'live' || !rotation.graceUntil) continue;
      if (Date.parse(rotation.graceUntil) > now) continue;
      const nextTry = rotation.data.nextRetireAt;
      if (typeof nextTry === 'string' && Date.parse(nextTry) > now) continue;
      if (await this.retire(rotation, { early: false })) retired += 1;
    }
    return retired;
  }

  /**
   * The retire step of one rotation: claimed in the database first (so it runs once), then the
   * policy's retire hook with the old value on stdin and its fingerprint as argument, then the
   * old value dropped from the store. A failing hook is audited, alerted and retried with backoff.
   */
  private async retire(rotation: Rotation, how: { early: boolean }): Promise<boolean> {
    const { options } = this;
    if (!(await options.rotations.claimRetire(rotation.id))) return false;
    const provider = dataText(rotation.data.provider) || rotation.subject.replace(/^provider:/, '');
    const reference = dataText(rotation.data.reference);
    const fingerprints = {
      ...(rotation.oldFingerprint && { old: rotation.oldFingerprint }),
      ...(rotation.newFingerprint && { new: rotation.newFingerprint }),
    };
    const record = (outcome: AuditOutcome, detail: string): Promise<unknown> =>
      options.audit.record({
        rotationId: rotation.id,
        actor: rotation.actor,
        action: ACTION,
        subject: rotation.subject,
        step: 'retire',
        outcome,
        fingerprints,
        detail,
      });
    const stored = options.store.peek(storeName(reference));
    const oldValue =
      stored?.previous && rotation.oldFingerprint === fingerprint(stored.previous.value)
        ? stored.previous.value
        : undefined;
    try {
      const set = await options.policies();
      const hook = set.providers.get(provider)?.value.rotation?.retire;
      if (hook && oldValue !== undefined) {
        await runHook({
          what: `retire hook of provider "${provider}"`,
          command: hook,
          args: [rotation.oldFingerprint ?? ''],
          env: {
            MODELCENTER_OLD_FINGERPRINT: rotation.oldFingerprint ?? '',
            MODELCENTER_PROVIDER: provider,
            MODELCENTER_ROTATION_ID: rotation.id,
          },
          stdin: `${oldValue}\n`,
          mask: (text) => options.secrets.mask(text),
        });
      }
      if (stored?.previous && oldValue !== undefined)
        await options.store.dropPrevious(storeName(reference));
      await options.rotations.markRetired(rotation.id, this.now());
      await record(
        'ok',
        `${how.early ? 'retired at once' : 'grace ended'}; ${hook ? (oldValue !== undefined ? 'retire hook ran' : 'no old value kept, hook not run') : 'no retire hook in the policy'}`,
      );
      options.log.info(
        { rotationId: rotation.id, provider, fingerprints },
        'old credential retired',
      );
      return true;
    } catch (error) {
      const message = options.secrets.mask(describeError(error));
      const attempts = Number(rotation.data.retireAttempts ?? 0) + 1;
      const delay = Math.min(3_600_000, (options.retireBackoffMs ?? 30_000) * 2 ** (attempts - 1));
      await options.rotations.releaseRetire(rotation.id, {
        retireAttempts: attempts,
        nextRetireAt: new Date(this.now().getTime() + delay).toISOString(),
        lastRetireError: message,
      });
      await record(
        'failed',
        `${message} (attempt ${attempts}, retried in ${Math.round(delay / 1000)} s)`,
      );
      options.log.error(
        { rotationId: rotation.id, provider, error: message, attempts },
        'retiring the old credential failed; retrying',
      );
      return false;
    }
  }

  /**
   * On start: a rotation interrupted before its grace is decided by what the store holds (the new
   * value stored → it serves from this start on, live; else it never happened, failed); one whose
   * retire step was interrupted is retried (its hook may run again: make it idempotent).
   */
  async resume(actor: string): Promise<void> {
    const { options } = this;
    for (const rotation of await options.rotations.open('credential')) {
      const reference = dataText(rotation.data.reference);
      if (rotation.state === 'retiring') {
        await options.rotations.releaseRetire(rotation.id, { resumedRetire: true });
        continue;
      }
      if (rotation.state !== 'started') continue;
      const current = resolveCredential(reference, options.env, options.store);
      const stored =
        current.value !== undefined && fingerprint(current.value) === rotation.newFingerprint;
      const graceUntil = options.store.peek(storeName(reference))?.previous?.expiresAt;
      await options.rotations.update(
        rotation.id,
        stored
          ? { state: 'live', graceUntil: graceUntil ? new Date(graceUntil) : this.now() }
          : { state: 'failed', data: { failedAt: 'interrupted' } },
      );
      await options.audit.record({
        rotationId: rotation.id,
        actor,
        action: ACTION,
        subject: rotation.subject,
        step: 'resume',
        outcome: stored ? 'ok' : 'skipped',
        fingerprints: {
          ...(rotation.oldFingerprint && { old: rotation.oldFingerprint }),
          ...(rotation.newFingerprint && { new: rotation.newFingerprint }),
        },
        detail: stored
          ? 'interrupted after the new value was stored: it serves from this start on'
          : 'interrupted before the new value was stored: nothing changed',
      });
    }
  }
}

/** A text field of a rotation's data ('' when missing). */
function dataText(value: unknown): string {
  return typeof value === 'string' ? value : '';
}
