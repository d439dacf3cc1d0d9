import {
  countTokens,
  field,
  inputs,
  type FakeOptions,
  type FakeUpstream,
  type Flavour,
  messagesText,
  pieces,
  replyText,
  sendJson,
  sleep,
  startFake,
} from './core.js';

/** A fake Ollama server: /api/chat, /api/generate, /api/embed, /api/tags, /api/show. */
export const ollamaFlavour: Flavour = {
  presentedKey: (req) => /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1],
  authorized: (req, apiKey) => req.headers.authorization === `Bearer ${apiKey}`,
  errorBody: (_status, message) => ({ error: message }),
  isGeneration: (path) => /^\/api\/(chat|generate|embed|embeddings)$/.test(path),
  async handle({ res, path, body, firstTokenDelayMs }, options) {
    const model = field(body.model, field(body.name, 'unknown'));
    const windows = options.contextWindows ?? {};
    if (path === '/api/tags') {
      return sendJson(res, 200, {
        models: Object.keys(windows).map((name) => ({
          name,
          model: name,
          modified_at: '2026-01-01T00:00:00Z',
          size: 4_900_000_000,
          digest: 'sha256:0000',
          details: { family: 'llama', parameter_size: '8B', quantization_level: 'Q4_K_M' },
        })),
      });
    }
    if (path === '/api/show') {
      return sendJson(res, 200, {
        modelfile: '',
        parameters: '',
        template: '{{ .Prompt }}',
        details: { family: 'llama', parameter_size: '8B' },
        model_info: { 'llama.context_length': windows[model] ?? 8192 },
        capabilities: ['completion'],
      });
    }
    if (path === '/api/embed' || path === '/api/embeddings') {
      const texts = inputs(body.input ?? body.prompt);
      const promptTokens = texts.reduce((sum, text) => sum + countTokens(text), 0);
      if (path === '/api/embeddings')
        return sendJson(res, 200, { embedding: [texts[0]?.length ?? 0, 0.5] });
      return sendJson(res, 200, {
        model,
        embeddings: texts.map((t) => [t.length, 0.5, -0.25]),
        prompt_eval_count: promptTokens,
      });
    }
    if (path !== '/api/chat' && path !== '/api/generate')
      return sendJson(res, 404, { error: `no route ${path}` });

    const promptText = path === '/api/chat' ? messagesText(body.messages) : field(body.prompt);
    const promptTokens = countTokens(promptText);
    const window = windows[model];
    if (window !== undefined && promptTokens > window) {
      return sendJson(res, 400, {
        error: `prompt too long; exceeded max context length by ${promptTokens - window} tokens`,
      });
    }
    const text = replyText(options.name, model, options.replyTokens);
    const final = {
      model,
      created_at: new Date().toISOString(),
      done: true,
      done_reason: 'stop',
      total_duration: 1_000_000,
      load_duration: 1000,
      prompt_eval_count: promptTokens,
      eval_count: options.replyTokens,
    };
    const message = (content: string): Record<string, unknown> =>
      path === '/api/chat' ? { message: { role: 'assistant', content } } : { response: content };
    if (body.stream === false) {
      return sendJson(res, 200, { ...final, ...message(text) });
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    if (firstTokenDelayMs > 0) await sleep(firstTokenDelayMs);
    for (const piece of pieces(text)) {
      res.write(
        `${JSON.stringify({ model, created_at: new Date().toISOString(), done: false, ...message(piece) })}\n`,
      );
      await sleep(5);
    }
    res.end(`${JSON.stringify({ ...final, ...message('') })}\n`);
  },
};

export function startOllamaFake(options: FakeOptions): Promise<FakeUpstream> {
  return startFake(ollamaFlavour, options);
}
