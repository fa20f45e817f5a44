/**
 * @module as-node/http
 * The AS node's HTTP side: /healthz, /readyz and /metrics (platform/http.ts), the ledger
 * explorer's JSON API and the operator dashboard that uses it.
 *
 * JSON API (all `GET`, bearer token of a consumer or admin of this AS required) [FW-ACL]:
 * - `/api/ledger`: ledger ID, height, size, roots, registered UEs, latest checkpoint;
 * - `/api/blocks?from&limit`: block summaries, oldest first (default: the newest 20);
 * - `/api/blocks/:height?offset&limit`: one block's header and a page of its transactions;
 * - `/api/tx/:id`: the decoded endorsement (UE identity, public key, account status, version,
 *   previous/next version, AS signature and certificate) with its inclusion proof;
 * - `/api/ue?imei|msisdn|iccid|eid`: a UE's history of versions;
 * - `/api/checkpoints?limit`: the latest signed checkpoint, its (co)signatures, and the tree
 *   state at each recent block boundary.
 * Errors are `{"error":{"code","message"}}` with the HTTP status of the DIVS code.
 *
 * The dashboard (`/`, static files from ./dashboard on the shared kit, no build step; served by
 * platform/http.ts `serveDashboard`) holds no data itself: it asks for the token, keeps it in
 * sessionStorage and calls the API with it. Its pages are served with a strict
 * Content-Security-Policy (no inline script, same-origin only).
 */
import { fileURLToPath } from 'node:url';
import type { Context } from 'hono';
import { fail } from '../../protocol/src/errors.ts';
import { grpc, type CallContext } from '../../platform/src/grpc.ts';
import { createHttpApp, serveDashboard, startHttp, type HttpEnv, type Readiness, type RunningHttp } from '../../platform/src/http.ts';
import type { Metrics } from '../../platform/src/metrics.ts';
import { silentLogger, type Logger } from '../../platform/src/log.ts';
import type { Authenticator, Principal } from './auth.ts';
import type { EndorsementContract } from './contract.ts';
import { LedgerExplorer, intParam } from './explorer.ts';

export interface AsHttpOptions {
  contract: EndorsementContract;
  auth: Authenticator;
  /** Key name of this AS in checkpoints (its node name). */
  asName: string;
  metrics?: Metrics;
  log?: Logger;
  ready?: () => Readiness | boolean | Promise<Readiness | boolean>;
  /** Listen address (default 127.0.0.1) and port (default 0: any free one). */
  host?: string;
  port?: number;
}

/** The bearer token from an HTTP request, checked by the AS's own access control [FW-ACL]. */
function authenticate(auth: Authenticator, c: Context<HttpEnv>): Principal {
  const header = c.req.header('authorization');
  if (!header) fail('UNAUTHENTICATED', 'the dashboard API needs "Authorization: Bearer <token>"');
  // the same Authenticator as the gRPC services, so one token grants the same roles everywhere
  const metadata = new grpc.Metadata();
  metadata.set('authorization', header);
  const ctx: CallContext = {
    metadata,
    peer: 'http',
    peerCertificate: () => undefined,
    cancelled: () => false,
    signal: c.req.raw.signal,
    log: c.get('log'),
    traceId: c.get('traceId'),
  };
  return auth.require(ctx, 'admin', 'consumer');
}

/** Builds the AS node's Hono app (without listening). */
export function createAsHttpApp(o: AsHttpOptions) {
  const explorer = new LedgerExplorer(o.contract, { asName: o.asName });
  const app = createHttpApp({ service: 'as-node', log: o.log ?? silentLogger, ...(o.metrics ? { metrics: o.metrics } : {}), ...(o.ready ? { ready: o.ready } : {}) });

  serveDashboard(app, { dir: fileURLToPath(new URL('./dashboard/', import.meta.url)), title: 'DIVS AS node — ledger explorer', brand: 'AS node', footer: 'operator dashboard' });

  app.use('/api/*', async (c, next) => {
    c.header('Cache-Control', 'no-store');
    authenticate(o.auth, c);
    await next();
  });
  app.get('/api/ledger', (c) => c.json(explorer.overview()));
  app.get('/api/blocks', (c) => {
    const from = c.req.query('from');
    return c.json(explorer.blocks(from === undefined || from === '' ? undefined : intParam(from, 'from'), intParam(c.req.query('limit'), 'limit', 20)));
  });
  app.get('/api/blocks/:height', (c) => c.json(explorer.block(intParam(c.req.param('height'), 'height'), intParam(c.req.query('offset'), 'offset', 0), intParam(c.req.query('limit'), 'limit', 100))));
  app.get('/api/tx/:id', (c) => c.json(explorer.tx(intParam(c.req.param('id'), 'tx id'))));
  app.get('/api/ue', (c) => {
    const q = { imei: c.req.query('imei') ?? '', iccid: c.req.query('iccid') ?? '', eid: c.req.query('eid') ?? '', msisdn: c.req.query('msisdn') ?? '' };
    return c.json(explorer.ue(q));
  });
  app.get('/api/checkpoints', (c) => c.json(explorer.checkpoints(intParam(c.req.query('limit'), 'limit', 20))));
  return app;
}

/** Starts the AS node's HTTP server (dashboard, API, health, metrics). */
export function startAsHttp(o: AsHttpOptions): Promise<RunningHttp> {
  return startHttp(createAsHttpApp(o), { host: o.host ?? '127.0.0.1', port: o.port ?? 0 });
}
