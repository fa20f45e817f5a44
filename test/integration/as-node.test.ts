/**
 * Integration tests of the AS node with a real CEF, both as processes on loopback: registration
 * and endorsement, every refusal with its code and no ledger change, status updates pushed to
 * the UE, queries with proofs verified by the consumer SDK, restart and tamper detection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, type Metadata, credentials } from '@grpc/grpc-js';
import { startStack, startAs, type Stack } from '../helpers/divs.ts';
import { buildFleet, registerFleet, type Fleet, type SimulatedUe } from '../../ue/src/fleet.ts';
import { UeClient } from '../../ue/src/client.ts';
import { RecordSigner } from '../../ue/src/records.ts';
import { createRegistration } from '../../ue/src/registration.ts';
import { SoftwareKeyStore } from '../../ue/src/keystore.ts';
import { RegistrationParams, SignatureSuite, type TxRef, type UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { UeRegistrationServiceClient } from '../../proto/gen/divs/v1/ue_as.ts';
import { VerificationDataServiceClient, EndorsementView } from '../../proto/gen/divs/v1/consumer_as.ts';
import { makeClient, unary, grpc } from '../../platform/src/grpc.ts';
import { DivsError } from '../../protocol/src/errors.ts';
import { sha256, toHex } from '../../protocol/src/bytes.ts';
import { syntheticSubscriber } from '../../cef/src/fixtures.ts';

const PLMN = '26201';
let s: Stack;
let fleet: Fleet;
let ue: UeRegistrationServiceClient;
let query: VerificationDataServiceClient;

function auth(): { metadata: Metadata } {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${s.token}`);
  return { metadata: md };
}

async function ledgerSize(): Promise<number> {
  const r = await unary(query, query.getCheckpoint, {}, auth());
  return Number((r.checkpoint?.note ?? '').split('\n')[1]);
}

async function expectCode(p: Promise<unknown>, code: string): Promise<DivsError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(DivsError);
  expect((err as DivsError).code).toBe(code);
  return err as DivsError;
}

/** Registers with the AS and asserts the refusal code and that the ledger did not change. */
async function refused(reg: Parameters<UeRegistrationServiceClient['register']>[0], code: string): Promise<void> {
  const before = await ledgerSize();
  await expectCode(unary(ue, ue.register, reg), code);
  expect(await ledgerSize()).toBe(before);
}

beforeAll(async () => {
  s = await startStack(PLMN);
  fleet = await buildFleet({ count: 8, seed: 'as-node-it', plmnId: PLMN, workers: 0 });
  const prov = await s.cefClient.provisionBatch(fleet.subscribers());
  expect(prov.provisioned).toBe(8);
  ue = makeClient(UeRegistrationServiceClient, s.asAddress);
  query = makeClient(VerificationDataServiceClient, s.asAddress);
}, 120_000);

afterAll(async () => {
  ue?.close();
  query?.close();
  await fleet?.close();
  await s?.stop();
});

const ueN = (i: number): SimulatedUe => fleet.ues[i] as SimulatedUe;

