/**
 * Integration tests of consumer jobs on a real gateway process (TLS) with a real CEF and AS:
 * smart meters (use case I.2) register, sign readings and send them; consumers submit jobs under
 * the aggregator's usage policy, watch them, and check the gateway's attestation; operators
 * approve or reject code; outputs that would let raw records out are withheld; a restarted
 * gateway still serves finished results.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SignedRecord, TxRef } from '../../proto/gen/divs/v1/common.ts';
import { AckStatus } from '../../proto/gen/divs/v1/gateway.ts';
import { JobAttestation, JobState, JobStatement, type JobStatus } from '../../proto/gen/divs/v1/jobs.ts';
import { Domain, pae, sha256, toHex, utf8 } from '../../protocol/src/bytes.ts';
import { chainFromPem, createRootCa, issueCertificate, pemToDer } from '../../protocol/src/pki.ts';
import { importPrivateKey, nodeSign, suiteOfKeyObject } from '../../protocol/src/suites.ts';
import { measureRunner } from '../../enclave-runner/src/index.ts';
import { GatewayConsumer } from '../../consumer/src/report.ts';
import { JobAdminClient, JobClient, codeHashOf, gatewayCredentials, verifyAttestation } from '../../consumer/src/jobs.ts';
import { startStack, type Stack } from '../../test/helpers/divs.ts';
import { spawnService, type ServiceProcess } from '../../test/helpers/proc.ts';
import { buildFleet, fleetSigner, registerFleet, type Fleet } from '../../ue/src/fleet.ts';
import { UeClient } from '../../ue/src/client.ts';
import type { RecordSigner } from '../../ue/src/records.ts';
import { smartMeter, type MeterReading } from '../../ue/src/usecases.ts';
import { IngestClient } from '../src/client.ts';
import { run as jobCli } from '../../bin/commands/job.ts';
import { expectCode, tempDir } from './helpers.ts';

const PLMN = '26201';
const ALICE = 'alice-token-0123456789abcdef';
const CAROL = 'carol-token-0123456789abcdef';
const DAVE = 'dave-token-01234567890abcdef';
const ADMIN = 'admin-token-0123456789abcdef';
const UES = 8;
const READINGS = 48;

const SUM_CODE = `export function run(data, params) {
  const x = data.columns.importKWh;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return { rows: data.rows, sum: s, ues: data.meta.group.ues, scale: params.scale };
}`;
const MEAN_CODE = `export function run(data) {
  const x = data.columns.pvKWh;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return { mean: s / x.length };
}`;
const COUNT_SUM = `export function run(data) {
  const x = data.columns.importKWh;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return { rows: data.rows, sum: s };
}`;
const LEAK_COLUMN = 'export function run(data) { return Array.from(data.columns.importKWh); }';
const LEAK_TEXT = 'export function run(data) { return { dump: Array.from(data.columns.importKWh).join(",") }; }';
const SPIN = 'export function run() { for (;;) {} }';
const BROKEN = 'export function run( {';
const UNREVIEWED = 'export function run(data) { return { n: data.rows }; }';
const ALLOWED = [SUM_CODE, COUNT_SUM, MEAN_CODE, LEAK_COLUMN, LEAK_TEXT, SPIN, BROKEN].map(codeHashOf);

let s: Stack;
let fleet: Fleet;
let gw: ServiceProcess;
let cfgPath: string;
let rootsPem: string;
let alice: JobClient;
let admin: JobAdminClient;
const anchors = () => ({ roots: [s.rootDer] });
/** Readings per UE index, as generated (for expected values). */
const readings = new Map<number, MeterReading[]>();
/** Each UE's signer (it holds the UE's chain state). */
const signers = new Map<number, RecordSigner>();
/** The one tampered record: UE 7, sequence 5. */
const TAMPERED = { ue: 7, index: 4 };

function client(token: string): JobClient {
  return new JobClient({ address: `127.0.0.1:${gw.port}`, token, anchors: anchors(), credentials: gatewayCredentials({ rootsPem, gatewayName: 'gw-jobs' }) });
}

