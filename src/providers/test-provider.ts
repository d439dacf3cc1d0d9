import { describeError } from '../shared/errors.js';
import { listModels, ProviderCallError } from './list-models.js';
import type { Provider } from '../policy/schema.js';
import { targetFor, type CredentialLookup } from './target.js';

/** What `providers test` found for a definition that is not saved. */
export interface ProviderTestReport {
  ok: boolean;
  /** The models endpoint answered at all. */
  reachable: boolean;
  /** The credential was accepted (undefined when the server did not get that far). */
  credentialAccepted?: boolean;
  endpoint?: string;
  status?: number;
  latencyMs?: number;
  models?: number;
  /** A few model ids, to recognise the provider by. */
  sample?: string[];
  error?: string;
}

/** Connectivity, credential, model-list size and latency of a provider definition. */
export async function testProvider(
  name: string,
  provider: Provider,
  credentials: CredentialLookup,
): Promise<ProviderTestReport> {
  let target;
  try {
    // A key the caller just got may be tested as it is, before it is stored anywhere.
    target = targetFor(name, provider, credentials, { literalKey: true });
  } catch (error) {
    return { ok: false, reachable: false, error: describeError(error) };
  }
  try {
    const list = await listModels(target);
    return {
      ok: true,
      reachable: true,
      credentialAccepted: true,
      endpoint: list.endpoint,
      latencyMs: list.latencyMs,
      models: list.models.length,
      sample: list.models.slice(0, 5).map((m) => m.id),
    };
  } catch (error) {
    if (!(error instanceof ProviderCallError)) throw error;
    const refused = error.status === 401 || error.status === 403;
    return {
      ok: false,
      reachable: error.status !== undefined,
      ...(error.status !== undefined && { credentialAccepted: !refused }),
      endpoint: error.endpoint,
      ...(error.status !== undefined && { status: error.status }),
      error: error.message,
    };
  }
}
