import { durationSeconds } from '../shared/duration.js';
import type { Problem } from './problems.js';
import { kindInfo } from './provider-kinds.js';
import type { Entry, PolicySet } from './policy-set.js';
import { CREDENTIAL_REFERENCE, type Provider } from './schema.js';
import {
  isReference,
  isSecretField,
  maskLiteral,
  maskSecret,
  referencedVariable,
  reservedVariable,
  urlSecret,
} from './secrets.js';
import { isLocalModel, selectModels } from './select.js';
import { problemAt, type Path } from './source.js';
import { closest } from './zod-issues.js';
import { healthRules } from './health-rules.js';

/** One cross-reference rule: reads the merged set, reports problems, changes nothing. */
export type Rule = (set: PolicySet) => Problem[];

const at = (
  entry: Entry<unknown>,
  sub: Path,
  message: string,
  hint: string,
  severity: Problem['severity'] = 'error',
): Problem => problemAt(entry.source, [...entry.path, ...sub], message, hint, severity);

function unknownRef(
  entry: Entry<unknown>,
  sub: Path,
  kind: string,
  name: string,
  known: Iterable<string>,
): Problem {
  const names = [...known];
  const suggestion = closest(name, names);
  const hint = suggestion
    ? `did you mean "${suggestion}"?`
    : names.length > 0
      ? `define ${kind} "${name}" or use one of: ${names.join(', ')}`
      : `define ${kind} "${name}" under ${kind === 'caller' ? 'callers' : `${kind}s`}:`;
  return at(entry, sub, `unknown ${kind} "${name}"`, hint);
}

/** A credential must be a reference; a literal value would end up in git and in LiteLLM's config. */
export function credentialProblem(
  entry: Entry<unknown>,
  sub: Path,
  value: string | undefined,
): Problem[] {
  if (value === 'secret:key') {
    // It would be exported as MODELCENTER_SECRET_KEY: the secret store's own key.
    return [
      at(
        entry,
        sub,
        'secret:key is reserved (MODELCENTER_SECRET_KEY is the key of the secret store itself)',
        'name the secret after what it is, e.g. secret:openai-prod',
      ),
    ];
  }
  if (value === undefined || CREDENTIAL_REFERENCE.test(value)) return [];
  const looksSecret = !/^(env|secret):/.test(value);
  return [
    at(
      entry,
      sub,
      looksSecret
        ? `a literal secret is not allowed here (${maskLiteral(value)})`
        : 'malformed credential reference',
      'write env:VARIABLE_NAME (an upper-case environment variable) or secret:name (the secret store), and put the value there',
    ),
  ];
}

export const providerRules: Rule = (set) =>
  [...set.providers.values()].flatMap((entry) => {
    const provider = entry.value;
    const info = kindInfo(provider.kind);
    const problems = credentialProblem(entry, ['credential'], provider.credential);
    if (info.needsBaseUrl && !provider.base_url) {
      problems.push(
        at(
          entry,
          ['kind'],
          `kind "${provider.kind}" needs a base_url`,
          "add base_url: the server's address, e.g. http://host:8000/v1",
        ),
      );
    }
    if (provider.base_url) {
      const url = new URL(provider.base_url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        problems.push(
          at(
            entry,
            ['base_url'],
            `base_url uses ${url.protocol} which LiteLLM cannot call`,
            'use an http:// or https:// URL',
          ),
        );
      }
    }
    problems.push(...rotationProblems(entry));
    if (info.needsCredential && !provider.credential) {
      problems.push(
        at(
          entry,
          ['kind'],
          `kind "${provider.kind}" needs a credential`,
          'add credential: env:YOUR_KEY_VARIABLE',
        ),
      );
    }
    if (info.id === 'azure' && !provider.api_version) {
      problems.push(
        at(
          entry,
          ['kind'],
          'kind "azure" needs an api_version',
          'add api_version, e.g. "2024-10-21"',
        ),
      );
    }
    return problems;
  });

