import type { DeploymentRef, LiteLLMClient } from '../litellm/client.js';
import { describeError } from '../shared/errors.js';

export interface InstanceCheck {
  url: string;
  ready: boolean;
  /** Intended deployment ids the instance does not serve. */
  missing: string[];
  /** Deployment ids the instance serves that were not intended. */
  unexpected: string[];
  error?: string;
}

export interface VerifyReport {
  ok: boolean;
  instances: InstanceCheck[];
}

/**
 * Every instance answers readiness and serves exactly the intended deployment ids, leaving out
 * those `ownedElsewhere` says the strategy does not own.
 */
export async function verifyInstances(
  clients: readonly LiteLLMClient[],
  intended: readonly string[],
  ownedElsewhere?: (deployment: DeploymentRef) => boolean,
): Promise<VerifyReport> {
  const want = new Set(intended);
  const instances = await Promise.all(
    clients.map(async (client): Promise<InstanceCheck> => {
      try {
        await client.readiness();
        const deployments = await client.deployments();
        const served = new Set(deployments.filter((d) => !ownedElsewhere?.(d)).map((d) => d.id));
        return {
          url: client.baseUrl,
          ready: true,
          missing: [...want].filter((id) => !served.has(id)).sort(),
          unexpected: [...served].filter((id) => !want.has(id)).sort(),
        };
      } catch (error) {
        return {
          url: client.baseUrl,
          ready: false,
          missing: [...want].sort(),
          unexpected: [],
          error: describeError(error),
        };
      }
    }),
  );
  const ok =
    instances.length > 0 &&
    instances.every((i) => i.ready && i.missing.length === 0 && i.unexpected.length === 0);
  return { ok, instances };
}

/** One line a person can act on. */
export function describeVerify(report: VerifyReport): string {
  return report.instances
    .filter((i) => !i.ready || i.missing.length > 0 || i.unexpected.length > 0)
    .map((i) => {
      if (!i.ready) return `${i.url}: not ready (${i.error ?? 'no answer'})`;
      const parts = [];
      if (i.missing.length)
        parts.push(`does not serve ${i.missing.join(', ')} (LiteLLM skipped them: see its log)`);
      if (i.unexpected.length) parts.push(`serves unexpected ${i.unexpected.join(', ')}`);
      return `${i.url}: ${parts.join('; ')}`;
    })
    .join('; ');
}
