import { z } from 'zod';
import { LiteLLMApiError } from './errors.js';
import { LiteLLMClient, type Advice } from './client.js';

/** Where Model Center marks the credentials it wrote: the value's fingerprint (never the value). */
export const CREDENTIAL_FINGERPRINT_FIELD = 'modelcenter_fingerprint';

const credentialViewSchema = z.looseObject({
  credential_name: z.string(),
  credential_info: z.record(z.string(), z.unknown()).nullish(),
});
const writeAnswerSchema = z.looseObject({ success: z.boolean().optional() });

/**
 * LiteLLM's `/credentials` routes (litellm-facts §2.3, §10.3), database mode. A credential holds
 * values (encrypted in the database) that deployments use through `litellm_credential_name`;
 * `credential_info` is returned unmasked, so the value's fingerprint is kept there: it tells which
 * value an instance holds in memory without reading the value.
 *
 * How instances pick a change up (1.106.12, proxy/credential_endpoints/endpoints.py and
 * proxy_server.py `get_credentials`): the instance that takes the write updates its in-memory
 * list at once; every other one reloads all credentials from the database at its next poll
 * (`proxy_config_reload_interval_seconds`, 30 s by default). Requests read the in-memory list.
 */
export class LiteLLMCredentialClient extends LiteLLMClient {
  /** The fingerprint this instance holds in memory; undefined when it does not know the name. */
  async heldFingerprint(name: string): Promise<string | null | undefined> {
    try {
      const view = await this.request(
        'GET',
        `/credentials/by_name/${encodeURIComponent(name)}`,
        credentialViewSchema,
      );
      const mark = view.credential_info?.[CREDENTIAL_FINGERPRINT_FIELD];
      return typeof mark === 'string' ? mark : null;
    } catch (error) {
      if (error instanceof LiteLLMApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  /** `POST /credentials`; 409 when it exists. */
  async createCredential(
    name: string,
    values: Record<string, string>,
    mark: string,
  ): Promise<void> {
    await this.request(
      'POST',
      '/credentials',
      writeAnswerSchema,
      {
        credential_name: name,
        credential_values: values,
        credential_info: { [CREDENTIAL_FINGERPRINT_FIELD]: mark, managed_by: 'modelcenter' },
      },
      credentialAdvice(name),
    );
  }

  /** `PATCH /credentials/{name}`: replaces the values given, keeps the others. */
  async updateCredential(
    name: string,
    values: Record<string, string>,
    mark: string,
  ): Promise<void> {
    await this.request(
      'PATCH',
      `/credentials/${encodeURIComponent(name)}`,
      writeAnswerSchema,
      { credential_values: values, credential_info: { [CREDENTIAL_FINGERPRINT_FIELD]: mark } },
      credentialAdvice(name),
    );
  }

  /** Creates or updates the credential so it holds `values`, marked with `mark`. */
  async putCredential(name: string, values: Record<string, string>, mark: string): Promise<void> {
    try {
      await this.updateCredential(name, values, mark);
    } catch (error) {
      if (!(error instanceof LiteLLMApiError && error.status === 404)) throw error;
      await this.createCredential(name, values, mark);
    }
  }
}

function credentialAdvice(name: string): Advice {
  return (status, said) => {
    if (/db not connected|no db/i.test(said))
      return 'credentials through the API need LiteLLM with a database (database_url) on every instance';
    if (/defined in config/i.test(said))
      return `credential "${name}" is defined in that instance's config.yaml credential_list, which the API cannot change — remove it there`;
    if (status === 422)
      return `LiteLLM refused the request body for credential "${name}" — is this the pinned LiteLLM version?`;
    return undefined;
  };
}
