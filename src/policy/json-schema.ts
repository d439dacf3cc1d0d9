import { z } from 'zod';
import { policyFileSchema } from './schema.js';

/** The JSON Schema editors use to autocomplete and check policy files. */
export function policyJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(policyFileSchema, { io: 'input', unrepresentable: 'any' }),
    // Top-level x- keys are dropped by the loader: a place for anchors (`x-defaults: &defaults`).
    patternProperties: { '^x-': {} },
    title: 'Model Center policy file',
    description:
      'Providers, models, profiles, callers, goals and budgets. Sections merge across files under policies/.',
  };
}
