import { credentialEnvName } from '../compile/compile.js';
import { kindInfo } from '../policy/provider-kinds.js';
import { CREDENTIAL_REFERENCE, type Provider } from '../policy/schema.js';
import { referencedVariable, reservedVariable, urlSecret } from '../policy/secrets.js';
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
  // The same boundaries as the policy validation, for definitions that never went through it
  // (`providers test`) or failed it (a sync of a hand-edited file): the controller's own secrets
  // are never sent to a provider, and a URL carrying a secret is not called.
  const variable = provider.credential && referencedVariable(provider.credential);
  const reserved = variable ? reservedVariable(variable) : undefined;
  if (reserved) {
    throw new InputError(
      `provider "${name}": ${provider.credential} names one of Model Center's own secrets (${reserved.holds}); it is never sent to a provider — give the provider a key of its own`,
      { status: 422, field: 'credential' },
    );
  }
  const inUrl = urlSecret(baseUrl);
  if (inUrl) {
    throw new InputError(
      `provider "${name}": base_url carries ${inUrl.kind === 'user-info' ? 'credentials (user:password@)' : `a secret in its query string (${inUrl.masked})`} — remove it from the URL and use credential: env:NAME`,
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
