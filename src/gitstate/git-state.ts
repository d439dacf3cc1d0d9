import { createHash } from 'node:crypto';
import path from 'node:path';
import { simpleGit, type SimpleGit } from 'simple-git';
import { ModelCenterError, describeError } from '../shared/errors.js';
import { readIfExists, writeFileAtomically } from '../shared/fs.js';
import { GENERATED_TRAILER } from './messages.js';

export class GitStateError extends ModelCenterError {}

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
    const status = await this.git.raw(['status', '--porcelain', '--', relative]);
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

  /** Writes and commits the generated config; no commit when the content is already committed. */
  async commitConfig(text: string, message: string): Promise<{ commit: string; changed: boolean }> {
    const committed = await this.committedConfig();
    if (committed === text) {
      if ((await this.workingConfig()) !== text) await writeFileAtomically(this.configFile, text);
      // The commit that made this content, not HEAD: later policy commits did not change it.
      return { commit: (await this.lastConfigCommit()) ?? (await this.head())!, changed: false };
    }
    await writeFileAtomically(this.configFile, text);
    try {
      await this.git.add([this.configPath]);
      await this.git.commit(message, [this.configPath]);
    } catch (error) {
      throw new GitStateError(
        `could not commit ${this.configPath}: ${describeError(error)} — check the repository's state (a rebase or merge in progress?)`,
      );
    }
    return { commit: (await this.head())!, changed: true };
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
    await this.git.raw(['update-ref', LAST_KNOWN_GOOD_REF, commit]);
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

  /** Resolves a user-given revision to a full commit id, or undefined. */
  async resolve(rev: string): Promise<string | undefined> {
    try {
      return (
        (await this.git.revparse(['--verify', '--quiet', `${rev}^{commit}`])).trim() || undefined
      );
    } catch {
      return undefined;
    }
  }

  /** A hand edit of the generated file, on disk or in a commit not made by Model Center. */
  async drift(): Promise<Drift> {
    const committed = await this.committedConfig();
    const working = await this.workingConfig();
    const drift: Drift = { workingTreeEdited: committed !== undefined && working !== committed };
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
