import { credentialEnvName } from '../compile/compile.js';
import { kindInfo } from '../policy/provider-kinds.js';
import { CREDENTIAL_REFERENCE, type Provider } from '../policy/schema.js';
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
  const key = provider.credential ? credentials(provider.credential) : undefined;
  if (provider.credential && key === undefined) {
    throw new InputError(
      `provider "${name}": ${provider.credential} has no value here — set ${credentialEnvName(provider.credential)} in the controller's environment`,
      { status: 422, field: 'credential' },
    );
  }
  return { info, baseUrl, key };
}
