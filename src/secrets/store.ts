import { ModelCenterError } from '../shared/errors.js';

/**
 * The secret store: where `secret:NAME` credentials live, and where a rotated `env:NAME`
 * credential's new value is kept (it then takes precedence over the environment). Every secret is
 * versioned: the current value, and the previous one with the instant it expires (a rotation's
 * grace period: until then the old value may still be in use, and a rollback can bring it back).
 *
 * This interface is what the rest of Model Center sees; `LocalSecretStore` (an AES-256-GCM file
 * in the state directory) implements it, and another backend (Vault, a cloud secret manager) can.
 * A backend keeps a synchronous view of its values (`peek`): LiteLLM's environment is computed
 * synchronously at every process start.
 */

/** Names of stored secrets: the reference that uses them (`secret:openai-prod`, `env:OPENAI_API_KEY`) or an internal name (`master-key`). */
export const SECRET_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9:._/-]{0,199}$/;

export interface SecretVersion {
  value: string;
  /** When this value became current (ISO 8601). */
  createdAt: string;
}

export interface PreviousVersion extends SecretVersion {
  /** Until when the previous value is kept (ISO 8601); after it, `prune` drops it. */
  expiresAt: string;
}

export interface StoredSecret {
  name: string;
  current: SecretVersion;
  previous?: PreviousVersion;
}

export interface PutOptions {
  /**
   * Keep the value being replaced as `previous` until this instant (a grace period). Without it
   * the old value is gone at once (an emergency rotation, or a first value).
   */
  keepPreviousUntil?: Date;
  /**
   * The value being replaced when the store does not hold it (the first rotation of an `env:`
   * credential, whose value came from the environment): kept as `previous` like a stored one.
   */
  replacing?: string;
}

export interface SecretStore {
  /** `local-file`, `vault`, …: shown in status. */
  readonly backend: string;
  /** The secret, or undefined when none is stored under that name. */
  get(name: string): Promise<StoredSecret | undefined>;
  /** The last known state of a secret without I/O (what `get` would return, as cached). */
  peek(name: string): StoredSecret | undefined;
  /** The names of every stored secret, without I/O. */
  names(): string[];
  /** Every stored secret (values included: callers decide what to show). */
  list(): Promise<StoredSecret[]>;
  /**
   * Stores `value` as current; the current one becomes `previous` (until `keepPreviousUntil`, or
   * dropped). Atomic: after a crash the store holds either the old state or the new one.
   */
  put(name: string, value: string, options?: PutOptions): Promise<StoredSecret>;
  /** Makes `previous` current again and drops the value that replaced it (a rollback). */
  restorePrevious(name: string): Promise<StoredSecret>;
  /** Moves the instant `previous` expires (a grace period starts once the new value is live). */
  setPreviousExpiry(name: string, until: Date): Promise<void>;
  /** Drops `previous` now (the grace period ended, or an emergency). */
  dropPrevious(name: string): Promise<void>;
  /** Removes the secret entirely. */
  delete(name: string): Promise<void>;
}

/** The store cannot be read, written or decrypted, or was asked for something it does not hold. */
export class SecretStoreError extends ModelCenterError {}

export function checkSecretName(name: string): void {
  if (!SECRET_NAME_PATTERN.test(name)) {
    throw new SecretStoreError(
      `${JSON.stringify(name.slice(0, 60))} is not a secret name: use letters, digits and . _ - : / (at most 200), starting with a letter or digit`,
    );
  }
}
