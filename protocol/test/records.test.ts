/**
 * Record hashing, batch trees and the record signature verifier [VER-1] [VER-3]: RFC 9162
 * known answers, round trips in every suite and batch size, and hostile inputs that must answer
 * false without throwing.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BatchProof, RecordBody, SignatureSuite, SignedRecord } from '../../proto/gen/divs/v1/common.ts';
import { Domain, pae, sha256 } from '../src/bytes.ts';
import {
  GENESIS_PREVIOUS_HASH,
  batchLeafHash,
  batchStatement,
  buildBatch,
  decodeRecordBody,
  recordHash,
  verifyBatchInclusion,
  verifyRecordSignature,
} from '../src/records.ts';
import { generateSecretKey, importPublicKey, nobleSign, publicKeyOf, type Suite } from '../src/suites.ts';
import { expectCode, flipBit, hex, toHexStr } from './helpers.ts';
import { batchRoot, leafHash } from '../src/merkle.ts';

const SUITES: Suite[] = [
  SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256,
  SignatureSuite.SIGNATURE_SUITE_ED25519,
  SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256,
];

function keyPair(suite: Suite) {
  const sk = generateSecretKey(suite);
  const pk = publicKeyOf(suite, sk);
  return { sk, key: importPublicKey(suite, pk) };
}

function body(seq: number, payload = `reading ${seq}`): Uint8Array {
  return RecordBody.encode({
    identity: { imei: '490154203237518', iccid: '89490200001234567892', eid: '', msisdn: '+491701234567' },
    sequence: seq,
    previousHash: GENESIS_PREVIOUS_HASH,
    timestampMs: 1_760_000_000_000 + seq,
    payload: new TextEncoder().encode(payload),
    contentType: 'text/plain',
    endorsement: undefined,
  }).finish();
}

function signBatch(suite: Suite, sk: Uint8Array, bodies: Uint8Array[]): SignedRecord[] {
  const b = buildBatch(bodies);
  const sig = nobleSign(suite, sk, pae(Domain.recordBatch, batchStatement(b.root, b.size)));
  return bodies.map((bd, index) => ({ body: bd, signature: sig, batch: { index, size: b.size, path: b.paths[index] as Uint8Array[], root: b.root } }));
}

describe('record hash', () => {
  it('[VER-1] is SHA-256 over the exact body bytes; genesis previous hash is 32 zero bytes', () => {
    const b = body(1);
    expect(recordHash(b)).toEqual(sha256(b));
    expect(GENESIS_PREVIOUS_HASH).toEqual(new Uint8Array(32));
  });

  it('[VER-1] decodeRecordBody gives MALFORMED_MESSAGE on bytes that are not a RecordBody', () => {
    expect(decodeRecordBody(body(3)).sequence).toBe(3);
    expectCode(() => decodeRecordBody(new Uint8Array([0xff, 0xff, 0xff])), 'MALFORMED_MESSAGE');
    expectCode(() => decodeRecordBody(new Uint8Array()), 'MALFORMED_MESSAGE');
  });
});

describe('batch tree (RFC 9162)', () => {
  // RFC 6962 / 9162 reference tree (certificate-transparency test vectors)
  const leaves = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(hex);
  const roots = [
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
    'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
    '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
    'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
    '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
  ];

  it('[VER-1] roots match the RFC 9162 reference vectors for sizes 1..8 (items = record hashes)', () => {
    // the reference tree, over the vectors' items themselves
    expect(toHexStr(batchRoot([new Uint8Array()]))).toBe(roots[0]);
    for (let n = 1; n <= 8; n++) expect(toHexStr(batchRoot(leaves.slice(0, n)))).toBe(roots[n - 1]);
    // a batch is that tree over its record hashes: leaf = SHA-256(0x00 || SHA-256(body))
    for (let n = 1; n <= 8; n++) {
      const bodies = leaves.slice(0, n);
      expect(toHexStr(buildBatch(bodies).root)).toBe(toHexStr(batchRoot(bodies.map((b) => recordHash(b)))));
    }
    expect(toHexStr(batchLeafHash(leaves[3] as Uint8Array))).toBe(toHexStr(leafHash(recordHash(leaves[3] as Uint8Array))));
  });

  it('[VER-1] every inclusion path of every batch size up to 33 verifies, and only at its own index', () => {
    for (let n = 1; n <= 33; n++) {
      const bodies = Array.from({ length: n }, (_, i) => body(i + 1));
      const b = buildBatch(bodies);
      for (let i = 0; i < n; i++) {
        const proof = { index: i, size: n, path: b.paths[i] as Uint8Array[], root: b.root };
        expect(verifyBatchInclusion(bodies[i] as Uint8Array, proof)).toBe(true);
        if (n > 1) expect(verifyBatchInclusion(bodies[i] as Uint8Array, { ...proof, index: (i + 1) % n })).toBe(false);
      }
    }
  });

  it('[VER-1] buildBatch refuses an empty batch and non-bytes with INVALID_ARGUMENT', () => {
    expectCode(() => buildBatch([]), 'INVALID_ARGUMENT');
    expectCode(() => buildBatch(['x' as unknown as Uint8Array]), 'INVALID_ARGUMENT');
  });
});

describe('verifyRecordSignature', () => {
  for (const suite of SUITES) {
    it(`[VER-1] [VER-3] single mode verifies and fails on any changed bit (suite ${suite})`, () => {
      const { sk, key } = keyPair(suite);
      const b = body(1);
      const rec: SignedRecord = { body: b, signature: nobleSign(suite, sk, pae(Domain.record, b)), batch: undefined };
      expect(verifyRecordSignature(rec, suite, key)).toBe(true);
      expect(verifyRecordSignature({ ...rec, body: flipBit(b, 77) }, suite, key)).toBe(false);
      expect(verifyRecordSignature({ ...rec, signature: flipBit(rec.signature, 5) }, suite, key)).toBe(false);
      // a record signature is never valid as a batch statement, nor under another key
      expect(verifyRecordSignature(rec, suite, keyPair(suite).key)).toBe(false);
    });

    it(`[VER-1] [VER-3] batch mode: every record verifies with one signature (suite ${suite})`, () => {
      const { sk, key } = keyPair(suite);
      const recs = signBatch(suite, sk, Array.from({ length: 7 }, (_, i) => body(i + 1)));
      for (const r of recs) expect(verifyRecordSignature(r, suite, key)).toBe(true);
      // survives the wire
      const wire = SignedRecord.decode(SignedRecord.encode(recs[3] as SignedRecord).finish());
      expect(verifyRecordSignature(wire, suite, key)).toBe(true);
    });
  }

  const suite = SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;
  const { sk, key } = keyPair(suite);
  const recs = signBatch(suite, sk, Array.from({ length: 5 }, (_, i) => body(i + 1)));
  const r = recs[2] as SignedRecord;
  const proof = r.batch as BatchProof;

  // an inclusion path alone need not pin the size (a left subtree looks alike in a bigger tree);
  // the signature over root || size does
  it('[VER-1] batch mode fails on a tampered body, path, root, index or size', () => {
    expect(verifyRecordSignature({ ...r, body: body(3, 'tampered') }, suite, key)).toBe(false);
    expect(verifyRecordSignature({ ...r, batch: { ...proof, path: [flipBit(proof.path[0] as Uint8Array, 1), ...proof.path.slice(1)] } }, suite, key)).toBe(false);
    expect(verifyRecordSignature({ ...r, batch: { ...proof, path: proof.path.slice(1) } }, suite, key)).toBe(false);
    expect(verifyRecordSignature({ ...r, batch: { ...proof, path: [...proof.path, proof.root] } }, suite, key)).toBe(false);
    expect(verifyRecordSignature({ ...r, batch: { ...proof, root: flipBit(proof.root, 9) } }, suite, key)).toBe(false);
    expect(verifyRecordSignature({ ...r, batch: { ...proof, index: 3 } }, suite, key)).toBe(false);
    expect(verifyRecordSignature({ ...r, batch: { ...proof, size: 6 } }, suite, key)).toBe(false);
    // a batch record stripped of its proof is not a single-mode record
    expect(verifyRecordSignature({ ...r, batch: undefined }, suite, key)).toBe(false);
    // another record of the batch moved under this record's proof
    expect(verifyRecordSignature({ ...r, body: (recs[1] as SignedRecord).body }, suite, key)).toBe(false);
  });

  it('[VER-3] hostile inputs answer false and never throw', () => {
    const hostile: unknown[] = [
      null,
      undefined,
      42,
      'record',
      {},
      { body: 'x', signature: r.signature },
      { body: new Uint8Array(), signature: r.signature },
      { body: r.body, signature: new Uint8Array() },
      { body: r.body, signature: r.signature, batch: {} },
      { body: r.body, signature: r.signature, batch: { ...proof, index: -1 } },
      { body: r.body, signature: r.signature, batch: { ...proof, index: 1.5 } },
      { body: r.body, signature: r.signature, batch: { ...proof, size: 0 } },
      { body: r.body, signature: r.signature, batch: { ...proof, size: Number.MAX_SAFE_INTEGER } },
      { body: r.body, signature: r.signature, batch: { ...proof, size: 2 ** 40 } },
      { body: r.body, signature: r.signature, batch: { ...proof, path: 'abc' } },
      { body: r.body, signature: r.signature, batch: { ...proof, path: [new Uint8Array(31)] } },
      { body: r.body, signature: r.signature, batch: { ...proof, path: Array.from({ length: 100 }, () => new Uint8Array(32)) } },
      { body: r.body, signature: r.signature, batch: { ...proof, root: new Uint8Array(33) } },
      {
        get body(): Uint8Array {
          throw new Error('boom');
        },
      },
    ];
    for (const h of hostile) expect(verifyRecordSignature(h as SignedRecord, suite, key)).toBe(false);
    expect(verifyRecordSignature(r, 99 as Suite, key)).toBe(false);
  });

  it('[VER-1] property: for any batch and any single flipped bit of a body, only untouched records verify', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.nat(), fc.nat(), (n, which, bit) => {
        const bodies = Array.from({ length: n }, (_, i) => body(i + 1, `p${n}-${i}`));
        const b = buildBatch(bodies);
        const i = which % n;
        const proof = { index: i, size: n, path: b.paths[i] as Uint8Array[], root: b.root };
        return verifyBatchInclusion(bodies[i] as Uint8Array, proof) && !verifyBatchInclusion(flipBit(bodies[i] as Uint8Array, bit % ((bodies[i] as Uint8Array).length * 8)), proof);
      }),
      { numRuns: 60 },
    );
  });
});
