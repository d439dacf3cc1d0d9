import { parse, stringify } from 'yaml';

/** litellm_params that name where and how a deployment reaches its provider: replaced in demo mode. */
const PROVIDER_PARAMS =
  /^(model|api_base|api_key|api_version|organization|base_model|custom_llm_provider|aws_.*|vertex_.*)$/;

/**
 * The config LiteLLM loads in demo mode: every deployment keeps its id, group, pricing and presets,
 * but is answered by the local demo upstream (OpenAI-compatible) instead of its provider. Pure:
 * the committed config is unchanged; this copy is only what the demo LiteLLM reads.
 */
export function demoConfig(text: string, demoUrl: string): string {
  const config = (parse(text, { version: '1.1' }) ?? {}) as {
    model_list?: {
      model_name?: string;
      litellm_params?: Record<string, unknown>;
      model_info?: Record<string, unknown>;
    }[];
  };
  for (const deployment of config.model_list ?? []) {
    const params = deployment.litellm_params ?? {};
    const kept = Object.fromEntries(
      Object.entries(params).filter(
        ([key, value]) =>
          !PROVIDER_PARAMS.test(key) &&
          !(typeof value === 'string' && value.startsWith('os.environ/')),
      ),
    );
    const model = deployment.model_info?.modelcenter_model;
    const name = typeof model === 'string' ? model : (deployment.model_name ?? 'demo');
    deployment.litellm_params = {
      ...kept,
      model: `openai/${name}`,
      api_base: demoUrl,
      api_key: 'demo-no-key-needed',
    };
    deployment.model_info = { ...deployment.model_info, modelcenter_demo: true };
  }
  return `# Demo mode: every deployment answered by Model Center's local demo upstream.\n${stringify(config)}`;
}
