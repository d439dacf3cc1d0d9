/** One finding about the policies, located in a file so an editor can jump to it. */
export interface Problem {
  severity: 'error' | 'warning';
  file: string;
  line: number;
  col: number;
  /** Dotted path to the field, e.g. `models.gpt-4o.provider`. */
  path: string;
  message: string;
  /** How to fix it. */
  hint: string;
}

export interface Findings {
  errors: Problem[];
  warnings: Problem[];
}

/** `file:line:col path.to.field: what is wrong — how to fix it` */
export function formatProblem(problem: Problem): string {
  const where = `${problem.file}:${problem.line}:${problem.col}`;
  const path = problem.path ? ` ${problem.path}:` : '';
  return `${where}${path} ${problem.message} — ${problem.hint}`;
}

export function byLocation(a: Problem, b: Problem): number {
  return (
    a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col || a.path.localeCompare(b.path)
  );
}

export function splitFindings(problems: Problem[]): Findings {
  const sorted = [...problems].sort(byLocation);
  return {
    errors: sorted.filter((p) => p.severity === 'error'),
    warnings: sorted.filter((p) => p.severity === 'warning'),
  };
}

export function pathText(path: readonly PropertyKey[]): string {
  return path
    .map((segment, index) =>
      typeof segment === 'number' ? `[${segment}]` : `${index > 0 ? '.' : ''}${String(segment)}`,
    )
    .join('');
}
