import { createHash } from 'node:crypto';
import path from 'node:path';
import { simpleGit, type SimpleGit } from 'simple-git';
import { rm } from 'node:fs/promises';
import { InputError, ModelCenterError, describeError } from '../shared/errors.js';
import { readIfExists, writeFileAtomically } from '../shared/fs.js';
import { GENERATED_TRAILER } from './messages.js';

/** A commit of the generated file, as `generatedHistory` reads it. */
export interface GeneratedCommit {
  commit: string;
  /** Commit time, ISO 8601. */
  at: string;
  subject: string;
  /** `Policy-Commit:` trailer: the policy commit it was rendered from (`none`, or with ` (dirty)`). */
  policyCommit?: string;
  /** `Rollback-To:` trailer: the generated commit a rollback restored. */
  rollbackTo?: string;
}

/** Git refused an operation; `message` carries git's own words and what to check. */
export class GitStateError extends ModelCenterError {}

/**
 * A revision given as a rollback target that is not one generated commit: malformed, a range, not
 * in the repository, or a commit Model Center did not make. Input to refuse, not a failed apply.
 */
export class RevisionError extends InputError {
  constructor(
    message: string,
    readonly kind: 'malformed' | 'range' | 'unknown' | 'not-generated',
  ) {
    super(message, {
      status: kind === 'unknown' ? 404 : 400,
      code:
        kind === 'unknown'
          ? 'not_found'
          : kind === 'not-generated'
            ? 'not_generated'
            : 'invalid_request',
      field: 'to',
    });
  }
}

const LAST_KNOWN_GOOD_REF = 'refs/modelcenter/last-known-good';
const IDENTITY = ['user.name=Model Center', 'user.email=modelcenter@localhost'];

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export interface Drift {
  /** The generated file on disk differs from its last commit. */
  workingTreeEdited: boolean;
  /** The last commit that touched the generated file was not made by Model Center. */
  foreignCommit?: string;
}

/**
 * The generated config as git-versioned state. The only module that imports simple-git. The state
 * repo may be the policy repo itself or another one.
 */
export class GitState {
  private constructor(
    private readonly git: SimpleGit,
    readonly repoDir: string,
    /** The generated config, relative to the repo. */
    readonly configPath: string,
  ) {}

  static async open(repoDir: string, configFile: string): Promise<GitState> {
    const git = simpleGit({ baseDir: repoDir, config: IDENTITY });
    let root: string;
    try {
      root = (await git.revparse(['--show-toplevel'])).trim();
    } catch (error) {
      throw new GitStateError(
        `${repoDir} is not a git repository (${describeError(error).split('\n')[0]?.trim()}) — run git init there, or point MODELCENTER_STATE_REPO at one`,
      );
    }
    const relative = path.relative(root, path.resolve(repoDir, configFile));
    if (relative.startsWith('..'))
      throw new GitStateError(
        `the config file ${configFile} lies outside the state repository ${root}`,
      );
    return new GitState(simpleGit({ baseDir: root, config: IDENTITY }), root, relative);
  }

  get configFile(): string {
    return path.join(this.repoDir, this.configPath);
  }

  /** The current commit, or undefined in a repository without commits. */
  async head(): Promise<string | undefined> {
    try {
      return (await this.git.revparse(['--verify', '--quiet', 'HEAD'])).trim() || undefined;
    } catch {
      return undefined;
    }
  }

  /** The last commit that changed the generated file. */
  async lastConfigCommit(): Promise<string | undefined> {
    const out = await this.git
      .raw(['log', '-1', '--format=%H', '--', this.configPath])
      .catch(() => '');
    return out.trim() || undefined;
  }

