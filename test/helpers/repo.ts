import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Git for tests: no user or system config leaks in, fixed identity. */
export const GIT_ENV = {
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_AUTHOR_NAME: 'Test Author',
  GIT_AUTHOR_EMAIL: 'author@example.test',
  GIT_COMMITTER_NAME: 'Test Author',
  GIT_COMMITTER_EMAIL: 'author@example.test',
};
Object.assign(process.env, {
  GIT_CONFIG_GLOBAL: GIT_ENV.GIT_CONFIG_GLOBAL,
  GIT_CONFIG_NOSYSTEM: '1',
});

export function git(dir: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd: dir,
    env: { ...process.env, ...GIT_ENV },
    encoding: 'utf8',
  }).trim();
}

/** A new repository with `policies/scenario.yaml` committed, as a user's policy repo would be. */
export async function policyRepo(policies: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mc-repo-'));
  git(dir, 'init', '-q', '-b', 'main');
  await mkdir(path.join(dir, 'policies'));
  await writeFile(path.join(dir, 'policies', 'scenario.yaml'), policies);
  await writeFile(path.join(dir, '.gitignore'), '.modelcenter/\n');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'policies: initial');
  return dir;
}

/** Edits the policy file and commits, as a user would. Returns the new commit. */
export async function commitPolicies(
  dir: string,
  policies: string,
  message: string,
): Promise<string> {
  await writeFile(path.join(dir, 'policies', 'scenario.yaml'), policies);
  git(dir, 'commit', '-q', '-am', message);
  return git(dir, 'rev-parse', 'HEAD');
}
