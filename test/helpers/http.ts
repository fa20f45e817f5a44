/**
 * @module test/helpers/http
 * HTTP steps the service tests share: JSON API calls with a bearer token, tables of coded-error
 * answers, the dashboard's static files and their headers, and Prometheus samples from /metrics.
 *
 * @example
 * const api = (path: string, token = OPERATOR) => getJson(`${base}${path}`, token);
 * await expectCodedErrors(api, [['/api/nothing', 404, 'NOT_FOUND']]);
 * await expectDashboardServed(base);
 * expect(promSample(await (await fetch(`${base}/metrics`)).text(), 'divs_jobs_running')).toBe(0);
 */
import { expect } from 'vitest';

/** An HTTP answer with its JSON body. */
export interface JsonAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** GET `url` (with `Authorization: Bearer token` unless the token is empty) and parse the JSON answer. */
export async function getJson(url: string, token?: string): Promise<JsonAnswer> {
  const r = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/** Expects every [path, HTTP status, DIVS code] of `cases` from `get` (a mismatch names its path). */
export async function expectCodedErrors(get: (path: string) => Promise<JsonAnswer>, cases: ReadonlyArray<readonly [path: string, status: number, code: string]>): Promise<void> {
  for (const [path, status, code] of cases) {
    const r = await get(path);
    expect({ path, status: r.status, code: (r.body.error as { code: string } | undefined)?.code }).toEqual({ path, status, code });
  }
}

/**
 * Expects the dashboard at `base`: the page and the shared kit served without a token, with a
 * strict Content-Security-Policy (no inline script) and no framing; the page loads its app and
 * the kit.
 */
export async function expectDashboardServed(base: string): Promise<void> {
  const page = await fetch(`${base}/`);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toMatch(/^text\/html/);
  expect(page.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
  expect(page.headers.get('x-frame-options')).toBe('DENY');
  const html = await page.text();
  for (const file of ['/app.js', '/style.css', '/kit/kit.css']) expect(html).toContain(file);
  for (const [path, type] of [['/app.js', /^text\/javascript/], ['/kit/kit.js', /^text\/javascript/], ['/kit/kit.css', /^text\/css/]] as const) {
    const r = await fetch(`${base}${path}`);
    expect({ path, status: r.status }).toEqual({ path, status: 200 });
    expect(r.headers.get('content-type')).toMatch(type);
    expect(r.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
  }
}

/** One Prometheus sample of `/metrics` text: its value, or undefined when no line has that name and those labels. */
export function promSample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}
