import { createHash } from 'node:crypto';
import type { AdminDeployment } from '../litellm/admin-client.js';
import type { LiteLLMCredentialClient } from '../litellm/credential-client.js';

/**
 * Database mode's provider credentials: a deployment whose `api_key` is `os.environ/NAME` is
 * written with `litellm_credential_name` instead, naming a LiteLLM credential that holds the value
 * Model Center resolves for NAME (its environment with the secret store over it). One
 * `PATCH /credentials/{name}` then changes the key of every deployment using it, on every instance
 * sharing the database, without touching a model (litellm-facts §10.3). A variable Model Center
 * cannot resolve stays `os.environ/NAME`: each instance resolves it from its own environment.
 */

/** The LiteLLM credential that holds environment variable `variable`'s value. */
export function litellmCredentialName(variable: string): string {
  return `modelcenter-${variable}`;
}

/** Which value a credential holds, as LiteLLM may show it (`credential_info`): never the value. */
export function valueMark(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex').slice(0, 12);
}

export interface BoundCredentials {
  deployments: AdminDeployment[];
  /** Credential name → the values it must hold. */
  credentials: Map<string, { api_key: string }>;
}

const ENV_REFERENCE = /^os\.environ\/([A-Za-z_][A-Za-z0-9_]*)$/;

/** Rewrites each resolvable `api_key: os.environ/NAME` to `litellm_credential_name`. Pure. */
export function bindCredentials(
  desired: readonly AdminDeployment[],
  resolve: (variable: string) => string | undefined,
): BoundCredentials {
  const credentials = new Map<string, { api_key: string }>();
  const deployments = desired.map((deployment) => {
    const key = deployment.litellm_params.api_key;
    const variable = typeof key === 'string' ? ENV_REFERENCE.exec(key)?.[1] : undefined;
    const value = variable ? resolve(variable) : undefined;
    if (!variable || !value) return deployment;
    const name = litellmCredentialName(variable);
    credentials.set(name, { api_key: value });
    const params: Record<string, unknown> = { ...deployment.litellm_params };
    delete params.api_key; // the credential supplies it
    return {
      ...deployment,
      litellm_params: {
        ...params,
        model: deployment.litellm_params.model,
        litellm_credential_name: name,
      },
    };
  });
  return { deployments, credentials };
}

/** Writes every credential whose value the writing instance does not hold yet. */
export async function writeCredentials(
  writer: LiteLLMCredentialClient,
  credentials: ReadonlyMap<string, { api_key: string }>,
): Promise<void> {
  for (const [name, values] of credentials) {
    const mark = valueMark(values.api_key);
    if ((await writer.heldFingerprint(name)) === mark) continue;
    await writer.putCredential(name, values, mark);
  }
}

/** What an instance still lacks of `expected` (name → mark), in words; undefined when nothing. */
export async function credentialGap(
  instance: LiteLLMCredentialClient,
  expected: ReadonlyMap<string, string>,
): Promise<string | undefined> {
  const behind: string[] = [];
  for (const [name, mark] of expected) {
    const held = await instance.heldFingerprint(name);
    if (held !== mark)
      behind.push(
        held === undefined
          ? `does not hold credential ${name}`
          : `holds an older value of credential ${name}`,
      );
  }
  return behind.length > 0 ? behind.join('; ') : undefined;
}
