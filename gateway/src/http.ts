/**
 * @module http
 * The gateway's HTTP side (Hono on @hono/node-server, built on platform/http.ts):
 *
 * HTTP ingest for constrained devices [E2E-2] [VER-1]: one POST per frame of records, in
 * protobuf or JSON, answered with one ack per record after the records are durable — the same
 * checks, store and acks as the gRPC stream.
 * - `POST /v1/records` with `Content-Type: application/x-protobuf` (or `application/protobuf`):
 *   body = IngestRequest bytes; answer = IngestResponse bytes.
 * - `POST /v1/records` with `Content-Type: application/json`:
 *   `{"channel":"meters","frameId":7,"records":[{"record":"<base64 SignedRecord>"} |
 *   {"body":"<b64>","signature":"<b64>","batch":{"index":0,"size":4,"path":["<b64>"],"root":"<b64>"}}]}`;
 *   answer `{"frameId":7,"acks":[{"status":"STORED","sequence":1,"recordHash":"<hex>","errorCode":"","errorMessage":""}]}`.
 *
 * Operations: `GET /healthz` (liveness), `GET /readyz` (readiness: 503 while shutting down),
 * `GET /metrics` (Prometheus text; unauthenticated — bind the HTTP port to a management
 * network), a trace ID per request (`x-divs-trace-id`).
 *
 * Operator dashboard (when enabled): static pages at `/` (no build step, strict CSP; served by
 * platform/http.ts `serveDashboard` with the shared kit at `/kit/*`) over a JSON
 * API, all `GET` with an operator's bearer token [FW-ACL] [SEC-1]:
 * - `/api/overview`, `/api/series?seconds=` (chart data);
 * - `/api/datasets`, `/api/datasets/:id?ueOffset&ueLimit` (descriptions only [SC2-1]);
 * - `/api/reports?limit`, `/api/reports/:id` (signed verification reports issued [SC2-2]);
 * - `/api/jobs?limit&state`, `/api/jobs/:id` (jobs with their attestations [SC2-4]).
 * Errors are JSON `{"error":{"code":"…","message":"…"}}` with the HTTP status of the code.
 */
