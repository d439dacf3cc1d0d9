import { z } from 'zod';

/**
 * The part of a rendered config.yaml the admin-api strategy reads: its model_list. Our own output,
 * so each deployment is strict; the other sections are not this strategy's to read.
 */
export const renderedModelListSchema = z.looseObject({
  model_list: z
    .array(
      z.strictObject({
        model_name: z.string().min(1),
        litellm_params: z.looseObject({ model: z.string().min(1) }),
        model_info: z.looseObject({ id: z.string().min(1) }),
      }),
    )
    .default([]),
});
