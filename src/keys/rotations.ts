import type { Queryable } from '../store/db.js';

/**
 * The rotations themselves (table `key_rotations`, migration 007): one row per rotation, moved
 * from state to state as its steps finish, so a controller that stops mid-rotation finds it on the
 * next start and finishes it (a retire step due, a grace period to wait out). Never a value.
 */

export type RotationKind = 'credential' | 'master' | 'virtual';
/**
 * started: the new value is being probed or swapped in; live: it serves, the old one is in its
 * grace period; retiring: the retire step was claimed and runs; retired: the old one is gone
 * (hook ran, key deleted); failed: nothing changed; rolled-back: the old value serves again.
 */
export type RotationState = 'started' | 'live' | 'retiring' | 'retired' | 'failed' | 'rolled-back';

export interface Rotation {
  id: string;
  kind: RotationKind;
  subject: string;
  actor: string;
  state: RotationState;
  oldFingerprint?: string;
  newFingerprint?: string;
  startedAt: string;
  graceUntil?: string;
  retiredAt?: string;
  updatedAt: string;
  /** Kind-specific state, never a value. */
  data: Record<string, unknown>;
}

interface RotationRow {
  id: string;
  kind: RotationKind;
  subject: string;
  actor: string;
  state: RotationState;
  old_fingerprint: string | null;
  new_fingerprint: string | null;
  started_at: Date | string;
  grace_until: Date | string | null;
  retired_at: Date | string | null;
  updated_at: Date | string;
  data: Record<string, unknown> | string | null;
}

export class RotationLog {
  constructor(private readonly db: Queryable) {}

  async create(rotation: {
    id: string;
    kind: RotationKind;
    subject: string;
    actor: string;
    oldFingerprint?: string;
    newFingerprint?: string;
    data?: Record<string, unknown>;
  }): Promise<Rotation> {
    const rows = await this.db.query<RotationRow>(
      `INSERT INTO key_rotations (id, kind, subject, actor, state, old_fingerprint, new_fingerprint, data)
       VALUES ($1, $2, $3, $4, 'started', $5, $6, $7::jsonb) RETURNING *`,
      [
        rotation.id,
        rotation.kind,
        rotation.subject,
        rotation.actor,
        rotation.oldFingerprint ?? null,
        rotation.newFingerprint ?? null,
        JSON.stringify(rotation.data ?? {}),
      ],
    );
    return fromRow(rows[0]!);
  }

  /** Moves a rotation on; `data` is merged into what it holds. */
  async update(
    id: string,
    change: {
      state?: RotationState;
      graceUntil?: Date | null;
      retiredAt?: Date;
      data?: Record<string, unknown>;
    },
  ): Promise<Rotation | undefined> {
    const rows = await this.db.query<RotationRow>(
      `UPDATE key_rotations SET
         state = COALESCE($2, state),
         grace_until = CASE WHEN $3::boolean THEN $4::timestamptz ELSE grace_until END,
         retired_at = COALESCE($5::timestamptz, retired_at),
         data = data || $6::jsonb,
         updated_at = now()
       WHERE id = $1 RETURNING *`,
      [
        id,
        change.state ?? null,
        change.graceUntil !== undefined,
        change.graceUntil ? change.graceUntil.toISOString() : null,
        change.retiredAt ? change.retiredAt.toISOString() : null,
        JSON.stringify(change.data ?? {}),
      ],
    );
    return rows[0] && fromRow(rows[0]);
  }

  /**
   * Claims the retire step: true for the one caller that moved the rotation from `live` to
   * `retiring`, false when another did (a second timer, another controller on the same database).
   * The retire hook runs only after winning this, so concurrent runs never both run it.
   */
  async claimRetire(id: string): Promise<boolean> {
    const rows = await this.db.query<{ id: string }>(
      `UPDATE key_rotations SET state = 'retiring', updated_at = now()
       WHERE id = $1 AND state = 'live' RETURNING id`,
      [id],
    );
    return rows.length === 1;
  }

  /** The retire step finished: `retiring` → `retired`, once. */
  async markRetired(id: string, at: Date = new Date()): Promise<boolean> {
    const rows = await this.db.query<{ id: string }>(
      `UPDATE key_rotations SET state = 'retired', retired_at = $2, updated_at = now()
       WHERE id = $1 AND state = 'retiring' RETURNING id`,
      [id, at.toISOString()],
    );
    return rows.length === 1;
  }

  /** The retire step failed: back to `live` (retried later), `data` merged (attempts, next try). */
  async releaseRetire(id: string, data: Record<string, unknown>): Promise<void> {
    await this.db.query(
      `UPDATE key_rotations SET state = 'live', data = data || $2::jsonb, updated_at = now()
       WHERE id = $1 AND state = 'retiring'`,
      [id, JSON.stringify(data)],
    );
  }

  async get(id: string): Promise<Rotation | undefined> {
    const rows = await this.db.query<RotationRow>('SELECT * FROM key_rotations WHERE id = $1', [
      id,
    ]);
    return rows[0] && fromRow(rows[0]);
  }

  /** The newest rotation of a subject. */
  async latest(subject: string): Promise<Rotation | undefined> {
    const rows = await this.db.query<RotationRow>(
      'SELECT * FROM key_rotations WHERE subject = $1 ORDER BY started_at DESC, id DESC LIMIT 1',
      [subject],
    );
    return rows[0] && fromRow(rows[0]);
  }

  /**
   * Rotations not finished: started (interrupted), live (in grace, retire pending) or retiring
   * (the retire step was running when the controller stopped).
   */
  async open(kind?: RotationKind): Promise<Rotation[]> {
    const rows = await this.db.query<RotationRow>(
      `SELECT * FROM key_rotations WHERE state IN ('started', 'live', 'retiring')
       ${kind ? 'AND kind = $1' : ''} ORDER BY started_at, id`,
      kind ? [kind] : [],
    );
    return rows.map(fromRow);
  }
}

function iso(value: Date | string | null): string | undefined {
  return value === null ? undefined : new Date(value).toISOString();
}

function fromRow(row: RotationRow): Rotation {
  const data =
    typeof row.data === 'string'
      ? (JSON.parse(row.data) as Record<string, unknown>)
      : (row.data ?? {});
  return {
    id: row.id,
    kind: row.kind,
    subject: row.subject,
    actor: row.actor,
    state: row.state,
    ...(row.old_fingerprint !== null && { oldFingerprint: row.old_fingerprint }),
    ...(row.new_fingerprint !== null && { newFingerprint: row.new_fingerprint }),
    startedAt: iso(row.started_at)!,
    ...(row.grace_until !== null && { graceUntil: iso(row.grace_until) }),
    ...(row.retired_at !== null && { retiredAt: iso(row.retired_at) }),
    updatedAt: iso(row.updated_at)!,
    data,
  };
}
