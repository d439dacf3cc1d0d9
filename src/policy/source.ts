import {
  isAlias,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  Scalar,
  type Alias,
  type Document,
  type Node,
  type ParsedNode,
  type YAMLMap,
} from 'yaml';
import { megabytes, POLICY_LIMITS } from './limits.js';
import type { Problem } from './problems.js';
import { pathText } from './problems.js';
import { maskSecret } from './secrets.js';

export type Path = readonly (string | number)[];

/** A parsed policy file that can say where any path in it was written. */
export interface SourceFile {
  /** The name shown in messages (relative to the working directory when inside it). */
  name: string;
  doc: Document.Parsed;
  lines: LineCounter;
  /** Where each alias points: the last node anchored with its name before it. */
  aliases: Map<Alias, Node>;
}

/**
 * `uniqueKeys: false` because the yaml library checks duplicate keys by comparing each key with
 * every earlier one (a 40,000-key mapping took 22 s); `inspect` below does it with a set.
 * `merge: true`: `<<: *defaults` merge keys, as YAML 1.1 and most tools read them.
 */
const PARSE_OPTIONS = { prettyErrors: false, uniqueKeys: false, merge: true } as const;

export function parseSource(
  name: string,
  text: string,
): { source: SourceFile; problems: Problem[] } {
  const lines = new LineCounter();
  const aliases = new Map<Alias, Node>();
  if (text.length > POLICY_LIMITS.fileChars) {
    const source = { name, doc: parseDocument('', PARSE_OPTIONS), lines, aliases };
    return {
      source,
      problems: [
        fileProblem(
          name,
          `the file is ${megabytes(text.length)}, more than the ${megabytes(POLICY_LIMITS.fileChars)} a policy file may hold`,
          'split it into several files under policies/',
        ),
      ],
    };
  }
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { ...PARSE_OPTIONS, lineCounter: lines });
  } catch (error) {
    // The yaml library reports its failures as document errors; this is the last resort.
    const source = { name, doc: parseDocument('', PARSE_OPTIONS), lines, aliases };
    return { source, problems: [fileProblem(name, yamlMessage(error), SYNTAX_HINT)] };
  }
  const source = { name, doc, lines, aliases };
  const problems = yamlProblems(name, doc, lines);
  if (doc.errors.length === 0) problems.push(...inspect(source));
  return { source, problems };
}

/** At most this many YAML syntax problems per file: a broken file can yield thousands of one kind. */
const MAX_SYNTAX_PROBLEMS = 10;

function yamlProblems(name: string, doc: Document.Parsed, lines: LineCounter): Problem[] {
  const seen = new Set<string>();
  const errors = new Set<unknown>(doc.errors);
  const all = [...doc.errors, ...doc.warnings].flatMap((error): Problem[] => {
    const { line, col } = lines.linePos(error.pos[0]);
    const key = `${line}:${col}:${error.message}`;
    if (seen.has(key)) return [];
    seen.add(key);
    return [
      {
        severity: errors.has(error) ? 'error' : 'warning',
        file: name,
        line,
        col,
        path: '',
        message: yamlMessage(error),
        hint: /too deeply/.test(yamlMessage(error)) ? DEPTH_HINT : SYNTAX_HINT,
      },
    ];
  });
  // Nesting too deep to read explains every error after it.
  const tooDeep = all.find((p) => p.hint === DEPTH_HINT);
  if (tooDeep) return [tooDeep];
  return all.slice(0, MAX_SYNTAX_PROBLEMS);
}

const SYNTAX_HINT = 'fix the YAML syntax (indentation, quoting, a missing ":")';
const DEPTH_HINT = 'flatten it: policies need only a few levels of nesting';

function yamlMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  if (/Maximum call stack/i.test(text)) {
    return `YAML nests too deeply to read (far more than the ${POLICY_LIMITS.depth} levels a policy may use)`;
  }
  const firstLine = text.split('\n')[0] ?? text;
  return `YAML ${firstLine.replace(/ at line \d+, column \d+.*$/, '')}`;
}

function fileProblem(file: string, message: string, hint: string): Problem {
  return { severity: 'error', file, line: 1, col: 1, path: '', message, hint };
}

/** What a node costs once every alias in it is expanded. */
interface Weight {
  nodes: number;
  chars: number;
  /** Levels of nesting below and including the node. */
  height: number;
}