async function states(c: JobClient, jobId: string): Promise<JobStatus[]> {
  const seen: JobStatus[] = [];
  await c.watch(jobId, (st) => seen.push(st));
  return seen;
}

beforeAll(async () => {
  s = await startStack(PLMN);
  rootsPem = readFileSync(join(s.asDataDir, 'pki', 'root-ca.pem'), 'utf8');
  fleet = await buildFleet({ count: UES, seed: 'jobs-it', plmnId: PLMN, workers: 0 });
  expect((await s.cefClient.provisionBatch(fleet.subscribers())).provisioned).toBe(UES);
  const reg = new UeClient({ address: s.asAddress });
  expect((await registerFleet(fleet.ues, (r) => reg.registerBatch(r))).registered).toBe(UES);
  reg.close();

  const dir = tempDir('gw-jobs');
  const data = join(dir, 'gw');
  mkdirSync(data, { recursive: true });
  const policy = { datasets: ['meters', 'tiny', 'term'], minDistinctUes: 3, maxOutputBytes: 16_384, maxGroups: 32, maxValuesPerGroup: 64, transport: 'tls' };
  const cfg = {
    dataDir: data,
    name: 'gw-jobs',
    tls: true,
    httpPort: null,
    pki: { enroll: { caCert: join(s.asDataDir, 'pki', 'root-ca.pem'), caKey: join(s.asDataDir, 'pki', 'root-ca.key') } },
    as: { tokens: { '*': s.token }, timeoutMs: 2000, attempts: 2, backoffMs: 100 },
    verify: { threads: 1, concurrency: 1 },
    consumers: [
      { name: 'alice', token: ALICE },
      { name: 'carol', token: CAROL },
      { name: 'dave', token: DAVE },
    ],
    datasets: [
      { id: 'meters', channel: 'meters', schema: 'urn:divs:usecase:I.2', grants: ['*'] },
      { id: 'tiny', channel: 'tiny', grants: ['*'] },
      { id: 'term', channel: 'term', schema: 'urn:divs:usecase:I.2', grants: ['*'] },
      { id: 'other', channel: 'meters', grants: ['alice'] },
    ],
    jobs: {
      runners: 1,
      concurrency: 2,
      verificationMaxAgeMs: 60_000,
      defaultLimits: { memoryMb: 64, cpuMs: 2000, wallMs: 5000, outputBytes: 8192 },
      policies: [
        { consumer: 'alice', ...policy, maxLimits: { memoryMb: 128, cpuMs: 5000, wallMs: 10_000, outputBytes: 16_384 }, approval: { allowCodeHashes: ALLOWED, manual: true } },
        { consumer: 'carol', ...policy, transport: 'mtls', approval: { allowCodeHashes: ALLOWED } },
        { consumer: '*', datasets: ['meters'], minDistinctUes: 3, transport: 'tls' },
      ],
      admins: [{ name: 'op', token: ADMIN }],
    },
  };
  cfgPath = join(dir, 'gw.json');
  writeFileSync(cfgPath, JSON.stringify(cfg));
  gw = await spawnService(['gateway/src/main.ts', '--config', cfgPath], {}, { autoStop: false });

  // every UE sends READINGS smart-meter readings (batch-signed) on "meters"; UE 7 signs one by one
  // and one of its records is altered in transit; UEs 0 and 1 then continue their chains with 8
  // readings on "tiny" (records of one chain on two channels: each dataset's context)
  const ingest = new IngestClient({ address: `127.0.0.1:${gw.port}`, channel: 'meters', credentials: gatewayCredentials({ rootsPem }) });
  for (const [i, u] of fleet.ues.entries()) {
    const samples = smartMeter.generate({ seed: 'jobs-it', deviceId: `meter-${i}`, count: READINGS });
    readings.set(
      i,
      samples.map((x) => x.payload),
    );
    const sg = await fleetSigner(u);
    signers.set(i, sg);
    let recs: SignedRecord[];
    if (i === TAMPERED.ue) {
      recs = [];
      for (const x of samples) recs.push(await sg.sign(x.bytes, x.contentType, x.timestampMs));
      const body = Uint8Array.from((recs[TAMPERED.index] as SignedRecord).body);
      body[body.length - 120] ^= 0x01;
      recs[TAMPERED.index] = { ...(recs[TAMPERED.index] as SignedRecord), body };
    } else recs = await sg.signBatch(samples.map((x) => ({ payload: x.bytes, timestampMs: x.timestampMs })), smartMeter.contentType);
    const acks = await ingest.send(recs);
    expect(acks.every((a) => a.status === AckStatus.ACK_STATUS_STORED)).toBe(true);
  }
  ingest.close();
  const tiny = new IngestClient({ address: `127.0.0.1:${gw.port}`, channel: 'tiny', credentials: gatewayCredentials({ rootsPem }) });
  for (const i of [0, 1]) {
    const samples = smartMeter.generate({ seed: 'jobs-it', deviceId: `meter-${i}`, count: 8, startIndex: READINGS });
    const acks = await tiny.send(await (signers.get(i) as RecordSigner).signBatch(samples.map((x) => ({ payload: x.bytes, timestampMs: x.timestampMs })), smartMeter.contentType));
    expect(acks.every((a) => a.status === AckStatus.ACK_STATUS_STORED)).toBe(true);
  }
  tiny.close();
  alice = client(ALICE);
  admin = new JobAdminClient({ address: `127.0.0.1:${gw.port}`, token: ADMIN, credentials: gatewayCredentials({ rootsPem }) });
}, 120_000);