describe('AS node with a real CEF', () => {
  it('[REG-1] [REG-3] [END-1] [END-2] [END-3] [END-4] [GEN-4] [RP-UD] endorses a registration and returns tx ID + entry address', async () => {
    const r = await unary(ue, ue.register, { registration: ueN(0).registration });
    expect(r.version).toBe(1);
    expect(r.tx?.txHash.length).toBe(32);
    expect(r.tx?.entryAddress?.ledgerId).toBe('divs-test');
    expect(r.tx?.entryAddress?.asUrls[0]).toBe(`grpc://${s.asAddress}`);
    // the endorsement combines the UE parameters with the CEF's account status, signed by the AS
    const v = await s.consumer.endorsement(r.tx as TxRef);
    expect(v.endorsement.accountStatus?.plmnId).toBe(PLMN);
    expect(v.endorsement.accountStatus?.contractId).toBe(ueN(0).subscriber.contractId);
    expect(v.endorsement.accountStatus?.identity).toStrictEqual({ ...ueN(0).identity });
    expect(toHex(v.params.publicKey?.key ?? new Uint8Array())).toBe(toHex(ueN(0).publicKey.key));
    expect(v.asSubject).toBe('as-1');
    expect(v.isLatest).toBe(true);
    ueN(0).endorsement = { tx: r.tx as TxRef, version: 1 };
  });

  it('[MTC-1] [GEN-8] registers a batch of machine-type terminals in one call', async () => {
    const report = await registerFleet(fleet.ues.slice(1, 6), (regs) => new UeClient({ address: s.asAddress }).registerBatch(regs));
    expect(report.registered).toBe(5);
    expect(report.failed).toBe(0);
  });

  it('[END-1] [FW-SIG] refuses a registration whose UE signature does not verify, and the ledger does not change', async () => {
    const reg = { ...ueN(6).registration, signature: ueN(6).registration.signature.map((b, i) => (i === 5 ? b ^ 1 : b)) };
    await refused({ registration: reg }, 'INVALID_SIGNATURE');
  });

  it('[REG-3] refuses a registration signed by another key than the one registered', async () => {
    await refused({ registration: { params: ueN(6).registration.params, signature: ueN(7).registration.signature } }, 'INVALID_SIGNATURE');
  });

  it('[REG-1] refuses wrong-suite keys, bad identities and malformed parameters with their codes', async () => {
    const p = RegistrationParams.decode(ueN(6).registration.params);
    const wrongSuite = RegistrationParams.encode({ ...p, publicKey: { suite: SignatureSuite.SIGNATURE_SUITE_ED25519, key: p.publicKey?.key ?? new Uint8Array() }, suites: [SignatureSuite.SIGNATURE_SUITE_ED25519] }).finish();
    await refused({ registration: { params: wrongSuite, signature: ueN(6).registration.signature } }, 'INVALID_PUBLIC_KEY');
    const unknownSuite = RegistrationParams.encode({ ...p, publicKey: { suite: 9 as never, key: p.publicKey?.key ?? new Uint8Array() } }).finish();
    await refused({ registration: { params: unknownSuite, signature: ueN(6).registration.signature } }, 'UNSUPPORTED_SUITE');
    const badImei = RegistrationParams.encode({ ...p, identity: { ...(p.identity as UeIdentity), imei: '490154203237519' } }).finish();
    await refused({ registration: { params: badImei, signature: ueN(6).registration.signature } }, 'INVALID_IMEI');
    const badIccid = RegistrationParams.encode({ ...p, identity: { ...(p.identity as UeIdentity), iccid: '1234567890123456789' } }).finish();
    await refused({ registration: { params: badIccid, signature: ueN(6).registration.signature } }, 'INVALID_ICCID');
    const badEid = RegistrationParams.encode({ ...p, identity: { ...(p.identity as UeIdentity), iccid: '', eid: '89049032000000000000000000000000' } }).finish();
    await refused({ registration: { params: badEid, signature: ueN(6).registration.signature } }, 'INVALID_EID');
    await refused({ registration: { params: new Uint8Array([0xff, 0xff, 0xff]), signature: new Uint8Array(64) } }, 'MALFORMED_MESSAGE');
    await refused({ registration: undefined }, 'MISSING_FIELD');
  });

  it('[END-2] [NET-1] refuses an identity unknown to the operator and a binding that differs from its record', async () => {
    const ks = new SoftwareKeyStore();
    await ks.generate('x', SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256);
    const stranger = syntheticSubscriber(900_001, { plmnId: PLMN }).identity as UeIdentity;
    const unknown = await createRegistration(stranger, ks, 'x');
    await refused({ registration: unknown.signed }, 'UNKNOWN_IDENTITY');
    // UE 6's IMEI with UE 7's MSISDN: each exists at the operator, but not bound together
    const mixed = await createRegistration({ ...ueN(6).identity, msisdn: ueN(7).identity.msisdn }, ks, 'x');
    await refused({ registration: mixed.signed }, 'IDENTITY_MISMATCH');
  });

  it('[FW-ACL] refuses a replayed registration and a conflicting key for a registered identity', async () => {
    await refused({ registration: ueN(0).registration }, 'REGISTRATION_REPLAYED');
    const ks = new SoftwareKeyStore();
    await ks.generate('y', SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256);
    const again = await createRegistration(ueN(0).identity, ks, 'y');
    await refused({ registration: again.signed }, 'REGISTRATION_CONFLICT');
  });

  it('[RP-UD] answers malformed protobuf bytes and oversize messages with coded errors', async () => {
    const raw = new Client(s.asAddress, credentials.createInsecure());
    const call = (bytes: Buffer) =>
      new Promise<{ code: number; md: string | undefined }>((resolve) => {
        raw.makeUnaryRequest('/divs.v1.UeRegistrationService/Register', (b: Buffer) => b, (b: Buffer) => b, bytes, (err) => {
          resolve({ code: err?.code ?? 0, md: err?.metadata?.get('divs-error-code')[0] as string | undefined });
        });
      });
    expect(await call(Buffer.from([0xff, 0xff, 0xff, 0xff]))).toEqual({ code: grpc.status.INVALID_ARGUMENT, md: 'MALFORMED_MESSAGE' });
    expect(await call(Buffer.alloc(17 * 1024 * 1024, 0x0a))).toEqual({ code: grpc.status.RESOURCE_EXHAUSTED, md: 'MESSAGE_TOO_LARGE' });
    raw.close();
  });

  it('[FW-ACL] [SEC-1] refuses anonymous and unknown service users', async () => {
    await expectCode(unary(query, query.getCheckpoint, {}), 'UNAUTHENTICATED');
    const md = new grpc.Metadata();
    md.set('authorization', 'Bearer not-a-valid-token-at-all');
    await expectCode(unary(query, query.getCheckpoint, {}, { metadata: md }), 'PERMISSION_DENIED');
  });

  it('[VER-4] [RP-DS] [FW-DM] answers by tx ID with an inclusion proof and checkpoint; unknown tx and wrong ledger are coded', async () => {
    const ref = ueN(0).endorsement?.tx as TxRef;
    const r = await unary(query, query.getEndorsement, { txId: ref.txId, ledgerId: 'divs-test', view: EndorsementView.ENDORSEMENT_VIEW_FULL, withLatestProof: true }, auth());
    expect(r.proven?.inclusion?.treeSize).toBeGreaterThan(0);
    expect(r.proven?.checkpoint?.note).toMatch(/^divs-test\n\d+\n/);
    await expectCode(unary(query, query.getEndorsement, { txId: 999_999, ledgerId: '', view: 1, withLatestProof: false }, auth()), 'UNKNOWN_TX');
    await expectCode(unary(query, query.getEndorsement, { txId: ref.txId, ledgerId: 'other-ledger', view: 1, withLatestProof: false }, auth()), 'WRONG_LEDGER');
  });

  it('[VER-5] returns only public key and contract period, signed by the AS', async () => {
    const ref = ueN(1).endorsement?.tx as TxRef;
    const sum = await s.consumer.summary(ref);
    expect(toHex(sum.publicKey?.key ?? new Uint8Array())).toBe(toHex(ueN(1).publicKey.key));
    expect(sum.endTimeMs).toBe(ueN(1).subscriber.endTimeMs);
    expect(sum.txId).toBe(ref.txId);
  });

  it('[UPD-1] [UPD-2] [UPD-3] [UPD-4] [FW-UE] [NET-2] a terminated contract becomes a new endorsed version pushed to the UE', async () => {
    const u = ueN(2);
    const signer = await RecordSigner.open({ identity: u.identity, keystore: u.keystore, alias: u.alias });
    await signer.updateEndorsement(u.endorsement?.tx as TxRef, 1);
    const client = new UeClient({ address: s.asAddress, device: { identity: u.identity, keystore: u.keystore, alias: u.alias } });
    const updates: number[] = [];
    const got = new Promise<void>((resolve) => {
      client.watchUpdates(1, (up) => {
        updates.push(up.version);
        return signer.updateEndorsement(up.tx, up.version).then(() => resolve());
      });
    });
    const before = await signer.sign(new TextEncoder().encode('{"kWh":1.5}'), 'application/json', Date.now() - 1000);
    await new Promise((r) => setTimeout(r, 300));
    await s.cefClient.applyAction(u.identity, { $case: 'terminate', value: { terminationTimeMs: 0 } });
    await got;
    expect(updates).toEqual([2]);
    expect(signer.endorsement?.version).toBe(2);
    // history: version 2 names version 1
    const h = await unary(query, query.getHistory, { identity: { imei: u.identity.imei, iccid: '', eid: '', msisdn: '' } }, auth());
    expect(h.versions).toHaveLength(2);
    const v2 = await s.consumer.endorsement(signer.endorsement?.tx as TxRef);
    expect(v2.endorsement.previousTxId).toBe(u.endorsement?.tx.txId);
    expect(toHex(v2.endorsement.previousTxHash)).toBe(toHex(u.endorsement?.tx.txHash ?? new Uint8Array()));
    expect(v2.endorsement.accountStatus?.state).toBe(3);
    // [VER-3] signed before termination: still valid; signed after: refused
    const after = await signer.sign(new TextEncoder().encode('{"kWh":2.5}'), 'application/json', Date.now() + 1000);
    expect((await s.consumer.verifyRecord(before)).ok).toBe(true);
    const bad = await s.consumer.verifyRecord(after);
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.code).toBe('SIGNED_AFTER_TERMINATION');
    client.close();
  });

  it('[GEN-6] [FW-BC] keeps every version: updates are only appended', async () => {
    const u = ueN(2);
    const h = await unary(query, query.getHistory, { identity: { imei: '', iccid: '', eid: '', msisdn: u.identity.msisdn } }, auth());
    expect(h.versions.map((v) => v.txId)).toEqual([...h.versions.map((v) => v.txId)].sort((a, b) => a - b));
    const latest = await unary(query, query.getLatest, { identity: { imei: u.identity.imei, iccid: '', eid: '', msisdn: '' }, ueKey: new Uint8Array() }, auth());
    expect(latest.latest?.txId).toBe(h.versions.at(-1)?.txId);
  });

  it('[VER-4] [RP-DS] answers the latest versions of many UEs in one call, with per-key error codes', async () => {
    const keys = [0, 1, 2].map((i) => sha256(ueN(i).publicKey.key));
    const unknown = new Uint8Array(32).fill(7);
    const r = await unary(query, query.getLatestBatch, { ueKeys: [...keys, unknown, new Uint8Array(5)] }, auth());
    expect(r.results.map((x) => x.errorCode)).toEqual(['', '', '', 'NOT_REGISTERED', 'INVALID_ARGUMENT']);
    for (const [i, k] of keys.entries()) {
      const one = await unary(query, query.getLatest, { ueKey: k }, auth());
      expect(r.results[i]?.latest?.txId).toBe(one.latest?.txId);
      expect(toHex(r.results[i]?.ueKey ?? new Uint8Array())).toBe(toHex(k));
    }
    // every result is proven against one checkpoint
    expect(new Set(r.results.slice(0, 3).map((x) => x.latest?.checkpoint?.note)).size).toBe(1);
    await expectCode(unary(query, query.getLatestBatch, { ueKeys: [] }, auth()), 'MISSING_FIELD');
    await expectCode(unary(query, query.getLatestBatch, { ueKeys: Array.from({ length: 1025 }, () => unknown) }, auth()), 'BATCH_TOO_LARGE');
    await expectCode(unary(query, query.getLatestBatch, { ueKeys: keys }), 'UNAUTHENTICATED');
    // the consumer SDK coalesces concurrent lookups into such calls and verifies each answer
    const refs = [0, 1, 2].map((i) => ueN(i).endorsement?.tx as TxRef);
    const got = await Promise.all(refs.map((ref, i) => s.consumer.provenLatest(ref, keys[i] as Uint8Array)));
    got.forEach((g, i) => expect(toHex(g.verified.ueKey)).toBe(toHex(keys[i] as Uint8Array)));
    await expectCode(s.consumer.provenLatest(refs[0] as TxRef, unknown), 'NOT_REGISTERED');
  });

  it('[END-2] refuses registration of a UE whose contract is no longer active', async () => {
    const u = ueN(6);
    await s.cefClient.applyAction(u.identity, { $case: 'terminate', value: { terminationTimeMs: 0 } });
    await refused({ registration: u.registration }, 'CONTRACT_INACTIVE');
  });

  it('[UPD-2] after a restart the AS resumes its CEF subscription: no event lost, none applied twice', async () => {
    const u = ueN(3);
    await s.as.kill('SIGKILL');
    await s.cefClient.applyAction(u.identity, { $case: 'changeOwner', value: { newOwner: 'GreenGrid AG' } });
    await s.startAs();
    ue.close();
    query.close();
    ue = makeClient(UeRegistrationServiceClient, s.asAddress);
    query = makeClient(VerificationDataServiceClient, s.asAddress);
    const deadline = Date.now() + 15_000;
    let versions = 0;
    while (Date.now() < deadline) {
      const h = await unary(query, query.getHistory, { identity: { imei: u.identity.imei, iccid: '', eid: '', msisdn: '' } }, auth()).catch(() => undefined);
      versions = h?.versions.length ?? 0;
      if (versions >= 2) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(versions).toBe(2);
    // restart once more: nothing is applied again
    await s.as.stop();
    await s.startAs();
    ue.close();
    query.close();
    ue = makeClient(UeRegistrationServiceClient, s.asAddress);
    query = makeClient(VerificationDataServiceClient, s.asAddress);
    await new Promise((r) => setTimeout(r, 1000));
    await s.cefClient.waitForReady();
    const h = await unary(query, query.getHistory, { identity: { imei: u.identity.imei, iccid: '', eid: '', msisdn: '' } }, auth());
    expect(h.versions).toHaveLength(2);
  });

  it('serves gRPC health checking', async () => {
    // grpc.health.v1.Health/Check with an empty HealthCheckRequest; SERVING encodes as 08 01
    const raw = new Client(s.asAddress, credentials.createInsecure());
    const res = await new Promise<Buffer>((resolve, reject) =>
      raw.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (err, r) => (err ? reject(err) : resolve(r as Buffer))),
    );
    expect([...res]).toEqual([0x08, 0x01]);
    raw.close();
  });

  it('[GEN-5] refuses to serve a ledger altered on disk', async () => {
    await s.as.stop();
    // change one byte of one stored transaction in the file itself, bypassing SQLite (and the
    // ledger's append-only triggers), as an attacker with disk access would
    const file = join(s.asDataDir, 'ledger.db');
    const db = new Database(file, { readonly: true });
    const { tx } = db.prepare('SELECT tx FROM txs WHERE tx_id = 1').get() as { tx: Buffer };
    db.close();
    const bytes = readFileSync(file);
    // (every copy: SQLite may keep a stale copy of the page elsewhere in the file)
    let copies = 0;
    for (let at = bytes.indexOf(tx); at >= 0; at = bytes.indexOf(tx, at + 1)) {
      bytes[at + tx.length - 3] = (bytes[at + tx.length - 3] as number) ^ 0x01;
      copies++;
    }
    expect(copies).toBeGreaterThan(0);
    writeFileSync(file, bytes);
    const err = await startAs(s.asDataDir, s.cef.port).then(
      // it must not start; if it does, stop it so the failure leaves no process behind
      (p) => p.stop().then(() => undefined),
      (e: unknown) => e as Error,
    );
    expect(err?.message ?? '').toMatch(/LEDGER_TAMPERED/);
  });
});

