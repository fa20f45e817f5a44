/**
 * The multi-buffer SHA-256 kernel against node:crypto (known answers, every length class,
 * random jobs), and the dataset commitment against protocol/src/merkle.ts.
 */
import { hash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Sha256Many, MAX_KERNEL_MESSAGE } from '../../protocol/src/sha256x4.ts';
import { commitmentRoot } from '../src/verify/commitment.ts';
import { EMPTY_ROOT, batchRoot, leafHash, nodeHash } from '../../protocol/src/merkle.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const ref = (prefix: number, a: Uint8Array, b: Uint8Array = new Uint8Array(0)): string =>
  hash('sha256', Buffer.concat([prefix >= 0 ? Buffer.from([prefix]) : Buffer.alloc(0), a, b]), 'hex');

describe('multi-buffer SHA-256', () => {
  const h = Sha256Many.create();

  it('[GEN-2] uses the WebAssembly SIMD kernel on this runtime', () => {
    expect(h.kind).toBe('wasm-simd');
  });

  it('[GEN-2] matches the FIPS 180-4 known answers', () => {
    h.reset();
    const abc = h.write(new TextEncoder().encode('abc'));
    const empty = h.alloc(0);
    const long = h.write(new TextEncoder().encode('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'));
    const d = [h.job(-1, abc, 3), h.job(-1, empty, 0), h.job(-1, long, 56)];
    h.run();
    expect(hex(h.digest(d[0] as number))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(hex(h.digest(d[1] as number))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(hex(h.digest(d[2] as number))).toBe('248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1');
  });

  it('[GEN-2] agrees with node:crypto on every length from 0 to 300, with and without a prefix byte', () => {
    h.reset();
    const cases: { pre: number; m: Uint8Array; at: number }[] = [];
    for (let len = 0; len <= 300; len++) {
      const m = Uint8Array.from({ length: len }, (_, i) => (i * 131 + len) & 0xff);
      const src = h.write(m);
      for (const pre of [-1, 0x00, 0x01]) cases.push({ pre, m, at: h.job(pre, src, len) });
    }
    h.run();
    for (const c of cases) expect(hex(h.digest(c.at))).toBe(ref(c.pre, c.m));
  });

  it('[GEN-2] agrees with node:crypto on random jobs of two parts, lanes of unequal lengths and oversize messages', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ pre: fc.integer({ min: -1, max: 255 }), a: fc.uint8Array({ maxLength: 400 }), b: fc.uint8Array({ maxLength: 80 }) }), { minLength: 1, maxLength: 11 }),
        fc.boolean(),
        (jobs, big) => {
          h.reset();
          if (big) jobs.push({ pre: 0, a: new Uint8Array(MAX_KERNEL_MESSAGE + 5).fill(7), b: new Uint8Array(0) });
          const at = jobs.map((j) => h.job(j.pre, h.write(j.a), j.a.length, h.write(j.b), j.b.length));
          h.run();
          jobs.forEach((j, i) => expect(hex(h.digest(at[i] as number))).toBe(ref(j.pre, j.a, j.b)));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('[GEN-2] the node:crypto implementation gives the same digests', () => {
    const n = Sha256Many.create({ kind: 'node-crypto' });
    expect(n.kind).toBe('node-crypto');
    const m = new Uint8Array(1000).fill(3);
    const at = n.job(0x01, n.write(m), 1000);
    n.run();
    expect(hex(n.digest(at))).toBe(ref(0x01, m));
  });

  it('[GEN-2] hashes messages that end at the very top of its arena (16-byte chunked copies), before and after the memory grows', () => {
    for (const grow of [false, true]) {
      h.reset();
      if (grow) h.alloc(h.bytes.length);
      const cases: { pre: number; a: Uint8Array; b: Uint8Array; at: number }[] = [];
      for (const [la, lb] of [[0, 0], [1, 0], [15, 1], [16, 16], [17, 31], [33, 0], [64, 1], [209, 0], [32, 32]] as const) {
        const a = Uint8Array.from({ length: la }, (_, i) => (i * 37 + la) & 0xff);
        const b = Uint8Array.from({ length: lb }, (_, i) => (i * 11 + lb) & 0xff);
        // the parts are the last bytes allocated: their last chunk reads past the arena top
        const sa = h.write(a);
        const sb = h.write(b);
        cases.push({ pre: la % 2 === 0 ? -1 : 0x01, a, b, at: -1 });
        const c = cases[cases.length - 1] as { pre: number; a: Uint8Array; b: Uint8Array; at: number };
        c.at = h.job(c.pre, sa, la, sb, lb);
      }
      const blocksBefore = h.blocks;
      h.run();
      for (const c of cases) expect(hex(h.digest(c.at))).toBe(ref(c.pre, c.a, c.b));
      const expected = cases.reduce((n, c) => n + ((c.a.length + c.b.length + (c.pre >= 0 ? 1 : 0) + 72) >>> 6), 0);
      expect(h.blocks - blocksBefore).toBe(expected);
    }
  });

  it('[GEN-2] compares byte ranges in bulk exactly (every length to 100, a difference at any position, overlapping tails)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(), fc.boolean(), fc.nat(7), (a, at, differ, shift) => {
        h.reset();
        h.alloc(shift);
        const b = Uint8Array.from(a);
        if (differ && b.length > 0) b[at % b.length] = (b[at % b.length] as number) ^ (1 << (at % 8));
        // b is the last allocation: its tail chunk ends at the arena top
        const ia = h.write(a);
        const ib = h.write(b);
        const k = h.compare(ia, ib, a.length);
        const r = h.compareAll();
        expect(r[k]).toBe(differ && a.length > 0 ? 0 : 1);
      }),
      { numRuns: 400 },
    );
  });

  it('grows its arena and keeps earlier bytes', () => {
    h.reset();
    const first = h.write(new Uint8Array([1, 2, 3]));
    h.alloc(8 * 1024 * 1024);
    expect([...h.bytes.subarray(first, first + 3)]).toEqual([1, 2, 3]);
    expect(() => h.alloc(-1)).toThrow(RangeError);
  });
});

describe('dataset commitment', () => {
  it('[SC2-2] equals the RFC 9162 batch root over the record hashes (merkle.ts)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { maxLength: 70 }), (hashes) => {
        const flat = new Uint8Array(32 * hashes.length);
        hashes.forEach((x, i) => flat.set(x, 32 * i));
        const want = hashes.length === 0 ? EMPTY_ROOT : batchRoot(hashes);
        expect(hex(commitmentRoot(flat))).toBe(hex(want));
      }),
      { numRuns: 60 },
    );
    const two = [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)];
    expect(hex(commitmentRoot(new Uint8Array([...two[0] as Uint8Array, ...two[1] as Uint8Array])))).toBe(hex(nodeHash(leafHash(two[0] as Uint8Array), leafHash(two[1] as Uint8Array))));
    expect(() => commitmentRoot(new Uint8Array(31))).toThrow(RangeError);
  });
});
