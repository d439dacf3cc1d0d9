import { ApplyBusyError } from '../apply/lock.js';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import type { SecretValues } from '../log/redact.js';
import type { PolicySet } from '../policy/policy-set.js';
import { FRONT_KEY_PATTERN, type KeyAlias } from '../reload/nginx.js';
import type { SecretStore } from '../secrets/store.js';
import { durationSeconds } from '../shared/duration.js';
import { describeError, InputError, ModelCenterError } from '../shared/errors.js';
import { fingerprint, newRotationId, type AuditOutcome, type KeyAudit } from './audit.js';
import { DEFAULT_GRACE } from './credentials.js';
import { deliverKey, deliveryName, deliveryPending, readDeliveryOnce } from './delivery.js';
import type { LiveLiteLLM } from './live.js';
import type { Rotation, RotationLog } from './rotations.js';

/**
 * Rotating LiteLLM's master key in configuration mode (no database: the master key is the only
 * key clients have). The new key is stored, goes live through the reload strategy (the new
 * LiteLLM starts with it), is delivered (hook, 0600 file, one API read), and for the grace period
 * the blue-green front maps the old key to the new one (an nginx `map` of the Authorization and
 * x-api-key headers), so no client fails before the grace ends; after it the map is removed and
 * the old key is refused. The restart strategy has no front: there the old key stops at once,
 * so only `now` (compromised) is allowed. Database mode (`/key/regenerate` with `new_master_key`,
 * then the reload) is the seam `MasterKeySwap`.
 */

export const MASTER_SUBJECT = 'master-key';
/** The store name of the rotated master key. */
export const MASTER_STORE_NAME = 'master-key';
const ACTION = 'master.rotate';

export interface MasterRotateRequest {
  /** The new key; generated (`sk-` and 64 hex characters) when not given. */
  value?: string;
  grace?: string;
  now?: boolean;
  actor: string;
  action?: string;
}

export interface MasterRotationReport {
  rotationId: string;
  oldFingerprint: string;
  newFingerprint: string;
  swap: string;
  delivered: string[];
  deliveryFailed: string[];
  graceUntil?: string;
  retired: boolean;
}

export class MasterRotationError extends ModelCenterError {
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

/**
 * How the new master key goes live for a strategy other than restart/blue-green (database mode
 * fills it in: `/key/regenerate` with `new_master_key`, then the reload). Throws when it cannot.
 */
export interface MasterKeySwap {
  readonly name: string;
  /** Refuses (throws an InputError) before anything is stored or changed. */
  precheck?(newKey: string): void;
  swap(change: {
    oldKey: string;
    newKey: string;
    live: LiveLiteLLM;
    /** How long the old key must keep working (0: refused at once). */
    graceSeconds: number;
  }): Promise<void>;
}

export interface MasterKeyRotatorOptions {
  store: SecretStore;
  audit: KeyAudit;
  rotations: RotationLog;
  secrets: SecretValues;
  /** The master key the controller started with (LITELLM_MASTER_KEY, or the generated one). */
  initial: string;
  live: () => LiveLiteLLM | undefined;
  policies: () => Promise<PolicySet>;
  /** Where relative delivery files resolve (the policies' directory). */
  baseDir: string;
  /** For strategies other than restart and blue-green (database mode). */
  swap?: MasterKeySwap;
  log: Logger;
  now?: () => Date;
}

export class MasterKeyRotator {
  private running = false;
  private readonly now: () => Date;

  constructor(private readonly options: MasterKeyRotatorOptions) {
    this.now = options.now ?? (() => new Date());
  }

  /** The master key LiteLLM uses now: the rotated one, else the one the controller started with. */
  current(): string {
    return this.options.store.peek(MASTER_STORE_NAME)?.current.value ?? this.options.initial;
  }

  /** The old key the front still accepts (mapped to the current one) while a rotation is in grace. */
  aliases(): KeyAlias[] {
    const stored = this.options.store.peek(MASTER_STORE_NAME);
    if (!stored?.previous) return [];
    return [{ from: stored.previous.value, to: stored.current.value }];
  }

  async rotate(request: MasterRotateRequest): Promise<MasterRotationReport> {
    if (this.running) {
      throw new InputError('a master key rotation is running — wait for it to finish', {
        status: 409,
        code: 'busy',
      });
    }
    this.running = true;
    try {
      return await this.rotateLocked(request);
    } finally {
      this.running = false;
    }
  }

