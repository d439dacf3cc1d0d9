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
      model_info: z.looseObject({ id: z.string() }),
      litellm_params: z.looseObject({ model: z.string().optional() }).optional(),
    }),
  ),
});
export type ModelInfo = z.infer<typeof modelInfoSchema>;
