/**
 * @module smt
 * A sparse Merkle tree over 256-bit keys: the map from UE key (SHA-256 of the UE public key)
 * to the RFC 9162 leaf hash of the UE's latest endorsement tx. Its root (the *state root*) is
 * bound into every block header and checkpoint, so a consumer can check with
 * {@link verifyLatestProof} that an endorsement is — or is not — the UE's latest.
 *
 * ## Hashing (domain-separated from RFC 9162's 0x00/0x01)
 * - key bits are read most significant bit of byte 0 first; bit i chooses the child at depth i
 *   (0 = left, 1 = right); the root is depth 0;
 * - empty subtree (any height): 32 zero bytes, {@link SMT_EMPTY} — a constant, not a hash chain,
 *   because the tree is compact (next point);
 * - a subtree holding exactly one leaf *is* that leaf: `leaf = SHA-256(0x02 || key || value)`,
 *   placed at the shallowest depth where it is alone. The leaf binds its full key, so its
 *   position needs no separate commitment;
 * - any other subtree (two or more leaves): `node = SHA-256(0x03 || left || right)`.
 *
 * Compared with hashing all 256 levels, a proof has ~log2(n) siblings and an update costs
 * ~log2(n) hashes (never more than 257), which is what lets the ledger take 10k updates/s.
 *
 * ## Proofs ({@link LatestProof})
 * `bitmap` is 32 bytes; bit i set means the sibling at depth i is non-empty and is the next
 * entry of `siblings` (root first). The path ends at depth d = (highest set bit) + 1: in a
 * canonical tree the deepest sibling on a path is never empty. At depth d sits
 * - the key's own leaf (membership: `value` is 32 bytes), or
 * - nothing (non-membership: `value`, `other_key`, `other_value` empty), or
 * - another key's leaf (non-membership: `other_key` and `other_value` give it).
 * The verifier folds from that terminal hash up to the root along the key's bits.
 *
 * ## Storage
 * Nodes are versioned and immutable (as in Diem's Jellyfish Merkle tree): an update at version
 * v writes new nodes under (v, path) and never rewrites an old one, so every historical root
 * stays provable and a database store writes sequentially. Storage is pluggable through
 * {@link SmtNodeStore}; {@link MemorySmtStore}, {@link SmtOverlay} and {@link NO_SMT_STORE}
 * are provided, and {@link encodeSmtChunks} / {@link decodeSmtChunk} give a database store its
 * row format (the nodes of one version under one 4-level subtree per row). Every node read
 * is checked against the hash its parent recorded. A leaf may carry an `aux` integer for its
 * owner (not hashed). {@link SmtReplay} computes the same roots with a mutable trie, for
 * replaying history quickly.
 */
import { hash as oneShot } from 'node:crypto';
import type { LatestProof } from '../../proto/gen/divs/v1/common.ts';
import { equalBytes, writeU64be } from './bytes.ts';
import { fail } from './errors.ts';
import { Sha256Many } from './sha256x4.ts';

export type { LatestProof };

/** Key and value length in bytes. */
export const SMT_KEY_LENGTH = 32;
/** Tree depth in bits. */
export const SMT_DEPTH = 256;
/** Hash of an empty subtree (any height), and the root of the empty tree. */
export const SMT_EMPTY: Uint8Array = new Uint8Array(32);

// One-shot hashing over a reused scratch buffer: ~2x faster than createHash + updates, and
// updates hash once per new node, so this is the SMT's hot path.
const SCRATCH = Buffer.alloc(65);

function digest65(tag: number, a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length !== 32 || b.length !== 32) fail('INVALID_ARGUMENT', 'smt: hash inputs must be 32 bytes');
  SCRATCH[0] = tag;
  SCRATCH.set(a, 1);
  SCRATCH.set(b, 33);
  const d = oneShot('sha256', SCRATCH, 'buffer');
  // a plain Uint8Array, not the Buffer: Buffer#slice would share memory where callers copy
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** A true copy as a plain Uint8Array (`slice` on a Buffer, e.g. a SQLite row, is a view). */
function copyOf(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

/** Leaf hash: SHA-256(0x02 || key || value). */
export function smtLeafHash(key: Uint8Array, value: Uint8Array): Uint8Array {
  return digest65(0x02, key, value);
}

/** Interior node hash: SHA-256(0x03 || left || right). */
export function smtNodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return digest65(0x03, left, right);
}

