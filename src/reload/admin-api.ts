import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import {
  LiteLLMAdminClient,
  type AdminDeployment,
  type ServedDeployment,
} from '../litellm/admin-client.js';
import type { DeploymentRef } from '../litellm/client.js';
import { LiteLLMCredentialClient } from '../litellm/credential-client.js';
import { describeError } from '../shared/errors.js';
import {
  bindCredentials,
  credentialGap,
  valueMark,
  writeCredentials,
} from './admin-credentials.js';
import { contentHash, describePlan, planModelChanges, type ModelChangePlan } from './admin-plan.js';
import { renderedModelListSchema } from './schema.js';
import { ReloadError, type ReloadStrategy } from './strategy.js';

export interface AdminApiOptions {
  /** Base URL of every LiteLLM instance sharing the database; the first one takes the writes. */
  instances: readonly string[];
  /** The master key, or where to read it (it changes when rotated). */
  masterKey: string | (() => string);
  /** How long every instance may take to serve the new set. LiteLLM polls its database every 30 s. */
  convergeTimeoutMs?: number;
  /** How often each instance is asked what it serves while converging. */
  pollIntervalMs?: number;
  /** Writes in flight at once. */
  concurrency?: number;
  requestTimeoutMs?: number;
  /**
   * The values of the environment variables the rendered config names (the controller's
   * environment with the secret store over it), asked at every reload: a deployment whose key
   * Model Center can resolve is written with `litellm_credential_name` and the value goes to
   * LiteLLM's `/credentials` (see admin-credentials.ts). Without it, keys stay `os.environ/NAME`.
   */
  credentials?: () => Record<string, string | undefined>;
}

/** Default convergence budget: two of LiteLLM's 30 s database polls. */
export const DEFAULT_CONVERGE_TIMEOUT_MS = 60_000;

/**
 * `admin-api`: for LiteLLM instances with a database and `store_model_in_db` (litellm-facts §2.2,
 * §5). The model list is changed live through the admin API from a diff against the database; then
 * every instance is polled until it serves the new set. Each deployment is owned by one plane: the
 * instances' own config.yaml models are never written, and verify ignores them (`ownedElsewhere`).
 * Only the rendered model_list is applied; router, litellm and general settings stay those of the
 * instances' own config.yaml.
 */
export class AdminApiStrategy implements ReloadStrategy {
  readonly name = 'admin-api' as const;
  private readonly clients: LiteLLMAdminClient[];
  private readonly credentialClients: LiteLLMCredentialClient[];
  private readonly credentials: (() => Record<string, string | undefined>) | undefined;
  private readonly convergeTimeoutMs: number;
  private readonly pollIntervalMs: number;
  private readonly concurrency: number;
  /** What the last reload wrote, for reports. */
  lastPlan: ModelChangePlan | undefined;

  constructor(options: AdminApiOptions) {
    if (options.instances.length === 0)
      throw new ReloadError(
        'the admin-api strategy needs the base URL of at least one LiteLLM instance',
      );
    this.clients = options.instances.map(
      (url) => new LiteLLMAdminClient(url, options.masterKey, options.requestTimeoutMs),
    );
    this.credentialClients = options.instances.map(
      (url) => new LiteLLMCredentialClient(url, options.masterKey, options.requestTimeoutMs),
    );
    this.credentials = options.credentials;
    this.convergeTimeoutMs = options.convergeTimeoutMs ?? DEFAULT_CONVERGE_TIMEOUT_MS;
    this.pollIntervalMs = options.pollIntervalMs ?? 500;
    this.concurrency = Math.max(1, options.concurrency ?? 8);
  }

  async reload(configFile: string): Promise<void> {
    this.lastPlan = undefined;
    const values = this.credentials?.() ?? {};
    const bound = bindCredentials(await readDesired(configFile), (name) => values[name]);
    const desired = bound.deployments;
    const served = await Promise.all(
      this.clients.map(async (client) => {
        try {
          return await client.inventory();
        } catch (error) {
          throw new ReloadError(`admin-api: nothing was written: ${describeError(error)}`);
        }
      }),
    );
    const outcome = planModelChanges({
      desired,
      database: (served[0] ?? []).filter((d) => d.dbModel),
      yamlOwned: served.flatMap((list, i) =>
        list
          .filter((d) => !d.dbModel)
          .map((d) => ({ id: d.id, instance: this.clients[i]!.baseUrl })),
      ),
    });
    if (!outcome.ok)
      throw new ReloadError(`admin-api: nothing was written: ${outcome.problems.join('; ')}`);
    this.lastPlan = outcome.plan;
    // Credentials before the deployments that name them.
    try {
      await writeCredentials(this.credentialClients[0]!, bound.credentials);
    } catch (error) {
      throw new ReloadError(`admin-api: no model was written: ${describeError(error)}`);
    }
    await this.write(outcome.plan);
    await this.converge(
      new Map(desired.map((d) => [d.model_info.id, contentHash(d)])),
      new Map([...bound.credentials].map(([name, v]) => [name, valueMark(v.api_key)])),
    );
  }

  /** Every instance as a client of LiteLLM's `/credentials` routes. */
  credentialInstances(): LiteLLMCredentialClient[] {
    return this.credentialClients;
  }

  instances(): LiteLLMAdminClient[] {
    return this.clients;
  }

