/**
 * @module merkle.test
 * RFC 9162 Merkle trees: known answers (the Certificate Transparency reference vectors),
 * every proof of every (index, size) and (m, n) up to 64 against verification and a naive
 * MTH, and hostile proofs.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  EMPTY_ROOT,
  MerkleFrontier,
  assertConsistency,
  assertInclusion,
  batchPath,
  batchPaths,
  batchRoot,
  consistencyProof,
  inclusionProof,
  leafHash,
  memorySubtrees,
  nodeHash,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from '../src/merkle.ts';
import { DivsError } from '../src/errors.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

// The RFC 6962/9162 reference inputs used by Certificate Transparency implementations.
const DATA = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(unhex);
const LEAVES = DATA.map(leafHash);
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const INCLUSION: [number, number, string[]][] = [
  [0, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [5, 8, ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [1, 5, ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
];
const CONSISTENCY: [number, number, string[]][] = [
  [1, 1, []],
  [1, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [6, 8, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 5, ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
];

/** MTH straight from the RFC's recursive definition, as an independent oracle. */
function naiveRoot(leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return new Uint8Array(createHash('sha256').digest());
  if (leaves.length === 1) return leaves[0] as Uint8Array;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(naiveRoot(leaves.slice(0, k)), naiveRoot(leaves.slice(k)));
}

const N = 64;
const MANY = Array.from({ length: N }, (_, i) => leafHash(new Uint8Array([i, i * 7 % 256, 0x5a])));
const SUB = memorySubtrees(MANY);
const MANY_ROOTS = Array.from({ length: N + 1 }, (_, n) => naiveRoot(MANY.slice(0, n)));

describe('RFC 9162 hashing', () => {
  it('[FW-BC] matches the reference roots for 0..8 leaves', () => {
    expect(hex(EMPTY_ROOT)).toBe(ROOTS[0]);
    for (let n = 0; n <= 8; n++) expect(hex(rootOf(LEAVES.slice(0, n))), `size ${n}`).toBe(ROOTS[n]);
  });

  it('[FW-BC] produces and verifies the reference inclusion proofs', () => {
    const sub = memorySubtrees(LEAVES);
    for (const [i, n, want] of INCLUSION) {
      const proof = inclusionProof(i, n, sub);
      expect(proof.map(hex), `${i}/${n}`).toEqual(want);
      expect(verifyInclusion(LEAVES[i] as Uint8Array, i, n, proof, unhex(ROOTS[n] as string))).toBe(true);
    }
  });

  it('[FW-BC] produces and verifies the reference consistency proofs', () => {
    const sub = memorySubtrees(LEAVES);
    for (const [m, n, want] of CONSISTENCY) {
      const proof = consistencyProof(m, n, sub);
      expect(proof.map(hex), `${m}->${n}`).toEqual(want);
      expect(verifyConsistency(m, n, unhex(ROOTS[m] as string), unhex(ROOTS[n] as string), proof)).toBe(true);
    }
  });

  it('[FW-BC] the incremental frontier gives the same roots and stores every complete subtree', () => {
    const f = MerkleFrontier.empty();
    const stored = new Map<string, Uint8Array>();
    for (let i = 0; i < N; i++) {
      for (const s of f.push(MANY[i] as Uint8Array)) stored.set(`${s.level}/${s.index}`, s.hash);
      expect(hex(f.root())).toBe(hex(MANY_ROOTS[i + 1] as Uint8Array));
    }
    // every complete subtree of level ≥ 1 was reported exactly where memorySubtrees has it
    let count = 0;
    for (let level = 1; 2 ** level <= N; level++) {
      for (let idx = 0; (idx + 1) * 2 ** level <= N; idx++) {
        expect(hex(stored.get(`${level}/${idx}`) as Uint8Array)).toBe(hex(SUB(level, idx)));
        count++;
      }
    }
    expect(stored.size).toBe(count);
    const g = MerkleFrontier.fromSubtrees(37, SUB);
    expect(hex(g.root())).toBe(hex(MANY_ROOTS[37] as Uint8Array));
    const h = g.clone();
    h.push(MANY[37] as Uint8Array);
    expect(hex(h.root())).toBe(hex(MANY_ROOTS[38] as Uint8Array));
    expect(g.size).toBe(37);
  });
});

