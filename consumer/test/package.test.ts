/**
 * Verifiable data packages (Y.2247 10.1) against real CEF + AS processes: UEs of the three
 * Appendix I use cases register and sign, packages are built with the proofs the AS serves,
 * then BOTH stacks are stopped and everything below is verified offline with only the trust
 * anchors — valid data, every kind of bad data by its code, encryption, custody transfers and
 * packages combined from two independent consortia.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startStack, tempDir, type Stack } from '../../test/helpers/divs.ts';
import { REPO_ROOT } from '../../test/helpers/proc.ts';
import { buildFleet, fleetSigner, registerFleet, type Fleet, type SimulatedUe } from '../../ue/src/fleet.ts';
import { UeClient } from '../../ue/src/client.ts';
import { RecordSigner } from '../../ue/src/records.ts';
import { SoftwareKeyStore } from '../../ue/src/keystore.ts';
import { createRegistration } from '../../ue/src/registration.ts';
import { inspection, smartMeter, vehicleTelemetry, type UseCase } from '../../ue/src/usecases.ts';
import {
  ContractState,
  Endorsement,
  EndorsementReason,
  LedgerTx,
  RecordBody,
  SignatureSuite,
  SignedEndorsement,
  SignedRecord,
  type TxRef,
  TxType,
} from '../../proto/gen/divs/v1/common.ts';
import type { ProvenTx } from '../../proto/gen/divs/v1/consumer_as.ts';
import { CustodyStatement, DataPackage, DataPackageContent, EncryptedPackage } from '../../proto/gen/divs/v1/package.ts';
import { Domain, pae, sha256, toHex } from '../../protocol/src/bytes.ts';
import { DivsError } from '../../protocol/src/errors.ts';
import { EMPTY_ROOT, batchRoot, leafHash } from '../../protocol/src/merkle.ts';
import { certDer, createRootCa, derToPem, issueCertificate } from '../../protocol/src/pki.ts';
import { MemorySmtStore, SparseMerkleTree } from '../../protocol/src/smt.ts';
import { signCheckpoint } from '../../protocol/src/checkpoint.ts';
import { importPrivateKey, nodeSigner, type Signer } from '../../protocol/src/suites.ts';
import { recordHash } from '../../protocol/src/records.ts';
import { verifyProvenEndorsement } from '../src/verify.ts';
import {
  buildPackage,
  combinePackages,
  decodePackageFile,
  decryptPackage,
  encodePackageFile,
  encryptPackage,
  openPackageFile,
  readPackageContent,
  transferPackage,
  verifyPackage,
} from '../src/package.ts';

const run = promisify(execFile);
const T0 = Date.now() - 2 * 3_600_000;
const enc = new TextEncoder();

let A: Stack | undefined;
let B: Stack | undefined;
let fleetA: Fleet | undefined;
let fleetB: Fleet | undefined;
let rootA: Uint8Array;
let rootB: Uint8Array;
const dir = tempDir('package');

/** Records by use case, from stack A; and the packages built while the AS was reachable. */
const rec: { vehicle: SignedRecord[]; meter: SignedRecord[]; camera: SignedRecord[]; terminated: SignedRecord[]; fork: SignedRecord[]; b: SignedRecord[] } = {
  vehicle: [],
  meter: [],
  camera: [],
  terminated: [],
  fork: [],
  b: [],
};
let valid: DataPackage;
let termPkg: DataPackage;
let forkPkg: DataPackage;
let pkgB: DataPackage;
let cliBuild: { stdout: string } | undefined;

const anchorsA = () => ({ roots: [rootA] });

