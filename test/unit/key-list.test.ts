import { describe, expect, it } from 'vitest';
import { buildFromTexts } from '../../src/compile/build.js';
import { fingerprint } from '../../src/keys/audit.js';
import { keyList } from '../../src/keys/key-list.js';
import type { Rotation, RotationLog } from '../../src/keys/rotations.js';
import type { SecretStore } from '../../src/secrets/store.js';
import { testKey } from '../helpers/secrets.js';

const POLICIES = `
providers:
  local:
    kind: ollama
    base_url: http://127.0.0.1:1
models:
  small:
    provider: local
    upstream: llama3.1:8b
    capabilities: [chat]
profiles:
  fast:
    requires: [chat]
callers:
  alice:
    profiles: [fast]
    key: { rotate_every: 30d }
  bob:
    profiles: [fast]
master_key:
  rotate_every: 7d
`;

const NOW = new Date('2026-12-01T12:00:00Z');

function set() {
  const build = buildFromTexts([{ name: 'p.yaml', text: POLICIES }]);
  if (!build.config) throw new Error(JSON.stringify(build.findings.errors));
  return build.set;
}

/** A store holding a rotated master key since `createdAt` (or nothing). */
function store(createdAt?: string): SecretStore {
  return {
    peek: () => (createdAt ? { current: { value: 'unused', createdAt } } : undefined),
  } as unknown as SecretStore;
}

function rotations(latest: Record<string, Partial<Rotation>>): RotationLog {
  return {
    latest: (subject: string) => Promise.resolve(latest[subject] as Rotation | undefined),
  } as unknown as RotationLog;
}

describe('GET /v1/keys: the master key and each caller key, by fingerprint', () => {
  const master = testKey();

  it('configuration mode: callers share the master key; its next rotation follows rotate_every from when it came in', async () => {
    const keys = await keyList({
      set: set(),
      store: store('2026-11-30T12:00:00.000Z'),
      rotations: rotations({}),
      masterKey: master,
      now: NOW,
    });
    expect(keys).toEqual([
      {
        subject: 'master-key',
        kind: 'master',
        fingerprint: fingerprint(master),
        since: '2026-11-30T12:00:00.000Z',
        ageSeconds: 86_400,
        rotateEvery: '7d',
        nextRotation: '2026-12-07T12:00:00.000Z',
      },
      {
        subject: 'caller:alice',
        kind: 'caller',
        caller: 'alice',
        fingerprint: fingerprint(master),
        sharesMasterKey: true,
      },
      {
        subject: 'caller:bob',
        kind: 'caller',
        caller: 'bob',
        fingerprint: fingerprint(master),
        sharesMasterKey: true,
      },
    ]);
    expect(JSON.stringify(keys)).not.toContain(master);
  });

  it("database mode: a caller's own key, its last rotation and the next one", async () => {
    const alice = testKey();
    const keys = await keyList({
      set: set(),
      store: store(),
      rotations: rotations({
        'caller:alice': {
          id: 'r1',
          state: 'retired',
          startedAt: '2026-11-20T00:00:00.000Z',
          retiredAt: '2026-11-20T01:00:00.000Z',
        },
      }),
      masterKey: master,
      callerKeyFingerprint: (caller) => (caller === 'alice' ? fingerprint(alice) : undefined),
      now: NOW,
    });
    expect(keys[0]).toMatchObject({ subject: 'master-key', nextRotation: NOW.toISOString() });
    expect(keys[1]).toEqual({
      subject: 'caller:alice',
      kind: 'caller',
      caller: 'alice',
      fingerprint: fingerprint(alice),
      sharesMasterKey: false,
      rotation: {
        id: 'r1',
        state: 'retired',
        startedAt: '2026-11-20T00:00:00.000Z',
        retiredAt: '2026-11-20T01:00:00.000Z',
      },
      rotateEvery: '30d',
      nextRotation: '2026-12-20T00:00:00.000Z',
    });
    expect(keys[2]).toMatchObject({ caller: 'bob', sharesMasterKey: true });
  });
});
