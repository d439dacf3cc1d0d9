import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { projectRoot } from '../../src/shared/paths.js';

/** Debian's chromium (.ci/install-system-packages.sh installs it). */
export const CHROMIUM = '/usr/bin/chromium';

/** Where the tests save the dashboard's screenshots (the README shows the committed ones). */
export const SCREENSHOTS = path.join(projectRoot(), 'docs', 'screenshots');

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root in CI: chromium's sandbox needs an unprivileged user.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}

function isLoopback(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  if (protocol === 'data:' || protocol === 'blob:' || protocol === 'about:') return true;
  return ['127.0.0.1', 'localhost', '[::1]', '::1'].includes(hostname);
}

/**
 * A browser context that refuses every request to a host other than loopback and records it:
 * the dashboard must work with the controller's own files only.
 */
export async function loopbackOnlyContext(
  browser: Browser,
): Promise<{ context: BrowserContext; foreign: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const foreign: string[] = [];
  await context.route('**/*', async (route) => {
    const url = route.request().url();
    if (isLoopback(url)) return route.continue();
    foreign.push(url);
    return route.abort('blockedbyclient');
  });
  context.on('request', (request) => {
    if (!isLoopback(request.url()) && !foreign.includes(request.url())) foreign.push(request.url());
  });
  return { context, foreign };
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Types the token into the login view and waits for the dashboard (or the login error). */
export async function signIn(page: Page, token: string): Promise<void> {
  await page.fill('input[name=token]', token);
  await page.click('button[type=submit]');
}
