import { randomUUID } from 'node:crypto';
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

/** A fake OpenAI-compatible API: /v1/chat/completions (and streaming), /v1/embeddings, /v1/models. */
export const openaiFlavour: Flavour = {
  presentedKey: (req) => /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1],
  authorized: (req, apiKey) => req.headers.authorization === `Bearer ${apiKey}`,
  errorBody: (status, message) => ({
    error: {
      message,
      type:
        status === 429
          ? 'rate_limit_exceeded'
          : status === 401
            ? 'invalid_request_error'
            : 'server_error',
      code: status === 401 ? 'invalid_api_key' : null,
    },
  }),
  isGeneration: (path) => /\/(chat\/completions|completions|embeddings)$/.test(path),
  async handle({ res, path, body, firstTokenDelayMs }, options) {
    const model = field(body.model, 'unknown');
    if (path.endsWith('/models')) {
      const ids = Object.keys(options.contextWindows ?? {});
      return sendJson(res, 200, {
        object: 'list',
        data: ids.map((id) => ({
          id,
          object: 'model',
          created: 1_700_000_000,
          owned_by: options.name,
        })),
      });
    }
    if (path.endsWith('/embeddings')) {
      const texts = inputs(body.input);
      const promptTokens = texts.reduce((sum, text) => sum + countTokens(text), 0);
      return sendJson(res, 200, {
        object: 'list',
        model,
        data: texts.map((text, index) => ({
          object: 'embedding',
          index,
          embedding: [text.length, 0.5, -0.25, index],
        })),
        usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
      });
    }
    if (!path.endsWith('/chat/completions'))
      return sendJson(res, 404, { error: { message: `no route ${path}` } });

    const promptTokens = countTokens(messagesText(body.messages));
    const window = options.contextWindows?.[model];
    if (window !== undefined && promptTokens > window) {
      return sendJson(res, 400, {
        error: {
          message: `This model's maximum context length is ${window} tokens. However, your messages resulted in ${promptTokens} tokens.`,
          type: 'invalid_request_error',
          code: 'context_length_exceeded',
        },
      });
    }
    const text = replyText(options.name, model, options.replyTokens);
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: options.replyTokens,
      total_tokens: promptTokens + options.replyTokens,
    };
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    if (body.stream !== true) {
      return sendJson(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [
          { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' },
        ],
        usage,
        service_tier: 'default',
        system_fingerprint: 'fp_fake',
      });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    if (firstTokenDelayMs > 0) await sleep(firstTokenDelayMs);
    const chunk = (
      delta: Record<string, unknown>,
      finish: string | null,
      extra: Record<string, unknown> = {},
    ): string =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`;
    res.write(chunk({ role: 'assistant', content: '' }, null));
    for (const piece of pieces(text)) {
      res.write(chunk({ content: piece }, null));
      await sleep(5);
    }
    res.write(chunk({}, 'stop'));
    const streamOptions = body.stream_options as { include_usage?: boolean } | undefined;
    if (streamOptions?.include_usage) {
      res.write(
        `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage })}\n\n`,
      );
    }
    res.end('data: [DONE]\n\n');
  },
};

export function startOpenAIFake(options: FakeOptions): Promise<FakeUpstream> {
  return startFake(openaiFlavour, options);
}
