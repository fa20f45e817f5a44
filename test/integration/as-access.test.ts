/**
 * Access control and transport security of the AS node [FW-ACL] [SEC-1] [GEN-1], with real
 * processes: mTLS service users with certificates under the consortium root CA, refusal of
 * anonymous and foreign-CA callers, server reflection, and no way to hand the AS raw data.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Client, credentials } from '@grpc/grpc-js';
import { spawnService, type ServiceProcess } from '../helpers/proc.ts';
import { tempDir } from '../helpers/divs.ts';
import { createRootCa, issueCertificate } from '../../protocol/src/pki.ts';
import { VerificationDataServiceClient } from '../../proto/gen/divs/v1/consumer_as.ts';
import { unary } from '../../platform/src/grpc.ts';
import { DivsError } from '../../protocol/src/errors.ts';

let dir: string;
let cef: ServiceProcess;
let as: ServiceProcess;
let rootPem: string;

beforeAll(async () => {
  dir = tempDir('access');
  cef = await spawnService(['cef/src/main.ts', '--data-dir', join(dir, 'cef'), '--plmn', '26201'], {}, { autoStop: false });
  as = await spawnService(['as-node/src/main.ts', '--data-dir', join(dir, 'as'), '--cef', `127.0.0.1:${cef.port}`, '--mtls'], {}, { autoStop: false });
  rootPem = readFileSync(join(dir, 'as', 'pki', 'root-ca.pem'), 'utf8');
});

afterAll(async () => {
  await Promise.allSettled([as?.stop(), cef?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

async function clientWith(certPem?: string, keyPem?: string): Promise<VerificationDataServiceClient> {
  const creds = credentials.createSsl(Buffer.from(rootPem), keyPem ? Buffer.from(keyPem) : null, certPem ? Buffer.from(certPem) : null);
  return new VerificationDataServiceClient(`127.0.0.1:${as.port}`, creds);
}

describe('AS access control over mTLS', () => {
  it('[FW-ACL] [SEC-1] serves a service user authenticated by a client certificate under the consortium root CA', async () => {
    const ca = { certPem: rootPem, keyPem: readFileSync(join(dir, 'as', 'pki', 'root-ca.key'), 'utf8') };
    const leaf = await issueCertificate({ ca, subjectName: 'green-cert-issuer', role: 'client', validityDays: 30 });
    const c = await clientWith(leaf.certPem, leaf.keyPem);
    const r = await unary(c, c.getCheckpoint, {});
    expect(r.checkpoint?.note).toMatch(/^divs-local\n0\n/);
    c.close();
  });

  it('[SEC-1] refuses a client without a certificate and one whose certificate is from another CA', async () => {
    const anon = await clientWith();
    await expect(unary(anon, anon.getCheckpoint, {}, { timeoutMs: 5000 })).rejects.toBeInstanceOf(DivsError);
    anon.close();
    const other = await createRootCa({ name: 'Rogue CA', validityDays: 30 });
    const rogue = await issueCertificate({ ca: other, subjectName: 'rogue', role: 'client', validityDays: 30 });
    const c = await clientWith(rogue.certPem, rogue.keyPem);
    const err = await unary(c, c.getCheckpoint, {}, { timeoutMs: 5000 }).catch((e: unknown) => e as DivsError);
    expect(err).toBeInstanceOf(DivsError);
    expect(['UNAVAILABLE', 'UNAUTHENTICATED', 'INTERNAL']).toContain((err as DivsError).code);
    c.close();
  });

  it('[SEC-1] [RP-DD] a certificate with the AS role authenticates a peer AS node', async () => {
    const ca = { certPem: rootPem, keyPem: readFileSync(join(dir, 'as', 'pki', 'root-ca.key'), 'utf8') };
    const peer = await issueCertificate({ ca, subjectName: 'as-2', role: 'as', validityDays: 30 });
    const c = await clientWith(peer.certPem, peer.keyPem);
    // peers may read checkpoints (RP-dd sync and witnessing)
    expect((await unary(c, c.getCheckpoint, {})).checkpoint?.note).toBeTruthy();
    c.close();
  });

  it('[GEN-1] exposes no RPC that takes raw application data, and reflection lists only the DIVS AS services', async () => {
    const ca = { certPem: rootPem, keyPem: readFileSync(join(dir, 'as', 'pki', 'root-ca.key'), 'utf8') };
    const leaf = await issueCertificate({ ca, subjectName: 'auditor', role: 'client', validityDays: 30 });
    const raw = new Client(`127.0.0.1:${as.port}`, credentials.createSsl(Buffer.from(rootPem), Buffer.from(leaf.keyPem ?? ''), Buffer.from(leaf.certPem)));
    // grpc.reflection.v1.ServerReflection/ServerReflectionInfo with list_services (field 7) = ""
    const names = await new Promise<string>((resolve, reject) => {
      const call = raw.makeBidiStreamRequest('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', (b: Buffer) => b, (b: Buffer) => b);
      let got = '';
      call.on('data', (b: Buffer) => {
        got += b.toString('latin1');
        call.end();
      });
      call.on('error', reject);
      call.on('end', () => resolve(got));
      call.write(Buffer.from([0x3a, 0x00]));
    });
    raw.close();
    const services = [...names.matchAll(/[a-z0-9_.]+\.[A-Z][A-Za-z]+/g)].map((m) => m[0]).filter((n) => n.startsWith('divs.'));
    // registration, queries, ledger sync (and consortium ordering when configured): none takes data
    const allowed = new Set(['divs.v1.UeRegistrationService', 'divs.v1.VerificationDataService', 'divs.v1.LedgerSyncService', 'divs.v1.ConsortiumService']);
    expect(services.filter((n) => !allowed.has(n))).toEqual([]);
    expect(services).toContain('divs.v1.UeRegistrationService');
    expect(services).toContain('divs.v1.VerificationDataService');
    // and an attempt to push a signed data record to the AS registration endpoint is refused
    const c = await clientWith(leaf.certPem, leaf.keyPem);
    const ue = new Client(`127.0.0.1:${as.port}`, credentials.createSsl(Buffer.from(rootPem), Buffer.from(leaf.keyPem ?? ''), Buffer.from(leaf.certPem)));
    const code = await new Promise<string | undefined>((resolve) =>
      ue.makeUnaryRequest('/divs.v1.UeRegistrationService/Register', (b: Buffer) => b, (b: Buffer) => b, Buffer.from('0a05' + '68656c6c6f', 'hex'), (err) =>
        resolve(err?.metadata?.get('divs-error-code')[0] as string | undefined),
      ),
    );
    expect(['MALFORMED_MESSAGE', 'MISSING_FIELD']).toContain(code);
    expect((await unary(c, c.getCheckpoint, {})).checkpoint?.note).toMatch(/^divs-local\n0\n/);
    c.close();
    ue.close();
  });
});
