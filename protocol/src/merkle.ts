/**
 * @module merkle
 * RFC 9162 (Certificate Transparency v2) Merkle trees: hashing, inclusion and consistency
 * proofs, their verification, and an incremental frontier for append-only logs. Pure: no I/O.
 *
 * Hashing (RFC 9162 §2.1.1): `leaf = SHA-256(0x00 || data)`, `node = SHA-256(0x01 || left ||
 * right)`, the empty tree's root is `SHA-256("")`. A tree of n leaves splits at the largest
 * power of two smaller than n.
 *
 * Producers (the ledger) generate proofs from a {@link SubtreeHash} function that returns the
 * hash of any *complete, aligned* subtree — `level` L, `index` i covers leaves
 * `[i·2^L, (i+1)·2^L)` — so a stored tree answers any proof with O(log n) lookups and never
 * rehashes the log. Consumers verify with {@link verifyInclusion} and
 * {@link verifyConsistency}, which take attacker-controlled input and answer `false` for
 * anything malformed (wrong lengths, index ≥ size, sizes beyond 2^53, overlong proofs), never
 * throw.
 *
 * @example
 * ```ts
 * const leaves = txs.map(leafHash);
 * const root = rootOf(leaves);
 * const proof = inclusionProof(3, leaves.length, memorySubtrees(leaves));
 * verifyInclusion(leaves[3], 3, leaves.length, proof, root); // true
 * ```
 */
import { createHash, hash as oneShot } from 'node:crypto';
import { equalBytes } from './bytes.ts';
import { fail } from './errors.ts';

/** Length of every hash in the tree. */
export const HASH_LENGTH = 32;

/** Longest proof any tree of < 2^64 leaves can need; longer ones are rejected unread. */
export const MAX_PROOF_LENGTH = 64;

// Hashing is the hot path of the ledger (appends, open-time re-verification): one-shot
// crypto.hash over a reused scratch buffer is ~2x faster than createHash with three updates.
const SCRATCH = Buffer.alloc(4096);

// Hashes are plain Uint8Arrays over the digest's own memory (not the Buffer: Buffer#slice
// is a view, and callers copy hashes with slice).
function finish(d: Buffer): Uint8Array {
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** Root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1). */
export const EMPTY_ROOT: Uint8Array = finish(createHash('sha256').digest());

/** RFC 9162 leaf hash: SHA-256(0x00 || data). */
export function leafHash(data: Uint8Array): Uint8Array {
  if (data.length >= SCRATCH.length) return finish(createHash('sha256').update(new Uint8Array([0x00])).update(data).digest());
  SCRATCH[0] = 0x00;
  SCRATCH.set(data, 1);
  return finish(oneShot('sha256', SCRATCH.subarray(0, data.length + 1), 'buffer'));
}

/** RFC 9162 interior node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length !== HASH_LENGTH || right.length !== HASH_LENGTH) fail('INVALID_ARGUMENT', 'merkle: node children must be 32-byte hashes');
  SCRATCH[0] = 0x01;
  SCRATCH.set(left, 1);
  SCRATCH.set(right, 33);
  return finish(oneShot('sha256', SCRATCH.subarray(0, 65), 'buffer'));
}

/**
 * Returns the hash of the complete subtree at `level` (0 = a leaf hash) and `index`, covering
 * leaves `[index·2^level, (index+1)·2^level)`. Producers back it with storage.
 */
export type SubtreeHash = (level: number, index: number) => Uint8Array;

/** Largest power of two strictly smaller than n (n ≥ 2). Arithmetic, not bit ops: n may exceed 2^32. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  let k = 1;
  while (k < n) k *= 2;
  return k === n;
}

function log2Exact(n: number): number {
  let l = 0;
  let k = 1;
  while (k < n) {
    k *= 2;
    l++;
  }
  return l;
}

/**
 * MTH(D[start : start+n]) from complete subtrees. Ranges that arise in RFC 9162 proofs always
 * start at a multiple of their enclosing power of two, so this costs one lookup per 1-bit of n;
 * an unaligned range still gets the right answer by recursing.
 */
