import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Controller } from '../../src/apply/controller.js';
import { GitStateError } from '../../src/gitstate/git-state.js';
import { freePort } from '../../src/litellm/process.js';
import type { RestartStrategy } from '../../src/reload/restart.js';
import { repoController } from '../helpers/controller.js';
import { commitPolicies, git, policyRepo } from '../helpers/repo.js';
import {
  allFakes,
  newKeys,
  providerEnv,
  scenarioPolicies,
  startFakes,
  type Fakes,
} from '../helpers/stack.js';

/** A policy commit becomes the verified live config of a real LiteLLM, or nothing changes. */
describe('apply with the restart strategy (real git, real LiteLLM)', () => {
  const keys = newKeys();
  let fakes: Fakes;
  let repo: string;
  let strategy: RestartStrategy;
  let controller: Controller;
  let base: string;

  const served = async () => (await strategy.instances()[0]!.deployments()).map((d) => d.id).sort();

  beforeAll(async () => {
    fakes = await startFakes(keys);
    base = scenarioPolicies(fakes);
    repo = await policyRepo(base);
    ({ controller, strategy } = await repoController(repo, {
      port: await freePort(),
      masterKey: keys.master,
      env: providerEnv(keys),
    }));
  });
  afterAll(async () => {
    await strategy?.stop();
    await Promise.all(allFakes(fakes).map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
  });

  it('first apply commits the generated config, serves it and records last-known-good', async () => {
    const report = await controller.apply();
    expect(report.problems).toEqual([]);
    expect(report.outcome).toBe('applied');
    expect(report.lastKnownGood).toBe(git(repo, 'rev-parse', 'HEAD'));
    expect(git(repo, 'rev-parse', 'refs/modelcenter/last-known-good')).toBe(report.commit);
    expect(git(repo, 'log', '-1', '--format=%s')).toMatch(
      /^modelcenter: render config from policies@[0-9a-f]{12}$/,
    );
    expect(await served()).toContain('fast/llama-small');
  });

  it('a policy commit adding a model ends with it served, a new generated commit and last-known-good moved', async () => {
    const before = await controller.state.lastKnownGood();
    const policyCommit = await commitPolicies(
      repo,
      base.replace(
        'profiles:',
        '  gpt-big:\n    provider: openai\n    upstream: gpt-4o\n    capabilities: [chat, tools]\n    context_window: 128000\n    pricing: { input_per_mtok: 2.5, output_per_mtok: 10 }\n\nprofiles:',
      ),
      'policies: add gpt-big',
    );
    const report = await controller.apply();
    expect(report.outcome).toBe('applied');
    expect(report.lastKnownGood).not.toBe(before);
    expect(await served()).toContain('gpt-big');
    const message = git(repo, 'log', '-1', '--format=%B');
    expect(message).toContain(`Policy-Commit: ${policyCommit}`);
    expect(message).toMatch(/Config-Sha256: [0-9a-f]{64}/);
    expect(message).toMatch(/Deployments added .*\bgpt-big\b/);
  });

  it('the same policies again: no commit, no reload', async () => {
    const head = git(repo, 'rev-parse', 'HEAD');
    const report = await controller.apply();
    expect(report.outcome).toBe('unchanged');
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(head);
  });

  it('a change that makes LiteLLM fail to start is rolled back; last-known-good does not move and the report names the cause', async () => {
    const lkg = await controller.state.lastKnownGood();
    const servedBefore = await served();
    await commitPolicies(
      repo,
      `${base}\nlitellm:\n  litellm_settings:\n    callbacks: ["no_such_module.handler"]\n`,
      'policies: add a callback',
    );
    const report = await controller.apply();
    expect(report.outcome).toBe('rolled-back');
    expect(report.problems.join('\n')).toMatch(/no_such_module/);
    expect(await controller.state.lastKnownGood()).toBe(lkg);
    expect(await served()).toEqual(servedBefore);
    expect(git(repo, 'log', '-1', '--format=%s')).toMatch(/^modelcenter: roll back config to/);
    expect(await readFile(path.join(repo, 'litellm', 'config.yaml'), 'utf8')).toBe(
      git(repo, 'show', `${lkg}:litellm/config.yaml`) + '\n',
    );
  });

  it('a deployment LiteLLM silently drops fails verification and is rolled back', async () => {
    const lkg = await controller.state.lastKnownGood();
    await commitPolicies(
      repo,
      base.replace(
        '    credential: env:GROQ_API_KEY\n',
        '    credential: env:GROQ_API_KEY\n    params: { max_retries: often }\n',
      ),
      'policies: groq retries',
    );
    const report = await controller.apply();
    expect(report.outcome).toBe('rolled-back');
    expect(report.problems.join('\n')).toMatch(/does not serve .*groq-llama/);
    expect(await controller.state.lastKnownGood()).toBe(lkg);
    expect(await served()).toContain('groq-llama');
  });

  it('refuses to overwrite a hand-edited generated file and says how to proceed', async () => {
    const file = path.join(repo, 'litellm', 'config.yaml');
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('num_retries: 0', 'num_retries: 5'));
    const report = await controller.apply();
    expect(report.outcome).toBe('drift');
    expect(report.problems[0]).toMatch(/edited by hand.*--force/);
    expect(await readFile(file, 'utf8')).toContain('num_retries: 5');
    await writeFile(file, text);
  });

  it(".git/index.lock during an apply: it fails with git's message, the working tree stays clean and is no drift, and the next apply after the lock is gone succeeds", async () => {
    const lkg = await controller.state.lastKnownGood();
    const servedBefore = await served();
    const policyCommit = await commitPolicies(
      repo,
      base.replace('  retries: 0\n', '  retries: 1\n'),
      'policies: one retry',
    );
    const lock = path.join(repo, '.git', 'index.lock');
    await writeFile(lock, ''); // another git process, or one that crashed
    for (let attempt = 0; attempt < 2; attempt++) {
      const failed = await controller.apply().then(
        () => undefined,
        (error: unknown) => error,
      );
      // Every attempt: git's own words, never "edited by hand".
      expect(failed).toBeInstanceOf(GitStateError);
      expect((failed as Error).message).toMatch(
        /could not commit litellm\/config\.yaml: fatal: Unable to create '.*index\.lock': File exists\./,
      );
    }
    expect(git(repo, 'status', '--porcelain')).toBe('');
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(policyCommit);
    expect((await controller.driftCheck()).drifted).toBe(false);
    expect(await controller.state.lastKnownGood()).toBe(lkg);
    expect(await served()).toEqual(servedBefore);

    await rm(lock);
    const report = await controller.apply();
    expect(report.outcome).toBe('applied');
    expect(git(repo, 'log', '-1', '--format=%B')).toContain(`Policy-Commit: ${policyCommit}`);
    expect(await readFile(path.join(repo, 'litellm', 'config.yaml'), 'utf8')).toContain(
      'num_retries: 1',
    );
    expect(await controller.state.lastKnownGood()).toBe(report.commit);
  });

  it('two concurrent applies never interleave: each sees a consistent state', async () => {
    await commitPolicies(repo, base, 'policies: back to base');
    const [a, b] = await Promise.all([controller.apply(), controller.apply()]);
    expect(a.outcome).toBe('applied');
    expect(b.outcome).toBe('unchanged');
    expect(b.commit).toBe(a.commit);
  });

  it('rollback --to an earlier generated commit serves it and verifies', async () => {
    const generated = await controller.state.generatedCommits();
    const withBig = generated.find((c) =>
      git(repo, 'show', `${c.commit}:litellm/config.yaml`).includes('gpt-big'),
    )!;
    const report = await controller.rollback(withBig.commit);
    expect(report.outcome).toBe('applied');
    expect(await served()).toContain('gpt-big');
    expect(await controller.state.lastKnownGood()).toBe(git(repo, 'rev-parse', 'HEAD'));
  });
});
