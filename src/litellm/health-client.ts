import { z } from 'zod';
import { LiteLLMClient } from './client.js';

/** One entry of `/health`: the pinned LiteLLM adds the deployment's `model_id` (facts §8). */
const endpointSchema = z.looseObject({
  model_id: z.string().optional(),
  model: z.string().optional(),
  error: z.unknown().optional(),
});

export const healthAnswerSchema = z.looseObject({
  healthy_endpoints: z.array(endpointSchema).default([]),
  unhealthy_endpoints: z.array(endpointSchema).default([]),
});

/** One deployment's latest background probe. */
export interface ProbeResult {
  deploymentId: string;
  healthy: boolean;
  /** LiteLLM's error text for an unhealthy one, shortened. */
  error?: string;
}

/** LiteLLM's `/health`, read with the master key. */
export class LiteLLMHealthClient extends LiteLLMClient {
  /**
   * The latest background probe of every deployment that has one. With background checks on,
   * LiteLLM answers from its cache and calls no provider; entries without a `model_id` (older
   * versions) are skipped: they cannot be matched to a deployment.
   */
  async probes(): Promise<ProbeResult[]> {
    const answer = await this.request('GET', '/health', healthAnswerSchema);
    const results: ProbeResult[] = [];
    for (const entry of answer.healthy_endpoints) {
      if (entry.model_id) results.push({ deploymentId: entry.model_id, healthy: true });
    }
    for (const entry of answer.unhealthy_endpoints) {
      if (!entry.model_id) continue;
      const text = typeof entry.error === 'string' ? entry.error : JSON.stringify(entry.error);
      results.push({
        deploymentId: entry.model_id,
        healthy: false,
        ...(text && { error: text.length > 300 ? `${text.slice(0, 300)}…` : text }),
      });
    }
    return results;
  }
}
