import { durationSeconds } from '../shared/duration.js';
import { keepsContent, type Entry, type PolicySet } from '../policy/policy-set.js';
import { kindInfo } from '../policy/provider-kinds.js';
import {
  CREDENTIAL_REFERENCE,
  type Cache,
  type Model,
  type Profile,
  type Provider,
} from '../policy/schema.js';
import { selectModels } from '../policy/select.js';
import type {
  FallbackList,
  LiteLLMConfig,
  LiteLLMDeployment,
  LiteLLMModelInfo,
  LiteLLMParams,
} from './litellm-config.js';

/** The environment variable LiteLLM reads its master key from (never a literal in the file). */
export const MASTER_KEY_ENV = 'LITELLM_MASTER_KEY';

/** The spool callback (litellm/modelcenter_spool.py) that feeds the spend ledger; always wired in. */
export const SPOOL_CALLBACK = 'modelcenter_spool.proxy_handler_instance';

/**
 * The same callback keeping prompts and responses whatever MODELCENTER_SPOOL_KEEP_CONTENT says:
 * wired instead of SPOOL_CALLBACK when the policies set `spend.keep_content`, so the choice is in
 * the committed config (diff, provenance) and holds for LiteLLM instances the controller does not start.
 */
export const SPOOL_CONTENT_CALLBACK = 'modelcenter_spool.content_handler_instance';

/** Placeholder key for keyless OpenAI-compatible servers: LiteLLM's OpenAI client refuses an empty one. */
const KEYLESS_PLACEHOLDER = 'no-key-required';

/** `env:NAME` → `os.environ/NAME`; `secret:name` → the variable the secret store exports it as. */
export function credentialEnvRef(reference: string): string {
  return `os.environ/${credentialEnvName(reference)}`;
}

export function credentialEnvName(reference: string): string {
  if (reference.startsWith('env:')) return reference.slice(4);
  return `MODELCENTER_SECRET_${reference
    .slice('secret:'.length)
    .toUpperCase()
    .replace(/[^A-Z0-9]/g, '_')}`;
}

/** Deployment id of a catalog model served under its own name: its explicit `id`, else its name. */
export function modelDeploymentId(entry: Entry<Model>): string {
  return entry.value.id ?? entry.name;
}

/** Deployment id of a model inside a profile's group. */
export function profileDeploymentId(profile: string, entry: Entry<Model>): string {
  return `${profile}/${modelDeploymentId(entry)}`;
}

/**
 * PolicySet → LiteLLM config object. Pure: the same policies give the same object, in the same
 * order, every time. Assumes the set passed validation.
 */
