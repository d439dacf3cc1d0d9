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