/** Equality of two hashes (public data: no need for a constant-time compare). */
function sameHash(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Bit `i` of a key, most significant bit of byte 0 first. */
export function keyBit(key: Uint8Array, i: number): number {
  return ((key[i >> 3] as number) >> (7 - (i & 7))) & 1;
}

// ---------------------------------------------------------------- nodes

/** A pointer to a stored node: the version it was written at and its hash. */
export interface SmtRef {
  version: number;
  hash: Uint8Array;
  /** The node itself, when the tree keeps nodes linked in memory (see `link`). */
  node?: SmtNode;
}

export interface SmtLeaf {
  kind: 'leaf';
  key: Uint8Array;
  value: Uint8Array;
  /**
   * An integer the tree's owner stores beside the leaf — not hashed, not in proofs (the ledger
   * keeps the tx ID of the value here, and checks it against the value on use). 0 if unused.
   */
  aux: number;
  hash: Uint8Array;
}

export interface SmtBranch {
  kind: 'branch';
  left: SmtRef | null;
  right: SmtRef | null;
  hash: Uint8Array;
}

export type SmtNode = SmtLeaf | SmtBranch;

/**
 * Position of a node, as an opaque string key: u16be(depth) || the first ceil(depth/8) bytes
 * of any key below it with the bits past `depth` cleared, one char per byte (latin1). Use
 * {@link smtPathBytes} to store it as bytes.
 */
export type SmtPath = string;

/** A node together with where it is stored. */
export interface SmtStoredNode {
  version: number;
  path: SmtPath;
  node: SmtNode;
}

/** Position of the node at `depth` on `key`'s path. */
export function smtPath(key: Uint8Array, depth: number): SmtPath {
  const full = depth >> 3;
  const rem = depth & 7;
  let s = String.fromCharCode(depth >> 8, depth & 0xff);
  for (let i = 0; i < full; i++) s += String.fromCharCode(key[i] as number);
  if (rem !== 0) s += String.fromCharCode((key[full] as number) & ((0xff << (8 - rem)) & 0xff));
  return s;
}

/** The bytes of a path (for storage). */
export function smtPathBytes(path: SmtPath): Uint8Array {
  return new Uint8Array(Buffer.from(path, 'latin1'));
}

/** A path read back from storage. */
export function smtPathFromBytes(b: Uint8Array): SmtPath {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

// Every node is one of two classes (one object shape each, which keeps the hot paths
// monomorphic). A node built by an update gets its hash at once; a node decoded from storage
// hashes itself on first use: a storage row holds several nodes and a reader usually needs
// one, and each node read is checked against its parent's hash anyway.
class LeafNode implements SmtLeaf {
  readonly kind = 'leaf' as const;
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly aux: number;
  #hash: Uint8Array | undefined;
  constructor(key: Uint8Array, value: Uint8Array, aux: number, hash?: Uint8Array) {
    this.key = key;
    this.value = value;
    this.aux = aux;
    this.#hash = hash;
  }
  get hash(): Uint8Array {
    this.#hash ??= smtLeafHash(this.key, this.value);
    return this.#hash;
  }
  /** Sets the hash a batch computed (see {@link hashPending}). */
  settle(hash: Uint8Array): void {
    this.#hash = hash;
  }
}

class BranchNode implements SmtBranch {
  readonly kind = 'branch' as const;
  readonly left: SmtRef | null;
  readonly right: SmtRef | null;
  #hash: Uint8Array | undefined;
  constructor(left: SmtRef | null, right: SmtRef | null, hash?: Uint8Array) {
    this.left = left;
    this.right = right;
    this.#hash = hash;
  }
  get hash(): Uint8Array {
    this.#hash ??= smtNodeHash(this.left?.hash ?? SMT_EMPTY, this.right?.hash ?? SMT_EMPTY);
    return this.#hash;
  }
  /** Sets the hash a batch computed (see {@link hashPending}). */
  settle(hash: Uint8Array): void {
    this.#hash = hash;
  }
}

/** A node an update made whose hash is not computed yet, and the reference its parent holds. */
interface Pending {
  depth: number;
  node: LeafNode | BranchNode;
  ref: SmtRef;
}

// One hasher per thread for the batches of tree updates (its arena is reset per level).
let batchHasher: Sha256Many | undefined;

/**
 * Hashes the new nodes of an update, deepest first, one kernel call per depth (a node's
 * children are deeper, so they are done before it): with node:crypto each 65-byte digest is a
 * ~1 µs native call that allocates its output off-heap, and an update makes ~log2(n) new
 * nodes per key. Sets each node's hash and its reference's.
 */
function hashPending(pending: Pending[]): void {
  if (pending.length === 0) return;
  const h = (batchHasher ??= Sha256Many.create());
  let maxDepth = 0;
  for (const p of pending) if (p.depth > maxDepth) maxDepth = p.depth;
  const byDepth: Pending[][] = Array.from({ length: maxDepth + 1 }, () => []);
  for (const p of pending) (byDepth[p.depth] as Pending[]).push(p);
  for (let d = maxDepth; d >= 0; d--) {
    const level = byDepth[d] as Pending[];
    if (level.length === 0) continue;
    h.reset();
    // inputs (64 bytes each) then outputs (32 each); the view is read after the allocation
    const inAt = h.alloc(64 * level.length);
    const outAt = h.alloc(32 * level.length);
    const mem = h.bytes;
    for (let i = 0; i < level.length; i++) {
      const { node } = level[i] as Pending;
      const at = inAt + 64 * i;
      if (node instanceof LeafNode) {
        mem.set(node.key, at);
        mem.set(node.value, at + 32);
        h.jobInto(outAt + 32 * i, 0x02, at, 64);
      } else {
        mem.set(node.left?.hash ?? SMT_EMPTY, at);
        mem.set(node.right?.hash ?? SMT_EMPTY, at + 32);
        h.jobInto(outAt + 32 * i, 0x03, at, 64);
      }
    }
    h.run();
    for (let i = 0; i < level.length; i++) {
      const p = level[i] as Pending;
      const digest = h.digest(outAt + 32 * i);
      p.node.settle(digest);
      p.ref.hash = digest;
    }
  }
  h.reset();
}

/** A leaf node (hash computed). */
export function smtLeaf(key: Uint8Array, value: Uint8Array, aux = 0): SmtLeaf {
  return new LeafNode(key, value, aux, smtLeafHash(key, value));
}

/** A branch node (hash computed). */
export function smtBranch(left: SmtRef | null, right: SmtRef | null): SmtBranch {
  return new BranchNode(left, right, smtNodeHash(left?.hash ?? SMT_EMPTY, right?.hash ?? SMT_EMPTY));
}

/**
 * Storage encoding of a node. Leaf: `0x02 || key || value || u64be(aux)` (73 bytes). Branch: `0x03 ||
 * flags (bit 0: left present, bit 1: right present) || per present child u64be(version) ||
 * hash`. A node's own hash is not stored: a decoded node computes it from its content (on
 * first use), so a reader that compares it with the parent's reference detects any altered
 * node.
 */
export function encodeSmtNode(node: SmtNode): Uint8Array {
  const out = new Uint8Array(encodedSize(node));
  writeNode(out, 0, node);
  return out;
}

function encodedSize(node: SmtNode): number {
  return node.kind === 'leaf' ? 73 : 2 + (node.left ? 40 : 0) + (node.right ? 40 : 0);
}

/** Writes a node's encoding at out[o]; returns the offset after it. */
function writeNode(out: Uint8Array, o: number, node: SmtNode): number {
  if (node.kind === 'leaf') {
    out[o] = 0x02;
    const { key, value } = node;
    for (let i = 0; i < 32; i++) {
      out[o + 1 + i] = key[i] as number;
      out[o + 33 + i] = value[i] as number;
    }
    writeU64be(out, o + 65, node.aux);
    return o + 73;
  }
  out[o] = 0x03;
  out[o + 1] = (node.left ? 1 : 0) | (node.right ? 2 : 0);
  let p = o + 2;
  if (node.left) p = writeRef(out, p, node.left);
  if (node.right) p = writeRef(out, p, node.right);
  return p;
}

function readU64(b: Uint8Array, o: number): number {
  const hi = (((b[o] as number) << 24) | ((b[o + 1] as number) << 16) | ((b[o + 2] as number) << 8) | (b[o + 3] as number)) >>> 0;
  const lo = (((b[o + 4] as number) << 24) | ((b[o + 5] as number) << 16) | ((b[o + 6] as number) << 8) | (b[o + 7] as number)) >>> 0;
  const v = hi * 2 ** 32 + lo;
  if (!Number.isSafeInteger(v)) fail('INVALID_ARGUMENT', 'smt: integer out of range');
  return v;
}

function writeRef(out: Uint8Array, o: number, ref: SmtRef): number {
  writeU64be(out, o, ref.version);
  // a byte loop beats TypedArray#set for 32 bytes
  const h = ref.hash;
  for (let i = 0; i < 32; i++) out[o + 8 + i] = h[i] as number;
  return o + 40;
}

function readRef(b: Uint8Array, o: number): SmtRef {
  return { version: readU64(b, o), hash: copyOf(b.subarray(o + 8, o + 40)), node: undefined };
}

/** Length of the encoded node starting at b[o], or -1 when it is not a valid node start. */
function encodedLength(b: Uint8Array, o: number): number {
  const t = b[o];
  if (t === 0x02) return 73;
  if (t !== 0x03 || o + 1 >= b.length) return -1;
  const flags = b[o + 1] as number;
  // A branch always has two or more leaves below it, so at least one child.
  if (flags === 0 || flags > 3) return -1;
  return 2 + 40 * ((flags & 1) + ((flags >> 1) & 1));
}

/** Decodes {@link encodeSmtNode} output strictly; throws INVALID_ARGUMENT on anything else. */
export function decodeSmtNode(b: Uint8Array): SmtNode {
  if (!(b instanceof Uint8Array) || b.length === 0) fail('INVALID_ARGUMENT', 'smt: empty node');
  const len = encodedLength(b, 0);
  if (len < 0) fail('INVALID_ARGUMENT', 'smt: unknown node type or bad branch flags');
  if (b.length !== len) fail('INVALID_ARGUMENT', 'smt: bad node length');
  if (b[0] === 0x02) return new LeafNode(copyOf(b.subarray(1, 33)), copyOf(b.subarray(33, 65)), readU64(b, 65));
  const flags = b[1] as number;
  let o = 2;
  let left: SmtRef | null = null;
  let right: SmtRef | null = null;
  if (flags & 1) {
    left = readRef(b, o);
    o += 40;
  }
  if (flags & 2) right = readRef(b, o);
  return new BranchNode(left, right);
}

// ---------------------------------------------------------------- storage chunks

/**
 * Depth stride of storage chunks: a database row holds the nodes of one version whose depths
 * fall in [k·stride, (k+1)·stride) under one position, i.e. up to 2^stride−1 nodes of a
 * 16-ary subtree. An update writes ~4x fewer rows than one row per node, and row count, not
 * bytes, is what a SQLite insert costs.
 */
export const SMT_CHUNK_STRIDE = 4;

/** Depth of the node at a path. */
export function smtPathDepth(path: SmtPath): number {
  return (path.charCodeAt(0) << 8) | path.charCodeAt(1);
}

/** Path of the chunk holding the node at `path`: truncated to depth ⌊depth/stride⌋·stride. */
export function smtChunkPath(path: SmtPath, stride: number = SMT_CHUNK_STRIDE): SmtPath {
  const depth = smtPathDepth(path);
  const cd = depth - (depth % stride);
  if (cd === depth) return path;
  const full = cd >> 3;
  const rem = cd & 7;
  let s = String.fromCharCode(cd >> 8, cd & 0xff) + path.slice(2, 2 + full);
  if (rem !== 0) s += String.fromCharCode(path.charCodeAt(2 + full) & ((0xff << (8 - rem)) & 0xff));
  return s;
}

/** One storage row: the nodes of `version` inside the chunk at `path`. */
export interface SmtChunk {
  version: number;
  path: SmtPath;
  /** Records `u8 len(path) || path || node encoding`, sorted by path. */
  bytes: Uint8Array;
}

/** Groups nodes into storage chunks, sorted by (version, path): deterministic, so a verifier can compare rows byte for byte. */
export function encodeSmtChunks(nodes: readonly SmtStoredNode[], stride: number = SMT_CHUNK_STRIDE): SmtChunk[] {
  type Group = { version: number; path: SmtPath; size: number; members: SmtStoredNode[] };
  // version -> chunk path -> group (nested maps: no composite string keys to build)
  const byVersion = new Map<number, Map<SmtPath, Group>>();
  for (const n of nodes) {
    const cp = smtChunkPath(n.path, stride);
    let groups = byVersion.get(n.version);
    if (groups === undefined) {
      groups = new Map();
      byVersion.set(n.version, groups);
    }
    let g = groups.get(cp);
    if (g === undefined) {
      g = { version: n.version, path: cp, size: 0, members: [] };
      groups.set(cp, g);
    }
    g.members.push(n);
    g.size += 1 + n.path.length + encodedSize(n.node);
  }
  const out: SmtChunk[] = [];
  for (const g of [...byVersion.values()].flatMap((m) => [...m.values()])) {
    g.members.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    // one allocation per row, nodes written in place
    const bytes = new Uint8Array(g.size);
    let o = 0;
    for (const m of g.members) {
      const p = m.path;
      bytes[o++] = p.length;
      for (let i = 0; i < p.length; i++) bytes[o++] = p.charCodeAt(i);
      o = writeNode(bytes, o, m.node);
    }
    out.push({ version: g.version, path: g.path, bytes });
  }
  return out.sort((a, b) => a.version - b.version || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Decodes one storage chunk strictly: every record must be well-formed, sorted, unique and
 * belong to the chunk's position. Throws INVALID_ARGUMENT otherwise.
 */
export function decodeSmtChunk(chunk: SmtChunk, stride: number = SMT_CHUNK_STRIDE): SmtStoredNode[] {
  const b = chunk.bytes;
  if (!(b instanceof Uint8Array) || b.length === 0) fail('INVALID_ARGUMENT', 'smt: empty chunk');
  const out: SmtStoredNode[] = [];
  let o = 0;
  let last = '';
  while (o < b.length) {
    const pl = b[o++] as number;
    if (pl < 2 || pl > 34 || o + pl > b.length) fail('INVALID_ARGUMENT', 'smt: bad path in chunk');
    const path = String.fromCharCode(...b.subarray(o, o + pl));
    o += pl;
    const depth = smtPathDepth(path);
    if (depth > SMT_DEPTH || pl !== 2 + Math.ceil(depth / 8)) fail('INVALID_ARGUMENT', 'smt: bad path in chunk');
    if ((depth & 7) !== 0 && ((path.charCodeAt(pl - 1) & (0xff >> (depth & 7))) !== 0)) fail('INVALID_ARGUMENT', 'smt: path has bits past its depth');
    if (smtChunkPath(path, stride) !== chunk.path) fail('INVALID_ARGUMENT', 'smt: node outside its chunk');
    if (path <= last) fail('INVALID_ARGUMENT', 'smt: chunk records out of order');
    last = path;
    const len = encodedLength(b, o);
    if (len < 0 || o + len > b.length) fail('INVALID_ARGUMENT', 'smt: bad node in chunk');
    out.push({ version: chunk.version, path, node: decodeSmtNode(b.subarray(o, o + len)) });
    o += len;
  }
  return out;
}

/** Where a tree keeps its nodes. Reads must return exactly what was put under (version, path). */
export interface SmtNodeStore {
  get(version: number, path: SmtPath): SmtNode | undefined;
  put(nodes: readonly SmtStoredNode[]): void;
}

const slot = (version: number, path: SmtPath): string => `${version}/${path}`;

/**
 * An in-memory store. With `latestOnly`, each position keeps only its newest node (what a
 * replay needs: old versions are never read again), otherwise every version is kept.
 */
export class MemorySmtStore implements SmtNodeStore {
  readonly #all = new Map<string, SmtNode>();
  readonly #latest = new Map<SmtPath, SmtStoredNode>();
  readonly #latestOnly: boolean;

  constructor(opts: { latestOnly?: boolean } = {}) {
    this.#latestOnly = opts.latestOnly ?? false;
  }

  get(version: number, path: SmtPath): SmtNode | undefined {
    if (!this.#latestOnly) return this.#all.get(slot(version, path));
    const e = this.#latest.get(path);
    return e && e.version === version ? e.node : undefined;
  }

  put(nodes: readonly SmtStoredNode[]): void {
    if (this.#latestOnly) for (const n of nodes) this.#latest.set(n.path, n);
    else for (const n of nodes) this.#all.set(slot(n.version, n.path), n.node);
  }

  /** Number of stored nodes. */
  get size(): number {
    return this.#latestOnly ? this.#latest.size : this.#all.size;
  }
}

/** A store that keeps nothing: for a linked tree (`link: true`) that lives only in memory. */
export const NO_SMT_STORE: SmtNodeStore = {
  get: () => undefined,
  put: () => undefined,
};

/**
 * Nodes staged on top of a base store, not yet written to it: lets a writer stage several
 * versions (e.g. several blocks in one database transaction) and then persist them together,
 * or drop them.
 */
export class SmtOverlay implements SmtNodeStore {
  readonly base: SmtNodeStore;
  readonly #own = new Map<number, Map<SmtPath, SmtStoredNode>>();

  constructor(base: SmtNodeStore) {
    this.base = base;
  }

  get(version: number, path: SmtPath): SmtNode | undefined {
    return this.#own.get(version)?.get(path)?.node ?? this.base.get(version, path);
  }

  put(nodes: readonly SmtStoredNode[]): void {
    for (const n of nodes) {
      let m = this.#own.get(n.version);
      if (m === undefined) {
        m = new Map();
        this.#own.set(n.version, m);
      }
      m.set(n.path, n);
    }
  }

  /** The staged nodes, by version, in the order first staged. */
  nodes(): SmtStoredNode[] {
    return [...this.#own.values()].flatMap((m) => [...m.values()]);
  }
}

// ---------------------------------------------------------------- the tree

/** The result of staging updates: the new root and the nodes to store. */
export interface SmtBatch {
  version: number;
  root: SmtRef | null;
  nodes: SmtStoredNode[];
  /** The leaves the batch overwrote (keys that had a value before), in key order. */
  replaced: SmtLeaf[];
}

/** An update: key, value, and optionally the leaf's {@link SmtLeaf.aux}. */
export type SmtEntry = readonly [key: Uint8Array, value: Uint8Array] | readonly [key: Uint8Array, value: Uint8Array, aux: number];

interface Entry {
  key: Uint8Array;
  value: Uint8Array;
  aux: number;
}

function checkKV(key: unknown, value: unknown): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array) || key.length !== SMT_KEY_LENGTH) fail('INVALID_ARGUMENT', 'smt: key must be 32 bytes');
  if (!(value instanceof Uint8Array) || value.length !== SMT_KEY_LENGTH) fail('INVALID_ARGUMENT', 'smt: value must be 32 bytes');
}

function compareKeys(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/**
 * The sparse Merkle tree over a node store. Reads verify every node against the hash its
 * parent recorded and throw LEDGER_TAMPERED on a mismatch or a missing node.
 *
 * @example
 * ```ts
 * const tree = new SparseMerkleTree(new MemorySmtStore());
 * tree.update([[ueKey, txLeafHash]], 1);
 * verifyLatestProof(tree.prove(ueKey), tree.rootHash); // true
 * ```
 */
export class SparseMerkleTree {
  readonly store: SmtNodeStore;
  #root: SmtRef | null;
  readonly #linkDepth: number;

  /**
   * `link`: new nodes shallower than this depth (true: all) are reachable from their parents'
   * references, so reads of that part of the current tree never go to the store; replaced
   * versions become garbage. A tree that lives in memory anyway (a replay) links everything; a
   * tree over a database links its hot top (bounded: 2^depth positions) and reads the rest
   * through the store's bounded cache.
   */
  constructor(store: SmtNodeStore, root: SmtRef | null = null, opts: { link?: boolean | number } = {}) {
    this.store = store;
    this.#root = root;
    const l = opts.link ?? false;
    this.#linkDepth = l === true ? SMT_DEPTH + 1 : l === false ? 0 : l;
  }

  /** Reference to the root node; null for the empty tree. */
  get root(): SmtRef | null {
    return this.#root;
  }

  /** The root hash ({@link SMT_EMPTY} for the empty tree). */
  get rootHash(): Uint8Array {
    return this.#root?.hash ?? SMT_EMPTY;
  }

  /** Points the tree at another root (e.g. after a failed write, or to read a past version). */
  reset(root: SmtRef | null): void {
    this.#root = root;
  }

  #read(ref: SmtRef, key: Uint8Array, depth: number): SmtNode {
    return this.#readAt(ref, smtPath(key, depth), depth);
  }

  #readAt(ref: SmtRef, path: SmtPath, depth: number): SmtNode {
    if (ref.node !== undefined) return ref.node;
    const node = this.store.get(ref.version, path);
    if (node === undefined) fail('LEDGER_TAMPERED', `smt: node at depth ${depth}, version ${ref.version} is missing`);
    if (!sameHash(node.hash, ref.hash)) fail('LEDGER_TAMPERED', `smt: node at depth ${depth}, version ${ref.version} does not match its parent`);
    return node;
  }

  /** The value stored under `key`, or undefined. */
  lookup(key: Uint8Array): Uint8Array | undefined {
    return this.lookupLeaf(key)?.value;
  }

  /** The value and aux stored under `key` (copies), or undefined. */
  lookupLeaf(key: Uint8Array): { value: Uint8Array; aux: number } | undefined {
    if (!(key instanceof Uint8Array) || key.length !== SMT_KEY_LENGTH) fail('INVALID_ARGUMENT', 'smt: key must be 32 bytes');
    let ref = this.#root;
    for (let depth = 0; ref !== null; depth++) {
      const node = this.#read(ref, key, depth);
      if (node.kind === 'leaf') return sameHash(node.key, key) ? { value: copyOf(node.value), aux: node.aux } : undefined;
      ref = keyBit(key, depth) === 1 ? node.right : node.left;
    }
    return undefined;
  }

  /** Membership or non-membership proof for `key` against {@link rootHash}. */
  prove(key: Uint8Array): LatestProof {
    if (!(key instanceof Uint8Array) || key.length !== SMT_KEY_LENGTH) fail('INVALID_ARGUMENT', 'smt: key must be 32 bytes');
    const bitmap = new Uint8Array(32);
    const siblings: Uint8Array[] = [];
    const proof: LatestProof = { ueKey: copyOf(key), value: new Uint8Array(0), bitmap, siblings, otherKey: new Uint8Array(0), otherValue: new Uint8Array(0) };
    let ref = this.#root;
    for (let depth = 0; ref !== null; depth++) {
      const node = this.#read(ref, key, depth);
      if (node.kind === 'leaf') {
        if (equalBytes(node.key, key)) proof.value = copyOf(node.value);
        else {
          proof.otherKey = copyOf(node.key);
          proof.otherValue = copyOf(node.value);
        }
        break;
      }
      const right = keyBit(key, depth) === 1;
      const sib = right ? node.left : node.right;
      if (sib !== null) {
        bitmap[depth >> 3] = (bitmap[depth >> 3] as number) | (0x80 >> (depth & 7));
        siblings.push(copyOf(sib.hash));
      }
      ref = right ? node.right : node.left;
    }
    return proof;
  }

  /**
   * Computes the tree after setting `entries` (later entries for the same key win), writing
   * every new node at `version`, which must be greater than the root's. Touches nothing:
   * apply the batch with {@link apply}. Cost: one hash per new node, ~log2(n) per key.
   */
  stage(entries: Iterable<SmtEntry>, version: number): SmtBatch {
    if (!Number.isSafeInteger(version) || version < 0) fail('INVALID_ARGUMENT', 'smt: version must be a non-negative integer');
    if (this.#root !== null && version <= this.#root.version) fail('INVALID_ARGUMENT', `smt: version ${version} is not after ${this.#root.version}`);
    const byKey = new Map<string, Entry>();
    for (const [key, value, aux = 0] of entries) {
      checkKV(key, value);
      if (!Number.isSafeInteger(aux) || aux < 0) fail('INVALID_ARGUMENT', 'smt: aux must be a non-negative integer');
      byKey.set(Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1'), { key: copyOf(key), value: copyOf(value), aux });
    }
    if (byKey.size === 0) return { version, root: this.#root, nodes: [], replaced: [] };
    const sorted = [...byKey.values()].sort((a, b) => compareKeys(a.key, b.key));
    const nodes: SmtStoredNode[] = [];
    const replaced: SmtLeaf[] = [];
    const linkDepth = this.#linkDepth;
    // new nodes are hashed after the walk, in batches (hashPending): until then their
    // references hold a placeholder nobody reads
    const pending: Pending[] = [];
    const write = (path: SmtPath, depth: number, node: LeafNode | BranchNode): SmtRef => {
      nodes.push({ version, path, node });
      const ref: SmtRef = { version, hash: SMT_EMPTY, node: depth < linkDepth ? node : undefined };
      pending.push({ depth, node, ref });
      return ref;
    };
    // First index in [lo, hi) whose bit `depth` is 1 (entries are sorted and share the prefix).
    const split = (list: readonly Entry[], lo: number, hi: number, depth: number): number => {
      let a = lo;
      let b = hi;
      while (a < b) {
        const m = (a + b) >> 1;
        if (keyBit((list[m] as Entry).key, depth) === 1) b = m;
        else a = m + 1;
      }
      return a;
    };
    // A new subtree over list[lo, hi) (≥ 1 entry) rooted at `depth`.
    const fresh = (list: readonly Entry[], lo: number, hi: number, depth: number): SmtRef => {
      const first = list[lo] as Entry;
      if (hi - lo === 1) return write(smtPath(first.key, depth), depth, new LeafNode(first.key, first.value, first.aux));
      const mid = split(list, lo, hi, depth);
      const left = mid > lo ? fresh(list, lo, mid, depth + 1) : null;
      const right = mid < hi ? fresh(list, mid, hi, depth + 1) : null;
      return write(smtPath(first.key, depth), depth, new BranchNode(left, right));
    };
    // Applies list[lo, hi) to the existing subtree `ref` at `depth`.
    const update = (ref: SmtRef | null, lo: number, hi: number, depth: number): SmtRef | null => {
      if (lo === hi) return ref;
      const first = sorted[lo] as Entry;
      if (ref === null) return fresh(sorted, lo, hi, depth);
      const path = smtPath(first.key, depth);
      const node = this.#readAt(ref, path, depth);
      if (node.kind === 'branch') {
        const mid = split(sorted, lo, hi, depth);
        const left = update(node.left, lo, mid, depth + 1);
        const right = update(node.right, mid, hi, depth + 1);
        return write(path, depth, new BranchNode(left, right));
      }
      // A lone leaf: rebuild this subtree from the updates plus the old leaf (unless replaced).
      if (hi - lo === 1 && sameHash(first.key, node.key)) {
        replaced.push(node);
        return write(path, depth, new LeafNode(first.key, first.value, first.aux));
      }
      let at = lo;
      while (at < hi && compareKeys((sorted[at] as Entry).key, node.key) < 0) at++;
      if (at < hi && sameHash((sorted[at] as Entry).key, node.key)) {
        replaced.push(node);
        return fresh(sorted, lo, hi, depth);
      }
      const merged = sorted.slice(lo, at);
      merged.push({ key: node.key, value: node.value, aux: node.aux });
      for (let i = at; i < hi; i++) merged.push(sorted[i] as Entry);
      return fresh(merged, 0, merged.length, depth);
    };
    const root = update(this.#root, 0, sorted.length, 0);
    hashPending(pending);
    return { version, root, nodes, replaced };
  }

  /** Stores a staged batch and moves the root to it. */
  apply(batch: SmtBatch): void {
    this.store.put(batch.nodes);
    this.#root = batch.root;
  }

  /** {@link stage} then {@link apply}; returns the new root hash. */
  update(entries: Iterable<SmtEntry>, version: number): Uint8Array {
    this.apply(this.stage(entries, version));
    return this.rootHash;
  }
}

// ---------------------------------------------------------------- replay

interface ReplayLeaf {
  leaf: true;
  key: Uint8Array;
  value: Uint8Array;
  aux: number;
  hash: Uint8Array | null;
}

interface ReplayBranch {
  leaf: false;
  left: ReplayNode | null;
  right: ReplayNode | null;
  hash: Uint8Array | null;
}

type ReplayNode = ReplayLeaf | ReplayBranch;

/**
 * The same tree (same hashing, same shape, same roots) as a mutable in-memory trie, for
 * replaying history fast: updates mark their path dirty and {@link rootHash} rehashes only
 * dirty nodes, with no versions, paths or stored nodes to build. A ledger replays its txs
 * through it on open to check every block's state root; {@link SparseMerkleTree} is what
 * serves proofs.
 */
export class SmtReplay {
  #root: ReplayNode | null = null;
  #size = 0;

  /** Number of keys. */
  get size(): number {
    return this.#size;
  }

  /** Sets `key` to `value` (with `aux`); returns the aux of the value it replaced, if any. */
  set(key: Uint8Array, value: Uint8Array, aux = 0): number | undefined {
    checkKV(key, value);
    const fresh: ReplayLeaf = { leaf: true, key: copyOf(key), value: copyOf(value), aux, hash: null };
    if (this.#root === null) {
      this.#root = fresh;
      this.#size++;
      return undefined;
    }
    let parent: ReplayBranch | null = null;
    let node: ReplayNode = this.#root;
    let depth = 0;
    while (!node.leaf) {
      node.hash = null;
      parent = node;
      const right = keyBit(key, depth) === 1;
      const child: ReplayNode | null = right ? node.right : node.left;
      depth++;
      if (child === null) {
        if (right) node.right = fresh;
        else node.left = fresh;
        this.#size++;
        return undefined;
      }
      node = child;
    }
    if (sameHash(node.key, key)) {
      const prev = node.aux;
      node.value = fresh.value;
      node.aux = aux;
      node.hash = null;
      return prev;
    }
    // a lone leaf of another key: push both down to where their keys part
    let split = depth;
    while (keyBit(key, split) === keyBit(node.key, split)) split++;
    let sub: ReplayBranch = keyBit(key, split) === 1 ? { leaf: false, left: node, right: fresh, hash: null } : { leaf: false, left: fresh, right: node, hash: null };
    for (let d = split - 1; d >= depth; d--) sub = keyBit(key, d) === 1 ? { leaf: false, left: null, right: sub, hash: null } : { leaf: false, left: sub, right: null, hash: null };
    if (parent === null) this.#root = sub;
    else if (keyBit(key, depth - 1) === 1) parent.right = sub;
    else parent.left = sub;
    this.#size++;
    return undefined;
  }

  /** The root hash, rehashing what changed since the last call. */
  get rootHash(): Uint8Array {
    return this.#root === null ? SMT_EMPTY : hashReplay(this.#root);
  }
}

function hashReplay(n: ReplayNode): Uint8Array {
  if (n.hash !== null) return n.hash;
  n.hash = n.leaf ? smtLeafHash(n.key, n.value) : smtNodeHash(n.left === null ? SMT_EMPTY : hashReplay(n.left), n.right === null ? SMT_EMPTY : hashReplay(n.right));
  return n.hash;
}

// ---------------------------------------------------------------- verification

function isBytes(b: unknown, ...lengths: number[]): b is Uint8Array {
  return b instanceof Uint8Array && lengths.includes(b.length);
}

function isZero(b: Uint8Array): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

/**
 * Verifies a membership or non-membership proof against a state root. Pure; every field may
 * come from an attacker, and anything malformed or non-canonical answers false.
 * A true answer means: `proof.ueKey` maps to `proof.value` (32 bytes) — or to nothing when
 * `proof.value` is empty — in the tree whose root is `stateRoot`.
 */
export function verifyLatestProof(proof: LatestProof, stateRoot: Uint8Array): boolean {
  try {
    if (typeof proof !== 'object' || proof === null) return false;
    const { ueKey, value, bitmap, siblings } = proof;
    const otherKey = proof.otherKey ?? new Uint8Array(0);
    const otherValue = proof.otherValue ?? new Uint8Array(0);
    if (!isBytes(stateRoot, 32) || !isBytes(ueKey, 32) || !isBytes(bitmap, 32)) return false;
    if (!isBytes(value, 0, 32) || !isBytes(otherKey, 0, 32) || !isBytes(otherValue, 0, 32)) return false;
    if (!Array.isArray(siblings) || siblings.length > SMT_DEPTH) return false;
    let depth = 0;
    let count = 0;
    for (let i = 0; i < SMT_DEPTH; i++) {
      if (keyBit(bitmap, i) === 1) {
        count++;
        depth = i + 1;
      }
    }
    if (count !== siblings.length) return false;
    for (const s of siblings) if (!isBytes(s, 32) || isZero(s)) return false;

    let h: Uint8Array;
    if (value.length === 32) {
      if (otherKey.length !== 0 || otherValue.length !== 0) return false;
      h = smtLeafHash(ueKey, value);
    } else if (otherKey.length === 0 && otherValue.length === 0) {
      h = SMT_EMPTY;
    } else {
      if (otherKey.length !== 32 || otherValue.length !== 32 || equalBytes(otherKey, ueKey)) return false;
      // The other leaf must sit on ue_key's path: same first `depth` bits.
      for (let i = 0; i < depth; i++) if (keyBit(otherKey, i) !== keyBit(ueKey, i)) return false;
      h = smtLeafHash(otherKey, otherValue);
    }
    let j = siblings.length - 1;
    for (let i = depth - 1; i >= 0; i--) {
      const sib = keyBit(bitmap, i) === 1 ? (siblings[j--] as Uint8Array) : SMT_EMPTY;
      h = keyBit(ueKey, i) === 1 ? smtNodeHash(sib, h) : smtNodeHash(h, sib);
    }
    return equalBytes(h, stateRoot);
  } catch {
    // a getter or proxy in attacker-shaped input: not a valid proof
    return false;
  }
}

/**
 * Checks that `leaf` is the latest version for `ueKey` under `stateRoot`: throws INVALID_PROOF
 * when the proof is malformed, does not verify or is for another key, NOT_LATEST when it
 * proves another value or absence.
 */
export function assertLatest(proof: LatestProof, stateRoot: Uint8Array, ueKey: Uint8Array, leaf: Uint8Array): void {
  if (!verifyLatestProof(proof, stateRoot)) fail('INVALID_PROOF', 'latest-version proof does not verify');
  if (!equalBytes(proof.ueKey, ueKey)) fail('INVALID_PROOF', 'latest-version proof is for another UE key');
  if (proof.value.length === 0) fail('NOT_LATEST', 'the UE key has no version in this state');
  if (!equalBytes(proof.value, leaf)) fail('NOT_LATEST', 'a newer version of this UE endorsement exists');
}
