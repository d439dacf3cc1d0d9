import { z } from 'zod';
import type { ModelsDialect, ProviderKindInfo } from '../policy/provider-kinds.js';
import { maskSecretsInText } from '../policy/secrets.js';
import { ModelCenterError } from '../shared/errors.js';
import { redactUrl } from '../shared/redact-url.js';

/**
 * Reads a provider's live model list in its own dialect: OpenAI-compatible `GET <base>/models`,
 * Ollama `GET /api/tags` (+ `POST /api/show` for the context length), Anthropic `GET /v1/models`,
 * Gemini `GET /v1beta/models`. Node's fetch, no SDK: four small, stable endpoints.
 */

/** Where and how to call a provider: its registry entry, base URL and key (a value, never logged). */
export interface ProviderTarget {
  info: ProviderKindInfo;
  baseUrl: string;
  key: string | undefined;
}

/** A model as the provider lists it; what it does not say stays undefined. */
export interface UpstreamModel {
  id: string;
  contextWindow?: number;
  maxOutput?: number;
  /** Capabilities the provider states (Ollama's `capabilities`, Gemini's generation methods). */
  capabilities?: string[];
}

export interface ModelList {
  models: UpstreamModel[];
  /** The list endpoint, without query string (never the key). */
  endpoint: string;
  latencyMs: number;
}

