import { rm } from 'node:fs/promises';
import path from 'node:path';
import { createTwoFilesPatch } from 'diff';
import type { ApplyReport } from '../apply/controller.js';
import { deploymentIds } from '../apply/controller.js';
import { buildFromTexts } from '../compile/build.js';
import { writeFileAtomically } from '../shared/fs.js';
import type { CommitAuthor, PolicyRepo } from '../gitstate/policy-repo.js';
import { formatProblem } from '../policy/problems.js';
import type { PolicySet } from '../policy/policy-set.js';
import { literalSecrets } from '../policy/rules.js';
import { maskSecretsInText } from '../policy/secrets.js';
import { InputError, ModelCenterError } from '../shared/errors.js';
import type { PolicyEditor, PolicyTexts } from './policy-edit.js';

/**
 * A change to the policies proposed through the API: planned (validated and compiled in memory,
 * nothing written), then — unless it is a dry run — written, committed by its author, and taken
 * by the normal apply path. An apply that does not go live reverts the commit, so the policy
 * repository never asks for a config that is not served.
 */

export interface ProposalPlan {
  /** What the change does, in a line (the commit subject). */
  what: string;
  valid: boolean;
  problems: string[];
  warnings: string[];
  /** Each changed policy file, as a unified diff. */
  files: { file: string; diff: string }[];
  /** Deployments the compiled config gains and loses. */
  added: string[];
  removed: string[];
}

export type ProposalResult =
  | { dryRun: true; plan: ProposalPlan }
  | {
      dryRun: false;
      plan: ProposalPlan;
      /** The policy commit; absent when the proposal changed nothing. */
      commit?: string;
      /** The commit that reverted it, when the apply did not go live. */
      reverted?: string;
      apply?: ApplyReport;
    };

/** The proposal leaves the policies invalid: nothing was written or committed. */
export class ProposalInvalidError extends ModelCenterError {
  constructor(readonly plan: ProposalPlan) {
    super(
      `the change is refused, nothing was committed: ${plan.problems.length} problem(s) in the policies it would make:\n${plan.problems.map((p) => `  ${p}`).join('\n')}`,
    );
  }
}

export function planProposal(
  what: string,
  policies: PolicyTexts,
  editor: PolicyEditor,
): ProposalPlan & { set: PolicySet } {
  const before = buildFromTexts(policies.loaded);
  const after = buildFromTexts(editor.proposedTexts());
  // The diff is answered (dry runs, refusals): a literal secret someone sent, or one already in a
  // file, is shown masked there as everywhere else.
  const secrets = [...literalSecrets(before.set), ...literalSecrets(after.set)];
  const old = new Set(deploymentIds(before.config));
  const now = new Set(deploymentIds(after.config));
  return {
    what,
    valid: after.findings.errors.length === 0,
    problems: after.findings.errors.map(formatProblem),
    warnings: after.findings.warnings.map(formatProblem),
    files: [...editor.edits].map(([file, text]) => ({
      file,
      diff: maskSecretsInText(
        createTwoFilesPatch(
          `policies/${file}`,
          `policies/${file}`,
          editor.before(file) ?? '',
          text,
        ),
        secrets,
      ),
    })),
    added: after.config ? [...now].filter((id) => !old.has(id)) : [],
    removed: after.config ? [...old].filter((id) => !now.has(id)) : [],
    set: after.set,
  };
}

export interface CarryOut {
  repo: PolicyRepo;
  /**
   * The normal apply path (validated, compiled, committed, reloaded, verified, rolled back), with
   * `before` — writing and committing the policy change — run inside its lock.
   */
  apply: (before: () => Promise<void>) => Promise<ApplyReport>;
  author: CommitAuthor;
  reason: string | undefined;
  dryRun: boolean;
  /** Runs once the change is known valid, before anything is written (a secret to store). */
  beforeWrite?: () => Promise<void>;
}

/** Plans, and unless a dry run: writes, commits, applies; reverts when the apply did not go live. */
export async function carryOut(
  what: string,
  policies: PolicyTexts,
  editor: PolicyEditor,
  options: CarryOut,
): Promise<ProposalResult> {
  const plan = withoutSet(planProposal(what, policies, editor));
  if (options.dryRun) return { dryRun: true, plan };
  if (!plan.valid) throw new ProposalInvalidError(plan);
  if (editor.edits.size === 0) return { dryRun: false, plan };
  let commit: string | undefined;
  const write = async (): Promise<void> => {
    await options.beforeWrite?.();
    const files: string[] = [];
    for (const [file, text] of editor.edits) {
      const absolute = editor.absolute(file);
      if (path.relative(policies.dir, absolute).startsWith('..')) {
        throw new InputError(`refusing to write ${file} outside the policies directory`);
      }
      await writeFileAtomically(absolute, text);
      files.push(absolute);
    }
    try {
      commit = await options.repo.commit(
        files,
        commitMessage(what, options.reason, options.author),
        options.author,
      );
    } catch (error) {
      // Git refused: the files go back as they were, so nothing is half-applied.
      for (const file of editor.edits.keys()) {
        const before = editor.before(file);
        if (before === undefined) await rm(editor.absolute(file), { force: true });
        else await writeFileAtomically(editor.absolute(file), before);
      }
      throw error;
    }
  };
  let apply: ApplyReport;
  try {
    apply = await options.apply(write);
  } catch (error) {
    // Committed, but the apply did not run to its end: the commit must not go live later
    // behind the caller's back (the next trigger would apply it).
    if (commit) {
      await options.repo.revert(
        commit,
        `The apply did not complete: ${error instanceof Error ? error.message : String(error)}`,
        options.author,
      );
    }
    throw error;
  }
  if (!commit) return { dryRun: false, plan, apply };
  if (apply.outcome === 'applied' || apply.outcome === 'unchanged') {
    return { dryRun: false, plan, commit, apply };
  }
  const reverted = await options.repo.revert(
    commit,
    `The apply did not go live (${apply.outcome}): ${apply.problems.join('; ') || 'see the apply report'}`,
    options.author,
  );
  return { dryRun: false, plan, commit, reverted, apply };
}

/** The plan as answered (the proposed policy set stays inside). */
export function withoutSet(plan: ProposalPlan & { set: PolicySet }): ProposalPlan {
  return {
    what: plan.what,
    valid: plan.valid,
    problems: plan.problems,
    warnings: plan.warnings,
    files: plan.files,
    added: plan.added,
    removed: plan.removed,
  };
}

/** What, why (the caller's `reason`) and who asked. Pure. */
export function commitMessage(
  what: string,
  reason: string | undefined,
  author: CommitAuthor,
): string {
  return [
    what,
    '',
    // Free text from the API goes into git: a key pasted into it is masked like everywhere else.
    reason?.trim() ? `Reason: ${maskSecretsInText(reason.trim())}` : 'Reason: (none given)',
    '',
    `Requested-By: ${author.name}`,
    'Changed-Through: modelcenter API',
  ].join('\n');
}
