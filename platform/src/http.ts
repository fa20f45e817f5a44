/**
 * @module http
 * The HTTP side every DIVS service shares (Hono on @hono/node-server):
 * - `GET /healthz`: liveness — the process answers;
 * - `GET /readyz`: readiness — 200 when the service's check says ready, 503 (with the reason)
 *   otherwise, e.g. before the AS node's CEF subscription is up;
 * - `GET /metrics`: Prometheus text of the service's {@link Metrics} (unauthenticated: bind it
 *   to loopback or a management network);
 * - a trace ID per request (`x-divs-trace-id` adopted or generated, echoed in the response, in
 *   the request's logs and forwarded by gRPC clients called from the handler);
 * - coded errors: a thrown `DivsError` becomes `{"error":{"code","message"}}` with the HTTP
 *   status of its code; anything else is a logged 500 that leaks nothing.
 *
 * Services add their own routes to the app from {@link createHttpApp}, then {@link startHttp}.
 * An operator dashboard (static files, no build step) is added with {@link serveDashboard}.
 *
 * @example
 * const app = createHttpApp({ service: 'cef', metrics, ready: () => true });
 * const http = await startHttp(app, { port: 0 });   // 127.0.0.1, any free port
 * // ... fetch(`${http.url}/readyz`) ...
 * await http.close();
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hono, type Context } from 'hono';
import { routePath } from 'hono/route';
import { createAdaptorServer } from '@hono/node-server';
import { DivsError, fail, httpStatusOf } from '../../protocol/src/errors.ts';
import { silentLogger, type Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import { TRACE_ID_KEY, adoptTraceId, withTraceId } from './trace.ts';

/** Per-request values every handler can read with `c.get(...)`. */
export type HttpEnv = { Variables: { traceId: string; log: Logger } };

/** What a readiness check answers: ready or not, with details shown on /readyz. */
export interface Readiness {
  ready: boolean;
  detail?: Record<string, unknown>;
}

export interface HttpAppOptions {
  /** Service name shown by /healthz. */
  service: string;
  log?: Logger;
  /** Serves /metrics and records every request when given. */
  metrics?: Metrics;
  /** Readiness check behind /readyz; absent: ready whenever the process answers. */
  ready?: () => Readiness | boolean | Promise<Readiness | boolean>;
}

/** Turns any thrown value into the JSON error answer (coded; internal details stay in the log). */
export function errorResponse(c: Context, err: unknown, log: Logger): Response {
  if (err instanceof DivsError) {
    if (err.code === 'INTERNAL') log.error({ err, cause: err.cause }, 'internal error');
    return c.json({ error: { code: err.code, message: err.message } }, httpStatusOf(err.code) as 400);
  }
  log.error({ err }, 'unexpected error in HTTP handler');
  return c.json({ error: { code: 'INTERNAL', message: 'internal error' } }, 500);
}

/**
 * A Hono app with trace IDs, request metrics, coded errors, /healthz, /readyz and /metrics.
 * Add the service's own routes to it.
 */
export function createHttpApp(o: HttpAppOptions): Hono<HttpEnv> {
  const log = o.log ?? silentLogger;
  const started = Date.now();
  const app = new Hono<HttpEnv>();

  app.use('*', async (c, next) => {
    const traceId = adoptTraceId(c.req.header(TRACE_ID_KEY));
    const reqLog = log.child({ traceId });
    c.set('traceId', traceId);
    c.set('log', reqLog);
    const t0 = process.hrtime.bigint();
    await withTraceId(traceId, () => next());
    c.header(TRACE_ID_KEY, traceId);
    c.header('X-Content-Type-Options', 'nosniff');
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    // label by the matched route pattern, never the raw path: bounded cardinality
    const matched = routePath(c, -1);
    const route = matched === '*' || matched === '/*' ? 'other' : matched;
    o.metrics?.observeHttp(route, c.req.method, c.res.status, seconds);
    reqLog.debug({ method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(seconds * 1e4) / 10 }, 'http request');
  });

  app.onError((err, c) => errorResponse(c, err, c.get('log') ?? log));
  app.notFound((c) => c.json({ error: { code: 'NOT_FOUND', message: `no route for ${c.req.method} ${c.req.path}` } }, 404));

  app.get('/healthz', (c) => c.json({ status: 'ok', service: o.service, uptimeSeconds: Math.round((Date.now() - started) / 1000) }));

  app.get('/readyz', async (c) => {
    let r: Readiness;
    try {
      const v = o.ready ? await o.ready() : true;
      r = typeof v === 'boolean' ? { ready: v } : v;
    } catch (err) {
      c.get('log').warn({ err }, 'readiness check failed');
      r = { ready: false, detail: { reason: 'readiness check failed' } };
    }
    return c.json({ status: r.ready ? 'ready' : 'not ready', service: o.service, ...(r.detail ?? {}) }, r.ready ? 200 : 503);
  });

  const metrics = o.metrics;
  if (metrics) {
    app.get('/metrics', async (c) => {
      c.header('Content-Type', metrics.contentType);
      c.header('Cache-Control', 'no-store');
      return c.body(await metrics.text());
    });
  }
  return app;
}

