import { z } from 'zod';
import { DURATION_PATTERN, durationSeconds, MAX_DURATION_TEXT } from '../shared/duration.js';
import { PROVIDER_KINDS } from './provider-kinds.js';

/**
 * The written form of policy files. Strict objects: an unknown key is an error, so a typo never
 * silently does nothing. Cross-references (a model naming a provider, …) are checked in rules.ts.
 */

export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*$/;
const name = z
  .string()
  .regex(
    NAME_PATTERN,
    'use lowercase letters, digits, ".", "_" or "-", starting with a letter or digit',
  );

const duration = z
  .string()
  .regex(DURATION_PATTERN, 'a duration is a whole number and a unit: 30s, 15m, 24h, 7d or 2w')
  .refine((text) => !DURATION_PATTERN.test(text) || durationSeconds(text) !== undefined, {
    message: `a duration may be at most ${MAX_DURATION_TEXT}`,
  });

/** `env:NAME` or `secret:name`. Literal values are rejected in rules.ts with a tailored message. */
export const CREDENTIAL_REFERENCE = /^(env:[A-Z_][A-Z0-9_]*|secret:[a-z0-9][a-z0-9._-]*)$/;
const credential = z.string().min(1);

/** Every kind of the provider registry (src/policy/provider-kinds.ts). */
export { PROVIDER_KINDS, type ProviderKind } from './provider-kinds.js';

export const CAPABILITIES = [
  'chat',
  'completion',
  'embedding',
  'vision',
  'tools',
  'streaming',
  'reasoning',
  'json_mode',
  'audio',
  'image_generation',
  'rerank',
] as const;
export type Capability = (typeof CAPABILITIES)[number];

/**
 * How a profile orders its candidates. `latency` (p50) and `reliability` (success rate) rank by
 * what the spend ledger measured, and `cost` by the measured cost per request, once the health
 * overlay holds enough samples for both candidates (src/health/); before that `cost` ranks by
 * declared pricing and `latency`/`reliability` leave the order to the next preference.
 */
export const PREFERENCES = [
  'local',
  'cost',
  'quality',
  'context',
  'latency',
  'reliability',
] as const;
export type Preference = (typeof PREFERENCES)[number];

const positiveInt = z.number().int().positive();
const passthroughValue = z.union([
  z.string(),
  z.number(),
  z.boolean(),
  z.array(z.string()),
  z.record(z.string(), z.string()),
]);
const globPatterns = z.array(z.string().min(1));

/** A command the controller runs: an argument list (no shell), or one string run by `sh -c`. */
const command = z.union([
  z.string().min(1, 'a command must not be empty'),
  z.array(z.string()).min(1, 'a command needs at least the program'),
]);

/**
 * How a provider's credential is rotated (src/keys/). `modelcenter credentials rotate` works
 * without any of it; scheduled and anomaly rotations need `issue` (where a new value comes from).
 */
export const credentialRotationSchema = z.strictObject({
  /** Rotate on this schedule (needs `issue`). */
  rotate_every: duration.optional(),
  /** How long the old value is kept after a rotation before it is retired (default 1h). */
  grace: duration.optional(),
  /** Prints a new value on stdout (e.g. calls the provider's key API); used by schedules and anomalies. */
  issue: command.optional(),
  /**
   * Retires the old value once its grace period ended (e.g. revokes it at the provider): run once,
   * with the old value's fingerprint as its last argument and in MODELCENTER_OLD_FINGERPRINT, the
   * value on stdin.
   */
  retire: command.optional(),
  /** A burst of 401s from the provider: `alert` (default) or `rotate` at once (needs `issue`). */
  on_anomaly: z.enum(['alert', 'rotate']).optional(),
});

export const providerSchema = z.strictObject({
  kind: z.enum(PROVIDER_KINDS),
  credential: credential.optional(),
  base_url: z.url({ message: 'base_url must be an absolute http(s) URL' }).optional(),
  local: z.boolean().optional(),
  api_version: z.string().min(1).optional(),
  region: z.string().min(1).optional(),
  timeout: duration.optional(),
  limits: z.strictObject({ rpm: positiveInt.optional(), tpm: positiveInt.optional() }).optional(),
  discovery: z
    .strictObject({ include: globPatterns.optional(), exclude: globPatterns.optional() })
    .optional(),
  /** Extra LiteLLM litellm_params for every deployment of this provider (organization, extra_headers, …). */
  params: z.record(z.string().min(1), passthroughValue).optional(),
  /** Rotation of `credential`: schedule, grace period, issue and retire hooks, anomaly response. */
  rotation: credentialRotationSchema.optional(),
});

export const modelSchema = z.strictObject({
  provider: name,
  /** Explicit deployment id, to keep spend and health history when the model is renamed. */
  id: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._/-]*$/, 'use lowercase letters, digits, ".", "_", "-" or "/"')
    .optional(),
  upstream: z.string().min(1).optional(),
  capabilities: z.array(z.enum(CAPABILITIES)).min(1),
  context_window: positiveInt.optional(),
  max_output: positiveInt.optional(),
  pricing: z
    .strictObject({
      input_per_mtok: z.number().nonnegative(),
      output_per_mtok: z.number().nonnegative(),
    })
    .optional(),
  quality: z.number().int().min(0).max(100).optional(),
  expose: z.boolean().optional(),
  /** `false`: not served at all, neither under its own name nor in any profile (`models disable`). */
  enabled: z.boolean().optional(),
});

