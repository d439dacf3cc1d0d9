import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type OpenAI from 'openai';
import { ingestOnce, type IngestOptions } from '../../src/spend/ingest.js';
import { countRawRows } from '../../src/store/ledger.js';
import type { Fakes } from './stack.js';
import { scaled } from './timing.js';

/** USD per million tokens in the spend scenario: large, so costs are whole cents. */
export const PRICES = {
  'gpt-mini': { input: 1000, output: 3000 },
  'groq-llama': { input: 200, output: 400 },
} as const;

/** OpenAI, Groq and Ollama fakes; a `fast` profile (Ollama first, then Groq); goals and a budget. */
export function spendPolicies(fakes: Fakes): string {
  return `
providers:
  local-ollama:
    kind: ollama
    base_url: ${fakes.ollama.url}
  groq:
    kind: groq
    base_url: ${fakes.groq.url}/v1
    credential: env:GROQ_API_KEY
  openai:
    kind: openai
    base_url: ${fakes.openai.url}/v1
    credential: env:OPENAI_API_KEY
models:
  llama-small:
    provider: local-ollama
    upstream: llama3.1:8b
    capabilities: [chat, streaming]
    context_window: 512
  groq-llama:
    provider: groq
    upstream: llama-3.3-70b-versatile
    capabilities: [chat, streaming]
    context_window: 1024
    pricing: { input_per_mtok: ${PRICES['groq-llama'].input}, output_per_mtok: ${PRICES['groq-llama'].output} }
  gpt-mini:
    provider: openai
    upstream: gpt-4o-mini
    capabilities: [chat, streaming]
    context_window: 128000
    pricing: { input_per_mtok: ${PRICES['gpt-mini'].input}, output_per_mtok: ${PRICES['gpt-mini'].output} }
profiles:
  fast:
    requires: [chat, streaming]
    models: [llama-small, groq-llama]
    prefer: [local]
callers:
  alice: { description: Alice's agent }
goals:
  q-report:
    title: Quarterly report
    owner: alice
  budgeted:
    title: A goal with a small budget
    budget: { usd: 0.6, period: 7d, alert_at: [0.8, 1.0] }
routing:
  retries: 0
  allowed_fails: 1000
  cooldown: 1s
`;
}

/** Ingests until the ledger holds `rows` raw rows (LiteLLM logs after answering), or times out. */
export async function ingestUntil(
  options: IngestOptions,
  rows: number,
  timeoutMs = 15_000,
): Promise<number> {
  const deadline = Date.now() + scaled(timeoutMs);
  for (;;) {
    await ingestOnce(options);
    const count = await countRawRows(options.db);
    if (count >= rows || Date.now() > deadline) return count;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface SentRequest {
  callId: string;
  goal: string | null;
  promptTokens: number;
  completionTokens: number;
}

/** One chat request with tags or metadata; returns the call id and the usage the upstream reported. */
export async function chat(
  client: OpenAI,
  model: string,
  context: { tags?: string[]; metadata?: Record<string, string> },
  content = 'hello ledger',
): Promise<SentRequest> {
  const { data, response } = await client.chat.completions
    .create({
      model,
      messages: [{ role: 'user', content }],
      ...(context.tags && { tags: context.tags }),
      ...(context.metadata && { metadata: context.metadata }),
    } as OpenAI.ChatCompletionCreateParamsNonStreaming)
    .withResponse();
  const goalTag = context.tags?.find((t) => t.startsWith('goal:'))?.slice(5);
  return {
    callId: response.headers.get('x-litellm-call-id') ?? '',
    goal: goalTag ?? context.metadata?.goal ?? null,
    promptTokens: data.usage?.prompt_tokens ?? -1,
    completionTokens: data.usage?.completion_tokens ?? -1,
  };
}

export interface WebhookReceiver {
  url: string;
  received: unknown[];
  close(): Promise<void>;
}

/** A loopback HTTP server that records every JSON body POSTed to it. */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: unknown[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`,
    received,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
