/**
 * What the inspector's browser tests share: Debian's Chromium (/usr/bin/chromium) driven by
 * playwright-core, never a downloaded browser; the web app and the verifier worker built into scratch
 * directories (esbuild, as `npm run build` does), so the tests run the current sources; screenshots into
 * test-artifacts/. Without chromium the tests are skipped with a message, except in CI, where that fails.
 */
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { chromium, type Browser, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { startInspector, type Inspector } from '../../src/inspect/server.ts';
import { buildWeb } from '../../web/build.mjs';

export const CHROMIUM = '/usr/bin/chromium';
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');
export const haveChromium = existsSync(CHROMIUM);
export const runBrowserTests = haveChromium || !!process.env['CI'];
if (!runBrowserTests) console.warn(`[browser tests skipped] ${CHROMIUM} is not installed and CI is not set; install it with: apt-get install chromium`);

/** expect.poll with room for a busy 2-core CI machine running other test files alongside. */
export const poll = <T>(fn: () => Promise<T> | T) => expect.poll(fn, { timeout: 300_000, interval: 50 }); // a hang guard, never tripped by a slow machine

/** The closed network here refuses Chromium's background connections; these flags stop it trying. */
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** The verifier worker (src/inspect/verifyWorker.ts) as one ES module, as the compiled CLI runs it. */
async function buildVerifyWorker(outdir: string): Promise<URL> {
  const outfile = path.join(outdir, 'verifyWorker.mjs');
  await build({
    entryPoints: [path.join(REPO_ROOT, 'src/inspect/verifyWorker.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    logLevel: 'warning',
    // Some dependencies are CommonJS and call require().
    banner: { js: "import { createRequire as __tdxsimRequire } from 'node:module'; const require = __tdxsimRequire(import.meta.url);" },
  });
  return pathToFileURL(outfile);
}

export type TestPage = Page & { errors: string[] };

export class BrowserHarness {
  browser!: Browser;
  webDir!: string;
  verifyWorker!: URL;
  readonly servers: Inspector[] = [];

  async start(): Promise<void> {
    if (!haveChromium) throw new Error(`${CHROMIUM} is missing; .ci/run installs it with apt-get install chromium`);
    mkdirSync(ARTIFACTS, { recursive: true });
    const scratch = mkdtempSync(path.join(tmpdir(), 'tdxsim-web-'));
    this.webDir = await buildWeb(scratch);
    this.verifyWorker = await buildVerifyWorker(scratch);
    this.browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  }

  async stop(): Promise<void> {
    await this.browser?.close();
    await Promise.all(this.servers.map((s) => s.close()));
  }

  async serve(target: Parameters<typeof startInspector>[0]): Promise<string> {
    const insp = await startInspector(target, { port: 0, webDir: this.webDir, verifyWorker: this.verifyWorker });
    this.servers.push(insp);
    return insp.url;
  }

  async open(url: string, viewport = { width: 1500, height: 1000 }): Promise<TestPage> {
    const page = (await this.browser.newPage({ viewport })) as TestPage;
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.errors = errors;
    await page.goto(url);
    return page;
  }
}

export const shot = (page: Page, name: string) => page.screenshot({ path: path.join(ARTIFACTS, `inspector-${name}.png`) });
export const stepOf = async (page: Page) => Number(await page.locator('#step-input').inputValue());
export const waitStep = async (page: Page, n: number) => {
  await poll(() => stepOf(page)).toBe(n);
  await page.locator('.step-no', { hasText: `Step ${n}` }).waitFor();
};
/** The background check has answered (verified or not): what it said, in full. */
export const waitVerified = async (page: Page) => {
  await poll(() => page.locator('#verify-status').getAttribute('class')).toMatch(/^verify /);
  return page.locator('#verify-status').getAttribute('title');
};