  /** The last commit that touched `dir` (the policies), and whether it has uncommitted changes. */
  async provenance(dir: string): Promise<{ commit: string | undefined; dirty: boolean }> {
    const relative = path.relative(this.repoDir, dir) || '.';
    if (relative.startsWith('..')) return { commit: undefined, dirty: false };
    const commit =
      (await this.git.raw(['log', '-1', '--format=%H', '--', relative]).catch(() => '')).trim() ||
      undefined;
    // Read-only: without the optional index refresh, which needs a lock file and room on the
    // disk (a full disk would otherwise fail every status and poll).
    const status = await this.git.raw([
      '--no-optional-locks',
      'status',
      '--porcelain',
      '--',
      relative,
    ]);
    return { commit, dirty: status.trim().length > 0 };
  }

  async committedConfig(rev = 'HEAD'): Promise<string | undefined> {
    try {
      return await this.git.show([`${rev}:${this.configPath}`]);
    } catch {
      return undefined;
    }
  }

  async workingConfig(): Promise<string | undefined> {
    return readIfExists(this.configFile);
  }

  /**
   * Writes and commits the generated config as one step; no commit when the content is already
   * committed. When git refuses the commit, the file (and the index) are put back as they were, so
   * a git hiccup leaves no hand edit behind, and GitStateError carries git's message.
   */
  async commitConfig(text: string, message: string): Promise<{ commit: string; changed: boolean }> {
    const committed = await this.committedConfig();
    if (committed === text) {
      if ((await this.workingConfig()) !== text) await writeFileAtomically(this.configFile, text);
      // The commit that made this content, not HEAD: later policy commits did not change it.
      return { commit: (await this.lastConfigCommit()) ?? (await this.head())!, changed: false };
    }
    const before = await this.workingConfig();
    await writeFileAtomically(this.configFile, text);
    try {
      await this.git.add([this.configPath]);
      await this.git.commit(message, [this.configPath]);
    } catch (error) {
      await this.restoreConfig(before);
      throw new GitStateError(
        `could not commit ${this.configPath}: ${gitMessage(error)} — ${commitHint(error)}; ${this.configPath} is as it was and the next apply retries`,
        { cause: error },
      );
    }
    return { commit: (await this.head())!, changed: true };
  }

  /** Puts the generated file back to `text` (undefined: it did not exist) and unstages it. */
  async restoreConfig(text: string | undefined): Promise<void> {
    if (text === undefined) await rm(this.configFile, { force: true });
    else await writeFileAtomically(this.configFile, text);
    // Staged by a `git add` that worked before the commit failed; best effort (the index may be locked).
    await this.git.raw(['reset', '-q', '--', this.configPath]).catch(() => undefined);
  }

  async lastKnownGood(): Promise<string | undefined> {
    try {
      return (
        (await this.git.revparse(['--verify', '--quiet', LAST_KNOWN_GOOD_REF])).trim() || undefined
      );
    } catch {
      return undefined;
    }
  }

  async setLastKnownGood(commit: string): Promise<void> {
    try {
      await this.git.raw(['update-ref', LAST_KNOWN_GOOD_REF, commit]);
    } catch (error) {
      throw new GitStateError(
        `could not record ${commit.slice(0, 12)} as last-known-good: ${gitMessage(error)} — ${commitHint(error)}`,
        { cause: error },
      );
    }
  }

