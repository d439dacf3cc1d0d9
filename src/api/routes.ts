import { z } from 'zod';
import type { ApplyReport, DriftReport, Plan } from '../apply/controller.js';
import { GitStateError } from '../gitstate/git-state.js';
import { DiskFullError } from '../shared/disk.js';
import { HttpError, openApiDocument, type Reply, type Route } from './server.js';

/** What the API needs from the running service; `src/main.ts` provides it. */
export interface ServiceApi {
  status(): Promise<unknown>;
  /** Every instance up and serving the committed deployment set, else why not. */
  readiness(): Promise<{ ready: boolean; reason?: string; degraded?: string }>;
  plan(): Promise<Plan>;
  /** `before`: a change to make inside the apply lock first (a policy commit through the API). */
  apply(options: { force: boolean; before?: () => Promise<void> }): Promise<ApplyReport>;
  reload(): Promise<ApplyReport>;
  rollback(to: string | undefined): Promise<ApplyReport>;
  drift(): Promise<DriftReport>;
  jobs(): unknown[];
  runJob(name: string): Promise<unknown>;
  metrics(): Promise<{ text: string; contentType: string }>;
  /** Routes other subsystems add (spend, keys …). */
  extraRoutes?: readonly Route[];
}

export const applyBodySchema = z
  .object({
    force: z
      .boolean({ error: 'must be true or false' })
      .default(false)
      .describe('overwrite a hand-edited generated file (drift)'),
  })
  .strict();

export const rollbackBodySchema = z
  .object({
    to: z
      .string({ error: 'must be a commit id or ref' })
      .regex(/^[\w./~^-]{1,200}$/, 'must be a commit id or ref (letters, digits, . / ~ ^ -)')
      .optional()
      .describe('a generated commit; default: last-known-good'),
  })
  .strict();

const emptyBodySchema = z.object({}).strict();

const applyReportSchema = z.object({
  outcome: z.enum(['applied', 'unchanged', 'invalid', 'drift', 'rolled-back', 'failed']),
  commit: z.string().optional(),
  lastKnownGood: z.string().optional(),
  problems: z.array(z.string()),
  litellmOutput: z.string().optional(),
});

const planSchema = z.object({
  valid: z.boolean(),
  problems: z.array(z.string()),
  warnings: z.array(z.string()),
  changed: z.boolean(),
  added: z.array(z.string()),
  removed: z.array(z.string()),
  diff: z.string(),
  orderChanges: z.array(
    z.object({
      profile: z.string(),
      before: z.array(z.string()),
      after: z.array(z.string()),
      why: z.array(z.string()),
    }),
  ),
});

/**
 * Apply outcomes as HTTP statuses: 200 when the wanted config is live, 422 invalid policies,
 * 409 drift or another apply holding the lock, 502 when LiteLLM rejected it (rolled back or failed).
 */
export function applyReply(report: ApplyReport): Reply {
  const status = {
    applied: 200,
    unchanged: 200,
    invalid: 422,
    drift: 409,
    'rolled-back': 502,
    failed: 502,
  }[report.outcome];
  return { status, body: report };
}

/**
 * An apply, reload or rollback as a reply. Git refusing the commit (a lock left behind) is the
 * repository's state, not the request's: 503 with git's message, and the next attempt retries.
 * A rollback target that is not one generated commit arrives as RevisionError (400/404).
 */
async function mutation(work: () => Promise<ApplyReport>): Promise<Reply> {
  try {
    return applyReply(await work());
  } catch (error) {
    if (error instanceof DiskFullError) throw new HttpError(507, 'disk_full', error.message);
    if (error instanceof GitStateError) throw new HttpError(503, 'git_failed', error.message);
    throw error;
  }
}

export function apiRoutes(service: ServiceApi, version: string): Route[] {
  const routes: Route[] = [
    {
      method: 'GET',
      path: '/healthz',
      scope: 'public',
      summary: 'The controller itself is up (no token needed)',
      handle: () => Promise.resolve({ status: 200, body: { ok: true } }),
    },
    {
      method: 'GET',
      path: '/readyz',
      scope: 'public',
      summary:
        'Every LiteLLM instance is up and serves the committed deployment set: 200, else 503 with the reason (no token needed)',
      handle: async () => {
        const { ready, reason, degraded } = await service.readiness();
        return ready
          ? { status: 200, body: { ready: true, ...(degraded && { degraded }) } }
          : { status: 503, body: { ready: false, reason } };
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      scope: 'read',
      summary: 'Prometheus metrics (text exposition format)',
      handle: async () => {
        const { text, contentType } = await service.metrics();
        return { status: 200, body: text, contentType };
      },
    },
    {
      method: 'GET',
      path: '/v1/status',
      scope: 'read',
      summary: 'Generated commit, last-known-good, drift, instances, last apply, jobs',
      handle: async () => ({ status: 200, body: await service.status() }),
    },
    {
      method: 'POST',
      path: '/v1/plan',
      scope: 'read',
      summary: 'What an apply would change, without applying',
      body: emptyBodySchema,
      response: planSchema,
      handle: async () => ({ status: 200, body: await service.plan() }),
    },
    {
      method: 'POST',
      path: '/v1/apply',
      scope: 'admin',
      summary: 'validate → compile → commit → reload → verify, or roll back to last-known-good',
      body: applyBodySchema,
      response: applyReportSchema,
      handle: ({ body }) => mutation(() => service.apply(body as z.infer<typeof applyBodySchema>)),
    },
    {
      method: 'POST',
      path: '/v1/reload',
      scope: 'admin',
      summary: 'Reload and verify the current config on every instance, even if unchanged',
      body: emptyBodySchema,
      response: applyReportSchema,
      handle: () => mutation(() => service.reload()),
    },
    {
      method: 'POST',
      path: '/v1/rollback',
      scope: 'admin',
      summary: 'Return to last-known-good or an earlier generated commit, verified',
      body: rollbackBodySchema,
      response: applyReportSchema,
      handle: ({ body }) =>
        mutation(() => service.rollback((body as z.infer<typeof rollbackBodySchema>).to)),
    },
    {
      method: 'GET',
      path: '/v1/drift',
      scope: 'read',
      summary: 'Hand edits, foreign commits, live instances serving another set',
      handle: async () => ({ status: 200, body: await service.drift() }),
    },
    {
      method: 'GET',
      path: '/v1/jobs',
      scope: 'read',
      summary: 'Scheduled jobs: last run, duration, outcome, next run',
      handle: () => Promise.resolve({ status: 200, body: { jobs: service.jobs() } }),
    },
    {
      method: 'POST',
      path: '/v1/jobs/{name}/run',
      scope: 'admin',
      summary: 'Run a scheduled job now (refused while it runs)',
      body: emptyBodySchema,
      handle: async ({ params }) => {
        const name = params.name ?? '';
        if (!service.jobs().some((j) => (j as { name?: string }).name === name)) {
          throw new HttpError(404, 'not_found', `no job "${name}"`, 'name');
        }
        return { status: 200, body: await service.runJob(name) };
      },
    },
    ...(service.extraRoutes ?? []),
  ];
  routes.push({
    method: 'GET',
    path: '/openapi.json',
    scope: 'read',
    summary: 'This document',
    handle: () => Promise.resolve({ status: 200, body: openApiDocument(routes, version) }),
  });
  return routes;
}
