import { fingerprint } from './audit.js';
import { tokenOf, type LiteLLMKeyClient } from './key-client.js';
import { ModelCenterError } from '../shared/errors.js';

/**
 * The LiteLLM master key in database mode (litellm-facts §10.4). LiteLLM encrypts what it stores
 * (models, credentials, config) with LITELLM_SALT_KEY when set, else with the master key. So:
 * - without a salt key the stored secrets hang on the master key: rotating it re-encrypts them
 *   (`/key/regenerate` with `new_master_key`) and every running instance reads rows it can no longer
 *   decrypt until it is reloaded. Refused: set a permanent LITELLM_SALT_KEY first.
 * - with a salt key nothing stored depends on the master key, and `/key/regenerate` with
 *   `new_master_key` must NOT be called: 1.106.12 re-encrypts the rows with the new master key
 *   while it decrypts with the salt key, so every stored model and credential becomes unreadable
 *   (shown by test/db/master-key.test.ts on the real proxy). The rotation is the reload alone.
 * Clients that switch late keep working through the grace period: the old value becomes a virtual
 * key that LiteLLM itself expires when the grace ends (a master key is one value; a virtual key
 * carries an expiry). It serves model requests, not admin routes.
 */

export class MasterKeyRotationError extends ModelCenterError {}

export interface MasterRotationPlan {
  client: LiteLLMKeyClient;
  currentMaster: string;
  newMaster: string;
  graceSeconds: number;
  /** The environment the instances run with (LITELLM_SALT_KEY is checked there). */
  litellmEnv: NodeJS.ProcessEnv;
  /** Restarts every instance with the new master key (the reload strategy). */
  reload: (newMaster: string) => Promise<void>;
}

export interface MasterRotationResult {
  oldFingerprint: string;
  newFingerprint: string;
  /** When the old value stops working (LiteLLM expires its grace key). */
  graceUntil: string;
}

/** Refuses without `LITELLM_SALT_KEY`, before anything is changed (see above). */
export function checkSaltKey(env: NodeJS.ProcessEnv): void {
  if (!env.LITELLM_SALT_KEY)
    throw new MasterKeyRotationError(
      'LITELLM_SALT_KEY is not set for LiteLLM: its stored credentials are encrypted with the master key itself, so rotating it would leave running instances unable to read them (litellm-facts §10.4) — set a permanent LITELLM_SALT_KEY first (LiteLLM re-encrypts at the next start with LITELLM_MIGRATE_FROM_MASTER_KEY), then rotate; nothing was changed',
    );
}

/** grace key for the old value → reload with the new one. Nothing happens before the checks. */
export async function rotateMasterKeyInDatabase(
  plan: MasterRotationPlan,
): Promise<MasterRotationResult> {
  checkSaltKey(plan.litellmEnv);
  if (!plan.newMaster.startsWith('sk-') || plan.newMaster.length < 32)
    throw new MasterKeyRotationError(
      'the new master key must start with "sk-" and be at least 32 characters (LiteLLM refuses weak master keys); nothing was changed',
    );
  const { client } = plan;
  const graceUntil = new Date(Date.now() + plan.graceSeconds * 1000);
  if (plan.graceSeconds > 0 && !(await client.live(tokenOf(plan.currentMaster))))
    await client.generate(plan.currentMaster, {
      key_alias: `master-key-grace-${fingerprint(plan.currentMaster)}`,
      models: [],
      duration: `${plan.graceSeconds}s`,
      metadata: { modelcenter_master_grace: true, grace_until: graceUntil.toISOString() },
    });
  await plan.reload(plan.newMaster);
  return {
    oldFingerprint: fingerprint(plan.currentMaster),
    newFingerprint: fingerprint(plan.newMaster),
    graceUntil: graceUntil.toISOString(),
  };
}
