import type OpenAI from 'openai';
import type { FakeUpstream } from '../fakes/core.js';
import { startOpenAIFake } from '../fakes/openai.js';
import type { Keys } from './stack.js';

/**
 * Two OpenAI-compatible providers behind one profile, for the health tests and bench: `alpha`
 * (preferred by quality) and `beta`. No vitest imports: bench/ uses it too.
 */
export interface HealthFakes {
  alpha: FakeUpstream;
  beta: FakeUpstream;
}

export async function startHealthFakes(keys: Keys): Promise<HealthFakes> {
  const [alpha, beta] = await Promise.all([
    startOpenAIFake({ name: 'alpha-fake', apiKey: keys.openai, contextWindows: { 'a-1': 8192 } }),
    startOpenAIFake({ name: 'beta-fake', apiKey: keys.groq, contextWindows: { 'b-1': 8192 } }),
  ]);
  return { alpha, beta };
}

/** `health` is the policy's health section, indented by two spaces. */
export function healthPolicies(fakes: HealthFakes, health: string, profiles: string): string {
  return `
providers:
  alpha:
    kind: openai_compatible
    base_url: ${fakes.alpha.url}/v1
    credential: env:OPENAI_API_KEY
  beta:
    kind: openai_compatible
    base_url: ${fakes.beta.url}/v1
    credential: env:GROQ_API_KEY
models:
  alpha-chat: { provider: alpha, upstream: a-1, capabilities: [chat, streaming], quality: 90 }
  beta-chat: { provider: beta, upstream: b-1, capabilities: [chat, streaming], quality: 60 }
profiles:
${profiles}
routing:
  retries: 0
  allowed_fails: 1000
  cooldown: 1s
health:
${health}
`;
}

/** Which fake answered a request to `model`, or `failed`. */
export async function whoAnswers(client: OpenAI, model: string): Promise<string> {
  try {
    const answer = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'who is there?' }],
    });
    const text = answer.choices[0]?.message.content ?? '';
    return text.includes('alpha-fake') ? 'alpha' : text.includes('beta-fake') ? 'beta' : text;
  } catch {
    return 'failed';
  }
}

/** Sends requests to `model` one after the other until stopped; counts who answered. */
export function keepAsking(
  client: OpenAI,
  model: string,
  pauseMs = 100,
): { answers: string[]; stop(): Promise<void> } {
  const answers: string[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      answers.push(await whoAnswers(client, model));
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  })();
  return {
    answers,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}
