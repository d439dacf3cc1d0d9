import { credentialEnvName } from '../compile/compile.js';
import type { SecretStore } from './store.js';

/**
 * How credential references in policies find their values. A policy names a credential as
 * `env:NAME` or `secret:name`; the compiled config hands LiteLLM `os.environ/VARIABLE`
 * (`env:NAME` → `NAME`, `secret:name` → `MODELCENTER_SECRET_NAME`, src/compile/compile.ts), and the
 * controller puts the value into LiteLLM's environment when it starts it:
 * - `secret:name`: the secret store's value stored under `secret:name`;
 * - `env:NAME`: the controller's environment — unless the credential was rotated, in which case
 *   the store holds the new value under `env:NAME` and that takes precedence from then on.
 */

export type CredentialSource = 'store' | 'env' | 'missing';

export interface ResolvedCredential {
  /** As written in the policy: `env:OPENAI_API_KEY`, `secret:openai-prod`. */
  reference: string;
  /** The variable LiteLLM reads it from (`os.environ/…` in the config). */
  variable: string;
  source: CredentialSource;
  value?: string;
  /** An `env:` credential whose stored (rotated) value is used instead of the environment's. */
  overridesEnv: boolean;
}

/** The stored secret a reference is kept under: the reference itself. */
export function storeName(reference: string): string {
  return reference;
}

/** Where a credential reference's value comes from now, and the value. */
export function resolveCredential(
  reference: string,
  env: NodeJS.ProcessEnv,
  store: Pick<SecretStore, 'peek'>,
): ResolvedCredential {
  const variable = credentialEnvName(reference);
  const stored = store.peek(storeName(reference))?.current.value;
  if (stored !== undefined) {
    return {
      reference,
      variable,
      source: 'store',
      value: stored,
      overridesEnv: reference.startsWith('env:'),
    };
  }
  const fromEnv = reference.startsWith('env:') ? env[variable] : undefined;
  return fromEnv
    ? { reference, variable, source: 'env', value: fromEnv, overridesEnv: false }
    : { reference, variable, source: 'missing', overridesEnv: false };
}

/**
 * The variables the store supplies, by the name LiteLLM reads: every stored `secret:` and `env:`
 * credential. Laid over the controller's environment when LiteLLM starts.
 */
export function storedCredentialEnv(
  store: Pick<SecretStore, 'peek' | 'names'>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of store.names()) {
    if (!name.startsWith('env:') && !name.startsWith('secret:')) continue;
    const value = store.peek(name)?.current.value;
    if (value !== undefined) out[credentialEnvName(name)] = value;
  }
  return out;
}