export function rangeHash(start: number, n: number, subtree: SubtreeHash): Uint8Array {
  if (n < 1) fail('INVALID_ARGUMENT', 'merkle: empty range');
  if (isPowerOfTwo(n) && start % n === 0) return subtree(log2Exact(n), start / n);
  const k = splitPoint(n);
  return nodeHash(rangeHash(start, k, subtree), rangeHash(start + k, n - k, subtree));
}

function assertSize(label: string, n: number, min: number): void {
  if (!Number.isSafeInteger(n) || n < min) fail('INVALID_ARGUMENT', `merkle: ${label} must be an integer ≥ ${min}`);
}

/**
 * Inclusion proof (audit path) of leaf `index` in the tree of the first `size` leaves,
 * RFC 9162 §2.1.3.1, ordered from the leaf's sibling up to the root's child.
 */
export function inclusionProof(index: number, size: number, subtree: SubtreeHash): Uint8Array[] {
  assertSize('size', size, 1);
  assertSize('index', index, 0);
  if (index >= size) fail('INVALID_RANGE', `merkle: leaf ${index} is not in a tree of ${size}`);
  // Walk down from the root, collecting the hash of the other half at each split; the RFC
  // orders the path bottom-up, so reverse at the end.
  const out: Uint8Array[] = [];
  let start = 0;
  let n = size;
  let m = index;
  while (n > 1) {
    const k = splitPoint(n);
    if (m < k) {
      out.push(rangeHash(start + k, n - k, subtree));
      n = k;
    } else {
      out.push(rangeHash(start, k, subtree));
      start += k;
      m -= k;
      n -= k;
    }
  }
  return out.reverse();
}

/**
 * Consistency proof between the trees of the first `oldSize` and `newSize` leaves,
 * RFC 9162 §2.1.4.1. Empty when oldSize is 0 or equals newSize.
 */
export function consistencyProof(oldSize: number, newSize: number, subtree: SubtreeHash): Uint8Array[] {
  assertSize('oldSize', oldSize, 0);
  assertSize('newSize', newSize, 0);
  if (oldSize > newSize) fail('INVALID_RANGE', `merkle: old size ${oldSize} > new size ${newSize}`);
  if (oldSize === 0 || oldSize === newSize) return [];
  // SUBPROOF(m, D[n], b) unrolled top-down; `whole` is b: true while the old tree is still a
  // left part of the current range, in which case its root need not be sent.
  const out: Uint8Array[] = [];
  let start = 0;
  let n = newSize;
  let m = oldSize;
  let whole = true;
  while (m !== n) {
    const k = splitPoint(n);
    if (m <= k) {
      out.push(rangeHash(start + k, n - k, subtree));
      n = k;
    } else {
      out.push(rangeHash(start, k, subtree));
      start += k;
      m -= k;
      n -= k;
      whole = false;
    }
  }
  if (!whole) out.push(rangeHash(start, n, subtree));
  return out.reverse();
}

function isHash(h: unknown): h is Uint8Array {
  return h instanceof Uint8Array && h.length === HASH_LENGTH;
}

function isProof(p: unknown): p is Uint8Array[] {
  return Array.isArray(p) && p.length <= MAX_PROOF_LENGTH && p.every(isHash);
}

/**
 * Verifies an inclusion proof (RFC 9162 §2.1.3.2). Every argument may come from an attacker:
 * anything malformed answers false.
 */
export function verifyInclusion(leaf: Uint8Array, index: number, size: number, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!isHash(leaf) || !isHash(root) || !isProof(proof)) return false;
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equalBytes(r, root);
}

/**
 * Verifies a consistency proof (RFC 9162 §2.1.4.2) that the tree of `newSize` leaves with
 * `newRoot` extends the tree of `oldSize` leaves with `oldRoot`. Equal sizes need an empty
 * proof and equal roots; oldSize 0 needs an empty proof and the empty-tree root. Anything
 * malformed answers false.
 */
