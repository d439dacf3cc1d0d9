import { createHash } from 'node:crypto';
import { z } from 'zod';
import { LiteLLMApiError } from '../litellm/errors.js';
import { LiteLLMClient, type Advice } from '../litellm/client.js';

/**
 * LiteLLM's virtual-key routes (database mode; litellm-facts §2.1, §10.2). A key is named by its
 * token: the SHA-256 hex of its value, which LiteLLM stores instead of the value. Model Center
 * makes key values itself (`/key/generate` takes a custom `key`), so it knows a key's token before
 * LiteLLM answers: a retried or resumed step can find what an earlier try created.
 */

/** What Model Center sets on a key (the `/key/generate` and `/key/update` fields it uses). */
export interface KeyFields {
  key_alias: string;
  models: string[];
  max_budget?: number | null;
  budget_duration?: string | null;
  duration?: string | null;
  metadata: Record<string, unknown>;
}

const keyInfoSchema = z.looseObject({
  key_alias: z.string().nullish(),
  models: z.array(z.string()).nullish(),
  max_budget: z.number().nullish(),
  budget_duration: z.string().nullish(),
  expires: z.string().nullish(),
  created_at: z.string().nullish(),
  metadata: z.record(z.string(), z.unknown()).nullish(),
  status: z.string().nullish(),
});
export type KeyInfo = z.infer<typeof keyInfoSchema>;

const infoAnswerSchema = z.looseObject({ info: keyInfoSchema });
const generateAnswerSchema = z.looseObject({ key: z.string(), token: z.string().nullish() });
const listAnswerSchema = z.looseObject({
  keys: z.array(z.union([z.string(), z.looseObject({ token: z.string().nullish() })])),
});
const anyAnswer = z.unknown();

/** LiteLLM's token for a key value: its SHA-256 in hex (proxy/utils.py `hash_token`). */
export function tokenOf(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

const keyAdvice: Advice = (status, said) => {
  if (/db not connected|database not connected|no db/i.test(said))
    return 'virtual keys need LiteLLM in database mode (database_url): without a database only the master key authenticates';
  if (/already exists/i.test(said))
    return 'another key already has this alias: rename or delete it in LiteLLM, then retry';
  if (/enterprise|premium|licen[cs]e/i.test(said))
    return '/key/regenerate needs a LiteLLM Enterprise licence: turn MODELCENTER_KEYS_REGENERATE off to rotate by generate → grace → delete';
  if (status === 422)
    return 'LiteLLM refused the request body — is this the pinned LiteLLM version?';
  return undefined;
};

export class LiteLLMKeyClient extends LiteLLMClient {
  /** `GET /key/info` by token; undefined when LiteLLM has no such key (live or deleted). */
  async info(token: string): Promise<KeyInfo | undefined> {
    try {
      const answer = await this.request(
        'GET',
        '/key/info',
        infoAnswerSchema,
        undefined,
        keyAdvice,
        {
          key: token,
        },
      );
      return answer.info;
    } catch (error) {
      if (error instanceof LiteLLMApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  /** A live key (not deleted) by token. */
  async live(token: string): Promise<KeyInfo | undefined> {
    const info = await this.info(token);
    return info && info.status !== 'deleted' ? info : undefined;
  }

  /** The tokens of the live keys with this alias (`GET /key/list?key_alias=`). */
  async tokensWithAlias(alias: string): Promise<string[]> {
    const answer = await this.request('GET', '/key/list', listAnswerSchema, undefined, keyAdvice, {
      key_alias: alias,
      return_full_object: true,
      size: 100,
    });
    return answer.keys
      .map((k) => (typeof k === 'string' ? k : (k.token ?? '')))
      .filter((t) => t.length > 0);
  }

  /** `POST /key/generate` with a value Model Center made. */
  async generate(value: string, fields: KeyFields): Promise<void> {
    const answer = await this.request(
      'POST',
      '/key/generate',
      generateAnswerSchema,
      { key: value, ...fields },
      keyAdvice,
    );
    if (answer.key !== value)
      throw new LiteLLMApiError(
        `LiteLLM at ${this.baseUrl} made a key other than the one asked for — is this the pinned LiteLLM version?`,
        200,
        '/key/generate',
      );
  }

  /** `POST /key/update` of the key with this token. */
  async update(token: string, fields: Partial<KeyFields>): Promise<void> {
    await this.request('POST', '/key/update', anyAnswer, { key: token, ...fields }, keyAdvice);
  }

  /** `POST /key/delete`; a key already gone is not an error (the step may be a retry). */
  async delete(token: string): Promise<void> {
    try {
      await this.request('POST', '/key/delete', anyAnswer, { keys: [token] }, keyAdvice);
    } catch (error) {
      if (error instanceof LiteLLMApiError && (error.status === 404 || error.status === 400)) {
        if ((await this.live(token)) === undefined) return;
      }
      throw error;
    }
  }

  /**
   * `POST /key/{token}/regenerate` with a value Model Center made and a grace period: LiteLLM keeps
   * the old key valid until then (Enterprise licence; litellm-facts §10.2).
   */
  async regenerate(token: string, newValue: string, gracePeriod: string): Promise<void> {
    await this.request(
      'POST',
      `/key/${token}/regenerate`,
      anyAnswer,
      { new_key: newValue, grace_period: gracePeriod },
      keyAdvice,
    );
  }

  /**
   * `POST /key/regenerate` for the master key: LiteLLM re-encrypts what it stores with the new
   * master key (no licence needed; litellm-facts §10.4). The running process keeps its key.
   */
  async regenerateMaster(currentMaster: string, newMaster: string): Promise<void> {
    await this.request(
      'POST',
      '/key/regenerate',
      anyAnswer,
      { key: currentMaster, new_master_key: newMaster },
      keyAdvice,
    );
  }
}
