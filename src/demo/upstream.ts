import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Every answer of the demo upstream starts with this, so nobody mistakes it for a model. */
export const DEMO_LABEL = '[demo answer: Model Center local demo upstream, no provider key set]';

export interface DemoUpstream {
  /** Its OpenAI-compatible base URL, `http://127.0.0.1:PORT/v1`. */
  url: string;
  /** Requests answered so far. */
  answered(): number;
  close(): Promise<void>;
}

/**
 * A local OpenAI-compatible server on loopback that answers every chat, completion and embedding
 * request with a canned, clearly labelled demo answer (streaming too) and token counts, so the
 * whole loop — a request through LiteLLM, recorded, in the spend report — works before any
 * provider key is set. It never calls anything else.
 */
export async function startDemoUpstream(host = '127.0.0.1'): Promise<DemoUpstream> {
  let answered = 0;
  const server = createServer((request, response) => {
    void handle(request, response)
      .then((ok) => {
        if (ok) answered++;
      })
      .catch(() => {
        if (!response.headersSent) send(response, 500, { error: { message: 'demo failed' } });
        else response.end();
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}/v1`,
    answered: () => answered,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function handle(request: IncomingMessage, response: ServerResponse): Promise<boolean> {
  const route = (request.url ?? '').split('?')[0]!.replace(/^\/v1/, '');
  if (request.method === 'GET' && route === '/models') {
    send(response, 200, {
      object: 'list',
      data: [{ id: 'demo', object: 'model', owned_by: 'demo' }],
    });
    return false;
  }
  if (request.method !== 'POST') {
    send(response, 404, {
      error: { message: `the demo upstream has no ${request.method} ${route}` },
    });
    return false;
  }
  const body = await readJson(request);
  const model = typeof body.model === 'string' ? body.model : 'demo';
  if (route === '/embeddings') {
    const inputs = Array.isArray(body.input) ? body.input : [body.input];
    send(response, 200, {
      object: 'list',
      model,
      data: inputs.map((input, index) => ({
        object: 'embedding',
        index,
        embedding: embed(String(input)),
      })),
      usage: {
        prompt_tokens: tokens(JSON.stringify(inputs)),
        total_tokens: tokens(JSON.stringify(inputs)),
      },
    });
    return true;
  }
  if (route !== '/chat/completions' && route !== '/completions') {
    send(response, 404, { error: { message: `the demo upstream has no POST ${route}` } });
    return false;
  }
  const chat = route === '/chat/completions';
  const asked = chat
    ? lastUserText(body.messages)
    : typeof body.prompt === 'string'
      ? body.prompt
      : '';
  const text = `${DEMO_LABEL} You asked: "${asked.slice(0, 120)}". Set a provider key (OPENAI_API_KEY, …) and restart to get real answers.`;
  const usage = {
    prompt_tokens: tokens(chat ? JSON.stringify(body.messages ?? '') : asked),
    completion_tokens: tokens(text),
    total_tokens: 0,
  };
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  const id = `demo-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const created = Math.floor(Date.now() / 1000);
  if (body.stream !== true) {
    send(response, 200, {
      id,
      object: chat ? 'chat.completion' : 'text_completion',
      created,
      model,
      choices: [
        chat
          ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }
          : { index: 0, text, finish_reason: 'stop' },
      ],
      usage,
    });
    return true;
  }
  response.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  const object = chat ? 'chat.completion.chunk' : 'text_completion';
  const chunk = (choice: Record<string, unknown>, extra: Record<string, unknown> = {}): string =>
    `data: ${JSON.stringify({ id, object, created, model, choices: [choice], ...extra })}\n\n`;
  const words = text.split(/(?<= )/);
  for (const [i, word] of words.entries()) {
    const delta = chat
      ? { delta: { ...(i === 0 && { role: 'assistant' }), content: word } }
      : { text: word };
    response.write(chunk({ index: 0, ...delta, finish_reason: null }));
  }
  response.write(
    chunk({ index: 0, ...(chat ? { delta: {} } : { text: '' }), finish_reason: 'stop' }, { usage }),
  );
  response.end('data: [DONE]\n\n');
  return true;
}

function lastUserText(messages: unknown): string {
  if (!Array.isArray(messages)) return '';
  const user = [...(messages as unknown[])]
    .reverse()
    .find((m) => (m as { role?: string })?.role === 'user') as { content?: unknown } | undefined;
  const content = user?.content;
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part) =>
        typeof (part as { text?: unknown })?.text === 'string'
          ? (part as { text: string }).text
          : '',
      )
      .join(' ');
  }
  return '';
}

/** About four characters per token, as a rough English tokenizer counts. */
function tokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

/** A small deterministic vector, so the same input embeds the same. */
function embed(text: string): number[] {
  const vector = new Array<number>(8).fill(0);
  for (let i = 0; i < text.length; i++) vector[i % 8]! += text.charCodeAt(i) / 1000;
  const norm = Math.hypot(...vector) || 1;
  return vector.map((v) => v / norm);
}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > 8 * 1024 * 1024) break;
    chunks.push(chunk as Buffer);
  }
  try {
    const value = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}
