import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { GIT_ENV } from './repo.js';

/**
 * A retire hook for the policies that appends one line per run to `log`: its fingerprint argument,
 * MODELCENTER_OLD_FINGERPRINT and the fingerprint of what it read on stdin (so a test sees the
 * hook got the old value without the value ever being written anywhere).
 */
export function retireHookCommand(log: string): string {
  return `v=$(cat); printf "%s %s %s\\n" "$1" "$MODELCENTER_OLD_FINGERPRINT" "$(printf %s "$v" | sha256sum | cut -c1-12)" >> ${log}`;
}

/** The retire hook's runs so far, one line each. */
export async function hookRuns(log: string): Promise<string[]> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean);
}

/** `scenarioPolicies` with a `rotation:` block under the openai provider. */
export function withOpenAIRotation(policies: string, rotation: string): string {
  const anchor = '    credential: env:OPENAI_API_KEY\n';
  if (!policies.includes(anchor)) throw new Error('the policies have no openai credential');
  return policies.replace(anchor, `${anchor}    rotation:\n${rotation}`);
}

/**
 * Every place a key must never be: the repository's whole git history (every commit's diff and
 * message), the given texts (logs, API answers, CLI output, error messages). Returns where each
 * value was found, as `label: value-name`; empty when none leaked.
 */
export function leaks(
  values: Record<string, string>,
  places: Record<string, string>,
  repo?: string,
): string[] {
  const all = { ...places };
  if (repo) {
    all['git history'] = execFileSync('git', ['log', '-p', '--all', '--format=%H %s%n%b'], {
      cwd: repo,
      env: { ...process.env, ...GIT_ENV },
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    });
  }
  const found: string[] = [];
  for (const [place, text] of Object.entries(all)) {
    for (const [name, value] of Object.entries(values)) {
      if (text.includes(value)) found.push(`${place}: ${name}`);
    }
  }
  return found;
}

/** A file under the state directory, for messages. */
export function stateFile(repo: string, name: string): string {
  return path.join(repo, '.modelcenter', name);
}