function divs(args: string[]) {
  return run(process.execPath, [join(REPO_ROOT, 'bin/divs.ts'), ...args], { cwd: REPO_ROOT, env: { ...process.env, DIVS_LOG_LEVEL: 'error' }, timeout: 60_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
  );
}

async function signSeries<T extends object>(ue: SimulatedUe, uc: UseCase<T>, count: number, batch = false, signer?: RecordSigner): Promise<SignedRecord[]> {
  signer ??= await fleetSigner(ue);
  const samples = uc.generate({ seed: 'package-test', deviceId: ue.identity.imei, count, startMs: T0 });
  if (batch) return signer.signBatch(samples.map((s) => ({ payload: s.bytes, contentType: s.contentType, timestampMs: s.timestampMs })));
  const out: SignedRecord[] = [];
  for (const s of samples) out.push(await signer.sign(s.bytes, s.contentType, s.timestampMs));
  return out;
}

/** A package whose content was changed by `fn` (custody dropped: it signed the old content). */
function mutate(pkg: DataPackage, fn: (c: DataPackageContent) => void): DataPackage {
  const c = DataPackageContent.decode(pkg.content);
  fn(c);
  return { content: DataPackageContent.encode(c).finish(), custody: [] };
}

const ueKeyOfProven = (p: ProvenTx): string => toHex(Endorsement.decode(SignedEndorsement.decode(LedgerTx.decode(p.tx).payload).endorsement).ueKey);
const ueKeyOfUe = (u: SimulatedUe): string => toHex(sha256(u.publicKey.key));

beforeAll(async () => {
  [A, B] = await Promise.all([startStack('26201'), startStack('26202')]);
  rootA = A.rootDer;
  rootB = B.rootDer;
  [fleetA, fleetB] = await Promise.all([
    buildFleet({ count: 5, seed: 'package-a', plmnId: '26201', workers: 0, contractStartMs: T0 - 86_400_000 }),
    buildFleet({ count: 1, seed: 'package-b', plmnId: '26202', workers: 0, contractStartMs: T0 - 86_400_000 }),
  ]);
  for (const [s, f] of [
    [A, fleetA],
    [B, fleetB],
  ] as const) {
    expect((await s.cefClient.provisionBatch(f.subscribers())).provisioned).toBe(f.ues.length);
    const client = new UeClient({ address: s.asAddress });
    expect((await registerFleet(f.ues, (regs) => client.registerBatch(regs))).registered).toBe(f.ues.length);
    client.close();
  }
  const ue = (i: number) => fleetA?.ues[i] as SimulatedUe;

  // I.1 one by one, I.2 in one batch signature, I.3 one by one
  rec.vehicle = await signSeries(ue(0), vehicleTelemetry, 6);
  rec.meter = await signSeries(ue(1), smartMeter, 6, true);
  rec.camera = await signSeries(ue(2), inspection, 6);
  rec.b = await signSeries(fleetB.ues[0] as SimulatedUe, smartMeter, 4);

  // UE 3: two readings, then the operator terminates the contract; the meter keeps naming
  // version 1 and signs once more after the termination
  const meter3 = await fleetSigner(ue(3));
  rec.terminated = await signSeries(ue(3), smartMeter, 2, false, meter3);
  await A.cefClient.applyAction(ue(3).identity, { $case: 'terminate', value: { terminationTimeMs: 0 } });
  const ref3 = ue(3).endorsement?.tx as TxRef;
  for (const deadline = Date.now() + 15_000; ; ) {
    const l = await A.consumer.provenLatest(ref3, sha256(ue(3).publicKey.key)).catch(() => undefined);
    if (l?.verified.endorsement.version === 2) break;
    if (Date.now() > deadline) throw new Error('the AS did not endorse the termination');
    await new Promise((r) => setTimeout(r, 100));
  }
  rec.terminated.push(await meter3.sign(enc.encode('{"importKWh":0.5}'), 'application/json', Date.now() + 1000));

  // UE 4 forks its chain: a second signer without the first one's state starts again at 1
  const s1 = await fleetSigner(ue(4));
  for (let i = 0; i < 3; i++) rec.fork.push(await s1.sign(enc.encode(`{"n":${i}}`), 'application/json', T0 + i * 1000));
  const s2 = await fleetSigner(ue(4));
  rec.fork.push(await s2.sign(enc.encode('{"n":"other history"}'), 'application/json', T0 + 5000));

  valid = await buildPackage([...rec.vehicle, ...rec.meter, ...rec.camera], A.consumer, { producer: { name: 'consumer-A', kind: 'consumer' }, description: 'I.1 + I.2 + I.3' });
  termPkg = await buildPackage(rec.terminated, A.consumer, { producer: { name: 'consumer-A' } });
  forkPkg = await buildPackage(rec.fork, A.consumer, { producer: { name: 'consumer-A' } });
  pkgB = await buildPackage(rec.b, B.consumer, { producer: { name: 'aggregator-B', kind: 'gateway' } });

  // the CLI builds an encrypted package from a records file while the AS is up
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'records.b64'), [...rec.vehicle, ...rec.meter, ...rec.camera].map((r) => Buffer.from(SignedRecord.encode(r).finish()).toString('base64')).join('\n') + '\n');
  writeFileSync(join(dir, 'root-a.pem'), derToPem(rootA));
  writeFileSync(join(dir, 'root-b.pem'), derToPem(rootB));
  const x = generateKeyPairSync('x25519');
  writeFileSync(join(dir, 'recipient.pem'), x.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(dir, 'recipient.pub.pem'), x.publicKey.export({ type: 'spki', format: 'pem' }));
  const sender = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(join(dir, 'sender.pem'), sender.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const built = await divs(['consumer', 'package', '--records', join(dir, 'records.b64'), '--as-token', A.token, '--trust', join(dir, 'root-a.pem'), '--out', join(dir, 'a.divspkg'), '--encrypt-to', join(dir, 'recipient.pub.pem'), '--producer', 'consumer-A']);
  expect(built.code, built.stderr).toBe(0);
  cliBuild = built;

  // from here on, no AS and no CEF: every verification below is offline
  await Promise.all([A.stop(), B.stop()]);
}, 90_000);

