import { createHash, randomUUID } from 'node:crypto';
import { ModelCenterError } from '../shared/errors.js';
import type { Queryable } from '../store/db.js';

/**
 * The audit trail of keys: every step of every rotation and key operation, in the ledger database
 * (table `key_audit`, migration 007; PGlite or PostgreSQL alike). Who, what, when, outcome and
 * fingerprints — never a value: `fingerprint()` is the only form of a key this module accepts,
 * and free text is masked before it is stored.
 */

/** Hex characters of SHA-256 a fingerprint keeps: enough to tell keys apart, useless to guess one. */
export const FINGERPRINT_LENGTH = 12;
const FINGERPRINT = new RegExp(`^[0-9a-f]{${FINGERPRINT_LENGTH}}$`);

/**
 * A key's fingerprint: the first 12 hex characters of its SHA-256. Shown wherever a key must be
 * named (status, audit, alerts, the retire hook), so two people can compare keys without
 * seeing one.
 */
export function fingerprint(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex').slice(0, FINGERPRINT_LENGTH);
}

/** A new id for a rotation or key operation (every step of it is recorded under this id). */
export function newRotationId(): string {
  return `rot_${randomUUID()}`;
}

/** `schedule` for scheduled runs; `cli` for the local CLI without a running service. */
export type Actor = string;
export const SCHEDULE_ACTOR: Actor = 'schedule';
export const CLI_ACTOR: Actor = 'cli';

export type AuditOutcome = 'started' | 'ok' | 'failed' | 'skipped';

/** One step of a rotation or key operation. */
export interface AuditEvent {
  /** The rotation or operation this step belongs to (`newRotationId()`). */
  rotationId: string;
  /** Who asked: the API token's name, `schedule`, or `cli`. */
  actor: Actor;
  /** The operation: `credential.rotate`, `master.rotate`, `key.rotate`, `key.create`, … */
  action: string;
  /** What it acts on: `provider:openai`, `master-key`, `caller:research-agent`, … */
  subject: string;
  /** The step: `probe`, `store`, `swap`, `canary`, `grace`, `retire`, `rollback`, `alert`, … */
  step: string;
  outcome: AuditOutcome;
  /** Fingerprints (`fingerprint()`) of the old and the new value, where the step has them. */
  fingerprints?: { old?: string; new?: string };
  /** What a person needs to know (an error message); masked before it is stored. */
  detail?: string;
}

/** An event as stored, with its time and position. */
export interface AuditRecord extends AuditEvent {
  id: number;
  at: string;
}

export interface AuditQuery {
  /** Only events at or after this instant. */
  since?: Date;
  /** Only events about this subject (`provider:openai`, `master-key`, …). */
  subject?: string;
  /** Only the steps of this rotation. */
  rotationId?: string;
  /** At most this many, the newest ones (default 1000). */
  limit?: number;
}

/** The audit trail was handed something that is not a fingerprint: refused, nothing stored. */
export class AuditError extends ModelCenterError {}

interface AuditRow {
  id: string | number;
  at: Date | string;
  rotation_id: string;
  actor: string;
  action: string;
  subject: string;
  step: string;
  outcome: AuditOutcome;
  old_fingerprint: string | null;
  new_fingerprint: string | null;
  detail: string | null;
}

const OUTCOMES: ReadonlySet<string> = new Set(['started', 'ok', 'failed', 'skipped']);
/** Free text longer than this is cut: the audit names what happened, it is no log. */
const MAX_DETAIL = 2000;

export class KeyAudit {
  /**
   * @param db the ledger database, migrated (src/store/migrate.ts).
   * @param mask masks every secret value the process holds (SecretValues.mask): applied to
   *   `detail` and every other free-text field before it is stored.
   */
  constructor(
    private readonly db: Queryable,
    private readonly mask: (text: string) => string = (text) => text,
  ) {}

  /** Appends one step. Throws AuditError when a fingerprint is not one (a value by mistake). */
  async record(event: AuditEvent): Promise<AuditRecord> {
    for (const [which, value] of Object.entries(event.fingerprints ?? {})) {
      if (value !== undefined && !FINGERPRINT.test(value)) {
        throw new AuditError(
          `audit: fingerprints.${which} is not a fingerprint (${FINGERPRINT_LENGTH} hex characters from fingerprint()); nothing was recorded`,
        );
      }
    }
    if (!OUTCOMES.has(event.outcome)) {
      throw new AuditError(
        `audit: outcome must be started, ok, failed or skipped, not ${JSON.stringify(event.outcome)}`,
      );
    }
    const text = (value: string): string => this.mask(value).slice(0, MAX_DETAIL);
    const rows = await this.db.query<AuditRow>(
      `INSERT INTO key_audit
         (rotation_id, actor, action, subject, step, outcome, old_fingerprint, new_fingerprint, detail)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       RETURNING *`,
      [
        text(event.rotationId),
        text(event.actor),
        text(event.action),
        text(event.subject),
        text(event.step),
        event.outcome,
        event.fingerprints?.old ?? null,
        event.fingerprints?.new ?? null,
        event.detail === undefined ? null : text(event.detail),
      ],
    );
    return fromRow(rows[0]!);
  }

  /** Events oldest first (the newest `limit` of those that match). */
  async list(query: AuditQuery = {}): Promise<AuditRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.since) {
      params.push(query.since.toISOString());
      where.push(`at >= $${params.length}`);
    }
    if (query.subject) {
      params.push(query.subject);
      where.push(`subject = $${params.length}`);
    }
    if (query.rotationId) {
      params.push(query.rotationId);
      where.push(`rotation_id = $${params.length}`);
    }
    params.push(Math.max(1, Math.min(query.limit ?? 1000, 100_000)));
    const rows = await this.db.query<AuditRow>(
      `SELECT * FROM (
         SELECT * FROM key_audit ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY at DESC, id DESC LIMIT $${params.length}
       ) newest ORDER BY at, id`,
      params,
    );
    return rows.map(fromRow);
  }
}

function fromRow(row: AuditRow): AuditRecord {
  return {
    id: Number(row.id),
    at: new Date(row.at).toISOString(),
    rotationId: row.rotation_id,
    actor: row.actor,
    action: row.action,
    subject: row.subject,
    step: row.step,
    outcome: row.outcome,
    ...((row.old_fingerprint ?? row.new_fingerprint) !== null && {
      fingerprints: {
        ...(row.old_fingerprint !== null && { old: row.old_fingerprint }),
        ...(row.new_fingerprint !== null && { new: row.new_fingerprint }),
      },
    }),
    ...(row.detail !== null && { detail: row.detail }),
  };
}
