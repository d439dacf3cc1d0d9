import { kindInfo, PROVIDER_KIND_INFO } from '../policy/provider-kinds.js';
import type { Provider } from '../policy/schema.js';

/**
 * Providers found in the environment: every registry kind whose key variable is set, an Ollama
 * at OLLAMA_HOST / OLLAMA_BASE_URL, and any OpenAI-compatible endpoint given as
 * PROVIDER_<NAME>_URL (+ PROVIDER_<NAME>_KEY), its kind guessed from the URL. Pure over the
 * environment; never reads a value into the proposal (credentials are `env:` references).
 */
export interface FoundProvider {
  name: string;
  provider: Provider;
  /** Which variables made it, for the person reviewing the proposal. */
  because: string[];
}

/** Kinds whose key variables are too generic to mean "this provider" on their own. */
const NOT_FROM_KEY_ALONE = new Set(['bedrock', 'vertex', 'azure', 'github', 'wandb']);

export function discoverFromEnv(
  env: NodeJS.ProcessEnv,
  existing: ReadonlyMap<string, Provider> = new Map(),
): FoundProvider[] {
  const found = new Map<string, FoundProvider>();
  const have = (p: FoundProvider): boolean =>
    [...existing.values()].some(
      (e) =>
        kindInfo(e.kind).id === kindInfo(p.provider.kind).id &&
        (e.base_url ?? '') === (p.provider.base_url ?? ''),
    );
  const add = (p: FoundProvider): void => {
    if (existing.has(p.name) || found.has(p.name) || have(p)) return;
    found.set(p.name, p);
  };

  for (const [kind, info] of Object.entries(PROVIDER_KIND_INFO)) {
    if (info.aliasOf || NOT_FROM_KEY_ALONE.has(info.id) || !info.needsCredential) continue;
    const variable = info.keyVariables.find((v) => env[v]);
    if (!variable) continue;
    // A key shared by several kinds (DASHSCOPE_API_KEY) belongs to the kind named after it.
    const owner = Object.values(PROVIDER_KIND_INFO).find(
      (other) => !other.aliasOf && other.keyVariables[0] === variable,
    );
    if (owner && owner.id !== info.id) continue;
    const baseVar = info.baseUrlVariables.find((v) => env[v]);
    add({
      name: kind.replace(/_/g, '-'),
      provider: {
        kind,
        credential: `env:${variable}`,
        ...(baseVar && { base_url: env[baseVar] }),
      },
      because: [variable, ...(baseVar ? [baseVar] : [])],
    });
  }

  const ollama = env.OLLAMA_HOST ?? env.OLLAMA_BASE_URL;
  if (ollama) {
    add({
      name: 'ollama',
      provider: { kind: 'ollama', base_url: withScheme(ollama) },
      because: [env.OLLAMA_HOST ? 'OLLAMA_HOST' : 'OLLAMA_BASE_URL'],
    });
  }

  for (const [variable, url] of Object.entries(env)) {
    const match = /^PROVIDER_([A-Z0-9_]+)_URL$/.exec(variable);
    if (!match || !url) continue;
    const keyVariable = `PROVIDER_${match[1]}_KEY`;
    const name = match[1]!.toLowerCase().replace(/_/g, '-');
    add({
      name,
      provider: {
        kind: kindFromUrl(url),
        base_url: withScheme(url),
        ...(env[keyVariable] && { credential: `env:${keyVariable}` }),
      },
      because: [variable, ...(env[keyVariable] ? [keyVariable] : [])],
    });
  }
  return [...found.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** Ollama and LM Studio answer on their usual ports; a known host is its kind; else OpenAI-compatible. */
export function kindFromUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(withScheme(url));
  } catch {
    return 'openai_compatible';
  }
  if (parsed.port === '11434') return 'ollama';
  if (parsed.port === '1234') return 'lmstudio';
  for (const [kind, info] of Object.entries(PROVIDER_KIND_INFO)) {
    if (info.aliasOf || !info.defaultBaseUrl || info.localByDefault) continue;
    const host = new URL(info.defaultBaseUrl).host;
    if (host === parsed.host) return kind;
  }
  return 'openai_compatible';
}

function withScheme(url: string): string {
  return /^https?:\/\//.test(url) ? url : `http://${url}`;
}
