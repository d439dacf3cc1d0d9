import { PROVIDER_KIND_INFO } from '../policy/provider-kinds.js';
import type { Provider } from '../policy/schema.js';
import { describeError, ModelCenterError } from '../shared/errors.js';

/**
 * Probing a new credential before anything uses it: one read-only call to the provider's model
 * list with the new value (OpenAI-compatible `GET /models` with a bearer, Anthropic `GET /v1/models`
 * with `x-api-key`, Gemini `GET /v1beta/models` with `x-goog-api-key`). Kinds without such a list
 * (Azure, Bedrock, Vertex, Cohere) are probed through LiteLLM's `POST /health/test_connection`
 * with the deployment's parameters and the new key. The key travels in a header only, never in
 * a URL, so no message can carry it.
 */

/** The provider refused the new value (or could not be reached): nothing was changed. */
export class ProbeError extends ModelCenterError {
  constructor(
    message: string,
    readonly provider: string,
    readonly endpoint: string,
    readonly status: number | undefined,
  ) {
    super(message);
  }
}

export interface ProbeTarget {
  /** The provider's name in the policies. */
  name: string;
  provider: Provider;
}

/** Through LiteLLM, for kinds without a model list: its URL, master key and the deployment's params. */
export interface LiteLLMProbe {
  url: string;
  masterKey: string;
  litellmParams: Record<string, unknown>;
}

export interface ProbeResult {
  endpoint: string;
  status: number;
}

const PROBE_TIMEOUT_MS = 15_000;

/** Calls the provider with `value`; resolves when it is accepted, throws ProbeError otherwise. */
export async function probeCredential(
  target: ProbeTarget,
  value: string,
  options: { litellm?: () => LiteLLMProbe | undefined; timeoutMs?: number } = {},
): Promise<ProbeResult> {
  const { provider } = target;
  const info = PROVIDER_KIND_INFO[provider.kind];
  const base = (provider.base_url ?? info.defaultBaseUrl ?? '').replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? PROBE_TIMEOUT_MS;
  switch (info.modelsEndpoint) {
    case 'openai':
      return call(target, 'GET', `${base}/models`, { authorization: `Bearer ${value}` }, timeoutMs);
    case 'anthropic':
      return call(
        target,
        'GET',
        `${base.replace(/\/v1$/, '')}/v1/models`,
        { 'x-api-key': value, 'anthropic-version': '2023-06-01' },
        timeoutMs,
      );
    case 'gemini':
      return call(
        target,
        'GET',
        `${base.replace(/\/v1beta$/, '')}/v1beta/models`,
        { 'x-goog-api-key': value },
        timeoutMs,
      );
    case 'ollama':
    case 'none': {
      const litellm = options.litellm?.();
      if (!litellm) {
        throw new ProbeError(
          `cannot probe the new credential of provider "${target.name}" (kind ${provider.kind} has no model list, and no LiteLLM serves it to test the connection through) — nothing was changed`,
          target.name,
          'POST /health/test_connection',
          undefined,
        );
      }
      const endpoint = `${litellm.url.replace(/\/+$/, '')}/health/test_connection`;
      const result = await call(
        target,
        'POST',
        endpoint,
        { authorization: `Bearer ${litellm.masterKey}`, 'content-type': 'application/json' },
        timeoutMs,
        JSON.stringify({
          mode: 'chat',
          litellm_params: { ...litellm.litellmParams, api_key: value },
        }),
        (body) => (body as { status?: unknown } | undefined)?.status !== 'error',
      );
      return result;
    }
  }
}

async function call(
  target: ProbeTarget,
  method: 'GET' | 'POST',
  url: string,
  headers: Record<string, string>,
  timeoutMs: number,
  body?: string,
  accepted: (body: unknown) => boolean = () => true,
): Promise<ProbeResult> {
  const endpoint = `${method} ${url}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers,
      ...(body !== undefined && { body }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    throw new ProbeError(
      `the new credential of provider "${target.name}" could not be probed: ${endpoint} did not answer (${describeError(error)}) — nothing was changed; check that the provider is reachable`,
      target.name,
      endpoint,
      undefined,
    );
  }
  const text = await response.text().catch(() => '');
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (response.ok && accepted(parsed)) return { endpoint, status: response.status };
  const said = providerMessage(parsed);
  throw new ProbeError(
    `provider "${target.name}" refused the new credential: ${endpoint} answered ${response.status}${said ? ` ("${said}")` : ''} — nothing was changed; the old value keeps serving. Check the new value${response.status === 401 || response.status === 403 ? ' (wrong, revoked or lacking permission)' : ''}`,
    target.name,
    endpoint,
    response.status,
  );
}

/** The error sentence in a provider's answer, shortened. */
function providerMessage(body: unknown): string {
  if (!body || typeof body !== 'object') return '';
  const record = body as Record<string, unknown>;
  const error = record.error;
  const raw =
    typeof error === 'string'
      ? error
      : error && typeof error === 'object'
        ? (error as { message?: unknown }).message
        : (record.message ?? record.detail);
  const text = typeof raw === 'string' ? raw : '';
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
