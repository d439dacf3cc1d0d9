import type { PolicySet } from '../policy/policy-set.js';
import { AdminApiStrategy } from '../reload/admin-api.js';
import { litellmCredentialName, valueMark } from '../reload/admin-credentials.js';
import { describeError, ModelCenterError } from '../shared/errors.js';
import { PartialSwapError, type CredentialSwap } from './credential-rotation.js';
import { canaryRequest, reloadSwap, type LiveLiteLLM } from './live.js';

/**
 * Database mode's swap (the admin-api strategy): the reload writes the store's new value to
 * LiteLLM's credential (`PATCH /credentials/{name}` on the shared database; deployments name it
 * through `litellm_credential_name`, src/reload/admin-credentials.ts) and waits until every
 * instance holds it in memory (the others read it at their next database poll); no process is
 * restarted and no model rewritten. Then one canary request through each instance, so every
 * instance is shown to serve with the new value before the rotation reports it live.
 */
export function credentialsApiSwap(
  live: LiveLiteLLM,
  policies: () => Promise<PolicySet>,
): CredentialSwap {
  return {
    name: 'credentials-api',
    async swap(target) {
      const strategy = live.strategy;
      if (!(strategy instanceof AdminApiStrategy))
        throw new ModelCenterError('the credentials-api swap needs the admin-api strategy');
      try {
        // The reload writes the stored value to /credentials on every instance (admin-api).
        const report = await live.reload('credential-rotation');
        if (report.outcome !== 'applied' && report.outcome !== 'unchanged') {
          throw new ModelCenterError(
            `the reload with the new credential ended ${report.outcome}: ${report.problems.join('; ') || 'no details'}`,
          );
        }
      } catch (error) {
        // The credential may have been written before the reload failed: swap the old one back.
        throw new PartialSwapError(describeError(error));
      }
      const name = litellmCredentialName(target.variable);
      const mark = valueMark(target.value);
      const instances = strategy.credentialInstances();
      const held = await Promise.all(instances.map((i) => i.heldFingerprint(name)));
      const stale = instances.filter((_, i) => held[i] !== mark).map((i) => i.baseUrl);
      if (stale.length > 0)
        throw new PartialSwapError(
          `credential ${name} does not hold the new value on ${stale.join(', ')} after the reload — is ${target.variable} resolvable by Model Center (environment or secret store)?`,
        );
      const set = await policies();
      for (const instance of instances) {
        try {
          await canaryRequest({ ...live, url: () => instance.baseUrl }, target.provider, set);
        } catch (error) {
          throw new PartialSwapError(`canary through ${instance.baseUrl}: ${describeError(error)}`);
        }
      }
    },
  };
}

/** The swap for the running strategy: database mode's `/credentials`, else a reload. */
export function defaultCredentialSwap(
  live: LiveLiteLLM,
  policies: () => Promise<PolicySet>,
): CredentialSwap {
  return live.strategy.name === 'admin-api' ? credentialsApiSwap(live, policies) : reloadSwap(live);
}
