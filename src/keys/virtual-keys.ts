import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import type { PolicySet } from '../policy/policy-set.js';
import type { Caller } from '../policy/schema.js';
import { durationSeconds } from '../shared/duration.js';
import { describeError, ModelCenterError } from '../shared/errors.js';
import { writeFileAtomically } from '../shared/fs.js';
import { FINGERPRINT_LENGTH, newRotationId } from './audit.js';
import { tokenOf, type KeyFields, type KeyInfo, type LiteLLMKeyClient } from './key-client.js';
import { RotationJournal, type Rotation } from './rotation-journal.js';

/**
 * One LiteLLM virtual key per caller that declares `callers.<id>.key` (database mode; DESIGN §6,
 * litellm-facts §10.2). Keys are made from the policies (the caller's profiles as `models`, its
 * budget and duration, `key_alias` = the caller, `metadata.caller`), changed when the policies
 * change, reported as drift when changed by hand, and rotated: generate new → deliver → grace →
 * delete old, every step recorded first (rotation-journal.ts) so a crash or a retry converges.
 */

export class KeyPolicyError extends ModelCenterError {}
export class UnknownCallerError extends ModelCenterError {}

/** A key event for the audit trail and the alerts: never a value, only fingerprints. */
export interface KeyEvent {
  action: string;
  caller: string;
  by: string;
  outcome: 'ok' | 'failed' | 'warning';
  rotation?: string;
  fingerprint?: string;
  oldFingerprint?: string;
  detail?: string;
}

export interface VirtualKeysOptions {
  client: LiteLLMKeyClient;
  /** Where rotation records live (state directory). */
  journalDir: string;
  /** `/key/regenerate` with grace_period instead of generate → grace → delete (Enterprise licence). */
  useRegenerate?: boolean;
  /** Warn this long before a key expires (default: 7 days, at most a fifth of its duration). */
  expiryWarningSeconds?: number;
  onEvent?: (event: KeyEvent) => void | Promise<void>;
  now?: () => Date;
}

/** What the policies want for one caller's key. */
export interface CallerKey {
  caller: string;
  fields: KeyFields;
  rotateEverySeconds?: number;
  graceSeconds: number;
  durationSeconds?: number;
  deliver: { command?: string; file?: string };
}

/** Default grace when the policy names none. */
const DEFAULT_GRACE_SECONDS = 3600;
/** Marks Model Center leaves in a key's metadata. */
const MARK = 'modelcenter_sha256';
const ROTATION = 'modelcenter_rotation';

/**
 * A key's fingerprint from its LiteLLM token: the token is the SHA-256 of the value, so its head
 * is `fingerprint(value)` of the audit trail (src/keys/audit.ts).
 */
export function keyFingerprint(token: string): string {
  return token.slice(0, FINGERPRINT_LENGTH);
}

/** The keys the policies declare, by caller. */
export function callerKeys(set: Pick<PolicySet, 'callers'>): CallerKey[] {
  return [...set.callers.values()]
    .filter((entry) => entry.value.key !== undefined)
    .map((entry) => callerKey(entry.name, entry.value));
}

function callerKey(caller: string, value: Caller): CallerKey {
  const key = value.key!;
  if (value.profiles.length === 0)
    // A LiteLLM key with no models may call every model: never made by accident.
    throw new KeyPolicyError(
      `callers.${caller}.key: the caller has no profiles, and a LiteLLM key without models may call every model — list the profiles it may use under callers.${caller}.profiles`,
    );
  const seconds = (d: string | undefined) => (d === undefined ? undefined : durationSeconds(d));
  const fields: KeyFields = {
    key_alias: caller,
    models: [...value.profiles].sort(),
    max_budget: key.max_budget_usd ?? null,
    budget_duration: key.budget_period ?? null,
    metadata: { caller },
  };
  fields.metadata[MARK] = markOf(fields);
  return {
    caller,
    fields,
    graceSeconds: seconds(key.grace) ?? DEFAULT_GRACE_SECONDS,
    ...(key.rotate_every !== undefined && { rotateEverySeconds: seconds(key.rotate_every)! }),
    ...(key.duration !== undefined && { durationSeconds: seconds(key.duration)! }),
    deliver: key.deliver ?? {},
  };
}

