/**
 * The verification engine on records in memory, with endorsement windows built from local key
 * material (no AS): every failure class by name, batch signing (whole, partial, cut across
 * tasks, tampered), agreement with the consumer SDK's `checkRecord`, the worker-thread path, and
 * the dataset commitment.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContractState, Endorsement, RecordBody, RegistrationParams, SignedRecord, type TxRef } from '../../proto/gen/divs/v1/common.ts';
import { ueKeyOf } from '../src/verify/identity.ts';
import { Domain, pae, sha256, toHex } from '../../protocol/src/bytes.ts';
import { batchRoot } from '../../protocol/src/merkle.ts';
import { recordHash } from '../../protocol/src/records.ts';
import { SignatureSuite, importPublicKey, nodeSign, p1363ToDer } from '../../protocol/src/suites.ts';
import fc from 'fast-check';
import { generateKeyPairSync } from 'node:crypto';
import { checkRecord, type VerifiedEndorsement } from '../../consumer/src/verify.ts';
import { RecordSigner } from '../../ue/src/records.ts';
import { VerificationEngine } from '../src/verify/engine.ts';
import { EndorsementResolver } from '../src/verify/endorsements.ts';
import { VerifierPool } from '../src/verify/pool.ts';
import { VerifierCore } from '../src/verify/core.ts';
import { Finding } from '../src/verify/chain.ts';
import { errorWindow, windowFrom } from '../src/verify/windows.ts';
import type { WindowSpec } from '../src/verify/task.ts';
import { CONTRACT_END, CONTRACT_START, LEDGER_ID, encodeRecords, fixtureUes, reading, type FixtureUe } from './fixtures.ts';

const T = Date.UTC(2026, 0, 1);
const resolver = new EndorsementResolver({ anchors: { roots: [] } });
const pool = new VerifierPool({ threads: 0 });
const engine = new VerificationEngine({ pool, resolver });
let ues: FixtureUe[];

beforeAll(async () => {
  ues = await fixtureUes(6, 'engine-test');
});
afterAll(async () => {
  await pool.close();
  resolver.close();
});

const windows = (): WindowSpec[] => ues.map((u) => u.window);
const outcomes = (v: { outcome: string }[]): string[] => v.map((x) => x.outcome);
async function signN(u: FixtureUe, n: number, t0 = T): Promise<SignedRecord[]> {
  const out: SignedRecord[] = [];
  for (let i = 0; i < n; i++) out.push(await u.signer.sign(reading(i), 'application/json', t0 + i));
  return out;
}

describe('verification engine', () => {
  it('[VER-3] [SC2-2] verifies single and batch-signed records and commits to the valid ones', async () => {
    const a = await signN(ues[0] as FixtureUe, 5);
    const b = await (ues[1] as FixtureUe).signer.signBatch(Array.from({ length: 33 }, (_, i) => ({ payload: reading(i), timestampMs: T + i })), 'application/json');
    const out = await engine.verifyRecords(encodeRecords([...b, ...a]), { windows: windows() });
    expect(out.valid).toBe(38);
    expect(out.records).toBe(38);
    expect(out.chain).toEqual({ gaps: 0, missingRecords: 0, forks: 0, replays: 0, reordered: 0 });
    expect(out.ueCount).toBe(2);
    // UEs in identity-key order, records by sequence
    const [first, second] = [a, b].sort((x, y) => (keyOf(x[0] as SignedRecord) < keyOf(y[0] as SignedRecord) ? -1 : 1));
    const hashes = [...(first as SignedRecord[]), ...(second as SignedRecord[])].map((r) => recordHash(r.body));
    expect(toHex(out.commitment)).toBe(toHex(batchRoot(hashes)));
    expect(out.commitmentSize).toBe(38);
  });

  it('[VER-3] a tampered payload fails the UE signature and leaves a gap (single and batch mode)', async () => {
    const u = ues[2] as FixtureUe;
    const recs = await signN(u, 4, T + 1000);
    const enc = encodeRecords(recs);
    const body = Uint8Array.from(recs[1]?.body as Uint8Array);
    body[body.length - 2] ^= 1;
    enc[1] = SignedRecord.encode({ ...(recs[1] as SignedRecord), body }).finish();
    const batch = await u.signer.signBatch(Array.from({ length: 8 }, (_, i) => ({ payload: reading(i), timestampMs: T + 2000 + i })), 'application/json');
    const benc = encodeRecords(batch);
    const bb = Uint8Array.from(batch[5]?.body as Uint8Array);
    bb[bb.length - 2] ^= 1;
    benc[5] = SignedRecord.encode({ ...(batch[5] as SignedRecord), body: bb }).finish();
    const out = await engine.verifyRecords([...enc, ...benc], { windows: windows() });
    expect(outcomes(out.verdicts)).toEqual(['VALID', 'INVALID_SIGNATURE', 'VALID', 'VALID', 'VALID', 'VALID', 'VALID', 'VALID', 'VALID', 'INVALID_SIGNATURE', 'VALID', 'VALID']);
    expect(out.chain).toMatchObject({ gaps: 2, missingRecords: 2 });
    expect(out.verdicts[2]?.finding).toBe(Finding.GAP);
  });

  it('[VER-3] a record signed by another key is INVALID_SIGNATURE; a batch signed by another key fails whole', async () => {
    const u = ues[3] as FixtureUe;
    const [rec] = await signN(u, 1);
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const forged = { ...(rec as SignedRecord), signature: nodeSign(SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256, other, pae(Domain.record, (rec as SignedRecord).body)) };
    const batch = await u.signer.signBatch([reading(1), reading(2)], 'application/json');
    const badBatch = batch.map((r) => ({ ...r, signature: forged.signature }));
    const out = await engine.verifyRecords(encodeRecords([forged, ...badBatch]), { windows: windows() });
    expect(outcomes(out.verdicts)).toEqual(['INVALID_SIGNATURE', 'INVALID_SIGNATURE', 'INVALID_SIGNATURE']);
    expect(out.invalid.get('INVALID_SIGNATURE')).toBe(3);
  });

  it('[VER-3] signed after termination is invalid; signed before termination and checked after stays valid; outside the contract period is invalid', async () => {
    const u = ues[4] as FixtureUe;
    const end = T + 10_000;
    const recs = [
      await u.signer.sign(reading(1), 'application/json', end - 1),
      await u.signer.sign(reading(2), 'application/json', end),
      await u.signer.sign(reading(3), 'application/json', end + 5),
      await u.signer.sign(reading(4), 'application/json', CONTRACT_END + 1),
    ];
    const w = windows().map((x) => (x === u.window ? { ...x, terminationMs: end } : x));
    const out = await engine.verifyRecords(encodeRecords(recs), { windows: w });
    expect(outcomes(out.verdicts)).toEqual(['VALID', 'SIGNED_AFTER_TERMINATION', 'SIGNED_AFTER_TERMINATION', 'SIGNED_OUTSIDE_CONTRACT']);
    // a contract that started after the signature time
    const early = await engine.verifyRecords(encodeRecords([recs[0] as SignedRecord]), { windows: w.map((x) => ({ ...x, startMs: end })) });
    expect(outcomes(early.verdicts)).toEqual(['SIGNED_OUTSIDE_CONTRACT']);
  });

  it('[VER-3] [UPD-1] a judgement made against the previous windows while the AS answers is kept only when the fresh windows are the same', async () => {
    const u = ues[5] as FixtureUe;
    const recs = encodeRecords(await signN(u, 3, T + 1_000));
    const open = windows();
    const terminated = open.map((x) => (x === u.window ? { ...x, terminationMs: T } : x));
    // a resolver whose cache says one thing and whose fresh answers say another
    let cached: WindowSpec[] | undefined;
    let fresh: WindowSpec[] = open;
    let judged = 0;
    const stub = {
      peekWindows: () => cached,
      resolve: async () => fresh.map((w) => ({ ledgerId: w.ledgerId, txId: w.txId, window: w, outcome: w.error ?? 'OK', count: 0 })),
    } as unknown as EndorsementResolver;
    const countingPool = new Proxy(pool, {
      get(target, prop, receiver) {
        if (prop === 'verify') return (...a: Parameters<VerifierPool['verify']>) => (judged++, target.verify(...a));
        const v: unknown = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const spec = new VerificationEngine({ pool: countingPool, resolver: stub });
    // first run: nothing cached, judged once against the fresh windows
    expect(outcomes((await spec.verifyRecords(recs)).verdicts)).toEqual(['VALID', 'VALID', 'VALID']);
    expect(judged).toBe(1);
    // the contract ended since: the judgement against the cached (open) windows is thrown away
    cached = open;
    fresh = terminated;
    judged = 0;
    expect(outcomes((await spec.verifyRecords(recs)).verdicts)).toEqual(['SIGNED_AFTER_TERMINATION', 'SIGNED_AFTER_TERMINATION', 'SIGNED_AFTER_TERMINATION']);
    expect(judged).toBe(2);
    // nothing changed: the speculative judgement is the answer, no second one
    cached = terminated;
    judged = 0;
    expect(outcomes((await spec.verifyRecords(recs)).verdicts)).toEqual(['SIGNED_AFTER_TERMINATION', 'SIGNED_AFTER_TERMINATION', 'SIGNED_AFTER_TERMINATION']);
    expect(judged).toBe(1);
  });

  it('[VER-3] names a replay, a gap, reordering and a fork', async () => {
    const u = (await fixtureUes(1, 'chain-classes'))[0] as FixtureUe;
    const r = await signN(u, 6);
    // a second history with the same key: another record with sequence 6
    const other = await RecordSigner.open({ identity: u.identity, keystore: u.keystore, alias: u.alias });
    await other.updateEndorsement(u.tx, 1);
    const alt: SignedRecord[] = [];
    for (let i = 0; i < 6; i++) alt.push(await other.sign(reading(100 + i), 'application/json', T + 50 + i));
    const list = [r[0], r[1], r[1], r[4], r[2], r[5], alt[5]] as SignedRecord[];
    const out = await engine.verifyRecords(encodeRecords(list), { windows: [u.window] });
    // sorted: 1, 2, 2 (replay), 3 (late), [4 missing], 5 (gap), 6, 6' (fork)
    expect(outcomes(out.verdicts)).toEqual(['VALID', 'VALID', 'RECORD_REPLAYED', 'VALID', 'VALID', 'VALID', 'RECORD_FORK']);
    expect(out.chain).toEqual({ gaps: 1, missingRecords: 1, forks: 1, replays: 1, reordered: 1 });
    expect(out.verdicts[4]?.late).toBe(true);
    expect(out.valid).toBe(5);
  });

  it('[VER-3] [VER-4] an unknown tx ID, a tx hash of another endorsement, an unusable endorsement and a foreign identity are named', async () => {
    const u = ues[5] as FixtureUe;
    const s2 = await RecordSigner.open({ identity: u.identity, keystore: u.keystore, alias: u.alias });
    await s2.updateEndorsement({ ...u.tx, txId: 777 }, 1);
    const unknown = await s2.sign(reading(1), 'application/json', T);
    const s3 = await RecordSigner.open({ identity: u.identity, keystore: u.keystore, alias: u.alias });
    await s3.updateEndorsement({ ...u.tx, txHash: new Uint8Array(32).fill(9) }, 1);
    const wrongHash = await s3.sign(reading(2), 'application/json', T);
    const s4 = await RecordSigner.open({ identity: (ues[0] as FixtureUe).identity, keystore: u.keystore, alias: u.alias });
    await s4.updateEndorsement(u.tx, 1);
    const foreign = await s4.sign(reading(3), 'application/json', T);
    const missing = SignedRecord.encode({ body: new Uint8Array([8, 1]), signature: new Uint8Array([1]), batch: undefined }).finish();
    const out = await engine.verifyRecords([...encodeRecords([unknown, wrongHash, foreign]), missing, new Uint8Array([0xff, 0xff])], { windows: windows() });
    expect(outcomes(out.verdicts)).toEqual(['UNKNOWN_TX', 'INVALID_ENDORSEMENT', 'IDENTITY_MISMATCH', 'MALFORMED_MESSAGE', 'MALFORMED_MESSAGE']);
    const down = await engine.verifyRecords(encodeRecords(await signN(u, 2, T + 3000)), { windows: [errorWindow(LEDGER_ID, u.tx.txId, 'AS_UNAVAILABLE')] });
    expect(down.valid).toBe(0);
    expect(down.unverified.get('AS_UNAVAILABLE')).toBe(2);
    expect(down.invalid.size).toBe(0);
  });

  it('[VER-3] batch records verify by path when only part of a batch is present, and across task boundaries', async () => {
    const [u] = await fixtureUes(1, 'batch-parts');
    const batch = await (u as FixtureUe).signer.signBatch(Array.from({ length: 300 }, (_, i) => ({ payload: reading(i), timestampMs: T + i })), 'application/json');
    const part = await engine.verifyRecords(encodeRecords(batch.slice(0, 150)), { windows: [(u as FixtureUe).window] });
    expect(part.valid).toBe(150);
    const small = new VerificationEngine({ pool, resolver, taskRecords: 64 });
    const all = await small.verifyRecords(encodeRecords(batch), { windows: [(u as FixtureUe).window] });
    expect(all.valid).toBe(300);
    expect(all.chain.gaps + all.chain.forks).toBe(0);
    // a path of another record does not prove membership
    const wrongPath = { ...(batch[3] as SignedRecord), batch: { ...(batch[3]?.batch as NonNullable<SignedRecord['batch']>), path: batch[4]?.batch?.path ?? [] } };
    const bad = await engine.verifyRecords(encodeRecords([wrongPath]), { windows: [(u as FixtureUe).window] });
    expect(outcomes(bad.verdicts)).toEqual(['INVALID_SIGNATURE']);
  });

  it('[VER-3] reaches the same verdicts as the consumer SDK (checkRecord) on every record', async () => {
    const [u] = (await fixtureUes(1, 'differential', { terminationMs: T + 100 })) as [FixtureUe];
    const recs = [await u.signer.sign(reading(0), 'application/json', T), await u.signer.sign(reading(1), 'application/json', T + 200)];
    const tampered = { ...(recs[0] as SignedRecord), body: Uint8Array.from((recs[0] as SignedRecord).body, (b, i) => (i === 20 ? b ^ 1 : b)) };
    const batch = await u.signer.signBatch([{ payload: reading(5), timestampMs: T + 1 }, { payload: reading(6), timestampMs: T + 300 }], 'application/json');
    const claimed = verified(u, 1, 0);
    const latest = verified(u, 2, T + 100);
    const window = windowFrom(LEDGER_ID, claimed, latest);
    expect(window.terminationMs).toBe(T + 100);
    const all = [...recs, tampered, ...batch];
    const out = await engine.verifyRecords(encodeRecords(all), { windows: [window] });
    all.forEach((r, i) => {
      const ref = checkRecord(r, claimed, latest);
      expect(out.verdicts[i]?.outcome).toBe(ref.ok ? 'VALID' : ref.code);
    });
    expect(windowFrom(LEDGER_ID, latest, claimed).error).toBe('NOT_LATEST');
  });

  it('[VER-3] verifies single-mode signatures over exactly PAE("divs/record", body), DER-encoded as the protocol does', () => {
    const core = new VerifierCore();
    for (const len of [0, 1, 200, 5000]) {
      const body = Uint8Array.from({ length: len }, (_, i) => (i * 7) & 0xff);
      expect(toHex(core.recordPaeOf(body))).toBe(toHex(pae(Domain.record, body)));
    }
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.nat(31), fc.nat(31), fc.boolean(), (sig, zr, zs, high) => {
        // leading zeros and high bits in r and s: every DER length case
        sig.fill(0, 0, zr);
        sig.fill(0, 32, 32 + zs);
        if (high) sig[zr] = (sig[zr] as number) | 0x80;
        expect(toHex(core.derOf(sig))).toBe(toHex(p1363ToDer(sig) as Uint8Array));
      }),
      { numRuns: 300 },
    );
  });

  it('[GEN-8] gives the same verdicts on worker threads as inline', async () => {
    const threaded = new VerifierPool({ threads: 1 });
    try {
      const e2 = new VerificationEngine({ pool: threaded, resolver, taskRecords: 50 });
      const [u] = (await fixtureUes(1, 'threads')) as [FixtureUe];
      const recs = [...(await signN(u, 30)), ...(await u.signer.signBatch(Array.from({ length: 90 }, (_, i) => ({ payload: reading(i), timestampMs: T + 100 + i })), 'application/json'))];
      const enc = encodeRecords(recs);
      enc[7] = Uint8Array.from(enc[7] as Uint8Array, (b, i) => (i === 30 ? b ^ 4 : b));
      const a = await e2.verifyRecords(enc, { windows: [u.window] });
      const b = await engine.verifyRecords(enc, { windows: [u.window] });
      expect(outcomes(a.verdicts)).toEqual(outcomes(b.verdicts));
      expect(toHex(a.commitment)).toBe(toHex(b.commitment));
      expect(a.valid).toBe(119);
    } finally {
      await threaded.close();
    }
  });
});

function keyOf(r: SignedRecord): string {
  const id = RecordBody.decode(r.body).identity;
  if (!id) throw new Error('no identity');
  return ueKeyOf(id);
}

/** A VerifiedEndorsement as the consumer SDK would produce it, from fixture key material. */
function verified(u: FixtureUe, version: number, terminationMs: number): VerifiedEndorsement {
  const suite = SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;
  const params = RegistrationParams.fromPartial({ identity: u.identity, publicKey: { suite, key: u.publicKey }, suites: [suite], createdAtMs: T });
  const endorsement = Endorsement.fromPartial({
    registration: { params: RegistrationParams.encode(params).finish(), signature: new Uint8Array(64) },
    accountStatus: {
      identity: u.identity,
      startTimeMs: CONTRACT_START,
      endTimeMs: CONTRACT_END,
      terminationTimeMs: terminationMs,
      state: terminationMs > 0 ? ContractState.CONTRACT_STATE_TERMINATED : ContractState.CONTRACT_STATE_ACTIVE,
    },
    version,
    ueKey: sha256(u.publicKey),
  });
  const tx: TxRef = u.tx;
  return {
    txId: version === 1 ? tx.txId : tx.txId + 1000,
    leafHash: version === 1 ? tx.txHash : sha256(tx.txHash),
    endorsement,
    params,
    ueKey: sha256(u.publicKey),
    suite,
    publicKey: importPublicKey(suite, u.publicKey),
    asSubject: 'as-1',
    checkpoint: { origin: LEDGER_ID, size: 10, rootHash: new Uint8Array(32), stateRoot: new Uint8Array(32), signer: 'as-1', note: '' },
    isLatest: version === 2,
    validUntilMs: Number.MAX_SAFE_INTEGER,
  };
}
