import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import { ModelCenterError } from '../shared/errors.js';
import type { Problem } from './problems.js';
import { policyFileSchema, type PolicyFile } from './schema.js';
import { type Entry, emptyPolicySet, type PolicySet } from './policy-set.js';
import { locate, parseSource, problemAt, type SourceFile } from './source.js';
import { describeIssue } from './zod-issues.js';

export class PolicyLoadError extends ModelCenterError {}

/** Every `*.yaml` / `*.yml` below `dir`, sorted so that merging is deterministic. */
export async function findPolicyFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { recursive: true, withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new PolicyLoadError(
      code === 'ENOENT'
        ? `policies directory ${dir} does not exist — create it or pass --policies DIR`
        : `cannot read policies directory ${dir} (${code ?? 'unknown error'})`,
      { cause: error },
    );
  }
  return entries
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

export interface LoadedText {
  /** Name used in messages. */
  name: string;
  text: string;
}

export async function readPolicyDir(dir: string, cwd = process.cwd()): Promise<LoadedText[]> {
  const files = await findPolicyFiles(dir);
  return Promise.all(
    files.map(async (file) => ({
      name: displayName(file, cwd),
      text: await readFile(file, 'utf8'),
    })),
  );
}

function displayName(file: string, cwd: string): string {
  const relative = path.relative(cwd, file);
  return relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
}

/** Parse and schema-check each file, then merge sections across files. Pure over the texts. */
export function parsePolicies(texts: readonly LoadedText[]): {
  set: PolicySet;
  problems: Problem[];
} {
  const problems: Problem[] = [];
  const set = emptyPolicySet();
  for (const { name, text } of texts) {
    set.files.push(name);
    const parsed = parseSource(name, text);
    problems.push(...parsed.problems);
    if (parsed.problems.some((p) => p.severity === 'error')) continue;
    const raw: unknown = parsed.source.doc.toJS() ?? {};
    const result = policyFileSchema.safeParse(raw);
    if (!result.success) {
      problems.push(
        ...result.error.issues.flatMap((issue) => issueProblems(parsed.source, issue, raw)),
      );
      continue;
    }
    problems.push(...mergeFile(set, parsed.source, result.data));
  }
  sortMaps(set);
  return { set, problems };
}

function issueProblems(source: SourceFile, issue: z.core.$ZodIssue, raw: unknown): Problem[] {
  return describeIssue(issue, raw).map((d) => problemAt(source, d.path, d.message, d.hint));
}

type KeyedSection = 'providers' | 'models' | 'profiles' | 'callers' | 'goals';
const KEYED: readonly KeyedSection[] = ['providers', 'models', 'profiles', 'callers', 'goals'];
const SINGULAR: Record<KeyedSection, string> = {
  providers: 'provider',
  models: 'model',
  profiles: 'profile',
  callers: 'caller',
  goals: 'goal',
};

function mergeFile(set: PolicySet, source: SourceFile, file: PolicyFile): Problem[] {
  const problems: Problem[] = [];
  for (const section of KEYED) {
    const values = file[section] ?? {};
    const target = set[section] as Map<string, Entry<unknown>>;
    for (const [name, value] of Object.entries(values)) {
      const entry: Entry<unknown> = { name, value, source, path: [section, name] };
      const earlier = target.get(name);
      if (earlier) {
        problems.push(duplicate(entry, earlier, `${SINGULAR[section]} "${name}"`));
        continue;
      }
      target.set(name, entry);
    }
  }
  (file.budgets ?? []).forEach((value, index) => {
    set.budgets.push({
      name: value.name ?? `budgets[${set.budgets.length}]`,
      value,
      source,
      path: ['budgets', index],
    });
  });
  for (const section of ['cache', 'routing', 'spend', 'litellm'] as const) {
    const value = file[section];
    if (value === undefined) continue;
    const entry = { name: section, value, source, path: [section] };
    const earlier = set[section];
    if (earlier) {
      problems.push(duplicate(entry, earlier, `section "${section}"`));
      continue;
    }
    (set as { [K in typeof section]?: Entry<unknown> })[section] = entry;
  }
  return problems;
}

function duplicate(entry: Entry<unknown>, earlier: Entry<unknown>, what: string): Problem {
  const first = locate(earlier.source, earlier.path);
  return problemAt(
    entry.source,
    entry.path,
    `${what} is defined twice: here and at ${earlier.source.name}:${first.line}:${first.col}`,
    'keep one definition, or rename one of them',
  );
}

function sortMaps(set: PolicySet): void {
  for (const section of KEYED) {
    const map = set[section] as Map<string, unknown>;
    const sorted = [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    map.clear();
    for (const [k, v] of sorted) map.set(k, v);
  }
}