const NO_WEIGHT: Weight = { nodes: 0, chars: 0, height: 0 };

interface Frame {
  node: unknown;
  /** The frame of the enclosing collection, and this node's key or index in it (paths are built only for messages). */
  parent: Frame | undefined;
  segment: string | number | undefined;
  depth: number;
  /** Second visit, after the children: add up their weights. */
  exit: boolean;
}

/** A path cut after 8 segments, for messages about nesting. */
function shortPath(path: Path): Path {
  return path.length > 8 ? [...path.slice(0, 8), '…'] : path;
}

function framePath(frame: Frame | undefined): (string | number)[] {
  const path: (string | number)[] = [];
  for (let f = frame; f; f = f.parent) if (f.segment !== undefined) path.push(f.segment);
  return path.reverse();
}

/**
 * Checks the parsed document before it becomes JavaScript values, in one pass over its nodes in
 * document order (iterative, so hostile nesting cannot overflow the stack):
 * - aliases resolve to an earlier anchor, never to a node that contains them, and what they expand
 *   to stays within POLICY_LIMITS (an alias is weighed once per anchor, so an expansion bomb costs
 *   microseconds to measure, where building it would take gigabytes);
 * - nesting stays within POLICY_LIMITS.depth, counting what aliases bring in;
 * - no key appears twice in one mapping, and no key is `__proto__` (JavaScript would drop it);
 * - merge keys (`<<`) name mappings;
 * - numbers are finite and integers exact (1e400 would read as Infinity, 2^64 as a rounded value).
 * Fills `source.aliases` as it goes.
 */
