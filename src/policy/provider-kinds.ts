import { LITELLM_OPENAI_COMPATIBLE } from './provider-kinds.generated.js';

/**
 * The registry of known providers: what Model Center knows about each `kind:`, so a policy names a
 * kind and a credential and nothing else. Two halves: every OpenAI-compatible provider the pinned
 * LiteLLM knows (provider-kinds.generated.ts, generated from the installed package by
 * scripts/generate-provider-registry.ts, never retyped), and the natives, local servers and ids
 * users of comparable tools expect (below, by hand). A hand entry with a LiteLLM id refines the
 * generated one (a local server's default address, a models list elsewhere than `<base>/models`).
 * test/integration/provider-registry.test.ts checks every entry against the pinned LiteLLM.
 */

/** How a provider lists its models: the dialect of its models endpoint. */
export type ModelsDialect = 'openai' | 'ollama' | 'anthropic' | 'gemini' | 'none';

/** How the credential is sent. */
export type AuthStyle =
  /** `Authorization: Bearer <key>` */
  | 'bearer'
  /** `x-api-key: <key>` (Anthropic) */
  | 'x-api-key'
  /** `?key=<key>` or `x-goog-api-key` (Gemini) */
  | 'google-api-key'
  /** `api-key: <key>` (Azure OpenAI) */
  | 'api-key-header'
  /** a provider-specific header, named in `keyHeader` */
  | 'custom-header'
  /** AWS signature from the AWS credential chain (Bedrock) */
  | 'aws'
  /** Google application default credentials (Vertex AI) */
  | 'google-adc'
  /** no key by default (local servers); a bearer key when one is given */
  | 'none';

export interface ProviderKindInfo {
  /** The kind's canonical id (an alias points here). */
  id: string;
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
  /** Environment variables that conventionally hold its key, most usual first. */
  keyVariables: readonly string[];
  /** Environment variables that conventionally hold its base URL. */
  baseUrlVariables: readonly string[];
  auth: AuthStyle;
  /** The header for `custom-header` auth. */
  keyHeader?: string;
  /** Runs on the user's own hardware by default: zero marginal cost, private. */
  localByDefault: boolean;
  /** How its model list is read (for discovery and `providers test`). */
  modelsEndpoint: ModelsDialect;
  /** The list's base when it is not the API base (DeepSeek's beta base has no /models). */
  modelsBaseUrl?: string;
  /** Where the entry comes from. */
  source: 'litellm:providers.json' | 'litellm:openai_compatible_providers' | 'model-center';
  /** Set on an alias: the canonical kind it stands for. */
  aliasOf?: string;
}

type HandEntry = Omit<ProviderKindInfo, 'id' | 'source' | 'aliasOf'>;

const remote = (
  prefix: string,
  defaultBaseUrl: string | undefined,
  keyVariables: readonly string[],
  more: Partial<HandEntry> = {},
): HandEntry => ({
  prefix,
  defaultBaseUrl,
  needsBaseUrl: defaultBaseUrl === undefined,
  needsCredential: true,
  keyVariables,
  baseUrlVariables: [],
  auth: 'bearer',
  localByDefault: false,
  modelsEndpoint: 'openai',
  ...more,
});

const selfHosted = (
  prefix: string,
  defaultBaseUrl: string | undefined,
  keyVariables: readonly string[],
  more: Partial<HandEntry> = {},
): HandEntry => ({
  ...remote(prefix, defaultBaseUrl, keyVariables),
  needsCredential: false,
  auth: 'none',
  localByDefault: true,
  ...more,
});