import { fileURLToPath } from 'node:url';
import type { Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { AckStatus } from '../../proto/gen/divs/v1/gateway.ts';
import { SignedRecord } from '../../proto/gen/divs/v1/common.ts';
import { fromBase64, toHex } from '../../protocol/src/bytes.ts';
import { DivsError, fail, httpStatusOf } from '../../protocol/src/errors.ts';
import type { Logger } from '../../platform/src/log.ts';
import { createHttpApp as createPlatformApp, serveDashboard, type HttpEnv, type Readiness } from '../../platform/src/http.ts';
import type { Metrics } from '../../platform/src/metrics.ts';
import type { GatewayAuth } from './auth.ts';
import { intParam, type GatewayExplorer } from './explorer.ts';
import { decodeIngestRequest, encodeIngestResponse, type Ingestor, type RawIngestRequest } from './ingest.ts';

const b64 = z.string().max(4 * 1024 * 1024);
const JsonRecord = z.union([
  z.object({ record: b64 }).strict(),
  z
    .object({
      body: b64,
      signature: b64,
      batch: z
        .object({
          index: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
          size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
          path: z.array(b64).max(64),
          root: b64,
        })
        .strict()
        .optional(),
    })
    .strict(),
]);
const JsonFrame = z
  .object({
    channel: z.string().max(128).optional(),
    frameId: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    records: z.array(JsonRecord).max(10_000),
  })
  .strict();

const STATUS_NAMES: Record<number, string> = {
  [AckStatus.ACK_STATUS_STORED]: 'STORED',
  [AckStatus.ACK_STATUS_DUPLICATE]: 'DUPLICATE',
  [AckStatus.ACK_STATUS_REJECTED]: 'REJECTED',
};

/** Turns a JSON frame into raw records (exact SignedRecord bytes). */
function fromJson(value: unknown): RawIngestRequest {
  const r = JsonFrame.safeParse(value);
  if (!r.success) fail('MALFORMED_MESSAGE', `JSON frame: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  const records = r.data.records.map((rec, i) => {
    if ('record' in rec) return fromBase64(rec.record, `records[${i}].record`);
    const batch = rec.batch
      ? {
          index: rec.batch.index,
          size: rec.batch.size,
          path: rec.batch.path.map((p, k) => fromBase64(p, `records[${i}].batch.path[${k}]`)),
          root: fromBase64(rec.batch.root, `records[${i}].batch.root`),
        }
      : undefined;
    return SignedRecord.encode({ body: fromBase64(rec.body, `records[${i}].body`), signature: fromBase64(rec.signature, `records[${i}].signature`), batch }).finish();
  });
  return { channel: r.data.channel ?? '', frameId: r.data.frameId ?? 0, records };
}

function errorResponse(c: Context, e: unknown, log: Logger): Response {
  const err = e instanceof DivsError ? e : new DivsError('INTERNAL', 'internal error', { cause: e });
  if (err.code === 'INTERNAL') log.error({ err: e }, 'http ingest failed');
  return c.json({ error: { code: err.code, message: err.code === 'INTERNAL' ? 'internal error' : err.message } }, httpStatusOf(err.code) as 400);
}

/** The operator dashboard: its data and who may see it. */
export interface DashboardOptions {
  explorer: GatewayExplorer;
  /** Operators (job admins and dashboard operators): bearer tokens. */
  operators: GatewayAuth;
}

export interface HttpOptions {
  ingestor: Ingestor;
  auth: GatewayAuth;
  log: Logger;
  /** Largest request body (bytes); default 16 MiB. */
  maxBodyBytes?: number;
  /** Serves /metrics and records every request when given. */
  metrics?: Metrics;
  /** Readiness behind /readyz (absent: ready whenever the process answers). */
  ready?: () => Readiness | boolean | Promise<Readiness | boolean>;
  /** Serves the dashboard at `/` and its API at `/api/*` when given. */
  dashboard?: DashboardOptions;
}

/** The operator behind a dashboard API request (UNAUTHENTICATED without a token, PERMISSION_DENIED with another). */
function operatorOf(operators: GatewayAuth, c: Context<HttpEnv>): string {
  const header = c.req.header('authorization');
  if (!header) fail('UNAUTHENTICATED', 'the dashboard API needs "Authorization: Bearer <operator token>"');
  try {
    return operators.consumer(header);
  } catch (e) {
    // the consumer-facing message would say "unknown bearer token"; same code, clearer for operators
    if (e instanceof DivsError && e.code === 'PERMISSION_DENIED') fail('PERMISSION_DENIED', 'this token is not an operator token of this gateway');
    throw e;
  }
}

function addDashboard(app: Hono<HttpEnv>, d: DashboardOptions): void {
  serveDashboard(app, { dir: fileURLToPath(new URL('./dashboard/', import.meta.url)), title: 'DIVS gateway — operator dashboard', brand: 'gateway', footer: 'aggregator gateway · operator dashboard' });
  const x = d.explorer;
  app.use('/api/*', async (c, next) => {
    c.header('Cache-Control', 'no-store');
    operatorOf(d.operators, c);
    await next();
  });
  app.get('/api/overview', (c) => c.json(x.overview()));
  app.get('/api/series', (c) => c.json(x.series(intParam(c.req.query('seconds'), 'seconds', 300, 900))));
  app.get('/api/datasets', (c) => c.json(x.datasets()));
  app.get('/api/datasets/:id', (c) => c.json(x.dataset(c.req.param('id'), intParam(c.req.query('ueOffset'), 'ueOffset', 0), intParam(c.req.query('ueLimit'), 'ueLimit', 100, 1000))));
  app.get('/api/reports', (c) => c.json(x.reports(intParam(c.req.query('limit'), 'limit', 50, 500))));
  app.get('/api/reports/:id', (c) => c.json(x.report(intParam(c.req.param('id'), 'report id', 0))));
  app.get('/api/jobs', (c) => c.json(x.jobs(intParam(c.req.query('limit'), 'limit', 100, 500), c.req.query('state') || undefined)));
  app.get('/api/jobs/:id', (c) => c.json(x.job(c.req.param('id'))));
}

/** The Hono application (exported for in-process tests); serve it with platform/http.ts `startHttp`. */
export function createHttpApp(o: HttpOptions): Hono<HttpEnv> {
  const app = createPlatformApp({ service: 'gateway', log: o.log, ...(o.metrics ? { metrics: o.metrics } : {}), ...(o.ready ? { ready: o.ready } : {}) });
  const maxSize = o.maxBodyBytes ?? 16 * 1024 * 1024;
  app.post(
    '/v1/records',
    bodyLimit({ maxSize, onError: (c) => c.json({ error: { code: 'MESSAGE_TOO_LARGE', message: `request body exceeds ${maxSize} bytes` } }, 413) }),
    async (c) => {
      try {
        o.auth.ingest(c.req.header('authorization'));
        const type = (c.req.header('content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
        const proto = type === 'application/x-protobuf' || type === 'application/protobuf' || type === 'application/octet-stream';
        if (!proto && type !== 'application/json') fail('INVALID_ARGUMENT', 'Content-Type must be application/x-protobuf or application/json');
        let req: RawIngestRequest;
        if (proto) {
          req = decodeIngestRequest(new Uint8Array(await c.req.arrayBuffer()));
        } else {
          let value: unknown;
          try {
            value = await c.req.json();
          } catch (e) {
            fail('MALFORMED_MESSAGE', 'request body is not JSON', e);
          }
          req = fromJson(value);
        }
        const res = await o.ingestor.frame(req);
        if (proto) {
          return c.body(encodeIngestResponse(res) as Uint8Array<ArrayBuffer>, 200, { 'content-type': 'application/x-protobuf' });
        }
        return c.json({
          frameId: res.frameId,
          acks: res.acks.map((a) => ({ status: STATUS_NAMES[a.status] ?? 'UNSPECIFIED', sequence: a.sequence, recordHash: toHex(a.recordHash), errorCode: a.errorCode, errorMessage: a.errorMessage })),
        });
      } catch (e) {
        return errorResponse(c, e, c.get('log') ?? o.log);
      }
    },
  );
  if (o.dashboard) addDashboard(app, o.dashboard);
  return app;
}