export function compile(set: PolicySet): LiteLLMConfig {
  const modelList: LiteLLMDeployment[] = [];
  for (const entry of set.models.values()) {
    if (entry.value.expose === false || entry.value.enabled === false) continue;
    modelList.push(deployment(set, entry, entry.name, modelDeploymentId(entry)));
  }
  const selections = new Map<string, Entry<Model>[]>();
  // Background probes: one per upstream model per interval. A model served under its own name is
  // probed there; its copies in profiles only by the first profile when it is not exposed.
  const probing = set.health?.value.probe_interval !== undefined;
  const probed = new Set(modelList.map((d) => d.model_info.modelcenter_model));
  for (const [name, entry] of set.profiles) {
    const models = selectModels(set, entry.value).models;
    selections.set(name, models);
    models.forEach((model, index) => {
      const profileDeployment = deployment(
        set,
        model,
        name,
        profileDeploymentId(name, model),
        entry.value,
        index + 1,
      );
      if (probing && probed.has(model.name))
        profileDeployment.model_info.disable_background_health_check = true;
      probed.add(model.name);
      modelList.push(profileDeployment);
    });
  }

  const fallbacks: FallbackList = [];
  const contextFallbacks: FallbackList = [];
  for (const [name, entry] of set.profiles) {
    if (entry.value.fallback.length > 0) fallbacks.push({ [name]: [...entry.value.fallback] });
    const contextChain = contextFallbackChain(name, entry.value, selections);
    if (contextChain.length > 0) contextFallbacks.push({ [name]: contextChain });
  }

  const routing = set.routing?.value;
  const config: LiteLLMConfig = {
    model_list: modelList,
    router_settings: {
      enable_pre_call_checks: true,
      ...(fallbacks.length > 0 && { fallbacks }),
      ...(contextFallbacks.length > 0 && { context_window_fallbacks: contextFallbacks }),
      ...(routing?.strategy && { routing_strategy: routing.strategy }),
      ...(routing?.retries !== undefined && { num_retries: routing.retries }),
      ...(routing?.timeout && { timeout: durationSeconds(routing.timeout) }),
      ...(routing?.allowed_fails !== undefined && { allowed_fails: routing.allowed_fails }),
      ...(routing?.cooldown && { cooldown_time: durationSeconds(routing.cooldown) }),
    },
    litellm_settings: {
      drop_params: true,
      ...(set.cache && cacheSettings(set.cache.value)),
    },
    general_settings: {
      master_key: `os.environ/${MASTER_KEY_ENV}`,
      ...probeSettings(set),
    },
  };
  const extra = set.litellm?.value;
  if (extra) {
    Object.assign(config.litellm_settings, extra.litellm_settings);
    Object.assign(config.general_settings, extra.general_settings);
    Object.assign(config.router_settings, extra.router_settings);
  }
  config.litellm_settings.callbacks = withSpoolCallback(
    config.litellm_settings.callbacks,
    keepsContent(set) ? SPOOL_CONTENT_CALLBACK : SPOOL_CALLBACK,
  );
  return config;
}

/**
 * Model Center's spool callback (exactly one of its two instances) first, then any callbacks the
 * `litellm:` passthrough names.
 */
function withSpoolCallback(user: unknown, spool: string): string[] {
  const listed = Array.isArray(user) ? user : typeof user === 'string' ? [user] : [];
  const others = listed.filter(
    (c): c is string =>
      typeof c === 'string' && c !== SPOOL_CALLBACK && c !== SPOOL_CONTENT_CALLBACK,
  );
  return [spool, ...others];
}

function deployment(
  set: PolicySet,
  entry: Entry<Model>,
  group: string,
  id: string,
  profile?: Profile,
  order?: number,
): LiteLLMDeployment {
  const model = entry.value;
  const provider = set.providers.get(model.provider)!.value;
  const mode =
    model.capabilities.includes('embedding') && !model.capabilities.includes('chat')
      ? 'embedding'
      : 'chat';
  const info: LiteLLMModelInfo = {
    id,
    mode,
    modelcenter_model: entry.name,
    modelcenter_provider: model.provider,
    ...(profile && { modelcenter_profile: group }),
    ...(model.context_window && { max_input_tokens: model.context_window }),
    ...(model.max_output && { max_output_tokens: model.max_output, max_tokens: model.max_output }),
    ...(model.capabilities.includes('vision') && { supports_vision: true }),
    ...(model.capabilities.includes('tools') && { supports_function_calling: true }),
    ...(model.capabilities.includes('reasoning') && { supports_reasoning: true }),
    ...(model.capabilities.includes('json_mode') && { supports_response_schema: true }),
  };
  const litellmParams: LiteLLMParams = {
    ...providerParams(provider, model.upstream ?? entry.name, mode),
    ...(order !== undefined && { order }),
    ...passthroughParams(provider),
    ...(model.pricing && {
      input_cost_per_token: perToken(model.pricing.input_per_mtok),
      output_cost_per_token: perToken(model.pricing.output_per_mtok),
    }),
    ...profile?.params,
  };
  // LiteLLM before 1.108.2 sends OPENAI_ADMIN_KEY as the bearer of an openai/ deployment whose
  // api_key is empty (#50218, litellm-facts §10.1): an openai/ deployment always names its key.
  if (litellmParams.model.startsWith('openai/') && !litellmParams.api_key) {
    litellmParams.api_key = KEYLESS_PLACEHOLDER;
  }
  return { model_name: group, litellm_params: litellmParams, model_info: info };
}

