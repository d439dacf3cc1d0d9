import type { z } from 'zod';
import { policyFileSchema } from './schema.js';
import { isSecretField, maskLiteral, maskSecret } from './secrets.js';
import type { Path } from './source.js';

export interface IssueText {
  path: Path;
  message: string;
  hint: string;
}

/** Turns one zod issue into messages that say what is wrong and how to fix it. */
export function describeIssue(issue: z.core.$ZodIssue, input: unknown): IssueText[] {
  const path = issue.path.filter((s): s is string | number => typeof s !== 'symbol');
  switch (issue.code) {
    case 'unrecognized_keys': {
      const allowed = allowedKeys(path);
      return issue.keys.map((key) => {
        const suggestion = closest(key, allowed);
        return {
          path: [...path, key],
          message: `unknown key "${key}"`,
          hint: suggestion
            ? `did you mean "${suggestion}"?`
            : allowed.length > 0
              ? `allowed keys here: ${allowed.join(', ')}`
              : 'remove it',
        };
      });
    }
    case 'invalid_type': {
      if (valueAt(input, path) === undefined) {
        const field = path.at(-1);
        return [
          {
            path,
            message: `missing required field "${String(field)}"`,
            hint: `add ${String(field)}: <${issue.expected}>`,
          },
        ];
      }
      return [
        {
          path,
          message: `expected ${article(issue.expected)}, got ${describeValue(valueAt(input, path), path)}`,
          hint: `write ${article(issue.expected)} here`,
        },
      ];
    }
    case 'invalid_value':
      return [
        {
          path,
          message: `${shown(valueAt(input, path), path)} is not allowed`,
          hint: `use one of: ${issue.values.map(String).join(', ')}`,
        },
      ];
    case 'invalid_key':
      return [
        {
          path,
          message: `invalid name "${shownText(String(path.at(-1)))}"`,
          hint: issue.issues[0]?.message ?? 'rename it',
        },
      ];
    case 'too_small':
    case 'too_big':
      return [
        {
          path,
          message: issue.message.replace(/^Too (small|big): /, 'value out of range: '),
          hint: 'change the value to fit the range',
        },
      ];
    case 'invalid_format':
      return [
        { path, message: `${shown(valueAt(input, path), path)} is not valid`, hint: issue.message },
      ];
    default:
      return [
        { path, message: issue.message, hint: 'see docs/policy-format.md for the expected shape' },
      ];
  }
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function describeValue(value: unknown, path: Path): string {
  if (value === null) return 'null (an empty value)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${shown(value, path)}`;
}

/**
 * A value as a message may show it: quoted, cut at 60 characters, and masked when it looks like a
 * secret or sits in a field named like one (a mistyped credential must not reach a terminal or CI log).
 */
function shown(value: unknown, path: Path): string {
  const text = typeof value === 'string' ? value : String(value);
  const field = path.at(-1);
  if (typeof field === 'string' && isSecretField(field, false)) return maskLiteral(text);
  return typeof value === 'string' ? `"${shownText(value)}"` : shownText(text);
}

function shownText(text: string): string {
  return maskSecret(text) ?? (text.length > 60 ? `${text.slice(0, 60)}…` : text);
}

function valueAt(input: unknown, path: Path): unknown {
  let current = input;
  for (const segment of path) {
    if (current === null || typeof current !== 'object') return undefined;
    if (!Object.hasOwn(current, segment)) return undefined;
    current = (current as Record<string | number, unknown>)[segment];
  }
  return current;
}

/** The keys a strict object accepts at `path`, read from the schema itself. */
export function allowedKeys(path: Path): string[] {
  let schema: z.core.$ZodType | undefined = policyFileSchema;
  for (const segment of path) {
    schema = schema && child(unwrap(schema), segment);
  }
  const target = schema && unwrap(schema);
  const def = target?._zod.def as { type: string; shape?: Record<string, unknown> } | undefined;
  return def?.type === 'object' && def.shape ? Object.keys(def.shape) : [];
}

function unwrap(schema: z.core.$ZodType): z.core.$ZodType {
  let current = schema;
  for (;;) {
    const def = current._zod.def as { type: string; innerType?: z.core.$ZodType };
    if (
      (def.type === 'optional' || def.type === 'default' || def.type === 'nullable') &&
      def.innerType
    ) {
      current = def.innerType;
    } else {
      return current;
    }
  }
}

function child(schema: z.core.$ZodType, segment: string | number): z.core.$ZodType | undefined {
  const def = schema._zod.def as {
    type: string;
    shape?: Record<string, z.core.$ZodType>;
    valueType?: z.core.$ZodType;
    element?: z.core.$ZodType;
  };
  if (def.type === 'object') {
    return def.shape && Object.hasOwn(def.shape, segment) ? def.shape[String(segment)] : undefined;
  }
  if (def.type === 'record') return def.valueType;
  if (def.type === 'array') return def.element;
  return undefined;
}

/** The allowed word nearest to a typo, when it is close enough to be the likely intent. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(
        (previous[j] ?? 0) + 1,
        (current[j - 1] ?? 0) + 1,
        (previous[j - 1] ?? 0) + cost,
      );
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