function inspect(source: SourceFile): Problem[] {
  const problems: Problem[] = [];
  const at = (node: unknown, path: Path, message: string, hint: string): void => {
    const range = (node as Node | null | undefined)?.range;
    const { line, col } = source.lines.linePos(range ? range[0] : 0);
    problems.push({
      severity: 'error',
      file: source.name,
      line,
      col,
      path: pathText(path),
      message,
      hint,
    });
  };
  const anchors = new Map<string, Node>();
  const weights = new Map<unknown, Weight>();
  let largestAlias: { node: Alias; frame: Frame; weight: Weight } | undefined;
  let writtenNodes = 0;
  let tooDeep = false;

  const stack: Frame[] = [
    { node: source.doc.contents, parent: undefined, segment: undefined, depth: 1, exit: false },
  ];
  while (stack.length > 0) {
    const frame = stack.pop()!;
    const { node, depth } = frame;
    if (!isNode(node)) continue;
    if (frame.exit) {
      const sum: Weight = { nodes: 1, chars: 0, height: 0 };
      const add = (child: unknown): void => {
        const w = weights.get(child);
        if (!w) return;
        sum.nodes += w.nodes;
        sum.chars += w.chars;
        if (w.height > sum.height) sum.height = w.height;
      };
      if (isMap(node)) {
        for (const pair of node.items) {
          add(pair.key);
          add(pair.value);
        }
      } else if (isSeq(node)) {
        for (const item of node.items) add(item);
      }
      sum.height += 1;
      weights.set(node, sum);
      continue;
    }
    if (node.anchor) anchors.set(node.anchor, node);
    writtenNodes += 1;

    if (isAlias(node)) {
      const target = anchors.get(node.source);
      if (!target) {
        at(
          node,
          framePath(frame),
          `alias *${node.source} has no anchor &${node.source} before it`,
          `define &${node.source} on a node above this line, or remove the alias`,
        );
        continue;
      }
      source.aliases.set(node, target);
      const weight = weights.get(target);
      if (!weight) {
        at(
          node,
          framePath(frame),
          `alias *${node.source} refers to a node that contains it (an endless loop)`,
          'point the alias at a node outside the one it sits in',
        );
        continue;
      }
      weights.set(node, weight);
      if (!largestAlias || weight.nodes > largestAlias.weight.nodes) {
        largestAlias = { node, frame, weight };
      }
      if (!tooDeep && depth - 1 + weight.height > POLICY_LIMITS.depth) {
        tooDeep = true;
        at(
          node,
          shortPath(framePath(frame)),
          `alias *${node.source} nests this part of the file more than ${POLICY_LIMITS.depth} levels deep`,
          DEPTH_HINT,
        );
      }
      continue;
    }

    if (isScalar(node)) {
      weights.set(node, {
        nodes: 1,
        chars: node.range ? node.range[1] - node.range[0] : String(node.value).length,
        height: 1,
      });
      if (typeof node.value === 'number') checkNumber(node, () => framePath(frame), at);
      else if (typeof node.value === 'object' && node.value !== null) {
        at(
          node,
          framePath(frame),
          `${shortTag(node.tag) ?? 'a timestamp'} value has no place in a policy (binary data and timestamps are not policy values)`,
          'remove the tag, or quote the value to keep it as text',
        );
      }
      continue;
    }

    if (!isMap(node) && !isSeq(node)) continue;
    if (node.tag && /:(set|omap|pairs)$/.test(node.tag)) {
      at(
        node,
        framePath(frame),
        `${shortTag(node.tag)} collection has no place in a policy`,
        'remove the tag: write a plain mapping or list',
      );
      continue;
    }
    if (depth > POLICY_LIMITS.depth) {
      if (!tooDeep) {
        tooDeep = true;
        at(
          node,
          shortPath(framePath(frame)),
          `nested more than ${POLICY_LIMITS.depth} levels deep`,
          DEPTH_HINT,
        );
      }
      continue;
    }
    stack.push({ ...frame, exit: true });
    const child = (item: unknown, segment: string | number): Frame => ({
      node: item,
      parent: frame,
      segment,
      depth: depth + 1,
      exit: false,
    });
    if (isSeq(node)) {
      for (let i = node.items.length - 1; i >= 0; i--) stack.push(child(node.items[i], i));
      continue;
    }
    const seen = new Map<string, Node>();
    const frames: Frame[] = [];
    for (const pair of node.items) {
      const key = pair.key;
      const keyText = isScalar(key) ? String(key.value) : undefined;
      const segment = keyText ?? '?';
      if (isMap(key) || isSeq(key) || isAlias(key)) {
        at(
          key,
          framePath(frame),
          'a key must be plain text, not a list, a mapping or an alias',
          'write the key as a name, e.g. gpt-4o:',
        );
      } else if (isMergeKey(key)) {
        checkMerge(pair.value, anchors, (message, hint) =>
          at(key, framePath(frame), message, hint),
        );
      } else if (keyText !== undefined) {
        const earlier = seen.get(keyText);
        if (keyText === '__proto__') {
          at(
            key,
            [...framePath(frame), segment],
            'the key "__proto__" cannot be used: JavaScript reserves it, so it would be dropped',
            'rename it (names start with a lowercase letter or a digit)',
          );
        } else if (earlier) {
          const first = source.lines.linePos(earlier.range?.[0] ?? 0);
          at(
            key,
            [...framePath(frame), segment],
            `key "${shownKey(keyText)}" appears twice in this mapping (first at line ${first.line})`,
            'keep one of them',
          );
        } else if (isNode(key)) {
          seen.set(keyText, key);
        }
      }
      frames.push(child(key, segment), child(pair.value, segment));
    }
    for (let i = frames.length - 1; i >= 0; i--) stack.push(frames[i]!);
  }

  const total = weights.get(source.doc.contents) ?? NO_WEIGHT;
  if (total.nodes > POLICY_LIMITS.expandedNodes || total.chars > POLICY_LIMITS.expandedChars) {
    const size = `${total.nodes.toExponential(1)} nodes and ${megabytes(total.chars)} of text`;
    const limit = `${POLICY_LIMITS.expandedNodes.toLocaleString('en')} nodes or ${megabytes(POLICY_LIMITS.expandedChars)}`;
    if (largestAlias && total.nodes > 2 * writtenNodes) {
      at(
        largestAlias.node,
        framePath(largestAlias.frame),
        `aliases expand this file to ${size}, more than the ${limit} allowed (*${largestAlias.node.source} alone is ${largestAlias.weight.nodes.toExponential(1)} nodes; an alias expansion bomb?)`,
        'use fewer aliases of large nodes, or write the content out',
      );
    } else {
      at(
        source.doc.contents,
        [],
        `the file holds ${size}, more than the ${limit} allowed`,
        'split it into several files under policies/',
      );
    }
  }
  return problems;
}

/** `tag:yaml.org,2002:binary` → `a !!binary`. */
function shortTag(tag: string | undefined): string | undefined {
  return tag ? `a ${tag.replace(/^tag:yaml\.org,2002:/, '!!')}` : undefined;
}

