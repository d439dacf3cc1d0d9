import type { ApplyReport } from '../apply/controller.js';
import type { PolicySet } from '../policy/policy-set.js';
import type { ReloadStrategy } from '../reload/strategy.js';
import { describeError, ModelCenterError } from '../shared/errors.js';
import type { CanaryResult, CredentialSwap } from './credential-rotation.js';

/**
 * What keys needs of the LiteLLM the controller serves, once the apply subsystem started it: its
 * URL, master key and strategy, and a reload through the apply queue. `src/main.ts` hands it in.
 */
export interface LiveLiteLLM {
  /** Where clients reach LiteLLM (the nginx front of blue-green, else the instance). */
  url(): string | undefined;
  masterKey(): string;
  strategy: ReloadStrategy;
  /** Reloads every instance with a fresh environment through the apply queue, verified. */
  reload(trigger: string): Promise<ApplyReport>;
}

/**
 * Configuration mode's swap: a reload through the reload strategy, whose new processes read the
 * environment again (the store's new value). Blue-green starts the new instance beside the old one
 * and switches the nginx front to it once verified: no request fails. Restart proves the new
 * environment on a spare port first, then restarts on the service port (requests during the
 * restart fail: that strategy has no front to hold them).
 */
export function reloadSwap(live: LiveLiteLLM): CredentialSwap {
  return {
    name: `reload:${live.strategy.name}`,
    async swap() {
      // Only LiteLLM processes the controller starts itself read the environment it gives them.
      if (live.strategy.name === 'admin-api' || !('process' in live.strategy)) {
        throw new ModelCenterError(
          `the ${live.strategy.name} strategy reloads LiteLLM instances Model Center does not start, so a new environment never reaches them — in database mode the credential is swapped through LiteLLM's /credentials API; nothing was changed`,
        );
      }
      const report = await live.reload('credential-rotation');
      if (report.outcome !== 'applied' && report.outcome !== 'unchanged') {
        throw new ModelCenterError(
          `the reload with the new credential ended ${report.outcome}: ${report.problems.join('; ') || 'no details'}`,
        );
      }
    },
  };
}

const CANARY_TIMEOUT_MS = 60_000;

/**
 * One request through LiteLLM that only `provider` answers: a chat completion (or an embedding)
 * to a catalog model of that provider served under its own name, one token long.
 */
export async function canaryRequest(
  live: LiveLiteLLM | undefined,
  provider: string,
  set: PolicySet,
): Promise<CanaryResult> {
  const url = live?.url();
  if (!live || !url) return { outcome: 'skipped', reason: 'LiteLLM is not running' };
  const models = [...set.models.values()].filter(
    (m) => m.value.provider === provider && m.value.expose !== false,
  );
  const chat = models.find((m) => m.value.capabilities.includes('chat'));
  const embedding = models.find((m) => m.value.capabilities.includes('embedding'));
  const model = chat ?? embedding;
  if (!model) {
    return {
      outcome: 'skipped',
      reason: `no chat or embedding model of provider "${provider}" is served under its own name`,
    };
  }
  const [route, body] = chat
    ? [
        '/v1/chat/completions',
        { model: model.name, messages: [{ role: 'user', content: 'canary' }], max_tokens: 1 },
      ]
    : ['/v1/embeddings', { model: model.name, input: 'canary' }];
  let response: Response;
  try {
    response = await fetch(`${url.replace(/\/+$/, '')}${route}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${live.masterKey()}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ ...body, metadata: { tags: ['modelcenter:canary'] } }),
      signal: AbortSignal.timeout(CANARY_TIMEOUT_MS),
    });
  } catch (error) {
    throw new ModelCenterError(
      `POST ${route} (model ${model.name}) did not answer: ${describeError(error)}`,
    );
  }
  if (!response.ok) {
    const text = (await response.text().catch(() => '')).slice(0, 300);
    throw new ModelCenterError(
      `POST ${route} (model ${model.name}) answered ${response.status}${text ? `: ${text}` : ''}`,
    );
  }
  await response.body?.cancel().catch(() => undefined);
  return { outcome: 'ok', model: model.name };
}
