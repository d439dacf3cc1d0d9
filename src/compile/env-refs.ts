import type { LiteLLMConfig } from './litellm-config.js';

/** Every environment variable the config references as `os.environ/NAME`, sorted. */
export function referencedEnv(config: LiteLLMConfig): string[] {
  const names = new Set<string>();
  const walk = (value: unknown): void => {
    if (typeof value === 'string' && value.startsWith('os.environ/'))
      names.add(value.slice('os.environ/'.length));
    else if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk(config);
  return [...names].sort();
}
