import path from 'node:path';
import { stringify } from 'yaml';
import type { ApplyReport } from '../apply/controller.js';
import { commitPolicyFile } from '../gitstate/policy-commit.js';
import type { HealthOverlay } from '../policy/schema.js';
import { readIfExists } from '../shared/fs.js';
import type { ProviderMove } from './decide.js';

/** The controller's own policy file: nobody else writes it (its commits say so). */
export const OVERLAY_FILE = 'modelcenter-health.yaml';

/** Marks the overlay's commits, so `git log --grep` finds every health move. */
export const OVERLAY_TRAILER = 'Health-Overlay: modelcenter';

const HEADER = `# Written by Model Center's health controller (src/health/). Do not edit by hand: it is
# rewritten when a provider is demoted or restored, or when measurements reorder a profile.
# Every change is its own commit ("modelcenter health: …"); revert one to undo it.
`;

/** Pure: the overlay → the file's text, byte-stable (sorted keys, no timestamps but `since`). */
export function renderOverlay(overlay: HealthOverlay): string {
  return HEADER + stringify({ health_overlay: overlay }, { sortMapEntries: true, lineWidth: 0 });
}

export interface OverlayChange {
  demote: ProviderMove[];
  restore: ProviderMove[];
  /** Profiles reordered by measurements, each with its reasons. */
  rerank: { profile: string; why: string[] }[];
}

/** Pure: the commit message of one overlay change (STYLE §12: messages from the plan). */
export function overlayCommitMessage(change: OverlayChange): string {
  const parts = [
    ...change.demote.map((m) => `demote ${m.provider}`),
    ...change.restore.map((m) => `restore ${m.provider}`),
    ...(change.rerank.length > 0
      ? [`reorder ${change.rerank.map((r) => r.profile).join(', ')} by measurements`]
      : []),
  ];
  const body = [
    ...change.demote.map((m) => `Demoted ${m.provider} to the end of every profile: ${m.reason}.`),
    ...change.restore.map((m) => `Restored ${m.provider}: ${m.reason}.`),
    ...change.rerank.flatMap((r) => [`Profile ${r.profile}:`, ...r.why.map((w) => `  ${w}`)]),
  ];
  return [`modelcenter health: ${parts.join('; ')}`, '', ...body, '', OVERLAY_TRAILER].join('\n');
}

export interface OverlayWrite {
  commit: string | undefined;
  report: ApplyReport;
  /** The apply did not go live: the overlay commit was reverted by another commit. */
  reverted: boolean;
}

/**
 * Commits the overlay to the policy repository and applies it through the normal apply path
 * (validated, compiled, reloaded, verified, rolled back on failure). When the apply does not go
 * live, the overlay file is put back by a second commit, so the policies and what LiteLLM serves
 * agree again.
 */
export class OverlayWriter {
  readonly file: string;

  constructor(
    policiesDir: string,
    private readonly apply: () => Promise<ApplyReport>,
  ) {
    this.file = path.join(policiesDir, OVERLAY_FILE);
  }

  async write(overlay: HealthOverlay, message: string): Promise<OverlayWrite> {
    const before = await readIfExists(this.file);
    const { commit } = await commitPolicyFile(this.file, renderOverlay(overlay), message);
    const report = await this.apply();
    if (report.outcome === 'applied' || report.outcome === 'unchanged') {
      return { commit, report, reverted: false };
    }
    await commitPolicyFile(
      this.file,
      before,
      [
        'modelcenter health: revert the overlay, its apply did not go live',
        '',
        `Apply outcome: ${report.outcome}.`,
        ...report.problems.map((p) => `  ${p}`),
        '',
        OVERLAY_TRAILER,
      ].join('\n'),
    );
    return { commit, report, reverted: true };
  }
}
