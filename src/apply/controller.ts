import path from 'node:path';
import { buildFromCommitted, buildFromDir, type Build } from '../compile/build.js';
import type { LiteLLMConfig } from '../compile/litellm-config.js';
import { orderChanges, type OrderChange } from '../compile/order-changes.js';
import { parseRendered } from '../compile/render.js';
import { createTwoFilesPatch } from 'diff';
import { GitStateError, sha256, type Drift, type GitState } from '../gitstate/git-state.js';
import { applyCommitMessage, rollbackCommitMessage } from '../gitstate/messages.js';
import { formatProblem } from '../policy/problems.js';
import { describeVerify, verifyInstances, type VerifyReport } from '../reload/verify.js';
import { ReloadError, type ReloadStrategy } from '../reload/strategy.js';
import { describeError } from '../shared/errors.js';
import { Journal } from './journal.js';
import { MutationLock } from './lock.js';

export type ApplyOutcome = 'applied' | 'unchanged' | 'invalid' | 'drift' | 'rolled-back' | 'failed';

export interface ApplyReport {
  outcome: ApplyOutcome;
  /** The generated commit now live (applied/unchanged/rolled-back). */
  commit?: string;
  lastKnownGood?: string;
  /** What went wrong, in words a person can act on. */
  problems: string[];
  verify?: VerifyReport;
  /** LiteLLM's last lines when it failed to start, secrets masked. */
  litellmOutput?: string;
}

export interface Plan {
  valid: boolean;
  problems: string[];
  warnings: string[];
  /** The rendered config differs from the committed one. */
  changed: boolean;
  added: string[];
  removed: string[];
  /** Unified diff of the generated file, committed → planned. */
  diff: string;
  /** Profiles whose deployments would be tried in another order, and why (src/compile/order-changes.ts). */
  orderChanges: OrderChange[];
  drift: Drift;
}

export interface DriftReport extends Drift {
  /** What the live instances serve against the committed deployment set. */
  live: VerifyReport;
  /** An apply was running: `live` may show the change in progress and does not count as drift. */
  applying: boolean;
  drifted: boolean;
}

export interface ControllerOptions {
  policiesDir: string;
  state: GitState;
  strategy: ReloadStrategy;
  /** Where the lock and journal live. */
  stateDir: string;
  /**
   * Which policies an apply reads: `committed` (HEAD of the policies' repository — the desired
   * state; edits on disk are reported, not applied) or `working` (the files on disk: dev mode).
   */
  policySource?: 'committed' | 'working';
  /** Test hook: called after each step, so a test can kill the process at a precise point. */
  onStep?: (step: 'committed' | 'reloaded' | 'verified') => void | Promise<void>;
}

/**
 * validate → compile → commit → reload → verify, or restore last-known-good. All mutations go
 * through one lock; a crash between steps is recovered by `start()` on the next start.
 */
export class Controller {
  private readonly lock: MutationLock;
  private readonly journal: Journal;

  constructor(private readonly options: ControllerOptions) {
    this.lock = new MutationLock(path.join(options.stateDir, 'apply.lock'));
    this.journal = new Journal(path.join(options.stateDir, 'apply-journal.json'));
  }

  get state(): GitState {
    return this.options.state;
  }

  /** Where applies read the policies from (see ControllerOptions.policySource). */
  get policySource(): 'committed' | 'working' {
    return this.options.policySource ?? 'working';
  }

  /** The policies an apply would use now, built. */
  build(): Promise<Build> {
    return this.policySource === 'committed'
      ? buildFromCommitted(this.options.policiesDir)
      : buildFromDir(this.options.policiesDir);
  }

  /**
   * `before` runs inside the mutation lock, right before the apply: a policy commit made through
   * the API, so no other trigger applies it in between and the report is that change's own. When
   * it throws, nothing is applied.
   */
  apply(
    opts: { force?: boolean; reload?: boolean; before?: () => Promise<void> } = {},
  ): Promise<ApplyReport> {
    return this.lock.run(async () => {
      await opts.before?.();
      return this.applyLocked(opts);
    });
  }

  /** Resolves once every mutation queued so far has finished. */
  idle(): Promise<void> {
    return this.lock.settled();
  }