  private async rotateLocked(request: MasterRotateRequest): Promise<MasterRotationReport> {
    const { options } = this;
    const live = options.live();
    if (!live) throw new ModelCenterError('LiteLLM is not running: the master key cannot go live');
    const strategy = live.strategy.name;
    const set = await options.policies();
    const policy = set.master_key?.value;
    const graceText = request.grace ?? policy?.grace ?? DEFAULT_GRACE;
    const graceSeconds = durationSeconds(graceText);
    if (graceSeconds === undefined) {
      throw new InputError(`grace "${graceText}" is not a duration — write e.g. 30m, 1h or 1d`, {
        field: 'grace',
      });
    }
    const startsLiteLLM = 'process' in live.strategy; // not admin-api, not a restart command
    if (!startsLiteLLM && !options.swap) {
      throw new InputError(
        `the ${strategy} strategy serves LiteLLM instances Model Center does not start, so it cannot give them a new master key — rotate it where they are configured (database mode: /key/regenerate); nothing was changed`,
        { status: 409, code: 'not_configuration_mode' },
      );
    }
    if (strategy === 'restart' && startsLiteLLM && !request.now) {
      throw new InputError(
        'the restart strategy has no front that could accept the old master key during a grace period: clients would fail at once — use blue-green (nginx), or rotate with --now (compromised)',
        { status: 409, code: 'no_grace_possible' },
      );
    }
    if (strategy !== 'restart' && strategy !== 'blue-green' && !options.swap) {
      throw new InputError(
        `the ${strategy} strategy serves LiteLLM instances Model Center does not start: their master key is rotated in database mode (/key/regenerate), not configured here`,
        { status: 409, code: 'not_configuration_mode' },
      );
    }
    const value = request.value?.trim() ?? `sk-${randomBytes(32).toString('hex')}`;
    if (!FRONT_KEY_PATTERN.test(value)) {
      throw new InputError(
        'the new master key must be 8 to 512 characters of letters, digits and . _ ~ + / = -',
        { field: 'value' },
      );
    }
    options.secrets.add(value);
    const oldKey = this.current();
    if (oldKey === value) {
      throw new InputError('the new master key is the one in use — nothing to rotate', {
        status: 409,
        code: 'unchanged',
      });
    }
    if (!request.now && strategy === 'blue-green' && !FRONT_KEY_PATTERN.test(oldKey)) {
      throw new InputError(
        'the current master key has characters the nginx front cannot match on (only letters, digits and . _ ~ + / = -), so it could not accept it during a grace period — rotate with --now',
        { status: 409, code: 'no_grace_possible' },
      );
    }
    const usesSwap = options.swap && strategy !== 'restart' && strategy !== 'blue-green';
    if (usesSwap) options.swap!.precheck?.(value);
    const open = (await options.rotations.open('master')).filter((r) => r.state !== 'retired');
    if (open.length > 0 && !request.now) {
      throw new InputError(
        `the previous master key rotation (${open[0]!.id}) keeps the key before it valid until ${open[0]!.graceUntil ?? 'its grace ends'} — wait until then, or rotate with --now`,
        { status: 409, code: 'in_grace' },
      );
    }
    for (const earlier of open) if (earlier.state === 'live') await this.retire(earlier, true);

    const rotationId = newRotationId();
    const fingerprints = { old: fingerprint(oldKey), new: fingerprint(value) };
    const action = request.action ?? ACTION;
    const step = (name: string, outcome: AuditOutcome, detail?: string): Promise<unknown> =>
      options.audit.record({
        rotationId,
        actor: request.actor,
        action,
        subject: MASTER_SUBJECT,
        step: name,
        outcome,
        fingerprints,
        ...(detail !== undefined && { detail }),
      });
    await options.rotations.create({
      id: rotationId,
      kind: 'master',
      subject: MASTER_SUBJECT,
      actor: request.actor,
      oldFingerprint: fingerprints.old,
      newFingerprint: fingerprints.new,
      data: { strategy, generated: request.value === undefined },
    });
    const graceMs = request.now ? 0 : graceSeconds * 1000;
    const wasStored = options.store.peek(MASTER_STORE_NAME) !== undefined;
    await options.store.put(MASTER_STORE_NAME, value, {
      ...(!request.now && { keepPreviousUntil: new Date(this.now().getTime() + graceMs) }),
      ...(!wasStored && { replacing: oldKey }),
    });
    await step('store', 'ok', `${options.store.backend}: ${MASTER_STORE_NAME}`);

    // Live through the reload strategy: the new LiteLLM starts with the new key; the front's
    // config written at the switch maps the old key to it.
    const swapName =
      options.swap && strategy !== 'restart' && strategy !== 'blue-green'
        ? options.swap.name
        : `reload:${strategy}`;
    try {
      if (options.swap && strategy !== 'restart' && strategy !== 'blue-green') {
        await options.swap.swap({
          oldKey,
          newKey: value,
          live,
          graceSeconds: request.now ? 0 : graceSeconds,
        });
      } else {
        const report = await live.reload('master-key-rotation');
        if (report.outcome !== 'applied' && report.outcome !== 'unchanged') {
          throw new ModelCenterError(
            `the reload with the new master key ended ${report.outcome}: ${report.problems.join('; ') || 'no details'}`,
          );
        }
      }
      await step('swap', 'ok', swapName);
    } catch (error) {
      const message = options.secrets.mask(describeError(error));
      await step('swap', 'failed', message);
      if (wasStored && options.store.peek(MASTER_STORE_NAME)?.previous)
        await options.store.restorePrevious(MASTER_STORE_NAME);
      else if (wasStored) await options.store.put(MASTER_STORE_NAME, oldKey);
      else await options.store.delete(MASTER_STORE_NAME);
      await options.rotations.update(rotationId, { state: 'failed', data: { failedAt: 'swap' } });
      throw new MasterRotationError(
        `the new master key could not go live (${message}) — the old key was kept`,
        rotationId,
        'swap',
        error instanceof ApplyBusyError,
      );
    }

    const delivered = await deliverKey({
      subject: MASTER_SUBJECT,
      value,
      rotationId,
      delivery: policy?.deliver,
      store: options.store,
      baseDir: options.baseDir,
      mask: (text) => options.secrets.mask(text),
    });
    await step(
      'deliver',
      delivered.failed.length > 0 ? 'failed' : 'ok',
      [...delivered.channels, ...delivered.failed.map((f) => `failed ${f}`)].join('; '),
    );
    // The grace period starts now: the new key is live and delivered.
    const graceUntil = new Date(this.now().getTime() + graceMs);
    if (!request.now) await options.store.setPreviousExpiry(MASTER_STORE_NAME, graceUntil);
    await options.rotations.update(rotationId, { state: 'live', graceUntil });
    await step(
      'grace',
      'ok',
      request.now
        ? 'no grace: the old key is refused now'
        : `the old key works until ${graceUntil.toISOString()}`,
    );
    let retired = false;
    if (request.now) {
      const rotation = await options.rotations.get(rotationId);
      if (rotation) retired = await this.retire(rotation, true);
    }
    options.log.info({ rotationId, fingerprints, strategy }, 'master key rotated');
    return {
      rotationId,
      oldFingerprint: fingerprints.old,
      newFingerprint: fingerprints.new,
      swap: swapName,
      delivered: delivered.channels,
      deliveryFailed: delivered.failed,
      ...(!retired && { graceUntil: graceUntil.toISOString() }),
      retired,
    };
  }

