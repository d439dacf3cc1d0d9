import { z } from 'zod';
import { HttpError, type Route } from '../api/server.js';
import { buildFromDir } from '../compile/build.js';
import type { Logger } from '../log/logger.js';
import type { Entry } from '../policy/policy-set.js';
import { kindInfo } from '../policy/provider-kinds.js';
import type { Provider } from '../policy/schema.js';
import type { SecretValues } from '../log/redact.js';
import type { JobRun } from '../scheduler/subsystem.js';
import { LocalSecretStore } from '../secrets/local-store.js';
import { storedCredentialEnv } from '../secrets/references.js';
import type { SecretStore } from '../secrets/store.js';
import type { Settings } from '../settings/settings.js';
import { parsePointInTime } from '../shared/duration.js';
import type { Subsystem } from '../shared/subsystem.js';
import type { Database } from '../store/db.js';
import { fingerprint, KeyAudit, SCHEDULE_ACTOR } from './audit.js';
import {
  MASTER_SUBJECT,
  MasterKeyRotator,
  MasterRotationError,
  type MasterKeySwap,
} from './master-rotation.js';
import type { KeyAlias } from '../reload/nginx.js';
import {
  CredentialRotator,
  RotationError,
  type CredentialSwap,
  type RotationReport,
} from './credential-rotation.js';
import { defaultCredentialSwap } from './credentials-api-swap.js';
import { adminApiMasterSwap } from './master-key-admin.js';
import { canaryRequest, type LiveLiteLLM } from './live.js';
import { credentialedProviders, credentialStatus, providerSubject } from './credentials.js';
import { keyList } from './key-list.js';
import { RotationLog } from './rotations.js';
import { KeySchedule, type KeyAlert } from './schedule.js';
import {
  auditAnswerSchema,
  auditQuerySchema,
  credentialsAnswerSchema,
  keysAnswerSchema,
  masterRotateBodySchema,
  rotateBodySchema,
  type MasterRotateBody,
  type RotateBody,
  type AuditQueryInput,
  type CredentialStatus,
} from './schema.js';

export interface KeysDeps {
  settings: Pick<Settings, 'stateDir' | 'policies'> & Partial<Pick<Settings, 'restartCommand'>>;
  env: NodeJS.ProcessEnv;
  /** The `keys` child logger. */
  log: Logger;
  /** The ledger database (the spend subsystem's, migrated): the audit trail and rotations live there. */
  db: Database;
  /** Every value the store holds is registered here, so logs and answers mask it. */
  secrets: SecretValues;
  /** The secret store; default: the local encrypted file in the state directory. */
  store?: SecretStore;
  /** The master key the controller starts with (LITELLM_MASTER_KEY, or the generated one). */
  masterKey: string;
  /** For strategies other than restart and blue-green (database mode's master key swap). */
  masterKeySwap?: MasterKeySwap;
  /** The LiteLLM the controller serves; undefined until the apply subsystem started it. */
  live: () => LiveLiteLLM | undefined;
  /**
   * How a new credential reaches LiteLLM for this strategy; default: a reload (configuration
   * mode). Database mode hands in its own (`PATCH /credentials/{name}`).
   */
  credentialSwap?: (live: LiveLiteLLM) => CredentialSwap;
  /** Key alerts (failed scheduled rotations, anomalies) go here too (the alert webhook). */
  alert?: (alert: KeyAlert) => Promise<void>;
  /** The fingerprint of the key a caller sends, where callers have their own (database mode). */
  callerKeyFingerprint?: (caller: string) => string | undefined;
  /** How often rotations past their grace period are looked for (default 2 s). */
  retireIntervalMs?: number;
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
  /** Provider credential rotation (also `POST /v1/credentials/{provider}/rotate`). */
  rotator: CredentialRotator;
  /** Master key rotation (also `POST /v1/keys/master/rotate`). */
  master: MasterKeyRotator;
  /** The `key-rotation` job's body: due rotations and anomalies. */
  schedule: KeySchedule;
  /** LiteLLM's master key now: the rotated one once rotated, else the one it started with. */
  masterKey(): string;
  /** Old keys the blue-green front still maps to the current one (a master key grace period). */
  frontKeyAliases(): KeyAlias[];
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

