import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PolicyWatcher } from '../../src/watch/policy-watcher.js';
import { scenarioPolicies } from '../helpers/stack.js';

const fake = { url: 'http://127.0.0.1:9' } as never;
const BASE = scenarioPolicies({ ollama: fake, groq: fake, openai: fake, anthropic: fake });
const settle = (ms = 700) => new Promise((resolve) => setTimeout(resolve, ms));

describe('dev watcher (chokidar): debounced, keeps the last good set, acts only on a new compiled config', () => {
  let dir: string;
  let file: string;
  let watcher: PolicyWatcher;
  const changes: string[] = [];
  const invalid: string[][] = [];
  let failing = false;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mc-watch-'));
    file = path.join(dir, 'scenario.yaml');
    await writeFile(file, BASE);
    changes.length = 0;
    invalid.length = 0;
    failing = false;
    watcher = new PolicyWatcher({
      policiesDir: dir,
      debounceMs: 150,
      onChange: (yaml) => {
        changes.push(yaml);
        if (failing) return Promise.reject(new Error('could not commit: index.lock exists'));
        return Promise.resolve();
      },
      onInvalid: (problems) => invalid.push(problems),
    });
    await watcher.start();
  });
  afterEach(async () => {
    await watcher.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a burst of saves is one change; a comment-only edit is none', async () => {
    const edited = BASE.replace(
      'profiles:',
      '  extra:\n    provider: openai\n    upstream: gpt-4o\n    capabilities: [chat]\n\nprofiles:',
    );
    for (let i = 0; i < 4; i++) {
      await writeFile(file, `${edited}\n# save ${i}\n`);
      await settle(20);
    }
    await settle();
    await watcher.idle();
    expect(changes).toHaveLength(1);
    expect(changes[0]).toContain('model_name: extra');
    await writeFile(file, `${edited}\n# only a comment changed\n`);
    await settle();
    await watcher.idle();
    expect(changes).toHaveLength(1);
  });

  it('an apply that threw (git refused the commit) is tried again on the next save, even of the same policies', async () => {
    const edited = BASE.replace('retries: 0', 'retries: 2');
    failing = true;
    await writeFile(file, edited);
    await settle();
    await watcher.idle();
    expect(changes).toHaveLength(1);
    expect(invalid.flat().join('\n')).toMatch(/applying the edited policies failed: .*index\.lock/);
    failing = false;
    await writeFile(file, `${edited}\n# saved again\n`);
    await settle();
    await watcher.idle();
    expect(changes).toHaveLength(2);
    expect(changes[1]).toBe(changes[0]);
  });

  it('an invalid edit is reported with where and why, and nothing is applied until it is fixed', async () => {
    await writeFile(file, BASE.replace('provider: openai', 'provider: opneai'));
    await settle();
    await watcher.idle();
    expect(changes).toEqual([]);
    expect(invalid).toHaveLength(1);
    expect(invalid[0]!.join('\n')).toMatch(/scenario\.yaml:\d+:\d+ .*opneai/);
    await writeFile(file, BASE.replace('quality: 72', 'quality: 72\n    expose: false'));
    await settle();
    await watcher.idle();
    expect(changes).toHaveLength(1);
  });
});
