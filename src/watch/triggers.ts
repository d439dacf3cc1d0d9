import type { Controller } from '../apply/controller.js';
import type { RunApply } from '../apply/subsystem.js';
import type { Route } from '../api/server.js';
import type { Logger } from '../log/logger.js';
import type { JobRun } from '../scheduler/subsystem.js';
import type { Settings } from '../settings/settings.js';
import { FailureStreak } from '../shared/failure-streak.js';
import type { Subsystem } from '../shared/subsystem.js';
import { PolicyWatcher } from './policy-watcher.js';

export interface TriggerDeps {
  controller: Controller;
  settings: Pick<Settings, 'policies' | 'pollSeconds' | 'watch'>;
  /** The `watch` child logger. */
  log: Logger;
  run: RunApply;
  /** The policies' provenance read before the first apply, so a commit during it counts. */
  seenAtStart: string;
}

/**
 * Triggers: an apply on every new policy commit (or uncommitted edit), polled, and in dev mode
 * (`MODELCENTER_WATCH`) on file changes.
 */
export async function startTriggers(deps: TriggerDeps): Promise<Subsystem<Route, JobRun>> {
  const triggers = new Triggers(deps.controller, deps.settings, deps.log, deps.run);
  await triggers.start(deps.seenAtStart);
  return { stop: () => triggers.stop() };
}

/** Applies on every new policy commit (or uncommitted edit) and, in dev mode, on file changes. */
class Triggers {
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();
  private watcher: PolicyWatcher | undefined;
  private wake: (() => void) | undefined;
  /** An apply that fails on every poll (a full disk, a git lock) is logged once, not every poll. */
  private readonly failures: FailureStreak;

  constructor(
    private readonly controller: Controller,
    private readonly settings: TriggerDeps['settings'],
    private readonly log: Logger,
    private readonly run: RunApply,
  ) {
    this.failures = new FailureStreak(log, 'policy trigger', { level: 'error' });
  }

  /** `seen`: the policies' provenance read before the first apply, so a commit during it counts. */
  async start(seenAtStart: string): Promise<void> {
    let seen = seenAtStart;
    this.loop = (async () => {
      while (!this.stopped) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.settings.pollSeconds * 1000);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        if (this.stopped) break;
        try {
          const provenance = await this.controller.state.provenance(this.settings.policies);
          const now = JSON.stringify(provenance);
          if (now === seen) continue;
          const before = JSON.parse(seen || '{}') as { commit?: string };
          if (
            this.controller.policySource === 'committed' &&
            seen !== '' &&
            before.commit === provenance.commit
          ) {
            // Only the files on disk changed: not the desired state until committed.
            if (provenance.dirty) {
              this.log.warn(
                { policyCommit: provenance.commit },
                'uncommitted policy edits are not applied: commit them to apply (or set MODELCENTER_WATCH=true for dev mode)',
              );
            }
            seen = now;
            continue;
          }
          await this.run('policy-commit', () => this.controller.apply());
          seen = now; // only once handled: an apply that threw is tried again next time
          this.failures.succeeded();
        } catch (error) {
          this.failures.failed(error);
        }
      }
    })();
    if (this.settings.watch) {
      this.watcher = new PolicyWatcher({
        policiesDir: this.settings.policies,
        onChange: async () => {
          await this.run('watch', () => this.controller.apply());
        },
        onInvalid: (problems) =>
          this.log.warn({ problems }, 'policy edit is invalid: the last good policies stay live'),
      });
      await this.watcher.start().catch(async (error: unknown) => {
        await this.stop();
        throw error;
      });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.watcher?.close();
    await this.loop;
  }
}
