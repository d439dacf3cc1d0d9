import { z } from 'zod';

/** Loose schemas for LiteLLM's answers: only the fields Model Center reads (STYLE §3). */

export const readinessSchema = z.looseObject({
  status: z.string(),
  litellm_version: z.string().optional(),
  db: z.string().optional(),
});
export type Readiness = z.infer<typeof readinessSchema>;

export const modelInfoSchema = z.looseObject({
  data: z.array(
    z.looseObject({
      model_name: z.string(),
      model_info: z.looseObject({
        id: z.string(),
        /** true for deployments LiteLLM loaded from its database, false for its own config.yaml. */
        db_model: z.boolean().optional(),
        /** Written by Model Center's admin-api strategy (see src/reload/admin-plan.ts). */
        modelcenter_sha256: z.string().optional(),
        modelcenter_fields: z.array(z.string()).optional(),
      }),
      litellm_params: z.looseObject({ model: z.string().optional() }).optional(),
    }),
  ),
});
export type ModelInfo = z.infer<typeof modelInfoSchema>;

/** A `LiteLLM_ProxyModelTable` row, as `/model/new` and `PATCH /model/{id}/update` return it. */
export const modelRowSchema = z.looseObject({ model_id: z.string(), model_name: z.string() });
export type ModelRow = z.infer<typeof modelRowSchema>;

/** `/model/delete`: `{"message": "Model: <id> deleted successfully"}`. */
export const deleteAnswerSchema = z.looseObject({ message: z.string() });

/** LiteLLM's ProxyException answer: `{"error": {"message": …, "type": …, "code": …}}`. */
export const proxyErrorBodySchema = z.looseObject({
  error: z.looseObject({ message: z.string() }),
});

/** FastAPI's answer: `{"detail": …}`, a string, `{"error": …}` or a list of validation problems. */
export const fastApiErrorBodySchema = z.looseObject({ detail: z.unknown() });

/**
 * One `LiteLLM_SpendLogs` row as `GET /spend/logs/v2` lists it (litellm-facts §3.1; the list
 * columns of spend_management_endpoints.py in 1.104.0: no messages, response or request body).
 * Times are UTC, with or without a zone designator; `metadata` is hydrated JSON, `request_tags`
 * may come as JSON text; `cache_hit` is Python's str(bool).
 */
export const spendLogRowSchema = z.looseObject({
  request_id: z.string(),
  litellm_call_id: z.string().nullish(),
  call_type: z.string().nullish(),
  spend: z.number().nullish(),
  prompt_tokens: z.number().nullish(),
  completion_tokens: z.number().nullish(),
  startTime: z.string(),
  endTime: z.string().nullish(),
  completionStartTime: z.string().nullish(),
  model: z.string().nullish(),
  model_id: z.string().nullish(),
  model_group: z.string().nullish(),
  custom_llm_provider: z.string().nullish(),
  metadata: z.unknown().optional(),
  cache_hit: z.union([z.string(), z.boolean()]).nullish(),
  request_tags: z.unknown().optional(),
  end_user: z.string().nullish(),
  session_id: z.string().nullish(),
  status: z.string().nullish(),
});
export type SpendLogRow = z.infer<typeof spendLogRowSchema>;

/** A spend-log row not in the shape above: kept aside with why, so it cannot fail its page. */
export interface MalformedSpendLog {
  row: unknown;
  problem: string;
}

/**
 * `GET /spend/logs/v2`: one page; `total` stops at 10,000 (`total_is_capped` says it did). Rows are
 * checked one by one: a single odd row must not make the page unreadable (the backfill would read
 * the same window, and fail, for good), so it lands in `malformed` for the dead-letter file.
 */
export const spendLogsPageSchema = z
  .looseObject({
    data: z.array(z.unknown()),
    total: z.number(),
    page: z.number(),
    page_size: z.number(),
    total_pages: z.number(),
    total_is_capped: z.boolean().optional(),
  })
  .transform((page) => {
    const data: SpendLogRow[] = [];
    const malformed: MalformedSpendLog[] = [];
    for (const row of page.data) {
      const parsed = spendLogRowSchema.safeParse(row);
      if (parsed.success) data.push(parsed.data);
      else {
        const issue = parsed.error.issues[0];
        malformed.push({
          row,
          problem: `not a SpendLogs row: ${issue?.path.join('.') || 'row'}: ${issue?.message ?? 'invalid'}`,
        });
      }
    }
    return { ...page, data, malformed };
  });
export type SpendLogsPage = Omit<z.output<typeof spendLogsPageSchema>, 'malformed'> & {
  malformed?: MalformedSpendLog[];
};
