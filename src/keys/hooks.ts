import { spawn } from 'node:child_process';
import { reservedVariable } from '../policy/secrets.js';
import { ModelCenterError } from '../shared/errors.js';

/**
 * The commands the policies name for keys (`rotation.issue`, `rotation.retire`, delivery hooks):
 * an argument list run without a shell, or one string run with `sh -c`. A value goes in on stdin,
 * never as an argument (arguments show in `ps`); what the command prints on stderr is kept for the
 * error message, masked by the caller.
 */

export type Command = string | readonly string[];

export class HookError extends ModelCenterError {}

export interface HookRun {
  /** What the hook is for, in messages: `retire hook of provider "openai"`. */
  what: string;
  command: Command;
  /** Appended to the arguments (with `sh -c`, available as $1, $2, …). */
  args?: readonly string[];
  /** Added to the environment the controller runs with. */
  env?: Record<string, string>;
  stdin?: string;
  timeoutMs?: number;
  /** Masks secret values in what the command printed, before it reaches a message. */
  mask: (text: string) => string;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const MAX_OUTPUT = 64 * 1024;

/** Runs the hook; resolves with its stdout when it exits 0, throws HookError otherwise. */
export function runHook(run: HookRun): Promise<string> {
  const [program, ...fixed] =
    typeof run.command === 'string' ? ['sh', '-c', run.command, 'hook'] : [...run.command];
  if (!program) return Promise.reject(new HookError(`${run.what}: the command is empty`));
  return new Promise((resolve, reject) => {
    // Its own process group, so a timeout kills what a shell hook started too.
    const child = spawn(program, [...fixed, ...(run.args ?? [])], {
      env: { ...hookEnvironment(process.env), ...run.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      if (stdout.length < MAX_OUTPUT) stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < MAX_OUTPUT) stderr += chunk.toString('utf8');
    });
    const timer = setTimeout(() => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, run.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(
        new HookError(
          `${run.what} could not be started (${program}: ${error.message}) — check the command in the policy`,
        ),
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(stdout);
      const said = run.mask(stderr.trim()).split('\n').slice(-3).join(' | ').slice(0, 500);
      reject(
        new HookError(
          `${run.what} failed (${signal ? `killed by ${signal}${signal === 'SIGKILL' ? ', timed out' : ''}` : `exit code ${code}`})${said ? `: ${said}` : ''}`,
        ),
      );
    });
    child.stdin.on('error', () => undefined); // a command that never reads stdin
    child.stdin.end(run.stdin ?? '');
  });
}

/**
 * The controller's environment without its own secrets (the master and salt keys, LiteLLM's
 * database URL, every MODELCENTER_ setting, token and secret-store export): a hook is written in
 * a policy, and a policy may not reach them (src/policy/secrets.ts). What a hook is for reaches it
 * on stdin and in the variables `run.env` names.
 */
export function hookEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !reservedVariable(name)));
}