  /** What an apply would do now, without doing it: problems, drift, deployments added/removed. */
  async plan(): Promise<Plan> {
    const { state } = this.options;
    const build = await this.build();
    const committed = await state.committedConfig();
    const drift = await state.drift();
    const base = {
      problems: build.findings.errors.map(formatProblem),
      warnings: build.findings.warnings.map(formatProblem),
      drift,
    };
    if (!build.yaml || !build.config) {
      return {
        ...base,
        valid: false,
        changed: false,
        added: [],
        removed: [],
        diff: '',
        orderChanges: [],
      };
    }
    const change = changeBetween(idsOf(committed), deploymentIds(build.config));
    return {
      ...base,
      valid: true,
      changed: committed !== build.yaml,
      ...change,
      orderChanges: orderChanges(parseConfig(committed), build.set, build.config),
      diff:
        committed === build.yaml
          ? ''
          : createTwoFilesPatch(
              state.configPath,
              `${state.configPath} (planned)`,
              committed ?? '',
              build.yaml,
            ),
    };
  }

  /** Drift now: hand edits or foreign commits of the generated file, and live instances that do not serve the committed set. */
  async driftCheck(): Promise<DriftReport> {
    const { state } = this.options;
    const files = await state.drift();
    // Mid-apply the instances are changing on purpose: comparing them with HEAD would cry drift.
    const applying = this.lock.busy;
    const live = await this.verify(idsOf(await state.committedConfig()));
    return {
      ...files,
      live,
      applying,
      drifted:
        files.workingTreeEdited ||
        files.foreignCommit !== undefined ||
        (!applying && this.options.strategy.instances().length > 0 && !live.ok),
    };
  }

  /**
   * `/readyz`: every process is up and every instance serves the committed deployment set (while
   * an apply runs, the last-known-good set counts too: the switch is under way).
   */
  async readiness(): Promise<{ ready: boolean; reason?: string; live?: VerifyReport }> {
    const { state, strategy } = this.options;
    const health = strategy.readiness?.() ?? { ready: true };
    if (!health.ready) return { ready: false, reason: health.reason ?? 'not ready' };
    if (strategy.instances().length === 0) {
      return { ready: false, reason: 'no LiteLLM instance is running' };
    }
    const live = await this.verify(idsOf(await state.committedConfig()));
    if (live.ok) return { ready: true, live };
    if (this.lock.busy) {
      const lkg = await state.lastKnownGood();
      const before = await this.verify(idsOf(lkg ? await state.committedConfig(lkg) : undefined));
      if (before.ok) return { ready: true, live: before };
    }
    return {
      ready: false,
      reason: `the live instances do not serve the committed deployment set: ${describeVerify(live)}`,
      live,
    };
  }

  /**
   * Returns to `to` (a generated commit) or to last-known-good. A target that is not one generated
   * commit is refused with RevisionError before anything is locked or recorded: it is a wrong
   * request, not a failed rollback.
   */
  async rollback(to?: string): Promise<ApplyReport> {
    const target = to === undefined ? undefined : await this.options.state.generatedCommit(to);
    return this.lock.run(() => this.rollbackLocked(target));
  }

  /**
   * Start-up, and recovery after a crash mid-apply (the journal says so): nothing may be live,
   * or the live instances may not match HEAD. Apply the current policies and reload whatever the
   * outcome of the commit step; if the policies are invalid, or git refuses the commit (a lock
   * left behind), serve the committed config. `commitFailed`: the policies wait for the next
   * trigger to be applied.
   */
  start(): Promise<ApplyReport & { recovered: boolean; commitFailed: boolean }> {
    return this.lock.run(async () => {
      const entry = await this.journal.read();
      const recovered = entry !== undefined;
      if (entry?.phase === 'committing') await this.undoInterruptedWrite(entry.configSha256);
      const { state } = this.options;
      let report: ApplyReport;
      let commitFailed = false;
      try {
        report = await this.applyLocked({ reload: true });
      } catch (error) {
        if (!(error instanceof GitStateError)) throw error;
        commitFailed = true;
        report = {
          outcome: 'failed',
          problems: [error.message],
          lastKnownGood: await state.lastKnownGood(),
        };
      }
      // Drift: a hand edit on disk is never served nor overwritten silently; the report says so.
      if (report.outcome !== 'invalid' && !commitFailed)
        return { ...report, recovered, commitFailed };
      // The commit that made the committed config, not HEAD (a later policy commit did not).
      const commit = (await state.lastConfigCommit()) ?? (await state.head());
      const text = await state.committedConfig();
      if (!commit || text === undefined) return { ...report, recovered, commitFailed };
      const served = await this.reloadAndVerify(commit, text, 'serving the committed config');
      return {
        ...served,
        problems: [...report.problems, ...served.problems],
        recovered,
        commitFailed,
      };
    });
  }

  /** A crash between writing the generated file and committing it: put the committed one back. */
  private async undoInterruptedWrite(writtenSha256: string | undefined): Promise<void> {
    const { state } = this.options;
    const working = await state.workingConfig();
    const committed = await state.committedConfig();
    if (!writtenSha256 || working === undefined || working === committed) return;
    if (sha256(working) === writtenSha256) await state.restoreConfig(committed);
  }