afterAll(async () => {
  alice?.close();
  admin?.close();
  await gw?.stop();
  await fleet?.close();
  await s?.stop();
});

describe('consumer jobs on a gateway', () => {
  let firstJob: { jobId: string; result: Uint8Array };

  it('[SC2-3] tells a consumer its usage policy, including the runner measurement it will be attested with', async () => {
    const p = await alice.policy();
    expect(p.gatewayId).toBe('gw-jobs');
    expect(p.datasets.sort()).toEqual(['meters', 'term', 'tiny']);
    expect(p.output).toMatchObject({ minDistinctUes: 3, maxOutputBytes: 16_384, maxGroups: 32, maxValuesPerGroup: 64 });
    expect(p.transport).toBe('tls');
    expect(p.manualApproval).toBe(true);
    expect(p.allowedCodeHashes.map(toHex).sort()).toEqual([...ALLOWED].sort());
    expect(toHex(p.runner?.digest ?? new Uint8Array())).toBe(measureRunner().digest);
    expect(p.maxLimits).toMatchObject({ memoryMb: 128, cpuMs: 5000, wallMs: 10_000 });
  });

  it('[SC2-2] [SC2-4] [SC2-3] verifies first, runs over verified records only, and attests the result', async () => {
    const first = await alice.submit({ datasetId: 'meters', code: SUM_CODE, params: { scale: 2 } });
    expect(first.state).toBe(JobState.JOB_STATE_QUEUED);
    const seen = await states(alice, first.jobId);
    const order = [...new Set(seen.map((x) => x.state))];
    expect(order[order.length - 1]).toBe(JobState.JOB_STATE_SUCCEEDED);
    for (const st of [JobState.JOB_STATE_VERIFYING, JobState.JOB_STATE_RUNNING]) if (order.includes(st)) expect(order.indexOf(st)).toBeLessThan(order.length - 1);
    expect(seen[seen.length - 1]?.progress).toBe(1);

    const r = await alice.result<{ rows: number; sum: number; ues: number; scale: number }>(first.jobId);
    // the dataset has UES × READINGS records; the altered one failed verification and was left out
    expect(r.report.recordCount).toBe(UES * READINGS);
    expect(r.report.validCount).toBe(UES * READINGS - 1);
    expect(r.report.invalid).toEqual([{ reason: 'INVALID_SIGNATURE', count: 1 }]);
    const g = r.document.groups[0];
    expect(r.document.groups).toHaveLength(1);
    expect(g?.value.rows).toBe(UES * READINGS - 1);
    expect(g?.ues).toBe(UES);
    expect(g?.records).toBe(UES * READINGS - 1);
    let expected = 0;
    for (const [i, list] of readings) list.forEach((m, k) => (expected += i === TAMPERED.ue && k === TAMPERED.index ? 0 : m.importKWh));
    expect(g?.value.sum).toBeCloseTo(expected, 9);
    expect(g?.value.scale).toBe(2);

    // the statement binds code, params, runner, data and result
    const st = r.statement;
    expect(toHex(st.codeHash)).toBe(codeHashOf(SUM_CODE));
    expect(toHex(st.paramsHash)).toBe(toHex(sha256(utf8('{"scale":2}'))));
    expect(toHex(st.runner?.digest ?? new Uint8Array())).toBe(measureRunner().digest);
    expect(st.consumer).toBe('alice');
    expect(st.inputRecords).toBe(UES * READINGS - 1);
    expect(st.inputUes).toBe(UES);
    expect(toHex(st.inputCommitment)).toBe(toHex(st.datasetCommitment));
    expect(st.limits).toMatchObject({ memoryMb: 64, cpuMs: 2000, wallMs: 5000, outputBytes: 8192 });
    expect(st.outputPolicy?.minDistinctUes).toBe(3);
    expect(st.approval).toBe('allow-list');
    expect(st.finishedAtMs).toBeGreaterThanOrEqual(st.startedAtMs);
    expect(st.startedAtMs).toBeGreaterThanOrEqual(st.submittedAtMs);
    // same commitment as a VerifyDataset of the same data
    const vd = new GatewayConsumer({ address: `127.0.0.1:${gw.port}`, token: ALICE, anchors: anchors(), credentials: gatewayCredentials({ rootsPem }) });
    const verified = await vd.verifyDataset('meters');
    vd.close();
    expect(toHex(verified.report.datasetCommitment)).toBe(toHex(st.datasetCommitment));
    expect(verified.report.validCount).toBe(r.report.validCount);

    // a changed byte in the result, or in the statement, fails verification
    const flipped = Uint8Array.from(r.result, (b, i) => (i === 5 ? b ^ 1 : b));
    expect(() => verifyAttestation(r.attestation, anchors(), { result: flipped })).toThrowError(expect.objectContaining({ code: 'ATTESTATION_MISMATCH' }));
    for (const at of [3, r.attestation.statement.length - 2]) {
      const bad = { ...r.attestation, statement: Uint8Array.from(r.attestation.statement, (b, i) => (i === at ? b ^ 1 : b)) };
      expect(() => verifyAttestation(bad, anchors(), { result: r.result })).toThrowError(expect.objectContaining({ code: 'INVALID_SIGNATURE' }));
    }
    // the same statement signed by a "gateway" of another root CA is refused
    const rogueCa = await createRootCa({ name: 'rogue root', validityDays: 2 });
    const rogue = await issueCertificate({ ca: rogueCa, subjectName: 'gw-jobs', role: 'gateway', validityDays: 1 });
    const rogueKey = importPrivateKey(rogue.keyPem);
    const forged = JobAttestation.fromPartial({
      statement: r.attestation.statement,
      signature: nodeSign(suiteOfKeyObject(rogueKey), rogueKey, pae(Domain.attestation, r.attestation.statement)),
      certChain: chainFromPem(rogue.certPem),
    });
    expect(() => verifyAttestation(forged, anchors(), { result: r.result })).toThrowError(expect.objectContaining({ code: 'UNTRUSTED_CERTIFICATE' }));
    expect(() => verifyAttestation(forged, { roots: [pemToDer(rogueCa.certPem)] }, { result: r.result })).not.toThrow();
    expect(() => verifyAttestation(r.attestation, anchors(), { result: r.result, codeHash: sha256(utf8(MEAN_CODE)) })).toThrowError(expect.objectContaining({ code: 'ATTESTATION_MISMATCH' }));
    expect(JobStatement.decode(r.attestation.statement).jobId).toBe(first.jobId);
    firstJob = { jobId: first.jobId, result: r.result };
  });

  it('[SC2-4] partitions by group_by itself and releases one aggregate per group, with the UE counts it counted', async () => {
    const r = await alice.run<{ mean: number }>({ datasetId: 'meters', code: MEAN_CODE, groupBy: ['_hour'] });
    // 48 quarter-hours = 12 hours, every hour has readings of all 8 meters
    expect(r.document.groups).toHaveLength(12);
    expect(r.document.suppressedGroups).toBe(0);
    for (const g of r.document.groups) {
      expect(g.ues).toBe(UES);
      const hour = g.key._hour as number;
      const rows: number[] = [];
      for (const [i, list] of readings) {
        list.forEach((m, k) => {
          if (new Date(m.intervalStartMs).getUTCHours() === hour && !(i === TAMPERED.ue && k === TAMPERED.index)) rows.push(m.pvKWh);
        });
      }
      expect(g.records).toBe(rows.length);
      expect(g.value.mean).toBeCloseTo(rows.reduce((a, b) => a + b, 0) / rows.length, 9);
    }
    expect(r.statement.groups).toBe(12);
    expect(r.statement.groupBy).toEqual(['_hour']);
  });

  it('[SC2-3] [SC2-4] withholds outputs below the aggregation threshold (OUTPUT_BELOW_THRESHOLD)', async () => {
    // one group per meter: one UE each, below the threshold of 3
    await expectCode(alice.run({ datasetId: 'meters', code: MEAN_CODE, groupBy: ['meterId'] }), 'OUTPUT_BELOW_THRESHOLD');
    // a dataset with readings of only 2 UEs (all 16 verified: their chains continue from "meters")
    const e = await expectCode(alice.run({ datasetId: 'tiny', code: MEAN_CODE }), 'OUTPUT_BELOW_THRESHOLD');
    expect(e.message).toMatch(/the largest holds 2 \(16 usable verified records\)/);
    const j = await alice.submit({ datasetId: 'tiny', code: MEAN_CODE });
    const last = await alice.watch(j.jobId);
    expect(last.state).toBe(JobState.JOB_STATE_WITHHELD);
    expect(last.errorCode).toBe('OUTPUT_BELOW_THRESHOLD');
    await expectCode(alice.result(j.jobId), 'OUTPUT_BELOW_THRESHOLD');
  });

  it('[SC2-4] [SEC-1] withholds per-record outputs that would smuggle raw records out (OUTPUT_NOT_AGGREGATE)', async () => {
    await expectCode(alice.run({ datasetId: 'meters', code: LEAK_COLUMN }), 'OUTPUT_NOT_AGGREGATE');
    await expectCode(alice.run({ datasetId: 'meters', code: LEAK_TEXT, limits: { outputBytes: 16_384 } }), 'OUTPUT_NOT_AGGREGATE');
    // grouping by a per-record field makes more groups than the policy allows
    await expectCode(alice.run({ datasetId: 'meters', code: MEAN_CODE, groupBy: ['intervalStartMs'] }), 'OUTPUT_NOT_AGGREGATE');
  });

  it('[SC2-3] [SEC-1] refuses jobs that break the usage policy, each with its code', async () => {
    await expectCode(alice.submit({ datasetId: 'meters', code: SUM_CODE, limits: { cpuMs: 50_000 } }), 'POLICY_LIMIT_EXCEEDED');
    await expectCode(alice.submit({ datasetId: 'other', code: SUM_CODE }), 'POLICY_DATASET_DENIED');
    await expectCode(alice.submit({ datasetId: 'nope', code: SUM_CODE }), 'UNKNOWN_DATASET');
    await expectCode(alice.submit({ datasetId: 'meters', code: SUM_CODE, groupBy: ['_secret'] }), 'INVALID_ARGUMENT');
    await expectCode(alice.submit({ datasetId: 'meters', code: SUM_CODE, params: undefined, nonce: new Uint8Array(65) }), 'INVALID_ARGUMENT');
    // carol must use mTLS: a bearer token over TLS is not enough; her client certificate is
    const carol = client(CAROL);
    await expectCode(carol.submit({ datasetId: 'meters', code: SUM_CODE }), 'POLICY_TRANSPORT_REQUIRED');
    carol.close();
    const ca = { certPem: rootsPem, keyPem: readFileSync(join(s.asDataDir, 'pki', 'root-ca.key'), 'utf8') };
    const cert = await issueCertificate({ ca, subjectName: 'carol', role: 'client', validityDays: 1 });
    const carolMtls = new JobClient({
      address: `127.0.0.1:${gw.port}`,
      anchors: anchors(),
      credentials: gatewayCredentials({ rootsPem, clientCertPem: cert.certPem, clientKeyPem: cert.keyPem, gatewayName: 'gw-jobs' }),
    });
    const viaCert = await carolMtls.run({ datasetId: 'meters', code: SUM_CODE, params: { scale: 1 } });
    expect(viaCert.statement.consumer).toBe('carol');
    carolMtls.close();
    // dave falls under "*": allow-list empty, no manual approval
    const dave = client(DAVE);
    await expectCode(dave.submit({ datasetId: 'meters', code: SUM_CODE }), 'POLICY_CODE_NOT_APPROVED');
    // and cannot see alice's jobs
    await expectCode(dave.result(firstJob.jobId), 'NOT_FOUND');
    await expectCode(dave.cancel(firstJob.jobId), 'NOT_FOUND');
    dave.close();
    // the admin API is for operators only
    const notAdmin = new JobAdminClient({ address: `127.0.0.1:${gw.port}`, token: ALICE, credentials: gatewayCredentials({ rootsPem }) });
    await expectCode(notAdmin.pending(), 'PERMISSION_DENIED');
    notAdmin.close();
  });

  it('[SC2-3] code off the allow-list waits for an operator; approved (and remembered) it runs, rejected it does not', async () => {
    const j = await alice.submit({ datasetId: 'meters', code: UNREVIEWED });
    expect(j.state).toBe(JobState.JOB_STATE_PENDING_APPROVAL);
    await expectCode(alice.result(j.jobId), 'JOB_NOT_FINISHED');
    const pending = await admin.pending();
    const p = pending.find((x) => x.jobId === j.jobId);
    expect(p?.code).toBe(UNREVIEWED);
    expect(p?.consumer).toBe('alice');
    expect(toHex(p?.codeHash ?? new Uint8Array())).toBe(codeHashOf(UNREVIEWED));
    const approved = await admin.approve(j.jobId, true);
    expect(approved.state).toBe(JobState.JOB_STATE_QUEUED);
    await expectCode(admin.approve(j.jobId), 'JOB_STATE_CONFLICT');
    expect((await alice.watch(j.jobId)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    const r = await alice.result<{ n: number }>(j.jobId);
    expect(r.statement.approval).toBe('manual:op');
    expect(r.document.groups[0]?.value.n).toBe(UES * READINGS - 1);
    // remembered: the same code now runs without waiting
    const again = await alice.submit({ datasetId: 'meters', code: UNREVIEWED, params: { other: true } });
    expect(again.state).toBe(JobState.JOB_STATE_QUEUED);
    expect((await alice.watch(again.jobId)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    // another unreviewed source, rejected
    const k = await alice.submit({ datasetId: 'meters', code: `${UNREVIEWED}\n// v2` });
    expect(k.state).toBe(JobState.JOB_STATE_PENDING_APPROVAL);
    const rej = await admin.reject(k.jobId, 'reads more than it needs');
    expect(rej.state).toBe(JobState.JOB_STATE_REJECTED);
    await expectCode(alice.result(k.jobId), 'JOB_REJECTED');
  });

  it('[SC2-4] sandbox failures end the job with the runner code; a running job can be cancelled', async () => {
    await expectCode(alice.run({ datasetId: 'meters', code: SPIN, limits: { cpuMs: 200, wallMs: 5000 } }), 'JOB_CPU_LIMIT');
    await expectCode(alice.run({ datasetId: 'meters', code: BROKEN }), 'JOB_CODE_ERROR');
    const j = await alice.submit({ datasetId: 'meters', code: SPIN, limits: { cpuMs: 5000, wallMs: 10_000 } });
    const seen: JobStatus[] = [];
    const watching = alice.watch(j.jobId, (st) => {
      seen.push(st);
    });
    while (!seen.some((x) => x.state === JobState.JOB_STATE_RUNNING && x.groupsTotal > 0)) await new Promise((r) => setTimeout(r, 20));
    const c = await alice.cancel(j.jobId);
    expect(c.state).toBe(JobState.JOB_STATE_CANCELLED);
    expect((await watching).errorCode).toBe('JOB_CANCELLED');
    // the runner is free again at once
    expect((await alice.run({ datasetId: 'meters', code: MEAN_CODE })).document.groups).toHaveLength(1);
  });

  it('[SC2-4] [SC2-3] the CLI submits and watches a job, verifies the result, and re-verifies the saved bundle offline', async () => {
    const dir = tempDir('job-cli');
    writeFileSync(join(dir, 'job.js'), MEAN_CODE);
    const bundle = join(dir, 'result.json');
    const conn = ['--gateway', `127.0.0.1:${gw.port}`, '--trust', join(s.asDataDir, 'pki', 'root-ca.pem'), '--tls', '--gateway-name', 'gw-jobs'];
    const out: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
    try {
      expect(await jobCli(['job', 'submit', ...conn, '--token', ALICE, '--dataset', 'meters', '--code', join(dir, 'job.js'), '--group-by', '_hour', '--watch', '--json', '--out', bundle])).toBe(0);
      const printed = JSON.parse(out.pop() as string) as { document: { groups: unknown[] }; verifiedRecords: string; codeHash: string };
      expect(printed.document.groups).toHaveLength(12);
      expect(printed.verifiedRecords).toBe(`${UES * READINGS - 1}/${UES * READINGS}`);
      expect(printed.codeHash).toBe(codeHashOf(MEAN_CODE));
      expect(await jobCli(['job', 'verify', '--bundle', bundle, '--trust', join(s.asDataDir, 'pki', 'root-ca.pem'), '--json'])).toBe(0);
      expect(JSON.parse(out.pop() as string)).toMatchObject({ ok: true, consumer: 'alice', inputRecords: UES * READINGS - 1 });
      // a saved result edited afterwards does not verify
      const saved = JSON.parse(readFileSync(bundle, 'utf8')) as { result: string };
      const bytes = Buffer.from(saved.result, 'base64');
      bytes[10] ^= 1;
      writeFileSync(bundle, JSON.stringify({ ...saved, result: bytes.toString('base64') }));
      await expectCode(jobCli(['job', 'verify', '--bundle', bundle, '--trust', join(s.asDataDir, 'pki', 'root-ca.pem')]), 'ATTESTATION_MISMATCH');
      expect(await jobCli(['job', 'pending', ...conn, '--admin-token', ADMIN, '--json'])).toBe(0);
      expect(JSON.parse(out.pop() as string)).toEqual([]);
      await expectCode(jobCli(['job', 'submit', ...conn, '--token', ALICE, '--dataset', 'meters', '--code', join(dir, 'job.js'), '--params', '{oops']), 'CONFIG_INVALID');
    } finally {
      log.mockRestore();
    }
  });

  it('[SC2-4] keeps finished results across a gateway restart; idempotent submissions return the same job', async () => {
    const key = { datasetId: 'meters', code: SUM_CODE, params: { scale: 3 }, idempotencyKey: 'nightly-2026-11-23' };
    const a = await alice.submit(key);
    const b = await alice.submit(key);
    expect(b.jobId).toBe(a.jobId);
    await expectCode(alice.submit({ ...key, params: { scale: 4 } }), 'INVALID_ARGUMENT');
    await alice.watch(a.jobId);
    await gw.stop();
    gw = await spawnService(['gateway/src/main.ts', '--config', cfgPath], {}, { autoStop: false });
    alice.close();
    alice = client(ALICE);
    const r = await alice.result(firstJob.jobId);
    expect(toHex(r.result)).toBe(toHex(firstJob.result));
    expect(toHex(r.statement.codeHash)).toBe(codeHashOf(SUM_CODE));
    expect((await alice.result(a.jobId)).document.groups).toHaveLength(1);
  });

  it('[SC2-2] reuses the verified snapshot of an unchanged dataset within verificationMaxAgeMs; a new record forces a fresh verification', async () => {
    const a = await alice.run({ datasetId: 'meters', code: MEAN_CODE });
    const b = await alice.run({ datasetId: 'meters', code: MEAN_CODE });
    // the same verification, reported with each job's own nonce
    expect(b.report.startedAtMs).toBe(a.report.startedAtMs);
    expect(toHex(b.report.nonce)).not.toBe(toHex(a.report.nonce));
    expect(toHex(b.statement.datasetCommitment)).toBe(toHex(a.statement.datasetCommitment));
    // one more reading of UE 0: the dataset changed, so it is verified again
    const sg = signers.get(0) as RecordSigner;
    const next = smartMeter.generate({ seed: 'jobs-it', deviceId: 'meter-0', count: 1, startIndex: READINGS + 8 })[0] as ReturnType<typeof smartMeter.generate>[number];
    const ingest = new IngestClient({ address: `127.0.0.1:${gw.port}`, channel: 'meters', credentials: gatewayCredentials({ rootsPem }) });
    const acks = await ingest.send([await sg.sign(next.bytes, next.contentType, next.timestampMs)]);
    ingest.close();
    expect(acks[0]?.status).toBe(AckStatus.ACK_STATUS_STORED);
    const c = await alice.run({ datasetId: 'meters', code: MEAN_CODE });
    expect(c.report.startedAtMs).toBeGreaterThan(a.report.startedAtMs);
    expect(c.report.recordCount).toBe(a.report.recordCount + 1);
  });

  it('[SC2-2] [VER-3] [UPD-1] a job run on the previous verification\'s windows while the AS answers is thrown away when a contract ended since', async () => {
    // UEs 2, 3 and 4 send two readings each on "term", signed before now
    const ingest = new IngestClient({ address: `127.0.0.1:${gw.port}`, channel: 'term', credentials: gatewayCredentials({ rootsPem }) });
    const sendReadings = async (i: number, times: number[], startIndex: number) => {
      const samples = smartMeter.generate({ seed: 'jobs-it', deviceId: `meter-${i}`, count: times.length, startIndex });
      const sg = signers.get(i) as RecordSigner;
      const recs: SignedRecord[] = [];
      for (const [k, x] of samples.entries()) recs.push(await sg.sign(x.bytes, x.contentType, times[k] as number));
      const acks = await ingest.send(recs);
      expect(acks.every((a) => a.status === AckStatus.ACK_STATUS_STORED)).toBe(true);
    };
    const now = Date.now();
    for (const i of [2, 3, 4]) await sendReadings(i, [now - 10_000, now - 9_000], READINGS + 20);
    type Sum = { rows: number; sum: number };
    const first = await alice.run<Sum>({ datasetId: 'term', code: COUNT_SUM });
    expect(first.document.groups[0]?.value.rows).toBe(6);

    // UE 4's contract ends; its device, not told yet, signs two more readings afterwards
    const u = fleet.ues[4] as (typeof fleet.ues)[number];
    await s.cefClient.applyAction(u.identity, { $case: 'terminate', value: { terminationTimeMs: 0 } });
    const ref = u.endorsement?.tx as TxRef;
    const ueKey = (await s.consumer.endorsement(ref)).ueKey;
    const deadline = Date.now() + 15_000;
    while ((await s.consumer.latestFor(ref, ueKey)).endorsement.version < 2) {
      if (Date.now() > deadline) throw new Error('the AS did not endorse version 2');
      await new Promise((r) => setTimeout(r, 100));
    }
    await sendReadings(4, [Date.now() + 5_000, Date.now() + 6_000], READINGS + 22);
    ingest.close();

    // The gateway still holds version 1 of UE 4 from the first job: judged against it, all 8
    // readings pass, and the job runs on them while the AS is asked. The AS proves version 2,
    // so that run is discarded and only the 6 readings signed before the termination count.
    const second = await alice.run<Sum>({ datasetId: 'term', code: COUNT_SUM });
    expect(second.report.recordCount).toBe(8);
    expect(second.report.validCount).toBe(6);
    expect(second.document.groups[0]?.value.rows).toBe(6);
    expect(second.statement.inputRecords).toBe(6);
    expect(second.document.groups[0]?.value.sum).toBeCloseTo(first.document.groups[0]?.value.sum as number, 9);
  });
});
