import { isMap, isSeq, isScalar, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { Problem } from './problems.js';
import { pathText } from './problems.js';

export type Path = readonly (string | number)[];

/** A parsed policy file that can say where any path in it was written. */
export interface SourceFile {
  /** The name shown in messages (relative to the working directory when inside it). */
  name: string;
  doc: Document.Parsed;
  lines: LineCounter;
}

export function parseSource(
  name: string,
  text: string,
): { source: SourceFile; problems: Problem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const source = { name, doc, lines };
  const problems = [...doc.errors, ...doc.warnings].map((error): Problem => {
    const offset = error.pos[0];
    const { line, col } = lines.linePos(offset);
    const firstLine = error.message.split('\n')[0] ?? error.message;
    return {
      severity: doc.errors.includes(error) ? 'error' : 'warning',
      file: name,
      line,
      col,
      path: '',
      message: `YAML ${firstLine.replace(/ at line \d+, column \d+.*$/, '')}`,
      hint: 'fix the YAML syntax (indentation, quoting, a missing ":")',
    };
  });
  return { source, problems };
}

/**
 * The position of the deepest node on `path` that exists: the key of a mapping entry (so a message
 * about `models.gpt-4o` points at the `gpt-4o:` line), or the item of a sequence.
 */
export function locate(source: SourceFile, path: Path): { line: number; col: number } {
  let node: unknown = source.doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => isScalar(item.key) && String(item.key.value) === String(segment),
      );
      if (!pair) break;
      offset = rangeStart(pair.key) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment];
      if (item === undefined) break;
      offset = rangeStart(item) ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return source.lines.linePos(offset);
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
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
