import axios, { type AxiosInstance, isAxiosError } from 'axios';
import type { z } from 'zod';
import { LiteLLMApiError } from './errors.js';
import { modelInfoSchema, readinessSchema, type Readiness } from './schema.js';

export interface DeploymentRef {
  modelName: string;
  id: string;
}

/** One LiteLLM instance's HTTP API: one axios instance, every answer parsed, every failure typed. */
export class LiteLLMClient {
  private readonly http: AxiosInstance;

  constructor(
    readonly baseUrl: string,
    masterKey: string,
    timeoutMs = 10_000,
  ) {
    this.http = axios.create({
      baseURL: baseUrl,
      timeout: timeoutMs,
      headers: { authorization: `Bearer ${masterKey}` },
      validateStatus: () => true,
      proxy: false,
    });
  }

  /** `/health/readiness`: public; 200 when the proxy can serve. */
  async readiness(): Promise<Readiness> {
    return this.get('/health/readiness', readinessSchema);
  }

  /** The deployments the running router holds (`/v1/model/info`), as (group, id) pairs. */
  async deployments(): Promise<DeploymentRef[]> {
    const info = await this.get('/v1/model/info', modelInfoSchema);
    return info.data.map((d) => ({ modelName: d.model_name, id: d.model_info.id }));
  }

  private async get<T extends z.ZodType>(route: string, schema: T): Promise<z.infer<T>> {
    let response;
    try {
      response = await this.http.get<unknown>(route);
    } catch (error) {
      const reason = isAxiosError(error) ? (error.code ?? error.message) : String(error);
      throw new LiteLLMApiError(`LiteLLM at ${this.baseUrl} did not answer ${route} (${reason}) — is it running and reachable?`, undefined, route);
    }
    if (response.status === 401 || response.status === 403) {
      throw new LiteLLMApiError(`LiteLLM at ${this.baseUrl} refused ${route} (${response.status}) — check that the master key matches LITELLM_MASTER_KEY of that instance`, response.status, route);
    }
    if (response.status >= 400) {
      throw new LiteLLMApiError(`LiteLLM at ${this.baseUrl} answered ${route} with ${response.status} — see its log`, response.status, route);
    }
    const parsed = schema.safeParse(response.data);
    if (!parsed.success) {
      throw new LiteLLMApiError(`LiteLLM at ${this.baseUrl} answered ${route} in an unexpected shape — is this the pinned LiteLLM version?`, response.status, route);
    }
    return parsed.data;
  }
}
