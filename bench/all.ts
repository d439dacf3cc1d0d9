/**
 * Every bench in one run: each script runs in its own process, one after another; every line it
 * prints with a figure in it becomes a row of one table, beside the machine, the load average
 * before and after the script, and the versions (Node, LiteLLM, PostgreSQL, nginx). The same is
 * written as JSON.
 * Run: npm run bench:all [-- name …] [-- --out FILE]   (names: compile, startup, apply, …; default all)
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, freemem, loadavg, totalmem, type as osType, release } from 'node:os';
import path from 'node:path';

interface Bench {
  name: string;
  /** node arguments after `--import tsx` (node flags first). */
  args: string[];
}

const ROOT = path.resolve(import.meta.dirname, '..');
const BENCHES: Bench[] = [
  { name: 'compile', args: ['bench/compile.ts', '1000', '10000'] },
  { name: 'startup', args: ['bench/startup.ts'] },
  { name: 'apply', args: ['bench/apply.ts'] },
  { name: 'admin-api', args: ['bench/admin-api.ts'] },
  { name: 'logger', args: ['bench/logger.ts'] },
  { name: 'api', args: ['--expose-gc', 'bench/api.ts'] },
  { name: 'supervise', args: ['bench/supervise.ts'] },
  { name: 'ingest', args: ['bench/ingest.ts'] },
  { name: 'report', args: ['bench/report.ts'] },
  { name: 'spool-overhead', args: ['bench/spool-overhead.ts'] },
  { name: 'backfill', args: ['bench/backfill.ts'] },
  { name: 'litellm-db-compare', args: ['bench/litellm-db-compare.ts'] },
];

interface Result {
  bench: string;
  exitCode: number | null;
  seconds: number;
  loadBefore: number[];
  loadAfter: number[];
  /** Every printed line with a number in it. */
  figures: string[];
}

function firstLine(command: string, args: string[]): string | undefined {
  const run = spawnSync(command, args, { encoding: 'utf8' });
  if (run.error) return undefined;
  return `${run.stdout}${run.stderr}`
    .split('\n')
    .find((l) => l.trim())
    ?.trim();
}

function versions(): Record<string, string | undefined> {
  const lock = readFileSync(path.join(ROOT, 'litellm', 'requirements.lock'), 'utf8');
  const pg = ['/usr/lib/postgresql'].flatMap((root) =>
    spawnSync('ls', [root], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean),
  );
  return {
    node: process.version,
    litellm: /^litellm==([\d.]+)/m.exec(lock)?.[1],
    postgresql: pg.sort((a, b) => Number(b) - Number(a))[0],
    nginx: firstLine('nginx', ['-v']) ?? firstLine('/usr/sbin/nginx', ['-v']),
    python: firstLine(path.join(ROOT, 'litellm', '.venv', 'bin', 'python'), ['--version']),
  };
}

function runBench(bench: Bench): Promise<Result> {
  const loadBefore = loadavg();
  const started = performance.now();
  const nodeFlags = bench.args.filter((a) => a.startsWith('--'));
  const rest = bench.args.filter((a) => !a.startsWith('--'));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', ...rest], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer): void => {
      const text = chunk.toString('utf8');
      output += text;
      process.stderr.write(
        text
          .split('\n')
          .map((line) => (line ? `[${bench.name}] ${line}` : line))
          .join('\n'),
      );
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('exit', (code) =>
      resolve({
        bench: bench.name,
        exitCode: code,
        seconds: (performance.now() - started) / 1000,
        loadBefore,
        loadAfter: loadavg(),
        figures: output
          .split('\n')
          .map((l) => l.trimEnd())
          .filter((l) => /\d/.test(l) && !/^\s*at /.test(l) && !l.startsWith('{')),
      }),
    );
  });
}

const args = process.argv.slice(2);
const outAt = args.indexOf('--out');
const out =
  outAt >= 0
    ? path.resolve(args[outAt + 1] ?? 'bench-all.json')
    : path.join(ROOT, '.modelcenter', 'bench', `bench-all-${new Date().toISOString()}.json`);
const names = args.filter((a, i) => !a.startsWith('--') && i !== outAt + 1);
const unknown = names.filter((n) => !BENCHES.some((b) => b.name === n));
if (unknown.length > 0) {
  console.error(
    `unknown bench ${unknown.join(', ')} — known: ${BENCHES.map((b) => b.name).join(', ')}`,
  );
  process.exit(1);
}
const chosen = names.length > 0 ? BENCHES.filter((b) => names.includes(b.name)) : BENCHES;

const machine = {
  os: `${osType()} ${release()}`,
  cpu: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
  memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
  freeMemoryGiB: Math.round((freemem() / 2 ** 30) * 10) / 10,
  loadAverage: loadavg(),
};
const results: Result[] = [];
for (const bench of chosen) results.push(await runBench(bench));

const load = (l: number[]): string => l.map((n) => n.toFixed(2)).join(' ');
const v = versions();
const lines = [
  '',
  `machine: ${machine.cpu}, ${machine.memoryGiB} GiB, ${machine.os}; load average at start ${load(machine.loadAverage)}`,
  `versions: ${Object.entries(v)
    .map(([k, value]) => `${k} ${value ?? '?'}`)
    .join(', ')}`,
  '',
];
const width = Math.max(5, ...results.map((r) => r.bench.length));
lines.push(`${'bench'.padEnd(width)}  figure`, `${'-'.repeat(width)}  ${'-'.repeat(60)}`);
for (const r of results) {
  lines.push(
    `${r.bench.padEnd(width)}  [${r.exitCode === 0 ? 'ok' : `exit ${r.exitCode}`}, ${r.seconds.toFixed(0)} s, load ${load(r.loadBefore)} → ${load(r.loadAfter)}]`,
  );
  for (const figure of r.figures) lines.push(`${''.padEnd(width)}  ${figure.trim()}`);
}
console.log(lines.join('\n'));
await mkdir(path.dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify({ machine, versions: v, results }, null, 2)}\n`);
console.log(`\nwritten: ${out}`);
process.exitCode = results.every((r) => r.exitCode === 0) ? 0 : 1;
