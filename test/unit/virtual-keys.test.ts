import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildFromTexts } from '../../src/compile/build.js';
import { fingerprint } from '../../src/keys/audit.js';
import { tokenOf } from '../../src/keys/key-client.js';
import { RotationJournal, type Rotation } from '../../src/keys/rotation-journal.js';
import { callerKeys, keyFingerprint } from '../../src/keys/virtual-keys.js';
import { testKey } from '../helpers/secrets.js';

const policies = (callers: string) => `
providers:
  openai: { kind: openai, credential: env:OPENAI_API_KEY }
models:
  gpt-mini: { provider: openai, upstream: gpt-4o-mini, capabilities: [chat] }
profiles:
  fast: { requires: [chat] }
  deep: { requires: [chat] }
callers:
${callers}
`;
const build = (callers: string) => buildFromTexts([{ name: 'keys.yaml', text: policies(callers) }]);

describe("callers' keys from the policies", () => {
  it('a caller key carries the profiles as models, the budget, the alias and metadata.caller', () => {
    const { set, findings } = build(`  research-agent:
    profiles: [fast, deep]
    key: { grace: 2h, max_budget_usd: 50, budget_period: 30d, duration: 45d, rotate_every: 30d }
  no-key: { profiles: [fast] }`);
    expect(findings.errors).toEqual([]);
    const [key, ...others] = callerKeys(set);
    expect(others).toEqual([]);
    expect(key).toMatchObject({
      caller: 'research-agent',
      fields: {
        key_alias: 'research-agent',
        models: ['deep', 'fast'],
        max_budget: 50,
        budget_duration: '30d',
        metadata: { caller: 'research-agent' },
      },
      graceSeconds: 7200,
      rotateEverySeconds: 30 * 86_400,
      durationSeconds: 45 * 86_400,
      deliver: {},
    });
    // The mark Model Center leaves to tell its own writes from hand changes.
    expect(key?.fields.metadata.modelcenter_sha256).toMatch(/^[0-9a-f]{16}$/);
  });

  it('a caller with a key but no profiles is refused where it is written (its key could call every model)', () => {
    const { findings } = build(`  bot:
    key: { grace: 1h }`);
    expect(findings.errors).toEqual([
      expect.objectContaining({
        path: 'callers.bot.key',
        message: expect.stringMatching(/needs profiles/) as unknown,
        hint: 'list the profiles it may use under callers.bot.profiles',
      }),
    ]);
  });

  it("a key's fingerprint from its LiteLLM token is the audit trail's fingerprint of its value", () => {
    const value = testKey('sk-');
    expect(keyFingerprint(tokenOf(value))).toBe(fingerprint(value));
  });
});

describe('rotation journal', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('keeps each rotation in a 0600 file; the open one per caller is found again by a new reader', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mc-journal-'));
    const journal = new RotationJournal(dir);
    const at = new Date().toISOString();
    const rotation: Rotation = {
      id: 'rot_1',
      caller: 'bot',
      kind: 'rotate',
      by: 'cli',
      phase: 'started',
      startedAt: at,
      updatedAt: at,
      newToken: tokenOf('sk-x'),
      method: 'generate',
      graceSeconds: 60,
      delivery: 'api',
    };
    await journal.save(rotation);
    expect((await stat(path.join(dir, 'rot_1.json'))).mode & 0o777).toBe(0o600);
    expect(await new RotationJournal(dir).open('bot')).toMatchObject({ id: 'rot_1' });
    rotation.phase = 'done';
    await journal.save(rotation);
    expect(await new RotationJournal(dir).open('bot')).toBeUndefined();
    expect(await new RotationJournal(path.join(dir, 'none')).all()).toEqual([]);
  });
});