/** The provider refused or could not be reached; the message names the endpoint and what to check. */
export class ProviderCallError extends ModelCenterError {
  constructor(
    message: string,
    readonly endpoint: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

const TIMEOUT_MS = 15_000;
/** Ollama's /api/show per model, a few at a time. */
const SHOW_CONCURRENCY = 4;

export async function listModels(
  target: ProviderTarget,
  timeoutMs = TIMEOUT_MS,
): Promise<ModelList> {
  const started = performance.now();
  const dialect: ModelsDialect = target.info.modelsEndpoint;
  let result: { models: UpstreamModel[]; endpoint: string };
  switch (dialect) {
    case 'openai':
      result = await openaiModels(target, timeoutMs);
      break;
    case 'ollama':
      result = await ollamaModels(target, timeoutMs);
      break;
    case 'anthropic':
      result = await anthropicModels(target, timeoutMs);
      break;
    case 'gemini':
      result = await geminiModels(target, timeoutMs);
      break;
    case 'none':
      throw new ProviderCallError(
        `kind "${target.info.id}" has no models endpoint Model Center can read: declare its models in the policies`,
        target.baseUrl,
      );
  }
  return { ...result, latencyMs: Math.round(performance.now() - started) };
}

function authHeaders(target: ProviderTarget): Record<string, string> {
  const { key, info } = target;
  if (!key) return {};
  switch (info.auth) {
    case 'x-api-key':
      return { 'x-api-key': key };
    case 'google-api-key':
      return { 'x-goog-api-key': key };
    case 'api-key-header':
      return { 'api-key': key };
    case 'custom-header':
      return { [info.keyHeader ?? 'authorization']: key };
    default:
      return { authorization: `Bearer ${key}` };
  }
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

/** GET/POST one endpoint, parse its JSON with `schema`; every failure a ProviderCallError. */
async function call<T>(
  url: string,
  schema: z.ZodType<T>,
  target: ProviderTarget,
  timeoutMs: number,
  init: { method?: 'GET' | 'POST'; body?: unknown; headers?: Record<string, string> } = {},
): Promise<T> {
  // Shown in reports and errors: never the query or user-info, which may carry a key.
  const endpoint = redactUrl(url);
  let response: Response;
  try {
    response = await fetch(url, {
      method: init.method ?? 'GET',
      headers: {
        accept: 'application/json',
        ...(init.body !== undefined && { 'content-type': 'application/json' }),
        ...authHeaders(target),
        ...init.headers,
      },
      ...(init.body !== undefined && { body: JSON.stringify(init.body) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    const timedOut = (error as Error).name === 'TimeoutError';
    throw new ProviderCallError(
      timedOut
        ? `${endpoint} did not answer within ${timeoutMs / 1000} s — check the base_url and that the server is up`
        : `cannot reach ${endpoint} (${cause ?? maskSecretsInText((error as Error).message)}) — check the base_url and that the server is up`,
      endpoint,
    );
  }
  const text = await response.text();
  if (!response.ok) {
    const hint =
      response.status === 401 || response.status === 403
        ? 'the credential was refused: check the key and that it belongs to this provider'
        : response.status === 404
          ? 'no models list there: check the base_url (OpenAI-compatible servers usually end in /v1)'
          : 'the provider failed; try again later';
    throw new ProviderCallError(
      `${endpoint} answered ${response.status}: ${hint}`,
      endpoint,
      response.status,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ProviderCallError(
      `${endpoint} did not answer JSON — is this the right base_url?`,
      endpoint,
    );
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new ProviderCallError(
      `${endpoint} answered in an unexpected shape (${parsed.error.issues[0]?.message ?? 'invalid'} at ${parsed.error.issues[0]?.path.join('.') ?? ''}) — is this a ${target.info.modelsEndpoint}-style models endpoint?`,
      endpoint,
    );
  }
  return parsed.data;
}

const openaiList = z.object({
  data: z.array(
    z.object({
      id: z.string().min(1),
      context_length: z.number().int().positive().optional(),
      context_window: z.number().int().positive().optional(),
      max_model_len: z.number().int().positive().optional(),
    }),
  ),
});

async function openaiModels(target: ProviderTarget, timeoutMs: number) {
  const base = trimSlash(target.info.modelsBaseUrl ?? target.baseUrl);
  const url = `${base}/models`;
  const list = await call(url, openaiList, target, timeoutMs);
  return {
    endpoint: url,
    models: list.data.map((m) => {
      // OpenRouter says context_length, Groq context_window, vLLM max_model_len.
      const window = m.context_length ?? m.context_window ?? m.max_model_len;
      return { id: m.id, ...(window && { contextWindow: window }) };
    }),
  };
}

const ollamaTags = z.object({ models: z.array(z.object({ name: z.string().min(1) })) });
const ollamaShow = z.object({
  model_info: z.record(z.string(), z.unknown()).optional(),
  capabilities: z.array(z.string()).optional(),
});

async function ollamaModels(target: ProviderTarget, timeoutMs: number) {
  const base = trimSlash(target.baseUrl).replace(/\/v1$/, '');
  const url = `${base}/api/tags`;
  const tags = await call(url, ollamaTags, target, timeoutMs);
  const names = tags.models.map((m) => m.name);
  const models: UpstreamModel[] = new Array<UpstreamModel>(names.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < names.length) {
      const index = next++;
      const name = names[index]!;
      const show = await call(`${base}/api/show`, ollamaShow, target, timeoutMs, {
        method: 'POST',
        body: { model: name },
      });
      const window = Object.entries(show.model_info ?? {}).find(([k]) =>
        k.endsWith('.context_length'),
      )?.[1];
      models[index] = {
        id: name,
        ...(typeof window === 'number' && window > 0 && { contextWindow: window }),
        ...(show.capabilities && { capabilities: show.capabilities }),
      };
    }
  };
  await Promise.all(Array.from({ length: Math.min(SHOW_CONCURRENCY, names.length) }, worker));
  return { endpoint: url, models };
}

const anthropicPage = z.object({
  data: z.array(z.object({ id: z.string().min(1) })),
  has_more: z.boolean().optional(),
  last_id: z.string().nullable().optional(),
});

async function anthropicModels(target: ProviderTarget, timeoutMs: number) {
  const base = trimSlash(target.baseUrl).replace(/\/v1$/, '');
  const url = `${base}/v1/models`;
  const models: UpstreamModel[] = [];
  let after: string | undefined;
  for (let page = 0; page < 100; page++) {
    const query = new URLSearchParams({ limit: '1000', ...(after && { after_id: after }) });
    const answer = await call(`${url}?${query.toString()}`, anthropicPage, target, timeoutMs, {
      headers: { 'anthropic-version': '2023-06-01' },
    });
    models.push(...answer.data.map((m) => ({ id: m.id })));
    after = answer.last_id ?? answer.data.at(-1)?.id;
    if (!answer.has_more || !after) break;
  }
  return { endpoint: url, models };
}

const geminiPage = z.object({
  models: z
    .array(
      z.object({
        name: z.string().min(1),
        inputTokenLimit: z.number().int().positive().optional(),
        outputTokenLimit: z.number().int().positive().optional(),
        supportedGenerationMethods: z.array(z.string()).optional(),
      }),
    )
    .default([]),
  nextPageToken: z.string().optional(),
});

async function geminiModels(target: ProviderTarget, timeoutMs: number) {
  const base = trimSlash(target.baseUrl).replace(/\/v1(beta)?$/, '');
  const url = `${base}/v1beta/models`;
  const models: UpstreamModel[] = [];
  let token: string | undefined;
  for (let page = 0; page < 100; page++) {
    const query = new URLSearchParams({ pageSize: '1000', ...(token && { pageToken: token }) });
    const answer = await call(`${url}?${query.toString()}`, geminiPage, target, timeoutMs);
    for (const m of answer.models) {
      const methods = m.supportedGenerationMethods ?? [];
      models.push({
        id: m.name.replace(/^models\//, ''),
        ...(m.inputTokenLimit && { contextWindow: m.inputTokenLimit }),
        ...(m.outputTokenLimit && { maxOutput: m.outputTokenLimit }),
        capabilities: [
          ...(methods.includes('generateContent') ? ['chat'] : []),
          ...(methods.includes('embedContent') ? ['embedding'] : []),
        ],
      });
    }
    token = answer.nextPageToken;
    if (!token) break;
  }
  return { endpoint: url, models };
}