  /** Commits that changed the generated file, newest first. */
  async generatedCommits(limit = 50): Promise<{ commit: string; subject: string }[]> {
    const out = await this.git
      .raw(['log', `-${limit}`, '--format=%H%x09%s', '--', this.configPath])
      .catch(() => '');
    return out
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [commit = '', subject = ''] = line.split('\t');
        return { commit, subject };
      });
  }

  /**
   * Commits that changed the generated file, newest first, with when they were made and the
   * provenance their trailers record: the policy commit rendered, or the commit rolled back to.
   */
  async generatedHistory(limit = 50): Promise<GeneratedCommit[]> {
    const field = '%x1f';
    const format = [
      '%H',
      '%cI',
      '%s',
      '%(trailers:key=Policy-Commit,valueonly,separator=%x2C)',
      '%(trailers:key=Rollback-To,valueonly,separator=%x2C)',
    ].join(field);
    const out = await this.git
      .raw(['log', `-${limit}`, `--format=${format}%x1e`, '--', this.configPath])
      .catch(() => '');
    return out
      .split('\x1e')
      .map((record) => record.trim())
      .filter(Boolean)
      .map((record) => {
        const [commit = '', at = '', subject = '', policy = '', rollbackTo = ''] =
          record.split('\x1f');
        return {
          commit,
          at,
          subject,
          ...(policy.trim() && { policyCommit: policy.trim() }),
          ...(rollbackTo.trim() && { rollbackTo: rollbackTo.trim() }),
        };
      });
  }

  /** Resolves a user-given revision to a full commit id, or undefined. */
  async resolve(rev: string): Promise<string | undefined> {
    try {
      return (
        (
          await this.git.revparse(['--verify', '--quiet', '--end-of-options', `${rev}^{commit}`])
        ).trim() || undefined
      );
    } catch {
      return undefined;
    }
  }

  /**
   * The single generated commit `rev` names, or RevisionError saying why it is not one: a range or
   * other expression of several commits, something that is no revision at all, a commit not in
   * the repository, or one Model Center did not make.
   */
  async generatedCommit(rev: string): Promise<string> {
    if (rev.trim() === '' || rev.startsWith('-') || /[\s\p{Cc}]/u.test(rev)) {
      throw new RevisionError(
        `"${printable(rev)}" is not a revision: give a generated commit's id (modelcenter status lists them)`,
        'malformed',
      );
    }
    if (/\.\.|\^[-!@]/.test(rev)) {
      throw new RevisionError(
        `"${printable(rev)}" names a range or an expression, not one commit: rollback takes a single generated commit's id (modelcenter status lists them)`,
        'range',
      );
    }
    const commit = await this.resolve(rev);
    if (!commit) throw new RevisionError(`no commit "${rev}" in ${this.repoDir}`, 'unknown');
    const body = await this.git.raw(['log', '-1', '--format=%B', commit, '--']).catch(() => '');
    if (!body.includes(GENERATED_TRAILER) || (await this.committedConfig(commit)) === undefined) {
      const subject = body.split('\n')[0]?.trim() ?? '';
      throw new RevisionError(
        `commit ${commit.slice(0, 12)}${subject ? ` ("${subject}")` : ''} is not a generated commit: Model Center rolls back only to configs it committed (modelcenter status lists them)`,
        'not-generated',
      );
    }
    return commit;
  }

  /** The generated file on disk holds what it held in some commit Model Center made. */
  async isGeneratedContent(): Promise<boolean> {
    const blob = (
      await this.git.raw(['hash-object', '--', this.configPath]).catch(() => '')
    ).trim();
    if (!/^[0-9a-f]{40,64}$/.test(blob)) return false;
    const candidates = (
      await this.git
        .raw([
          'log',
          '--format=%H',
          `--find-object=${blob}`,
          '--fixed-strings',
          `--grep=${GENERATED_TRAILER}`,
          '--',
          this.configPath,
        ])
        .catch(() => '')
    )
      .split('\n')
      .filter(Boolean)
      .slice(0, 20);
    for (const commit of candidates) {
      // --find-object also lists the commit that replaced the blob: keep those that hold it.
      const held = await this.git
        .raw(['rev-parse', '--verify', '--quiet', `${commit}:${this.configPath}`])
        .catch(() => '');
      if (held.trim() === blob) return true;
    }
    return false;
  }

  /**
   * A hand edit of the generated file, on disk or in a commit not made by Model Center. A file
   * that holds a config Model Center committed (an earlier generated commit's) is not a hand edit.
   */
  async drift(): Promise<Drift> {
    const committed = await this.committedConfig();
    const working = await this.workingConfig();
    const drift: Drift = {
      workingTreeEdited:
        committed !== undefined &&
        working !== committed &&
        (working === undefined || !(await this.isGeneratedContent())),
    };
    const last = (
      await this.git.raw(['log', '-1', '--format=%H%x09%B', '--', this.configPath]).catch(() => '')
    ).trim();
    // A commit that deleted the file leaves nothing to protect: the next apply writes it anew.
    if (last && committed !== undefined) {
      const [commit = '', ...body] = last.split('\t');
      if (!body.join('\t').includes(GENERATED_TRAILER)) drift.foreignCommit = commit;
    }
    return drift;
  }
}

