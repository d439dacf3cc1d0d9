import { kindInfo } from '../policy/provider-kinds.js';
import type { Capability } from '../policy/schema.js';
import type { UpstreamModel } from './list-models.js';
import type { SeenModel } from './pool.js';
import type { PriceMap } from './price-map.js';

/** Ollama's and Gemini's capability words → ours. */
const STATED: Record<string, Capability[]> = {
  completion: ['chat', 'streaming'],
  chat: ['chat', 'streaming'],
  tools: ['tools'],
  vision: ['vision'],
  embedding: ['embedding'],
  thinking: ['reasoning'],
};

/**
 * A listed model with what the provider did not say filled in from LiteLLM's price map (the
 * provider's own figures win). With neither, capabilities are guessed from the name (an
 * "embed" model embeds; anything else chats) and marked as guessed.
 */
export function enrich(kind: string, model: UpstreamModel, prices: PriceMap): SeenModel {
  const info = kindInfo(kind);
  const known = prices.lookup([
    `${info.prefix}/${model.id}`,
    `${info.id}/${model.id}`,
    ...(info.embeddingPrefix ? [`${info.embeddingPrefix}/${model.id}`] : []),
    model.id,
  ]);
  const stated = [...new Set((model.capabilities ?? []).flatMap((c) => STATED[c] ?? []))];
  const fromProvider = stated.length > 0 || model.contextWindow !== undefined;
  const capabilities: Capability[] =
    stated.length > 0
      ? stated
      : (known?.capabilities ??
        (/embed/i.test(model.id) ? ['embedding'] : (['chat', 'streaming'] as Capability[])));
  const contextWindow = model.contextWindow ?? known?.contextWindow;
  const maxOutput = model.maxOutput ?? known?.maxOutput;
  return {
    upstream: model.id,
    ...(contextWindow && { contextWindow }),
    ...(maxOutput && { maxOutput }),
    ...(known?.pricing && { pricing: known.pricing }),
    capabilities: [...capabilities].sort(),
    filledFrom: fromProvider
      ? known
        ? 'provider+litellm-price-map'
        : 'provider'
      : known
        ? 'litellm-price-map'
        : 'guessed',
  };
}
