import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Controller } from '../../src/apply/controller.js';
import { buildFromDir } from '../../src/compile/build.js';
import { RevisionError, sha256 } from '../../src/gitstate/git-state.js';
import type { LiteLLMClient } from '../../src/litellm/client.js';
import type { ReloadStrategy } from '../../src/reload/strategy.js';
import { controllerFor, stateDirOf } from '../helpers/controller.js';
import { commitPolicies, git, policyRepo } from '../helpers/repo.js';

const POLICIES = `
providers:
  local:
    kind: ollama
    base_url: http://127.0.0.1:9
models:
  small:
    provider: local
    upstream: llama3.1:8b
    capabilities: [chat]
    context_window: 512
profiles:
  fast:
    requires: [chat]
`;
const CHANGED = POLICIES.replace('context_window: 512', 'context_window: 1024');

/**
 * A strategy whose one instance serves exactly what it was last told to: the controller's git
 * handling is what is under test here (the real LiteLLM cases are in test/integration).
 */
function mirrorStrategy(): ReloadStrategy & { reloads: number } {
  let served: readonly string[] = [];
  const instance = {
    baseUrl: 'http://mirror.test',
    readiness: () => Promise.resolve(),
    deployments: () =>
      Promise.resolve(served.map((id) => ({ modelName: id.split('/')[0], id, dbModel: false }))),
  } as unknown as LiteLLMClient;
  const strategy = {
    name: 'restart' as const,
    reloads: 0,
    reload(_file: string, intended: readonly string[]) {
      served = intended;
      strategy.reloads++;
      return Promise.resolve();
    },
    instances: () => (strategy.reloads > 0 ? [instance] : []),
    stop: () => Promise.resolve(),
  };
  return strategy;
}

describe('the controller and git: no wedges (real repositories, a mirror instance)', () => {
  let repo: string | undefined;
  afterEach(async () => {
    if (repo) await rm(repo, { recursive: true, force: true });
    repo = undefined;
  });

  const fresh = async (): Promise<{
    repo: string;
    controller: Controller;
    strategy: ReturnType<typeof mirrorStrategy>;
  }> => {
    repo = await policyRepo(POLICIES);
    const strategy = mirrorStrategy();
    const controller = await controllerFor(repo, strategy);
    expect((await controller.apply()).outcome).toBe('applied');
    return { repo, controller, strategy };
  };

  it('a restart while .git/index.lock is present serves the committed config and says the policies wait; the next apply commits them', async () => {
    const { repo } = await fresh();
    const generated = git(repo, 'rev-parse', 'HEAD');
    await commitPolicies(repo, CHANGED, 'policies: bigger context');
    await writeFile(path.join(repo, '.git', 'index.lock'), '');

    const restarted = await controllerFor(repo, mirrorStrategy());
    const report = await restarted.start();
    expect(report.commitFailed).toBe(true);
    expect(report.outcome).toBe('applied');
    expect(report.commit).toBe(generated); // the generated commit, not the policy commit at HEAD
    expect(report.problems[0]).toMatch(/Unable to create '.*index\.lock': File exists/);
    expect(git(repo, 'status', '--porcelain')).toBe('');
    expect(await restarted.state.lastKnownGood()).toBe(generated);
    expect(
      await readFile(path.join(stateDirOf(repo), 'apply-journal.json'), 'utf8').catch(() => 'none'),
    ).toBe('none');

    await rm(path.join(repo, '.git', 'index.lock'));
    const applied = await restarted.apply();
    expect(applied.outcome).toBe('applied');
    expect(await readFile(restarted.state.configFile, 'utf8')).toContain('1024');
  });

  it('killed after writing the generated file but before committing it: the next start puts it back and applies, no drift', async () => {
    const { repo } = await fresh();
    await commitPolicies(repo, CHANGED, 'policies: bigger context');
    const yaml = (await buildFromDir(path.join(repo, 'policies'))).yaml!;
    // What the killed apply left: its journal entry and the file it wrote, uncommitted.
    await writeFile(
      path.join(stateDirOf(repo), 'apply-journal.json'),
      JSON.stringify({
        phase: 'committing',
        kind: 'apply',
        configSha256: sha256(yaml),
        startedAt: new Date().toISOString(),
        pid: 999_999,
      }),
    );
    await writeFile(path.join(repo, 'litellm', 'config.yaml'), yaml);

    const restarted = await controllerFor(repo, mirrorStrategy());
    const report = await restarted.start();
    expect(report).toMatchObject({ recovered: true, outcome: 'applied', commitFailed: false });
    expect(git(repo, 'log', '-1', '--format=%s')).toMatch(/^modelcenter: render config/);
    expect(git(repo, 'status', '--porcelain')).toBe('');
  });

  it('a hand edit is still drift after a crash: only the content the journal names is put back', async () => {
    const { repo } = await fresh();
    const file = path.join(repo, 'litellm', 'config.yaml');
    await writeFile(
      path.join(stateDirOf(repo), 'apply-journal.json'),
      JSON.stringify({
        phase: 'committing',
        kind: 'apply',
        configSha256: 'a'.repeat(64),
        startedAt: '',
        pid: 1,
      }),
    );
    await writeFile(file, `${await readFile(file, 'utf8')}# by hand\n`);
    const report = await (await controllerFor(repo, mirrorStrategy())).start();
    expect(report.outcome).toBe('drift');
    expect(await readFile(file, 'utf8')).toContain('# by hand');
  });

  it('a rollback target that is not one generated commit is refused before the lock: no journal, no commit, no reload', async () => {
    const { repo, controller, strategy } = await fresh();
    const head = git(repo, 'rev-parse', 'HEAD');
    for (const to of ['HEAD~1', 'HEAD~1..HEAD', 'nope']) {
      await expect(controller.rollback(to), to).rejects.toBeInstanceOf(RevisionError);
    }
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(head);
    expect(strategy.reloads).toBe(1);
    expect(
      await readFile(path.join(stateDirOf(repo), 'apply-journal.json'), 'utf8').catch(() => 'none'),
    ).toBe('none');
    // A valid target is accepted; HEAD is what is live already, so nothing is reloaded.
    expect((await controller.rollback('HEAD')).outcome).toBe('unchanged');
    expect(strategy.reloads).toBe(1);
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(head);
  });
});
