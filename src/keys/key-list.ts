import type { PolicySet } from '../policy/policy-set.js';
import type { SecretStore } from '../secrets/store.js';
import { fingerprint } from './audit.js';
import { nextRotation } from './credentials.js';
import { MASTER_STORE_NAME, MASTER_SUBJECT } from './master-rotation.js';
import type { Rotation, RotationLog } from './rotations.js';
import type { KeyStatus } from './schema.js';

export interface KeyListContext {
  set: PolicySet;
  store: SecretStore;
  rotations: RotationLog;
  /** LiteLLM's master key now. */
  masterKey: string;
  /** The fingerprint of a caller's own key (database mode's virtual keys); undefined: none. */
  callerKeyFingerprint?: (caller: string) => string | undefined;
  now: Date;
}

function rotationView(latest: Rotation | undefined): Pick<KeyStatus, 'rotation'> {
  if (!latest) return {};
  return {
    rotation: {
      id: latest.id,
      state: latest.state,
      startedAt: latest.startedAt,
      ...(latest.graceUntil && { graceUntil: latest.graceUntil }),
      ...(latest.retiredAt && { retiredAt: latest.retiredAt }),
    },
  };
}

/**
 * The keys clients present (`GET /v1/keys`): LiteLLM's master key, and each caller of the policies
 * with the key it sends — its own virtual key in database mode, else the master key it shares.
 * Fingerprints only, never a value.
 */
export async function keyList(context: KeyListContext): Promise<KeyStatus[]> {
  const { set, now } = context;
  const stored = context.store.peek(MASTER_STORE_NAME)?.current;
  const masterLatest = await context.rotations.latest(MASTER_SUBJECT);
  const masterSince = stored?.createdAt;
  const masterEvery = set.master_key?.value.rotate_every;
  const master: KeyStatus = {
    subject: MASTER_SUBJECT,
    kind: 'master',
    fingerprint: fingerprint(context.masterKey),
    ...(masterSince && {
      since: masterSince,
      ageSeconds: Math.max(0, Math.round((now.getTime() - Date.parse(masterSince)) / 1000)),
    }),
    ...rotationView(masterLatest),
    ...(masterEvery && {
      rotateEvery: masterEvery,
      nextRotation: nextRotation(masterEvery, masterLatest?.startedAt ?? masterSince, now),
    }),
  };
  const callers = await Promise.all(
    [...set.callers.values()].map(async ({ name, value }): Promise<KeyStatus> => {
      const own = context.callerKeyFingerprint?.(name);
      const subject = `caller:${name}`;
      const latest = own ? await context.rotations.latest(subject) : undefined;
      const every = own ? value.key?.rotate_every : undefined;
      return {
        subject,
        kind: 'caller',
        caller: name,
        fingerprint: own ?? master.fingerprint,
        sharesMasterKey: own === undefined,
        ...rotationView(latest),
        ...(every && {
          rotateEvery: every,
          nextRotation: nextRotation(every, latest?.startedAt, now),
        }),
      };
    }),
  );
  return [master, ...callers];
}
