/**
 * @module smt.test
 * Sparse Merkle tree: roots against an independent oracle, membership and non-membership
 * proofs after random update sequences (fast-check), single-bit mutations, versioned history,
 * storage encoding and tamper detection.
 */
import { createHash } from 'node:crypto';
import { equalBytes } from '../src/bytes.ts';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  MemorySmtStore,
  NO_SMT_STORE,
  SMT_EMPTY,
  SmtOverlay,
  SmtReplay,
  SparseMerkleTree,
  assertLatest,
  decodeSmtChunk,
  decodeSmtNode,
  encodeSmtChunks,
  encodeSmtNode,
  smtChunkPath,
  keyBit,
  smtBranch,
  smtLeaf,
  smtPath,
  smtPathBytes,
  smtPathFromBytes,
  verifyLatestProof,
  type LatestProof,
  type SmtNodeStore,
} from '../src/smt.ts';

const H = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** The compact tree's root computed straight from its definition (independent oracle). */
function oracleRoot(entries: [Uint8Array, Uint8Array][], depth = 0): Uint8Array {
  if (entries.length === 0) return new Uint8Array(32);
  if (entries.length === 1) {
    const [k, v] = entries[0] as [Uint8Array, Uint8Array];
    return H(new Uint8Array([2]), k, v);
  }
  const left = entries.filter(([k]) => keyBit(k, depth) === 0);
  const right = entries.filter(([k]) => keyBit(k, depth) === 1);
  return H(new Uint8Array([3]), oracleRoot(left, depth + 1), oracleRoot(right, depth + 1));
}

function flipBit(b: Uint8Array, bit: number): Uint8Array {
  const c = b.slice();
  c[bit >> 3] = (c[bit >> 3] as number) ^ (0x80 >> (bit & 7));
  return c;
}

const key = (seed: number): Uint8Array => H(new Uint8Array([seed & 0xff, seed >> 8]));
const val = (seed: number): Uint8Array => H(new Uint8Array([0xee, seed & 0xff, seed >> 8]));

// Keys that share long prefixes: a base key and variants differing only at late bits.
const BASE = key(1);
const DEEP = [BASE, flipBit(BASE, 255), flipBit(BASE, 254), flipBit(BASE, 200), flipBit(BASE, 9), flipBit(BASE, 0)];

function expectProofs(tree: SparseMerkleTree, model: Map<string, Uint8Array>, probes: Uint8Array[]): void {
  const root = tree.rootHash;
  for (const k of probes) {
    const p = tree.prove(k);
    expect(verifyLatestProof(p, root), hex(k)).toBe(true);
    const want = model.get(hex(k));
    if (want) expect(hex(p.value)).toBe(hex(want));
    else expect(p.value.length).toBe(0);
    const got = tree.lookup(k);
    expect(got ? hex(got) : undefined).toBe(want ? hex(want) : undefined);
  }
}

