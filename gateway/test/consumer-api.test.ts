/**
 * The consumer side of the gateway in process: signed reports checked by the consumer SDK
 * (consumer/src/report.ts) — signature, role, trust anchors, request binding — consumers
 * authenticated by mTLS client certificates and by tokens, and configuration errors.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { VerificationReport, type SignedVerificationReport } from '../../proto/gen/divs/v1/gateway.ts';
import { toHex } from '../../protocol/src/bytes.ts';
import { EMPTY_ROOT } from '../../protocol/src/merkle.ts';
import { certDer, issueCertificate } from '../../protocol/src/pki.ts';
import { importPrivateKey } from '../../protocol/src/suites.ts';
import { silentLogger } from '../../platform/src/log.ts';
import { GatewayConsumer, verifyReport } from '../../consumer/src/report.ts';
import { startGateway, type Gateway } from '../src/main.ts';
import { ReportSigner } from '../src/report.ts';
import { parseGatewayConfig } from '../src/config.ts';
import { GatewayAuth } from '../src/auth.ts';
import { expectCode, tempDir, writeCa, type TestCa } from './helpers.ts';

let ca: TestCa;
let dir: string;

beforeAll(async () => {
  dir = tempDir('consumer-api');
  ca = await writeCa(dir);
});

const report = (over: Partial<VerificationReport> = {}): VerificationReport =>
  VerificationReport.fromPartial({ gatewayId: 'gw-r', datasetId: 'd1', nonce: new Uint8Array([1, 2, 3]), recordCount: 5, validCount: 5, ...over });

async function signer(role: 'gateway' | 'as', name = 'gw-r', issuer = ca.ca): Promise<ReportSigner> {
  const c = await issueCertificate({ ca: issuer, subjectName: name, role, validityDays: 5 });
  return new ReportSigner(importPrivateKey(c.keyPem), [certDer(c.cert)], name);
}

describe('signed verification reports', () => {
  it('[SC2-2] [FW-SU] a report signed by a consortium gateway verifies and is bound to its request', async () => {
    const s = await signer('gateway');
    const signed = s.sign(report());
    const v = verifyReport(signed, { roots: [ca.der] }, { datasetId: 'd1', nonce: new Uint8Array([1, 2, 3]) });
    expect(v.gateway).toBe('gw-r');
    expect(v.report.validCount).toBe(5);
    await expectCode(() => verifyReport(signed, { roots: [ca.der] }, { nonce: new Uint8Array([9]) }), 'INVALID_ARGUMENT');
    await expectCode(() => verifyReport(signed, { roots: [ca.der] }, { datasetId: 'other' }), 'INVALID_ARGUMENT');
  });

  it('[SC2-2] [SEC-1] refuses a changed report, a signer without the gateway role, another consortium and a gateway naming another', async () => {
    const s = await signer('gateway');
    const signed = s.sign(report());
    const changed: SignedVerificationReport = { ...signed, report: VerificationReport.encode({ ...VerificationReport.decode(signed.report), validCount: 6 }).finish() };
    await expectCode(() => verifyReport(changed, { roots: [ca.der] }), 'INVALID_SIGNATURE');
    await expectCode(async () => verifyReport((await signer('as')).sign(report()), { roots: [ca.der] }), 'UNTRUSTED_CERTIFICATE');
    const other = await writeCa(tempDir('other-ca'), 'another consortium');
    await expectCode(async () => verifyReport((await signer('gateway', 'gw-r', other.ca)).sign(report()), { roots: [ca.der] }), 'UNTRUSTED_CERTIFICATE');
    await expectCode(async () => verifyReport((await signer('gateway', 'gw-x')).sign(report()), { roots: [ca.der] }), 'INVALID_ARGUMENT');
    await expectCode(() => verifyReport(undefined, { roots: [ca.der] }), 'MISSING_FIELD');
  });
});

describe('consumer service over mTLS', () => {
  let gw: Gateway;
  let clientCreds: (name: string) => Promise<grpc.ChannelCredentials>;
  beforeAll(async () => {
    gw = await startGateway(
      {
        dataDir: join(dir, 'gw'),
        name: 'gw-tls',
        tls: true,
        pki: { enroll: { caCert: ca.certPath, caKey: ca.keyPath } },
        verify: { threads: 0 },
        httpPort: null,
        consumers: [{ name: 'carol' }, { name: 'dave', token: 'dave-token-0123456789abcdef' }],
        datasets: [{ id: 'meters', channel: 'meters', grants: ['carol', 'dave'] }],
      },
      silentLogger,
    );
    clientCreds = async (name) => {
      const c = await issueCertificate({ ca: ca.ca, subjectName: name, role: 'client', validityDays: 5 });
      return grpc.credentials.createSsl(Buffer.from(readFileSync(ca.certPath)), Buffer.from(c.keyPem), Buffer.from(c.certPem));
    };
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('[SEC-1] [FW-ACL] [SC2-1] authenticates a consumer by its client certificate and lists its datasets', async () => {
    const carol = new GatewayConsumer({ address: `localhost:${gw.port}`, credentials: await clientCreds('carol'), anchors: { roots: [ca.der] } });
    const list = await carol.listDatasets();
    expect(list.map((d) => d.datasetId)).toEqual(['meters']);
    expect(list[0]?.recordCount).toBe(0);
    carol.close();
    const mallory = new GatewayConsumer({ address: `localhost:${gw.port}`, credentials: await clientCreds('mallory'), anchors: { roots: [ca.der] } });
    await expectCode(mallory.listDatasets(), 'PERMISSION_DENIED');
    mallory.close();
    const anon = new GatewayConsumer({ address: `localhost:${gw.port}`, credentials: grpc.credentials.createSsl(Buffer.from(readFileSync(ca.certPath))), anchors: { roots: [ca.der] } });
    await expectCode(anon.listDatasets(), 'UNAUTHENTICATED');
    anon.close();
  });

  it('[SC2-2] [SEC-1] returns a signed report (token over TLS), here of an empty dataset', async () => {
    const dave = new GatewayConsumer({
      address: `localhost:${gw.port}`,
      token: 'dave-token-0123456789abcdef',
      credentials: grpc.credentials.createSsl(Buffer.from(readFileSync(ca.certPath))),
      anchors: { roots: [ca.der] },
    });
    const { report: r, gateway } = await dave.verifyDataset('meters');
    expect(gateway).toBe('gw-tls');
    expect(r.recordCount).toBe(0);
    expect(toHex(r.datasetCommitment)).toBe(toHex(EMPTY_ROOT));
    expect(r.complete).toBe(true);
    await expectCode(dave.verifyDataset('nope'), 'UNKNOWN_DATASET');
    dave.close();
  });
});

describe('configuration', () => {
  it('names every bad field (CONFIG_INVALID)', async () => {
    const e = await expectCode(() => parseGatewayConfig({ dataDir: '', port: 70000, datasets: [{ id: 'a' }, { id: 'a' }] }), 'CONFIG_INVALID');
    expect(e.message).toContain('dataDir');
    expect(e.message).toContain('port');
    await expectCode(() => parseGatewayConfig({ dataDir: '/x', datasets: [{ id: 'a' }, { id: 'a' }] }), 'CONFIG_INVALID');
    await expectCode(startGateway({ dataDir: join(dir, 'nopki') }, silentLogger), 'CONFIG_INVALID');
    await expectCode(() => new GatewayAuth({ consumers: [{ name: 'x', token: 'sha256:zz' }], anchors: [] }), 'CONFIG_INVALID');
  });

  it('[FW-ACL] accepts tokens stored as sha256 digests and refuses malformed authorization headers', async () => {
    const { createHash } = await import('node:crypto');
    const auth = new GatewayAuth({ consumers: [{ name: 'erin', token: `sha256:${createHash('sha256').update('erin-secret-0123456789').digest('hex')}` }], anchors: [] });
    expect(auth.consumer('Bearer erin-secret-0123456789')).toBe('erin');
    await expectCode(() => auth.consumer('Basic abc'), 'UNAUTHENTICATED');
    await expectCode(() => auth.consumer(undefined), 'UNAUTHENTICATED');
  });
});
