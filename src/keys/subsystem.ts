import { HttpError, type Route } from '../api/server.js';
import { buildFromDir } from '../compile/build.js';
import type { Logger } from '../log/logger.js';
import type { SecretValues } from '../log/redact.js';
import type { JobRun } from '../scheduler/subsystem.js';
import { LocalSecretStore } from '../secrets/local-store.js';
import { storedCredentialEnv } from '../secrets/references.js';
import type { SecretStore } from '../secrets/store.js';
import type { Settings } from '../settings/settings.js';
import { parsePointInTime } from '../shared/duration.js';
import type { Subsystem } from '../shared/subsystem.js';
import type { Database } from '../store/db.js';
import { KeyAudit } from './audit.js';
import { credentialedProviders, credentialStatus, providerSubject } from './credentials.js';
import { RotationLog } from './rotations.js';
import {
  auditAnswerSchema,
  auditQuerySchema,
  credentialsAnswerSchema,
  type AuditQueryInput,
  type CredentialStatus,
} from './schema.js';

export interface KeysDeps {
  settings: Pick<Settings, 'stateDir' | 'policies'>;
  env: NodeJS.ProcessEnv;
  /** The `keys` child logger. */
  log: Logger;
  /** The ledger database (the spend subsystem's, migrated): the audit trail and rotations live there. */
  db: Database;
  /** Every value the store holds is registered here, so logs and answers mask it. */
  secrets: SecretValues;
  /** The secret store; default: the local encrypted file in the state directory. */
  store?: SecretStore;
  now?: () => Date;
}

export interface KeysSubsystem extends Subsystem<Route, JobRun> {
  store: SecretStore;
  audit: KeyAudit;
  rotations: RotationLog;
  /**
   * The environment LiteLLM is started with: the controller's, with the store's credentials laid
   * over it (`secret:` values, and rotated `env:` values, which take precedence). Asked at every
   * LiteLLM start, so a rotated value reaches the next process.
   */
  litellmEnv(): NodeJS.ProcessEnv;
  /** Every credential's status (also `GET /v1/credentials`). */
  credentials(): Promise<CredentialStatus[]>;
}

/**
 * Keys: the secret store, the audit trail, provider credential and master key rotation. Started
 * after the ledger (it writes its audit there) and before LiteLLM (whose environment it supplies).
 */
export async function startKeys(deps: KeysDeps): Promise<KeysSubsystem> {
  const now = deps.now ?? (() => new Date());
  const store =
    deps.store ??
    (await LocalSecretStore.open({
      stateDir: deps.settings.stateDir,
      env: deps.env,
      log: deps.log,
    }));
  const register = async (): Promise<void> => {
    for (const secret of await store.list()) {
      deps.secrets.add(secret.current.value);
      deps.secrets.add(secret.previous?.value);
    }
  };
  await register();
  const audit = new KeyAudit(deps.db, (text) => deps.secrets.mask(text));
  const rotations = new RotationLog(deps.db);

  const credentials = async (): Promise<CredentialStatus[]> => {
    const { set } = await buildFromDir(deps.settings.policies);
    const at = now();
    return Promise.all(
      credentialedProviders(set).map(async (entry) =>
        credentialStatus(entry, {
          env: deps.env,
          store,
          latest: await rotations.latest(providerSubject(entry.name)),
          now: at,
        }),
      ),
    );
  };

  const routes: Route[] = [
    {
      method: 'GET',
      path: '/v1/keys/audit',
      scope: 'read',
      summary:
        'The audit trail of every rotation and key operation: who (token name or schedule), what, when, outcome, fingerprints — never a value',
      query: auditQuerySchema,
      response: auditAnswerSchema,
      handle: async ({ query }) => {
        const input = query as AuditQueryInput;
        let since: Date | undefined;
        if (input.since) {
          const parsed = parsePointInTime(input.since, now());
          if (!parsed.ok)
            throw new HttpError(400, 'invalid_request', `query.since: ${parsed.reason}`);
          since = parsed.date;
        }
        const events = await audit.list({
          ...(since && { since }),
          ...(input.subject && { subject: input.subject }),
          ...(input.rotation && { rotationId: input.rotation }),
          limit: input.limit,
        });
        return { status: 200, body: { events } };
      },
    },
    {
      method: 'GET',
      path: '/v1/credentials',
      scope: 'read',
      summary:
        "Every provider credential: source (store, env, missing), fingerprint, age, the old value's grace period, the last rotation, the next scheduled one",
      response: credentialsAnswerSchema,
      handle: async () => ({
        status: 200,
        body: { backend: store.backend, credentials: await credentials() },
      }),
    },
  ];

  return {
    store,
    audit,
    rotations,
    litellmEnv: () => ({ ...deps.env, ...storedCredentialEnv(store) }),
    credentials,
    routes,
    status: async () => {
      const open = await rotations.open();
      return {
        keys: {
          secretStore: store.backend,
          openRotations: open.map((r) => ({
            id: r.id,
            subject: r.subject,
            state: r.state,
            ...(r.graceUntil && { graceUntil: r.graceUntil }),
          })),
        },
      };
    },
    stop: () => Promise.resolve(),
  };
}