export function verifyConsistency(oldSize: number, newSize: number, oldRoot: Uint8Array, newRoot: Uint8Array, proof: readonly Uint8Array[]): boolean {
  if (!isHash(oldRoot) || !isHash(newRoot) || !isProof(proof)) return false;
  if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(newSize) || oldSize < 0 || oldSize > newSize) return false;
  if (oldSize === 0) return proof.length === 0 && equalBytes(oldRoot, EMPTY_ROOT);
  if (oldSize === newSize) return proof.length === 0 && equalBytes(oldRoot, newRoot);
  if (proof.length === 0) return false;
  // A power-of-two old tree is a complete left subtree of the new one: its root starts the path.
  const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : [...proof];
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0] as Uint8Array;
  let sr = fr;
  for (let i = 1; i < path.length; i++) {
    const c = path[i] as Uint8Array;
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equalBytes(fr, oldRoot) && equalBytes(sr, newRoot);
}

/** Like {@link verifyInclusion}, but throws INVALID_PROOF instead of answering false. */
export function assertInclusion(leaf: Uint8Array, index: number, size: number, proof: readonly Uint8Array[], root: Uint8Array): void {
  if (!verifyInclusion(leaf, index, size, proof, root)) fail('INVALID_PROOF', `inclusion proof of leaf ${String(index)} in tree ${String(size)} does not verify`);
}

/** Like {@link verifyConsistency}, but throws INVALID_PROOF instead of answering false. */
export function assertConsistency(oldSize: number, newSize: number, oldRoot: Uint8Array, newRoot: Uint8Array, proof: readonly Uint8Array[]): void {
  if (!verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof)) fail('INVALID_PROOF', `consistency proof ${String(oldSize)} → ${String(newSize)} does not verify`);
}

// ---------------------------------------------------------------- in-memory trees

/**
 * All complete subtrees of an in-memory list of leaf hashes, level by level; `levels[L][i]` is
 * the subtree at level L, index i. O(n) hashes, once.
 */
function buildLevels(leafHashes: readonly Uint8Array[]): Uint8Array[][] {
  const levels: Uint8Array[][] = [leafHashes.slice()];
  for (let below = levels[0] as Uint8Array[]; below.length > 1; ) {
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < below.length; i += 2) next.push(nodeHash(below[i] as Uint8Array, below[i + 1] as Uint8Array));
    levels.push(next);
    below = next;
  }
  return levels;
}

/** A {@link SubtreeHash} over an in-memory list of leaf hashes (for batches and tests). */
export function memorySubtrees(leafHashes: readonly Uint8Array[]): SubtreeHash {
  const levels = buildLevels(leafHashes);
  return (level, index) => {
    const h = levels[level]?.[index];
    if (h === undefined) fail('INVALID_RANGE', `merkle: no complete subtree at level ${level}, index ${index}`);
    return h;
  };
}

/** RFC 9162 root (MTH) of a list of leaf hashes; {@link EMPTY_ROOT} for none. */
export function rootOf(leafHashes: readonly Uint8Array[]): Uint8Array {
  if (leafHashes.length === 0) return EMPTY_ROOT;
  for (const h of leafHashes) if (!isHash(h)) fail('INVALID_ARGUMENT', 'merkle: leaf hashes must be 32 bytes');
  return rangeHash(0, leafHashes.length, memorySubtrees(leafHashes));
}

function batchLeaves(items: readonly Uint8Array[]): Uint8Array[] {
  if (!Array.isArray(items) || items.length === 0) fail('INVALID_ARGUMENT', 'merkle: a batch needs at least one item');
  return items.map((d) => {
    if (!(d instanceof Uint8Array)) fail('INVALID_ARGUMENT', 'merkle: batch items must be bytes');
    return leafHash(d);
  });
}

/**
 * Root of a batch tree over raw items (each hashed as an RFC 9162 leaf), as signed by a UE in
 * batch mode. Throws INVALID_ARGUMENT for an empty batch.
 */
