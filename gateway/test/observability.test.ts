/**
 * Observability of a real gateway (in this process) with a real CEF and AS node (processes on
 * loopback): three UEs send readings (one record altered after signing, one that does not
 * decode, one sent twice), a consumer asks for VerifyDataset and runs one job; then
 * - /healthz, /readyz and /metrics (Prometheus text) on the gateway's HTTP port, with the series
 *   and values that traffic must have produced;
 * - the dashboard API: operator tokens only (401/403 coded errors otherwise), its figures checked
 *   against the gRPC answers (report counts, attestation hashes), descriptions without payloads,
 *   coded errors for bad parameters;
 * - the dashboard's config section (zod errors name the field).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SignedRecord } from '../../proto/gen/divs/v1/common.ts';
import { AckStatus, type VerificationReport } from '../../proto/gen/divs/v1/gateway.ts';
import { sha256, toHex } from '../../protocol/src/bytes.ts';
import { silentLogger } from '../../platform/src/log.ts';
import { GatewayConsumer } from '../../consumer/src/report.ts';
import { JobClient, codeHashOf, type VerifiedJobResult } from '../../consumer/src/jobs.ts';
import { startStack, type Stack } from '../../test/helpers/divs.ts';
import { expectCodedErrors, expectDashboardServed, getJson, promSample as sample, type JsonAnswer } from '../../test/helpers/http.ts';
import { buildFleet, fleetSigner, registerFleet, type Fleet } from '../../ue/src/fleet.ts';
import { UeClient } from '../../ue/src/client.ts';
import { IngestClient } from '../src/client.ts';
import { parseGatewayConfig } from '../src/config.ts';
import { startGateway, type Gateway } from '../src/main.ts';
import { expectCode, tempDir } from './helpers.ts';
import { reading } from './fixtures.ts';

const PLMN = '26205';
const ALICE = 'alice-token-obs-0123456789';
const OPERATOR = 'operator-token-obs-0123456789';
const VIEWER = 'viewer-token-obs-0123456789';
const CODE = 'export function run(data) { const x = data.columns.kWh; let s = 0; for (let i = 0; i < x.length; i++) s += x[i]; return { n: data.rows, sum: s }; }';

let s: Stack;
let fleet: Fleet;
let gw: Gateway;
let base: string;
let alice: GatewayConsumer;
let jobs: JobClient;
let report: VerificationReport;
let job: VerifiedJobResult;

const api = (path: string, token = OPERATOR): Promise<JsonAnswer> => getJson(`${base}${path}`, token);

beforeAll(async () => {
  s = await startStack(PLMN);
  fleet = await buildFleet({ count: 3, seed: 'gw-observability', plmnId: PLMN, workers: 0 });
  expect((await s.cefClient.provisionBatch(fleet.subscribers())).provisioned).toBe(3);
  const reg = new UeClient({ address: s.asAddress });
  expect((await registerFleet(fleet.ues, (r) => reg.registerBatch(r))).registered).toBe(3);
  reg.close();
  const dir = tempDir('gw-obs');
  gw = await startGateway(
    {
      dataDir: join(dir, 'gw'),
      name: 'gw-obs',
      pki: { enroll: { caCert: join(s.asDataDir, 'pki', 'root-ca.pem'), caKey: join(s.asDataDir, 'pki', 'root-ca.key') } },
      as: { tokens: { '*': s.token }, timeoutMs: 2000, attempts: 2, backoffMs: 100 },
      verify: { threads: 1, concurrency: 1 },
      consumers: [{ name: 'alice', token: ALICE }],
      datasets: [{ id: 'meters', channel: 'meters', description: 'smart meter readings', schema: 'urn:divs:test:reading', grants: ['alice'] }],
      jobs: {
        runners: 1,
        policies: [{ consumer: 'alice', datasets: ['meters'], minDistinctUes: 1, transport: 'any', approval: { allowCodeHashes: [codeHashOf(CODE)] } }],
        admins: [{ name: 'op', token: OPERATOR }],
      },
      dashboard: { operators: [{ name: 'viewer', token: VIEWER }] },
    },
    silentLogger,
  );
  base = `http://127.0.0.1:${gw.httpPort as number}`;

  // 3 UEs × 4 readings; the last reading of UE 2 is altered after signing (its signature fails)
  const records: SignedRecord[] = [];
  for (const u of fleet.ues) {
    const sg = await fleetSigner(u);
    for (let i = 0; i < 4; i++) records.push(await sg.sign(reading(10 * u.index + i), 'application/json', Date.now() - 60_000 + i));
  }
  const last = records[records.length - 1] as SignedRecord;
  const body = Uint8Array.from(last.body);
  const at = Buffer.from(body).indexOf('"i":') + 4;
  body[at] = body[at] === 0x39 ? 0x38 : (body[at] as number) + 1;
  records[records.length - 1] = { ...last, body };
  const ingest = new IngestClient({ address: gw.address, channel: 'meters' });
  const acks = await ingest.send([...records, new Uint8Array([1, 2, 3]), records[0] as SignedRecord]);
  ingest.close();
  expect(acks.map((a) => a.status)).toEqual([...records.map(() => AckStatus.ACK_STATUS_STORED), AckStatus.ACK_STATUS_REJECTED, AckStatus.ACK_STATUS_DUPLICATE]);

  alice = new GatewayConsumer({ address: gw.address, token: ALICE, anchors: { roots: [s.rootDer] } });
  report = (await alice.verifyDataset('meters')).report;
  jobs = new JobClient({ address: gw.address, token: ALICE, anchors: { roots: [s.rootDer] } });
  const st = await jobs.submit({ datasetId: 'meters', code: CODE });
  job = await jobs.result(st.jobId, {}, { waitMs: 30_000 });
}, 120_000);

afterAll(async () => {
  alice?.close();
  jobs?.close();
  await gw?.close();
  await fleet?.close();
  await s?.stop();
});

describe('gateway health and metrics', () => {
  it('answers /healthz and /readyz without credentials', async () => {
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', service: 'gateway' });
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', service: 'gateway', gatewayId: 'gw-obs' });
    // every answer carries a trace ID (adopted when the caller sends a well-formed one)
    const traced = await fetch(`${base}/healthz`, { headers: { 'x-divs-trace-id': 'obs-trace-0001' } });
    expect(traced.headers.get('x-divs-trace-id')).toBe('obs-trace-0001');
  });

  it('[E2E-2] [VER-3] [SC2-2] [SC2-4] serves Prometheus series for ingest, verification, jobs, store and RPCs', async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const m = await res.text();
    const g = (name: string, labels: Record<string, string> = {}) => sample(m, name, { service: 'gateway', ...labels });
    // ingest: 12 stored, the junk record rejected, the resend a duplicate
    expect(g('divs_gateway_records_ingested_total', { outcome: 'stored' })).toBe(12);
    expect(g('divs_gateway_records_ingested_total', { outcome: 'duplicate' })).toBe(1);
    expect(g('divs_gateway_records_ingested_total', { outcome: 'rejected' })).toBe(1);
    expect(g('divs_gateway_records_rejected_total', { code: 'MALFORMED_MESSAGE' })).toBe(1);
    // verification: VerifyDataset and the job's verification, each over the 12 stored records
    expect(report.recordCount).toBe(12);
    expect(report.validCount).toBe(11);
    expect(report.invalid).toEqual([{ reason: 'INVALID_SIGNATURE', count: 1 }]);
    expect(g('divs_verification_runs_total')).toBe(2);
    expect(g('divs_verification_records_total', { result: 'valid', reason: 'VALID' })).toBe(22);
    expect(g('divs_verification_records_total', { result: 'invalid', reason: 'INVALID_SIGNATURE' })).toBe(2);
    expect(g('divs_verification_duration_seconds_count')).toBe(2);
    // jobs: one succeeded, nothing left in the queue
    expect(g('divs_jobs_finished_total', { state: 'SUCCEEDED' })).toBe(1);
    expect(g('divs_job_duration_seconds_count', { state: 'SUCCEEDED' })).toBe(1);
    expect(g('divs_job_duration_seconds_sum', { state: 'SUCCEEDED' })).toBeGreaterThan(0);
    expect(g('divs_job_run_seconds_count', { state: 'SUCCEEDED' })).toBe(1);
    expect(g('divs_jobs_queued')).toBe(0);
    expect(g('divs_jobs_running')).toBe(0);
    expect(g('divs_jobs_pending_approval')).toBe(0);
    // store
    expect(g('divs_gateway_store_records')).toBe(12);
    expect(g('divs_gateway_store_ues')).toBe(3);
    expect(g('divs_gateway_datasets')).toBe(1);
    expect(g('divs_gateway_dataset_records', { dataset: 'meters' })).toBe(12);
    expect(g('divs_gateway_dataset_ues', { dataset: 'meters' })).toBe(3);
    expect(g('divs_gateway_ingest_pending')).toBe(0);
    // per-RPC series, by full method name and status
    expect(g('divs_rpc_requests_total', { method: 'divs.v1.GatewayConsumerService/VerifyDataset', code: 'OK' })).toBe(1);
    expect(g('divs_rpc_requests_total', { method: 'divs.v1.GatewayJobService/SubmitJob', code: 'OK' })).toBe(1);
    expect(g('divs_rpc_duration_seconds_count', { method: 'divs.v1.GatewayConsumerService/VerifyDataset' })).toBe(1);
    // HTTP series and the process's own
    expect(g('divs_http_requests_total', { route: '/healthz', method: 'GET', status: '200' })).toBeGreaterThanOrEqual(2);
    expect(sample(m, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
  });
});

describe('dashboard API', () => {
  it('[FW-ACL] [SEC-1] answers operators only: 401 without a token, 403 with a consumer token', async () => {
    const anon = await api('/api/overview', '');
    expect(anon.status).toBe(401);
    expect(anon.body).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    const consumer = await api('/api/datasets', ALICE);
    expect(consumer.status).toBe(403);
    expect(consumer.body).toMatchObject({ error: { code: 'PERMISSION_DENIED' } });
    expect((await api('/api/jobs', 'Bearer-less garbage with spaces')).status).toBe(401);
    expect((await api('/api/overview', VIEWER)).status).toBe(200);
    await expectDashboardServed(base);
  });

  it('[SC2-1] [SC2-2] [VER-3] shows datasets as descriptions and the reports issued, matching the gRPC answers', async () => {
    const list = await api('/api/datasets');
    expect(list.status).toBe(200);
    const ds = (list.body.datasets as Array<Record<string, unknown> & { latestReport: Record<string, unknown> }>)[0];
    expect(ds).toMatchObject({ id: 'meters', channel: 'meters', recordCount: 12, ueCount: 3, grants: ['alice'] });
    // the latest report is the job's (it verified after VerifyDataset): same data, same counts
    expect(ds?.latestReport).toMatchObject({ recordCount: 12, validCount: 11, invalid: [{ reason: 'INVALID_SIGNATURE', count: 1 }], complete: true, source: 'job' });
    const detail = await api('/api/datasets/meters');
    expect((detail.body.ues as unknown[]).length).toBe(3);
    const reports = detail.body.reports as Array<{ id: number; source: string; jobId: string }>;
    expect(reports.map((r) => r.source)).toEqual(['job', 'verify']);
    // descriptions and reports only: no payload byte of any record appears
    expect(JSON.stringify(list.body) + JSON.stringify(detail.body)).not.toContain('kWh');

    const verify = await api(`/api/reports/${(reports[1] as { id: number }).id}`);
    expect(verify.status).toBe(200);
    expect(verify.body).toMatchObject({
      datasetId: 'meters',
      consumer: 'alice',
      recordCount: report.recordCount,
      validCount: report.validCount,
      invalid: report.invalid,
      datasetCommitment: toHex(report.datasetCommitment),
      commitmentSize: report.commitmentSize,
      signatureCheck: { verified: true, code: 'OK' },
    });
    expect((verify.body.checkpoints as unknown[]).length).toBe(report.checkpoints.length);
    expect((verify.body.endorsements as Array<{ txId: number }>).map((e) => e.txId)).toEqual(report.endorsements.map((e) => e.txId));
  });

  it('[SC2-3] [SC2-4] shows jobs with their attestation, checked and matching GetJobResult', async () => {
    const list = await api('/api/jobs');
    const rows = list.body.jobs as Array<{ jobId: string; state: string; consumer: string; codeHash: string; durationMs: number }>;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ jobId: job.jobId, state: 'SUCCEEDED', consumer: 'alice', codeHash: codeHashOf(CODE) });
    expect(rows[0]?.durationMs).toBeGreaterThan(0);
    const d = await api(`/api/jobs/${job.jobId}`);
    const att = d.body.attestation as { statement: Record<string, unknown>; check: { verified: boolean }; signature: string };
    expect(att.check.verified).toBe(true);
    expect(att.statement.resultHash).toBe(toHex(job.statement.resultHash));
    expect(att.statement.codeHash).toBe(toHex(job.statement.codeHash));
    expect(att.statement.datasetCommitment).toBe(toHex(job.statement.datasetCommitment));
    expect(att.signature).toBe(toHex(job.attestation.signature));
    expect(d.body.resultHash).toBe(toHex(sha256(job.result)));
    expect(d.body.code).toBe(CODE);
    // the result itself stays the consumer's
    expect(JSON.stringify(d.body)).not.toContain(Buffer.from(job.result).toString('utf8'));
    expect((await api('/api/jobs?state=succeeded')).body.jobs).toHaveLength(1);
    expect((await api('/api/jobs?state=FAILED')).body.jobs).toHaveLength(0);
  });

  it('gives chart data: ingest per second, outcomes by reason, job durations', async () => {
    const r = await api('/api/series?seconds=600');
    const ingest = r.body.ingest as { stored: number[]; duplicate: number[]; rejected: number[]; stepMs: number };
    expect(ingest.stored).toHaveLength(600);
    expect(ingest.stepMs).toBe(1000);
    const total = (a: number[]) => a.reduce((x, y) => x + y, 0);
    expect([total(ingest.stored), total(ingest.duplicate), total(ingest.rejected)]).toEqual([12, 1, 1]);
    expect(r.body.outcomes).toEqual([
      { reason: 'VALID', result: 'valid', count: 11 },
      { reason: 'INVALID_SIGNATURE', result: 'invalid', count: 1 },
    ]);
    const durations = r.body.jobDurations as Array<{ jobId: string; state: string; runMs: number }>;
    expect(durations.map((j) => [j.jobId, j.state])).toEqual([[job.jobId, 'SUCCEEDED']]);
    const o = await api('/api/overview');
    expect(o.body).toMatchObject({ gatewayId: 'gw-obs', store: { records: 12, ues: 3 }, datasets: 1, reportsKept: 2, jobs: { enabled: true, queued: 0, running: 0 } });
  });

  it('answers bad input with coded errors and the matching HTTP status', async () => {
    const cases: Array<[string, number, string]> = [
      ['/api/datasets/nope', 404, 'UNKNOWN_DATASET'],
      ['/api/reports/abc', 400, 'INVALID_ARGUMENT'],
      ['/api/reports/99999', 404, 'NOT_FOUND'],
      ['/api/jobs/00000000-0000-0000-0000-000000000000', 404, 'NOT_FOUND'],
      ['/api/jobs?state=BOGUS', 400, 'INVALID_ARGUMENT'],
      ['/api/jobs?limit=-1', 400, 'INVALID_ARGUMENT'],
      ['/api/series?seconds=100000', 400, 'INVALID_ARGUMENT'],
      ['/api/datasets/meters?ueLimit=5000', 400, 'INVALID_ARGUMENT'],
      ['/api/nothing', 404, 'NOT_FOUND'],
    ];
    await expectCodedErrors(api, cases);
  });
});

describe('dashboard configuration', () => {
  it('refuses bad dashboard settings with CONFIG_INVALID naming the field', async () => {
    const e = await expectCode(() => parseGatewayConfig({ dataDir: '/tmp/x', dashboard: { keepReports: 0 } }), 'CONFIG_INVALID');
    expect(e.message).toContain('dashboard.keepReports');
    const t = await expectCode(() => parseGatewayConfig({ dataDir: '/tmp/x', dashboard: { operators: [{ name: 'x', token: 'short' }] } }), 'CONFIG_INVALID');
    expect(t.message).toContain('dashboard.operators.0.token');
    expect(parseGatewayConfig({ dataDir: '/tmp/x' }).dashboard).toEqual({ enabled: true, operators: [], keepReports: 500 });
  });
});
