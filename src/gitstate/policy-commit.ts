import path from 'node:path';
import { rm } from 'node:fs/promises';
import { simpleGit } from 'simple-git';
import { describeError } from '../shared/errors.js';
import { readIfExists, writeFileAtomically } from '../shared/fs.js';
import { GitStateError } from './git-state.js';

const IDENTITY = ['user.name=Model Center', 'user.email=modelcenter@localhost'];

/**
 * Writes one file of the policy repository and commits exactly that path (`git commit -- file`:
 * whatever else the user has staged stays staged and out of the commit). `text` undefined removes
 * the file. No commit when the file already holds `text`. When git refuses, the file is put back
 * and GitStateError carries git's words.
 */
export async function commitPolicyFile(
  file: string,
  text: string | undefined,
  message: string,
): Promise<{ commit: string | undefined; changed: boolean }> {
  const dir = path.dirname(file);
  let root: string;
  try {
    root = (await simpleGit({ baseDir: dir }).revparse(['--show-toplevel'])).trim();
  } catch (error) {
    throw new GitStateError(
      `${dir} is not in a git repository (${describeError(error).split('\n')[0]?.trim()}) — the health overlay is committed to the policy repository: run git init there`,
    );
  }
  const git = simpleGit({ baseDir: root, config: IDENTITY });
  const relative = path.relative(root, path.resolve(file));
  const before = await readIfExists(file);
  const head = async (): Promise<string | undefined> =>
    (await git.revparse(['--verify', '--quiet', 'HEAD']).catch(() => '')).trim() || undefined;
  const committed = await git.show([`HEAD:${relative}`]).catch(() => undefined);
  if (before === text && committed === text) return { commit: await head(), changed: false };
  try {
    if (text === undefined) await rm(file, { force: true });
    else await writeFileAtomically(file, text);
    const inRepo = committed !== undefined;
    if (text !== undefined) await git.raw(['add', '--', relative]);
    else if (inRepo) await git.raw(['rm', '-q', '--cached', '--', relative]);
    if (text === undefined && !inRepo) return { commit: await head(), changed: false };
    await git.raw(['commit', '-q', '-m', message, '--', relative]);
  } catch (error) {
    if (before === undefined) await rm(file, { force: true });
    else await writeFileAtomically(file, before);
    await git.raw(['reset', '-q', '--', relative]).catch(() => undefined);
    throw new GitStateError(
      `could not commit ${relative}: ${describeError(error).split('\n')[0]?.trim()} — check the policy repository's state (a rebase or merge in progress, or .git/index.lock left behind)`,
      { cause: error },
    );
  }
  return { commit: await head(), changed: true };
}
