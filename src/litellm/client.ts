import { setTimeout as sleep } from 'node:timers/promises';
import axios, { type AxiosInstance, isAxiosError } from 'axios';
import type { z } from 'zod';
import { LiteLLMApiError } from './errors.js';
import {
  fastApiErrorBodySchema,
  modelInfoSchema,
  proxyErrorBodySchema,
  readinessSchema,
  type Readiness,
} from './schema.js';

export interface DeploymentRef {
  modelName: string;
  id: string;
  /** LiteLLM loaded it from its database (`model_info.db_model`), not from its own config.yaml. */
  dbModel: boolean;
}

export type HttpMethod = 'GET' | 'POST' | 'PATCH';

/**
 * Says what to do about a failed call, given LiteLLM's status and message; undefined for the
 * generic advice. Lets a subclass map route-specific answers to a sentence a person can act on.
 */
export type Advice = (status: number, serverMessage: string) => string | undefined;

/** One LiteLLM instance's HTTP API: one axios instance, every answer parsed, every failure typed. */
export class LiteLLMClient {
  private readonly http: AxiosInstance;
  private readonly masterKey: () => string;

  constructor(
    readonly baseUrl: string,
    /** The master key, or where to read it at every call (it changes when it is rotated). */
    masterKey: string | (() => string),
    timeoutMs = 10_000,
  ) {
    this.masterKey = typeof masterKey === 'function' ? masterKey : () => masterKey;
    this.http = axios.create({
      baseURL: baseUrl,
      timeout: timeoutMs,
      validateStatus: () => true,
      proxy: false,
    });
  }

  /** `/health/readiness`: public; 200 when the proxy can serve. */
  async readiness(): Promise<Readiness> {
    return this.request('GET', '/health/readiness', readinessSchema);
  }

  /**
   * Polls `/health/readiness` until it answers 200 ('ready'), `givenUp()` turns true ('gave-up':
   * e.g. the process exited), or `timeoutMs` passes (throws the last failure).
   */
  async waitReady(
    timeoutMs: number,
    options: { intervalMs?: number; givenUp?: () => boolean } = {},
  ): Promise<'ready' | 'gave-up'> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (options.givenUp?.()) return 'gave-up';
      try {
        await this.readiness();
        return 'ready';
      } catch (error) {
        if (Date.now() > deadline) throw error;
      }
      await sleep(options.intervalMs ?? 100);
    }
  }

  /** The deployments the running router holds (`/v1/model/info`), as (group, id) pairs. */
  async deployments(): Promise<DeploymentRef[]> {
    const info = await this.request('GET', '/v1/model/info', modelInfoSchema);
    return info.data.map((d) => ({
      modelName: d.model_name,
      id: d.model_info.id,
      dbModel: d.model_info.db_model === true,
    }));
  }

  protected async request<T extends z.ZodType>(
    method: HttpMethod,
    route: string,
    schema: T,
    body?: unknown,
    advice?: Advice,
    /** Query parameters (axios encodes them). */
    params?: Record<string, string | number | boolean>,
  ): Promise<z.infer<T>> {
    const call = `${method === 'GET' ? '' : `${method} `}${route}`;
    let response;
    try {
      response = await this.http.request<unknown>({
        method,
        url: route,
        data: body,
        params,
        headers: { authorization: `Bearer ${this.masterKey()}` },
      });
    } catch (error) {
      const reason = isAxiosError(error) ? (error.code ?? error.message) : String(error);
      throw new LiteLLMApiError(
        `LiteLLM at ${this.baseUrl} did not answer ${call} (${reason}) — is it running and reachable?`,
        undefined,
        route,
      );
    }
    if (response.status === 401 || response.status === 403) {
      // LiteLLM also answers 401 for a missing database on some routes (/spend/logs/v2).
      const todo =
        advice?.(response.status, serverMessage(response.data)) ??
        'check that the master key matches LITELLM_MASTER_KEY of that instance';
      throw new LiteLLMApiError(
        `LiteLLM at ${this.baseUrl} refused ${call} (${response.status}) — ${todo}`,
        response.status,
        route,
      );
    }
    if (response.status >= 400) {
      const said = serverMessage(response.data);
      const todo = advice?.(response.status, said) ?? 'see its log';
      throw new LiteLLMApiError(
        `LiteLLM at ${this.baseUrl} answered ${call} with ${response.status}${said ? ` ("${said}")` : ''} — ${todo}`,
        response.status,
        route,
      );
    }
    const parsed = schema.safeParse(response.data);
    if (!parsed.success) {
      throw new LiteLLMApiError(
        `LiteLLM at ${this.baseUrl} answered ${call} in an unexpected shape — is this the pinned LiteLLM version?`,
        response.status,
        route,
      );
    }
    return parsed.data;
  }
}

/** The message inside one of LiteLLM's error bodies, shortened; '' when there is none. */
function serverMessage(data: unknown): string {
  const proxyError = proxyErrorBodySchema.safeParse(data);
  const fastApiError = fastApiErrorBodySchema.safeParse(data);
  const raw = proxyError.success
    ? proxyError.data.error.message
    : fastApiError.success
      ? fastApiError.data.detail
      : '';
  const text = typeof raw === 'string' ? raw : JSON.stringify(raw);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
