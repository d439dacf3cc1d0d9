import path from 'node:path';
import { spoolDirIn } from '../shared/paths.js';
import { durationSeconds } from '../shared/duration.js';
import { ModelCenterError } from '../shared/errors.js';
import type { DatabaseOptions } from '../store/db.js';
import type { WebhookOptions } from './webhook.js';

/** Where the spend subsystem keeps and finds things, from the environment (README table). */
export interface SpendSettings {
  ledger: DatabaseOptions;
  spoolDir: string;
  webhook?: WebhookOptions;
  retentionDays: number;
  /**
   * A spool file unchanged this long is finished (LiteLLM's callback rotates at
   * MODELCENTER_SPOOL_MAX_AGE_S, default 3600 s): its age limit plus 10 minutes.
   */
  spoolFinishedAfterMs: number;
}

export const DEFAULT_RETENTION = '90d';

/** Pure: environment + state directory → settings. */
export function spendSettings(env: NodeJS.ProcessEnv, stateDir: string): SpendSettings {
  const retention = env.MODELCENTER_SPEND_RETENTION ?? DEFAULT_RETENTION;
  const seconds = durationSeconds(retention);
  if (seconds === undefined)
    throw new ModelCenterError(
      `MODELCENTER_SPEND_RETENTION "${retention}" is not a duration — write e.g. 30d or 12w`,
    );
  const url = env.MODELCENTER_LEDGER_URL;
  return {
    ledger: url
      ? { url }
      : { dataDir: path.resolve(env.MODELCENTER_LEDGER_DIR ?? path.join(stateDir, 'ledger')) },
    spoolDir: path.resolve(env.MODELCENTER_SPOOL_DIR ?? spoolDirIn(stateDir)),
    ...(env.MODELCENTER_ALERT_WEBHOOK && {
      webhook: {
        url: env.MODELCENTER_ALERT_WEBHOOK,
        ...(env.MODELCENTER_ALERT_WEBHOOK_TOKEN && { token: env.MODELCENTER_ALERT_WEBHOOK_TOKEN }),
      },
    }),
    retentionDays: seconds / 86_400,
    spoolFinishedAfterMs: (spoolMaxAgeSeconds(env) + 600) * 1000,
  };
}

function spoolMaxAgeSeconds(env: NodeJS.ProcessEnv): number {
  const value = Number(env.MODELCENTER_SPOOL_MAX_AGE_S ?? 3600);
  if (!Number.isFinite(value) || value <= 0)
    throw new ModelCenterError(
      `MODELCENTER_SPOOL_MAX_AGE_S "${env.MODELCENTER_SPOOL_MAX_AGE_S}" is not a number of seconds — write e.g. 3600`,
    );
  return value;
}
