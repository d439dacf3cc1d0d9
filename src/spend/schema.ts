import { z } from 'zod';
import { parsePointInTime } from '../shared/duration.js';
import { DIMENSIONS } from '../store/ledger.js';

/**
 * LiteLLM's StandardLoggingPayload (litellm-facts §3.2; litellm/types/utils.py in 1.104.0), loose:
 * only the fields the ledger reads are named and checked; the rest is ignored (not copied: this
 * runs for every spool line, so free-form maps stay `unknown` and are read with type guards).
 */
const text = z.string().nullish();
/**
 * Costs, token counts and times are checked where the row is built (clean.ts), not here: a
 * negative cost or an infinite token count makes a record with an unknown value, not no record.
 */
const number = z.unknown().optional();

export const standardLoggingPayloadSchema = z.object({
  id: text,
  litellm_call_id: text,
  /** Older payloads and the generic_api docs call it call_id. */
  call_id: text,
  trace_id: text,
  session_id: text,
  call_type: text,
  stream: z.boolean().nullish(),
  status: text,
  response_cost: number,
  prompt_tokens: number,
  completion_tokens: number,
  startTime: number,
  endTime: number,
  completionStartTime: number,
  model: text,
  model_id: text,
  model_group: text,
  custom_llm_provider: text,
  cache_hit: z.boolean().nullish(),
  request_tags: z.array(z.unknown()).nullish(),
  end_user: text,
  error_information: z.object({ error_code: z.unknown().optional(), error_class: text }).nullish(),
  metadata: z
    .object({
      user_api_key_alias: text,
      /** The request's own `metadata` (a map). */
      requester_metadata: z.unknown().optional(),
      spend_logs_metadata: z.unknown().optional(),
    })
    .nullish(),
});
export type StandardLoggingPayload = z.infer<typeof standardLoggingPayloadSchema>;

const dimension = z.enum(DIMENSIONS);
/** No ledger value holds control characters (the database refuses NUL): such a filter is a mistake. */
const CONTROL = /\p{Cc}/u;
const csv = z
  .union([z.string(), z.array(z.string())])
  .refine((v) => !(Array.isArray(v) ? v : [v]).some((s) => CONTROL.test(s)), {
    message: 'must not contain control characters (NUL, newline, …)',
  })
  .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean));
/** A relative duration or a date/UTC time that exists (no February 30th) within 1970–9999. */
const when = z.string().superRefine((text, context) => {
  const parsed = parsePointInTime(text, new Date());
  if (!parsed.ok) context.addIssue({ code: 'custom', message: parsed.reason });
});

/**
 * A spend report request, as the CLI flags and `GET /v1/spend/report` query parameters give it.
 * Filters take comma-separated values; `-` stands for "not set" (requests without a goal, …).
 */
export const reportQuerySchema = z.strictObject({
  groupBy: csv.pipe(z.array(dimension)).default([]),
  since: when.default('7d'),
  until: when.optional(),
  goal: csv.optional(),
  caller: csv.optional(),
  conversation: csv.optional(),
  profile: csv.optional(),
  model: csv.optional(),
  provider: csv.optional(),
  deployment: csv.optional(),
  sort: z.enum(['cost', 'requests', 'errors', 'error_rate', 'latency_p95', 'key']).default('cost'),
  limit: z.coerce.number().int().positive().max(100_000).optional(),
});
export type ReportQuery = z.input<typeof reportQuerySchema>;
export type ParsedReportQuery = z.output<typeof reportQuerySchema>;

/**
 * `POST /v1/spend/backfill` and `modelcenter spend backfill`: a range of LiteLLM's spend logs to
 * read; without `since`, the range after the last backfill (the scheduled job's catch-up).
 */
export const backfillQuerySchema = z.strictObject({
  since: when.optional(),
  until: when.optional(),
});
export type BackfillQuery = z.infer<typeof backfillQuerySchema>;

const nullableText = z.string().nullable();

/** The answer of `GET /v1/spend/requests/{callId}` (src/spend/request.ts), for the OpenAPI document. */
export const callRecordSchema = z.object({
  callId: z.string(),
  costUsd: z.number().describe('sum over the attempts'),
  attempts: z
    .array(
      z.object({
        startedAt: z.string().describe('ISO 8601'),
        endedAt: z.string().describe('ISO 8601'),
        status: z.enum(['success', 'failure']),
        goal: nullableText,
        caller: nullableText,
        conversation: nullableText,
        profile: nullableText.describe('the model group asked for'),
        deployment: nullableText,
        model: nullableText,
        provider: nullableText,
        tokensIn: z.number(),
        tokensOut: z.number(),
        costUsd: z.number(),
        latencyMs: z.number().nullable(),
        ttftMs: z.number().nullable(),
        cacheHit: z.boolean(),
        errorClass: nullableText,
        errorCode: nullableText,
        cleaned: z
          .array(z.string())
          .optional()
          .describe(
            'present when the record had to be cleaned to be stored: nul, surrogate, long-value, cost (unknown, counted as 0), tokens (unknown, 0), time',
          ),
        content: z
          .object({
            messages: z.unknown().describe('the prompt as LiteLLM logged it'),
            response: z.unknown().describe('the answer as LiteLLM logged it'),
          })
          .optional()
          .describe('present only when the policies keep content (spend.keep_content)'),
      }),
    )
    .describe('retries and fallbacks of the call, oldest first'),
});
