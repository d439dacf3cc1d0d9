import { z } from 'zod';
import { buildFromDir } from '../compile/build.js';
import { HttpError, type HandlerContext, type Reply, type Route } from '../api/server.js';
import { kindInfo, PROVIDER_KIND_INFO } from '../policy/provider-kinds.js';
import { POLICY_LIMITS } from '../policy/limits.js';
import { providerSchema } from '../policy/schema.js';
import { isReference, maskLiteral, maskSecretsInText } from '../policy/secrets.js';
import { InputError } from '../shared/errors.js';
import type { MutationOptions, SelfExpansion } from './expansion.js';
import { ProviderCallError } from './list-models.js';
import type { PoolStore } from './pool.js';
import { ProposalInvalidError, type ProposalResult } from './proposal.js';
import { pullModel } from './pull.js';
import type { ModelSync } from './sync.js';
import { targetFor, type CredentialLookup } from './target.js';
import { testProvider } from './test-provider.js';
import { catalogView, discoveredView } from './views.js';

export interface ProviderRoutesDeps {
  policiesDir: string;
  expansion: SelfExpansion;
  sync: ModelSync;
  pool: PoolStore;
  credentials: CredentialLookup;
}

const change = {
  reason: z.string().max(2000).optional().describe('why: written into the policy commit message'),
  dryRun: z
    .boolean()
    .default(false)
    .describe('return the plan (diff, problems) without committing'),
};
/** A provider definition as in a policy file; checked by the policy validation (422), not here. */
const definition = z
  .record(z.string(), z.unknown())
  .refine((value) => nestingDepth(value, POLICY_LIMITS.depth) <= POLICY_LIMITS.depth, {
    message: `nested more than ${POLICY_LIMITS.depth} levels deep: a provider needs only a few`,
  })
  .describe('a provider entry as written under providers: in a policy file');

/**
 * How deep `value` nests, counted without recursion and no further than `limit + 1`: a body nested
 * thousands deep (a few KB of JSON) overflowed the stack of the YAML writer, a 500.
 */
function nestingDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    deepest = Math.max(deepest, depth);
    if (depth > limit) return depth;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return deepest;
}

const addBody = z
  .object({ name: z.string().min(1).max(100), provider: definition, ...change })
  .strict();
const putBody = z.object({ provider: definition, ...change }).strict();
const deleteBody = z.object(change).strict();
const testBody = z
  .object({ name: z.string().min(1).max(100).default('candidate'), provider: definition })
  .strict();
const promoteBody = z
  .object({
    ids: z.array(z.string().min(1).max(300)).min(1).max(200),
    profile: z.string().min(1).max(100).optional(),
    ...change,
  })
  .strict();
const enabledBody = z.object({ enabled: z.boolean(), ...change }).strict();
const pullBody = z.object({ model: z.string().min(1).max(300) }).strict();
const modelsQuery = z.object({
  source: z.enum(['curated', 'discovered', 'all']).default('all'),
});

/**
 * A proposal's answer: 200 with the commit and the apply report when it went live (or a dry
 * run's plan), 502 when the apply failed and the commit was reverted, 422 with the policy
 * problems when it would leave the policies invalid (nothing committed).
 */
async function proposal(
  context: HandlerContext,
  work: () => Promise<ProposalResult>,
): Promise<Reply> {
  try {
    const result = await work();
    if (result.dryRun || !result.reverted) return { status: 200, body: result };
    return { status: 502, body: result };
  } catch (error) {
    if (error instanceof ProposalInvalidError) {
      return {
        status: 422,
        body: {
          error: {
            code: 'invalid_policy',
            message: error.message,
            requestId: context.requestId,
          },
          problems: error.plan.problems,
          plan: error.plan,
        },
      };
    }
    throw error;
  }
}

/**
 * A route whose work is a policy proposal: validated, committed in the token's name and applied
 * (or only planned with `dryRun`), answered as `proposal` says.
 */
