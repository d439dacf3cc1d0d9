import { isSecretKey } from '../log/redact.js';

/**
 * What counts as a secret in a policy file. Policies live in git and compile into a config that
 * LiteLLM sends to providers, so two things may never appear in them:
 * - a literal secret, wherever it sits (a credential, a URL, a header, the `litellm:` passthrough);
 * - a reference to the controller's own secrets (the master key, the salt key, Model Center's tokens
 *   and database URLs): LiteLLM resolves `os.environ/NAME` wherever it appears, so a reference is as
 *   good as the value to whoever receives it.
 * Pure string functions; rules.ts walks the policies with them.
 */

/** `env:NAME`, or `os.environ/NAME` (LiteLLM's own spelling, resolved anywhere in its config). */
const ENV_REFERENCE = /^(?:env:|os\.environ\/)(.+)$/;
/** Any reference form a policy may use instead of a value. */
const REFERENCE = /^(?:env:[A-Z_][A-Z0-9_]*|secret:[a-z0-9][a-z0-9._-]*|os\.environ\/\S+)$/;

export function isReference(value: string): boolean {
  return REFERENCE.test(value);
}

/** The environment variable an `env:NAME` / `os.environ/NAME` string names, if it is one. */
export function referencedVariable(value: string): string | undefined {
  return ENV_REFERENCE.exec(value)?.[1];
}

/** Why a variable may not be referenced by a policy, or undefined when it may. */
export interface ReservedVariable {
  /** What the variable holds, for the message. */
  holds: string;
  /** A better reference, when there is one. */
  instead?: string;
}

const RESERVED: Record<string, string> = {
  LITELLM_MASTER_KEY: "LiteLLM's master key, admin access to the proxy",
  LITELLM_SALT_KEY: 'the key LiteLLM encrypts stored credentials with',
  DATABASE_URL: "LiteLLM's database URL, password included",
  MODELCENTER_LEDGER_URL: "the spend ledger's database URL, password included",
  MODELCENTER_ADMIN_TOKENS: "Model Center's admin API tokens",
  MODELCENTER_READ_TOKENS: "Model Center's read API tokens",
  MODELCENTER_TOKEN: 'a Model Center API token',
  MODELCENTER_ALERT_WEBHOOK_TOKEN: "the token of Model Center's alert webhook",
};

export function reservedVariable(name: string): ReservedVariable | undefined {
  const upper = name.toUpperCase();
  const known = Object.hasOwn(RESERVED, upper) ? RESERVED[upper] : undefined;
  if (known) return { holds: known };
  if (upper.startsWith('MODELCENTER_SECRET_')) {
    const secret = upper.slice('MODELCENTER_SECRET_'.length).toLowerCase().replace(/_/g, '-');
    return {
      holds: `the secret store's copy of a secret, which policies name as secret:${secret}`,
      instead: `secret:${secret}`,
    };
  }
  if (upper.startsWith('MODELCENTER_')) return { holds: 'a setting of Model Center itself' };
  return undefined;
}

/** The masked form of a secret: what kind it is and how long, never a character of the secret. */
function masked(prefix: string, value: string): string {
  return `${prefix}…(${value.length} chars)`;
}

/** Authorization schemes followed by a credential. */
const AUTH_SCHEME = /^(Bearer|Basic|Token|Digest|ApiKey)\s+(\S{8,})/i;
/**
 * Prefixes of well-known API keys: OpenAI and Anthropic and LiteLLM (`sk-`), Stripe, Groq, xAI,
 * Perplexity, Fireworks, Hugging Face, Replicate, GitHub, GitLab, Slack, AWS access keys, Google;
 * followed by a random-looking run of 16 or more letters and digits, so that a model id such as
 * `xai-grok-2-vision-1212` is not taken for a key.
 */
const KEY_PREFIX =
  /(?:^|[^A-Za-z0-9])(sk-|sk_live_|sk_test_|rk_live_|gsk_|xai-|pplx-|fw_|hf_|r8_|ghp_|gho_|ghs_|github_pat_|glpat-|xox[abprs]-|AKIA|ASIA|AIza)([A-Za-z0-9._-]{16,})/g;
const RANDOM_RUN = /[A-Za-z0-9]{16}/;

/** The prefix of the first well-known key in `value`. Linear: candidates never overlap. */
function keyPrefix(value: string): string | undefined {
  for (const match of value.matchAll(KEY_PREFIX)) {
    if (RANDOM_RUN.test(match[2]!)) return match[1];
  }
  return undefined;
}

/** Query parameters that carry a credential (compared lower-cased, without `-` and `_`). */
const SECRET_QUERY = new Set([
  'key',
  'apikey',
  'token',
  'accesstoken',
  'authtoken',
  'apitoken',
  'secret',
  'clientsecret',
  'password',
  'pass',
  'pwd',
  'sig',
  'signature',
  'auth',
  'authorization',
  'credential',
  'credentials',
  'code',
]);

function isSecretQueryName(name: string): boolean {
  return SECRET_QUERY.has(name.toLowerCase().replace(/[-_]/g, '')) || isSecretKey(name);
}

