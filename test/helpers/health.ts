import path from 'node:path';
import { buildFromDir } from '../../src/compile/build.js';
import { deploymentCatalog } from '../../src/spend/extract.js';
import { ingestPayloads } from '../../src/spend/ingest.js';
import type { Database } from '../../src/store/db.js';
import { payloadFixture } from './spool.js';

/** One request attempt as LiteLLM's spool callback logs it, from the captured fixtures. */
export function attemptPayload(attempt: {
  callId: string;
  /** The deployment id (`model_info.id`) and the group (profile or model) asked for. */
  deployment: string;
  group: string;
  ok: boolean;
  startMs: number;
  latencyMs: number;
  costUsd?: number;
}): Record<string, unknown> {
  const base = payloadFixture(attempt.ok ? 'success-tagged' : 'failure-500');
  const start = attempt.startMs / 1000;
  return {
    ...base,
    litellm_call_id: attempt.callId,
    startTime: start,
    endTime: start + attempt.latencyMs / 1000,
    completionStartTime: start + attempt.latencyMs / 1000,
    model_id: attempt.deployment,
    model_group: attempt.group,
    request_tags: [],
    response_cost: attempt.ok ? (attempt.costUsd ?? 0.0001) : 0,
  };
}

/**
 * Puts attempts into the ledger through the real ingest path (the one `POST /v1/spend/ingest`
 * and the spool use): deployment ids resolve to catalog model and provider by the policies' config.
 */
export async function ingestAttempts(
  db: Database,
  repo: string,
  attempts: Parameters<typeof attemptPayload>[0][],
): Promise<void> {
  const build = await buildFromDir(path.join(repo, 'policies'));
  const result = await ingestPayloads(
    db,
    attempts.map(attemptPayload),
    deploymentCatalog(build.config),
  );
  if (result.rejected > 0) throw new Error(`ledger rejected ${result.rejected} test attempts`);
}
