/**
 * @module http
 * HTTP ingest for constrained devices [E2E-2] [VER-1] (Hono on @hono/node-server): one POST per
 * frame of records, in protobuf or JSON, answered with one ack per record after the records are
 * durable — the same checks, store and acks as the gRPC stream.
 *
 * - `POST /v1/records` with `Content-Type: application/x-protobuf` (or `application/protobuf`):
 *   body = IngestRequest bytes; answer = IngestResponse bytes.
 * - `POST /v1/records` with `Content-Type: application/json`:
 *   `{"channel":"meters","frameId":7,"records":[{"record":"<base64 SignedRecord>"} |
 *   {"body":"<b64>","signature":"<b64>","batch":{"index":0,"size":4,"path":["<b64>"],"root":"<b64>"}}]}`;
 *   answer `{"frameId":7,"acks":[{"status":"STORED","sequence":1,"recordHash":"<hex>","errorCode":"","errorMessage":""}]}`.
 * - `GET /healthz`.
 * Errors are JSON `{"error":{"code":"…","message":"…"}}` with the HTTP status of the code.
 */
import type { AddressInfo } from 'node:net';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { serve } from '@hono/node-server';
import { z } from 'zod';
import { AckStatus } from '../../proto/gen/divs/v1/gateway.ts';
import { SignedRecord } from '../../proto/gen/divs/v1/common.ts';
import { fromBase64, toHex } from '../../protocol/src/bytes.ts';
import { DivsError, fail, httpStatusOf } from '../../protocol/src/errors.ts';
import type { Logger } from '../../platform/src/log.ts';
import type { GatewayAuth } from './auth.ts';
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

export interface HttpOptions {
  ingestor: Ingestor;
  auth: GatewayAuth;
  log: Logger;
  /** Largest request body (bytes); default 16 MiB. */
  maxBodyBytes?: number;
  /** Answers /healthz with 503 when false. */
  healthy?: () => boolean;
}

/** The Hono application (exported for in-process tests). */
export function createHttpApp(o: HttpOptions): Hono {
  const app = new Hono();
  const maxSize = o.maxBodyBytes ?? 16 * 1024 * 1024;
  app.get('/healthz', (c) => ((o.healthy?.() ?? true) ? c.json({ status: 'ok' }) : c.json({ status: 'unavailable' }, 503)));
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
        return errorResponse(c, e, o.log);
      }
    },
  );
  app.notFound((c) => c.json({ error: { code: 'INVALID_ARGUMENT', message: `no route ${c.req.method} ${c.req.path}` } }, 404));
  app.onError((e, c) => errorResponse(c, e, o.log));
  return app;
}

/** A running HTTP server. */
export interface HttpServer {
  port: number;
  close(): Promise<void>;
}

/** Serves the app on host:port (0 = any free port). */
export async function startHttp(app: Hono, host: string, port: number): Promise<HttpServer> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: host, port }, (info: AddressInfo) => {
      resolve({
        port: info.port,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            // idle keep-alive sockets would hold close() open
            (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      });
    });
    server.once('error', reject);
  });
}