/** A provider's `rotation:` needs a credential to rotate, and a source of new values to act alone. */
function rotationProblems(entry: Entry<Provider>): Problem[] {
  const rotation = entry.value.rotation;
  if (!rotation) return [];
  const problems: Problem[] = [];
  if (!entry.value.credential) {
    problems.push(
      at(
        entry,
        ['rotation'],
        'rotation is set but the provider has no credential to rotate',
        'add credential: env:NAME or secret:name, or remove rotation',
      ),
    );
  }
  if (rotation.rotate_every && !rotation.issue) {
    problems.push(
      at(
        entry,
        ['rotation', 'rotate_every'],
        'a scheduled rotation needs a new value from somewhere',
        'add rotation.issue: a command that prints a new key on stdout',
      ),
    );
  }
  if (rotation.on_anomaly === 'rotate' && !rotation.issue) {
    problems.push(
      at(
        entry,
        ['rotation', 'on_anomaly'],
        'on_anomaly: rotate needs a new value from somewhere',
        'add rotation.issue: a command that prints a new key on stdout, or use on_anomaly: alert',
      ),
    );
  }
  if (
    rotation.grace &&
    rotation.rotate_every &&
    (durationSeconds(rotation.grace) ?? 0) >= (durationSeconds(rotation.rotate_every) ?? 0)
  ) {
    problems.push(
      at(
        entry,
        ['rotation', 'grace'],
        `grace ${rotation.grace} is not shorter than rotate_every ${rotation.rotate_every}`,
        'make the grace period shorter than the rotation interval',
      ),
    );
  }
  return problems;
}

export const modelRules: Rule = (set) =>
  [...set.models.values()].flatMap((entry) => {
    const model = entry.value;
    const problems: Problem[] = [];
    if (!set.providers.has(model.provider)) {
      problems.push(
        unknownRef(entry, ['provider'], 'provider', model.provider, set.providers.keys()),
      );
      return problems;
    }
    if (set.profiles.has(entry.name)) {
      const profile = set.profiles.get(entry.name)!;
      problems.push(
        at(
          entry,
          [],
          `model "${entry.name}" has the same name as a profile (${profile.source.name}); both would be served under that name`,
          'rename the model or the profile',
        ),
      );
    }
    if (!model.pricing && !isLocalModel(set, model)) {
      problems.push(
        at(
          entry,
          [],
          "remote model without pricing: spend for it falls back to LiteLLM's own price table, or 0",
          'add pricing: { input_per_mtok: …, output_per_mtok: … }',
          'warning',
        ),
      );
    }
    if (model.max_output && model.context_window && model.max_output > model.context_window) {
      problems.push(
        at(
          entry,
          ['max_output'],
          `max_output ${model.max_output} exceeds context_window ${model.context_window}`,
          'lower max_output or raise context_window',
        ),
      );
    }
    return problems;
  });

export const profileRules: Rule = (set) =>
  [...set.profiles.values()].flatMap((entry) => {
    const profile = entry.value;
    const problems: Problem[] = [];
    const refs: [keyof typeof profile, 'profile' | 'provider' | 'model', Map<string, unknown>][] = [
      ['fallback', 'profile', set.profiles],
      ['context_fallback', 'profile', set.profiles],
      ['providers', 'provider', set.providers],
      ['models', 'model', set.models],
      ['exclude', 'model', set.models],
    ];
    for (const [field, kind, known] of refs) {
      const names = (profile[field] as string[] | undefined) ?? [];
      names.forEach((name, index) => {
        if (!known.has(name))
          problems.push(unknownRef(entry, [field, index], kind, name, known.keys()));
        if (kind === 'profile' && name === entry.name) {
          problems.push(
            at(
              entry,
              [field, index],
              `profile "${name}" falls back to itself`,
              'remove it from the list',
            ),
          );
        }
      });
    }
    if (problems.length > 0) return problems;
    const selection = selectModels(set, profile);
    if (selection.models.length === 0) {
      const why = selection.dropped.map((d) => `${d.count} ${d.reason}`).join('; ');
      problems.push(
        at(
          entry,
          [],
          `no model satisfies profile "${entry.name}"${why ? ` (${why})` : ' (the catalog is empty)'}`,
          'add a matching model to the catalog, or relax requires/min_context/only',
        ),
      );
    }
    return problems;
  });