  const rotator = new CredentialRotator({
    policies: async () => (await buildFromDir(deps.settings.policies)).set,
    store,
    audit,
    rotations,
    secrets: deps.secrets,
    env: deps.env,
    swap: () => {
      const live = deps.live();
      if (!live) return undefined;
      return deps.credentialSwap
        ? deps.credentialSwap(live)
        : defaultCredentialSwap(live, async () => (await buildFromDir(deps.settings.policies)).set);
    },
    canary: (provider, set) => canaryRequest(deps.live(), provider, set),
    litellmProbe: (entry) => {
      const live = deps.live();
      const url = live?.url();
      if (!live || !url) return undefined;
      return { url, masterKey: live.masterKey(), litellmParams: probeParams(entry) };
    },
    log: deps.log,
    now,
  });
  await rotator.resume(SCHEDULE_ACTOR);
  const master = new MasterKeyRotator({
    store,
    audit,
    rotations,
    secrets: deps.secrets,
    initial: deps.masterKey,
    live: deps.live,
    policies: async () => (await buildFromDir(deps.settings.policies)).set,
    baseDir: deps.settings.policies,
    // Database mode (admin-api): the master key swap of master-key-admin.ts.
    swap:
      deps.masterKeySwap ??
      adminApiMasterSwap({ env: deps.env, restartCommand: deps.settings.restartCommand }),
    log: deps.log,
    now,
  });
  // A grace period that ended while the controller was down ends before LiteLLM starts.
  await master.resume();
  deps.secrets.add(master.current());
  const schedule = new KeySchedule({
    policies: async () => (await buildFromDir(deps.settings.policies)).set,
    db: deps.db,
    store,
    env: deps.env,
    rotator,
    master,
    rotations,
    audit,
    secrets: deps.secrets,
    ...(deps.alert && { alert: deps.alert }),
    ...(deps.callerKeyFingerprint && { callerKeyFingerprint: deps.callerKeyFingerprint }),
    log: deps.log,
    now,
  });
  let retiring: Promise<unknown> | undefined;
  const retireTick = (): void => {
    retiring ??= Promise.all([rotator.retireDue(), master.retireDue()])
      .catch((error: unknown) =>
        deps.log.warn({ error: deps.secrets.mask(String(error)) }, 'retire check failed; retrying'),
      )
      .finally(() => {
        retiring = undefined;
      });
  };
  const retireTimer = setInterval(retireTick, deps.retireIntervalMs ?? 2000);
  retireTimer.unref();

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
            throw new HttpError(400, 'invalid_request', `query.since: ${parsed.reason}`, 'since');
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
    {
      method: 'GET',
      path: '/v1/keys',
      scope: 'read',
      summary:
        "The keys clients present: LiteLLM's master key and each caller's (its own virtual key, or the master key it shares) — fingerprint, age, the last rotation, the next scheduled one; never a value",
      response: keysAnswerSchema,
      handle: async () => ({
        status: 200,
        body: {
          keys: await keyList({
            set: (await buildFromDir(deps.settings.policies)).set,
            store,
            rotations,
            masterKey: master.current(),
            ...(deps.callerKeyFingerprint && { callerKeyFingerprint: deps.callerKeyFingerprint }),
            now: now(),
          }),
        },
      }),
    },
    {
      method: 'POST',
      path: '/v1/credentials/{provider}/rotate',
      scope: 'admin',
      summary:
        "Rotates a provider's credential: probe the new value against the provider (refused: nothing changes), store it, swap it in with zero failed requests, canary through LiteLLM, keep the old value for the grace period, then run the retire hook once. `now`: compromised, no grace",
      body: rotateBodySchema,
      handle: async ({ params, body, actor }) => {
        const input = body as RotateBody;
        try {
          const report: RotationReport = await rotator.rotate({
            provider: params.provider ?? '',
            value: input.value,
            ...(input.grace && { grace: input.grace }),
            ...(input.now && { now: true }),
            actor,
          });
          return { status: 200, body: report };
        } catch (error) {
          if (error instanceof RotationError) {
            throw new HttpError(
              error.step === 'probe' ? 422 : error.busy ? 409 : 502,
              error.step === 'probe'
                ? 'credential_refused'
                : error.busy
                  ? 'busy'
                  : 'rotation_failed',
              `${error.message} (rotation ${error.rotationId})`,
            );
          }
          throw error;
        }
      },
    },
    {
      method: 'POST',
      path: '/v1/keys/master/rotate',
      scope: 'admin',
      summary:
        "Rotates LiteLLM's master key (configuration mode): the new key goes live through the reload strategy, is delivered (policy hook, 0600 file, one GET /v1/keys/master/delivery), and during the grace period the blue-green front still accepts the old key; after it the old key is refused. `now`: no grace",
      body: masterRotateBodySchema,
      handle: async ({ body, actor }) => {
        const input = body as MasterRotateBody;
        try {
          const report = await master.rotate({
            ...(input.value && { value: input.value }),
            ...(input.grace && { grace: input.grace }),
            ...(input.now && { now: true }),
            actor,
          });
          return { status: 200, body: report };
        } catch (error) {
          if (error instanceof MasterRotationError)
            throw new HttpError(
              error.busy ? 409 : 502,
              error.busy ? 'busy' : 'rotation_failed',
              `${error.message} (rotation ${error.rotationId})`,
            );
          throw error;
        }
      },
    },
    {
      method: 'GET',
      path: '/v1/keys/master/delivery',
      scope: 'admin',
      summary:
        'The new master key after a rotation, readable once (then 404): the one authenticated API read of its delivery',
      handle: async ({ actor, head }) => {
        const missing = () =>
          new HttpError(
            404,
            'not_found',
            'no undelivered master key: it was read already, its grace period ended, or no rotation happened',
          );
        // HEAD drops the body: it must not spend the one read.
        if (head) {
          if (!(await master.deliveryPending())) throw missing();
          return { status: 200, body: {} };
        }
        const value = await master.readDelivery();
        if (value === undefined) throw missing();
        await audit.record({
          rotationId: (await rotations.latest(MASTER_SUBJECT))?.id ?? 'none',
          actor,
          action: 'master.deliver',
          subject: MASTER_SUBJECT,
          step: 'api-read',
          outcome: 'ok',
          fingerprints: { new: fingerprint(value) },
        });
        return { status: 200, body: { value, fingerprint: fingerprint(value) }, unmasked: true };
      },
    },
    {
      method: 'POST',
      path: '/v1/credentials/{provider}/rollback',
      scope: 'admin',
      summary:
        'Rolls back a provider credential rotation still in its grace period: the old value serves again (swapped in like a rotation)',
      body: emptyBody,
      handle: async ({ params, actor }) => ({
        status: 200,
        body: { rotation: await rotator.rollback(params.provider ?? '', actor) },
      }),
    },
  ];

  return {
    rotator,
    master,
    schedule,
    masterKey: () => master.current(),
    frontKeyAliases: () => master.aliases(),
    store,
    audit,
    rotations,
    litellmEnv: () => ({ ...deps.env, ...storedCredentialEnv(store) }),
    credentials,
    routes,
    jobs: {
      // Every minute by default (MODELCENTER_SCHEDULE_KEY_ROTATION): due rotations, anomalies.
      'key-rotation': () => schedule.run(),
    },
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
    stop: async () => {
      clearInterval(retireTimer);
      await retiring;
    },
  };
}

const emptyBody = z.object({}).strict();

/**
 * The parameters LiteLLM's test_connection needs to call a provider without a model list: those
 * of its first model as compiled (the key itself is added by the probe).
 */
function probeParams(entry: Entry<Provider>): Record<string, unknown> {
  const info = kindInfo(entry.value.kind);
  return {
    model: `${info.prefix}/probe`,
    ...(entry.value.base_url && { api_base: entry.value.base_url }),
    ...(entry.value.api_version && { api_version: entry.value.api_version }),
  };
}
