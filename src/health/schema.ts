import { z } from 'zod';

/** The figures of one provider or deployment over the window (for the OpenAPI document). */
const figures = {
  requests: z.number().int(),
  errors: z.number().int(),
  errorRate: z.number(),
  /** Successful requests not served from LiteLLM's cache: latency and cost are over these. */
  measured: z.number().int(),
  p50LatencyMs: z.number().optional(),
  p95LatencyMs: z.number().optional(),
  p50TtftMs: z.number().optional(),
  p95TtftMs: z.number().optional(),
  costPerRequestUsd: z.number().optional(),
};

export const healthReportSchema = z.object({
  evaluatedAt: z.string(),
  windowSeconds: z.number(),
  providers: z.array(
    z.object({
      provider: z.string(),
      ...figures,
      condition: z.enum(['failing', 'recovered', 'between']),
      conditionSince: z.string(),
      why: z.string(),
      demoted: z.object({ since: z.string(), reason: z.string() }).optional(),
      probes: z.object({ healthy: z.number().int(), unhealthy: z.number().int() }).optional(),
      deployments: z.array(
        z.object({
          deployment: z.string(),
          model: z.string().optional(),
          ...figures,
          probe: z.object({ healthy: z.boolean(), error: z.string().optional() }).optional(),
        }),
      ),
    }),
  ),
  demotion: z.object({
    enabled: z.boolean(),
    reloadsLastHour: z.number().int(),
    maxReloadsPerHour: z.number().int(),
    deferredUntil: z.string().optional(),
  }),
  lastChange: z
    .object({
      at: z.string(),
      commit: z.string().optional(),
      message: z.string(),
      outcome: z.string(),
      reverted: z.boolean(),
    })
    .optional(),
  probesError: z.string().optional(),
  /**
   * This evaluation's overlay change could not be committed (git refused: a lock left behind, a
   * read-only .git): nothing changed, and the next evaluation tries again.
   */
  changeError: z.object({ at: z.string(), message: z.string(), error: z.string() }).optional(),
});
