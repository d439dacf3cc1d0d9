import { credentialEnvName } from '../compile/compile.js';
import { kindInfo } from '../policy/provider-kinds.js';
import { CREDENTIAL_REFERENCE, type Provider } from '../policy/schema.js';
import { referencedVariable, reservedVariable } from '../policy/secrets.js';
import { InputError } from '../shared/errors.js';
import type { ProviderTarget } from './list-models.js';

/** Reads a credential reference's value: `env:NAME`, or `secret:name` as LiteLLM gets it. */
export type CredentialLookup = (reference: string) => string | undefined;

/**
 * `env:NAME` from the environment; `secret:name` from the variable the secret store exports it
 * as (the same one the compiled config names, src/compile/compile.ts).
 */
export function envCredentials(env: NodeJS.ProcessEnv): CredentialLookup {
  return (reference) => env[credentialEnvName(reference)] || undefined;
}

/** Where and how to call a provider defined in the policies (or proposed for them). */
export function targetFor(
  name: string,
  provider: Provider,
  credentials: CredentialLookup,
  /** A literal key is used as it is (testing a key before it is saved); else it is refused. */
  options: { literalKey?: boolean } = {},
): ProviderTarget {
  const info = kindInfo(provider.kind);
  const baseUrl = provider.base_url ?? info.defaultBaseUrl;
  if (!baseUrl) {
    throw new InputError(
      `provider "${name}": kind "${provider.kind}" has no default address — give base_url`,
      { status: 422, field: 'base_url' },
    );
  }
  const literal =
    provider.credential !== undefined && !CREDENTIAL_REFERENCE.test(provider.credential);
  if (literal && !options.literalKey) {
    // Never echoed: it may be a key.
    throw new InputError(
      `provider "${name}": the credential is not a reference — write env:VARIABLE_NAME or secret:name`,
      { status: 422, field: 'credential' },
    );
  }
  if (literal) return { info, baseUrl, key: provider.credential };
  // The controller's own secrets never leave as a provider's key: a definition tested (or
  // synced) with env:LITELLM_MASTER_KEY would hand the master key to whatever base_url names.
  const variable = provider.credential ? referencedVariable(provider.credential) : undefined;
  const reserved = variable !== undefined ? reservedVariable(variable) : undefined;
  if (reserved) {
    throw new InputError(
      `provider "${name}": ${provider.credential} names one of Model Center's own secrets (${reserved.holds}); it is never sent to a provider — ${reserved.instead ? `write ${reserved.instead}` : 'give the provider a key of its own: credential: env:PROVIDER_API_KEY'}`,
      { status: 422, field: 'credential' },
    );
  }
  const key = provider.credential ? credentials(provider.credential) : undefined;
  if (provider.credential && key === undefined) {
    throw new InputError(
      `provider "${name}": ${provider.credential} has no value here — set ${credentialEnvName(provider.credential)} in the controller's environment`,
      { status: 422, field: 'credential' },
    );
  }
  return { info, baseUrl, key };
}
