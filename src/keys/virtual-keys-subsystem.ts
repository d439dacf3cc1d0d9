import path from 'node:path';
import { z } from 'zod';
import { HttpError, type Route } from '../api/server.js';
import { buildFromDir } from '../compile/build.js';
import type { Logger } from '../log/logger.js';
import type { JobRun } from '../scheduler/subsystem.js';
import type { Settings } from '../settings/settings.js';
import { spendSettings } from '../spend/config.js';
import { webhookSink } from '../spend/webhook.js';
import { describeError } from '../shared/errors.js';
import type { Subsystem } from '../shared/subsystem.js';
import type { KeyAudit } from './audit.js';
import { newRotationId } from './audit.js';
import { LiteLLMKeyClient } from './key-client.js';
import type { Rotation } from './rotation-journal.js';
import {
  callerKeys,
  keyFingerprint,
  KeyPolicyError,
  UnknownCallerError,
  VirtualKeys,
  type CallerKeyStatus,
  type KeyEvent,
} from './virtual-keys.js';

export interface VirtualKeysDeps {
  settings: Pick<Settings, 'stateDir' | 'policies'>;
  env: NodeJS.ProcessEnv;
  log: Logger;
  audit: KeyAudit;
  /** The LiteLLM (database mode) whose keys these are, asked at each use. */
  litellm: () => { url: string | undefined; masterKey: string };
}

export interface VirtualKeysSubsystem extends Subsystem<Route, JobRun> {
  keys: () => VirtualKeys | undefined;
  /** The fingerprint of the key a caller sends, when it has its own (as the last tick found it). */
  fingerprintOf: (caller: string) => string | undefined;
}

/** `MODELCENTER_KEYS_TICK_SECONDS`: how often grace periods are checked and keys synced (30 s). */
const DEFAULT_TICK_SECONDS = 30;

/**
 * Callers' virtual keys (database mode): made and kept as the policies say at start and on every
 * tick, rotated on schedule or on demand (`POST /v1/keys/{caller}/rotate`), old keys deleted when
 * their grace ends, the `api` delivery read once (`POST /v1/keys/{caller}/delivery`). Started after
 * LiteLLM. Policies with no `callers.<id>.key` leave it idle.
 */
