/**
 * Model-name globs of a provider's `discovery: { include, exclude }`: `*` is any run of characters
 * (also `/` and `:`, which model ids contain), `?` one character; everything else is literal.
 */
export function matchesGlob(name: string, pattern: string): boolean {
  const source = pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`, 'i').test(name);
}

/** Kept when it matches an include (or there are none) and no exclude. */
export function keptByDiscovery(
  name: string,
  discovery: { include?: readonly string[]; exclude?: readonly string[] } | undefined,
): boolean {
  const include = discovery?.include ?? [];
  const exclude = discovery?.exclude ?? [];
  if (include.length > 0 && !include.some((p) => matchesGlob(name, p))) return false;
  return !exclude.some((p) => matchesGlob(name, p));
}