export function batchRoot(items: readonly Uint8Array[]): Uint8Array {
  return rootOf(batchLeaves(items));
}

/** Inclusion path of item `index` in {@link batchRoot}(items); verify with verifyInclusion(leafHash(item), …). */
export function batchPath(items: readonly Uint8Array[], index: number): Uint8Array[] {
  const leaves = batchLeaves(items);
  return inclusionProof(index, leaves.length, memorySubtrees(leaves));
}

/**
 * Every path of a batch at once (O(n log n) total, one tree build) — what a UE signing a batch
 * of n records needs.
 */
export function batchPaths(items: readonly Uint8Array[]): { root: Uint8Array; paths: Uint8Array[][] } {
  const leaves = batchLeaves(items);
  const sub = memorySubtrees(leaves);
  return {
    root: rangeHash(0, leaves.length, sub),
    paths: leaves.map((_, i) => inclusionProof(i, leaves.length, sub)),
  };
}

// ---------------------------------------------------------------- incremental frontier

/** A complete subtree created by {@link MerkleFrontier.push}. */
export interface NewSubtree {
  level: number;
  index: number;
  hash: Uint8Array;
}

/**
 * The right edge of an append-only tree: the roots of the complete subtrees that make up the
 * first `size` leaves (one per 1-bit of size, largest first). Appending a leaf merges equal
 * levels and reports every complete subtree it completes, so a store can persist exactly the
 * nodes proofs need.
 */
export class MerkleFrontier {
  #size: number;
  // (level, hash) pairs, levels strictly decreasing.
  #stack: { level: number; hash: Uint8Array }[];

  private constructor(size: number, stack: { level: number; hash: Uint8Array }[]) {
    this.#size = size;
    this.#stack = stack;
  }

  /** An empty tree. */
  static empty(): MerkleFrontier {
    return new MerkleFrontier(0, []);
  }

  /** The frontier of a stored tree of `size` leaves, read from its complete subtrees. */
  static fromSubtrees(size: number, subtree: SubtreeHash): MerkleFrontier {
    assertSize('size', size, 0);
    const stack: { level: number; hash: Uint8Array }[] = [];
    let start = 0;
    let rest = size;
    while (rest > 0) {
      let p = 1;
      while (p * 2 <= rest) p *= 2;
      const level = log2Exact(p);
      stack.push({ level, hash: subtree(level, start / p) });
      start += p;
      rest -= p;
    }
    return new MerkleFrontier(size, stack);
  }

  get size(): number {
    return this.#size;
  }

  /** A copy that can be advanced without touching this one. */
  clone(): MerkleFrontier {
    return new MerkleFrontier(this.#size, this.#stack.slice());
  }

  /** Appends one leaf hash; returns the complete subtrees of level ≥ 1 it completed, lowest first. */
  push(leaf: Uint8Array): NewSubtree[] {
    if (!isHash(leaf)) fail('INVALID_ARGUMENT', 'merkle: leaf hash must be 32 bytes');
    const created: NewSubtree[] = [];
    let level = 0;
    let hash = leaf;
    const end = this.#size + 1; // leaves covered after this push, for subtree indexes
    for (let top = this.#stack.at(-1); top !== undefined && top.level === level; top = this.#stack.at(-1)) {
      this.#stack.pop();
      hash = nodeHash(top.hash, hash);
      level++;
      created.push({ level, index: end / 2 ** level - 1, hash });
    }
    this.#stack.push({ level, hash });
    this.#size = end;
    return created;
  }

  /** Root of the current tree (EMPTY_ROOT for size 0). */
  root(): Uint8Array {
    const s = this.#stack;
    if (s.length === 0) return EMPTY_ROOT;
    let r = (s[s.length - 1] as { hash: Uint8Array }).hash;
    for (let i = s.length - 2; i >= 0; i--) r = nodeHash((s[i] as { hash: Uint8Array }).hash, r);
    return r;
  }
}
