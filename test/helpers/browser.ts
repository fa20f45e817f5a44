/**
 * @module test/helpers/browser
 * Headless Chromium for dashboard end-to-end tests: playwright-core driving Debian's
 * `/usr/bin/chromium` (or `$DIVS_CHROMIUM`).
 *
 * Both are optional on a developer's machine and required in CI: {@link probeBrowser} says what
 * is missing (and warns loudly), tests put their browser part under
 * `describe.skipIf(b.missing !== undefined)`, and {@link requireBrowserInCi} adds a failing test
 * when CI=true and the browser cannot run.
 *
 * @example
 * const b = await probeBrowser('gateway dashboard');
 * describe.skipIf(b.missing !== undefined)('in Chromium', () => {
 *   const chromium = useChromium(b);
 *   it('…', async () => {
 *     const page = await chromium().ctx.newPage();
 *     const problems = watchProblems(page);
 *     await signIn(page, base, { refused: 'wrong', token, heading: 'Overview' });
 *     expect(await textOf(page, '[data-field=x]')).toBe('1');
 *     await signOut(page);
 *     expect(problems).toEqual([]);
 *   });
 * });
 * requireBrowserInCi(b, 'gateway dashboard');
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';

type Playwright = typeof import('playwright-core');

/** What {@link probeBrowser} found. */
export interface BrowserProbe {
  /** The playwright-core module, when it loads. */
  pw?: Playwright;
  /** Chromium executable path. */
  executablePath: string;
  /** Why the browser tests cannot run here; undefined when they can. */
  missing?: string;
}

/** Loads playwright-core and looks for Chromium; warns loudly (naming `suite`) when one is missing. */
export async function probeBrowser(suite: string): Promise<BrowserProbe> {
  const executablePath = process.env.DIVS_CHROMIUM ?? '/usr/bin/chromium';
  let pw: Playwright | undefined;
  let error = '';
  try {
    pw = await import('playwright-core');
  } catch (e) {
    error = (e as Error).message;
  }
  const missing = !pw ? `playwright-core cannot be loaded (${error})` : !existsSync(executablePath) ? `no Chromium at ${executablePath} (apt-get install chromium)` : undefined;
  if (missing) console.warn(`\n${'!'.repeat(78)}\n!! SKIPPING the ${suite} browser tests: ${missing}\n${'!'.repeat(78)}\n`);
  return { ...(pw ? { pw } : {}), executablePath, ...(missing ? { missing } : {}) };
}

/** Adds a failing test when CI=true and the browser tests cannot run. Call at module level. */
export function requireBrowserInCi(b: BrowserProbe, suite: string): void {
  if (b.missing === undefined || process.env.CI !== 'true') return;
  describe(`${suite} browser prerequisites (CI)`, () => {
    it('has playwright-core and Chromium', () => {
      throw new Error(`CI must run the ${suite} browser tests: ${b.missing}`);
    });
  });
}

/** A running headless Chromium with a fresh profile. */
export interface Chromium {
  ctx: BrowserContext;
  /** Closes the browser and removes its profile. */
  close(): Promise<void>;
}

/** Starts headless Chromium (fresh profile, no network side traffic). */
export async function launchChromium(b: BrowserProbe, viewport = { width: 1360, height: 900 }): Promise<Chromium> {
  if (!b.pw) throw new Error(`browser tests cannot run: ${b.missing}`);
  const profile = mkdtempSync(join(tmpdir(), 'divs-chromium-'));
  try {
    // launchPersistentContext owns --user-data-dir (the fresh profile) and --headless (headless: true)
    const ctx = await b.pw.chromium.launchPersistentContext(profile, {
      executablePath: b.executablePath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport,
    });
    return {
      ctx,
      async close() {
        await ctx.close();
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
}

/** Launches Chromium before the tests of the enclosing `describe` and closes it after them; returns it. */
export function useChromium(b: BrowserProbe): () => Chromium {
  let chromium: Chromium | undefined;
  beforeAll(async () => {
    chromium = await launchChromium(b);
  }, 60_000);
  afterAll(async () => {
    await chromium?.close();
  });
  return () => {
    if (!chromium) throw new Error('Chromium is not running (use it inside a test)');
    return chromium;
  };
}

/** The trimmed text of the first element matching `selector`. */
export async function textOf(page: Page, selector: string): Promise<string> {
  return ((await page.locator(selector).first().textContent()) ?? '').trim();
}

/** Waits (10 s at most) for a page heading that contains `title`. */
export function waitForHeading(page: Page, title: string): Promise<void> {
  return page.locator('h1', { hasText: title }).waitFor({ timeout: 10_000 });
}

/**
 * Signs in on a dashboard (the kit's sign-in form at `url`): first with `refused`, which must be
 * turned away with a "not accepted" alert, then with `token`; waits for the `heading` after it.
 */
export async function signIn(page: Page, url: string, o: { refused: string; token: string; heading: string }): Promise<void> {
  await page.goto(url);
  await page.locator('#login-form').waitFor();
  await page.fill('#token', o.refused);
  await page.click('#login-form button[type=submit]');
  await page.locator('#login-form [role=alert]', { hasText: 'not accepted' }).waitFor();
  await page.fill('#token', o.token);
  await page.click('#login-form button[type=submit]');
  await waitForHeading(page, o.heading);
}

/** Signs out of a dashboard and waits for the sign-in form. */
export async function signOut(page: Page): Promise<void> {
  await page.click('#logout');
  await page.locator('#login-form').waitFor();
}

/**
 * Collects what a page must never do: script errors and console errors (CSP violations among
 * them). Failed loads answered 401/403 are expected (a refused token) and ignored.
 */
export function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 40[13]/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  return problems;
}

/**
 * A full-page screenshot, checked to hold a real picture; kept in $DIVS_SCREENSHOT_DIR when set
 * (its path is printed), else written to a temporary directory and removed.
 */
export async function screenshot(page: Page, file: string): Promise<void> {
  const keep = process.env.DIVS_SCREENSHOT_DIR;
  const dir = keep ?? mkdtempSync(join(tmpdir(), 'divs-shot-'));
  mkdirSync(dir, { recursive: true });
  const path = join(dir, file);
  await page.screenshot({ path, fullPage: true });
  expect(statSync(path).size).toBeGreaterThan(10_000);
  if (keep) console.log(`dashboard screenshot: ${path}`);
  else rmSync(dir, { recursive: true, force: true });
}
