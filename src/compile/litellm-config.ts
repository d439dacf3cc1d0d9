/**
 * The subset of LiteLLM's config.yaml that Model Center writes (litellm-facts §1). Field names are
 * LiteLLM's own, hence snake_case.
 */
export interface LiteLLMParams {
  model: string;
  api_base?: string;
  api_key?: string;
  api_version?: string;
  aws_region_name?: string;
  vertex_location?: string;
  rpm?: number;
  tpm?: number;
  timeout?: number;
  order?: number;
  input_cost_per_token?: number;
  output_cost_per_token?: number;
  [preset: string]: unknown;
}

export interface LiteLLMModelInfo {
  id: string;
  mode: 'chat' | 'embedding' | 'completion' | 'image_generation' | 'audio_transcription' | 'rerank';
  max_input_tokens?: number;
  max_output_tokens?: number;
  max_tokens?: number;
  supports_vision?: boolean;
  supports_function_calling?: boolean;
  supports_reasoning?: boolean;
  supports_response_schema?: boolean;
  /** Not probed by LiteLLM's background health checks (another deployment probes its model). */
  disable_background_health_check?: boolean;
  /** Which Model Center objects this deployment came from (LiteLLM keeps extra model_info keys). */
  modelcenter_model: string;
  modelcenter_profile?: string;
  modelcenter_provider: string;
}

export interface LiteLLMDeployment {
  model_name: string;
  litellm_params: LiteLLMParams;
  model_info: LiteLLMModelInfo;
}

export type FallbackList = Record<string, string[]>[];

export interface LiteLLMConfig {
  model_list: LiteLLMDeployment[];
  router_settings: {
    enable_pre_call_checks: boolean;
    fallbacks?: FallbackList;
    context_window_fallbacks?: FallbackList;
    routing_strategy?: string;
    num_retries?: number;
    timeout?: number;
    allowed_fails?: number;
    cooldown_time?: number;
    [passthrough: string]: unknown;
  };
  litellm_settings: {
    drop_params: boolean;
    cache?: boolean;
    cache_params?: Record<string, unknown>;
    callbacks?: string[];
    [passthrough: string]: unknown;
  };
  general_settings: {
    master_key: string;
    [passthrough: string]: unknown;
  };
}
