import { mkdtemp, readFile, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HttpError } from '../../src/api/server.js';
import { createLogger } from '../../src/log/logger.js';
import { ensureUiBuilt, uiPaths } from '../../src/ui/bundle.js';
import { startUi } from '../../src/ui/subsystem.js';

const silent = createLogger({
  level: 'error',
  destination: { write: () => undefined },
  pretty: false,
});

describe('the dashboard bundle', () => {
  it('is rebuilt when older than its sources, and names no remote host', async () => {
    const { outDir } = uiPaths();
    await ensureUiBuilt();
    expect(await ensureUiBuilt()).toBe(false);
    const old = new Date('2001-01-01T00:00:00Z');
    await utimes(path.join(outDir, 'app.js'), old, old);
    expect(await ensureUiBuilt()).toBe(true);
    expect((await stat(path.join(outDir, 'app.js'))).mtime.getTime()).toBeGreaterThan(
      old.getTime(),
    );
    const script = await readFile(path.join(outDir, 'app.js'), 'utf8');
    const css = await readFile(path.join(outDir, 'app.css'), 'utf8');
    // Only XML namespace names (never fetched) may look like URLs.
    const urls = [...`${script}\n${css}`.matchAll(/https?:\/\/[\w.-]+/g)].map((m) => m[0]);
    expect([...new Set(urls)].sort()).toEqual(['http://www.w3.org']);
  });

  it('served from memory at /ui/; when it cannot be built the controller still starts and /ui/ says why', async () => {
    const ui = await startUi({ log: silent });
    const page = ui.routes!.find((r) => r.path === '/ui/')!;
    const answer = await page.handle({
      body: undefined,
      query: {},
      params: {},
      requestId: 't',
      actor: 'anonymous',
    });
    expect(answer).toMatchObject({ status: 200, contentType: 'text/html; charset=utf-8' });
    expect(String(answer.body)).toContain('/ui/app.js');

    const empty = await mkdtemp(path.join(tmpdir(), 'mc-ui-'));
    try {
      const broken = await startUi({ log: silent, root: empty });
      const route = broken.routes!.find((r) => r.path === '/ui/{file}')!;
      const failure = await route
        .handle({
          body: undefined,
          query: {},
          params: { file: 'app.js' },
          requestId: 't',
          actor: 'anonymous',
        })
        .catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(HttpError);
      expect(failure).toMatchObject({ status: 503, code: 'dashboard_unavailable' });
      expect((failure as Error).message).toMatch(/npm run build:ui/);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