  /**
   * The commit step, journalled. When git refuses it the file is already back as it was: nothing
   * changed, so the journal is cleared and GitStateError (git's message) goes to the caller.
   */
  private async commitStep(
    kind: 'apply' | 'rollback',
    text: string,
    message: string,
  ): Promise<{ commit: string; changed: boolean }> {
    await this.journal.write({
      phase: 'committing',
      kind,
      configSha256: sha256(text),
      startedAt: new Date().toISOString(),
      pid: process.pid,
    });
    try {
      return await this.options.state.commitConfig(text, message);
    } catch (error) {
      await this.journal.clear();
      throw error;
    }
  }

  private async applyLocked(opts: { force?: boolean; reload?: boolean }): Promise<ApplyReport> {
    const { state, policiesDir } = this.options;
    const build = await this.build();
    if (!build.yaml || !build.config) {
      return {
        outcome: 'invalid',
        problems: build.findings.errors.map(formatProblem),
        lastKnownGood: await state.lastKnownGood(),
      };
    }
    const drift = await state.drift();
    if (!opts.force && (drift.workingTreeEdited || drift.foreignCommit)) {
      return {
        outcome: 'drift',
        problems: [
          drift.workingTreeEdited
            ? `${state.configPath} was edited by hand and differs from its last commit — move the change into the policies, or apply with --force to overwrite it`
            : `${state.configPath} was last changed by commit ${drift.foreignCommit?.slice(0, 12)}, not by Model Center — move the change into the policies, or apply with --force`,
        ],
        lastKnownGood: await state.lastKnownGood(),
      };
    }
    const previous = idsOf(await state.committedConfig());
    const provenance = await state.provenance(policiesDir);
    const hash = sha256(build.yaml);
    const { commit, changed } = await this.commitStep(
      'apply',
      build.yaml,
      applyCommitMessage({
        policyCommit: provenance.commit,
        // Committed policies were applied: edits on disk are not in this config.
        policiesDirty: this.policySource === 'working' && provenance.dirty,
        configSha256: hash,
        change: changeBetween(previous, deploymentIds(build.config)),
      }),
    );
    await this.options.onStep?.('committed');
    // An instance that is down (supervision restarting it, or given up) is reloaded, not `unchanged`.
    const live =
      this.options.strategy.instances().length > 0 &&
      (this.options.strategy.readiness?.().ready ?? true);
    if (!changed && live && !opts.reload && (await state.lastKnownGood()) === commit) {
      await this.journal.clear();
      return { outcome: 'unchanged', commit, lastKnownGood: commit, problems: [] };
    }
    return this.reloadAndVerify(commit, build.yaml, 'apply', { force: opts.reload === true });
  }

  /** `to`: a generated commit checked by `rollback`; undefined for last-known-good. */
  private async rollbackLocked(to?: string): Promise<ApplyReport> {
    const { state } = this.options;
    const target = to ?? (await state.lastKnownGood());
    if (!target) {
      return {
        outcome: 'failed',
        problems: ['there is no last-known-good commit yet: apply successfully once first'],
      };
    }
    const text = await state.committedConfig(target);
    if (text === undefined) {
      return {
        outcome: 'failed',
        problems: [
          `commit ${target.slice(0, 12)} has no ${state.configPath}: pick a generated commit (modelcenter status lists them)`,
        ],
      };
    }
    if (await this.isLive(text)) {
      // Already served and verified: nothing to commit, nothing to reload.
      const live = (await state.lastConfigCommit()) ?? target;
      return { outcome: 'unchanged', commit: live, lastKnownGood: live, problems: [] };
    }
    const { commit } = await this.commitStep(
      'rollback',
      text,
      rollbackCommitMessage({ target, reason: 'Requested rollback.', configSha256: sha256(text) }),
    );
    return this.reloadAndVerify(commit, text, 'rollback');
  }

  /**
   * `text` is what every instance serves now: it is the committed config (and on disk), the last
   * apply verified it (last-known-good holds the same content), and every process is up.
   */
  private async isLive(text: string): Promise<boolean> {
    const { state, strategy } = this.options;
    if (strategy.instances().length === 0 || !(strategy.readiness?.().ready ?? true)) return false;
    const lkg = await state.lastKnownGood();
    return (
      lkg !== undefined &&
      (await state.committedConfig()) === text &&
      (await state.committedConfig(lkg)) === text &&
      (await state.workingConfig()) === text
    );
  }