afterAll(async () => {
  await Promise.allSettled([fleetA?.close(), fleetB?.close(), A?.stop(), B?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('data packages, verified offline', () => {
  it('[SC1-1] [VER-3] [FW-SU] verifies I.1, I.2 and I.3 records offline with only the trust anchor, after the AS and CEF are gone', async () => {
    // both stacks' AS and CEF processes have exited
    await expect(Promise.all([A?.as.exited, A?.cef.exited, B?.as.exited, B?.cef.exited])).resolves.toHaveLength(4);
    const r = verifyPackage(valid, anchorsA());
    expect(r.ok, JSON.stringify(r.invalid)).toBe(true);
    expect(r.records).toEqual({ listed: 18, unique: 18, duplicates: 0, valid: 18, invalid: 0 });
    expect(r.verdicts).toEqual({ OK: 18 });
    expect(r.findings).toEqual([]);
    expect(r.chains.map((c) => [c.records, c.firstSequence, c.lastSequence])).toEqual([
      [6, 1, 6],
      [6, 1, 6],
      [6, 1, 6],
    ]);
    expect(r.producer.name).toBe('consumer-A');
    expect(r.custody).toMatchObject({ ok: true, holder: 'consumer-A', transfers: [] });
    // the dataset commitment is the RFC 9162 root over the valid record hashes, in package order
    const hashes = [...rec.vehicle, ...rec.meter, ...rec.camera].map((x) => recordHash(x.body));
    expect(toHex(r.datasetCommitment)).toBe(toHex(batchRoot(hashes)));
    expect(r.validRecordHashes.map(toHex)).toEqual(hashes.map(toHex));
    // three UEs, each proven latest in the one ProvenTx its records name
    expect(r.endorsements.total).toBe(3);
    expect(r.endorsements.checks.every((c) => c.ok && c.isLatest === true && c.ledgerId === 'divs-test')).toBe(true);
  });

  it('[VER-3] [GEN-2] a tampered record fails INVALID_SIGNATURE; its successor shows the gap it leaves', () => {
    const r = verifyPackage(
      mutate(valid, (c) => {
        const body = RecordBody.decode((c.records[2] as SignedRecord).body);
        body.payload = enc.encode(new TextDecoder().decode(body.payload).replace(/"speedKmh":[0-9.]+/, '"speedKmh":42'));
        (c.records[2] as SignedRecord).body = RecordBody.encode(body).finish();
      }),
      anchorsA(),
    );
    expect(r.ok).toBe(false);
    expect(r.invalid).toMatchObject([{ where: 'records[2]', code: 'INVALID_SIGNATURE', sequence: 3 }]);
    expect(r.findings).toMatchObject([{ code: 'CHAIN_GAP', sequence: 4 }]);
    expect(r.records.valid).toBe(17);
  });

  it('[VER-3] [UPD-1] a record signed after the contract termination fails SIGNED_AFTER_TERMINATION; earlier ones stay valid', () => {
    const r = verifyPackage(termPkg, anchorsA());
    expect(r.verdicts).toEqual({ OK: 2, SIGNED_AFTER_TERMINATION: 1 });
    expect(r.invalid[0]?.sequence).toBe(3);
    // the package carries the terminated version 2 as the UE's proven latest, though the record names version 1
    expect(r.endorsements.checks.map((c) => [c.version, c.isLatest]).sort()).toEqual([
      [1, false],
      [2, true],
    ]);
    // a holder who withholds version 2 cannot hide the termination: version 1's own latest proof says it is stale
    const withheld = verifyPackage(
      mutate(termPkg, (c) => {
        c.endorsements = c.endorsements.filter((e) => Endorsement.decode(SignedEndorsement.decode(LedgerTx.decode(e.tx).payload).endorsement).version === 1);
      }),
      anchorsA(),
    );
    expect(withheld.verdicts).toEqual({ NOT_LATEST: 3 });
  });

  it('[GEN-2] a replayed record fails RECORD_REPLAYED', () => {
    const r = verifyPackage(
      mutate(valid, (c) => c.records.push(c.records[7] as SignedRecord)),
      anchorsA(),
    );
    expect(r.verdicts).toEqual({ OK: 18, RECORD_REPLAYED: 1 });
    expect(r.findings).toMatchObject([{ code: 'RECORD_REPLAYED', sequence: 2, where: 'records[18]' }]);
    expect(r.ok).toBe(false);
  });

  it('[GEN-2] a withheld record is reported as CHAIN_GAP by UE and sequence', () => {
    const r = verifyPackage(
      mutate(valid, (c) => c.records.splice(14, 1)),
      anchorsA(),
    );
    expect(r.ok).toBe(false);
    expect(r.records.valid).toBe(17);
    expect(r.findings).toHaveLength(1);
    expect(r.findings[0]).toMatchObject({ code: 'CHAIN_GAP', sequence: 4, ue: `imei:${fleetA?.ues[2]?.identity.imei} iccid:${fleetA?.ues[2]?.identity.iccid} msisdn:${fleetA?.ues[2]?.identity.msisdn}` });
  });

  it('[GEN-2] two records with one sequence number fail RECORD_FORK', () => {
    const r = verifyPackage(forkPkg, anchorsA());
    expect(r.verdicts).toEqual({ OK: 2, RECORD_FORK: 2 });
    expect(r.findings.map((f) => [f.code, f.sequence])).toEqual([
      ['RECORD_FORK', 1],
      ['RECORD_FORK', 1],
    ]);
  });

  it('[FW-SU] [SEC-3] an endorsement forged outside the consortium (own root CA, own ledger) fails UNTRUSTED_CERTIFICATE', async () => {
    const victim = fleetA?.ues[0] as SimulatedUe;
    const forged = await forgeEndorsement(victim);
    // the forgery is internally perfect: only the trust anchor tells it apart
    expect(verifyProvenEndorsement(forged.proven, { roots: [forged.rogueRoot] }).isLatest).toBe(true);
    const pkg = mutate(valid, (c) => {
      c.records.push(...forged.records);
      c.endorsements.push(forged.proven);
    });
    const r = verifyPackage(pkg, anchorsA());
    expect(r.verdicts).toEqual({ OK: 18, UNTRUSTED_CERTIFICATE: 2 });
    expect(r.endorsements.checks.filter((c) => !c.ok)).toMatchObject([{ code: 'UNTRUSTED_CERTIFICATE' }]);
  });

  it('[VER-3] [FW-BC] a broken inclusion proof fails INVALID_PROOF for the records that need it', () => {
    const camKey = ueKeyOfUe(fleetA?.ues[2] as SimulatedUe);
    const pkg = mutate(valid, (c) => {
      const p = c.endorsements.find((e) => ueKeyOfProven(e) === camKey) as ProvenTx;
      const hashes = p.inclusion?.hashes as Uint8Array[];
      // a copy: decoded bytes may share memory with the original package
      hashes[0] = (hashes[0] as Uint8Array).map((x, i) => (i === 0 ? x ^ 1 : x));
    });
    const r = verifyPackage(pkg, anchorsA());
    expect(r.verdicts).toEqual({ OK: 12, INVALID_PROOF: 6 });
    expect(r.endorsements.checks.filter((c) => !c.ok)).toMatchObject([{ code: 'INVALID_PROOF' }]);
  });

  it('[FW-SU] a consumer with another trust anchor accepts nothing: UNTRUSTED_CERTIFICATE', () => {
    const r = verifyPackage(valid, { roots: [rootB] });
    expect(r.ok).toBe(false);
    expect(r.verdicts).toEqual({ UNTRUSTED_CERTIFICATE: 18 });
    expect(toHex(r.datasetCommitment)).toBe(toHex(EMPTY_ROOT));
    expect(r.validRecordHashes).toEqual([]);
  });

  it('[SC1-1] an encrypted package round-trips to X25519 and P-256 recipients; the wrong key, an altered header or ciphertext fail DECRYPTION_FAILED', () => {
    for (const kp of [generateKeyPairSync('x25519'), generateKeyPairSync('ec', { namedCurve: 'P-256' })]) {
      const file = encodePackageFile(encryptPackage(valid, kp.publicKey.export({ type: 'spki', format: 'pem' }) as string));
      expect(decodePackageFile(file).$case).toBe('encrypted');
      const back = openPackageFile(file, kp.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
      expect(toHex(DataPackage.encode(back).finish())).toBe(toHex(DataPackage.encode(valid).finish()));
      expect(verifyPackage(back, anchorsA()).ok).toBe(true);
      const wrong = kp.privateKey.asymmetricKeyType === 'x25519' ? generateKeyPairSync('x25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
      expectCode(() => openPackageFile(file, wrong.privateKey), 'DECRYPTION_FAILED');
      expectCode(() => openPackageFile(file), 'DECRYPTION_FAILED');
      const env = decodePackageFile(file).value as EncryptedPackage;
      const flip = (b: Uint8Array, i: number) => b.map((x, j) => (j === i ? x ^ 1 : x));
      expectCode(() => decryptPackage({ ...env, ciphertext: flip(env.ciphertext, 10) }, kp.privateKey), 'DECRYPTION_FAILED');
      expectCode(() => decryptPackage({ ...env, header: flip(env.header, env.header.length - 1) }, kp.privateKey), 'DECRYPTION_FAILED');
    }
    // a signing-only key cannot receive packages
    expectCode(() => encryptPackage(valid, generateKeyPairSync('ed25519').publicKey), 'INVALID_ARGUMENT');
  });

  it('[SC1-2] ownership passes A -> B -> C with signed custody transfers, and C re-verifies everything', async () => {
    const [a, b, c] = [keyPair('ec'), keyPair('ed25519'), keyPair('ec')];
    const toB = await transferPackage(valid, a.signer, 'consumer-B', { toKey: b.publicKey, note: 'sold' });
    const toC = await transferPackage(toB, b.signer, 'consumer-C', { toKey: c.publicKey });
    const r = verifyPackage(toC, anchorsA());
    expect(r.ok).toBe(true);
    expect(r.records.valid).toBe(18);
    expect(r.custody.ok).toBe(true);
    expect(r.custody.holder).toBe('consumer-C');
    expect(r.custody.transfers.map((t) => [t.from, t.to, t.senderBinding])).toEqual([
      ['consumer-A', 'consumer-B', 'self-asserted'],
      ['consumer-B', 'consumer-C', 'previous-transfer'],
    ]);
    // a holder with a certificate under a trusted CA is bound by it
    const ca = await createRootCa({ name: 'CN=Consumer CA', validityDays: 30 });
    const cert = await issueCertificate({ ca, subjectName: 'CN=consumer-C', role: 'client', publicKey: c.publicKey, validityDays: 30 });
    const toD = await transferPackage(toC, c.signer, 'consumer-D', { certChain: [certDer(cert.cert)] });
    const caDer = certDer(ca.cert);
    expect(verifyPackage(toD, { roots: [rootA, caDer] }).custody.transfers[2]?.senderBinding).toBe('certificate');
    expect(verifyPackage(toD, anchorsA()).custody.error?.code).toBe('UNTRUSTED_CERTIFICATE');
  });

  it('[SC1-2] a forged custody transfer fails: bad signature, wrong key, not the holder, another package', async () => {
    const [a, b, c] = [keyPair('ec'), keyPair('ec'), keyPair('ec')];
    const toB = await transferPackage(valid, a.signer, 'consumer-B', { toKey: b.publicKey });
    const toC = await transferPackage(toB, b.signer, 'consumer-C', { toKey: c.publicKey });
    // 1. a flipped signature bit
    const t1 = toC.custody[1] as DataPackage['custody'][number];
    const badSig = { ...toC, custody: [toC.custody[0], { ...t1, signature: t1.signature.map((x, i) => (i === 3 ? x ^ 1 : x)) }] } as DataPackage;
    expect(verifyPackage(badSig, anchorsA()).custody).toMatchObject({ ok: false, holder: 'consumer-B', error: { index: 1, code: 'INVALID_SIGNATURE' } });
    // 2. B, no longer the holder, signs a transfer pretending to be C
    const st = CustodyStatement.decode(t1.statement);
    const fake = CustodyStatement.encode({ ...st, index: 2, previousStatementHash: sha256(t1.statement), from: 'consumer-C', to: 'mallory', fromKey: { suite: b.signer.suite, key: b.signer.publicKey } }).finish();
    const stolen = { ...toC, custody: [...toC.custody, { statement: fake, signature: await b.signer.sign(pae('divs/package-custody', fake)), certChain: [] }] };
    expect(verifyPackage(stolen, anchorsA()).custody.error).toMatchObject({ index: 2, code: 'CUSTODY_BROKEN' });
    await expectCodeAsync(transferPackage(toC, b.signer, 'mallory'), 'CUSTODY_BROKEN');
    await expectCodeAsync(transferPackage(toC, b.signer, 'mallory', { fromName: 'consumer-B' }), 'CUSTODY_BROKEN');
    // 3. a custody chain moved onto another package
    expect(verifyPackage({ content: termPkg.content, custody: toC.custody }, anchorsA()).custody.error).toMatchObject({ index: 0, code: 'CUSTODY_BROKEN' });
  });

  it('[SC1-2] [GEN-7] packages from two aggregators on two independent consortia combine and verify with both anchors', async () => {
    const holder = keyPair('ec');
    const fromA = await transferPackage(valid, keyPair('ec').signer, 'consumer-X');
    const combined = combinePackages([fromA, pkgB], { producer: { name: 'consumer-X' } });
    const r = verifyPackage(combined, { roots: [rootA, rootB] });
    expect(r.ok, JSON.stringify(r.invalid)).toBe(true);
    expect(r.records).toMatchObject({ listed: 22, unique: 22, valid: 22 });
    expect(r.chains).toHaveLength(4);
    expect(r.parts.map((p) => [p.where, p.producer.name, p.custody.ok, p.custody.holder])).toEqual([
      ['parts[0]', 'consumer-A', true, 'consumer-X'],
      ['parts[1]', 'aggregator-B', true, 'aggregator-B'],
    ]);
    const all = [...rec.vehicle, ...rec.meter, ...rec.camera, ...rec.b].map((x) => recordHash(x.body));
    expect(toHex(r.datasetCommitment)).toBe(toHex(batchRoot(all)));
    // and the combined package changes hands like any other
    const passed = await transferPackage(combined, holder.signer, 'consumer-Y', { fromName: 'consumer-X' });
    expect(verifyPackage(passed, { roots: [rootA, rootB] }).custody.holder).toBe('consumer-Y');
    // with only one consortium's anchor, the other's records are refused
    expect(verifyPackage(combined, anchorsA()).verdicts).toEqual({ OK: 18, UNTRUSTED_CERTIFICATE: 4 });
  });

  it('[SC1-2] identical records held by two aggregators count once; all their proofs are kept', () => {
    const overlap = mutate(valid, (c) => {
      c.producer = { name: 'aggregator-2', kind: 'gateway', description: '' };
      c.records = c.records.slice(0, 9);
    });
    const r = verifyPackage(combinePackages([valid, overlap, valid], { producer: { name: 'consumer-Z' } }), anchorsA());
    expect(r.ok).toBe(true);
    expect(r.parts).toHaveLength(2);
    expect(r.records).toEqual({ listed: 27, unique: 18, duplicates: 9, valid: 18, invalid: 0 });
    expect(toHex(r.datasetCommitment)).toBe(toHex(verifyPackage(valid, anchorsA()).datasetCommitment));
  });

  it('refuses undecodable packages with MALFORMED_MESSAGE', () => {
    expectCode(() => decodePackageFile(new Uint8Array([0xff, 0xff, 0xff])), 'MALFORMED_MESSAGE');
    expectCode(() => verifyPackage({ content: new Uint8Array([0x0a, 0xff]), custody: [] }, anchorsA()), 'MALFORMED_MESSAGE');
    expectCode(() => readPackageContent({ content: DataPackageContent.encode({ ...DataPackageContent.decode(valid.content), formatVersion: 9 }).finish(), custody: [] }), 'MALFORMED_MESSAGE');
    const r = verifyPackage(mutate(valid, (c) => c.records.push({ body: new Uint8Array([0xff]), signature: new Uint8Array(64), batch: undefined })), anchorsA());
    expect(r.verdicts.MALFORMED_MESSAGE).toBe(1);
  });

  it('[SC1-1] [SC1-2] `divs consumer package|verify|transfer`: encrypted package from a records file, verified offline, passed on', async () => {
    expect(cliBuild).toBeDefined();
    const pkgFile = join(dir, 'a.divspkg');
    const [ok, noKey, wrongAnchor] = await Promise.all([
      divs(['consumer', 'verify', pkgFile, '--trust', join(dir, 'root-a.pem'), '--key', join(dir, 'recipient.pem'), '--json']),
      divs(['consumer', 'verify', pkgFile, '--trust', join(dir, 'root-a.pem')]),
      divs(['consumer', 'verify', pkgFile, '--trust', join(dir, 'root-b.pem'), '--key', join(dir, 'recipient.pem')]),
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    const report = JSON.parse(ok.stdout) as { ok: boolean; records: { valid: number }; datasetCommitment: string };
    expect(report.ok).toBe(true);
    expect(report.records.valid).toBe(18);
    expect(report.datasetCommitment).toBe(toHex(verifyPackage(valid, anchorsA()).datasetCommitment));
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toMatch(/DECRYPTION_FAILED/);
    expect(wrongAnchor.code).toBe(1);
    expect(wrongAnchor.stdout).toMatch(/UNTRUSTED_CERTIFICATE\s+18/);
    expect(wrongAnchor.stdout).toMatch(/RESULT: INVALID/);

    const t = await divs(['consumer', 'transfer', pkgFile, '--decrypt-key', join(dir, 'recipient.pem'), '--key', join(dir, 'sender.pem'), '--to', 'consumer-B', '--out', join(dir, 'b.divspkg')]);
    expect(t.code, t.stderr).toBe(0);
    const tampered = mutate(openPackageFile(new Uint8Array(readFileSync(join(dir, 'b.divspkg')))), (c) => c.records.splice(3, 1));
    writeFileSync(join(dir, 'bad.divspkg'), encodePackageFile(tampered));
    const [b, bad] = await Promise.all([
      divs(['consumer', 'verify', join(dir, 'b.divspkg'), '--trust', join(dir, 'root-a.pem')]),
      divs(['consumer', 'verify', join(dir, 'bad.divspkg'), '--trust', join(dir, 'root-a.pem'), '--json']),
    ]);
    expect(b.code, b.stdout + b.stderr).toBe(0);
    expect(b.stdout).toMatch(/custody: consumer-A -> consumer-B .*holder consumer-B/);
    expect(b.stdout).toMatch(/RESULT: VALID/);
    expect(bad.code).toBe(1);
    expect((JSON.parse(bad.stdout) as { findings: Array<{ code: string }> }).findings.map((f) => f.code)).toEqual(['CHAIN_GAP']);
  });
});

// ---------------------------------------------------------------- helpers

function expectCode(fn: () => unknown, code: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(DivsError);
  expect((err as DivsError).code).toBe(code);
}

async function expectCodeAsync(p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(DivsError);
  expect((err as DivsError).code).toBe(code);
}

function keyPair(kind: 'ec' | 'ed25519'): { signer: Signer; publicKey: KeyObject } {
  const kp = kind === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  return { signer: nodeSigner(kp.privateKey), publicKey: kp.publicKey };
}

/**
 * A complete forged ledger outside the consortium: a rogue root CA, an "as-1" certificate under
 * it, an endorsement binding the victim's identity to the attacker's key, a one-tx tree, a
 * latest-version proof and a checkpoint signed by the rogue AS; and two records the attacker
 * signs under it.
 */
async function forgeEndorsement(victim: SimulatedUe) {
  const rogue = await createRootCa({ name: 'CN=DIVS Root, O=Rogue', validityDays: 30 });
  const asCert = await issueCertificate({ ca: rogue, subjectName: 'CN=as-1, O=Rogue', role: 'as', validityDays: 30 });
  const signer = nodeSigner(importPrivateKey(asCert.keyPem));
  const chain = [certDer(asCert.cert), certDer(rogue.cert)];
  const ks = new SoftwareKeyStore();
  const pk = await ks.generate('attacker', SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256);
  const reg = await createRegistration(victim.identity, ks, 'attacker');
  const ueKey = sha256(pk.key);
  const now = Date.now();
  const endorsement = Endorsement.encode({
    registration: reg.signed,
    accountStatus: {
      plmnId: '26201',
      operatorName: 'TestTel',
      contractId: victim.subscriber.contractId,
      state: ContractState.CONTRACT_STATE_ACTIVE,
      startTimeMs: T0 - 86_400_000,
      endTimeMs: now + 86_400_000,
      terminationTimeMs: 0,
      owner: 'mallory',
      geoRestrictions: [],
      terminalType: 'vehicle',
      identity: victim.identity,
      revision: 1,
    },
    version: 1,
    previousTxId: 0,
    previousTxHash: new Uint8Array(0),
    endorsedAtMs: now,
    asId: 'as-1',
    reason: EndorsementReason.ENDORSEMENT_REASON_REGISTRATION,
    ueKey,
    statusEventSequence: 0,
  }).finish();
  const signed = SignedEndorsement.encode({ endorsement, signature: signer.sign(pae(Domain.endorsement, endorsement)) as Uint8Array, certChain: chain }).finish();
  const tx = LedgerTx.encode({ type: TxType.TX_TYPE_ENDORSEMENT, payload: signed, timestampMs: now }).finish();
  const leaf = leafHash(tx);
  const smt = new SparseMerkleTree(new MemorySmtStore());
  smt.update([[ueKey, leaf]], 1);
  const note = await signCheckpoint({ origin: 'divs-test', size: 1, rootHash: leaf, stateRoot: smt.rootHash }, 'as-1', signer);
  const proven: ProvenTx = { txId: 0, tx, inclusion: { leafIndex: 0, treeSize: 1, hashes: [] }, checkpoint: { note, certChain: chain }, latest: smt.prove(ueKey) };
  const rs = await RecordSigner.open({ identity: victim.identity, keystore: ks, alias: 'attacker' });
  await rs.updateEndorsement({ txId: 0, txHash: leaf, entryAddress: { ledgerId: 'divs-test', asUrls: ['grpc://127.0.0.1:1'] } }, 1);
  const records = [await rs.sign(enc.encode('{"speedKmh":50}'), 'application/json', T0), await rs.sign(enc.encode('{"speedKmh":51}'), 'application/json', T0 + 1000)];
  return { proven, records, rogueRoot: certDer(rogue.cert) };
}
