import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { HttpError, type Reply, type Route } from '../api/server.js';
import type { Logger } from '../log/logger.js';
import type { JobRun } from '../scheduler/subsystem.js';
import { describeError } from '../shared/errors.js';
import type { Subsystem } from '../shared/subsystem.js';
import { BUNDLE_FILES, ensureUiBuilt, uiPaths } from './bundle.js';

export interface UiDeps {
  /** The `ui` child logger. */
  log: Logger;
  /** The checkout whose `ui/` is served; default: this one. */
  root?: string;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/**
 * The dashboard at `/ui/`: its bundle (built now when missing or stale) served from memory by
 * public routes. The page holds no data; it asks the documented API with the token the user
 * types, so the same read and admin scopes apply.
 */
export async function startUi(deps: UiDeps): Promise<Subsystem<Route, JobRun>> {
  // The dashboard is a view: without it the controller still applies and serves, and /ui/ says why.
  let unavailable: string | undefined;
  const files = new Map<string, { text: string; contentType: string }>();
  try {
    if (await ensureUiBuilt(deps.root)) deps.log.info({}, 'dashboard bundle built');
    const { outDir } = uiPaths(deps.root);
    for (const name of BUNDLE_FILES) {
      files.set(name, {
        text: await readFile(path.join(outDir, name), 'utf8'),
        contentType: CONTENT_TYPES[path.extname(name)] ?? 'text/plain; charset=utf-8',
      });
    }
  } catch (error) {
    unavailable = `the dashboard could not be built: ${describeError(error)} — run "npm ci" then "npm run build:ui" and restart`;
    deps.log.error({ err: unavailable }, 'dashboard unavailable');
  }
  const serve = (name: string): Promise<Reply> => {
    if (unavailable)
      return Promise.reject(new HttpError(503, 'dashboard_unavailable', unavailable));
    const file = files.get(name);
    if (!file)
      return Promise.reject(new HttpError(404, 'not_found', `no dashboard file "${name}"`, 'file'));
    return Promise.resolve({ status: 200, body: file.text, contentType: file.contentType });
  };
  return {
    routes: [
      {
        method: 'GET',
        path: '/v1/whoami',
        scope: 'read',
        summary:
          "The presented token's scope (read or admin): the dashboard shows admin controls only to admin tokens",
        handle: ({ scope }) => Promise.resolve({ status: 200, body: { scope } }),
      },
      {
        method: 'GET',
        path: '/ui',
        scope: 'public',
        summary: 'The dashboard page (same as /ui/)',
        handle: () => serve('index.html'),
      },
      {
        method: 'GET',
        path: '/ui/',
        scope: 'public',
        summary: 'The dashboard page (it asks for a token and reads this API with it)',
        handle: () => serve('index.html'),
      },
      {
        method: 'GET',
        path: '/ui/{file}',
        scope: 'public',
        summary: "The dashboard's script and stylesheet",
        handle: ({ params }) => serve(params.file ?? ''),
      },
    ],
    stop: () => Promise.resolve(),
  };
}
