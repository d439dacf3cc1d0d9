import { randomUUID } from 'node:crypto';
import type { EmulatedSpendLog } from '../emulator/litellm-db.js';

const RUN = randomUUID().slice(0, 8);
let sequence = 0;
/**
 * A SpendLogs row as LiteLLM 1.104 writes it for a request through a `cheap` profile whose
 * deployment is `cheap/gpt-mini`: 100 tokens in, 50 out, $0.01, goal and caller tags.
 */
export function spendLogFixture(
  startMs: number,
  overrides: Partial<EmulatedSpendLog> = {},
): EmulatedSpendLog {
  sequence += 1;
  const callId = `call-${RUN}-${sequence}`;
  return {
    request_id: `chatcmpl-${RUN}-${sequence}`,
    litellm_call_id: callId,
    call_type: 'acompletion',
    api_key: 'hashed-key',
    spend: 0.01,
    total_tokens: 150,
    prompt_tokens: 100,
    completion_tokens: 50,
    startTime: new Date(startMs),
    endTime: new Date(startMs + 400),
    completionStartTime: new Date(startMs + 400),
    model: 'gpt-4o-mini',
    model_id: 'cheap/gpt-mini',
    model_group: 'cheap',
    custom_llm_provider: 'openai',
    api_base: 'https://api.openai.com/v1',
    user: 'default_user_id',
    metadata: { user_api_key_alias: null, litellm_call_id: callId, status: 'success' },
    cache_hit: 'False',
    cache_key: 'Cache OFF',
    request_tags: ['goal:quarterly-report', 'caller:research-agent'],
    team_id: '',
    end_user: '',
    session_id: null,
    status: 'success',
    ...overrides,
  };
}