export async function startVirtualKeys(deps: VirtualKeysDeps): Promise<VirtualKeysSubsystem> {
  const useRegenerate = /^(1|true|yes)$/i.test(deps.env.MODELCENTER_KEYS_REGENERATE ?? '');
  const tickSeconds = Number(deps.env.MODELCENTER_KEYS_TICK_SECONDS ?? DEFAULT_TICK_SECONDS);
  // Expiry warnings, drift and failed steps go to the alert webhook too, when one is set.
  const { webhook } = spendSettings(deps.env, deps.settings.stateDir);
  const alert = webhook ? webhookSink<Record<string, unknown>>(webhook) : undefined;
  let manager: VirtualKeys | undefined;
  let managerFor = '';
  let last: { at: string; callers: CallerKeyStatus[]; error?: string } | undefined;

  const record = async (event: KeyEvent): Promise<void> => {
    const [action, step = 'ok'] = splitAction(event.action);
    try {
      await deps.audit.record({
        rotationId: event.rotation ?? newRotationId(),
        actor: event.by,
        action,
        subject: `caller:${event.caller}`,
        step,
        outcome: event.outcome === 'warning' ? 'skipped' : event.outcome,
        ...((event.fingerprint || event.oldFingerprint) && {
          fingerprints: {
            ...(event.oldFingerprint && { old: event.oldFingerprint }),
            ...(event.fingerprint && { new: event.fingerprint }),
          },
        }),
        ...(event.detail && { detail: event.detail }),
      });
    } catch (error) {
      deps.log.error({ err: describeError(error) }, 'the key audit could not record an event');
    }
    if (event.outcome !== 'ok')
      await alert?.({ kind: 'virtual-key', ...event }).catch((error: unknown) =>
        deps.log.warn({ err: describeError(error) }, 'a key alert was not delivered'),
      );
  };
  const keys = (): VirtualKeys => {
    const { url, masterKey } = deps.litellm();
    if (!url)
      throw new HttpError(503, 'not_ready', 'LiteLLM is not running yet: try again in a moment');
    // A new client when the URL or the master key changed (a master key rotation).
    const identity = `${url}\0${masterKey}`;
    if (!manager || identity !== managerFor) {
      manager = new VirtualKeys({
        client: new LiteLLMKeyClient(url, masterKey, 30_000),
        journalDir: path.join(deps.settings.stateDir, 'keys', 'rotations'),
        useRegenerate,
        onEvent: record,
      });
      managerFor = identity;
    }
    return manager;
  };
  const policies = async () => (await buildFromDir(deps.settings.policies)).set;

  /** Grace periods, interrupted rotations, missing or changed keys, schedules, expiry. */
  const sync = async (): Promise<void> => {
    const set = await policies();
    if (callerKeys(set).length === 0 && !manager) return;
    const at = new Date().toISOString();
    try {
      await keys().tick(set);
      last = { at, callers: await keys().sync(set) };
    } catch (error) {
      last = { at, callers: last?.callers ?? [], error: describeError(error) };
      deps.log.warn({ err: describeError(error) }, 'virtual keys: sync failed; retried next tick');
    }
  };

  await sync();
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    running ??= sync().finally(() => (running = undefined));
  }, tickSeconds * 1000);
  timer.unref();

  const routes: Route[] = [
    {
      method: 'GET',
      path: '/v1/keys/virtual',
      scope: 'read',
      summary:
        "Every caller's virtual key: state (ok, drift, rotating, missing), fingerprint, expiry, next scheduled rotation, the rotation in progress — never a value",
      // What the last tick found (a read never writes to LiteLLM).
      handle: () => Promise.resolve({ status: 200, body: last ?? { callers: [] } }),
    },
    {
      method: 'POST',
      path: '/v1/keys/{caller}/rotate',
      scope: 'admin',
      summary:
        "Rotates the caller's virtual key: generate new → deliver (hook, file or one API read) → grace → delete old. Send the same rotation_id again after a lost answer: the same rotation carries on",
      body: z
        .strictObject({
          rotation_id: z
            .string()
            .regex(/^[A-Za-z0-9_-]{8,80}$/, 'letters, digits, - and _; 8 to 80 characters')
            .optional(),
        })
        .default({}),
      handle: async ({ params, body, actor }) => {
        const caller = params.caller ?? '';
        const { rotation_id: id } = body as { rotation_id?: string };
        try {
          const rotation = await keys().rotate(await policies(), caller, actor, id);
          return { status: 200, body: describeRotation(rotation) };
        } catch (error) {
          if (error instanceof UnknownCallerError)
            throw new HttpError(404, 'not_found', error.message, 'caller');
          if (error instanceof KeyPolicyError)
            throw new HttpError(400, 'invalid_policy', error.message);
          throw error;
        }
      },
    },
    {
      method: 'POST',
      path: '/v1/keys/{caller}/delivery',
      scope: 'admin',
      summary:
        "The caller's new virtual key, once (delivery `api`): the value, then it is forgotten; 404 when there is none to read",
      body: z.object({}).strict(),
      handle: async ({ params, actor }) => {
        const caller = params.caller ?? '';
        const read = await keys().readDelivery(caller, actor);
        if (!read)
          throw new HttpError(
            404,
            'not_found',
            `no key of "${caller}" waits to be read: it was read already, delivered by a hook or a file, or never made — rotate it to get a new one`,
            'caller',
          );
        return { status: 200, body: read, unmasked: true };
      },
    },
  ];

  return {
    keys: () => manager,
    fingerprintOf: (caller) =>
      last?.callers.find((c) => c.caller === caller && c.state !== 'missing')?.fingerprint,
    routes,
    jobs: {
      'virtual-keys': async () => {
        await sync();
      },
    },
    status: () =>
      Promise.resolve(
        last ? { virtualKeys: { at: last.at, callers: last.callers, error: last.error } } : {},
      ),
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}

/** `key.rotate.created` → (`key.rotate`, `created`). */
function splitAction(action: string): [string, string | undefined] {
  const parts = action.split('.');
  return parts.length > 2
    ? [parts.slice(0, 2).join('.'), parts.slice(2).join('.')]
    : [action, undefined];
}

/** A rotation as answers show it: fingerprints and times, never the value. */
export function describeRotation(rotation: Rotation): Record<string, unknown> {
  return {
    id: rotation.id,
    caller: rotation.caller,
    kind: rotation.kind,
    phase: rotation.phase,
    fingerprint: keyFingerprint(rotation.newToken),
    ...(rotation.oldToken && { oldFingerprint: keyFingerprint(rotation.oldToken) }),
    delivery: rotation.delivery,
    awaitingRead: rotation.delivery === 'api' && rotation.newValue !== undefined,
    ...(rotation.revokeAt && { oldKeyRevokedAt: rotation.revokeAt }),
    startedAt: rotation.startedAt,
  };
}