describe('sparse Merkle tree', () => {
  it('[GEN-6] the empty tree has the zero root and proves absence of any key', () => {
    const t = new SparseMerkleTree(new MemorySmtStore());
    expect(hex(t.rootHash)).toBe(hex(SMT_EMPTY));
    const p = t.prove(key(5));
    expect(p.siblings.length).toBe(0);
    expect(verifyLatestProof(p, SMT_EMPTY)).toBe(true);
    expect(verifyLatestProof({ ...p, value: val(1) }, SMT_EMPTY)).toBe(false);
  });

  it('[GEN-6] random insert/update sequences: oracle roots, and proofs for present and absent keys (property)', () => {
    const keyArb = fc.oneof(fc.integer({ min: 0, max: 40 }).map(key), fc.constantFrom(...DEEP));
    const batchArb = fc.array(fc.tuple(keyArb, fc.integer({ min: 0, max: 1000 })), { minLength: 0, maxLength: 12 });
    fc.assert(
      fc.property(fc.array(batchArb, { minLength: 1, maxLength: 8 }), (batches) => {
        const tree = new SparseMerkleTree(new MemorySmtStore());
        const replay = new SmtReplay();
        const model = new Map<string, Uint8Array>();
        const keys = new Map<string, Uint8Array>();
        const auxOf = new Map<string, number>();
        let version = 1;
        for (const batch of batches) {
          const entries = batch.map(([k, v]) => [k, val(v), v] as [Uint8Array, Uint8Array, number]);
          for (const [k, v] of entries) {
            model.set(hex(k), v);
            keys.set(hex(k), k);
          }
          const staged = tree.stage(entries, version++);
          tree.apply(staged);
          const want = oracleRoot([...keys.values()].map((k) => [k, model.get(hex(k)) as Uint8Array]));
          expect(hex(tree.rootHash)).toBe(hex(want));
          // the mutable replay trie reaches the same root and reports the same replaced leaves
          const last = new Map(entries.map((e) => [hex(e[0]), e]));
          const replacedByReplay: [string, number][] = [];
          for (const [h, [k, v, a]] of last) {
            const prev = replay.set(k, v, a);
            if (prev !== undefined) replacedByReplay.push([h, prev]);
            expect(prev).toBe(auxOf.get(h));
            auxOf.set(h, a);
          }
          expect(hex(replay.rootHash)).toBe(hex(want));
          expect(staged.replaced.map((l) => [hex(l.key), l.aux]).sort()).toEqual(replacedByReplay.sort());
        }
        expect(replay.size).toBe(keys.size);
        expectProofs(tree, model, [...keys.values(), key(999), key(1000), ...DEEP]);
      }),
      { numRuns: 40 },
    );
  });

  it('[GEN-5] a changed value, sibling, bitmap bit, key or terminal leaf makes the proof fail (property)', () => {
    const tree = new SparseMerkleTree(new MemorySmtStore());
    const entries: [Uint8Array, Uint8Array][] = [];
    for (let i = 0; i < 200; i++) entries.push([key(i), val(i)]);
    for (const k of DEEP) entries.push([k, val(7)]);
    tree.update(entries, 1);
    const root = tree.rootHash;
    const probes = [...entries.map(([k]) => k), key(5000), key(5001), flipBit(BASE, 100), flipBit(DEEP[1] as Uint8Array, 254)];
    const proofs = probes.map((k) => tree.prove(k));
    expect(proofs.some((p) => p.otherKey.length === 32)).toBe(true); // absent keys ending at another leaf
    expect(proofs.some((p) => p.value.length === 0 && p.otherKey.length === 0)).toBe(true); // ending at an empty subtree
    for (const p of proofs) expect(verifyLatestProof(p, root)).toBe(true);
    fc.assert(
      fc.property(fc.nat(proofs.length - 1), fc.nat(), fc.nat(255), (pi, which, bit) => {
        const p = proofs[pi] as LatestProof;
        const fields: ((q: LatestProof) => LatestProof | null)[] = [
          (q) => (q.value.length ? { ...q, value: flipBit(q.value, bit) } : { ...q, value: val(bit) }),
          (q) => (q.siblings.length ? { ...q, siblings: q.siblings.map((s, i) => (i === bit % q.siblings.length ? flipBit(s, bit) : s)) } : null),
          (q) => ({ ...q, bitmap: flipBit(q.bitmap, bit) }),
          (q) => ({ ...q, ueKey: flipBit(q.ueKey, bit) }),
          (q) => (q.otherKey.length ? { ...q, otherKey: flipBit(q.otherKey, bit) } : null),
          (q) => (q.otherValue.length ? { ...q, otherValue: flipBit(q.otherValue, bit) } : null),
          (q) => (q.siblings.length ? { ...q, siblings: q.siblings.slice(1) } : null),
          (q) => ({ ...q, siblings: [...q.siblings, val(bit)] }),
          (q) => (q.otherKey.length ? { ...q, otherKey: new Uint8Array(0), otherValue: new Uint8Array(0) } : null),
        ];
        const mutated = (fields[which % fields.length] as (q: LatestProof) => LatestProof | null)(p);
        if (mutated === null || !verifyLatestProof(mutated, root)) return true;
        // The only mutation that may still verify is another key on the same path of an
        // absence proof — and then it is a true statement: that key is absent too.
        return mutated.value.length === 0 && !equalBytes(mutated.ueKey, p.ueKey) && tree.lookup(mutated.ueKey) === undefined;
      }),
      { numRuns: 400 },
    );
    // against another root, nothing verifies
    const other = new SparseMerkleTree(new MemorySmtStore());
    other.update([[key(0), val(0)]], 1);
    for (const p of proofs.slice(0, 10)) expect(verifyLatestProof(p, other.rootHash)).toBe(false);
  });

  it('[GEN-5] malformed, attacker-shaped proofs answer false, never throw', () => {
    const tree = new SparseMerkleTree(new MemorySmtStore());
    tree.update([[key(1), val(1)], [key(2), val(2)], [key(3), val(3)]], 1);
    const good = tree.prove(key(1));
    const root = tree.rootHash;
    const z = new Uint8Array(0);
    const bad: [string, unknown, unknown][] = [
      ['null proof', null, root],
      ['string proof', 'x', root],
      ['short root', good, root.subarray(1)],
      ['short key', { ...good, ueKey: good.ueKey.subarray(1) }, root],
      ['long value', { ...good, value: new Uint8Array(33) }, root],
      ['short bitmap', { ...good, bitmap: good.bitmap.subarray(0, 31) }, root],
      ['siblings not an array', { ...good, siblings: 'abc' }, root],
      ['too many siblings', { ...good, siblings: Array.from({ length: 300 }, () => val(1)) }, root],
      ['short sibling', { ...good, siblings: good.siblings.map((s) => s.subarray(1)) }, root],
      ['zero sibling', { ...good, siblings: good.siblings.map(() => new Uint8Array(32)) }, root],
      ['value and other leaf', { ...good, otherKey: key(2), otherValue: val(2) }, root],
      ['other leaf with half the fields', { ...good, value: z, otherKey: key(2), otherValue: z }, root],
      ['other leaf is the key itself', { ...good, value: z, otherKey: good.ueKey, otherValue: val(1) }, root],
      ['missing fields', { ueKey: good.ueKey }, root],
    ];
    for (const [what, p, r] of bad) expect(verifyLatestProof(p as LatestProof, r as Uint8Array), what).toBe(false);
  });

  it('[GEN-6] assertLatest tells the latest version from an older one and from absence', () => {
    const tree = new SparseMerkleTree(new MemorySmtStore());
    tree.update([[key(1), val(1)]], 1);
    tree.update([[key(1), val(2)], [key(2), val(9)]], 2);
    const root = tree.rootHash;
    expect(() => assertLatest(tree.prove(key(1)), root, key(1), val(2))).not.toThrow();
    expect(() => assertLatest(tree.prove(key(1)), root, key(1), val(1))).toThrow(expect.objectContaining({ code: 'NOT_LATEST' }));
    expect(() => assertLatest(tree.prove(key(3)), root, key(3), val(1))).toThrow(expect.objectContaining({ code: 'NOT_LATEST' }));
    expect(() => assertLatest(tree.prove(key(2)), root, key(1), val(9))).toThrow(expect.objectContaining({ code: 'INVALID_PROOF' }));
    expect(() => assertLatest(tree.prove(key(1)), SMT_EMPTY, key(1), val(2))).toThrow(expect.objectContaining({ code: 'INVALID_PROOF' }));
  });

  it('[GEN-6] nodes are versioned: every past root still proves its values', () => {
    const store = new MemorySmtStore();
    const tree = new SparseMerkleTree(store);
    const history: { ref: SparseMerkleTree['root']; value: Uint8Array }[] = [];
    for (let v = 1; v <= 5; v++) {
      tree.update([[key(1), val(v)], [key(100 + v), val(v)]], v);
      history.push({ ref: tree.root, value: val(v) });
    }
    const past = new SparseMerkleTree(store);
    for (const h of history) {
      past.reset(h.ref);
      const p = past.prove(key(1));
      expect(hex(p.value)).toBe(hex(h.value));
      expect(verifyLatestProof(p, past.rootHash)).toBe(true);
    }
    // the same store, read latest-only, cannot serve an old root
    const latestOnly = new MemorySmtStore({ latestOnly: true });
    const t2 = new SparseMerkleTree(latestOnly);
    t2.update([[key(1), val(1)], [key(2), val(1)]], 1);
    const old = t2.root;
    t2.update([[key(1), val(2)]], 2);
    expect(hex(t2.lookup(key(1)) as Uint8Array)).toBe(hex(val(2)));
    t2.reset(old);
    expect(() => t2.lookup(key(1))).toThrow(expect.objectContaining({ code: 'LEDGER_TAMPERED' }));
  });

  it('[FW-BC] a staged batch hashes its new nodes level by level: each node and each reference to it carry the hash of its content', () => {
    const tree = new SparseMerkleTree(new MemorySmtStore(), null, { link: true });
    for (let v = 1; v <= 4; v++) {
      // 300 keys per batch: several dozen nodes per depth, leaves and branches at every depth
      const batch = tree.stage(Array.from({ length: 300 }, (_, i) => [key(v * 1000 + i), val(i)] as const), v);
      for (const { node } of batch.nodes) {
        const expected = node.kind === 'leaf' ? smtLeaf(node.key, node.value).hash : smtBranch(node.left, node.right).hash;
        expect(hex(node.hash)).toBe(hex(expected));
        if (node.kind === 'branch') for (const ref of [node.left, node.right]) if (ref?.node) expect(hex(ref.hash)).toBe(hex(ref.node.hash));
      }
      expect(hex(batch.root?.hash as Uint8Array)).toBe(hex((batch.root?.node as { hash: Uint8Array }).hash));
      tree.apply(batch);
    }
    expect(tree.rootHash.length).toBe(32);
  });

  it('[FW-BC] staging touches nothing; overlays stack batches; versions must increase', () => {
    const store = new MemorySmtStore();
    const tree = new SparseMerkleTree(store);
    tree.update([[key(1), val(1)]], 1);
    const before = tree.rootHash;
    const b2 = tree.stage([[key(2), val(2)]], 2);
    expect(hex(tree.rootHash)).toBe(hex(before));
    expect(store.size).toBe(1);
    const overlay = new SmtOverlay(store);
    const staged = new SparseMerkleTree(overlay, tree.root);
    staged.apply(b2);
    staged.update([[key(3), val(3)]], 3);
    expect(store.size).toBe(1);
    expect(hex(staged.rootHash)).toBe(hex(oracleRoot([[key(1), val(1)], [key(2), val(2)], [key(3), val(3)]])));
    store.put(overlay.nodes());
    tree.reset(staged.root);
    expect(hex(tree.lookup(key(2)) as Uint8Array)).toBe(hex(val(2)));
    expect(() => tree.stage([[key(4), val(4)]], 3)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => tree.stage([[key(4).subarray(1), val(4)]], 9)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => tree.stage([[key(4), new Uint8Array(31)]], 9)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => tree.prove(new Uint8Array(3))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(tree.stage([], 9).nodes.length).toBe(0);
  });

  it('[GEN-5] an altered or missing stored node is detected on read (LEDGER_TAMPERED)', () => {
    const inner = new MemorySmtStore();
    let tamper: ((path: string) => boolean) | null = null;
    const store: SmtNodeStore = {
      get: (v, path) => {
        const n = inner.get(v, path);
        if (n && tamper?.(path)) return n.kind === 'leaf' ? smtLeaf(n.key, flipBit(n.value, 3)) : smtBranch(n.right, n.left);
        return n;
      },
      put: (nodes) => inner.put(nodes),
    };
    const tree = new SparseMerkleTree(store);
    tree.update(Array.from({ length: 20 }, (_, i) => [key(i), val(i)] as [Uint8Array, Uint8Array]), 1);
    tamper = (path) => path.charCodeAt(1) === 2; // every node at depth 2
    expect(() => tree.prove(key(3))).toThrow(expect.objectContaining({ code: 'LEDGER_TAMPERED' }));
    expect(() => tree.update([[key(3), val(0)]], 2)).toThrow(expect.objectContaining({ code: 'LEDGER_TAMPERED' }));
    tamper = null;
    expect(verifyLatestProof(tree.prove(key(3)), tree.rootHash)).toBe(true);
    const empty = new SparseMerkleTree(new MemorySmtStore(), tree.root);
    expect(() => empty.lookup(key(3))).toThrow(expect.objectContaining({ code: 'LEDGER_TAMPERED' }));
  });

  it('[FW-BC] node encoding round-trips and rejects malformed bytes', () => {
    const leaf = smtLeaf(key(1), val(1));
    const br = smtBranch({ version: 2 ** 40 + 7, hash: val(2) }, null);
    const both = smtBranch({ version: 1, hash: val(3) }, { version: 0, hash: val(4) });
    for (const n of [leaf, br, both]) {
      const d = decodeSmtNode(encodeSmtNode(n));
      expect(hex(d.hash)).toBe(hex(n.hash));
      expect(hex(encodeSmtNode(d))).toBe(hex(encodeSmtNode(n)));
    }
    const bad = [new Uint8Array(0), new Uint8Array([2, 1]), new Uint8Array([3, 0]), new Uint8Array([3, 4]), new Uint8Array([9]), encodeSmtNode(both).subarray(0, 50), new Uint8Array([3, 1, ...new Uint8Array(8).fill(0xff), ...val(1)])];
    for (const b of bad) expect(() => decodeSmtNode(b)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    const k = key(9);
    for (const depth of [0, 1, 7, 8, 9, 255, 256]) {
      const p = smtPath(k, depth);
      expect(smtPathFromBytes(smtPathBytes(p))).toBe(p);
      expect(smtPathBytes(p).length).toBe(2 + Math.ceil(depth / 8));
    }
    expect(smtPath(k, 3)).toBe(smtPath(flipBit(k, 3), 3));
    expect(smtPath(k, 4)).not.toBe(smtPath(flipBit(k, 3), 4));
  });

  it('[FW-BC] keys differing only in the last bit sit at depth 256 and still prove', () => {
    const tree = new SparseMerkleTree(new MemorySmtStore());
    const a = BASE;
    const b = flipBit(BASE, 255);
    tree.update([[a, val(1)], [b, val(2)]], 1);
    const p = tree.prove(b);
    expect(p.siblings.length).toBe(1);
    expect(keyBit(p.bitmap, 255)).toBe(1);
    expect(verifyLatestProof(p, tree.rootHash)).toBe(true);
    const absent = flipBit(BASE, 254);
    const q = tree.prove(absent);
    expect(q.value.length).toBe(0);
    expect(verifyLatestProof(q, tree.rootHash)).toBe(true);
  });

  it('[GEN-6] aux travels with a leaf (not hashed); a batch reports the leaves it replaced', () => {
    const tree = new SparseMerkleTree(new MemorySmtStore());
    tree.update([[key(1), val(1), 7], [key(2), val(2), 8]], 1);
    const plain = new SparseMerkleTree(new MemorySmtStore());
    plain.update([[key(1), val(1)], [key(2), val(2)]], 1);
    expect(hex(tree.rootHash)).toBe(hex(plain.rootHash));
    expect(tree.lookupLeaf(key(1))).toEqual({ value: val(1), aux: 7 });
    const b = tree.stage([[key(1), val(3), 9], [key(4), val(4), 10]], 2);
    expect(b.replaced.map((l) => [hex(l.key), l.aux])).toEqual([[hex(key(1)), 7]]);
    tree.apply(b);
    expect(tree.lookupLeaf(key(1))?.aux).toBe(9);
    expect(tree.lookupLeaf(key(2))?.aux).toBe(8);
    expect(tree.lookupLeaf(key(3))).toBeUndefined();
    expect(() => tree.stage([[key(5), val(5), -1]], 3)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('[FW-BC] a linked in-memory tree and a stored tree agree on every root and proof', () => {
    const linked = new SparseMerkleTree(NO_SMT_STORE, null, { link: true });
    const partly = new SparseMerkleTree(new MemorySmtStore(), null, { link: 3 });
    const stored = new SparseMerkleTree(new MemorySmtStore());
    for (let v = 1; v <= 6; v++) {
      const entries = Array.from({ length: 15 }, (_, i) => [key((v * 37 + i * 11) % 60), val(v * 100 + i), i] as [Uint8Array, Uint8Array, number]);
      for (const t of [linked, partly, stored]) t.update(entries, v);
      expect(hex(linked.rootHash)).toBe(hex(stored.rootHash));
      expect(hex(partly.rootHash)).toBe(hex(stored.rootHash));
    }
    for (let i = 0; i < 64; i++) {
      const p = stored.prove(key(i));
      expect(linked.prove(key(i))).toEqual(p);
      expect(partly.prove(key(i))).toEqual(p);
    }
  });

  it('[FW-BC] storage chunks group the nodes of a version by 4-level subtree, round-trip, and reject malformed rows', () => {
    const tree = new SparseMerkleTree(new MemorySmtStore());
    const batch = tree.stage(Array.from({ length: 40 }, (_, i) => [key(i), val(i), i] as [Uint8Array, Uint8Array, number]), 5);
    const chunks = encodeSmtChunks(batch.nodes);
    expect(chunks.length).toBeLessThan(batch.nodes.length);
    const back = chunks.flatMap((c) => decodeSmtChunk(c));
    expect(back.length).toBe(batch.nodes.length);
    const byPath = new Map(batch.nodes.map((n) => [n.path, n]));
    for (const n of back) {
      expect(n.version).toBe(5);
      expect(hex(n.node.hash)).toBe(hex(byPath.get(n.path)?.node.hash as Uint8Array));
      expect(smtChunkPath(n.path)).toBe(chunks.find((c) => decodeSmtChunk(c).some((m) => m.path === n.path))?.path);
    }
    expect(encodeSmtChunks(batch.nodes).map((c) => hex(c.bytes))).toEqual(chunks.map((c) => hex(c.bytes)));
    const c = chunks.find((x) => x.bytes.length > 80) as (typeof chunks)[number];
    const bad: Uint8Array[] = [new Uint8Array(0), c.bytes.subarray(0, c.bytes.length - 1), new Uint8Array([1, 0]), new Uint8Array([...c.bytes, 0])];
    for (const b of bad) expect(() => decodeSmtChunk({ ...c, bytes: b })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    const other = chunks.find((x) => x.path !== c.path) as (typeof chunks)[number];
    expect(() => decodeSmtChunk({ ...c, path: other.path })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});
