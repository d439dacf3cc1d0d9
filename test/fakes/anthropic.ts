import { randomUUID } from 'node:crypto';
import {
  countTokens,
  field,
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

const ERROR_TYPES: Record<number, string> = {
  401: 'authentication_error',
  429: 'rate_limit_error',
  500: 'api_error',
  503: 'overloaded_error',
};

/** A fake Anthropic Messages API: POST /v1/messages, plain and streamed (SSE events). */
export const anthropicFlavour: Flavour = {
  presentedKey: (req) => {
    const key = req.headers['x-api-key'];
    return typeof key === 'string' ? key : undefined;
  },
  authorized: (req, apiKey) => req.headers['x-api-key'] === apiKey,
  errorBody: (status, message) => ({
    type: 'error',
    error: { type: ERROR_TYPES[status] ?? 'api_error', message },
  }),
  isGeneration: (path) => path.endsWith('/messages'),
  async handle({ res, path, body, firstTokenDelayMs }, options) {
    if (path.endsWith('/models')) {
      return sendJson(res, 200, {
        data: Object.keys(options.contextWindows ?? {}).map((id) => ({
          id,
          type: 'model',
          display_name: id,
          created_at: '2026-01-01T00:00:00Z',
        })),
        has_more: false,
      });
    }
    if (!path.endsWith('/messages'))
      return sendJson(res, 404, anthropicFlavour.errorBody(404, `no route ${path}`));
    const model = field(body.model, 'unknown');
    const system = typeof body.system === 'string' ? body.system : messagesText(body.system);
    const inputTokens = countTokens(
      [system, messagesText(body.messages)].filter(Boolean).join('\n'),
    );
    const window = options.contextWindows?.[model];
    if (window !== undefined && inputTokens > window) {
      return sendJson(
        res,
        400,
        anthropicFlavour.errorBody(
          400,
          `prompt is too long: ${inputTokens} tokens > ${window} maximum`,
        ),
      );
    }
    const text = replyText(options.name, model, options.replyTokens);
    const id = `msg_${randomUUID().replace(/-/g, '')}`;
    const usage = { input_tokens: inputTokens, output_tokens: options.replyTokens };
    if (body.stream !== true) {
      return sendJson(res, 200, {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content: [{ type: 'text', text }],
        stop_reason: 'end_turn',
        stop_sequence: null,
        usage,
      });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const event = (type: string, data: Record<string, unknown>): boolean =>
      res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
    if (firstTokenDelayMs > 0) await sleep(firstTokenDelayMs);
    event('message_start', {
      message: {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: inputTokens, output_tokens: 1 },
      },
    });
    event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
    for (const piece of pieces(text)) {
      event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: piece } });
      await sleep(5);
    }
    event('content_block_stop', { index: 0 });
    event('message_delta', {
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { output_tokens: options.replyTokens },
    });
    event('message_stop', {});
    res.end();
  },
};

export function startAnthropicFake(options: FakeOptions): Promise<FakeUpstream> {
  return startFake(anthropicFlavour, options);
}