/** Natives and the ids people expect that LiteLLM's OpenAI-compatible lists do not carry. */
const HAND: Record<string, HandEntry> = {
  openai: remote('openai', 'https://api.openai.com/v1', ['OPENAI_API_KEY'], {
    baseUrlVariables: ['OPENAI_BASE_URL', 'OPENAI_API_BASE'],
  }),
  anthropic: remote('anthropic', 'https://api.anthropic.com', ['ANTHROPIC_API_KEY'], {
    baseUrlVariables: ['ANTHROPIC_BASE_URL', 'ANTHROPIC_API_BASE'],
    auth: 'x-api-key',
    modelsEndpoint: 'anthropic',
  }),
  gemini: remote(
    'gemini',
    'https://generativelanguage.googleapis.com',
    ['GEMINI_API_KEY', 'GOOGLE_API_KEY'],
    { auth: 'google-api-key', modelsEndpoint: 'gemini' },
  ),
  mistral: remote('mistral', 'https://api.mistral.ai/v1', ['MISTRAL_API_KEY'], {
    baseUrlVariables: ['MISTRAL_API_BASE'],
  }),
  cohere: remote('cohere_chat', 'https://api.cohere.com', ['COHERE_API_KEY', 'CO_API_KEY'], {
    embeddingPrefix: 'cohere',
    modelsEndpoint: 'none',
  }),
  openrouter: remote('openrouter', 'https://openrouter.ai/api/v1', ['OPENROUTER_API_KEY'], {
    baseUrlVariables: ['OPENROUTER_API_BASE'],
  }),
  minimax: remote('minimax', 'https://api.minimax.io/v1', ['MINIMAX_API_KEY'], {
    baseUrlVariables: ['MINIMAX_API_BASE'],
  }),
  // Not LiteLLM providers: reached as OpenAI-compatible endpoints through LiteLLM's openai/.
  stepfun: remote('openai', 'https://api.stepfun.com/v1', ['STEPFUN_API_KEY']),
  yi: remote('openai', 'https://api.lingyiwanwu.com/v1', ['YI_API_KEY', 'LINGYIWANWU_API_KEY']),
  azure: remote('azure', undefined, ['AZURE_API_KEY', 'AZURE_OPENAI_API_KEY'], {
    baseUrlVariables: ['AZURE_API_BASE', 'AZURE_OPENAI_ENDPOINT'],
    auth: 'api-key-header',
    modelsEndpoint: 'none',
  }),
  bedrock: {
    ...remote('bedrock', undefined, ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']),
    needsBaseUrl: false,
    needsCredential: false,
    auth: 'aws',
    modelsEndpoint: 'none',
  },
  vertex: {
    ...remote('vertex_ai', undefined, ['GOOGLE_APPLICATION_CREDENTIALS']),
    needsBaseUrl: false,
    needsCredential: false,
    auth: 'google-adc',
    modelsEndpoint: 'none',
  },
  ollama: selfHosted('ollama_chat', 'http://localhost:11434', ['OLLAMA_API_KEY'], {
    embeddingPrefix: 'ollama',
    baseUrlVariables: ['OLLAMA_HOST', 'OLLAMA_BASE_URL', 'OLLAMA_API_BASE'],
    modelsEndpoint: 'ollama',
  }),
  llamacpp: selfHosted('openai', 'http://localhost:8080/v1', ['LLAMACPP_API_KEY']),
  localai: selfHosted('openai', 'http://localhost:8080/v1', ['LOCALAI_API_KEY']),
  openai_compatible: { ...selfHosted('openai', undefined, []), localByDefault: false },
};

/** Refinements of LiteLLM's own entries (same id): local servers, a models list elsewhere. */
const REFINE: Record<string, Partial<HandEntry>> = {
  lm_studio: {
    defaultBaseUrl: 'http://localhost:1234/v1',
    needsBaseUrl: false,
    needsCredential: false,
    auth: 'none',
    localByDefault: true,
  },
  hosted_vllm: { needsCredential: false, auth: 'none', localByDefault: true },
  llamafile: { needsCredential: false, auth: 'none', localByDefault: true },
  docker_model_runner: { needsCredential: false, auth: 'none', localByDefault: true },
  litellm_proxy: { needsCredential: false },
  deepseek: { modelsBaseUrl: 'https://api.deepseek.com' },
};

/** Other names for a kind, as users of comparable tools write them. */
const ALIASES: Record<string, string> = {
  together: 'together_ai',
  fireworks: 'fireworks_ai',
  featherless: 'featherless_ai',
  zhipu: 'zai',
  glm: 'zai',
  qwen: 'dashscope',
  '01.ai': 'yi',
  lmstudio: 'lm_studio',
  vllm: 'hosted_vllm',
  nvidia: 'nvidia_nim',
  vertex_ai: 'vertex',
};

function fromLiteLLM(entry: (typeof LITELLM_OPENAI_COMPATIBLE)[number]): ProviderKindInfo {
  const keyHeader = 'keyHeader' in entry ? entry.keyHeader : undefined;
  return {
    id: entry.id,
    prefix: entry.id,
    ...(entry.baseUrl !== undefined && { defaultBaseUrl: entry.baseUrl }),
    needsBaseUrl: entry.baseUrl === undefined,
    needsCredential: true,
    keyVariables: entry.keyVariables,
    baseUrlVariables: entry.baseUrlVariables,
    auth: keyHeader ? 'custom-header' : 'bearer',
    ...(keyHeader && { keyHeader }),
    localByDefault: false,
    modelsEndpoint: 'openai',
    source: `litellm:${entry.source}`,
    ...REFINE[entry.id],
  };
}

function buildRegistry(): Record<string, ProviderKindInfo> {
  const kinds: Record<string, ProviderKindInfo> = {};
  for (const entry of LITELLM_OPENAI_COMPATIBLE) kinds[entry.id] = fromLiteLLM(entry);
  for (const [id, entry] of Object.entries(HAND)) {
    kinds[id] = { id, ...entry, source: 'model-center' };
  }
  for (const [alias, target] of Object.entries(ALIASES)) {
    const canonical = kinds[target];
    if (!canonical) throw new Error(`provider kind alias ${alias} → unknown kind ${target}`);
    kinds[alias] = { ...canonical, aliasOf: target };
  }
  return Object.fromEntries(Object.entries(kinds).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export const PROVIDER_KIND_INFO: Readonly<Record<string, ProviderKindInfo>> = buildRegistry();

/** Every kind a policy may name (canonical ids and aliases), sorted. */
export const PROVIDER_KINDS = Object.keys(PROVIDER_KIND_INFO) as [string, ...string[]];
export type ProviderKind = string;

/** The registry entry of a kind the schema accepted. */
export function kindInfo(kind: ProviderKind): ProviderKindInfo {
  const info = PROVIDER_KIND_INFO[kind];
  if (!info) throw new Error(`unknown provider kind ${kind}`);
  return info;
}
