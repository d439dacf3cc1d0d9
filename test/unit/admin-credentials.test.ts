import { describe, expect, it } from 'vitest';
import { bindCredentials, litellmCredentialName } from '../../src/reload/admin-credentials.js';
import { testKey } from '../helpers/secrets.js';

describe('bindCredentials (database mode: keys through LiteLLM credentials)', () => {
  const key = testKey();
  const deployment = (apiKey: string) => ({
    model_name: 'fast',
    litellm_params: { model: 'openai/gpt-4o-mini', api_base: 'http://x/v1', api_key: apiKey },
    model_info: { id: 'fast/gpt-mini' },
  });

  it('a resolvable os.environ key becomes litellm_credential_name; the value goes only to the credential', () => {
    const bound = bindCredentials([deployment('os.environ/OPENAI_API_KEY')], (name) =>
      name === 'OPENAI_API_KEY' ? key : undefined,
    );
    expect(bound.deployments[0]!.litellm_params).toEqual({
      model: 'openai/gpt-4o-mini',
      api_base: 'http://x/v1',
      litellm_credential_name: litellmCredentialName('OPENAI_API_KEY'),
    });
    expect(JSON.stringify(bound.deployments)).not.toContain(key);
    expect([...bound.credentials]).toEqual([['modelcenter-OPENAI_API_KEY', { api_key: key }]]);
  });

  it('an unresolvable variable and a literal placeholder stay as they are', () => {
    const desired = [deployment('os.environ/ELSEWHERE_KEY'), deployment('no-key-required')];
    const bound = bindCredentials(desired, () => undefined);
    expect(bound.deployments).toEqual(desired);
    expect(bound.credentials.size).toBe(0);
  });
});