/** Fallback chains must end: a cycle would send a failing request round in circles. */
export const fallbackCycleRule: Rule = (set) => {
  const problems: Problem[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const reported = new Set<string>();
  const visit = (name: string, trail: string[]): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      const cycle = [...trail.slice(trail.indexOf(name)), name];
      const key = [...cycle].slice(0, -1).sort().join(',');
      const entry = set.profiles.get(name);
      if (entry && !reported.has(key)) {
        reported.add(key);
        problems.push(
          at(
            entry,
            ['fallback'],
            `fallback cycle: ${cycle.join(' → ')}`,
            'remove one fallback so the chain ends',
          ),
        );
      }
      return;
    }
    state.set(name, 'visiting');
    for (const next of set.profiles.get(name)?.value.fallback ?? []) {
      if (set.profiles.has(next) && next !== name) visit(next, [...trail, name]);
    }
    state.set(name, 'done');
  };
  for (const name of set.profiles.keys()) visit(name, []);
  return problems;
};

export const callerRules: Rule = (set) =>
  [...set.callers.values()].flatMap((entry) => {
    const problems = entry.value.profiles.flatMap((name, index) =>
      set.profiles.has(name)
        ? []
        : [unknownRef(entry, ['profiles', index], 'profile', name, set.profiles.keys())],
    );
    const key = entry.value.key;
    if (
      key?.grace &&
      key.rotate_every &&
      (durationSeconds(key.grace) ?? 0) >= (durationSeconds(key.rotate_every) ?? 0)
    ) {
      problems.push(
        at(
          entry,
          ['key', 'grace'],
          `grace ${key.grace} is not shorter than rotate_every ${key.rotate_every}`,
          'make the grace period shorter than the rotation interval',
        ),
      );
    }
    if (key && entry.name === 'master') {
      problems.push(
        at(
          entry,
          ['key'],
          'a caller named "master" cannot have a key: /v1/keys/master/… is the master key\'s',
          'give the caller another name',
        ),
      );
    }
    if (key && entry.value.profiles.length === 0) {
      // A LiteLLM virtual key without models may call every model: never made by accident.
      problems.push(
        at(
          entry,
          ['key'],
          'a caller with a key needs profiles: a LiteLLM key without models may call every model',
          `list the profiles it may use under callers.${entry.name}.profiles`,
        ),
      );
    }
    return problems;
  });

export const goalRules: Rule = (set) =>
  [...set.goals.values()].flatMap((entry) => {
    const owner = entry.value.owner;
    return owner && !set.callers.has(owner)
      ? [unknownRef(entry, ['owner'], 'caller', owner, set.callers.keys())]
      : [];
  });

export const budgetRules: Rule = (set) =>
  set.budgets.flatMap((entry) => {
    const scope = entry.value.scope;
    const known = {
      provider: set.providers,
      model: set.models,
      profile: set.profiles,
      caller: set.callers,
      goal: set.goals,
    };
    return (Object.keys(known) as (keyof typeof known)[]).flatMap((kind) => {
      const name = scope[kind];
      return name !== undefined && !known[kind].has(name)
        ? [unknownRef(entry, ['scope', kind], kind, name, known[kind].keys())]
        : [];
    });
  });

export const cacheRules: Rule = (set) => {
  const entry = set.cache;
  if (!entry) return [];
  const problems = credentialProblem(entry, ['password'], entry.value.password);
  if (entry.value.type === 'redis' && !entry.value.host) {
    problems.push(
      at(
        entry,
        ['type'],
        'a redis cache needs a host',
        'add host: (and port:, password: env:NAME if it needs one)',
      ),
    );
  }
  return problems;
};

/** litellm_params Model Center sets itself; a provider's `params` may not override them. */
export const MANAGED_PARAMS = new Set([
  'model',
  'api_base',
  'api_key',
  'api_version',
  'rpm',
  'tpm',
  'timeout',
  'order',
  'input_cost_per_token',
  'output_cost_per_token',
  'litellm_credential_name',
]);

/** Settings Model Center compiles from other sections; the `litellm` escape hatch may not set them. */
export const MANAGED_SETTINGS: Record<string, Record<string, string>> = {
  litellm_settings: { cache: 'cache', cache_params: 'cache', drop_params: 'Model Center' },
  general_settings: { master_key: 'LITELLM_MASTER_KEY' },
  router_settings: {
    fallbacks: 'profiles.*.fallback',
    context_window_fallbacks: 'profiles.*.context_fallback',
    enable_pre_call_checks: 'Model Center',
    routing_strategy: 'routing.strategy',
    num_retries: 'routing.retries',
    timeout: 'routing.timeout',
    allowed_fails: 'routing.allowed_fails',
    cooldown_time: 'routing.cooldown',
  },
};