export const PRESET_PARAMS = z.strictObject({
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().min(0).max(1).optional(),
  max_tokens: positiveInt.optional(),
  seed: z.number().int().optional(),
  stop: z.array(z.string()).optional(),
  presence_penalty: z.number().min(-2).max(2).optional(),
  frequency_penalty: z.number().min(-2).max(2).optional(),
  reasoning_effort: z.enum(['low', 'medium', 'high']).optional(),
});

export const profileSchema = z.strictObject({
  description: z.string().optional(),
  requires: z.array(z.enum(CAPABILITIES)).default([]),
  prefer: z.array(z.enum(PREFERENCES)).default([]),
  only: z.enum(['local', 'remote']).optional(),
  providers: z.array(name).optional(),
  models: z.array(name).optional(),
  exclude: z.array(name).optional(),
  min_context: positiveInt.optional(),
  max_deployments: positiveInt.optional(),
  fallback: z.array(name).default([]),
  context_fallback: z.array(name).optional(),
  params: PRESET_PARAMS.optional(),
});

const keySchema = z.strictObject({
  rotate_every: duration.optional(),
  grace: duration.optional(),
  max_budget_usd: z.number().positive().optional(),
  budget_period: duration.optional(),
  /** How long a key is valid after it is made (LiteLLM's `duration`); expiry is warned ahead. */
  duration: duration.optional(),
  /**
   * Where a new key goes: `command` gets it on stdin, `file` is written 0600; with neither, the
   * caller's owner reads it once through the API (`GET /v1/keys/{caller}/delivery`).
   */
  deliver: z
    .strictObject({ command: z.string().min(1).optional(), file: z.string().min(1).optional() })
    .optional(),
});

export const callerSchema = z.strictObject({
  description: z.string().optional(),
  profiles: z.array(name).default([]),
  key: keySchema.optional(),
});

const alertAt = z.array(z.number().gt(0).max(10)).optional();

export const goalSchema = z.strictObject({
  title: z.string().min(1),
  owner: name.optional(),
  budget: z
    .strictObject({ usd: z.number().positive(), period: duration, alert_at: alertAt })
    .optional(),
});

export const budgetSchema = z.strictObject({
  name: name.optional(),
  scope: z
    .strictObject({
      provider: name.optional(),
      model: name.optional(),
      profile: name.optional(),
      caller: name.optional(),
      goal: name.optional(),
    })
    .default({}),
  usd: z.number().positive(),
  period: duration,
  alert_at: alertAt,
});

export const cacheSchema = z.strictObject({
  type: z.enum(['local', 'redis', 'disk']),
  ttl: duration.optional(),
  host: z.string().min(1).optional(),
  port: positiveInt.optional(),
  password: credential.optional(),
  namespace: z.string().min(1).optional(),
  dir: z.string().min(1).optional(),
});

export const routingSchema = z.strictObject({
  strategy: z
    .enum([
      'simple-shuffle',
      'least-busy',
      'usage-based-routing-v2',
      'latency-based-routing',
      'cost-based-routing',
    ])
    .optional(),
  retries: z.number().int().min(0).max(10).optional(),
  timeout: duration.optional(),
  allowed_fails: z.number().int().min(0).optional(),
  cooldown: duration.optional(),
});

/** What the spend ledger keeps beyond the figures of each request. */
export const spendSchema = z.strictObject({
  /**
   * Keep every request's prompt and response (LiteLLM's `messages` and `response`) in the ledger,
   * readable with `modelcenter spend show` and `GET /v1/spend/requests/{callId}`. Off by default:
   * content is sensitive and large.
   */
  keep_content: z
    .boolean()
    .default(false)
    .describe(
      'keep prompts and responses of every request in the spend ledger (sensitive; off by default)',
    ),
});

const rate = z.number().min(0).max(1);

/**
 * Health: LiteLLM's background probes, the ledger's sliding window, the error-rate alert, demotion
 * of failing providers and ranking by measurements (src/health/). Every field has a default.
 */
