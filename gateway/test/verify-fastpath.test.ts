/**
 * The batch verification fast path: the one-pass record reader against the general readers and
 * the generated decoders (random, re-encoded and mutated records, hostile bytes), the engine core
 * on whole signed batches that span several read chunks (every bit of a body flipped in turn
 * gives that record, and only that record, the outcome its bytes call for), and the SHA-256
 * work accounting the batch benchmark's hash-speed bound is computed from.
 */
import { describe, expect, it, beforeAll } from 'vitest';
import fc from 'fast-check';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { RecordBody, SignedRecord } from '../../proto/gen/divs/v1/common.ts';
import { equalBytes } from '../../protocol/src/bytes.ts';
import { RecordFields, scanBody, scanCanonical, scanMessage, scanRecord, scanSignedRecord } from '../src/verify/wire.ts';
import { VerifierCore } from '../src/verify/core.ts';
import { SCAN_STRIDE, SLOT, fieldsFromScan, scanRecords, verifierHasher } from '../src/verify/scan-kernel.ts';
import { VerifierPool } from '../src/verify/pool.ts';
import { packRecords, outcomeOf, type VerifyTask, type WindowSpec } from '../src/verify/task.ts';
import { LEDGER_ID, encodeRecords, fixtureUes, reading, type FixtureUe } from './fixtures.ts';

const T = Date.UTC(2026, 0, 1);

/** Every field the readers fill, as plain data (to compare two readers' results). */
// every field both readers fill (pathOff is a hint only the one-pass reader gives: the offset of
// a canonical run of path hashes; the general readers leave it -1 and the core walks the path)
const fieldsOf = (f: RecordFields): Record<string, number | boolean> => {
  const { pathOff: _hint, ...rest } = f;
  return { ...rest };
};

/** The general readers' answer for a whole record, as scanRecord defines it. */
function general(b: Uint8Array, f: RecordFields): boolean {
  return scanSignedRecord(b, 0, b.length, f) && f.bodyOff >= 0 && f.bodyLen > 0 && scanBody(b, f.bodyOff, f.bodyLen, f);
}

const short = fc.integer({ min: 0, max: 2 ** 40 });
const body = fc.record({
  identity: fc.record({ imei: fc.string({ maxLength: 16 }), iccid: fc.string({ maxLength: 20 }), eid: fc.string({ maxLength: 4 }), msisdn: fc.string({ maxLength: 16 }) }),
  sequence: short,
  previousHash: fc.uint8Array({ maxLength: 40 }),
  timestampMs: short,
  payload: fc.uint8Array({ maxLength: 300 }),
  contentType: fc.string({ maxLength: 30 }),
  endorsement: fc.option(
    fc.record({ txId: short, txHash: fc.uint8Array({ maxLength: 33 }), entryAddress: fc.option(fc.record({ ledgerId: fc.string({ maxLength: 20 }), asUrls: fc.array(fc.string({ maxLength: 20 }), { maxLength: 3 }) }), { nil: undefined }) }),
    { nil: undefined },
  ),
});
const batch = fc.option(fc.record({ index: short, size: short, path: fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { maxLength: 12 }), root: fc.uint8Array({ maxLength: 33 }) }), { nil: undefined });
const record = fc.tuple(body, fc.uint8Array({ maxLength: 80 }), batch).map(([b, signature, bp]) => SignedRecord.encode({ body: RecordBody.encode(b).finish(), signature, batch: bp }).finish());

