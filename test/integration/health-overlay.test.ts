import { appendFile, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ApplyReport } from '../../src/apply/controller.js';
import { buildFromDir } from '../../src/compile/build.js';
import { OverlayWriter, renderOverlay } from '../../src/health/overlay.js';
import { flapPolicies } from '../helpers/health-flap.js';
import { git, policyRepo } from '../helpers/repo.js';

/** The overlay's commits in a real policy repository, and what happens when its apply fails. */
describe('health: the overlay file and its commits', () => {
  let repo: string;
  beforeEach(async () => {
    repo = await policyRepo(flapPolicies('  evaluate_every: 1s'));
  });
  afterEach(async () => {
    await rm(repo, { recursive: true, force: true });
  });

  const overlay = {
    demoted: { flaky: { since: '2026-12-01T12:00:00.000Z', reason: 'failing for 130 s' } },
    measured: {},
  };

  it('commits only its own file, leaving what the user staged staged, and builds into the policies', async () => {
    await appendFile(path.join(repo, 'policies', 'scenario.yaml'), '# being edited\n');
    git(repo, 'add', 'policies/scenario.yaml');
    const writer = new OverlayWriter(path.join(repo, 'policies'), () =>
      Promise.resolve<ApplyReport>({ outcome: 'applied', problems: [] }),
    );
    const written = await writer.write(overlay, 'modelcenter health: demote flaky');
    expect(written.reverted).toBe(false);
    expect(git(repo, 'show', '--name-only', '--format=%s', 'HEAD').split('\n')).toEqual([
      'modelcenter health: demote flaky',
      '',
      'policies/modelcenter-health.yaml',
    ]);
    expect(git(repo, 'diff', '--cached', '--name-only')).toBe('policies/scenario.yaml');
    expect(git(repo, 'log', '-1', '--format=%an')).toBe('Model Center');
    const build = await buildFromDir(path.join(repo, 'policies'));
    expect(build.set.healthOverlay?.value.demoted.flaky?.reason).toBe('failing for 130 s');
  });

  it('an apply that does not go live is undone by a second commit', async () => {
    const writer = new OverlayWriter(path.join(repo, 'policies'), () =>
      Promise.resolve<ApplyReport>({
        outcome: 'rolled-back',
        problems: ['apply of 0123456789ab failed: verification failed'],
      }),
    );
    const file = path.join(repo, 'policies', 'modelcenter-health.yaml');
    const written = await writer.write(overlay, 'modelcenter health: demote flaky');
    expect(written.reverted).toBe(true);
    expect(git(repo, 'log', '--format=%s').split('\n')).toEqual([
      'modelcenter health: revert the overlay, its apply did not go live',
      'modelcenter health: demote flaky',
      'policies: initial',
    ]);
    expect(git(repo, 'log', '-1', '--format=%b')).toContain('verification failed');
    // The file did not exist before: it is gone again, and the tree is clean.
    await expect(readFile(file, 'utf8')).rejects.toThrow(/ENOENT/);
    expect(git(repo, 'status', '--porcelain')).toBe('');
    expect(renderOverlay(overlay)).toContain('flaky:');
  });
});