export const healthSchema = z.strictObject({
  /**
   * LiteLLM's background health checks: one probe per deployment per interval (profile copies of
   * a model are not probed twice), read through its `/health`. Absent: no probes (they cost a
   * request each).
   */
  probe_interval: duration
    .optional()
    .describe('how often LiteLLM probes each deployment (absent: no background probes)'),
  /** The sliding window of the ledger's error rate and latency percentiles (default 5m). */
  window: duration.optional().describe('sliding window of the live error rate and latency (5m)'),
  /** How often the controller evaluates health (default 15s). */
  evaluate_every: duration.optional().describe('how often health is evaluated (15s)'),
  alert: z
    .strictObject({
      /** Alert when a provider's error rate over the window reaches this (default 0.5). */
      error_rate: rate.optional(),
      /** …with at least this many requests in the window (default 10). */
      min_requests: positiveInt.optional(),
    })
    .optional(),
  demotion: z
    .strictObject({
      /** Default true. */
      enabled: z.boolean().optional(),
      /** A provider is failing at this error rate or above (default 0.5)… */
      error_rate: rate.optional(),
      /** …over at least this many requests in the window (default 5). */
      min_requests: positiveInt.optional(),
      /** Failing this long without a break: demoted (default 2m). */
      after: duration.optional(),
      /** Recovered below this error rate (default 0.1; no traffic counts as recovered)… */
      recover_below: rate.optional(),
      /** …for this long without a break: restored (default 10m). */
      recover_after: duration.optional(),
      /** Demotions, restorations and re-rankings together reload at most this often (default 4). */
      max_reloads_per_hour: positiveInt.optional(),
    })
    .optional(),
  ranking: z
    .strictObject({
      /** Measurements of a model count once its window holds this many requests (default 20). */
      min_samples: positiveInt.optional(),
      /** The window of the measurements used for ranking (default 1h). */
      window: duration.optional(),
      /** The order changes only when a candidate is better by more than this fraction (default 0.2). */
      margin: z.number().min(0).max(10).optional(),
    })
    .optional(),
});

/**
 * Written by the controller, never by hand (policies/modelcenter-health.yaml, its own commits):
 * providers demoted to the end of every profile, and the measurements profiles rank by.
 */
export const healthOverlaySchema = z.strictObject({
  demoted: z
    .record(name, z.strictObject({ since: z.string().min(1), reason: z.string().min(1) }))
    .default({}),
  measured: z
    .record(
      name,
      z.strictObject({
        samples: positiveInt,
        p50_latency_ms: z.number().nonnegative().optional(),
        success_rate: rate,
        cost_per_request_usd: z.number().nonnegative().optional(),
      }),
    )
    .default({}),
});

/** Escape hatch: LiteLLM settings Model Center does not model, merged into the compiled config. */
export const litellmPassthroughSchema = z.strictObject({
  litellm_settings: z.record(z.string().min(1), z.unknown()).optional(),
  general_settings: z.record(z.string().min(1), z.unknown()).optional(),
  router_settings: z.record(z.string().min(1), z.unknown()).optional(),
});

/** Where a new key goes once it is live (a master key, a caller's virtual key). */
export const deliverySchema = z.strictObject({
  /** Run with the new key on stdin (and its fingerprint as its last argument). */
  hook: command.optional(),
  /** Written to this file, mode 0600 (replaced atomically). */
  file: z.string().min(1).optional(),
});

/**
 * LiteLLM's master key (`modelcenter keys rotate-master`). In configuration mode it is the only key
 * clients have: during the grace period the blue-green front maps the old key to the new one.
 */
export const masterKeySchema = z.strictObject({
  /** How long the old key keeps working after a rotation (default 1h). */
  grace: duration.optional(),
  /** Rotate on this schedule. */
  rotate_every: duration.optional(),
  /** Besides one authenticated API read (GET /v1/keys/master/delivery), deliver the new key here. */
  deliver: deliverySchema.optional(),
  /**
   * A caller's cost spike while callers share the master key: `alert` (default), or `rotate` it at
   * once (no grace: compromised) and deliver the new one.
   */
  on_anomaly: z.enum(['alert', 'rotate']).optional(),
});

/** One policy file. Every section is optional; sections merge across files. */
export const policyFileSchema = z.strictObject({
  providers: z.record(name, providerSchema).optional(),
  models: z.record(name, modelSchema).optional(),
  profiles: z.record(name, profileSchema).optional(),
  callers: z.record(name, callerSchema).optional(),
  goals: z.record(name, goalSchema).optional(),
  budgets: z.array(budgetSchema).optional(),
  cache: cacheSchema.optional(),
  routing: routingSchema.optional(),
  spend: spendSchema.optional(),
  master_key: masterKeySchema.optional(),
  litellm: litellmPassthroughSchema.optional(),
  health: healthSchema.optional(),
  health_overlay: healthOverlaySchema.optional(),
});

export type PolicyFile = z.infer<typeof policyFileSchema>;
export type Provider = z.infer<typeof providerSchema>;
export type CredentialRotation = z.infer<typeof credentialRotationSchema>;
export type Model = z.infer<typeof modelSchema>;
export type Profile = z.infer<typeof profileSchema>;
export type Caller = z.infer<typeof callerSchema>;
export type Goal = z.infer<typeof goalSchema>;
export type Budget = z.infer<typeof budgetSchema>;
export type Cache = z.infer<typeof cacheSchema>;
export type Routing = z.infer<typeof routingSchema>;
export type Spend = z.infer<typeof spendSchema>;
export type MasterKey = z.infer<typeof masterKeySchema>;
export type Delivery = z.infer<typeof deliverySchema>;
export type Health = z.infer<typeof healthSchema>;
export type HealthOverlay = z.infer<typeof healthOverlaySchema>;
export type LiteLLMPassthrough = z.infer<typeof litellmPassthroughSchema>;
export type PresetParams = z.infer<typeof PRESET_PARAMS>;
