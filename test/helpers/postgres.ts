import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../src/litellm/process.js';

const run = promisify(execFile);

export interface PostgresCluster {
  url: string;
  stop(): Promise<void>;
  /** kill -9 of the server and every backend (a crash or an OOM kill): nothing shuts down cleanly. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and data directory (after `kill`). */
  start(): Promise<void>;
}

/** The newest Debian PostgreSQL bin directory (installed by .ci/install-system-packages.sh), or MODELCENTER_PG_BIN. */
export function postgresBin(): string {
  if (process.env.MODELCENTER_PG_BIN) return process.env.MODELCENTER_PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(path.join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0)
    throw new Error(
      'PostgreSQL is not installed: run bash .ci/install-system-packages.sh (apt-get install postgresql)',
    );
  return path.join(root, versions[0]!, 'bin');
}

/**
 * A throw-away PostgreSQL cluster in a temp directory on a free loopback port, trust auth, no
 * fsync. initdb refuses to run as root, so as root it runs as the `postgres` user (runuser).
 */
export async function startPostgres(): Promise<PostgresCluster> {
  const bin = postgresBin();
  const dir = await mkdtemp(path.join(tmpdir(), 'modelcenter-pg-'));
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const uid = Number(stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    await chown(dir, uid, gid);
    await chmod(dir, 0o700);
  }
  const exec = (tool: string, args: string[]): Promise<unknown> =>
    asRoot
      ? run('runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args])
      : run(path.join(bin, tool), args);
  const data = path.join(dir, 'data');
  await exec('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  const start = async (): Promise<void> => {
    await exec('pg_ctl', [
      '-D',
      data,
      '-l',
      path.join(dir, 'log'),
      '-w',
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`,
      'start',
    ]).catch(async (error: unknown) => {
      const log = await readFile(path.join(dir, 'log'), 'utf8').catch(() => '');
      throw new Error(`${String(error)}\n${log.slice(-2000)}`);
    });
  };
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      await exec('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
    async kill() {
      // The postmaster's pid is the first line of postmaster.pid; its backends are its children.
      const pid = Number(
        (await readFile(path.join(data, 'postmaster.pid'), 'utf8')).split('\n')[0],
      );
      const children = await childrenOf(pid);
      for (const victim of [pid, ...children]) signalIgnoringGone(victim, 'SIGKILL');
      // Until every one is gone: a backend left attached to the shared memory blocks a restart.
      for (let waited = 0; [pid, ...children].some(isRunning); waited += 50) {
        if (waited > 10_000) throw new Error(`PostgreSQL pid ${pid} survived kill -9`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // The killed postmaster may stay a zombie (nobody reaps it here), and PostgreSQL takes a
      // zombie's pid for a live server: the stale lock files go, as after a machine crash.
      for (const stale of ['data/postmaster.pid', `.s.PGSQL.${port}.lock`, `.s.PGSQL.${port}`])
        await rm(path.join(dir, stale), { force: true });
    },
    start,
  };
}

/** The pids whose parent is `pid` (from /proc: Linux, as the tests run). */
async function childrenOf(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid …: comm may hold spaces, so read after its closing parenthesis.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) found.push(Number(entry));
  }
  return found;
}

function signalIgnoringGone(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** Alive and not a zombie (a killed process nobody reaped yet holds no resources). */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