/** SHA-256 of what Model Center decides on a key: the same live means nobody changed it. */
function markOf(fields: {
  models?: string[] | null;
  max_budget?: number | null;
  budget_duration?: string | null;
  caller?: unknown;
  metadata?: Record<string, unknown> | null;
}): string {
  const canonical = JSON.stringify([
    [...(fields.models ?? [])].sort(),
    fields.max_budget ?? null,
    fields.budget_duration ?? null,
    fields.metadata?.caller ?? null,
  ]);
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** Per caller, what `keys status` shows. */
export interface CallerKeyStatus {
  caller: string;
  state: 'missing' | 'ok' | 'drift' | 'rotating' | 'duplicate';
  fingerprint?: string;
  expires?: string | null;
  createdAt?: string | null;
  rotation?: Pick<Rotation, 'id' | 'phase' | 'revokeAt' | 'delivery'> & {
    awaitingRead: boolean;
  };
  nextRotation?: string;
  detail?: string;
}

export class VirtualKeys {
  private readonly journal: RotationJournal;
  private readonly now: () => Date;
  private readonly warned = new Set<string>();
  /** One step at a time per caller: an API rotate and the tick never interleave. */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(private readonly options: VirtualKeysOptions) {
    this.journal = new RotationJournal(options.journalDir);
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Brings LiteLLM to the policies: resumes unfinished rotations, makes missing keys, updates keys
   * the policies changed, reports hand-changed keys (drift, not overwritten), rotates keys whose
   * schedule is due and warns of keys about to expire.
   */
  async sync(set: Pick<PolicySet, 'callers'>): Promise<CallerKeyStatus[]> {
    const wanted = callerKeys(set);
    const statuses: CallerKeyStatus[] = [];
    for (const want of wanted)
      statuses.push(await this.locked(want.caller, () => this.syncOne(want)));
    return statuses;
  }

  /** Starts a rotation of the caller's key now and runs it up to the grace period. */
  async rotate(
    set: Pick<PolicySet, 'callers'>,
    caller: string,
    by: string,
    rotationId?: string,
  ): Promise<Rotation> {
    const want = callerKeys(set).find((k) => k.caller === caller);
    if (!want)
      throw new UnknownCallerError(
        `caller "${caller}" has no key in the policies — declare callers.${caller}.key to give it one`,
      );
    return this.locked(caller, async () => {
      if (rotationId) {
        const earlier = await this.journal.get(rotationId);
        // The same request again (a lost answer): the same rotation, carried on.
        if (earlier) return this.advance(earlier, want);
      }
      const open = await this.journal.open(caller);
      if (open) return this.advance(open, want);
      const tokens = await this.options.client.tokensWithAlias(caller);
      if (tokens.length === 0) return this.begin(want, 'create', by, undefined, rotationId);
      if (tokens.length > 1) throw this.duplicates(caller, tokens);
      return this.begin(want, 'rotate', by, tokens[0], rotationId);
    });
  }

  /**
   * The one API read of a key delivered by `api`: its value, then forgotten. Undefined when there
   * is nothing to read (already read, or delivered by a hook or a file).
   */
  async readDelivery(
    caller: string,
    by: string,
  ): Promise<{ rotation: string; key: string } | undefined> {
    return this.locked(caller, async () => {
      const pending = (await this.journal.all())
        .filter((r) => r.caller === caller && r.delivery === 'api' && r.newValue !== undefined)
        .filter((r) => r.phase === 'grace' || r.phase === 'done')
        .at(-1);
      if (!pending?.newValue) return undefined;
      const key = pending.newValue;
      delete pending.newValue;
      pending.deliveredAt = this.now().toISOString();
      await this.journal.save(pending);
      await this.emit({
        action: 'key.delivered',
        caller,
        by,
        outcome: 'ok',
        rotation: pending.id,
        fingerprint: keyFingerprint(pending.newToken),
        detail: 'read once through the API',
      });
      return { rotation: pending.id, key };
    });
  }

  async rotations(): Promise<Rotation[]> {
    return this.journal.all();
  }

  /** Finishes grace periods that ended and resumes rotations a crash interrupted. */
  async tick(set: Pick<PolicySet, 'callers'>): Promise<void> {
    const wanted = new Map(callerKeys(set).map((k) => [k.caller, k]));
    for (const rotation of await this.journal.all()) {
      if (rotation.phase === 'done' || rotation.phase === 'failed') continue;
      const want = wanted.get(rotation.caller);
      if (!want) continue;
      await this.locked(rotation.caller, async () => {
        const fresh = await this.journal.get(rotation.id);
        if (fresh) await this.advance(fresh, want);
      });
    }
  }

  private async syncOne(want: CallerKey): Promise<CallerKeyStatus> {
    const { client } = this.options;
    const open = await this.journal.open(want.caller);
    if (open) {
      const rotation = await this.advance(open, want);
      return this.statusOf(want, rotation);
    }
    const tokens = await client.tokensWithAlias(want.caller);
    if (tokens.length === 0) {
      const created = await this.begin(want, 'create', 'policy', undefined);
      return this.statusOf(want, created);
    }
    if (tokens.length > 1)
      return {
        caller: want.caller,
        state: 'duplicate',
        detail: this.duplicates(want.caller, tokens).message,
      };
    const token = tokens[0]!;
    const info = await client.live(token);
    if (!info) return { caller: want.caller, state: 'missing' };
    const live = markOf({ ...info, metadata: info.metadata ?? {} });
    const written = info.metadata?.[MARK];
    if (live !== written) {
      await this.emit({
        action: 'key.drift',
        caller: want.caller,
        by: 'policy',
        outcome: 'warning',
        fingerprint: keyFingerprint(token),
        detail: 'changed outside Model Center; not overwritten',
      });
      return {
        ...this.describe(want, token, info),
        state: 'drift',
        detail: `the key of "${want.caller}" was changed outside Model Center (models, budget or metadata.caller differ from what it wrote) — change it back in LiteLLM, or rotate it (modelcenter keys rotate ${want.caller}) to make it from the policies again`,
      };
    }
    if (written !== want.fields.metadata[MARK]) {
      await client.update(token, {
        models: want.fields.models,
        max_budget: want.fields.max_budget ?? null,
        budget_duration: want.fields.budget_duration ?? null,
        metadata: { ...info.metadata, ...want.fields.metadata },
      });
      await this.emit({
        action: 'key.updated',
        caller: want.caller,
        by: 'policy',
        outcome: 'ok',
        fingerprint: keyFingerprint(token),
        detail: `models ${want.fields.models.join(', ')}`,
      });
    }
    await this.warnExpiry(want, token, info);
    if (this.due(want, info)) {
      const rotation = await this.begin(want, 'rotate', 'schedule', token);
      return this.statusOf(want, rotation);
    }
    return this.describe(want, token, info);
  }

  /** Records a new rotation, then runs it up to its grace period. */
  private async begin(
    want: CallerKey,
    kind: Rotation['kind'],
    by: string,
    oldToken: string | undefined,
    id: string = newRotationId(),
  ): Promise<Rotation> {
    const value = `sk-${randomBytes(24).toString('base64url')}`;
    const at = this.now().toISOString();
    const rotation: Rotation = {
      id,
      caller: want.caller,
      kind,
      by,
      phase: 'started',
      startedAt: at,
      updatedAt: at,
      ...(oldToken && { oldToken }),
      newToken: tokenOf(value),
      newValue: value,
      method: this.options.useRegenerate && oldToken ? 'regenerate' : 'generate',
      graceSeconds: kind === 'create' ? 0 : want.graceSeconds,
      delivery: want.deliver.command ? 'command' : want.deliver.file ? 'file' : 'api',
    };
    await this.journal.save(rotation);
    await this.emit({
      action: `key.${kind}.started`,
      caller: want.caller,
      by,
      outcome: 'ok',
      rotation: id,
      fingerprint: keyFingerprint(rotation.newToken),
      ...(oldToken && { oldFingerprint: keyFingerprint(oldToken) }),
    });
    return this.advance(rotation, want);
  }

  /** Runs a rotation from its recorded phase as far as it can go now. Each step is idempotent. */
  private async advance(rotation: Rotation, want: CallerKey): Promise<Rotation> {
    try {
      if (rotation.phase === 'started') await this.create(rotation, want);
      if (rotation.phase === 'created') await this.deliver(rotation, want);
      if (rotation.phase === 'grace') await this.finishGrace(rotation);
    } catch (error) {
      await this.emit({
        action: `key.${rotation.kind}.step-failed`,
        caller: rotation.caller,
        by: rotation.by,
        outcome: 'failed',
        rotation: rotation.id,
        fingerprint: keyFingerprint(rotation.newToken),
        detail: describeError(error),
      });
      rotation.error = describeError(error);
      await this.journal.save(rotation);
      throw error;
    }
    return rotation;
  }

  /** The new key exists in LiteLLM under the caller's alias; the old one is renamed out of the way. */
  private async create(rotation: Rotation, want: CallerKey): Promise<void> {
    const { client } = this.options;
    const value = rotation.newValue;
    if (rotation.method === 'regenerate' && !this.options.useRegenerate) {
      // The licence setting was turned off (e.g. after LiteLLM refused): generate → grace → delete.
      rotation.method = 'generate';
      await this.journal.save(rotation);
    }
    if (!(await client.live(rotation.newToken))) {
      if (value === undefined)
        throw new ModelCenterError(
          `rotation ${rotation.id} of "${rotation.caller}" lost its new key before LiteLLM stored it — start another rotation`,
        );
      const fields: KeyFields = {
        ...want.fields,
        metadata: { ...want.fields.metadata, [ROTATION]: rotation.id },
        ...(want.durationSeconds !== undefined && { duration: `${want.durationSeconds}s` }),
      };
      if (rotation.method === 'regenerate' && rotation.oldToken) {
        await client.regenerate(rotation.oldToken, value, `${rotation.graceSeconds}s`);
      } else {
        // Key aliases are unique in LiteLLM: the old key steps aside (it keeps working).
        if (rotation.oldToken) {
          const old = await client.live(rotation.oldToken);
          if (old && old.key_alias === rotation.caller)
            await client.update(rotation.oldToken, {
              key_alias: retiringAlias(rotation),
              metadata: { ...old.metadata, modelcenter_retiring: rotation.id },
            });
        }
        await client.generate(value, fields);
      }
    }
    rotation.phase = 'created';
    await this.journal.save(rotation);
    await this.emit({
      action: `key.${rotation.kind}.created`,
      caller: rotation.caller,
      by: rotation.by,
      outcome: 'ok',
      rotation: rotation.id,
      fingerprint: keyFingerprint(rotation.newToken),
    });
  }

  /** Hands the new key over (hook on stdin, 0600 file), or keeps it for one API read. */
  private async deliver(rotation: Rotation, want: CallerKey): Promise<void> {
    const value = rotation.newValue;
    if (rotation.delivery !== 'api' && value !== undefined) {
      if (rotation.delivery === 'command')
        await runDeliveryHook(want.deliver.command!, value, rotation);
      else await writeFileAtomically(want.deliver.file!, `${value}\n`, { mode: 0o600 });
      delete rotation.newValue;
      rotation.deliveredAt = this.now().toISOString();
    }
    rotation.phase = 'grace';
    rotation.revokeAt = new Date(this.now().getTime() + rotation.graceSeconds * 1000).toISOString();
    await this.journal.save(rotation);
    await this.emit({
      action: 'key.delivered',
      caller: rotation.caller,
      by: rotation.by,
      outcome: 'ok',
      rotation: rotation.id,
      fingerprint: keyFingerprint(rotation.newToken),
      detail:
        rotation.delivery === 'api'
          ? 'waiting for one API read'
          : rotation.delivery === 'file'
            ? `written to ${want.deliver.file}`
            : 'given to the delivery command',
    });
  }

  /** After the grace period the old key is deleted (with regenerate, LiteLLM revokes it itself). */
  private async finishGrace(rotation: Rotation): Promise<void> {
    if (!rotation.revokeAt || this.now().getTime() < Date.parse(rotation.revokeAt)) return;
    if (rotation.oldToken && rotation.method === 'generate')
      await this.options.client.delete(rotation.oldToken);
    rotation.phase = 'done';
    await this.journal.save(rotation);
    await this.emit({
      action: `key.${rotation.kind}.done`,
      caller: rotation.caller,
      by: rotation.by,
      outcome: 'ok',
      rotation: rotation.id,
      fingerprint: keyFingerprint(rotation.newToken),
      ...(rotation.oldToken && { oldFingerprint: keyFingerprint(rotation.oldToken) }),
      ...(rotation.oldToken && { detail: 'old key deleted' }),
    });
  }

  private due(want: CallerKey, info: KeyInfo): boolean {
    if (want.rotateEverySeconds === undefined || !info.created_at) return false;
    const age = (this.now().getTime() - Date.parse(info.created_at)) / 1000;
    return age >= want.rotateEverySeconds;
  }

  private async warnExpiry(want: CallerKey, token: string, info: KeyInfo): Promise<void> {
    if (!info.expires || this.warned.has(token)) return;
    const left = (Date.parse(info.expires) - this.now().getTime()) / 1000;
    const window = Math.min(
      this.options.expiryWarningSeconds ?? 7 * 86_400,
      want.durationSeconds !== undefined ? want.durationSeconds / 5 : Infinity,
    );
    if (left > window) return;
    this.warned.add(token);
    await this.emit({
      action: 'key.expiring',
      caller: want.caller,
      by: 'schedule',
      outcome: 'warning',
      fingerprint: keyFingerprint(token),
      detail: `expires ${info.expires} — rotate it (modelcenter keys rotate ${want.caller})`,
    });
  }

  /** A caller's key as its latest rotation left it: done is ok, with the new key's fingerprint. */
  private statusOf(want: CallerKey, rotation: Rotation | undefined): CallerKeyStatus {
    if (rotation?.phase === 'done')
      return { caller: want.caller, state: 'ok', fingerprint: keyFingerprint(rotation.newToken) };
    return {
      caller: want.caller,
      state: rotation ? 'rotating' : 'ok',
      ...(rotation && {
        fingerprint: keyFingerprint(rotation.newToken),
        rotation: {
          id: rotation.id,
          phase: rotation.phase,
          delivery: rotation.delivery,
          ...(rotation.revokeAt && { revokeAt: rotation.revokeAt }),
          awaitingRead: rotation.delivery === 'api' && rotation.newValue !== undefined,
        },
      }),
    };
  }

  private describe(want: CallerKey, token: string, info: KeyInfo): CallerKeyStatus {
    const next =
      want.rotateEverySeconds !== undefined && info.created_at
        ? new Date(Date.parse(info.created_at) + want.rotateEverySeconds * 1000).toISOString()
        : undefined;
    return {
      caller: want.caller,
      state: 'ok',
      fingerprint: keyFingerprint(token),
      expires: info.expires ?? null,
      createdAt: info.created_at ?? null,
      ...(next && { nextRotation: next }),
    };
  }

  private duplicates(caller: string, tokens: string[]): ModelCenterError {
    return new ModelCenterError(
      `LiteLLM has ${tokens.length} keys with alias "${caller}" (${tokens.map(keyFingerprint).join(', ')}) — delete the extra ones in LiteLLM; Model Center keeps one key per caller`,
    );
  }

  private async emit(event: KeyEvent): Promise<void> {
    await this.options.onEvent?.(event);
  }

  private async locked<T>(caller: string, run: () => Promise<T>): Promise<T> {
    const before = this.locks.get(caller) ?? Promise.resolve();
    const next = before.catch(() => undefined).then(run);
    this.locks.set(caller, next);
    try {
      return await next;
    } finally {
      if (this.locks.get(caller) === next) this.locks.delete(caller);
    }
  }
}

/** The old key's alias while it is in grace (aliases are unique in LiteLLM). */
function retiringAlias(rotation: Rotation): string {
  return `${rotation.caller}@retiring-${rotation.id.replace(/-/g, '').slice(0, 12)}`;
}

/**
 * The delivery hook: a shell command given the key on stdin and, in its environment, the caller,
 * the rotation id (to recognise a repeated delivery after a crash) and the key's fingerprint.
 */
async function runDeliveryHook(command: string, value: string, rotation: Rotation): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn('sh', ['-c', command], {
      cwd: path.resolve('.'),
      env: {
        ...process.env,
        MODELCENTER_CALLER: rotation.caller,
        MODELCENTER_ROTATION_ID: rotation.id,
        MODELCENTER_KEY_FINGERPRINT: keyFingerprint(rotation.newToken),
      },
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolve()
        : reject(
            new ModelCenterError(
              `the delivery command of "${rotation.caller}" exited with ${code}${stderr ? `: ${stderr.split(value).join('***').trim()}` : ''} — fix it; the rotation resumes at delivery on the next run`,
            ),
          ),
    );
    child.stdin.end(`${value}\n`);
  });
}
