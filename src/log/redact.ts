/**
 * What the logger hides. Two layers, because a secret can reach a log line in two ways:
 *
 * 1. **By key** (`redactSecretKeys`): any field whose name says it holds a secret is replaced by
 *    `[REDACTED]`, at any depth of a logged object, an error's own properties or a child logger's
 *    bindings. Names are compared lower-cased with `-` and `_` removed, so `apiKey`, `api_key`,
 *    `API-KEY` and `x-api-key` are one rule (see `SECRET_KEY_NAMES` and `SECRET_KEY_SUFFIXES`).
 * 2. **By value** (`SecretValues.mask`): the secrets this process holds (the master key, provider
 *    keys, API tokens) are registered, and every occurrence of one in a finished log line — inside
 *    a message, an error's message or stack, LiteLLM's output — is masked. So are strings that look
 *    like a credential whatever their field: `Bearer …`, `sk-…` keys and the password of a URL.
 *
 * Nothing here imports pino; `logger.ts` wires both layers into it.
 */

export const CENSOR = '[REDACTED]';

/**
 * Field names that hold a secret whatever else they are called with (after lower-casing and
 * removing `-` and `_`): `key` is what LiteLLM's `/key/generate` answers with; `authorization`
 * and `cookie` are the HTTP headers; `database_url` carries a password; `credential_values` is
 * LiteLLM's credential object.
 */
export const SECRET_KEY_NAMES: readonly string[] = [
  'key',
  'authorization',
  'proxyauthorization',
  'cookie',
  'setcookie',
  'bearer',
  'databaseurl',
  'connectionstring',
  'dsn',
  'credentialvalues',
];

/**
 * Name endings that mark a secret (after the same normalisation): `apiKey`, `x-api-key`,
 * `x-litellm-api-key`, `OPENAI_API_KEY`, `masterKey`, `LITELLM_SALT_KEY`, `aws_secret_access_key`,
 * `access_token`, `aws_session_token`, `client_secret`, `password`, `vertex_credentials`, … An
 * environment object logged by mistake is therefore censored variable by variable.
 */
export const SECRET_KEY_SUFFIXES: readonly string[] = [
  'apikey',
  'masterkey',
  'saltkey',
  'secretkey',
  'privatekey',
  'accesskey',
  'signingkey',
  'encryptionkey',
  'token',
  'password',
  'passwd',
  'passphrase',
  'secret',
  'credential',
  'credentials',
];

/** Name beginnings that mark a secret: `MODELCENTER_SECRET_<NAME>` holds `secret:<name>`. */
export const SECRET_KEY_PREFIXES: readonly string[] = ['modelcentersecret'];

/** Objects nested deeper than this are left to the value layer (and to JSON's own limits). */
const MAX_DEPTH = 12;

const exactNames = new Set(SECRET_KEY_NAMES);
const keyVerdicts = new Map<string, boolean>();

/** Whether a field of this name holds a secret. */
export function isSecretKey(key: string): boolean {
  const cached = keyVerdicts.get(key);
  if (cached !== undefined) return cached;
  const name = key.toLowerCase().replace(/[-_]/g, '');
  const verdict =
    exactNames.has(name) ||
    SECRET_KEY_SUFFIXES.some((suffix) => name.endsWith(suffix)) ||
    SECRET_KEY_PREFIXES.some((prefix) => name.startsWith(prefix));
  // Field names repeat endlessly in logs; the cap keeps a caller with generated names bounded.
  if (keyVerdicts.size < 10_000) keyVerdicts.set(key, verdict);
  return verdict;
}

/** Turns an Error into the plain object a log line holds (type, message, stack, own fields). */
export type ErrorSerializer = (error: Error) => object;

function plainError(error: Error): object {
  return { ...error, type: error.name, message: error.message, stack: error.stack };
}

/**
 * A copy of `value` with every secret-named field censored, at any depth. Objects with nothing to
 * censor are returned as they are (no copy), so logging plain metadata costs one walk. Errors are
 * serialized first (by `serializeError`), so their own fields — an HTTP client's request headers,
 * say — are walked too. `null` and `undefined` stay visible: "no key was set" is worth a log line.
 */
