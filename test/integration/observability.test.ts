/**
 * Observability of the running services: Prometheus /metrics with per-RPC counters and AS
 * ledger/registration series, HTTP liveness and readiness, the ready line naming the HTTP
 * port, trace IDs carried from one gRPC service to the next, and config errors that name the
 * bad field. CEF + AS run as real processes on loopback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack, type Stack } from '../helpers/divs.ts';
import { buildFleet, type Fleet } from '../../ue/src/fleet.ts';
import { UeRegistrationServiceClient } from '../../proto/gen/divs/v1/ue_as.ts';
import { VerificationDataServiceClient } from '../../proto/gen/divs/v1/consumer_as.ts';
import { CapabilityExposureServiceClient, CapabilityExposureServiceService } from '../../proto/gen/divs/v1/cef.ts';
import { grpc, makeClient, RpcServer, TRACE_ID_KEY, unary, type Handlers } from '../../platform/src/grpc.ts';
import { DivsError } from '../../protocol/src/errors.ts';
import { loadAsConfig } from '../../as-node/src/config.ts';
import { startCef } from '../../cef/src/main.ts';

const PLMN = '26202';
let s: Stack;
let fleet: Fleet;
let asHttp: string;
let cefHttp: string;

const bearer = (token: string): { metadata: grpc.Metadata } => {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return { metadata: md };
};

/** One sample of a metric from Prometheus text (0 when absent); labels must all match. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return 0;
}

const scrape = async (base: string): Promise<string> => {
  const r = await fetch(`${base}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
  return r.text();
};

beforeAll(async () => {
  s = await startStack(PLMN);
  fleet = await buildFleet({ count: 2, seed: 'observability', plmnId: PLMN, workers: 0 });
  await s.cefClient.provisionBatch(fleet.subscribers());
  expect(typeof s.as.ready.httpPort).toBe('number');
  expect(typeof s.cef.ready.httpPort).toBe('number');
  asHttp = `http://127.0.0.1:${s.as.ready.httpPort as number}`;
  cefHttp = `http://127.0.0.1:${s.cef.ready.httpPort as number}`;
}, 120_000);

afterAll(async () => {
  await fleet?.close();
  await s?.stop();
});

describe('observability', () => {
  it('the ready lines name the HTTP port, next to the gRPC port', () => {
    expect(s.as.ready).toMatchObject({ service: 'as-node', port: s.as.port });
    expect(s.as.ready.httpPort).not.toBe(s.as.port);
    expect(s.cef.ready).toMatchObject({ service: 'cef', port: s.cef.port });
  });

  it('answers liveness and readiness over HTTP on both services', async () => {
    for (const base of [asHttp, cefHttp]) {
      const live = await fetch(`${base}/healthz`);
      expect(live.status).toBe(200);
      expect(await live.json()).toMatchObject({ status: 'ok' });
    }
    // the AS is ready once its CEF subscription is up
    const deadline = Date.now() + 10_000;
    let ready: Response;
    do {
      ready = await fetch(`${asHttp}/readyz`);
      if (ready.status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    } while (Date.now() < deadline);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', cefSubscription: 'connected' });
    expect((await fetch(`${cefHttp}/readyz`)).status).toBe(200);
  });

  it('[FW-ACL] counts every RPC by method and status code, with latencies', async () => {
    const q = makeClient(VerificationDataServiceClient, s.asAddress);
    try {
      const before = await scrape(asHttp);
      const method = 'divs.v1.VerificationDataService/GetCheckpoint';
      const ok0 = sample(before, 'divs_rpc_requests_total', { method, code: 'OK', service: 'as-node' });
      const bad0 = sample(before, 'divs_rpc_requests_total', { method, code: 'UNAUTHENTICATED', service: 'as-node' });
      await unary(q, q.getCheckpoint, {}, bearer(s.token));
      await unary(q, q.getCheckpoint, {}, bearer(s.token));
      const err = await unary(q, q.getCheckpoint, {}).catch((e: unknown) => e);
      expect((err as DivsError).code).toBe('UNAUTHENTICATED');
      const after = await scrape(asHttp);
      expect(sample(after, 'divs_rpc_requests_total', { method, code: 'OK', service: 'as-node' })).toBe(ok0 + 2);
      expect(sample(after, 'divs_rpc_requests_total', { method, code: 'UNAUTHENTICATED', service: 'as-node' })).toBe(bad0 + 1);
      expect(sample(after, 'divs_rpc_duration_seconds_count', { method })).toBeGreaterThanOrEqual(3);
      // process metrics come along
      expect(after).toMatch(/^process_cpu_user_seconds_total /m);
      expect(after).toMatch(/^nodejs_eventloop_lag_seconds /m);
    } finally {
      q.close();
    }
  });

  it('[END-1] [END-3] counts registrations by outcome and code, and shows ledger height and size', async () => {
    const ue = makeClient(UeRegistrationServiceClient, s.asAddress);
    try {
      const u = fleet.ues[0];
      if (!u) throw new Error('fleet too small');
      const before = await scrape(asHttp);
      await unary(ue, ue.register, { registration: u.registration });
      const replay = await unary(ue, ue.register, { registration: u.registration }).catch((e: unknown) => e);
      expect((replay as DivsError).code).toBe('REGISTRATION_REPLAYED');
      const after = await scrape(asHttp);
      expect(sample(after, 'divs_registrations_total', { result: 'accepted', code: 'OK' })).toBe(sample(before, 'divs_registrations_total', { result: 'accepted', code: 'OK' }) + 1);
      expect(sample(after, 'divs_registrations_total', { result: 'refused', code: 'REGISTRATION_REPLAYED' })).toBe(1);
      const q = makeClient(VerificationDataServiceClient, s.asAddress);
      const cp = await unary(q, q.getCheckpoint, {}, bearer(s.token));
      q.close();
      const size = Number((cp.checkpoint?.note ?? '').split('\n')[1]);
      expect(sample(after, 'divs_ledger_transactions')).toBe(size);
      expect(sample(after, 'divs_ledger_height')).toBeGreaterThanOrEqual(1);
      expect(sample(after, 'divs_registered_ues')).toBe(1);
      // the AS asked the CEF for the account status: the CEF counted that RPC
      const cef = await scrape(cefHttp);
      expect(sample(cef, 'divs_rpc_requests_total', { method: 'divs.v1.CapabilityExposureService/BatchGetAccountStatus', code: 'OK', service: 'cef' })).toBeGreaterThanOrEqual(1);
    } finally {
      ue.close();
    }
  });

  it('[UPD-3] counts endorsement updates by reason', async () => {
    const u = fleet.ues[0];
    if (!u) throw new Error('fleet too small');
    await s.cefClient.applyAction(u.identity, { $case: 'terminate', value: { terminationTimeMs: 0 } });
    const deadline = Date.now() + 10_000;
    let n = 0;
    while (Date.now() < deadline && n === 0) {
      n = sample(await scrape(asHttp), 'divs_endorsement_updates_total', { reason: 'CONTRACT_TERMINATED' });
      if (n === 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(n).toBe(1);
  });

  it('echoes or creates a trace ID on every HTTP answer', async () => {
    const mine = await fetch(`${asHttp}/healthz`, { headers: { [TRACE_ID_KEY]: 'trace-abc-12345' } });
    expect(mine.headers.get(TRACE_ID_KEY)).toBe('trace-abc-12345');
    const fresh = await fetch(`${asHttp}/healthz`);
    expect(fresh.headers.get(TRACE_ID_KEY)).toMatch(/^[0-9a-f]{32}$/);
    // a malformed one (log injection attempt) is replaced, not echoed
    const bad = await fetch(`${asHttp}/healthz`, { headers: { [TRACE_ID_KEY]: 'id" with "quotes and spaces' } });
    expect(bad.headers.get(TRACE_ID_KEY)).toMatch(/^[0-9a-f]{32}$/);
  });

  it('carries the trace ID from one gRPC service to the next', async () => {
    // front service -> back service, in this process: the back one must see the caller's ID
    const seen: string[] = [];
    const back = new RpcServer();
    const stub = Object.fromEntries(Object.keys(CapabilityExposureServiceService).map((k) => [k, () => Promise.reject(new DivsError('INTERNAL', 'not used'))])) as unknown as Handlers<typeof CapabilityExposureServiceService>;
    back.add(CapabilityExposureServiceService, {
      ...stub,
      getAccountStatus: async (_req, ctx) => {
        seen.push(ctx.traceId);
        return { status: undefined };
      },
    });
    const backPort = await back.listen('127.0.0.1', 0);
    const backClient = makeClient(CapabilityExposureServiceClient, `127.0.0.1:${backPort}`);
    const front = new RpcServer();
    front.add(CapabilityExposureServiceService, {
      ...stub,
      getAccountStatus: async (req, ctx) => {
        seen.push(ctx.traceId);
        return unary(backClient, backClient.getAccountStatus, req);
      },
    });
    const frontPort = await front.listen('127.0.0.1', 0);
    const client = makeClient(CapabilityExposureServiceClient, `127.0.0.1:${frontPort}`);
    try {
      const md = new grpc.Metadata();
      md.set(TRACE_ID_KEY, 'trace-from-the-edge-1');
      await unary(client, client.getAccountStatus, { identity: undefined }, { metadata: md });
      // without one, the front service makes one and still forwards it
      await unary(client, client.getAccountStatus, { identity: undefined });
      expect(seen[0]).toBe('trace-from-the-edge-1');
      expect(seen[1]).toBe('trace-from-the-edge-1');
      expect(seen[2]).toMatch(/^[0-9a-f]{32}$/);
      expect(seen[3]).toBe(seen[2]);
    } finally {
      client.close();
      backClient.close();
      await front.close(0);
      await back.close(0);
    }
  });

  it('refuses a bad HTTP port with CONFIG_INVALID naming the field', async () => {
    const err = (() => {
      try {
        loadAsConfig(undefined, { DIVS_AS_HTTP_PORT: '70000' }, { dataDir: '/tmp/x', cef: { address: '127.0.0.1:1' } });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(DivsError);
    expect((err as DivsError).code).toBe('CONFIG_INVALID');
    expect((err as DivsError).message).toMatch(/^httpPort: /);
    // a taken port: the CEF names httpPort and leaves nothing open
    const dir = mkdtempSync(join(tmpdir(), 'divs-obs-'));
    try {
      const taken = Number(new URL(cefHttp).port);
      const e2 = await startCef({ dataDir: dir, plmnId: '00101', operatorName: 'x', httpPort: taken }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((e2 as DivsError).code).toBe('CONFIG_INVALID');
      expect((e2 as DivsError).message).toMatch(/httpPort/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