/** A policy file as committed at HEAD: its bytes, or why it is not read. */
export interface CommittedFile {
  /** Absolute path where the file lies in the working tree. */
  file: string;
  bytes?: Buffer;
  refused?: { message: string; hint: string };
}

const POLICY_FILE = /\.ya?ml$/;

/**
 * Every `*.yaml` / `*.yml` under `dir` as committed at HEAD of the repository `dir` lies in, sorted
 * by path — the desired state, whatever is edited on disk. Undefined when `dir` is not inside a
 * git repository (there is nothing committed to go by). A committed symbolic link is read through
 * when it points at a file of the same tree inside `dir`, and refused otherwise.
 */
export async function committedPolicyFiles(dir: string): Promise<CommittedFile[] | undefined> {
  const git = simpleGit({ baseDir: dir, config: IDENTITY });
  let root: string;
  try {
    root = (await git.revparse(['--show-toplevel'])).trim();
  } catch {
    return undefined;
  }
  const relative = path.relative(root, path.resolve(dir)) || '.';
  const listing = await git
    .raw(['ls-tree', '-r', '-z', '--full-tree', 'HEAD', '--', relative])
    .catch(() => '');
  const entries = listing
    .split('\0')
    .filter(Boolean)
    .map((line) => {
      const [meta = '', name = ''] = line.split('\t');
      const [mode = '', , object = ''] = meta.split(' ');
      return { mode, object, name };
    });
  const blobs = new Map(entries.filter((e) => e.mode !== '120000').map((e) => [e.name, e]));
  const inside = (name: string): boolean => relative === '.' || name.startsWith(`${relative}/`);
  const files: CommittedFile[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (!POLICY_FILE.test(entry.name)) continue;
    const file = path.join(root, entry.name);
    let object = entry.object;
    if (entry.mode === '120000') {
      const link = (await git.raw(['cat-file', 'blob', entry.object])).trim();
      const name = path.posix.normalize(path.posix.join(path.posix.dirname(entry.name), link));
      const target = blobs.get(name);
      if (!target || !inside(name)) {
        files.push({
          file,
          refused: {
            message: `is a committed symbolic link to ${link}, which is not a committed file inside the policies directory, so it is not read`,
            hint: 'commit the file itself inside the policies directory, or remove the link',
          },
        });
        continue;
      }
      if (POLICY_FILE.test(name)) continue; // read once, under its own name
      object = target.object;
    }
    files.push({ file, bytes: (await git.binaryCatFile(['blob', object])) as Buffer });
  }
  return files;
}

/** Git's own words: the first line of what it printed, without simple-git's decoration. */
function gitMessage(error: unknown): string {
  const lines = describeError(error)
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.find((l) => /^(fatal|error):/.test(l)) ?? lines[0] ?? 'git failed';
}

function commitHint(error: unknown): string {
  const text = describeError(error);
  if (text.includes('index.lock'))
    return 'another git process is running in this repository, or one crashed and left .git/index.lock behind (remove it when no git runs)';
  if (/permission denied|read-only/i.test(text))
    return 'the repository is not writable by this user';
  return "check the repository's state (a rebase or merge in progress?)";
}

/** A user's text in a message, control characters escaped. */
function printable(text: string): string {
  return JSON.stringify(text.slice(0, 200)).slice(1, -1);
}
