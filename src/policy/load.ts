import { readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import { describeError, ModelCenterError } from '../shared/errors.js';
import { megabytes, POLICY_LIMITS } from './limits.js';
import type { Problem } from './problems.js';
import { policyFileSchema, type PolicyFile } from './schema.js';
import { type Entry, emptyPolicySet, type PolicySet } from './policy-set.js';
import { locate, parseSource, problemAt, type SourceFile } from './source.js';
import { describeIssue } from './zod-issues.js';

export class PolicyLoadError extends ModelCenterError {}

const POLICY_FILE = /\.ya?ml$/;

/** A policy file found under the policies directory, or why it cannot be read. */
export interface FoundFile {
  /** The path as found (a symlink's own path). */
  file: string;
  /** Set when the file must not be read, and why. */
  refused?: { message: string; hint: string };
}

/**
 * Every `*.yaml` / `*.yml` below `dir`, sorted so that merging is deterministic. Symbolic links are
 * followed while they stay inside `dir` (a link to a file also found by its own name is read once),
 * and refused, by name, when they lead outside it or nowhere: their models would otherwise vanish
 * without a word. Other non-files named `*.yaml` (a FIFO would block the read forever) are refused.
 */
export async function findPolicyFiles(dir: string): Promise<FoundFile[]> {
  let entries;
  let root: string;
  try {
    root = await realpath(dir);
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
  const found: FoundFile[] = [];
  const links: string[] = [];
  for (const entry of entries) {
    const file = path.join(entry.parentPath, entry.name);
    if (entry.isSymbolicLink()) links.push(file);
    else if (!POLICY_FILE.test(entry.name)) continue;
    else if (entry.isFile()) found.push({ file });
    else if (!entry.isDirectory()) {
      found.push({
        file,
        refused: {
          message: 'is not a regular file (a FIFO, socket or device), so it is not read',
          hint: 'replace it with a regular file, or rename it so it does not end in .yaml',
        },
      });
    }
  }
  const regular = new Set(found.map((f) => f.file));
  for (const link of links) {
    const followed = await followLink(link, root, dir);
    if (followed === 'skip') continue;
    if (followed.refused) {
      if (POLICY_FILE.test(link) || followed.refused.always) {
        found.push({ file: link, refused: followed.refused });
      }
      continue;
    }
    // A link to a directory inside `dir`: its files are read where they are.
    if (followed.isDirectory || !POLICY_FILE.test(link)) continue;
    if (regular.has(followed.target)) continue;
    regular.add(followed.target);
    found.push({ file: link });
  }
  return found.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

async function followLink(
  link: string,
  root: string,
  dir: string,
): Promise<
  | 'skip'
  | { refused: { message: string; hint: string; always?: boolean } }
  | { refused?: undefined; target: string; isDirectory: boolean }
> {
  let target: string;
  try {
    target = await realpath(link);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!POLICY_FILE.test(link)) return 'skip';
    return {
      refused: {
        message:
          code === 'ELOOP'
            ? 'is a symbolic link that loops'
            : `is a symbolic link to ${await linkText(link)}, which does not exist`,
        hint: 'point the link at an existing policy file inside the policies directory, or remove it',
      },
    };
  }
  const inside = target === root || target.startsWith(root + path.sep);
  let isDirectory = false;
  let isFile = false;
  try {
    const stats = await stat(target);
    isDirectory = stats.isDirectory();
    isFile = stats.isFile();
  } catch {
    return 'skip';
  }
  if (!isDirectory && !isFile) {
    return {
      refused: {
        message: `is a symbolic link to ${target}, which is not a regular file (a FIFO, socket or device), so it is not read`,
        hint: 'point the link at a policy file, or remove it',
      },
    };
  }
  if (!inside) {
    return {
      refused: {
        message: `is a symbolic link to ${target}, outside the policies directory ${dir}, so it is not read`,
        hint: 'copy the file into the policies directory (policies are versioned with it), or remove the link',
        always: isDirectory,
      },
    };
  }
  return { target, isDirectory };
}

async function linkText(link: string): Promise<string> {
  try {
    return await readlink(link);
  } catch {
    return 'a missing file';
  }
}

export interface LoadedText {
  /** Name used in messages. */
  name: string;
  text: string;
  /** Problems found while reading the file (not UTF-8, a link out of the directory, …); `text` is then empty. */
  problems?: Problem[];
}

export async function readPolicyDir(dir: string, cwd = process.cwd()): Promise<LoadedText[]> {
  const files = await findPolicyFiles(dir);
  return Promise.all(
    files.map(async ({ file, refused }): Promise<LoadedText> => {
      const name = displayName(file, cwd);
      if (refused) return refusedFile(name, refused.message, refused.hint);
      let size: number;
      try {
        size = (await stat(file)).size;
      } catch (error) {
        return unreadable(name, error);
      }
      // UTF-8 takes at least one byte per character: a file over the limit in bytes may still fit.
      if (size > 4 * POLICY_LIMITS.fileChars) {
        return refusedFile(
          name,
          `the file is ${megabytes(size)}, more than the ${megabytes(POLICY_LIMITS.fileChars)} a policy file may hold`,
          'split it into several files under policies/',
        );
      }
      try {
        return decodePolicyFile(name, await readFile(file));
      } catch (error) {
        return unreadable(name, error);
      }
    }),
  );
}

function unreadable(name: string, error: unknown): LoadedText {
  const code = (error as NodeJS.ErrnoException).code;
  return refusedFile(
    name,
    `cannot be read (${code ?? describeError(error)})`,
    'check that the file exists and that Model Center may read it',
  );
}

function refusedFile(name: string, message: string, hint: string): LoadedText {
  return {
    name,
    text: '',
    problems: [{ severity: 'error', file: name, line: 1, col: 1, path: '', message, hint }],
  };
}

/**
 * The bytes of a policy file as text. Bytes that are not UTF-8 are an error at the line and column
 * of the first one: replacing them with U+FFFD, as a lenient decoder does, would carry the damage
 * into the rendered config. A UTF-8 byte-order mark is dropped.
 */
export function decodePolicyFile(name: string, bytes: Uint8Array): LoadedText {
  try {
    return { name, text: new TextDecoder('utf-8', { fatal: true }).decode(bytes) };
  } catch {
    const offset = firstInvalidUtf8(bytes);
    const lineStart = bytes.lastIndexOf(0x0a, offset - 1) + 1;
    let line = 1;
    for (let i = 0; i < lineStart; i++) if (bytes[i] === 0x0a) line++;
    const col = [...new TextDecoder('utf-8').decode(bytes.subarray(lineStart, offset))].length + 1;
    const byte = (bytes[offset] ?? 0).toString(16).padStart(2, '0');
    return {
      name,
      text: '',
      problems: [
        {
          severity: 'error',
          file: name,
          line,
          col,
          path: '',
          message: `the file is not valid UTF-8 (byte 0x${byte})`,
          hint: 'save the file as UTF-8: policy files are UTF-8 text',
        },
      ],
    };
  }
}

/** Offset of the first byte that does not belong to a well-formed UTF-8 sequence. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    let length: number;
    let min = 0x80;
    let max = 0xbf;
    if (b < 0x80) length = 1;
    else if (b >= 0xc2 && b <= 0xdf) length = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      length = 3;
      if (b === 0xe0) min = 0xa0; // no overlong forms
      if (b === 0xed) max = 0x9f; // no surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      length = 4;
      if (b === 0xf0) min = 0x90;
      if (b === 0xf4) max = 0x8f; // nothing above U+10FFFF
    } else return i;
    for (let k = 1; k < length; k++) {
      const c = bytes[i + k];
      if (c === undefined) return i;
      const lo = k === 1 ? min : 0x80;
      const hi = k === 1 ? max : 0xbf;
      if (c < lo || c > hi) return i;
    }
    i += length;
  }
  return i;
}

export function displayName(file: string, cwd: string): string {
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
  for (const { name, text, problems: loadProblems } of texts) {
    set.files.push(name);
    if (loadProblems && loadProblems.length > 0) {
      problems.push(...loadProblems);
      continue;
    }
    const parsed = parseSource(name, text);
    problems.push(...parsed.problems);
    if (parsed.problems.some((p) => p.severity === 'error')) continue;
    const raw = toValues(parsed.source);
    if (raw instanceof Error) {
      problems.push(problemAt(parsed.source, [], `YAML ${raw.message}`, 'fix the YAML'));
      continue;
    }
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

/**
 * The file's values. Aliases were measured by parseSource, so the yaml library's own alias limit
 * (100 uses, which refused an ordinary catalog sharing one `pricing: *p`) is off. Top-level keys
 * starting with `x-` are dropped: they hold anchors for the rest of the file (`x-defaults: &d …`).
 */
function toValues(source: SourceFile): unknown {
  let raw: unknown;
  try {
    raw = source.doc.toJS({ maxAliasCount: -1 }) ?? {};
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
  if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
    for (const key of Object.keys(raw)) {
      if (key.startsWith('x-')) delete (raw as Record<string, unknown>)[key];
    }
  }
  return raw;
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
  for (const section of ['cache', 'routing', 'spend', 'master_key', 'litellm'] as const) {
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
  if (file.health) {
    const entry = { name: 'health', value: file.health, source, path: ['health'] };
    if (set.health) problems.push(duplicate(entry, set.health, 'section "health"'));
    else set.health = entry;
  }
  if (file.health_overlay) {
    const entry = {
      name: 'health_overlay',
      value: file.health_overlay,
      source,
      path: ['health_overlay'],
    };
    if (set.healthOverlay)
      problems.push(duplicate(entry, set.healthOverlay, 'section "health_overlay"'));
    else set.healthOverlay = entry;
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
