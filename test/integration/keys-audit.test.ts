import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuditError, fingerprint, KeyAudit, newRotationId } from '../../src/keys/audit.js';
import { RotationLog } from '../../src/keys/rotations.js';
import { SecretValues } from '../../src/log/redact.js';
import { openDatabase, type Database } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrate.js';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.js';
import { testKey } from '../helpers/secrets.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(60_000), hookTimeout: scaled(120_000) });

let cluster: Promise<PostgresCluster> | undefined;
afterAll(async () => (await cluster)?.stop());

const databases: [string, () => Promise<Database>][] = [
  ['PGlite (embedded ledger)', () => openDatabase({})],
  [
    'PostgreSQL (throw-away cluster)',
    async () => {
      cluster ??= startPostgres();
      return openDatabase({ url: (await cluster).url });
    },
  ],
];

describe.each(databases)('the key audit trail on %s', (_, open) => {
  let db: Database;
  beforeAll(async () => {
    db = await open();
    await migrate(db);
  });
  afterAll(() => db.close());

  it('records every step of a rotation with fingerprints, lists them by subject and time', async () => {
    const oldKey = testKey();
    const newKey = testKey();
    const secrets = new SecretValues();
    secrets.add(oldKey);
    secrets.add(newKey);
    const audit = new KeyAudit(db, (text) => secrets.mask(text));
    const id = newRotationId();
    const before = new Date(Date.now() - 1000);
    const fingerprints = { old: fingerprint(oldKey), new: fingerprint(newKey) };
    await audit.record({
      rotationId: id,
      actor: 'admin:0123456789ab',
      action: 'credential.rotate',
      subject: 'provider:openai',
      step: 'probe',
      outcome: 'ok',
      fingerprints,
    });
    await audit.record({
      rotationId: id,
      actor: 'admin:0123456789ab',
      action: 'credential.rotate',
      subject: 'provider:openai',
      step: 'swap',
      outcome: 'failed',
      fingerprints,
      // A value that slipped into an error message is masked before it is stored.
      detail: `upstream refused ${newKey}`,
    });
    await audit.record({
      rotationId: newRotationId(),
      actor: 'schedule',
      action: 'credential.rotate',
      subject: 'provider:anthropic',
      step: 'probe',
      outcome: 'started',
    });

    const openai = await audit.list({ subject: 'provider:openai', since: before });
    expect(openai.map((e) => [e.step, e.outcome])).toEqual([
      ['probe', 'ok'],
      ['swap', 'failed'],
    ]);
    expect(openai[0]).toMatchObject({ rotationId: id, actor: 'admin:0123456789ab', fingerprints });
    expect(openai[1]!.detail).toBe('upstream refused [REDACTED]');
    expect(fingerprints.old).toMatch(/^[0-9a-f]{12}$/);

    const everything = JSON.stringify(await audit.list());
    expect(everything).not.toContain(oldKey);
    expect(everything).not.toContain(newKey);
    expect((await audit.list({ rotationId: id })).length).toBe(2);
    expect((await audit.list({ since: new Date(Date.now() + 60_000) })).length).toBe(0);
    expect((await audit.list({ limit: 1 }))[0]!.subject).toBe('provider:anthropic');
  });

  it('refuses a value where a fingerprint belongs, and stores nothing', async () => {
    const audit = new KeyAudit(db);
    const value = testKey();
    const id = newRotationId();
    await expect(
      audit.record({
        rotationId: id,
        actor: 'cli',
        action: 'credential.rotate',
        subject: 'provider:openai',
        step: 'store',
        outcome: 'ok',
        fingerprints: { new: value },
      }),
    ).rejects.toThrow(AuditError);
    expect(await audit.list({ rotationId: id })).toEqual([]);
  });

  it('keeps rotations by state; the retire step is claimed exactly once', async () => {
    const log = new RotationLog(db);
    const id = newRotationId();
    await log.create({ id, kind: 'credential', subject: 'provider:groq', actor: 'cli' });
    const graceUntil = new Date(Date.now() + 3_600_000);
    await log.update(id, { state: 'live', graceUntil, data: { variable: 'GROQ_API_KEY' } });
    expect(await log.latest('provider:groq')).toMatchObject({
      id,
      state: 'live',
      graceUntil: graceUntil.toISOString(),
      data: { variable: 'GROQ_API_KEY' },
    });
    expect((await log.open('credential')).map((r) => r.id)).toContain(id);
    const claims = await Promise.all([
      log.claimRetire(id),
      log.claimRetire(id),
      log.claimRetire(id),
    ]);
    expect(claims.filter(Boolean)).toHaveLength(1);
    expect((await log.get(id))?.state).toBe('retiring');
    expect(await log.markRetired(id)).toBe(true);
    expect(await log.markRetired(id)).toBe(false);
    expect((await log.get(id))?.state).toBe('retired');
    expect((await log.open()).map((r) => r.id)).not.toContain(id);
  });
});