/**
 * A provider's extra litellm_params. `env:NAME` and `secret:name` values become os.environ
 * references at any depth (a header in `extra_headers` too): LiteLLM resolves os.environ/ anywhere
 * in its config, but only as a whole value.
 */
function passthroughParams(provider: Provider): Record<string, unknown> {
  return withEnvRefs(provider.params ?? {}) as Record<string, unknown>;
}

function withEnvRefs(value: unknown): unknown {
  if (typeof value === 'string') {
    return CREDENTIAL_REFERENCE.test(value) ? credentialEnvRef(value) : value;
  }
  if (Array.isArray(value)) return value.map(withEnvRefs);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = withEnvRefs(item);
    return out;
  }
  return value;
}

function providerParams(
  provider: Provider,
  upstream: string,
  mode: LiteLLMModelInfo['mode'],
): LiteLLMParams {
  const info = kindInfo(provider.kind);
  const prefix = mode === 'embedding' && info.embeddingPrefix ? info.embeddingPrefix : info.prefix;
  const params: LiteLLMParams = { model: `${prefix}/${upstream}` };
  const base = provider.base_url ?? info.defaultBaseUrl;
  if (base) params.api_base = base;
  if (provider.credential) params.api_key = credentialEnvRef(provider.credential);
  else if (!info.needsCredential && info.modelsEndpoint === 'openai')
    params.api_key = KEYLESS_PLACEHOLDER;
  if (provider.api_version) params.api_version = provider.api_version;
  if (provider.region && info.id === 'bedrock') params.aws_region_name = provider.region;
  if (provider.region && info.id === 'vertex') params.vertex_location = provider.region;
  if (provider.limits?.rpm) params.rpm = provider.limits.rpm;
  if (provider.limits?.tpm) params.tpm = provider.limits.tpm;
  if (provider.timeout) params.timeout = durationSeconds(provider.timeout);
  return params;
}

/**
 * Where a request goes when its prompt is too long for every deployment of the profile: the
 * explicit `context_fallback`, else the profiles on its fallback chain whose largest window is
 * larger than this profile's.
 */
function contextFallbackChain(
  name: string,
  profile: Profile,
  selections: Map<string, Entry<Model>[]>,
): string[] {
  if (profile.context_fallback) return [...profile.context_fallback];
  const largest = (p: string): number =>
    Math.max(0, ...(selections.get(p) ?? []).map((m) => m.value.context_window ?? 0));
  const own = largest(name);
  return profile.fallback.filter((p) => largest(p) > own);
}

/** LiteLLM's background health checks at the policy's `health.probe_interval`, when set. */
function probeSettings(set: PolicySet): Record<string, unknown> {
  const interval = set.health?.value.probe_interval;
  if (!interval) return {};
  return { background_health_checks: true, health_check_interval: durationSeconds(interval) };
}

function cacheSettings(
  cache: Cache,
): Pick<LiteLLMConfig['litellm_settings'], 'cache' | 'cache_params'> {
  const params: Record<string, unknown> = { type: cache.type };
  if (cache.ttl) params.ttl = durationSeconds(cache.ttl);
  if (cache.namespace) params.namespace = cache.namespace;
  if (cache.type === 'redis') {
    if (cache.host) params.host = cache.host;
    if (cache.port) params.port = cache.port;
    if (cache.password) params.password = credentialEnvRef(cache.password);
  }
  if (cache.type === 'disk' && cache.dir) params.disk_cache_dir = cache.dir;
  return { cache: true, cache_params: params };
}

/** USD per million tokens → USD per token, without binary noise such as 7.900000000000001e-7. */
function perToken(perMillion: number): number {
  return Number.parseFloat((perMillion / 1_000_000).toPrecision(12));
}