/** Random damage: bit flips, byte overwrites, truncation, insertion, a stray unknown or repeated field. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.constantFrom([8, 1], [16, 2], [26, 0], [0x98, 0x06, 1], [12], [0]) }),
);
interface Mutation {
  kind: string;
  at?: number;
  bit?: number;
  value?: number;
  bytes?: Uint8Array | readonly number[];
}

function mutate(b: Uint8Array, m: Mutation): Uint8Array {
  const out = Uint8Array.from(b);
  if (out.length === 0) return out;
  const at = (m.at ?? 0) % out.length;
  switch (m.kind) {
    case 'flip':
      out[at] = (out[at] as number) ^ (1 << (m.bit ?? 0));
      return out;
    case 'set':
      out[at] = m.value ?? 0;
      return out;
    case 'cut':
      return out.subarray(0, at);
    case 'insert':
      return Uint8Array.from([...out.subarray(0, at), ...(m.bytes ?? []), ...out.subarray(at)]);
    default:
      return Uint8Array.from([...out, ...(m.bytes ?? [])]);
  }
}

describe('one-pass record reader', () => {
  const fast = new RecordFields();
  const slow = new RecordFields();

  it('[VER-3] takes the one-pass path on records as ts-proto writes them and reads what the general readers and the generated decoders read', () => {
    fc.assert(
      fc.property(record, (rec) => {
        const ok = general(rec, slow);
        const back = SignedRecord.decode(rec);
        // the one-pass path applies whenever the body is there (ts-proto omits an empty one)
        expect(scanCanonical(rec, 0, rec.length, fast)).toBe(back.body.length > 0);
        expect(scanRecord(rec, 0, rec.length, fast)).toBe(ok);
        if (!ok) return;
        expect(fieldsOf(fast)).toEqual(fieldsOf(slow));
        const d = RecordBody.decode(back.body);
        expect([fast.sequence, fast.timestampMs, fast.prevLen, fast.payloadLen, fast.hasTx]).toEqual([d.sequence, d.timestampMs, d.previousHash.length, d.payload.length, d.endorsement !== undefined]);
        expect(equalBytes(rec.subarray(fast.bodyOff, fast.bodyOff + fast.bodyLen), back.body)).toBe(true);
        // what a job's rows are read from: the payload and content type in place
        expect(equalBytes(fast.payloadOff < 0 ? new Uint8Array(0) : rec.subarray(fast.payloadOff, fast.payloadOff + fast.payloadLen), d.payload)).toBe(true);
        expect(fast.contentTypeOff < 0 ? '' : Buffer.from(rec.subarray(fast.contentTypeOff, fast.contentTypeOff + fast.contentTypeLen)).toString('utf8')).toBe(d.contentType);
        if (back.batch) expect([fast.batchIndex, fast.batchSize, fast.pathCount, fast.rootLen]).toEqual([back.batch.index, back.batch.size, back.batch.path.length, back.batch.root.length]);
        if (d.endorsement) expect([fast.txId, fast.txHashLen]).toEqual([d.endorsement.txId, d.endorsement.txHash.length]);
      }),
      { numRuns: 300 },
    );
  });

  it('[VER-3] gives the general readers\' answer, field for field, on damaged records, and never throws', () => {
    fc.assert(
      fc.property(record, fc.array(mutation, { minLength: 1, maxLength: 3 }), (rec, ms) => {
        let b: Uint8Array = rec;
        for (const m of ms) b = mutate(b, m as Mutation);
        const ok = general(b, slow);
        expect(scanRecord(b, 0, b.length, fast)).toBe(ok);
        if (ok) expect(fieldsOf(fast)).toEqual(fieldsOf(slow));
        // whenever the one-pass reader accepts, the general readers accept the same fields
        if (scanCanonical(b, 0, b.length, fast)) {
          expect(ok).toBe(true);
          expect(fieldsOf(fast)).toEqual(fieldsOf(slow));
        }
      }),
      { numRuns: 1500 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(20), fc.nat(20), (junk, a, z) => {
        // also inside a bigger buffer: a record must not read its neighbours' bytes
        const off = Math.min(a, junk.length);
        const len = Math.max(0, Math.min(junk.length - off, junk.length - off - z));
        const ok = scanSignedRecord(junk, off, len, slow) && slow.bodyOff >= 0 && slow.bodyLen > 0 && scanBody(junk, slow.bodyOff, slow.bodyLen, slow);
        expect(scanRecord(junk, off, len, fast)).toBe(ok);
        if (ok) expect(fieldsOf(fast)).toEqual(fieldsOf(slow));
      }),
      { numRuns: 1000 },
    );
  });

  it('[VER-3] leaves non-canonical encodings (repeated, reordered, long varints, negative times) to the general readers with the same result', () => {
    const bodyBytes = RecordBody.encode({ identity: undefined, sequence: 3, previousHash: new Uint8Array(32), timestampMs: T, payload: new Uint8Array(3), contentType: 'x', endorsement: undefined }).finish();
    const cases: Uint8Array[] = [];
    // sequence written twice: the last one wins
    cases.push(Uint8Array.from([...bodyBytes, 16, 9]));
    // a negative timestamp (10-byte varint)
    cases.push(new BinaryWriter().uint32(16).uint64(1).uint32(32).int64(-5).finish());
    // sequence as a non-minimal 8-byte varint
    cases.push(Uint8Array.from([16, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]));
    // fields out of order
    cases.push(new BinaryWriter().uint32(26).bytes(new Uint8Array(32)).uint32(16).uint64(2).finish());
    for (const b of cases) {
      const rec = SignedRecord.encode({ body: b, signature: new Uint8Array(64), batch: undefined }).finish();
      expect(general(rec, slow)).toBe(true);
      expect(scanRecord(rec, 0, rec.length, fast)).toBe(true);
      expect(fieldsOf(fast)).toEqual(fieldsOf(slow));
      expect(fast.sequence).toBe(RecordBody.decode(b).sequence);
      expect(fast.timestampMs).toBe(RecordBody.decode(b).timestampMs);
    }
    // the signed record's fields in another order: general path, same fields
    const rec = SignedRecord.encode({ body: bodyBytes, signature: new Uint8Array([1, 2]), batch: undefined }).finish();
    const swapped = Uint8Array.from([...rec.subarray(rec.length - 4), ...rec.subarray(0, rec.length - 4)]);
    expect(scanCanonical(swapped, 0, swapped.length, fast)).toBe(false);
    expect(scanRecord(swapped, 0, swapped.length, fast)).toBe(true);
    expect(fast.sigLen).toBe(2);
  });
});

describe('one-pass record reader in WebAssembly', () => {
  const h = verifierHasher();
  const fast = new RecordFields();
  const wasm = new RecordFields();

  /** Packs records back to back (with a junk byte before each), scans them all in one call, and compares every record with scanCanonical. */
  function agree(records: Uint8Array[]): void {
    h.reset();
    const total = records.reduce((s, r) => s + r.length + 1, 0);
    const base = h.alloc(total + 16);
    const starts: number[] = [];
    let o = 0;
    for (const r of records) {
      h.bytes[base + o] = 0x0a; // a tag-like byte just before: never read
      o++;
      starts.push(o);
      h.bytes.set(r, base + o);
      o += r.length;
    }
    // one call per record, with a junk byte between records: each is read within its own bounds
    for (const [i, r] of records.entries()) {
      const one = new Uint32Array([starts[i] as number, (starts[i] as number) + r.length]);
      const offAt = h.alloc(8);
      new Uint32Array(h.bytes.buffer, offAt, 2).set(one);
      const outAt = h.alloc(SCAN_STRIDE);
      expect(scanRecords(h, offAt, 1, base, outAt)).toBe(true);
      const i32 = new Int32Array(h.bytes.buffer, outAt, SCAN_STRIDE >> 2);
      const f64 = new Float64Array(h.bytes.buffer, outAt, SCAN_STRIDE >> 3);
      const bytes = h.bytes.subarray(base, base + total);
      const canonical = scanCanonical(bytes, starts[i] as number, r.length, fast);
      if (i32[SLOT.OK] === 1) {
        expect(canonical).toBe(true);
        fieldsFromScan(i32, f64, 0, wasm);
        expect({ ...wasm }).toEqual({ ...fast });
      } else if (canonical) {
        // it may leave a record to JavaScript only for values an i32 slot cannot hold
        expect(fast.batchIndex > 0x7fffffff || fast.batchSize > 0x7fffffff).toBe(true);
      }
    }
  }

  it('[VER-3] accepts exactly what scanCanonical accepts and reads the same fields (generated, damaged and junk records)', () => {
    expect(h.kind).toBe('wasm-simd');
    fc.assert(fc.property(fc.array(record, { minLength: 1, maxLength: 8 }), (recs) => agree(recs)), { numRuns: 200 });
    fc.assert(
      fc.property(record, fc.array(mutation, { minLength: 1, maxLength: 3 }), (rec, ms) => {
        let b: Uint8Array = rec;
        for (const m of ms) b = mutate(b, m as Mutation);
        agree([b]);
      }),
      { numRuns: 1500 },
    );
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 4 }), (junk) => agree(junk)), { numRuns: 500 });
    // long varints at the edges: 7 bytes accepted, 8 not; values past 2^31 in a batch field
    const long = SignedRecord.encode({ body: RecordBody.encode({ identity: undefined, sequence: 2 ** 48 + 5, previousHash: new Uint8Array(32), timestampMs: 2 ** 45, payload: new Uint8Array(0), contentType: '', endorsement: { txId: 2 ** 40, txHash: new Uint8Array(32), entryAddress: undefined } }).finish(), signature: new Uint8Array(64), batch: { index: 2 ** 33, size: 2 ** 34, path: [], root: new Uint8Array(32) } }).finish();
    agree([long]);
    // sequence as a non-minimal 8-byte varint (one byte too many for the one-pass readers), and as 7 bytes
    for (const seq of [[0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], [0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]]) {
      const rec = SignedRecord.encode({ body: Uint8Array.from([16, ...seq]), signature: new Uint8Array(64), batch: undefined }).finish();
      agree([rec]);
      h.reset();
    }
  });

  it('[VER-3] reads many records per call, each within its own bounds', () => {
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 20 }), (recs) => {
        h.reset();
        const total = recs.reduce((s, r) => s + r.length, 0);
        const base = h.alloc(total + 16);
        const offsets = new Uint32Array(recs.length + 1);
        let o = 0;
        for (const [i, r] of recs.entries()) {
          offsets[i] = o;
          h.bytes.set(r, base + o);
          o += r.length;
        }
        offsets[recs.length] = o;
        const offAt = h.alloc(offsets.byteLength);
        new Uint32Array(h.bytes.buffer, offAt, offsets.length).set(offsets);
        const outAt = h.alloc(SCAN_STRIDE * recs.length);
        scanRecords(h, offAt, recs.length, base, outAt);
        const i32 = new Int32Array(h.bytes.buffer, outAt, (SCAN_STRIDE * recs.length) >> 2);
        const f64 = new Float64Array(h.bytes.buffer, outAt, (SCAN_STRIDE * recs.length) >> 3);
        const bytes = h.bytes.subarray(base, base + total);
        for (const [i, r] of recs.entries()) {
          const canonical = scanCanonical(bytes, offsets[i] as number, r.length, fast);
          expect(i32[(i * SCAN_STRIDE) / 4 + SLOT.OK]).toBe(canonical && fast.batchIndex <= 0x7fffffff && fast.batchSize <= 0x7fffffff ? 1 : 0);
          if (i32[(i * SCAN_STRIDE) / 4 + SLOT.OK] === 1) {
            fieldsFromScan(i32, f64, i, wasm);
            expect({ ...wasm }).toEqual({ ...fast });
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('engine core on whole signed batches', () => {
  let u: FixtureUe;
  let window: WindowSpec;
  let recs: Uint8Array[];
  const core = new VerifierCore();
  const task = (records: Uint8Array[]): VerifyTask => ({ id: 1, ...packRecords(records), segments: new Uint32Array([0]), windows: [window] });

  beforeAll(async () => {
    [u] = (await fixtureUes(1, 'fastpath')) as [FixtureUe];
    window = u.window;
    // 1,000 records of ~660 bytes: several phase-1 read chunks (256 KiB each), one batch
    // whose size is not a power of two (the tree promotes odd nodes)
    const signed = await u.signer.signBatch(Array.from({ length: 1000 }, (_, i) => ({ payload: reading(i), timestampMs: T + i })), 'application/json');
    recs = encodeRecords(signed);
  });

  it('[VER-3] verifies a whole batch and accounts for its SHA-256 work in digests and compression blocks', () => {
    const r = core.run(task(recs));
    expect([...r.status].every((s) => s === 0)).toBe(true);
    expect(r.stats.signatureChecks + r.stats.batchGroups).toBeGreaterThanOrEqual(1);
    const bodies = recs.map((x) => SignedRecord.decode(x).body);
    // record hash and leaf hash per body, one node per merge (n - 1 of them)
    expect(r.stats.digests).toBe(2 * bodies.length + bodies.length - 1);
    // record hash over the body, one block for the leaf over the record hash, two per tree node
    const blocks = bodies.reduce((a, b) => a + ((b.length + 72) >>> 6) + 1, 0) + 2 * (bodies.length - 1);
    expect(r.stats.blocks).toBe(blocks);
  });

  it('[VER-3] a bit flipped anywhere in one body makes that record, and only it, invalid with the code its bytes call for', () => {
    bodyFlips(core, recs, window);
  });

  it('[VER-3] in a complete batch, a record whose inclusion path alone was altered fails, as it fails on its own; a missing or extra path hash too', () => {
    pathAlterations(core, recs, window);
  });

  it('[VER-3] remembers single-mode signatures only where asked, only those that verified, and never across keys or bytes', async () => {
    const [, v] = (await fixtureUes(2, 'remember')) as [FixtureUe, FixtureUe];
    const singles: Uint8Array[] = [];
    for (let i = 0; i < 20; i++) singles.push(...encodeRecords([await v.signer.sign(reading(i), 'application/json', T + i)]));
    const c = new VerifierCore();
    const mk = (records: Uint8Array[], remember: boolean, w: WindowSpec = v.window): VerifyTask => ({ id: 1, ...packRecords(records), segments: new Uint32Array([0]), windows: [w], ...(remember ? { remember: true } : {}) });
    const first = c.run(mk(singles, true));
    expect([...first.status].every((s) => s === 0)).toBe(true);
    expect(first.stats.signatureChecks).toBe(20);
    // again: nothing left to verify, same verdicts
    const second = c.run(mk(singles, true));
    expect([...second.status]).toEqual([...first.status]);
    expect(second.stats.signatureChecks).toBe(0);
    // not asked: verified again
    expect(c.run(mk(singles, false)).stats.signatureChecks).toBe(20);
    // a changed signature byte or body byte is a different triple: verified, and fails
    const f = new RecordFields();
    const bad = singles.map((r, k) => {
      expect(scanSignedRecord(r, 0, r.length, f)).toBe(true);
      const x = Uint8Array.from(r);
      const at = k % 2 === 0 ? f.sigOff + (k % f.sigLen) : f.bodyOff + (k % f.bodyLen);
      x[at] = (x[at] as number) ^ 1;
      return x;
    });
    const third = c.run(mk(bad, true));
    expect([...third.status].every((s) => s !== 0)).toBe(true);
    // another key for the same bytes (a window of another UE): verified, and fails
    const [w2] = (await fixtureUes(1, 'remember-other')) as [FixtureUe];
    const other = c.run(mk(singles, true, { ...v.window, publicKey: w2.window.publicKey, ueKey: w2.window.ueKey }));
    expect(other.stats.signatureChecks).toBe(20);
    expect([...other.status].every((s) => s !== 0)).toBe(true);
    c.forgetCaches();
    expect(c.run(mk(singles, true)).stats.signatureChecks).toBe(20);
  });

  it('[GEN-8] on a worker thread: same verdicts, and records passed as a view into a larger buffer are copied, never freed under the caller', async () => {
    const pool = new VerifierPool({ threads: 1 });
    try {
      const packed = packRecords(recs.slice(0, 300));
      const inline = core.run({ id: 1, ...packed, data: packed.data.slice(), segments: new Uint32Array([0]), windows: [window] });
      // a view: the pool copies it (moving it would detach the caller's whole buffer)
      const big = new Uint8Array(packed.data.length + 100);
      big.set(packed.data, 50);
      const view = big.subarray(50, 50 + packed.data.length);
      const r1 = await pool.verify({ id: 2, data: view, offsets: packed.offsets.slice(), flags: packed.flags.slice(), segments: new Uint32Array([0]), windows: [window] });
      expect([...r1.status]).toEqual([...inline.status]);
      expect(big.byteLength).toBe(packed.data.length + 100);
      expect(equalBytes(view, packed.data)).toBe(true);
      // an owned buffer moves to the worker, which frees it once judged; the results stay whole
      const r2 = await pool.verify({ id: 3, ...packRecords(recs.slice(0, 300)), segments: new Uint32Array([0]), windows: [window] });
      expect([...r2.status]).toEqual([...inline.status]);
      expect(equalBytes(r2.hashes, inline.hashes)).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it('[VER-3] a signature or root that differs inside a run of one batch fails that record only', () => {
    const all = recs.slice();
    const f = new RecordFields();
    const sigBad = Uint8Array.from(recs[500] as Uint8Array);
    scanSignedRecord(sigBad, 0, sigBad.length, f);
    sigBad[f.sigOff + 10] = (sigBad[f.sigOff + 10] as number) ^ 1;
    all[500] = sigBad;
    const rootBad = Uint8Array.from(recs[700] as Uint8Array);
    scanSignedRecord(rootBad, 0, rootBad.length, f);
    rootBad[f.rootOff] = (rootBad[f.rootOff] as number) ^ 0x80;
    all[700] = rootBad;
    const out = core.run(task(all));
    expect(outcomeOf(out.status[500] as number)).toBe('INVALID_SIGNATURE');
    expect(outcomeOf(out.status[700] as number)).toBe('INVALID_SIGNATURE');
    expect([...out.status].filter((s) => s !== 0).length).toBe(2);
  });
});

/** A bit flipped anywhere in one body: that record, and only it, fails with the code its bytes call for. */
function bodyFlips(core: VerifierCore, recs: Uint8Array[], window: WindowSpec): void {
  const task = (records: Uint8Array[]): VerifyTask => ({ id: 1, ...packRecords(records), segments: new Uint32Array([0]), windows: [window] });
  const base = core.run(task(recs));
  expect([...base.status].every((s) => s === 0)).toBe(true);
  const f = new RecordFields();
  fc.assert(
    fc.property(fc.nat(recs.length - 1), fc.nat(), fc.integer({ min: 0, max: 7 }), (k, at, bit) => {
      const rec = recs[k] as Uint8Array;
      expect(scanSignedRecord(rec, 0, rec.length, f)).toBe(true);
      const pos = f.bodyOff + (at % f.bodyLen);
      const bad = Uint8Array.from(rec);
      bad[pos] = (bad[pos] as number) ^ (1 << bit);
      const all = recs.slice();
      all[k] = bad;
      const out = core.run(task(all));
      expect(outcomeOf(out.status[k] as number)).toBe(expectedOutcome(bad, window));
      for (let i = 0; i < all.length; i++) if (i !== k) expect(out.status[i]).toBe(0);
    }),
    { numRuns: 40 },
  );
}

/** One record's inclusion path altered (a bit, a hash missing, one too many): that record, and only it, fails. */
function pathAlterations(core: VerifierCore, recs: Uint8Array[], window: WindowSpec): void {
  const task = (records: Uint8Array[]): VerifyTask => ({ id: 1, ...packRecords(records), segments: new Uint32Array([0]), windows: [window] });
  const f = new RecordFields();
  fc.assert(
    fc.property(fc.nat(recs.length - 1), fc.nat(), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 2 }), (k, at, bit, how) => {
      const m = SignedRecord.decode(recs[k] as Uint8Array);
      const path: Uint8Array[] = (m.batch?.path ?? []).map((p) => new Uint8Array(p));
      if (path.length === 0) return;
      if (how === 0) {
        const p = path[at % path.length] as Uint8Array;
        p[(at >>> 5) % 32] = (p[(at >>> 5) % 32] as number) ^ (1 << bit);
      } else if (how === 1) path.pop();
      else path.push(path[0] as Uint8Array);
      const bad = SignedRecord.encode({ ...m, batch: { ...(m.batch as NonNullable<typeof m.batch>), path } }).finish();
      expect(scanSignedRecord(bad, 0, bad.length, f)).toBe(true);
      const all = recs.slice();
      all[k] = bad;
      const out = core.run(task(all));
      expect(outcomeOf(out.status[k] as number)).toBe('INVALID_SIGNATURE');
      for (let i = 0; i < all.length; i++) if (i !== k) expect(out.status[i]).toBe(0);
    }),
    { numRuns: 30 },
  );
}

describe('engine core on a whole signed batch of 2^9 records (paths checked per tree level, shared by blocks)', () => {
  let u: FixtureUe;
  let recs: Uint8Array[];
  const core = new VerifierCore();

  beforeAll(async () => {
    [u] = (await fixtureUes(1, 'fastpath-512')) as [FixtureUe];
    recs = encodeRecords(await u.signer.signBatch(Array.from({ length: 512 }, (_, i) => ({ payload: reading(i), timestampMs: T + i })), 'application/json'));
  });

  it('[VER-3] verifies the whole batch', () => {
    const r = core.run({ id: 1, ...packRecords(recs), segments: new Uint32Array([0]), windows: [u.window] });
    expect([...r.status].every((s) => s === 0)).toBe(true);
  });

  it('[VER-3] a bit flipped anywhere in one body makes that record, and only it, invalid with the code its bytes call for', () => {
    bodyFlips(core, recs, u.window);
  });

  it('[VER-3] a record whose inclusion path alone was altered fails, and only it; a missing or extra path hash too', () => {
    pathAlterations(core, recs, u.window);
  });

  it('[VER-3] the same wrong path hash in every record of a block (records agree, the tree does not) fails each of them', () => {
    // level L of the path is shared by the 2^L records of a block: alter it in all of them alike
    for (const level of [1, 4, 8]) {
      const block = 1 << level;
      const from = 3 * block;
      const all = recs.map((r, k) => {
        if (k < from || k >= from + block) return r;
        const m = SignedRecord.decode(r);
        const path = (m.batch?.path ?? []).map((p) => new Uint8Array(p));
        (path[level] as Uint8Array)[7] ^= 0x10;
        return SignedRecord.encode({ ...m, batch: { ...(m.batch as NonNullable<typeof m.batch>), path } }).finish();
      });
      const out = core.run({ id: 1, ...packRecords(all), segments: new Uint32Array([0]), windows: [u.window] });
      for (let k = 0; k < all.length; k++) expect(outcomeOf(out.status[k] as number), `level ${level}, record ${k}`).toBe(k >= from && k < from + block ? 'INVALID_SIGNATURE' : 'VALID');
    }
  });
});

/**
 * What a record with a damaged body must get, from its bytes: the general readers (tested
 * against the generated decoders above and in wire-chain.test.ts) say whether it decodes, the
 * decoded fields say which endorsement check fails first, and otherwise the body is no longer
 * the one the UE signed.
 */
function expectedOutcome(rec: Uint8Array, w: WindowSpec): string {
  const f = new RecordFields();
  if (!general(rec, f) || f.sequence < 1 || f.prevLen !== 32) return 'MALFORMED_MESSAGE';
  if (f.identityOff >= 0 && !scanMessage(rec, f.identityOff, f.identityLen)) return 'MALFORMED_MESSAGE';
  const d = RecordBody.decode(rec.subarray(f.bodyOff, f.bodyOff + f.bodyLen));
  if (!d.endorsement) return 'MISSING_FIELD';
  if (d.endorsement.txId !== w.txId || (d.endorsement.entryAddress?.ledgerId ?? '') !== LEDGER_ID) return 'UNKNOWN_TX';
  if (d.endorsement.txHash.length > 0 && !equalBytes(d.endorsement.txHash, w.txHash)) return 'INVALID_ENDORSEMENT';
  return 'INVALID_SIGNATURE';
}