  /** An instance's own config.yaml models are not this strategy's: verify leaves them out. */
  ownedElsewhere(deployment: DeploymentRef): boolean {
    return !deployment.dbModel;
  }

  async stop(): Promise<void> {
    // The instances are not Model Center's processes: nothing to stop.
  }

  /** Creates, updates and replacements first, deletions after, each with bounded concurrency. */
  private async write(plan: ModelChangePlan): Promise<void> {
    const client = this.clients[0]!;
    const first = [
      ...plan.create.map((d) => ({ id: d.model_info.id, run: () => client.createModel(d) })),
      ...plan.update.map((d) => ({ id: d.model_info.id, run: () => client.updateModel(d) })),
      ...plan.replace.map((d) => ({
        id: d.model_info.id,
        run: async () => {
          await client.deleteModel(d.model_info.id);
          await client.createModel(d);
        },
      })),
    ];
    const last = plan.delete.map((id) => ({ id, run: () => client.deleteModel(id) }));
    let done = 0;
    for (const batch of [first, last]) {
      const result = await runBounded(batch, this.concurrency);
      done += result.done;
      if (result.failures.length > 0) {
        const total = first.length + last.length;
        throw new ReloadError(
          `admin-api: ${result.failures.length} of ${total} writes to ${client.baseUrl} failed (${done} applied, ${total - done - result.failures.length} not tried; plan: ${describePlan(plan)}): ${result.failures.slice(0, 3).join('; ')}`,
        );
      }
    }
  }

  /**
   * Polls every instance until its database-owned deployments are exactly `expected` (id → hash)
   * and it holds every credential's current value (`credentials`: name → value mark). Other
   * instances read a changed credential at their next database poll.
   */
  private async converge(
    expected: Map<string, string>,
    credentials: Map<string, string> = new Map(),
  ): Promise<void> {
    const deadline = Date.now() + this.convergeTimeoutMs;
    const pending = new Map(this.clients.map((c, i) => [c.baseUrl, { client: c, index: i }]));
    const lag = new Map<string, string>();
    for (;;) {
      await Promise.all(
        [...pending.values()].map(async ({ client, index }) => {
          try {
            const behind =
              convergenceGap(await client.inventory(), expected) ??
              (await credentialGap(this.credentialClients[index]!, credentials));
            if (behind) lag.set(client.baseUrl, behind);
            else pending.delete(client.baseUrl);
          } catch (error) {
            lag.set(client.baseUrl, describeError(error));
          }
        }),
      );
      if (pending.size === 0) return;
      if (Date.now() >= deadline) {
        throw new ReloadError(
          `admin-api: ${[...pending.keys()].map((url) => `${url} did not converge within ${this.convergeTimeoutMs} ms (${lag.get(url)})`).join('; ')} — LiteLLM reads its database every proxy_config_reload_interval_seconds (default 30 s): check that the instance shares the database and has store_model_in_db on, or allow more time`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, this.pollIntervalMs));
    }
  }
}

/** What an instance still lacks, in words; undefined when it serves exactly `expected`. */
function convergenceGap(
  served: readonly ServedDeployment[],
  expected: ReadonlyMap<string, string>,
): string | undefined {
  const db = new Map(served.filter((d) => d.dbModel).map((d) => [d.id, d.sha256]));
  const missing = [...expected.keys()].filter((id) => !db.has(id));
  const stale = [...expected].filter(([id, sha]) => db.has(id) && db.get(id) !== sha);
  const extra = [...db.keys()].filter((id) => !expected.has(id));
  const parts = [
    ...list('does not serve', missing),
    ...list(
      'serves an older version of',
      stale.map(([id]) => id),
    ),
    ...list('still serves deleted', extra),
  ];
  return parts.length > 0 ? parts.join('; ') : undefined;
}

function list(what: string, ids: string[]): string[] {
  if (ids.length === 0) return [];
  const sorted = [...ids].sort();
  return [
    `${what} ${sorted.slice(0, 10).join(', ')}${sorted.length > 10 ? ` and ${sorted.length - 10} more` : ''}`,
  ];
}

async function readDesired(configFile: string): Promise<AdminDeployment[]> {
  const unreadable = (why: string) =>
    new ReloadError(
      `admin-api: ${configFile} is not a config Model Center rendered (${why}) — render it again from the policies`,
    );
  let document: unknown;
  try {
    document = parse(await readFile(configFile, 'utf8'), { version: '1.1' });
  } catch (error) {
    throw unreadable(describeError(error).split('\n')[0] ?? 'unreadable');
  }
  const parsed = renderedModelListSchema.safeParse(document);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw unreadable(`${issue?.path.join('.')}: ${issue?.message}`);
  }
  return parsed.data.model_list;
}

/** Runs `tasks` with at most `limit` at once; after the first failure, starts no new one. */
async function runBounded(
  tasks: readonly { id: string; run: () => Promise<unknown> }[],
  limit: number,
): Promise<{ done: number; failures: string[] }> {
  let next = 0;
  let done = 0;
  const failures: string[] = [];
  const worker = async (): Promise<void> => {
    while (next < tasks.length && failures.length === 0) {
      const task = tasks[next++]!;
      try {
        await task.run();
        done++;
      } catch (error) {
        failures.push(`${task.id}: ${describeError(error)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return { done, failures };
}