export const passthroughRules: Rule = (set) => {
  const problems: Problem[] = [];
  for (const entry of set.providers.values()) {
    for (const key of Object.keys(entry.value.params ?? {})) {
      if (MANAGED_PARAMS.has(key)) {
        problems.push(
          at(
            entry,
            ['params', key],
            `"${key}" is set by Model Center`,
            'use the provider or model fields (base_url, credential, limits, timeout, pricing) instead',
          ),
        );
      }
    }
  }
  const litellm = set.litellm;
  if (!litellm) return problems;
  for (const [section, managed] of Object.entries(MANAGED_SETTINGS)) {
    const values =
      (litellm.value as Record<string, Record<string, unknown> | undefined>)[section] ?? {};
    for (const key of Object.keys(values)) {
      const owner = Object.hasOwn(managed, key) ? managed[key] : undefined;
      if (owner) {
        problems.push(
          at(
            litellm,
            [section, key],
            `"${key}" is set by Model Center from ${owner}`,
            `remove it here and use ${owner}`,
          ),
        );
      }
    }
  }
  return problems;
};

/** Where a string sits, for the secret checks. */
interface Place {
  /** The name of the field (for list items: the list's field). */
  field: string | undefined;
  /** The field is an HTTP header (inside `headers` / `extra_headers`). */
  inHeaders: boolean;
}

/** `general_settings.database_url: os.environ/DATABASE_URL` is LiteLLM reading its own database. */
function allowedReservedReference(entry: Entry<unknown>, sub: Path, variable: string): boolean {
  return (
    entry.path[0] === 'litellm' &&
    sub.join('.') === 'general_settings.database_url' &&
    variable.toUpperCase() === 'DATABASE_URL'
  );
}

/** Fields whose literal values credentialProblem reports (with its own message). */
function isCredentialField(entry: Entry<unknown>, sub: Path): boolean {
  return (
    sub.length === 1 &&
    ((entry.path[0] === 'providers' && sub[0] === 'credential') ||
      (entry.path[0] === 'cache' && sub[0] === 'password'))
  );
}

function secretHint(entry: Entry<unknown>, sub: Path): string {
  if (entry.path[0] === 'litellm') {
    return 'put the value in an environment variable and write os.environ/NAME (LiteLLM reads it at start)';
  }
  if (entry.path[0] === 'providers' && sub[0] === 'params') {
    return 'put the value in an environment variable and write env:NAME as the whole value';
  }
  return 'remove it: a secret goes in an environment variable, named by credential: env:NAME';
}

/** What a reference to one of the controller's own secrets would do, by where it sits. */
function reservedProblem(
  entry: Entry<unknown>,
  sub: Path,
  value: string,
  variable: string,
): Problem | undefined {
  const reserved = reservedVariable(variable);
  if (!reserved || allowedReservedReference(entry, sub, variable)) return undefined;
  const isCredential = isCredentialField(entry, sub);
  const receiver =
    entry.path[0] === 'providers'
      ? `LiteLLM would send it to provider "${entry.name}"${isCredential ? ' as its API key' : ''}`
      : entry.path[0] === 'cache'
        ? 'LiteLLM would send it to the cache server'
        : 'LiteLLM would hand it to whatever this setting configures';
  const hint = reserved.instead
    ? `write ${reserved.instead}`
    : isCredential && entry.path[0] === 'providers'
      ? 'give the provider a key of its own in another variable: credential: env:PROVIDER_API_KEY'
      : 'use a variable that holds only what this setting needs';
  return at(
    entry,
    sub,
    `${value} names one of Model Center's own secrets (${reserved.holds}): ${receiver}`,
    hint,
  );
}