describe('inclusion proofs', () => {
  it('[FW-BC] every (index, size) up to 64 verifies, and fails against another leaf, index, size or root', () => {
    for (let n = 1; n <= N; n++) {
      const root = MANY_ROOTS[n] as Uint8Array;
      for (let i = 0; i < n; i++) {
        const proof = inclusionProof(i, n, SUB);
        expect(verifyInclusion(MANY[i] as Uint8Array, i, n, proof, root), `${i}/${n}`).toBe(true);
        expect(verifyInclusion(MANY[(i + 1) % N] as Uint8Array, i, n, proof, root)).toBe(false);
        if (n > 1) expect(verifyInclusion(MANY[i] as Uint8Array, (i + 1) % n, n, proof, root)).toBe(false);
        // the size only shapes the path (the verifier takes it from the signed checkpoint): the
        // same proof cannot prove the leaf in the next tree
        if (n < N) expect(verifyInclusion(MANY[i] as Uint8Array, i, n + 1, proof, MANY_ROOTS[n + 1] as Uint8Array)).toBe(false);
        expect(verifyInclusion(MANY[i] as Uint8Array, i, n, proof, MANY_ROOTS[n - 1] as Uint8Array)).toBe(false);
      }
    }
  });

  it('[FW-BC] rejects malformed, attacker-shaped proofs with false, never a throw', () => {
    const root = MANY_ROOTS[10] as Uint8Array;
    const leaf = MANY[3] as Uint8Array;
    const proof = inclusionProof(3, 10, SUB);
    const bad: [string, () => boolean][] = [
      ['index = size', () => verifyInclusion(leaf, 10, 10, proof, root)],
      ['negative index', () => verifyInclusion(leaf, -1, 10, proof, root)],
      ['fractional index', () => verifyInclusion(leaf, 1.5, 10, proof, root)],
      ['huge size', () => verifyInclusion(leaf, 3, 2 ** 60, proof, root)],
      ['NaN size', () => verifyInclusion(leaf, 3, Number.NaN, proof, root)],
      ['size 0', () => verifyInclusion(leaf, 0, 0, [], root)],
      ['short hash in proof', () => verifyInclusion(leaf, 3, 10, [...proof.slice(0, -1), new Uint8Array(31)], root)],
      ['extra element', () => verifyInclusion(leaf, 3, 10, [...proof, new Uint8Array(32)], root)],
      ['missing element', () => verifyInclusion(leaf, 3, 10, proof.slice(1), root)],
      ['overlong proof', () => verifyInclusion(leaf, 3, 10, Array.from({ length: 1000 }, () => new Uint8Array(32)), root)],
      ['short leaf', () => verifyInclusion(leaf.subarray(1), 3, 10, proof, root)],
      ['short root', () => verifyInclusion(leaf, 3, 10, proof, root.subarray(1))],
      ['not an array', () => verifyInclusion(leaf, 3, 10, 'x' as unknown as Uint8Array[], root)],
      ['non-bytes element', () => verifyInclusion(leaf, 3, 10, [null as unknown as Uint8Array], root)],
    ];
    for (const [what, f] of bad) expect(f(), what).toBe(false);
    expect(() => assertInclusion(leaf, 10, 10, proof, root)).toThrow(expect.objectContaining({ code: 'INVALID_PROOF' }));
    expect(() => assertInclusion(leaf, 3, 10, proof, root)).not.toThrow();
  });

  it('[FW-BC] a single flipped bit anywhere in the proof fails (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: N }), fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 }), (n, i0, e0, bit) => {
        const i = i0 % n;
        const proof = inclusionProof(i, n, SUB).map((h) => h.slice());
        const e = e0 % proof.length;
        (proof[e] as Uint8Array)[bit >> 3] = ((proof[e] as Uint8Array)[bit >> 3] as number) ^ (1 << (bit & 7));
        return !verifyInclusion(MANY[i] as Uint8Array, i, n, proof, MANY_ROOTS[n] as Uint8Array);
      }),
      { numRuns: 200 },
    );
  });

  it('[FW-BC] generation refuses indexes outside the tree with coded errors', () => {
    expect(() => inclusionProof(5, 5, SUB)).toThrow(expect.objectContaining({ code: 'INVALID_RANGE' }));
    expect(() => inclusionProof(0, 0, SUB)).toThrow(DivsError);
    expect(() => inclusionProof(-1, 5, SUB)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('consistency proofs', () => {
  it('[FW-BC] every (m, n) up to 64 verifies, and fails against wrong roots or sizes', () => {
    for (let n = 1; n <= N; n++) {
      for (let m = 0; m <= n; m++) {
        const proof = consistencyProof(m, n, SUB);
        const oldRoot = MANY_ROOTS[m] as Uint8Array;
        const newRoot = MANY_ROOTS[n] as Uint8Array;
        expect(verifyConsistency(m, n, oldRoot, newRoot, proof), `${m}->${n}`).toBe(true);
        if (m > 0 && m < n) {
          expect(verifyConsistency(m, n, MANY_ROOTS[m - 1] as Uint8Array, newRoot, proof)).toBe(false);
          expect(verifyConsistency(m, n, oldRoot, MANY_ROOTS[n - 1] as Uint8Array, proof)).toBe(false);
          if (n < N) expect(verifyConsistency(m, n + 1, oldRoot, MANY_ROOTS[n + 1] as Uint8Array, proof)).toBe(false);
          if (m > 1) expect(verifyConsistency(m - 1, n, oldRoot, newRoot, proof)).toBe(false);
        }
      }
    }
  });

  it('[FW-BC] rejects malformed consistency proofs with false', () => {
    const a = MANY_ROOTS[5] as Uint8Array;
    const b = MANY_ROOTS[9] as Uint8Array;
    const proof = consistencyProof(5, 9, SUB);
    const bad: [string, () => boolean][] = [
      ['old > new', () => verifyConsistency(9, 5, b, a, proof)],
      ['empty proof', () => verifyConsistency(5, 9, a, b, [])],
      ['equal sizes, non-empty proof', () => verifyConsistency(9, 9, b, b, proof)],
      ['equal sizes, different roots', () => verifyConsistency(9, 9, a, b, [])],
      ['old size 0 with a proof', () => verifyConsistency(0, 9, EMPTY_ROOT, b, proof)],
      ['old size 0, not the empty root', () => verifyConsistency(0, 9, a, b, [])],
      ['huge sizes', () => verifyConsistency(2 ** 60, 2 ** 61, a, b, proof)],
      ['negative size', () => verifyConsistency(-1, 9, a, b, proof)],
      ['short element', () => verifyConsistency(5, 9, a, b, [...proof.slice(1), new Uint8Array(5)])],
      ['extra element', () => verifyConsistency(5, 9, a, b, [...proof, new Uint8Array(32)])],
      ['overlong proof', () => verifyConsistency(5, 9, a, b, Array.from({ length: 65 }, () => new Uint8Array(32)))],
      ['short root', () => verifyConsistency(5, 9, a.subarray(2), b, proof)],
    ];
    for (const [what, f] of bad) expect(f(), what).toBe(false);
    expect(() => assertConsistency(5, 9, b, a, proof)).toThrow(expect.objectContaining({ code: 'INVALID_PROOF' }));
    expect(() => consistencyProof(9, 5, SUB)).toThrow(expect.objectContaining({ code: 'INVALID_RANGE' }));
  });
});

describe('batch trees', () => {
  it('[VER-1] batchRoot/batchPath agree with the RFC 9162 tree over the raw items', () => {
    for (let n = 1; n <= 20; n++) {
      const items = DATA.concat(DATA, DATA).slice(0, n).map((d, i) => new Uint8Array([...d, i]));
      const root = batchRoot(items);
      expect(hex(root)).toBe(hex(naiveRoot(items.map(leafHash))));
      const all = batchPaths(items);
      expect(hex(all.root)).toBe(hex(root));
      for (let i = 0; i < n; i++) {
        const path = batchPath(items, i);
        expect(path.map(hex)).toEqual((all.paths[i] as Uint8Array[]).map(hex));
        expect(verifyInclusion(leafHash(items[i] as Uint8Array), i, n, path, root)).toBe(true);
      }
    }
    expect(() => batchRoot([])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => batchPath([new Uint8Array(1)], 1)).toThrow(expect.objectContaining({ code: 'INVALID_RANGE' }));
  });
});