/** A service's operator dashboard: its own files and the words of its page shell. */
export interface DashboardFiles {
  /** Folder with `header.html` (the top bar after the brand), `app.js`, `style.css`, `favicon.svg`. */
  dir: string;
  /** The page title. */
  title: string;
  /** The service name beside the DIVS brand. */
  brand: string;
  /** The footer's last words. */
  footer: string;
}

const KIT_DIR = fileURLToPath(new URL('./dashboard-kit/', import.meta.url));

// same-origin only, no inline script or style: a value that slipped into a page as markup could not run
const DASHBOARD_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const TYPES = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
} as const;

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/**
 * Serves an operator dashboard on `app`: the page at `/` (the kit's shell.html around the
 * service's header.html), the service's `/app.js`, `/style.css`, `/favicon.svg`, and the shared
 * kit at `/kit/kit.js` and `/kit/kit.css` (platform/src/dashboard-kit/). Every file is read once,
 * here (a missing one fails start-up), and served with a strict Content-Security-Policy, no
 * framing, no referrer and `Cache-Control: no-cache`. The page holds no data: its script calls
 * the service's JSON API with the operator's bearer token.
 *
 * @example
 * serveDashboard(app, { dir: fileURLToPath(new URL('./dashboard/', import.meta.url)), title: 'DIVS x — dashboard', brand: 'x', footer: 'operator dashboard' });
 */
export function serveDashboard(app: Hono<HttpEnv>, o: DashboardFiles): void {
  const own = (file: string): Buffer => readFileSync(join(o.dir, file));
  const kit = (file: string): Buffer => readFileSync(join(KIT_DIR, file));
  const slots: Record<string, string> = { title: escapeHtml(o.title), brand: escapeHtml(o.brand), footer: escapeHtml(o.footer), header: own('header.html').toString('utf8').trimEnd() };
  const shell = kit('shell.html')
    .toString('utf8')
    .replace(/\{\{(\w+)\}\}/g, (_, name: string) => slots[name] ?? '');
  const files: Array<[path: string, bytes: Uint8Array, type: keyof typeof TYPES]> = [
    ['/', Buffer.from(shell, 'utf8'), 'html'],
    ['/app.js', own('app.js'), 'js'],
    ['/style.css', own('style.css'), 'css'],
    ['/favicon.svg', own('favicon.svg'), 'svg'],
    ['/kit/kit.js', kit('kit.js'), 'js'],
    ['/kit/kit.css', kit('kit.css'), 'css'],
  ];
  for (const [path, bytes, type] of files) {
    const body = new Uint8Array(bytes);
    app.get(path, (c) => {
      c.header('Content-Type', TYPES[type]);
      c.header('Content-Security-Policy', DASHBOARD_CSP);
      c.header('X-Frame-Options', 'DENY');
      c.header('Referrer-Policy', 'no-referrer');
      c.header('Cache-Control', 'no-cache');
      return c.body(body);
    });
  }
}

export interface HttpServerOptions {
  /** Listen address; default 127.0.0.1 (loopback only). */
  host?: string;
  /** Listen port; 0 (default) picks a free one. */
  port?: number;
}

export interface RunningHttp {
  host: string;
  port: number;
  /** `http://host:port` */
  url: string;
  /** Stops accepting, lets running requests finish for up to `graceMs`, then drops connections. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

/** Serves `app` on host:port (defaults 127.0.0.1:0); CONFIG_INVALID when it cannot listen. */
export async function startHttp(app: Hono<HttpEnv> | Hono, opts: HttpServerOptions = {}): Promise<RunningHttp> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail('CONFIG_INVALID', 'httpPort: must be 0..65535');
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  // a slow or idle client must not hold a socket forever
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => reject(new DivsError('CONFIG_INVALID', `httpPort: cannot listen on ${host}:${port}: ${e.message}`, { cause: e }));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    host,
    port: bound,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`,
    close(graceMs = 2000) {
      closing ??= new Promise<void>((resolve) => {
        const t = setTimeout(() => server.closeAllConnections(), graceMs);
        t.unref();
        server.close(() => {
          clearTimeout(t);
          resolve();
        });
        // keep-alive sockets with no request in flight would otherwise hold close() open
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
