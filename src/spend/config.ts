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
  /** Spool lines and ingest payloads the ledger cannot store (src/spend/dead-letter.ts). */
  deadLetterDir: string;
  webhook?: WebhookOptions;
  retentionDays: number;
  /**
   * A spool file unchanged this long is finished (LiteLLM's callback rotates at
   * MODELCENTER_SPOOL_MAX_AGE_S, default 3600 s): its age limit plus 10 minutes.
   */
  spoolFinishedAfterMs: number;
  backfill: BackfillSettings;
}

/** The spend-log backfill (database mode): where LiteLLM is and how far back it reads. */
export interface BackfillSettings {
  /** LiteLLM to read `/spend/logs/v2` from; undefined: the one the controller serves. */
  url?: string;
  /** The first catch-up reads this far back (seconds). */
  firstLookbackSeconds: number;
  /**
   * Requests younger than this are left to the next run: LiteLLM writes spend logs in batches,
   * and a long request's row appears when it ends. Each catch-up also re-reads this much before
   * its mark, so a row written up to twice this late is still found.
   */
  settleSeconds: number;
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
    deadLetterDir: path.resolve(stateDir, 'spend-dead-letter'),
    ...(env.MODELCENTER_ALERT_WEBHOOK && {
      webhook: {
        url: env.MODELCENTER_ALERT_WEBHOOK,
        ...(env.MODELCENTER_ALERT_WEBHOOK_TOKEN && { token: env.MODELCENTER_ALERT_WEBHOOK_TOKEN }),
      },
    }),
    retentionDays: seconds / 86_400,
    spoolFinishedAfterMs: (spoolMaxAgeSeconds(env) + 600) * 1000,
    backfill: {
      ...(env.MODELCENTER_BACKFILL_URL && { url: env.MODELCENTER_BACKFILL_URL }),
      firstLookbackSeconds: envDuration(env, 'MODELCENTER_BACKFILL_SINCE', '7d'),
      settleSeconds: envDuration(env, 'MODELCENTER_BACKFILL_SETTLE', '15m'),
    },
  };
}

function envDuration(env: NodeJS.ProcessEnv, name: string, fallback: string): number {
  const text = env[name] ?? fallback;
  const seconds = durationSeconds(text);
  if (seconds === undefined)
    throw new ModelCenterError(`${name} "${text}" is not a duration — write e.g. 15m, 24h or 7d`);
  return seconds;
}

function spoolMaxAgeSeconds(env: NodeJS.ProcessEnv): number {
  const value = Number(env.MODELCENTER_SPOOL_MAX_AGE_S ?? 3600);
  if (!Number.isFinite(value) || value <= 0)
    throw new ModelCenterError(
      `MODELCENTER_SPOOL_MAX_AGE_S "${env.MODELCENTER_SPOOL_MAX_AGE_S}" is not a number of seconds — write e.g. 3600`,
    );
  return value;
}