/** The problem with one string of a policy, if it is or names a secret it should not. */
function stringSecretProblem(
  entry: Entry<unknown>,
  sub: Path,
  value: string,
  place: Place,
): Problem | undefined {
  const variable = referencedVariable(value);
  const reserved = variable !== undefined && reservedProblem(entry, sub, value, variable);
  if (reserved) return reserved;
  if (isCredentialField(entry, sub)) return undefined;
  if (/^(env|secret):/.test(value) && !CREDENTIAL_REFERENCE.test(value)) {
    return at(
      entry,
      sub,
      'malformed reference',
      'write env:VARIABLE_NAME (an upper-case environment variable) or secret:name (the secret store)',
    );
  }
  if (isReference(value) || value === '') return undefined;
  const field = place.field ?? String(entry.path.at(-1));
  const url = urlSecret(value);
  if (url?.kind === 'user-info') {
    return at(
      entry,
      sub,
      `${field} carries credentials (user:password@)`,
      entry.path[0] === 'providers' && sub[0] === 'base_url'
        ? 'remove them from the URL and use credential: env:NAME'
        : secretHint(entry, sub),
    );
  }
  if (url) {
    return at(
      entry,
      sub,
      `${field} carries a secret in its query string (${url.masked})`,
      entry.path[0] === 'providers' && sub[0] === 'base_url'
        ? 'remove it from the URL and use credential: env:NAME'
        : secretHint(entry, sub),
    );
  }
  if (place.field !== undefined && isSecretField(place.field, place.inHeaders)) {
    return at(
      entry,
      sub,
      `a literal secret is not allowed in ${place.inHeaders ? 'header' : 'field'} "${place.field}" (${maskLiteral(value)})`,
      secretHint(entry, sub),
    );
  }
  const masked = maskSecret(value);
  if (masked) {
    return at(
      entry,
      sub,
      `this looks like a literal secret (${masked}), which must not be in a policy file`,
      secretHint(entry, sub),
    );
  }
  return undefined;
}

const HEADER_FIELDS = new Set(['headers', 'extra_headers']);

type StringVisitor = (entry: Entry<unknown>, sub: Path, value: string, place: Place) => void;

/** Every string of every section of the policies, with where it sits. */
function visitStrings(set: PolicySet, visit: StringVisitor): void {
  const walk = (
    entry: Entry<unknown>,
    value: unknown,
    sub: Path,
    place: Place,
    depth: number,
  ): void => {
    if (depth > 64) return;
    if (typeof value === 'string') {
      visit(entry, sub, value, place);
    } else if (Array.isArray(value)) {
      value.forEach((item, index) => walk(entry, item, [...sub, index], place, depth + 1));
    } else if (value !== null && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        walk(
          entry,
          item,
          [...sub, key],
          {
            field: key,
            inHeaders: HEADER_FIELDS.has(place.field?.toLowerCase() ?? '') && !Array.isArray(item),
          },
          depth + 1,
        );
      }
    }
  };
  // Every section, the ones added later (master_key's delivery hook, health) included: a section
  // left out of this list is a place where a literal secret would pass.
  const entries: Entry<unknown>[] = [
    ...set.providers.values(),
    ...set.models.values(),
    ...set.profiles.values(),
    ...set.callers.values(),
    ...set.goals.values(),
    ...set.budgets,
    ...[
      set.cache,
      set.routing,
      set.spend,
      set.master_key,
      set.litellm,
      set.health,
      set.healthOverlay,
    ].filter((e) => e !== undefined),
  ];
  for (const entry of entries)
    walk(entry, entry.value, [], { field: undefined, inHeaders: false }, 0);
}

/**
 * Secret boundaries, over every string of every section: no literal secret anywhere (URL user-info
 * and query parameters, header values, fields named like keys, values shaped like keys), and no
 * reference to the controller's own secrets. Values are shown masked, never as written.
 */
export const secretRules: Rule = (set) => {
  const problems: Problem[] = [];
  visitStrings(set, (entry, sub, value, place) => {
    const problem = stringSecretProblem(entry, sub, value, place);
    if (problem) problems.push(problem);
  });
  return problems;
};

/**
 * The literal secrets written in the policies, as written: what an answer that shows policy text
 * (a proposal's diff) must mask. References to reserved variables are not secrets themselves.
 */
export function literalSecrets(set: PolicySet): string[] {
  const found: string[] = [];
  visitStrings(set, (entry, sub, value, place) => {
    if (isReference(value) || /^(env|secret):/.test(value)) return;
    if (isCredentialField(entry, sub) || stringSecretProblem(entry, sub, value, place)) {
      found.push(value);
    }
  });
  return found;
}

export const RULES: readonly Rule[] = [
  secretRules,
  passthroughRules,
  providerRules,
  modelRules,
  profileRules,
  fallbackCycleRule,
  callerRules,
  goalRules,
  budgetRules,
  cacheRules,
  healthRules,
];

export function runRules(set: PolicySet, rules: readonly Rule[] = RULES): Problem[] {
  return rules.flatMap((rule) => rule(set));
}