/** What makes a URL carry a secret, with the secret masked. */
export type UrlSecret =
  { kind: 'user-info'; masked: string } | { kind: 'query'; parameter: string; masked: string };

/** Credentials in a URL: `user:password@`, or a query parameter named like a key. */
export function urlSecret(value: string): UrlSecret | undefined {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.password || url.username) {
    const secret = url.password || url.username;
    return {
      kind: 'user-info',
      masked: `${url.protocol}//${masked('', decodeURIComponent(secret))}@${url.host}`,
    };
  }
  for (const [name, parameter] of url.searchParams) {
    if (parameter && !isReference(parameter) && isSecretQueryName(name)) {
      return { kind: 'query', parameter: name, masked: `${name}=${masked('', parameter)}` };
    }
  }
  return undefined;
}

/**
 * The masked form of `value` when the value itself looks like a credential, whatever field holds it:
 * `Bearer …`, a well-known key prefix (`sk-…`), a URL with credentials. Undefined otherwise.
 */
export function maskSecret(value: string): string | undefined {
  const scheme = AUTH_SCHEME.exec(value);
  if (scheme && !isReference(scheme[2]!)) return masked(`${scheme[1]} `, value);
  const prefix = keyPrefix(value);
  if (prefix) return masked(prefix, value);
  const url = urlSecret(value);
  if (url) return url.masked;
  return undefined;
}

/** HTTP headers whose value is a credential beyond those `isSecretKey` names. */
function isSecretHeader(name: string): boolean {
  const n = name.toLowerCase().replace(/[-_]/g, '');
  return isSecretKey(name) || n.endsWith('key') || n.includes('auth') || n.includes('signature');
}

/**
 * Whether a field of this name holds a secret, so that any literal value in it is one. `inHeaders`:
 * the field is an HTTP header (`extra_headers`, `headers`), where every `…key` and `…auth…` counts.
 */
export function isSecretField(name: string, inHeaders: boolean): boolean {
  return inHeaders ? isSecretHeader(name) : isSecretKey(name);
}

/** A literal value written where a secret goes: shown only as its length. */
export function maskLiteral(value: string): string {
  return maskSecret(value) ?? masked('', value);
}

/** `scheme://user:password@`: the user-info of a URL anywhere in a text. */
const URL_USER_INFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@'"]+)@/gi;
/** `name=value` in a query string anywhere in a text. */
const QUERY_PARAMETER = /([?&])([^=&\s'"#]+)=([^&\s'"#]+)/g;
/** A YAML `name: value` line (a diff's `+`/`-` prefix allowed); `name` and `value` captured. */
const YAML_FIELD = /^([+\- ]?[ \t]*(?:- )?["']?([A-Za-z0-9_.-]+)["']?:[ \t]+)(\S[^\n#]*?)[ \t]*$/gm;
const AUTH_SCHEME_IN_TEXT = /\b(Bearer|Basic|Token|Digest|ApiKey)(\s+)(\S{8,})/gi;

/**
 * `text` (a diff, a YAML excerpt) with every secret in it masked: the `known` values (what the
 * secret rules found, in the forms YAML may write them in) and whatever looks like a credential
 * whatever field holds it — a bearer token, a well-known key, URL user-info, a secret query
 * parameter. For answers that would otherwise show a policy text someone sent with a secret in it.
 */
export function maskSecretsInText(text: string, known: readonly string[] = []): string {
  // Shapes first, then fields, then the known values still left; each step leaves what an
  // earlier one masked (`…(N chars)`) alone.
  const isMasked = (value: string): boolean => value.startsWith('…') || value.includes('…(');
  let out = text.replace(URL_USER_INFO, (_whole, scheme: string) => `${scheme}…@`);
  out = out.replace(QUERY_PARAMETER, (whole, sep: string, name: string, value: string) =>
    isSecretQueryName(name) && !isReference(value) && !isMasked(value)
      ? `${sep}${name}=${masked('', value)}`
      : whole,
  );
  out = out.replace(AUTH_SCHEME_IN_TEXT, (whole, scheme: string, space: string, token: string) =>
    isReference(token) || isMasked(token) ? whole : `${scheme}${space}${masked('', token)}`,
  );
  out = out.replace(KEY_PREFIX, (whole, prefix: string, rest: string) => {
    if (!RANDOM_RUN.test(rest)) return whole;
    return `${whole.slice(0, whole.length - prefix.length - rest.length)}${masked(prefix, rest)}`;
  });
  out = out.replace(YAML_FIELD, (whole, lead: string, name: string, value: string) => {
    const bare = value.replace(/^(["'])(.*)\1$/, '$2');
    // A flow collection (`key: { rotate_every: 30d }`) is structure, not a value.
    return isSecretHeader(name) &&
      bare &&
      !/^[{[]/.test(bare) &&
      !isReference(bare) &&
      !isMasked(bare)
      ? `${lead}${masked('', bare)}`
      : whole;
  });
  const forms = known
    .filter((v) => v.length > 0)
    .flatMap((v) => [v, JSON.stringify(v).slice(1, -1), v.replace(/'/g, "''")])
    .sort((a, b) => b.length - a.length);
  for (const form of new Set(forms)) out = out.split(form).join(masked('', form));
  return out;
}