function isMergeKey(key: unknown): boolean {
  return (
    isScalar(key) &&
    (key.value === '<<' || (typeof key.value === 'symbol' && key.value.description === '<<'))
  );
}

/** `<<:` takes a mapping, an alias of one, or a list of those. */
function checkMerge(
  value: unknown,
  anchors: Map<string, Node>,
  report: (message: string, hint: string) => void,
): void {
  const resolve = (node: unknown): unknown => (isAlias(node) ? anchors.get(node.source) : node);
  const items = isSeq(value) ? value.items : [value];
  if (items.every((item) => isMap(resolve(item)))) return;
  report(
    'a merge key (<<) needs a mapping, an alias of one (*defaults) or a list of those',
    'write <<: *name where &name is on a mapping',
  );
}

type Report = (node: unknown, path: Path, message: string, hint: string) => void;

/** Numbers a double cannot hold as written. */
function checkNumber(node: Scalar, pathOf: () => Path, report: Report): void {
  if (typeof node.value !== 'number' || (node.type && node.type !== Scalar.PLAIN)) return;
  const value = node.value;
  if (Number.isSafeInteger(value) || (Number.isFinite(value) && !Number.isInteger(value))) return;
  const path = pathOf();
  const written = node.source ?? String(node.value);
  const shown = written.length > 40 ? `${written.slice(0, 40)}…` : written;
  if (Number.isNaN(node.value)) {
    report(node, path, `${shown} is not a number`, 'write a number, or quote it if it is text');
  } else if (!Number.isFinite(node.value)) {
    report(
      node,
      path,
      /inf/i.test(written)
        ? `${shown} is infinite, which no policy field accepts`
        : `${shown} is too large to be a number (it would read as infinity)`,
      'write a smaller number, or quote it if it is text',
    );
  } else if (Number.isInteger(node.value) && !Number.isSafeInteger(node.value)) {
    report(
      node,
      path,
      `${shown} is beyond the largest exact integer (${Number.MAX_SAFE_INTEGER}); it would be changed when read`,
      'write a smaller number, or quote it if it is text',
    );
  }
}

function shownKey(key: string): string {
  return maskSecret(key) ?? (key.length > 60 ? `${key.slice(0, 60)}…` : key);
}

/**
 * The position of the deepest node on `path` that exists: the key of a mapping entry (so a message
 * about `models.gpt-4o` points at the `gpt-4o:` line), or the item of a sequence. Follows aliases
 * and merge keys to where the value was written.
 */
export function locate(source: SourceFile, path: Path): { line: number; col: number } {
  let node: unknown = source.doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (const segment of path) {
    node = resolved(source, node);
    if (isMap(node)) {
      const pair = findPair(source, node, String(segment), 0);
      if (!pair) break;
      offset = rangeStart(pair.key) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item: unknown = node.items[segment];
      if (item === undefined) break;
      offset = rangeStart(item) ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return source.lines.linePos(offset);
}

function resolved(source: SourceFile, node: unknown): unknown {
  return isAlias(node) ? (source.aliases.get(node) ?? node) : node;
}

/** The entry for `key` in `map`, or in what its merge keys bring in (the mapping's own entries win). */
function findPair(
  source: SourceFile,
  map: YAMLMap,
  key: string,
  depth: number,
): { key: unknown; value: unknown } | undefined {
  const own = map.items.find(
    (item) => isScalar(item.key) && !isMergeKey(item.key) && String(item.key.value) === key,
  );
  if (own || depth > POLICY_LIMITS.depth) return own;
  for (const item of map.items) {
    if (!isMergeKey(item.key)) continue;
    const sources = isSeq(item.value) ? item.value.items : [item.value];
    for (const merged of sources) {
      const target = resolved(source, merged);
      const found = isMap(target) ? findPair(source, target, key, depth + 1) : undefined;
      if (found) return found;
    }
  }
  return undefined;
}

function rangeStart(node: unknown): number | undefined {
  if (isPair(node)) return rangeStart(node.key);
  const range = (node as ParsedNode | null | undefined)?.range;
  return range ? range[0] : undefined;
}

/** A problem at `path` in `source`. */
export function problemAt(
  source: SourceFile,
  path: Path,
  message: string,
  hint: string,
  severity: Problem['severity'] = 'error',
): Problem {
  const { line, col } = locate(source, path);
  return { severity, file: source.name, line, col, path: pathText(path), message, hint };
}
