import type { ProviderKind } from './schema.js';

/** What Model Center knows about each provider kind, so a policy names a kind and a key and nothing else. */
export interface ProviderKindInfo {
  /** LiteLLM's provider prefix for chat models: `<prefix>/<upstream model>`. */
  prefix: string;
  /** Prefix for embedding models, when it differs. */
  embeddingPrefix?: string;
  /** The provider's public API base; undefined where the user must give one. */
  defaultBaseUrl?: string;
  /** A base_url is required (self-hosted servers, Azure resources). */
  needsBaseUrl: boolean;
  /** Whether a credential is needed to call it. */
  needsCredential: boolean;
  /** Runs on the user's own hardware by default: zero marginal cost, private. */
  localByDefault: boolean;
  /** How its model list is read (for discovery). */
  modelsEndpoint: 'openai' | 'ollama' | 'anthropic' | 'gemini' | 'none';
}

const openaiCompatible = (
  defaultBaseUrl: string | undefined,
  prefix: string,
): ProviderKindInfo => ({
  prefix,
  defaultBaseUrl,
  needsBaseUrl: defaultBaseUrl === undefined,
  needsCredential: true,
  localByDefault: false,
  modelsEndpoint: 'openai',
});

const selfHosted = (defaultBaseUrl: string | undefined, prefix: string): ProviderKindInfo => ({
  ...openaiCompatible(defaultBaseUrl, prefix),
  needsCredential: false,
  localByDefault: true,
});

export const PROVIDER_KIND_INFO: Record<ProviderKind, ProviderKindInfo> = {
  openai: openaiCompatible('https://api.openai.com/v1', 'openai'),
  anthropic: {
    prefix: 'anthropic',
    defaultBaseUrl: 'https://api.anthropic.com',
    needsBaseUrl: false,
    needsCredential: true,
    localByDefault: false,
    modelsEndpoint: 'anthropic',
  },
  gemini: {
    prefix: 'gemini',
    defaultBaseUrl: 'https://generativelanguage.googleapis.com',
    needsBaseUrl: false,
    needsCredential: true,
    localByDefault: false,
    modelsEndpoint: 'gemini',
  },
  mistral: openaiCompatible('https://api.mistral.ai/v1', 'mistral'),
  cohere: {
    ...openaiCompatible('https://api.cohere.com', 'cohere_chat'),
    embeddingPrefix: 'cohere',
    modelsEndpoint: 'none',
  },
  groq: openaiCompatible('https://api.groq.com/openai/v1', 'groq'),
  deepseek: openaiCompatible('https://api.deepseek.com', 'deepseek'),
  xai: openaiCompatible('https://api.x.ai/v1', 'xai'),
  openrouter: openaiCompatible('https://openrouter.ai/api/v1', 'openrouter'),
  together: openaiCompatible('https://api.together.xyz/v1', 'together_ai'),
  fireworks: openaiCompatible('https://api.fireworks.ai/inference/v1', 'fireworks_ai'),
  perplexity: openaiCompatible('https://api.perplexity.ai', 'perplexity'),
  cerebras: openaiCompatible('https://api.cerebras.ai/v1', 'cerebras'),
  ollama: {
    prefix: 'ollama_chat',
    embeddingPrefix: 'ollama',
    defaultBaseUrl: 'http://localhost:11434',
    needsBaseUrl: false,
    needsCredential: false,
    localByDefault: true,
    modelsEndpoint: 'ollama',
  },
  vllm: selfHosted(undefined, 'hosted_vllm'),
  lmstudio: selfHosted('http://localhost:1234/v1', 'lm_studio'),
  llamacpp: selfHosted('http://localhost:8080/v1', 'openai'),
  azure: { ...openaiCompatible(undefined, 'azure'), modelsEndpoint: 'none' },
  bedrock: {
    prefix: 'bedrock',
    needsBaseUrl: false,
    needsCredential: false,
    localByDefault: false,
    modelsEndpoint: 'none',
  },
  vertex: {
    prefix: 'vertex_ai',
    needsBaseUrl: false,
    needsCredential: false,
    localByDefault: false,
    modelsEndpoint: 'none',
  },
  openai_compatible: { ...openaiCompatible(undefined, 'openai'), needsCredential: false },
};