function proposalRoute<B extends z.ZodType<{ reason?: string | undefined; dryRun: boolean }>>(
  spec: Pick<Route, 'method' | 'path' | 'summary'> & { body: B },
  work: (
    body: z.infer<B>,
    options: MutationOptions,
    context: HandlerContext,
  ) => Promise<ProposalResult>,
): Route {
  return {
    ...spec,
    scope: 'admin',
    handle: (context) => {
      const body = context.body as z.infer<B>;
      const options = { author: context.actor, reason: body.reason, dryRun: body.dryRun };
      return proposal(context, () => work(body, options, context));
    },
  };
}

function parseProvider(name: string, raw: Record<string, unknown>) {
  const parsed = providerSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InputError(
      `provider "${name}": ${issue.path.join('.') || 'definition'}: ${issue.message}`,
      { status: 422, field: `provider.${issue.path.join('.')}` },
    );
  }
  return parsed.data;
}

export function providerRoutes(deps: ProviderRoutesDeps): Route[] {
  const definedProviders = async () => (await buildFromDir(deps.policiesDir)).set.providers;
  return [
    {
      method: 'GET',
      path: '/v1/providers',
      scope: 'read',
      summary: 'Providers in the policies: kind, address, credential reference, models, last sync',
      handle: async () => {
        const set = (await buildFromDir(deps.policiesDir)).set;
        const pool = await deps.pool.read();
        const providers = [...set.providers.values()].map(({ name, value }) => {
          const info = kindInfo(value.kind);
          return {
            name,
            kind: value.kind,
            prefix: info.prefix,
            // A hand-edited file may hold a secret the validation refuses: never answered as written.
            baseUrl: maskSecretsInText(value.base_url ?? info.defaultBaseUrl ?? '') || undefined,
            local: value.local ?? info.localByDefault,
            credential:
              value.credential === undefined || isReference(value.credential)
                ? value.credential
                : maskLiteral(value.credential),
            discovery: value.discovery,
            curatedModels: [...set.models.values()].filter((m) => m.value.provider === name).length,
            discoveredModels: Object.values(pool.models).filter((m) => m.provider === name).length,
            lastSync: Object.hasOwn(pool.syncs, name) ? pool.syncs[name] : undefined,
          };
        });
        return { status: 200, body: { providers } };
      },
    },
    {
      method: 'GET',
      path: '/v1/providers/kinds',
      scope: 'read',
      summary:
        'The registry of known provider kinds: prefix, base URL, key variables, auth, models endpoint',
      handle: () =>
        Promise.resolve({
          status: 200,
          body: {
            kinds: Object.entries(PROVIDER_KIND_INFO).map(([kind, info]) => ({ kind, ...info })),
          },
        }),
    },
    proposalRoute(
      {
        method: 'POST',
        path: '/v1/providers',
        summary: 'Add a provider: a policy commit (author: the token name), validated and applied',
        body: addBody,
      },
      (body, options) => deps.expansion.addProvider(body.name, body.provider, options),
    ),
    proposalRoute(
      {
        method: 'PUT',
        path: '/v1/providers/{name}',
        summary: 'Replace a provider definition: a policy commit, validated and applied',
        body: putBody,
      },
      (body, options, { params }) =>
        deps.expansion.updateProvider(params.name!, body.provider, options),
    ),
    proposalRoute(
      {
        method: 'DELETE',
        path: '/v1/providers/{name}',
        summary: 'Remove a provider: a policy commit (refused while models use it)',
        body: deleteBody,
      },
      (_body, options, { params }) => deps.expansion.deleteProvider(params.name!, options),
    ),
    {
      method: 'POST',
      path: '/v1/providers/test',
      scope: 'admin',
      summary:
        'Test a provider definition that is not saved: reachable, credential accepted, models, latency',
      body: testBody,
      handle: async ({ body }) => {
        const { name, provider } = body as z.infer<typeof testBody>;
        const report = await testProvider(name, parseProvider(name, provider), deps.credentials);
        return { status: 200, body: report };
      },
    },
    {
      method: 'POST',
      path: '/v1/providers/sync-all',
      scope: 'admin',
      summary:
        "Sync every provider's live model list into the discovered pool (never changes routing)",
      body: z.object({}).strict(),
      handle: async () => {
        const providers = new Map(
          [...(await definedProviders())].map(([name, entry]) => [name, entry.value]),
        );
        return { status: 200, body: { reports: await deps.sync.sync(providers) } };
      },
    },
    {
      method: 'POST',
      path: '/v1/providers/{name}/sync',
      scope: 'admin',
      summary:
        "Sync one provider's live model list into the discovered pool (never changes routing)",
      body: z.object({}).strict(),
      handle: async ({ params }) => {
        const entry = (await definedProviders()).get(params.name!);
        if (!entry)
          throw new HttpError(
            404,
            'not_found',
            `no provider "${params.name}" in the policies`,
            'name',
          );
        // A provider that fails is reported (ok: false, error), not an error of this request.
        const [report] = await deps.sync.sync(new Map([[entry.name, entry.value]]));
        return { status: 200, body: report };
      },
    },
    {
      method: 'POST',
      path: '/v1/providers/{name}/pull',
      scope: 'admin',
      summary:
        'Pull a model into an Ollama provider (/api/pull), streaming progress as NDJSON, then sync it',
      body: pullBody,
      handle: async ({ params, body }) => {
        const { model } = body as z.infer<typeof pullBody>;
        const entry = (await definedProviders()).get(params.name!);
        if (!entry)
          throw new HttpError(
            404,
            'not_found',
            `no provider "${params.name}" in the policies`,
            'name',
          );
        if (kindInfo(entry.value.kind).modelsEndpoint !== 'ollama') {
          throw new InputError(
            `provider "${entry.name}" is not an Ollama server: only Ollama pulls models`,
            {
              status: 422,
              field: 'name',
            },
          );
        }
        const target = targetFor(entry.name, entry.value, deps.credentials);
        const sync = deps.sync;
        async function* lines(): AsyncGenerator<string> {
          try {
            for await (const progress of pullModel(target, model)) {
              yield `${JSON.stringify(progress)}\n`;
            }
          } catch (error) {
            if (error instanceof ProviderCallError) {
              yield `${JSON.stringify({ error: { code: 'pull_failed', message: error.message } })}\n`;
              return;
            }
            throw error;
          }
          const [report] = await sync.sync(new Map([[entry!.name, entry!.value]]));
          yield `${JSON.stringify({ status: 'synced', sync: report })}\n`;
        }
        return { status: 200, body: undefined, stream: lines() };
      },
    },
    {
      method: 'GET',
      path: '/v1/models',
      scope: 'read',
      summary: 'Models: the curated catalog, the discovered pool, or both (source=)',
      query: modelsQuery,
      handle: async ({ query }) => {
        const { source } = query as z.infer<typeof modelsQuery>;
        const set = (await buildFromDir(deps.policiesDir)).set;
        const pool = await deps.pool.read();
        const models = [
          ...(source !== 'discovered' ? catalogView(set, pool) : []),
          ...(source !== 'curated' ? discoveredView(set, pool) : []),
        ];
        return { status: 200, body: { models } };
      },
    },
    {
      method: 'GET',
      path: '/v1/models/{id}',
      scope: 'read',
      summary: 'One model: a catalog name or a discovered id (<provider>/<upstream>, URL-encoded)',
      handle: async ({ params }) => {
        const id = params.id!;
        const set = (await buildFromDir(deps.policiesDir)).set;
        const pool = await deps.pool.read();
        const found = [...catalogView(set, pool), ...discoveredView(set, pool)].filter(
          (m) => m.id === id,
        );
        if (found.length === 0)
          throw new HttpError(
            404,
            'not_found',
            `no model "${id}" in the catalog or the discovered pool`,
            'id',
          );
        return { status: 200, body: { models: found } };
      },
    },
    proposalRoute(
      {
        method: 'POST',
        path: '/v1/models/promote',
        summary:
          'Promote discovered models into the catalog (and a profile): a policy commit, applied',
        body: promoteBody,
      },
      (body, options) => deps.expansion.promote(body.ids, body.profile, options),
    ),
    proposalRoute(
      {
        method: 'PUT',
        path: '/v1/models/{id}/enabled',
        summary:
          'Enable or disable a catalog model (a disabled model is not served): a policy commit',
        body: enabledBody,
      },
      (body, options, { params }) => deps.expansion.setEnabled(params.id!, body.enabled, options),
    ),
  ];
}
