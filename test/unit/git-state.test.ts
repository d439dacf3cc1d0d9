import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GitState, GitStateError, RevisionError } from '../../src/gitstate/git-state.js';
import { applyCommitMessage } from '../../src/gitstate/messages.js';
import { git, policyRepo } from '../helpers/repo.js';

const message = applyCommitMessage({
  policyCommit: 'a'.repeat(40),
  policiesDirty: false,
  configSha256: 'b'.repeat(64),
  change: { added: ['m'], removed: [] },
});

describe('git state (real repositories in temp dirs)', () => {
  let repo: string | undefined;
  afterEach(async () => {
    if (repo) await rm(repo, { recursive: true, force: true });
    repo = undefined;
  });

  it("commits the generated file once per content, and never the user's other changes", async () => {
    repo = await policyRepo('models: {}\n');
    await writeFile(
      path.join(repo, 'policies', 'scenario.yaml'),
      'models: {} # edited, not committed\n',
    );
    const state = await GitState.open(repo, 'litellm/config.yaml');
    const first = await state.commitConfig('a: 1\n', message);
    expect(first.changed).toBe(true);
    expect(git(repo, 'show', '--name-only', '--format=', 'HEAD')).toBe('litellm/config.yaml');
    expect(git(repo, 'status', '--porcelain')).toBe('M policies/scenario.yaml');
    const again = await state.commitConfig('a: 1\n', message);
    expect(again).toEqual({ commit: first.commit, changed: false });
    expect(await state.provenance(path.join(repo, 'policies'))).toMatchObject({ dirty: true });
  });

  it('reports a hand edit on disk and a commit not made by Model Center as drift', async () => {
    repo = await policyRepo('models: {}\n');
    const state = await GitState.open(repo, 'litellm/config.yaml');
    await state.commitConfig('a: 1\n', message);
    expect(await state.drift()).toEqual({ workingTreeEdited: false });
    await writeFile(state.configFile, 'a: 2\n');
    expect((await state.drift()).workingTreeEdited).toBe(true);
    git(repo, 'commit', '-q', '-am', 'tweak the generated file by hand');
    const drift = await state.drift();
    expect(drift.workingTreeEdited).toBe(false);
    expect(drift.foreignCommit).toBe(git(repo, 'rev-parse', 'HEAD'));
  });

  it('a deleted generated file is not drift: the next apply writes it anew', async () => {
    repo = await policyRepo('models: {}\n');
    await mkdir(path.join(repo, 'litellm'));
    await writeFile(path.join(repo, 'litellm', 'config.yaml'), 'x: 1\n');
    git(repo, 'add', '-A');
    git(repo, 'commit', '-q', '-m', 'someone committed a config');
    git(repo, 'rm', '-q', 'litellm/config.yaml');
    git(repo, 'commit', '-q', '-m', 'remove it');
    const state = await GitState.open(repo, 'litellm/config.yaml');
    expect(await state.drift()).toEqual({ workingTreeEdited: false });
    await state.commitConfig('a: 1\n', message);
    expect(await readFile(state.configFile, 'utf8')).toBe('a: 1\n');
  });

  it('says clearly when the directory is not a git repository', async () => {
    await expect(GitState.open('/', 'x.yaml')).rejects.toThrow(
      /is not a git repository .* git init/,
    );
  });

  it("a commit git refuses (.git/index.lock) leaves the file and index as they were, git's message in a GitStateError, and no drift", async () => {
    repo = await policyRepo('models: {}\n');
    const state = await GitState.open(repo, 'litellm/config.yaml');
    const first = await state.commitConfig('a: 1\n', message);
    const lock = path.join(repo, '.git', 'index.lock');
    await writeFile(lock, '');
    const failed = state.commitConfig('a: 2\n', message);
    await expect(failed).rejects.toBeInstanceOf(GitStateError);
    await expect(failed).rejects.toThrow(
      /Unable to create '.*index\.lock': File exists.*next apply retries/,
    );
    expect(await readFile(state.configFile, 'utf8')).toBe('a: 1\n');
    expect(await state.drift()).toEqual({ workingTreeEdited: false });
    await rm(lock);
    expect(git(repo, 'status', '--porcelain')).toBe('');
    const retried = await state.commitConfig('a: 2\n', message);
    expect(retried.changed).toBe(true);
    expect(retried.commit).not.toBe(first.commit);
  });

  it('a generated file that holds an earlier generated config is not a hand edit; other content is', async () => {
    repo = await policyRepo('models: {}\n');
    const state = await GitState.open(repo, 'litellm/config.yaml');
    await state.commitConfig('a: 1\n', message);
    await state.commitConfig('a: 2\n', message);
    await writeFile(state.configFile, 'a: 1\n');
    expect((await state.drift()).workingTreeEdited).toBe(false);
    await writeFile(state.configFile, 'a: 3\n');
    expect((await state.drift()).workingTreeEdited).toBe(true);
    // The same content committed by hand does not count: only Model Center's commits do.
    git(repo, 'commit', '-q', '-am', 'by hand');
    await state.commitConfig('a: 2\n', message);
    await writeFile(state.configFile, 'a: 3\n');
    expect((await state.drift()).workingTreeEdited).toBe(true);
  });

  it('a rollback target must be one generated commit: ranges, unknown and foreign commits are refused, naming why', async () => {
    repo = await policyRepo('models: {}\n');
    const state = await GitState.open(repo, 'litellm/config.yaml');
    const { commit } = await state.commitConfig('a: 1\n', message);
    git(repo, 'commit', '-q', '--allow-empty', '-m', 'policies: something');
    expect(await state.generatedCommit('HEAD~1')).toBe(commit);
    expect(await state.generatedCommit(commit.slice(0, 10))).toBe(commit);
    const refused = async (rev: string) => {
      const error = await state.generatedCommit(rev).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, rev).toBeInstanceOf(RevisionError);
      return error as RevisionError;
    };
    expect(await refused('HEAD')).toMatchObject({ kind: 'not-generated', status: 400 });
    expect((await refused('HEAD')).message).toMatch(
      /"policies: something"\) is not a generated commit/,
    );
    expect(await refused('HEAD~2')).toMatchObject({ kind: 'not-generated' }); // the policy commit
    expect(await refused('HEAD~1..HEAD')).toMatchObject({ kind: 'range', status: 400 });
    expect((await refused('HEAD~1..HEAD')).message).toMatch(/range/);
    expect(await refused('HEAD^!')).toMatchObject({ kind: 'range' });
    expect(await refused('HEAD^-')).toMatchObject({ kind: 'range' });
    expect(await refused('--all')).toMatchObject({ kind: 'malformed' });
    expect(await refused('a\u0000b')).toMatchObject({ kind: 'malformed' });
    expect(await refused('HEAD~99')).toMatchObject({ kind: 'unknown', status: 404 });
    expect(await refused('f'.repeat(40))).toMatchObject({ kind: 'unknown' });
  });
});
