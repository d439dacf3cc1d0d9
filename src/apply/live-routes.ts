import { z } from 'zod';
import type { Route } from '../api/server.js';
import type { GitState } from '../gitstate/git-state.js';
import type { ApplyHistory } from './history.js';

const limitQuerySchema = z.strictObject({
  limit: z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(200, 'must be at most 200')
    .default(20)
    .describe('how many, newest first'),
});

const outcomeSchema = z.enum(['applied', 'unchanged', 'invalid', 'drift', 'rolled-back', 'failed']);

const appliesSchema = z.object({
  applies: z.array(
    z.object({
      at: z.string().describe('when it started, ISO 8601'),
      trigger: z.string().describe('start, api, api-reload, api-rollback, policy-commit, watch'),
      outcome: outcomeSchema,
      commit: z.string().optional().describe('the generated commit live afterwards'),
      durationMs: z.number(),
      problems: z.array(z.string()),
    }),
  ),
});

const generatedCommitsSchema = z.object({
  lastKnownGood: z.string().optional(),
  commits: z.array(
    z.object({
      commit: z.string(),
      at: z.string(),
      subject: z.string(),
      policyCommit: z.string().optional().describe('the policy commit it was rendered from'),
      rollbackTo: z.string().optional().describe('the generated commit a rollback restored'),
      lastKnownGood: z.boolean(),
    }),
  ),
});

/** The apply subsystem's read routes behind the dashboard's live state. */
export function liveStateRoutes(deps: { state: GitState; history: ApplyHistory }): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/applies',
      scope: 'read',
      summary:
        'The last applies, reloads and rollbacks, newest first: trigger, outcome, commit, duration, problems (kept across restarts)',
      query: limitQuerySchema,
      response: appliesSchema,
      handle: ({ query }) =>
        Promise.resolve({
          status: 200,
          body: { applies: deps.history.recent((query as { limit: number }).limit) },
        }),
    },
    {
      method: 'GET',
      path: '/v1/generated-commits',
      scope: 'read',
      summary:
        'Commits of the generated config, newest first, with their policy commit and which is last-known-good: the targets of POST /v1/rollback',
      query: limitQuerySchema,
      response: generatedCommitsSchema,
      handle: async ({ query }) => {
        const lastKnownGood = await deps.state.lastKnownGood();
        const commits = await deps.state.generatedHistory((query as { limit: number }).limit);
        return {
          status: 200,
          body: {
            ...(lastKnownGood && { lastKnownGood }),
            commits: commits.map((c) => ({ ...c, lastKnownGood: c.commit === lastKnownGood })),
          },
        };
      },
    },
  ];
}
