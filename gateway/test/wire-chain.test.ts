/**
 * The zero-copy record reader against the generated decoders (random records, re-ordered and
 * unknown fields, hostile bytes), and the pure per-UE chain checks.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { RecordBody, SignedRecord } from '../../proto/gen/divs/v1/common.ts';
import { RecordFields, scanBody, scanPath, scanSignedRecord } from '../src/verify/wire.ts';
import { ChainTracker, Finding } from '../src/verify/chain.ts';

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const body = fc.record({
  identity: fc.record({ imei: fc.string({ maxLength: 16 }), iccid: fc.string({ maxLength: 20 }), eid: fc.constant(''), msisdn: fc.string({ maxLength: 16 }) }),
  sequence: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  previousHash: fc.uint8Array({ maxLength: 40 }),
  timestampMs: fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  payload: fc.uint8Array({ maxLength: 300 }),
  contentType: fc.string({ maxLength: 30 }),
  endorsement: fc.option(
    fc.record({ txId: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), txHash: fc.uint8Array({ maxLength: 33 }), entryAddress: fc.record({ ledgerId: fc.string({ maxLength: 20 }), asUrls: fc.array(fc.string({ maxLength: 20 }), { maxLength: 3 }) }) }),
    { nil: undefined },
  ),
});
const batch = fc.option(fc.record({ index: fc.nat(), size: fc.nat(), path: fc.array(bytes32, { maxLength: 33 }), root: fc.uint8Array({ maxLength: 33 }) }), { nil: undefined });

describe('record reader', () => {
  const f = new RecordFields();

  it('[VER-3] reads every field the generated decoder reads, at the right offsets', () => {
    fc.assert(
      fc.property(body, fc.uint8Array({ maxLength: 80 }), batch, (b, signature, bp) => {
        const bodyBytes = RecordBody.encode(b).finish();
        const rec = SignedRecord.encode({ body: bodyBytes, signature, batch: bp }).finish();
        expect(scanSignedRecord(rec, 0, rec.length, f)).toBe(true);
        const back = SignedRecord.decode(rec);
        expect(Buffer.from(rec.subarray(f.bodyOff, f.bodyOff + f.bodyLen)).equals(Buffer.from(back.body))).toBe(true);
        expect(f.sigLen).toBe(back.signature.length);
        expect(f.batch).toBe(back.batch !== undefined);
        if (back.batch) {
          expect([f.batchIndex, f.batchSize, f.pathCount]).toEqual([back.batch.index, back.batch.size, back.batch.path.length]);
          const paths = new Int32Array(64);
          const n = scanPath(rec, f.batchOff, f.batchLen, paths, 0, 64);
          expect(n).toBe(back.batch.path.length);
          for (let k = 0; k < n; k++) expect(Buffer.from(rec.subarray(paths[k] as number, (paths[k] as number) + 32)).equals(Buffer.from(back.batch.path[k] as Uint8Array))).toBe(true);
        }
        expect(scanBody(rec, f.bodyOff, f.bodyLen, f)).toBe(true);
        const d = RecordBody.decode(bodyBytes);
        expect(f.sequence).toBe(d.sequence);
        expect(f.timestampMs).toBe(d.timestampMs);
        expect(f.prevLen).toBe(d.previousHash.length);
        expect(f.payloadLen).toBe(d.payload.length);
        expect(Buffer.from(f.payloadOff < 0 ? new Uint8Array(0) : rec.subarray(f.payloadOff, f.payloadOff + f.payloadLen)).equals(Buffer.from(d.payload))).toBe(true);
        expect(f.hasTx).toBe(d.endorsement !== undefined);
        if (d.endorsement) expect(f.txId).toBe(d.endorsement.txId);
      }),
      { numRuns: 200 },
    );
  });

  it('[VER-3] takes the last occurrence of a field and skips unknown fields, as the generated decoder does', () => {
    const w = new BinaryWriter();
    w.uint32(16).uint64(5); // sequence 5
    w.uint32(8 * 99 + 2).bytes(new Uint8Array([1, 2, 3])); // unknown field 99
    w.uint32(16).uint64(7); // sequence 7 wins
    w.uint32(32).int64(-42); // negative timestamp (10-byte varint)
    const b = w.finish();
    expect(scanBody(b, 0, b.length, f)).toBe(true);
    const d = RecordBody.decode(b);
    expect([f.sequence, f.timestampMs]).toEqual([d.sequence, d.timestampMs]);
    expect(f.sequence).toBe(7);
    expect(f.timestampMs).toBe(-42);
  });

  it('[VER-3] answers false, never throws, on hostile bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
        const ok1 = scanSignedRecord(junk, 0, junk.length, f);
        const ok2 = scanBody(junk, 0, junk.length, f);
        expect(typeof ok1 === 'boolean' && typeof ok2 === 'boolean').toBe(true);
      }),
      { numRuns: 500 },
    );
    // a length running past the end, a truncated varint, a zero tag, a group, a sequence above 2^53
    for (const bad of [[10, 50, 1], [16, 0x80], [0], [11, 12], [16, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]]) {
      const b = new Uint8Array(bad);
      expect(scanSignedRecord(b, 0, b.length, f) && scanBody(b, 0, b.length, f)).toBe(false);
    }
    expect(scanBody(new Uint8Array(4), 2, 10, f)).toBe(false);
  });
});

describe('chain tracker', () => {
  const h = (n: number): Uint8Array => new Uint8Array(32).fill(n);
  const zero = new Uint8Array(32);
  const step = (t: ChainTracker, seq: number, prev: number, own: number) => t.observe(seq, prev === 0 ? zero : h(prev), 0, h(own), 0);

  it('[VER-3] accepts an intact chain from sequence 1', () => {
    const t = new ChainTracker();
    expect([step(t, 1, 0, 1), step(t, 2, 1, 2), step(t, 3, 2, 3)]).toEqual([Finding.OK, Finding.OK, Finding.OK]);
    expect(t.tail?.sequence).toBe(3);
  });

  it('[VER-3] names a gap and how many records are missing', () => {
    const t = new ChainTracker();
    step(t, 1, 0, 1);
    expect(step(t, 4, 3, 4)).toBe(Finding.GAP);
    expect(t.missing).toBe(2);
    const late = new ChainTracker();
    expect(step(late, 3, 2, 3)).toBe(Finding.GAP);
    expect(late.missing).toBe(2);
    expect(step(new ChainTracker({ requireGenesis: false }), 3, 2, 3)).toBe(Finding.OK);
  });

  it('[VER-3] names a replay (same record again) and a fork (same sequence, other record, or another predecessor)', () => {
    const t = new ChainTracker();
    step(t, 1, 0, 1);
    step(t, 2, 1, 2);
    expect(step(t, 2, 1, 2)).toBe(Finding.REPLAY);
    expect(step(t, 2, 1, 9)).toBe(Finding.FORK);
    expect(step(t, 3, 8, 3)).toBe(Finding.FORK);
    expect(step(new ChainTracker(), 1, 5, 1)).toBe(Finding.FORK);
  });

  it('[VER-3] names reordering: a record after a higher sequence number', () => {
    const t = new ChainTracker();
    step(t, 1, 0, 1);
    step(t, 3, 2, 3);
    expect(step(t, 2, 1, 2)).toBe(Finding.REORDERED);
  });

  it('[VER-3] leaves the first record of a continued chain pending and resumes from a tail', () => {
    const t = new ChainTracker({ startsMidChain: true, assumeUnique: true });
    expect(step(t, 10, 9, 10)).toBe(Finding.PENDING);
    expect(step(t, 11, 10, 11)).toBe(Finding.OK);
    const u = new ChainTracker({ assumeUnique: true });
    u.resume({ sequence: 9, hash: h(9) });
    expect(step(u, 10, 9, 10)).toBe(Finding.OK);
    expect(step(u, 10, 9, 10)).toBe(Finding.REPLAY);
  });
});