export function redactSecretKeys(
  value: unknown,
  serializeError: ErrorSerializer = plainError,
): unknown {
  return walk(value, 0, new Set(), serializeError);
}

function walk(
  value: unknown,
  depth: number,
  ancestors: Set<object>,
  serializeError: ErrorSerializer,
): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (ancestors.has(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return value;
  if (value instanceof Error) {
    const serialized = serializeError(value);
    const plain: Record<string, unknown> = {};
    for (const key of Object.keys(serialized)) {
      plain[key] = (serialized as Record<string, unknown>)[key];
    }
    return walk(plain, depth, ancestors, serializeError);
  }
  // Dates, URLs, Buffers: JSON writes them through toJSON, not through their fields.
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return value;

  // Only the current path counts as a cycle: the same object logged twice is walked twice.
  ancestors.add(value);
  try {
    if (Array.isArray(value)) {
      let copy: unknown[] | undefined;
      value.forEach((item: unknown, index) => {
        const next = walk(item, depth + 1, ancestors, serializeError);
        if (next === item) return;
        copy ??= [...(value as unknown[])];
        copy[index] = next;
      });
      return copy ?? value;
    }
    const record = value as Record<string, unknown>;
    let copy: Record<string, unknown> | undefined;
    for (const key of Object.keys(record)) {
      const item = record[key];
      const next =
        isSecretKey(key) && item !== null && item !== undefined
          ? CENSOR
          : walk(item, depth + 1, ancestors, serializeError);
      if (next === item) continue;
      copy ??= { ...record };
      copy[key] = next;
    }
    return copy ?? value;
  } finally {
    ancestors.delete(value);
  }
}

/**
 * Strings that are credentials wherever they appear, registered or not: a bearer token, an
 * `sk-` key (OpenAI, Anthropic and LiteLLM virtual keys), the password in `scheme://user:pass@`.
 */
const SECRET_PATTERNS: readonly { pattern: RegExp; replace: string }[] = [
  { pattern: /\b(Bearer)\s+[A-Za-z0-9._~+/=-]{8,}/gi, replace: `$1 ${CENSOR}` },
  { pattern: /\bsk-[A-Za-z0-9_-]{16,}/g, replace: CENSOR },
  { pattern: /(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@"]*:)[^\s@/"]+@/gi, replace: `$1${CENSOR}@` },
];

/** A value shorter than this is not treated as a secret: masking it would garble every line. */
export const MIN_SECRET_LENGTH = 8;

/** Environment variable names whose values the value layer masks (see `SecretValues.addFromEnv`). */
export function isSecretEnvName(name: string): boolean {
  return isSecretKey(name);
}

/**
 * The secret values this process holds. The composition root registers the master key, provider
 * keys and API tokens at start, and rotation registers new ones as they appear; a value stays
 * registered for the life of the process (an old key in an old error is still a key).
 */
export class SecretValues {
  private readonly values = new Set<string>();
  /** Registered values and their JSON-escaped forms, longest first. */
  private needles: string[] = [];

  /** Registers a secret value; values shorter than MIN_SECRET_LENGTH are ignored. */
  add(value: string | undefined): void {
    if (value === undefined || value.length < MIN_SECRET_LENGTH || this.values.has(value)) return;
    this.values.add(value);
    const escaped = JSON.stringify(value).slice(1, -1);
    const forms = escaped === value ? [value] : [value, escaped];
    this.needles = [...this.needles, ...forms].sort((a, b) => b.length - a.length);
  }

  /** Registers the value of every variable whose name marks a secret (`OPENAI_API_KEY`, …). */
  addFromEnv(env: Record<string, string | undefined>): void {
    for (const [name, value] of Object.entries(env)) {
      if (isSecretEnvName(name)) this.add(value);
    }
  }

  get size(): number {
    return this.values.size;
  }

  /** `text` with every registered value, and every string shaped like a credential, masked. */
  mask(text: string): string {
    let result = text;
    for (const needle of this.needles) {
      if (result.includes(needle)) result = result.split(needle).join(CENSOR);
    }
    for (const { pattern, replace } of SECRET_PATTERNS) {
      pattern.lastIndex = 0;
      if (pattern.test(result)) result = result.replace(pattern, replace);
    }
    return result;
  }
}
