import path from 'node:path';
import { simpleGit, type SimpleGit } from 'simple-git';
import { describeError } from '../shared/errors.js';
import { GitStateError } from './git-state.js';

const IDENTITY = ['user.name=Model Center', 'user.email=modelcenter@localhost'];

/** Who a policy commit is by: the API token's name (or `cli`, `schedule`). */
export interface CommitAuthor {
  name: string;
}

/**
 * The policy repository as the API writes to it: commits of the policy files a proposal changed,
 * authored by whoever asked (the committer stays Model Center), and their revert when the apply
 * that followed did not go live. Only the files named are committed: anything else staged or
 * edited in the repository stays as it was.
 */
export class PolicyRepo {
  private constructor(
    private readonly git: SimpleGit,
    readonly root: string,
  ) {}

  static async open(dir: string): Promise<PolicyRepo> {
    const git = simpleGit({ baseDir: dir, config: IDENTITY });
    let root: string;
    try {
      root = (await git.revparse(['--show-toplevel'])).trim();
    } catch (error) {
      throw new GitStateError(
        `${dir} is not in a git repository (${describeError(error).split('\n')[0]?.trim()}) — policies changed through the API are committed: run git init there`,
      );
    }
    return new PolicyRepo(simpleGit({ baseDir: root, config: IDENTITY }), root);
  }

  async head(): Promise<string | undefined> {
    try {
      return (await this.git.revparse(['--verify', '--quiet', 'HEAD'])).trim() || undefined;
    } catch {
      return undefined;
    }
  }

  /** Commits `files` (absolute paths, already written) as one commit; returns its id. */
  async commit(files: readonly string[], message: string, author: CommitAuthor): Promise<string> {
    const relative = files.map((f) => path.relative(this.root, f));
    try {
      await this.git.add(relative);
      await this.git.commit(message, relative, { '--author': authorLine(author) });
    } catch (error) {
      throw new GitStateError(`could not commit ${relative.join(', ')}: ${firstLine(error)}`, {
        cause: error,
      });
    }
    return (await this.head())!;
  }

  /** Reverts `commit` (the last one) with a commit by the same author that says why. */
  async revert(commit: string, why: string, author: CommitAuthor): Promise<string> {
    try {
      await this.git.raw(['revert', '--no-edit', '--no-commit', commit]);
      const subject = (await this.git.raw(['log', '-1', '--format=%s', commit])).trim();
      await this.git.commit(
        `Revert "${subject}"\n\n${why}\n\nThis reverts commit ${commit}.`,
        undefined,
        { '--author': authorLine(author) },
      );
    } catch (error) {
      await this.git.raw(['revert', '--abort']).catch(() => undefined);
      throw new GitStateError(`could not revert ${commit.slice(0, 12)}: ${firstLine(error)}`, {
        cause: error,
      });
    }
    return (await this.head())!;
  }

  /** Author, subject and body of a commit (tests and the API answer read them). */
  async describe(commit: string): Promise<{ author: string; message: string }> {
    const out = await this.git.raw(['log', '-1', '--format=%an%x00%B', commit]);
    const [author = '', message = ''] = out.split('\0');
    return { author, message: message.trim() };
  }
}

function authorLine(author: CommitAuthor): string {
  const name = author.name.replace(/[<>\n]/g, '');
  return `${name} <${name.replace(/[^\w.-]/g, '-')}@modelcenter.invalid>`;
}

function firstLine(error: unknown): string {
  return (
    describeError(error)
      .split('\n')
      .map((l) => l.trim())
      .find(Boolean) ?? 'git failed'
  );
}