  /** Every instance serves exactly `intended`, besides what the strategy says it does not own. */
  private verify(intended: readonly string[]): Promise<VerifyReport> {
    const { strategy } = this.options;
    return verifyInstances(strategy.instances(), intended, strategy.ownedElsewhere?.bind(strategy));
  }

  /** Reload `text` (committed as `commit`), verify; on failure restore last-known-good and verify that. */
  private async reloadAndVerify(
    commit: string,
    text: string,
    why: string,
    options: { force?: boolean } = {},
  ): Promise<ApplyReport> {
    const { state, strategy } = this.options;
    await this.journal.write({
      phase: 'reloading',
      kind: 'apply',
      commit,
      startedAt: new Date().toISOString(),
      pid: process.pid,
    });
    const intended = idsOf(text);
    let failure: string | undefined;
    let output: string | undefined;
    let verify: VerifyReport | undefined;
    try {
      await strategy.reload(state.configFile, intended, options);
      await this.options.onStep?.('reloaded');
      verify = await this.verify(intended);
      if (!verify.ok) failure = `verification failed: ${describeVerify(verify)}`;
    } catch (error) {
      failure =
        error instanceof ReloadError ? error.message : `reload failed: ${describeError(error)}`;
      output = error instanceof ReloadError ? error.output : undefined;
    }
    if (!failure) {
      await state.setLastKnownGood(commit);
      await this.options.onStep?.('verified');
      await this.journal.clear();
      return { outcome: 'applied', commit, lastKnownGood: commit, problems: [], verify };
    }
    return this.restoreLastKnownGood(
      commit,
      `${why} of ${commit.slice(0, 12)} failed: ${failure}`,
      verify,
      output,
    );
  }

  private async restoreLastKnownGood(
    failed: string,
    cause: string,
    verify: VerifyReport | undefined,
    output: string | undefined,
  ): Promise<ApplyReport> {
    const { state, strategy } = this.options;
    const lkg = await state.lastKnownGood();
    const lkgText = lkg ? await state.committedConfig(lkg) : undefined;
    if (!lkg || lkgText === undefined || lkg === failed) {
      await this.journal.clear();
      return {
        outcome: 'failed',
        commit: failed,
        problems: [cause, 'no last-known-good config to return to: LiteLLM may be down'],
        verify,
        litellmOutput: output,
      };
    }
    let commit: string;
    try {
      ({ commit } = await state.commitConfig(
        lkgText,
        rollbackCommitMessage({ target: lkg, reason: cause, configSha256: sha256(lkgText) }),
      ));
    } catch (error) {
      if (!(error instanceof GitStateError)) throw error;
      await this.journal.clear();
      return {
        outcome: 'failed',
        commit: failed,
        lastKnownGood: lkg,
        problems: [cause, `returning to last-known-good failed: ${error.message}`],
        verify,
        litellmOutput: output,
      };
    }
    const problems = [cause];
    try {
      const lkgIds = idsOf(lkgText);
      await strategy.reload(state.configFile, lkgIds);
      const again = await this.verify(lkgIds);
      if (!again.ok)
        problems.push(`last-known-good did not verify either: ${describeVerify(again)}`);
    } catch (error) {
      problems.push(`restoring last-known-good failed too: ${describeError(error)}`);
    }
    await this.journal.clear();
    return {
      outcome: problems.length === 1 ? 'rolled-back' : 'failed',
      commit,
      lastKnownGood: await state.lastKnownGood(),
      problems,
      verify,
      litellmOutput: output,
    };
  }
}

/** Deployment ids of a rendered config; the last few texts are remembered (YAML parsing of 1,000 deployments costs ~100 ms). */
const idsMemo = new Map<string, string[]>();
function idsOf(text: string | undefined): string[] {
  if (text === undefined) return [];
  const known = idsMemo.get(text);
  if (known) return known;
  const ids = deploymentIds(parseConfig(text));
  if (idsMemo.size >= 4) idsMemo.delete(idsMemo.keys().next().value!);
  idsMemo.set(text, ids);
  return ids;
}

function parseConfig(text: string | undefined): LiteLLMConfig | undefined {
  return text === undefined ? undefined : parseRendered(text);
}

export function deploymentIds(config: LiteLLMConfig | undefined): string[] {
  return (config?.model_list ?? []).map((d) => d.model_info.id).sort();
}

function changeBetween(
  before: readonly string[],
  after: readonly string[],
): { added: string[]; removed: string[] } {
  const old = new Set(before);
  const now = new Set(after);
  return {
    added: [...now].filter((id) => !old.has(id)),
    removed: [...old].filter((id) => !now.has(id)),
  };
}
