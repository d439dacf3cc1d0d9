import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { litellmVenv } from '../litellm/install.js';
import type { Capability } from '../policy/schema.js';

/**
 * LiteLLM's bundled model price map (`model_prices_and_context_window_backup.json` inside the
 * pinned package): the context windows, prices and capability flags LiteLLM itself prices
 * requests with. Read once per process from the installed package, never fetched.
 */
export interface PriceMapEntry {
  contextWindow?: number;
  maxOutput?: number;
  /** USD per million tokens. */
  pricing?: { input_per_mtok: number; output_per_mtok: number };
  capabilities: Capability[];
}

export interface PriceMap {
  /** The entry for a provider's model: `<prefix>/<id>`, then `<kind>/<id>`, then `<id>`. */
  lookup(keys: readonly string[]): PriceMapEntry | undefined;
  size: number;
}

interface RawEntry {
  max_input_tokens?: number;
  max_tokens?: number;
  max_output_tokens?: number;
  input_cost_per_token?: number;
  output_cost_per_token?: number;
  mode?: string;
  supports_function_calling?: boolean;
  supports_vision?: boolean;
  supports_reasoning?: boolean;
  supports_response_schema?: boolean;
  supports_audio_input?: boolean;
}

let cached: Promise<PriceMap> | undefined;

/** The pinned LiteLLM's price map; an empty map when the package is not installed here. */
export function loadPriceMap(venv = litellmVenv()): Promise<PriceMap> {
  return (cached ??= readPriceMap(venv));
}

async function readPriceMap(venv: string): Promise<PriceMap> {
  const raw = await readBundled(venv);
  return {
    size: raw.size,
    lookup(keys) {
      for (const key of keys) {
        const entry = raw.get(key);
        if (entry) return toEntry(entry);
      }
      return undefined;
    },
  };
}

async function readBundled(venv: string): Promise<Map<string, RawEntry>> {
  const lib = path.join(venv, 'lib');
  const pythons = await readdir(lib).catch(() => [] as string[]);
  for (const python of pythons.filter((p) => p.startsWith('python')).sort()) {
    const file = path.join(
      lib,
      python,
      'site-packages',
      'litellm',
      'model_prices_and_context_window_backup.json',
    );
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const json = JSON.parse(text) as Record<string, RawEntry>;
    delete json.sample_spec;
    return new Map(Object.entries(json));
  }
  return new Map();
}

function perMillion(perToken: number): number {
  return Number.parseFloat((perToken * 1_000_000).toPrecision(12));
}

function toEntry(raw: RawEntry): PriceMapEntry {
  const capabilities: Capability[] = [];
  if (raw.mode === 'embedding') capabilities.push('embedding');
  else if (raw.mode === 'chat' || raw.mode === undefined) capabilities.push('chat', 'streaming');
  else if (raw.mode === 'completion') capabilities.push('completion');
  else if (raw.mode === 'image_generation') capabilities.push('image_generation');
  else if (raw.mode === 'rerank') capabilities.push('rerank');
  if (raw.supports_function_calling) capabilities.push('tools');
  if (raw.supports_vision) capabilities.push('vision');
  if (raw.supports_reasoning) capabilities.push('reasoning');
  if (raw.supports_response_schema) capabilities.push('json_mode');
  if (raw.supports_audio_input) capabilities.push('audio');
  const window = raw.max_input_tokens ?? raw.max_tokens;
  return {
    ...(window && { contextWindow: window }),
    ...(raw.max_output_tokens && { maxOutput: raw.max_output_tokens }),
    ...(raw.input_cost_per_token !== undefined &&
      raw.output_cost_per_token !== undefined && {
        pricing: {
          input_per_mtok: perMillion(raw.input_cost_per_token),
          output_per_mtok: perMillion(raw.output_cost_per_token),
        },
      }),
    capabilities,
  };
}
