import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { allFakes, startStack, type Stack } from '../helpers/stack.js';

/**
 * The compiled config on the real pinned LiteLLM, with fake upstreams for every provider flavour
 * and the `openai` npm client. Tests run in order: the fault tests come after the happy paths.
 */
describe('a compiled config served by the real LiteLLM', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(() => {
    for (const fake of allFakes(stack.fakes)) fake.setFault(undefined);
  });

  async function chat(model: string, content = 'Say hello') {
    return stack.client.chat.completions
      .create({ model, messages: [{ role: 'user', content }] })
      .withResponse();
  }

  it('lists exactly the compiled deployments, with the compiled ids', async () => {
    const served = await stack.litellm.client.deployments();
    const compiled = stack.config.model_list.map((d) => ({
      modelName: d.model_name,
      id: d.model_info.id,
      dbModel: false, // loaded from config.yaml, not from a database
    }));
    const byId = (a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id);
    expect(served.sort(byId)).toEqual(compiled.sort(byId));
    expect(served.map((d) => d.id)).toContain('fast/llama-small');
  });

  it('reads the compiled prices and context windows as numbers', async () => {
    const response = await fetch(`${stack.litellm.url}/v1/model/info?litellm_model_id=groq-llama`, {
      headers: { authorization: `Bearer ${stack.keys.master}` },
    });
    const body = (await response.json()) as {
      data: { litellm_params: Record<string, unknown>; model_info: Record<string, unknown> }[];
    };
    expect(body.data[0]?.litellm_params).toMatchObject({
      input_cost_per_token: 5e-8,
      output_cost_per_token: 8e-8,
    });
    expect(body.data[0]?.model_info).toMatchObject({ id: 'groq-llama', max_input_tokens: 1024 });
  });

  it('sends a request for profile "fast" to the upstream the policy ranks first (local Ollama)', async () => {
    const before = stack.fakes.groq.generations().length;
    const { data, response } = await chat('fast');
    expect(data.choices[0]?.message.content).toContain('reply from ollama-fake:llama3.1:8b');
    expect(response.headers.get('x-litellm-model-id')).toBe('fast/llama-small');
    expect(stack.fakes.ollama.generations().at(-1)?.model).toBe('llama3.1:8b');
    expect(stack.fakes.groq.generations().length).toBe(before);
  });

  it('applies profile params as presets on the upstream request', async () => {
    await chat('deep');
    const sent = stack.fakes.anthropic.generations().at(-1);
    expect(sent?.body.temperature).toBe(0.2);
  });

  it('passes each provider the key from its credential reference', async () => {
    await chat('groq-llama');
    expect(stack.fakes.groq.generations().at(-1)?.headers.authorization).toBe(
      `Bearer ${stack.keys.groq}`,
    );
    await chat('claude');
    expect(stack.fakes.anthropic.generations().at(-1)?.headers['x-api-key']).toBe(
      stack.keys.anthropic,
    );
  });

  it('streams a profile end to end', async () => {
    const stream = await stack.client.chat.completions.create({
      model: 'fast',
      stream: true,
      messages: [{ role: 'user', content: 'Stream please' }],
    });
    const parts: string[] = [];
    for await (const chunk of stream) parts.push(chunk.choices[0]?.delta?.content ?? '');
    expect(parts.filter(Boolean).length).toBeGreaterThan(1);
    expect(parts.join('')).toContain('reply from ollama-fake:llama3.1:8b');
  });

  it('streams through the Anthropic messages API as OpenAI chunks', async () => {
    const stream = await stack.client.chat.completions.create({
      model: 'deep',
      stream: true,
      messages: [{ role: 'user', content: 'Stream please' }],
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toContain('reply from anthropic-fake:claude-sonnet-4-20250514');
  });

  it('serves embeddings through a profile', async () => {
    const { data, response } = await stack.client.embeddings
      .create({ model: 'embed', input: ['one', 'three'] })
      .withResponse();
    expect(data.data).toHaveLength(2);
    expect(response.headers.get('x-litellm-model-id')).toBe('embed/embed-small');
  });

  it("sends a prompt longer than the first model's context window to the context-window fallback", async () => {
    const longPrompt = 'word '.repeat(3000); // ~3,750 fake tokens: over fast's 512 and 1,024 windows
    const { data, response } = await chat('fast', longPrompt);
    expect(response.headers.get('x-litellm-model-id')).toMatch(/^deep\//);
    expect(data.choices[0]?.message.content).toContain('reply from anthropic-fake');
  });

  it.each([500, 429] as const)(
    'falls back along the compiled chain when the first upstream answers %i',
    async (status) => {
      stack.fakes.ollama.setFault({ kind: 'status', status });
      const { data, response } = await chat('fast');
      const servedBy = response.headers.get('x-litellm-model-id');
      expect(servedBy).not.toBe('fast/llama-small');
      expect(['fast/groq-llama', 'deep/claude', 'deep/gpt-mini']).toContain(servedBy);
      expect(data.choices[0]?.message.content).toMatch(/reply from (groq|anthropic|openai)-fake/);
      expect(stack.fakes.ollama.generations().at(-1)?.outcome).toBe(status);
    },
  );

  it('falls back to the next profile when every deployment of the first fails', async () => {
    stack.fakes.ollama.setFault({ kind: 'status', status: 500 });
    stack.fakes.groq.setFault({ kind: 'status', status: 500 });
    const { data, response } = await chat('fast');
    expect(response.headers.get('x-litellm-model-id')).toBe('deep/claude');
    expect(data.choices[0]?.message.content).toContain('reply from anthropic-fake');
  });

  it('falls back when the first upstream never answers (provider timeout)', async () => {
    stack.fakes.ollama.setFault({ kind: 'timeout' });
    const started = Date.now();
    const { data, response } = await chat('fast');
    expect(response.headers.get('x-litellm-model-id')).not.toBe('fast/llama-small');
    expect(data.choices[0]?.message.content).toMatch(/reply from (groq|anthropic|openai)-fake/);
    expect(stack.fakes.ollama.generations().at(-1)?.outcome).toBe('timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_900); // waited for the 3s provider timeout
  });

  it('streams a slow first token without losing the reply', async () => {
    stack.fakes.ollama.setFault({ kind: 'slow-first-token', delayMs: 1_500 });
    const started = Date.now();
    const stream = await stack.client.chat.completions.create({
      model: 'fast',
      stream: true,
      messages: [{ role: 'user', content: 'slowly' }],
    });
    let firstTokenAt = 0;
    let text = '';
    for await (const chunk of stream) {
      const piece = chunk.choices[0]?.delta?.content ?? '';
      if (piece && !firstTokenAt) firstTokenAt = Date.now();
      text += piece;
    }
    expect(firstTokenAt - started).toBeGreaterThanOrEqual(1_400);
    expect(text).toContain('reply from ollama-fake:llama3.1:8b');
  });

  it('surfaces a rejected provider key as 401 to the client', async () => {
    stack.fakes.groq.setFault({ kind: 'status', status: 401 });
    await expect(chat('groq-llama')).rejects.toMatchObject({ status: 401 });
    expect(stack.fakes.groq.generations().at(-1)?.outcome).toBe(401);
  });
});
