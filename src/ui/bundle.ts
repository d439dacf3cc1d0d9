import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';
import { projectRoot } from '../shared/paths.js';
import { writeFileAtomically } from '../shared/fs.js';

/** Where the dashboard's sources are, and where its bundle goes (never committed: dist/ is ignored). */
export function uiPaths(root = projectRoot()): { sourceDir: string; outDir: string } {
  return { sourceDir: path.join(root, 'ui'), outDir: path.join(root, 'dist', 'ui') };
}

/** The files a built bundle holds; a bundle missing one is rebuilt. */
export const BUNDLE_FILES = ['index.html', 'app.js', 'app.css'] as const;

/**
 * Builds the dashboard (Preact + htm, Chart.js, Tabulator) into one script and one stylesheet
 * with esbuild, and copies its page. Everything it loads is in the bundle: the page makes no
 * request beyond the controller.
 */
export async function buildUi(root = projectRoot()): Promise<{ outDir: string; ms: number }> {
  const started = performance.now();
  const { sourceDir, outDir } = uiPaths(root);
  await build({
    absWorkingDir: root,
    entryPoints: { app: path.join(sourceDir, 'src', 'main.ts') },
    outdir: outDir,
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2022',
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
    // Tabulator's stylesheet names no remote font or image; anything it does reference is inlined.
    loader: { '.woff': 'dataurl', '.woff2': 'dataurl', '.png': 'dataurl', '.svg': 'dataurl' },
  });
  await writeFileAtomically(
    path.join(outDir, 'index.html'),
    await readFile(path.join(sourceDir, 'index.html'), 'utf8'),
  );
  return { outDir, ms: Math.round(performance.now() - started) };
}

/**
 * Builds the bundle when it is missing or older than a source file (`serve` and the test set-up
 * call this; `npm run build:ui` builds unconditionally). Returns whether it built.
 */
export async function ensureUiBuilt(root = projectRoot()): Promise<boolean> {
  const { sourceDir, outDir } = uiPaths(root);
  const built = await Promise.all(
    BUNDLE_FILES.map((f) => stat(path.join(outDir, f)).catch(() => undefined)),
  );
  const oldestBuilt = Math.min(...built.map((s) => s?.mtimeMs ?? 0));
  const newestSource = Math.max(
    await newestMtime(sourceDir),
    // A library upgraded by `npm ci` changes the lock file: rebuild with it.
    (await stat(path.join(root, 'package-lock.json')).catch(() => undefined))?.mtimeMs ?? 0,
  );
  if (oldestBuilt > 0 && oldestBuilt >= newestSource) return false;
  await buildUi(root);
  return true;
}

async function newestMtime(dir: string): Promise<number> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  const times = await Promise.all(
    entries
      .filter((e) => e.isFile())
      .map(async (e) => (await stat(path.join(e.parentPath, e.name))).mtimeMs),
  );
  return Math.max(0, ...times);
}
