import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { errorBodySchema } from '../../src/api/server.js';
import { SECRET_STORE_FILE } from '../../src/secrets/local-store.js';
import { openDatabase } from '../../src/store/db.js';
import { callIdCounts } from '../../src/store/ledger.js';
import { commitPolicies, git } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { spendPolicies } from '../helpers/spend.js';
import { allFakes, newKeys, startFakes, type Fakes } from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';
import { causeChain, trafficClient } from '../helpers/traffic.js';

vi.setConfig({ testTimeout: scaled(360_000) });

/** Room for the repository, the embedded ledger (about 40 MB) and the spool, and no more. */
const TMPFS_MB = 160;

/** Steady chat traffic that keeps every answered request's x-litellm-call-id. */
function callTraffic(client: OpenAI, loops = 2) {
  const answered: string[] = [];
  const failed: string[] = [];
  let running = true;
  const loop = async (): Promise<void> => {
    for (let n = 0; running && n < 20_000; n++) {
      try {
        const { data, response } = await client.chat.completions
          .create({ model: 'fast', messages: [{ role: 'user', content: 'hi' }] })
          .withResponse();
        const callId = response.headers.get('x-litellm-call-id');
        if (callId && data.choices[0]?.message.content?.includes('reply from'))
          answered.push(callId);
        else failed.push(`unexpected answer ${JSON.stringify(data.choices[0])}`);
      } catch (error) {
        failed.push(causeChain(error));
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const loops$ = Array.from({ length: loops }, () => loop());
  return {
    answered,
    failed,
    stop: async () => {
      running = false;
      await Promise.all(loops$);
    },
  };
}

/** Fills the file system holding `dir` to the last block (big chunks, then the crumbs). */
function fillDisk(dir: string): void {
  for (const [name, bs] of [
    ['filler-big', '1M'],
    ['filler-small', '4k'],
  ] as const) {
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${path.join(dir, name)}`, `bs=${bs}`], {
        stdio: 'ignore',
      });
    } catch {
      // dd ends with "No space left on device": that is the point
    }
  }
}

function freeKb(dir: string): number {
  const line = execFileSync('df', ['-k', '--output=avail', dir], { encoding: 'utf8' });
  return Number(line.trim().split('\n').at(-1));
}

/** Files an interrupted write-to-temp-then-rename would leave behind. */
async function temporaryFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.filter((e) => e.endsWith('.tmp') && !e.includes('.git/'));
}

/**
 * The policy repo and its state directory (spool, ledger, secret store, nginx conf) on a small
 * tmpfs that fills up under steady traffic and during an apply: requests are answered, nothing
 * is lost or half-written, the controller says the disk is full once, and everything converges
 * once space is freed.
 */
describe('a full disk under the policy repo and state directory (real LiteLLM, nginx, git)', () => {
  const keys = newKeys();
  const admin = testKey('mc-admin-');
  let fakes: Fakes | undefined;
  let mountDir = '';
  let mounted = false;
  let running: ServingInProcess | undefined;

  beforeAll(async () => {
    mountDir = await mkdtemp(path.join(tmpdir(), 'mc-disk-full-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_MB}m`, 'tmpfs', mountDir], {
        stdio: 'pipe',
      });
      mounted = true;
    } catch (error) {
      throw new Error(
        `this test needs root (it mounts a ${TMPFS_MB} MB tmpfs to fill it): mount -t tmpfs refused — ${causeChain(error)}. Run it as root (the CI does).`,
      );
    }
    fakes = await startFakes(keys);
  });
  afterAll(async () => {
    running?.stop();
    await running?.exit.catch(() => undefined);
    if (fakes) await Promise.all(allFakes(fakes).map((f) => f.close()));
    if (mounted) {
      try {
        execFileSync('umount', [mountDir], { stdio: 'pipe' });
      } catch {
        execFileSync('umount', ['-l', mountDir], { stdio: 'pipe' }); // still busy: detach it
      }
    }
    await rmdir(mountDir).catch(() => undefined);
  });

  it('keeps answering, refuses the apply cleanly, says so once, and after space is freed has every answered request in the ledger once, applies and restarts', async () => {
    const repo = path.join(mountDir, 'repo');
    await mkdir(path.join(repo, 'policies'), { recursive: true });
    git(repo, 'init', '-q', '-b', 'main');
    await writeFile(path.join(repo, 'policies', 'scenario.yaml'), spendPolicies(fakes!));
    await writeFile(path.join(repo, '.gitignore'), '.modelcenter/\n');
    git(repo, 'add', '-A');
    git(repo, 'commit', '-q', '-m', 'policies: initial');

    // Applies only when asked, so the policy commit below waits for the API.
    const { env, port, apiPort } = await serveEnv(
      keys,
      { admin },
      { MODELCENTER_POLL_SECONDS: '3600' },
    );
    running = serveInProcess(repo, env);
    await running.started();
    const api = `http://127.0.0.1:${apiPort}`;
    const headers = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
    const getJson = async <T>(route: string): Promise<T> =>
      (await (await fetch(`${api}${route}`, { headers })).json()) as T;
    const reportedRequests = async (): Promise<number> =>
      (await getJson<{ total: { requests: number } }>('/v1/spend/report?since=1h&groupBy=model'))
        .total.requests;

    const traffic = callTraffic(trafficClient(`http://127.0.0.1:${port}`, keys.master));
    try {
      await until(() => Promise.resolve(traffic.answered.length >= 20 || undefined));
      const policyCommit = await commitPolicies(
        repo,
        spendPolicies(fakes!).replace('  retries: 0\n', '  retries: 1\n'),
        'policies: one retry',
      );
      const headBefore = git(repo, 'rev-parse', 'HEAD');
      const configBefore = await readFile(path.join(repo, 'litellm', 'config.yaml'), 'utf8');

      fillDisk(mountDir);
      expect(freeKb(mountDir)).toBe(0);
      const answeredWhenFull = traffic.answered.length;
      // Spool writes (and ledger inserts, when a page fills) fail for a while under traffic.
      await until(() =>
        Promise.resolve(traffic.answered.length >= answeredWhenFull + 50 || undefined),
      );

      // The apply: refused with the disk named, nothing half-written, git not wedged.
      const apply = await fetch(`${api}/v1/apply`, { method: 'POST', headers, body: '{}' });
      expect(apply.status).toBe(507);
      const { error } = errorBodySchema.parse(await apply.json());
      expect(error.code).toBe('disk_full');
      expect(error.message).toContain(`the disk holding ${repo} is full`);
      expect(error.message).toContain('litellm/config.yaml and the policies are as they were');
      expect(git(repo, '--no-optional-locks', 'status', '--porcelain')).toBe('');
      expect(git(repo, 'rev-parse', 'HEAD')).toBe(headBefore);
      expect(await readFile(path.join(repo, 'litellm', 'config.yaml'), 'utf8')).toBe(configBefore);
      expect(await temporaryFiles(repo)).toEqual([]);

      // A credential rotation: refused as a full disk; the secret store is as it was.
      const storeFile = path.join(repo, '.modelcenter', SECRET_STORE_FILE);
      const storeBefore = await readFile(storeFile, 'utf8').catch(() => 'absent');
      const newKey = testKey();
      fakes!.openai.acceptKeys([keys.openai, newKey]);
      const rotate = await fetch(`${api}/v1/credentials/openai/rotate`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ value: newKey }),
      });
      expect(rotate.status).toBe(507);
      const rotateBody = await rotate.text();
      expect(errorBodySchema.parse(JSON.parse(rotateBody)).error.code).toBe('disk_full');
      expect(rotateBody).not.toContain(newKey);
      expect(await readFile(storeFile, 'utf8').catch(() => 'absent')).toBe(storeBefore);
      expect(await temporaryFiles(path.join(repo, '.modelcenter'))).toEqual([]);

      // The controller runs and tells the truth: alive, still serving, the disk full in status.
      expect((await fetch(`${api}/healthz`)).status).toBe(200);
      expect((await fetch(`${api}/readyz`)).status).toBe(200);
      const status = await getJson<{
        disk: { full: boolean; dir: string };
        spend: { ingestion: { failing: boolean; diskFull?: boolean } };
        lastApply: { outcome: string };
      }>('/v1/status');
      expect(status.disk).toMatchObject({ full: true, dir: path.join(repo, '.modelcenter') });
      // Ingestion fails only when the ledger needs a new page (the spool has nothing new then).
      if (status.spend.ingestion.failing) expect(status.spend.ingestion.diskFull).toBe(true);
      expect(status.lastApply.outcome).toBe('failed');
      await new Promise((r) => setTimeout(r, 3000));
      const failureLines = running
        .logs()
        .split('\n')
        .filter((line) => /spool ingestion failed|budget check failed|handler failed/.test(line));
      // Said once, not once a second; and never an unexplained internal error.
      expect(failureLines.length).toBeLessThanOrEqual(2);
      for (const line of failureLines) expect(line).toContain('the disk is full');

      // Space again: everything answered reaches the ledger, the apply goes through.
      await rm(path.join(mountDir, 'filler-big'));
      await rm(path.join(mountDir, 'filler-small'));
      await new Promise((r) => setTimeout(r, 2000));
      await traffic.stop();
      expect(traffic.failed).toEqual([]);
      const answered = traffic.answered.length;
      await until(async () => ((await reportedRequests()) >= answered ? true : undefined));
      expect(await reportedRequests()).toBe(answered);
      if (failureLines.some((l) => l.includes('spool ingestion')))
        expect(running.logs()).toContain('spool ingestion works again');

      const retry = await fetch(`${api}/v1/apply`, { method: 'POST', headers, body: '{}' });
      expect(retry.status).toBe(200);
      expect(await retry.json()).toMatchObject({ outcome: 'applied' });
      expect(git(repo, 'rev-parse', 'HEAD~1')).toBe(policyCommit);
      expect(git(repo, 'status', '--porcelain')).toBe('');

      running.stop();
      expect(await running.exit).toBe(0);
      running = undefined;
      // Exactly the answered requests, each once; nothing dead-lettered or reported lost.
      const ledger = await openDatabase({ dataDir: path.join(repo, '.modelcenter', 'ledger') });
      try {
        const counts = await callIdCounts(ledger);
        expect([...counts.values()].filter((n) => n !== 1)).toEqual([]);
        expect(new Set(counts.keys())).toEqual(new Set(traffic.answered));
      } finally {
        await ledger.close();
      }
      const deadLetters = await readFile(
        path.join(repo, '.modelcenter', 'spend-dead-letter', 'dead-letter.jsonl'),
        'utf8',
      ).catch(() => '');
      expect(deadLetters).toBe('');
      const spoolFiles = await readdir(path.join(repo, '.modelcenter', 'spool'));
      // One per LiteLLM process that served (a few), not a new file per failed write.
      expect(spoolFiles.length).toBeLessThan(5);

      // A restart converges on the applied commit.
      const again = await serveEnv(keys, { admin }, { MODELCENTER_POLL_SECONDS: '3600' });
      running = serveInProcess(repo, again.env);
      await running.started();
      const restartedApi = `http://127.0.0.1:${again.apiPort}`;
      expect((await fetch(`${restartedApi}/readyz`)).status).toBe(200);
      const after = (await (await fetch(`${restartedApi}/v1/status`, { headers })).json()) as {
        lastKnownGood: string;
        disk: { full: boolean };
      };
      expect(after.lastKnownGood).toBe(git(repo, 'rev-parse', 'HEAD'));
      expect(after.disk.full).toBe(false);
    } finally {
      await traffic.stop();
    }
  });
});
