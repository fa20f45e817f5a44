/**
 * Record signing on the UE [VER-1] [VER-2] [FW-UE]: the per-UE chain (sequence from 1, previous
 * body hash), the latest tx reference attached, batch mode with inclusion proofs, keeping only
 * the newest endorsement, and chain state that survives a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordBody, SignatureSuite, type SignedRecord, type TxRef, type UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { sha256, utf8 } from '../../protocol/src/bytes.ts';
import { verifyRecordSignature } from '../../protocol/src/records.ts';
import { importPublicKey } from '../../protocol/src/suites.ts';
import { expectCodeAsync, flipBit } from '../../protocol/test/helpers.ts';
import { SoftwareKeyStore } from '../src/keystore.ts';
import { RecordSigner } from '../src/records.ts';

const P256 = SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;
const identity: UeIdentity = { imei: '490154203237518', iccid: '89490200001234567892', eid: '', msisdn: '+491701234567' };
const txRef = (txId: number): TxRef => ({
  txId,
  txHash: sha256(utf8(`tx ${txId}`)),
  entryAddress: { ledgerId: 'divs-test', asUrls: ['grpc://as1.example:7443'] },
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'divs-ue-records-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function setup(opts: { statePath?: string; registered?: boolean; alias?: string; ks?: SoftwareKeyStore } = {}) {
  const ks = opts.ks ?? new SoftwareKeyStore();
  const alias = opts.alias ?? 'ue';
  if (!(await ks.has(alias))) await ks.generate(alias, P256);
  const signer = await RecordSigner.open({ identity, keystore: ks, alias, ...(opts.statePath ? { statePath: opts.statePath } : {}) });
  if (opts.registered ?? true) await signer.updateEndorsement(txRef(7), 1);
  const key = importPublicKey(P256, (await ks.publicKey(alias)).key);
  return { ks, signer, key };
}

const decode = (r: SignedRecord) => RecordBody.decode(r.body);

describe('RecordSigner chain', () => {
  it('[VER-1] [VER-2] sequences from 1, chains previous body hashes, attaches the tx ref, and verifies', async () => {
    const { signer, key } = await setup();
    const r1 = await signer.sign(utf8('{"kWh":1.5}'), 'application/json', 1_760_000_000_000);
    const r2 = await signer.sign(utf8('{"kWh":1.7}'), 'application/json');
    const r3 = await signer.sign(utf8('raw'), 'application/octet-stream');
    const [b1, b2, b3] = [decode(r1), decode(r2), decode(r3)];
    expect([b1.sequence, b2.sequence, b3.sequence]).toEqual([1, 2, 3]);
    expect(b1.previousHash).toEqual(new Uint8Array(32));
    expect(b2.previousHash).toEqual(sha256(r1.body));
    expect(b3.previousHash).toEqual(sha256(r2.body));
    expect(b1.identity).toEqual(identity);
    expect(b1.timestampMs).toBe(1_760_000_000_000);
    expect(b1.contentType).toBe('application/json');
    expect(b1.endorsement).toEqual(txRef(7));
    for (const r of [r1, r2, r3]) {
      expect(r.batch).toBeUndefined();
      expect(verifyRecordSignature(r, P256, key)).toBe(true);
    }
    expect(verifyRecordSignature({ ...r2, body: flipBit(r2.body, 100) }, P256, key)).toBe(false);
    expect(signer.state.sequence).toBe(3);
    expect(signer.state.previousHash).toEqual(sha256(r3.body));
  });

  it('[VER-1] refuses to sign before an endorsement is known (NOT_REGISTERED), unless allowed', async () => {
    const { ks, signer } = await setup({ registered: false });
    await expectCodeAsync(signer.sign(utf8('x'), 'text/plain'), 'NOT_REGISTERED');
    expect(signer.nextSequence).toBe(1);
    const lax = await RecordSigner.open({ identity, keystore: ks, alias: 'ue', requireEndorsement: false });
    expect(decode(await lax.sign(utf8('x'), 'text/plain')).endorsement).toBeUndefined();
  });

  it('[VER-1] concurrent callers never share a sequence number', async () => {
    const { signer, key } = await setup();
    const recs = await Promise.all(Array.from({ length: 12 }, (_, i) => signer.sign(utf8(`r${i}`), 'text/plain')));
    const bodies = recs.map(decode);
    expect(bodies.map((b) => b.sequence)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    for (let i = 1; i < recs.length; i++) expect(bodies[i]?.previousHash).toEqual(sha256((recs[i - 1] as SignedRecord).body));
    for (const r of recs) expect(verifyRecordSignature(r, P256, key)).toBe(true);
  });

  it('[VER-1] bad inputs get coded errors and do not advance the chain', async () => {
    const { signer, ks } = await setup();
    await expectCodeAsync(signer.sign('text' as unknown as Uint8Array, 'text/plain'), 'INVALID_ARGUMENT');
    await expectCodeAsync(signer.sign(utf8('x'), 'not a media type'), 'INVALID_ARGUMENT');
    await expectCodeAsync(signer.sign(utf8('x'), 'text/plain', -5), 'INVALID_ARGUMENT');
    await expectCodeAsync(signer.sign(new Uint8Array(1024 * 1024 + 1), 'text/plain'), 'MESSAGE_TOO_LARGE');
    await expectCodeAsync(signer.signBatch([]), 'INVALID_ARGUMENT');
    const small = await RecordSigner.open({ identity, keystore: ks, alias: 'ue', maxBatchSize: 3 });
    await expectCodeAsync(small.signBatch([utf8('1'), utf8('2'), utf8('3'), utf8('4')]), 'BATCH_TOO_LARGE');
    expect(signer.nextSequence).toBe(1);
    await expectCodeAsync(RecordSigner.open({ identity, keystore: ks, alias: 'missing' }), 'KEY_NOT_FOUND');
    await expectCodeAsync(RecordSigner.open({ identity: { ...identity, imei: '123' }, keystore: ks, alias: 'ue' }), 'INVALID_IMEI');
  });
});

describe('RecordSigner batch mode', () => {
  it('[VER-1] one signature over the batch root; consecutive chained records whose inclusion paths verify', async () => {
    const { signer, key } = await setup();
    const first = await signer.sign(utf8('before'), 'text/plain');
    const recs = await signer.signBatch([utf8('a'), utf8('b'), { payload: utf8('{"c":1}'), contentType: 'application/json', timestampMs: 42 }, utf8('d'), utf8('e')], 'text/plain');
    expect(recs).toHaveLength(5);
    const bodies = recs.map(decode);
    expect(bodies.map((b) => b.sequence)).toEqual([2, 3, 4, 5, 6]);
    expect(bodies[0]?.previousHash).toEqual(sha256(first.body));
    for (let i = 1; i < 5; i++) expect(bodies[i]?.previousHash).toEqual(sha256((recs[i - 1] as SignedRecord).body));
    expect(bodies[2]?.contentType).toBe('application/json');
    expect(bodies[2]?.timestampMs).toBe(42);
    expect(bodies[1]?.contentType).toBe('text/plain');
    expect(new Set(recs.map((r) => Buffer.from(r.signature).toString('hex'))).size).toBe(1);
    recs.forEach((r, i) => {
      expect(r.batch?.index).toBe(i);
      expect(r.batch?.size).toBe(5);
      expect(verifyRecordSignature(r, P256, key)).toBe(true);
    });
    // the chain continues after the batch
    expect(decode(await signer.sign(utf8('after'), 'text/plain')).previousHash).toEqual(sha256((recs[4] as SignedRecord).body));
  });

  it('[VER-1] a tampered batch record fails, the others still verify', async () => {
    const { signer, key } = await setup();
    const recs = await signer.signBatch(Array.from({ length: 6 }, (_, i) => utf8(`reading ${i}`)));
    const tampered = { ...(recs[3] as SignedRecord), body: flipBit((recs[3] as SignedRecord).body, 200) };
    expect(verifyRecordSignature(tampered, P256, key)).toBe(false);
    // a valid body presented with another record's proof fails too
    expect(verifyRecordSignature({ ...(recs[3] as SignedRecord), body: (recs[4] as SignedRecord).body }, P256, key)).toBe(false);
    for (const r of [recs[0], recs[1], recs[2], recs[4], recs[5]]) expect(verifyRecordSignature(r as SignedRecord, P256, key)).toBe(true);
  });
});

describe('RecordSigner endorsement updates', () => {
  it('[FW-UE] [UPD-4] keeps only the newest version: older and repeated updates are ignored', async () => {
    const { signer } = await setup({ registered: false });
    expect(signer.endorsement).toBeUndefined();
    expect(await signer.updateEndorsement(txRef(10), 2)).toBe(true);
    expect(await signer.updateEndorsement(txRef(5), 1)).toBe(false);
    expect(await signer.updateEndorsement(txRef(10), 2)).toBe(false);
    expect(await signer.updateEndorsement(txRef(11), 2)).toBe(false);
    expect(signer.endorsement).toEqual({ tx: txRef(10), version: 2 });
    expect(await signer.updateEndorsement(txRef(20), 3)).toBe(true);
    expect(decode(await signer.sign(utf8('x'), 'text/plain')).endorsement).toEqual(txRef(20));
    // out-of-order delivery after a reconnect
    expect(await signer.updateEndorsement(txRef(10), 2)).toBe(false);
    expect(signer.endorsement?.version).toBe(3);
  });

  it('[FW-UE] the held reference is a copy: changing the caller object does not change records', async () => {
    const { signer } = await setup({ registered: false });
    const t = txRef(3);
    await signer.updateEndorsement(t, 1);
    t.txHash[0] = 0xff;
    t.entryAddress!.ledgerId = 'evil';
    expect(decode(await signer.sign(utf8('x'), 'text/plain')).endorsement).toEqual(txRef(3));
  });

  it('[FW-UE] malformed references get coded errors', async () => {
    const { signer } = await setup({ registered: false });
    await expectCodeAsync(signer.updateEndorsement(undefined as unknown as TxRef, 1), 'MISSING_FIELD');
    await expectCodeAsync(signer.updateEndorsement(txRef(1), 0), 'INVALID_ARGUMENT');
    await expectCodeAsync(signer.updateEndorsement(txRef(1), 1.5), 'INVALID_ARGUMENT');
    await expectCodeAsync(signer.updateEndorsement({ ...txRef(1), txHash: new Uint8Array(3) }, 1), 'INVALID_ARGUMENT');
    await expectCodeAsync(signer.updateEndorsement({ ...txRef(1), txId: -1 }, 1), 'INVALID_ARGUMENT');
    await expectCodeAsync(signer.updateEndorsement({ ...txRef(1), entryAddress: undefined }, 1), 'MISSING_FIELD');
    expect(signer.endorsement).toBeUndefined();
  });
});

describe('RecordSigner persistence', () => {
  it('[VER-1] [FW-UE] a restarted UE continues its chain and keeps its latest endorsement', async () => {
    const statePath = join(dir, 'chain.json');
    const ks = new SoftwareKeyStore();
    const a = await setup({ statePath, ks });
    await a.signer.updateEndorsement(txRef(9), 2);
    await a.signer.sign(utf8('1'), 'text/plain');
    const batch = await a.signer.signBatch([utf8('2'), utf8('3')]);
    expect((await stat(statePath)).mode & 0o777).toBe(0o600);

    const b = await RecordSigner.open({ identity, keystore: ks, alias: 'ue', statePath });
    expect(b.nextSequence).toBe(4);
    expect(b.endorsement).toEqual({ tx: txRef(9), version: 2 });
    const next = decode(await b.sign(utf8('4'), 'text/plain'));
    expect(next.sequence).toBe(4);
    expect(next.previousHash).toEqual(sha256((batch[1] as SignedRecord).body));
    expect(next.endorsement).toEqual(txRef(9));
  });

  it('[VER-1] a corrupt state file, or one of another key or identity, is refused with a code', async () => {
    const statePath = join(dir, 'bad-chain.json');
    const ks = new SoftwareKeyStore();
    const { signer } = await setup({ statePath, ks });
    await signer.sign(utf8('1'), 'text/plain');
    const good = JSON.parse(await readFile(statePath, 'utf8')) as Record<string, unknown>;
    const open = (alias = 'ue', id = identity) => RecordSigner.open({ identity: id, keystore: ks, alias, statePath });

    for (const raw of ['', '{', 'null', JSON.stringify({ ...good, format: 'x' }), JSON.stringify({ ...good, sequence: -1 }), JSON.stringify({ ...good, previousHash: 'zz' }), JSON.stringify({ ...good, previousHash: '00' }), JSON.stringify({ ...good, endorsement: { version: 0 } })]) {
      await writeFile(statePath, raw);
      await expectCodeAsync(open(), 'STATE_CORRUPT');
    }
    await writeFile(statePath, JSON.stringify(good));
    await ks.generate('other', P256);
    await expectCodeAsync(open('other'), 'STATE_CORRUPT');
    await expectCodeAsync(open('ue', { ...identity, msisdn: '+491709999999' }), 'IDENTITY_MISMATCH');
    expect((await open()).nextSequence).toBe(2);
  });

  it('[VER-1] when the state cannot be written the record is not released and the chain does not advance', async () => {
    const statePath = join(dir, 'no-such-dir', 'chain.json');
    const { signer, ks } = await setup({ registered: false, statePath });
    await expectCodeAsync(signer.updateEndorsement(txRef(1), 1), 'STORAGE_FAILED');
    expect(signer.endorsement).toBeUndefined();
    const lax = await RecordSigner.open({ identity, keystore: ks, alias: 'ue', statePath, requireEndorsement: false });
    await expectCodeAsync(lax.sign(utf8('x'), 'text/plain'), 'STORAGE_FAILED');
    await expectCodeAsync(lax.signBatch([utf8('x')]), 'STORAGE_FAILED');
    expect(lax.nextSequence).toBe(1);
    expect(lax.state.previousHash).toEqual(new Uint8Array(32));
  });
});