  /** The new master key, once, for the client that reads it (then it is gone). */
  readDelivery(): Promise<string | undefined> {
    return readDeliveryOnce(this.options.store, MASTER_SUBJECT);
  }

  /** Whether a new master key waits to be read, without reading it. */
  deliveryPending(): Promise<boolean> {
    return deliveryPending(this.options.store, MASTER_SUBJECT);
  }

  /**
   * At start, before LiteLLM runs: a rotation interrupted before it went live is decided by what
   * the store holds (the new key stored: it starts now, live until its grace ends; else failed);
   * an interrupted retire step runs again. Then grace periods that ended are retired.
   */
  async resume(): Promise<void> {
    const { rotations, store } = this.options;
    for (const rotation of await rotations.open('master')) {
      if (rotation.state === 'retiring') {
        await rotations.releaseRetire(rotation.id, { resumedRetire: true });
      } else if (rotation.state === 'started') {
        const stored = store.peek(MASTER_STORE_NAME);
        const live =
          stored !== undefined && fingerprint(stored.current.value) === rotation.newFingerprint;
        const expires = stored?.previous?.expiresAt;
        await rotations.update(
          rotation.id,
          live
            ? { state: 'live', graceUntil: expires ? new Date(expires) : this.now() }
            : { state: 'failed', data: { failedAt: 'interrupted' } },
        );
      }
    }
    await this.retireDue();
  }

  /** Retires master rotations whose grace period ended. */
  async retireDue(): Promise<number> {
    const now = this.now().getTime();
    let count = 0;
    for (const rotation of await this.options.rotations.open('master')) {
      if (rotation.state !== 'live') continue;
      if (!rotation.graceUntil || Date.parse(rotation.graceUntil) > now) continue;
      if (await this.retire(rotation, false)) count += 1;
    }
    return count;
  }

  /** Ends a grace period: the old key dropped from the store and from the front's map. */
  private async retire(rotation: Rotation, early: boolean): Promise<boolean> {
    const { options } = this;
    if (!(await options.rotations.claimRetire(rotation.id))) return false;
    try {
      await options.store.dropPrevious(MASTER_STORE_NAME);
      await options.store.delete(deliveryName(MASTER_SUBJECT)).catch(() => undefined);
      const strategy = options.live()?.strategy as
        { refreshFront?: () => Promise<void> } | undefined;
      await strategy?.refreshFront?.();
      await options.rotations.markRetired(rotation.id, this.now());
      await options.audit.record({
        rotationId: rotation.id,
        actor: rotation.actor,
        action: ACTION,
        subject: MASTER_SUBJECT,
        step: 'retire',
        outcome: 'ok',
        fingerprints: {
          ...(rotation.oldFingerprint && { old: rotation.oldFingerprint }),
          ...(rotation.newFingerprint && { new: rotation.newFingerprint }),
        },
        detail: early ? 'the old key is refused at once' : 'grace ended: the old key is refused',
      });
      return true;
    } catch (error) {
      const message = options.secrets.mask(describeError(error));
      await options.rotations.releaseRetire(rotation.id, { lastRetireError: message });
      options.log.error(
        { rotationId: rotation.id, error: message },
        'retiring the old master key failed; retrying',
      );
      return false;
    }
  }
}
