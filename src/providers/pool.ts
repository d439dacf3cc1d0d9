import path from 'node:path';
import { z } from 'zod';
import { CAPABILITIES, type Capability } from '../policy/schema.js';
import { readIfExists, writeFileAtomically } from '../shared/fs.js';

/**
 * The discovered pool: every model the providers' live lists offered at their last sync, kept
 * apart from the curated catalog (the policies). Nothing here is served: a model reaches LiteLLM
 * only when it is promoted into the policies by a commit.
 *
 * Stored as one JSON file in the state directory (`discovered-models.json`), not in the ledger:
 * it is rebuilt by the next sync whenever lost, it must be readable while the embedded ledger is
 * held by the running service (the CLI) and before any database is set up, and it is small
 * (200 bytes a model; 1,000 models are 200 KB). The ledger keeps what cannot be recomputed.
 */

export const POOL_FILE = 'discovered-models.json';

const capability = z.enum(CAPABILITIES);

export const discoveredModelSchema = z.object({
  /** `<provider>/<upstream id>`: unique across providers. */
  id: z.string(),
  provider: z.string(),
  upstream: z.string(),
  firstSeen: z.string(),
  lastSeen: z.string(),
  /** The last sync of its provider did not list it (since then). */
  missingSince: z.string().optional(),
  contextWindow: z.number().int().positive().optional(),
  maxOutput: z.number().int().positive().optional(),
  pricing: z.object({ input_per_mtok: z.number(), output_per_mtok: z.number() }).optional(),
  capabilities: z.array(capability),
  /** Where context, prices and capabilities came from. */
  filledFrom: z.enum(['provider', 'litellm-price-map', 'provider+litellm-price-map', 'guessed']),
});
export type DiscoveredModel = z.infer<typeof discoveredModelSchema>;

export const syncRecordSchema = z.object({
  at: z.string(),
  ok: z.boolean(),
  error: z.string().optional(),
  endpoint: z.string().optional(),
  latencyMs: z.number().optional(),
  /** Models the provider listed, and how many the discovery globs kept. */
  listed: z.number().int(),
  kept: z.number().int(),
});
export type SyncRecord = z.infer<typeof syncRecordSchema>;

const poolSchema = z.object({
  version: z.literal(1),
  models: z.record(z.string(), discoveredModelSchema),
  syncs: z.record(z.string(), syncRecordSchema),
});
export type Pool = z.infer<typeof poolSchema>;

export function emptyPool(): Pool {
  return { version: 1, models: {}, syncs: {} };
}

/** A model as one sync saw it, after include/exclude and enrichment. */
export interface SeenModel {
  upstream: string;
  contextWindow?: number;
  maxOutput?: number;
  pricing?: { input_per_mtok: number; output_per_mtok: number };
  capabilities: Capability[];
  filledFrom: DiscoveredModel['filledFrom'];
}

/** What one provider's sync changed in the pool. */
export interface SyncReport {
  provider: string;
  ok: boolean;
  error?: string;
  endpoint?: string;
  latencyMs?: number;
  listed: number;
  kept: number;
  /** Pool ids seen for the first time. */
  added: string[];
  /** Pool ids listed before and not now. */
  disappeared: string[];
  /** Pool ids listed again after they had disappeared. */
  returned: string[];
  /** Pool ids dropped because the discovery globs no longer keep them. */
  excluded: string[];
}

export function poolId(provider: string, upstream: string): string {
  return `${provider}/${upstream}`;
}

/**
 * One provider's listing merged into the pool. Pure: the pool given is not changed. `listed`
 * counts what the provider offered before the globs; `seen` is what they kept.
 */
export function mergeSync(
  pool: Pool,
  provider: string,
  seen: readonly SeenModel[],
  listed: number,
  now: string,
  call: { endpoint?: string; latencyMs?: number } = {},
): { pool: Pool; report: SyncReport } {
  const models = { ...pool.models };
  const report: SyncReport = {
    provider,
    ok: true,
    ...call,
    listed,
    kept: seen.length,
    added: [],
    disappeared: [],
    returned: [],
    excluded: [],
  };
  const seenIds = new Set<string>();
  for (const model of seen) {
    const id = poolId(provider, model.upstream);
    seenIds.add(id);
    const before = models[id];
    if (!before) report.added.push(id);
    else if (before.missingSince) report.returned.push(id);
    models[id] = {
      id,
      provider,
      upstream: model.upstream,
      firstSeen: before?.firstSeen ?? now,
      lastSeen: now,
      ...(model.contextWindow && { contextWindow: model.contextWindow }),
      ...(model.maxOutput && { maxOutput: model.maxOutput }),
      ...(model.pricing && { pricing: model.pricing }),
      capabilities: model.capabilities,
      filledFrom: model.filledFrom,
    };
  }
  for (const [id, model] of Object.entries(models)) {
    if (model.provider !== provider || seenIds.has(id)) continue;
    if (!model.missingSince) {
      models[id] = { ...model, missingSince: now };
      report.disappeared.push(id);
    }
  }
  const syncs = {
    ...pool.syncs,
    [provider]: {
      at: now,
      ok: true,
      listed,
      kept: seen.length,
      ...(call.endpoint && { endpoint: call.endpoint }),
      ...(call.latencyMs !== undefined && { latencyMs: call.latencyMs }),
    },
  };
  for (const list of [report.added, report.disappeared, report.returned]) list.sort();
  return { pool: { version: 1, models, syncs }, report };
}

/** Drops models the globs no longer keep (they were excluded, not lost). Pure. */
export function dropExcluded(
  pool: Pool,
  provider: string,
  keep: (upstream: string) => boolean,
): { pool: Pool; dropped: string[] } {
  const models = { ...pool.models };
  const dropped: string[] = [];
  for (const [id, model] of Object.entries(models)) {
    if (model.provider === provider && !keep(model.upstream)) {
      delete models[id];
      dropped.push(id);
    }
  }
  return { pool: { ...pool, models }, dropped: dropped.sort() };
}

/** A failed sync is recorded; the pool's models stay as they were (a provider outage is not a loss). */
export function recordFailure(pool: Pool, provider: string, now: string, error: string): Pool {
  return {
    ...pool,
    syncs: { ...pool.syncs, [provider]: { at: now, ok: false, error, listed: 0, kept: 0 } },
  };
}

/** The pool file in the state directory; writes are atomic, reads tolerate a missing file. */
export class PoolStore {
  readonly file: string;

  constructor(stateDir: string) {
    this.file = path.join(stateDir, POOL_FILE);
  }

  async read(): Promise<Pool> {
    const text = await readIfExists(this.file);
    if (text === undefined) return emptyPool();
    const parsed = poolSchema.safeParse(JSON.parse(text));
    // An unreadable pool is rebuilt by the next sync: it holds nothing that cannot be listed again.
    return parsed.success ? parsed.data : emptyPool();
  }

  async write(pool: Pool): Promise<void> {
    await writeFileAtomically(this.file, `${JSON.stringify(pool, null, 1)}\n`);
  }
}
