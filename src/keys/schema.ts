import { z } from 'zod';
import { DURATION_PATTERN, parsePointInTime } from '../shared/duration.js';

/**
 * What the keys routes and CLI verbs accept and answer. Answers carry fingerprints
 * (src/keys/audit.ts), never a value.
 */

/** A relative duration (`24h`, `7d`) or a date/UTC time that exists, within 1970–9999. */
const when = z.string().superRefine((text, context) => {
  const parsed = parsePointInTime(text, new Date());
  if (!parsed.ok) context.addIssue({ code: 'custom', message: parsed.reason });
});

/** `GET /v1/keys/audit` and `modelcenter keys audit`. */
export const auditQuerySchema = z.strictObject({
  since: when.optional().describe('only events since then: 24h, 7d, 2026-11-01'),
  subject: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe('only events about this subject: provider:openai, master-key, caller:NAME'),
  rotation: z.string().min(1).max(200).optional().describe('only the steps of this rotation id'),
  limit: z.coerce
    .number({ error: 'must be a whole number' })
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(100_000, 'must be at most 100000')
    .default(1000)
    .describe('at most this many events, the newest'),
});
export type AuditQueryInput = z.infer<typeof auditQuerySchema>;

export const auditRecordSchema = z.object({
  id: z.number(),
  at: z.string(),
  rotationId: z.string(),
  actor: z.string(),
  action: z.string(),
  subject: z.string(),
  step: z.string(),
  outcome: z.enum(['started', 'ok', 'failed', 'skipped']),
  fingerprints: z.object({ old: z.string().optional(), new: z.string().optional() }).optional(),
  detail: z.string().optional(),
});

export const auditAnswerSchema = z.object({ events: z.array(auditRecordSchema) });

/** The last rotation of a credential or a key, as the key and credential lists show it. */
const lastRotationSchema = z.object({
  id: z.string(),
  state: z.string(),
  startedAt: z.string(),
  graceUntil: z.string().optional(),
  retiredAt: z.string().optional(),
});

/** One provider credential as `GET /v1/credentials` shows it. */
export const credentialStatusSchema = z.object({
  provider: z.string(),
  /** As written in the policy: env:NAME or secret:name. */
  reference: z.string(),
  /** The variable LiteLLM reads it from. */
  variable: z.string(),
  /** store: the secret store (a secret: credential, or a rotated env: one); env; missing. */
  source: z.enum(['store', 'env', 'missing']),
  /** An env: credential whose rotated, stored value is used instead of the environment's. */
  overridesEnv: z.boolean(),
  fingerprint: z.string().optional(),
  /** Since when the current value is in use (stored values only; the environment has no date). */
  since: z.string().optional(),
  ageSeconds: z.number().optional(),
  /** The old value still kept for the grace period of the last rotation, and until when. */
  previous: z.object({ fingerprint: z.string(), expiresAt: z.string() }).optional(),
  rotation: lastRotationSchema.optional(),
  /** The policy's rotate_every, and when the next scheduled rotation is due. */
  rotateEvery: z.string().optional(),
  nextRotation: z.string().optional(),
});
export type CredentialStatus = z.infer<typeof credentialStatusSchema>;

export const credentialsAnswerSchema = z.object({
  backend: z.string(),
  credentials: z.array(credentialStatusSchema),
});

/** One key clients present, as `GET /v1/keys` shows it (src/keys/key-list.ts). */
export const keyStatusSchema = z.object({
  /** master-key, or caller:NAME. */
  subject: z.string(),
  kind: z.enum(['master', 'caller']),
  caller: z.string().optional(),
  fingerprint: z.string(),
  /** A caller without a key of its own (configuration mode) sends the master key. */
  sharesMasterKey: z.boolean().optional(),
  /** Since when the current value is in use (a rotated, stored key only). */
  since: z.string().optional(),
  ageSeconds: z.number().optional(),
  rotation: lastRotationSchema.optional(),
  rotateEvery: z.string().optional(),
  nextRotation: z.string().optional(),
});
export type KeyStatus = z.infer<typeof keyStatusSchema>;

export const keysAnswerSchema = z.object({ keys: z.array(keyStatusSchema) });

/** `POST /v1/credentials/{provider}/rotate`: the new value in the body, never in a URL. */
export const rotateBodySchema = z.strictObject({
  value: z
    .string({ error: 'the new value is required' })
    .min(8, 'the new value is shorter than 8 characters')
    .max(8192, 'the new value is longer than 8192 characters')
    .describe('the new credential (sent only in the body; never shown again)'),
  grace: z
    .string()
    .regex(DURATION_PATTERN, 'a duration is a whole number and a unit: 30s, 15m, 1h, 1d')
    .optional()
    .describe("how long the old value stays valid (default: the policy's rotation.grace, else 1h)"),
  now: z
    .boolean({ error: 'must be true or false' })
    .default(false)
    .describe('compromised: no grace, retire the old value right after the swap'),
});
export type RotateBody = z.infer<typeof rotateBodySchema>;

/** `POST /v1/keys/master/rotate`: a new master key, or none to have one generated. */
export const masterRotateBodySchema = z.strictObject({
  value: z
    .string()
    .regex(/^[A-Za-z0-9._~+/=-]{8,512}$/, '8 to 512 letters, digits or . _ ~ + / = -')
    .optional()
    .describe('the new master key; generated (sk- and 64 hex characters) when not given'),
  grace: z
    .string()
    .regex(DURATION_PATTERN, 'a duration is a whole number and a unit: 30s, 15m, 1h, 1d')
    .optional()
    .describe(
      "how long the old key keeps working (default: the policy's master_key.grace, else 1h)",
    ),
  now: z
    .boolean({ error: 'must be true or false' })
    .default(false)
    .describe('compromised: the old key is refused right away'),
});
export type MasterRotateBody = z.infer<typeof masterRotateBodySchema>;
