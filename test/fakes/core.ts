import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * What a fake upstream can be told to do instead of answering normally. `times` limits the fault
 * to the next N matching requests; `model` limits it to one upstream model.
 */
export type Fault =
  | { kind: 'status'; status: 401 | 429 | 500 | 503; times?: number; model?: string }
  | { kind: 'timeout'; times?: number; model?: string }
  | { kind: 'slow-first-token'; delayMs: number; times?: number; model?: string };

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
  model: string | undefined;
  /** The answer given: the HTTP status, or 'timeout' when the fake never answered. */
  outcome: number | 'timeout';
  /** The key the request carried (the flavour's auth header), if any. */
  key: string | undefined;
}

export interface FakeUpstream {
  name: string;
  url: string;
  port: number;
  requests: RecordedRequest[];
  /** Requests for completions/messages/chat (not model lists or metadata). */
  generations(): RecordedRequest[];
  setFault(fault: Fault | undefined): void;
  /**
   * From now on only these keys are accepted (a key rotation at the provider: the new key
   * becomes valid, the old one stays valid until it is revoked). Requests with others get 401.
   */
  acceptKeys(keys: readonly string[]): void;
  close(): Promise<void>;
}

export interface FakeOptions {
  /** Shown in replies, so a test can tell which upstream answered. */
  name: string;
  /** When set, requests without this key get the flavour's 401. */
  apiKey?: string;
  /** Several keys accepted at once (as during a rotation); combined with apiKey. */
  apiKeys?: readonly string[];
  /** Upstream model id → context window in tokens; longer prompts get a context-length error. */
  contextWindows?: Record<string, number>;
  /** Tokens in every reply (the fake's usage figures are exact, for cost checks). */
  replyTokens?: number;
  port?: number;
}

export interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  path: string;
  body: Record<string, unknown>;
  record: RecordedRequest;
  /** Set when the fault is slow-first-token: wait this long before the first streamed byte. */
  firstTokenDelayMs: number;
}

export type Handler = (
  exchange: Exchange,
  options: Required<Pick<FakeOptions, 'name' | 'replyTokens'>> & FakeOptions,
) => Promise<void> | void;

/** The flavour's own error body and auth check, so LiteLLM maps faults as it would for the real API. */
export interface Flavour {
  authorized(req: IncomingMessage, apiKey: string): boolean;
  /** The key a request presents, in this flavour's auth header. */
  presentedKey(req: IncomingMessage): string | undefined;
  errorBody(status: number, message: string): unknown;
  isGeneration(path: string): boolean;
  handle: Handler;
}

export async function startFake(flavour: Flavour, options: FakeOptions): Promise<FakeUpstream> {
  const requests: RecordedRequest[] = [];
  let fault: (Fault & { remaining: number }) | undefined;
  const hanging = new Set<ServerResponse>();
  const settings = { replyTokens: 16, ...options };
  let accepted: readonly string[] = [
    ...(options.apiKey ? [options.apiKey] : []),
    ...(options.apiKeys ?? []),
  ];

  const server: Server = createServer((req, res) => {
    void (async () => {
      const text = await readBody(req);
      let body: Record<string, unknown> = {};
      try {
        body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      } catch {
        body = {};
      }
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      const model = typeof body.model === 'string' ? body.model : undefined;
      const record: RecordedRequest = {
        method: req.method ?? 'GET',
        path,
        headers: req.headers,
        body,
        model,
        outcome: 200,
        key: flavour.presentedKey(req),
      };
      requests.push(record);
      res.on('finish', () => {
        record.outcome = res.statusCode;
      });

      if (accepted.length > 0 && !accepted.some((key) => flavour.authorized(req, key))) {
        return sendJson(res, 401, flavour.errorBody(401, 'Incorrect API key provided'));
      }
      let firstTokenDelayMs = 0;
      const active = fault;
      if (active && flavour.isGeneration(path) && (!active.model || active.model === model)) {
        active.remaining -= 1;
        if (active.remaining <= 0) fault = undefined;
        if (active.kind === 'status') {
          const message =
            active.status === 429 ? 'Rate limit reached, retry later' : `injected ${active.status}`;
          return sendJson(
            res,
            active.status,
            flavour.errorBody(active.status, message),
            active.status === 429 ? { 'retry-after': '0' } : {},
          );
        }
        if (active.kind === 'timeout') {
          record.outcome = 'timeout';
          hanging.add(res);
          return;
        }
        firstTokenDelayMs = active.delayMs;
      }
      await flavour.handle({ req, res, path, body, record, firstTokenDelayMs }, settings);
    })().catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: { message: String(error) } });
    });
  });

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    name: options.name,
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    generations: () => requests.filter((r) => flavour.isGeneration(r.path)),
    acceptKeys(keys) {
      accepted = [...keys];
    },
    setFault(next) {
      fault = next ? { ...next, remaining: next.times ?? Number.POSITIVE_INFINITY } : undefined;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** The fake's tokenizer: one token per 4 characters of text, rounded up. Deterministic. */
export function countTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

export function messagesText(messages: unknown): string {
  if (!Array.isArray(messages)) return '';
  return messages
    .map((m) => {
      const content = (m as { content?: unknown }).content;
      if (typeof content === 'string') return content;
      if (Array.isArray(content))
        return content.map((part) => (part as { text?: string }).text ?? '').join('');
      return '';
    })
    .join('\n');
}

/** A reply of exactly `tokens` fake tokens that names the upstream and model that made it. */
export function replyText(name: string, model: string, tokens: number): string {
  const base = `reply from ${name}:${model}`;
  const target = tokens * 4;
  return base.length >= target ? base.slice(0, target) : base + '.'.repeat(target - base.length);
}

/** Splits a reply into streamed pieces. */
export function pieces(text: string, count = 4): string[] {
  const size = Math.ceil(text.length / count);
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

/** A request field as text, or the fallback when it is missing or not a string. */
export function field(value: unknown, fallback = ''): string {
  return typeof value === 'string' ? value : fallback;
}

/** A request `input` (string or list of strings) as a list. */
export function inputs(value: unknown): string[] {
  return Array.isArray(value) ? value.map((v) => field(v)) : [field(value)];
}
