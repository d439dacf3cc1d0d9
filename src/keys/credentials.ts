import type { Entry, PolicySet } from '../policy/policy-set.js';
import type { Provider } from '../policy/schema.js';
import { resolveCredential, storeName } from '../secrets/references.js';
import type { SecretStore } from '../secrets/store.js';
import { durationSeconds } from '../shared/duration.js';
import { fingerprint } from './audit.js';
import type { Rotation } from './rotations.js';
import type { CredentialStatus } from './schema.js';

/** The grace period of a provider credential rotation when the policy names none. */
export const DEFAULT_GRACE = '1h';

/** The audit subject of a provider's credential. */
export function providerSubject(provider: string): string {
  return `provider:${provider}`;
}

/** The providers that have a credential, in name order. */
export function credentialedProviders(set: PolicySet): Entry<Provider>[] {
  return [...set.providers.values()].filter((entry) => entry.value.credential !== undefined);
}

/**
 * One provider's credential as status shows it: where the value comes from, its fingerprint and
 * age, the old value in grace, the last rotation and the next scheduled one. Never the value.
 */
export function credentialStatus(
  entry: Entry<Provider>,
  context: {
    env: NodeJS.ProcessEnv;
    store: Pick<SecretStore, 'peek'>;
    latest: Rotation | undefined;
    now: Date;
  },
): CredentialStatus {
  const reference = entry.value.credential!;
  const resolved = resolveCredential(reference, context.env, context.store);
  const stored = context.store.peek(storeName(reference));
  const since = resolved.source === 'store' ? stored?.current.createdAt : undefined;
  const every = entry.value.rotation?.rotate_every;
  const latest = context.latest;
  const previous = stored?.previous;
  return {
    provider: entry.name,
    reference,
    variable: resolved.variable,
    source: resolved.source,
    overridesEnv: resolved.overridesEnv,
    ...(resolved.value !== undefined && { fingerprint: fingerprint(resolved.value) }),
    ...(since && {
      since,
      ageSeconds: Math.max(0, Math.round((context.now.getTime() - Date.parse(since)) / 1000)),
    }),
    ...(previous && {
      previous: { fingerprint: fingerprint(previous.value), expiresAt: previous.expiresAt },
    }),
    ...(latest && {
      rotation: {
        id: latest.id,
        state: latest.state,
        startedAt: latest.startedAt,
        ...(latest.graceUntil && { graceUntil: latest.graceUntil }),
        ...(latest.retiredAt && { retiredAt: latest.retiredAt }),
      },
    }),
    ...(every && {
      rotateEvery: every,
      nextRotation: nextRotation(every, since ?? latest?.startedAt, context.now),
    }),
  };
}

/**
 * When a credential rotated every `every` is next due: `every` after the current value came in
 * (or the last rotation started); now when that is unknown (a value from the environment never
 * rotated) or already past.
 */
export function nextRotation(every: string, since: string | undefined, now: Date): string {
  const seconds = durationSeconds(every) ?? 0;
  const due = since === undefined ? now.getTime() : Date.parse(since) + seconds * 1000;
  return new Date(Math.max(due, now.getTime())).toISOString();
}
