/**
 * @module records
 * Signed UE data records [VER-1]: the record hash that links a UE's chain, batch signing over
 * an RFC 9162 Merkle root, and one pure verifier for both modes, shared by the UE SDK (which
 * builds batches), the gateway and consumers (which verify them).
 *
 * Single mode: the UE signs `PAE("divs/record", body)`.
 * Batch mode: the UE builds the RFC 9162 tree over leaves `SHA-256(0x00 || body)` of the batch
 * bodies (in order), signs `PAE("divs/record-batch", root || u64be(size))` once, and each record
 * carries its {@link BatchProof} (index, size, inclusion path, root) with that one signature.
 *
 * Everything a verifier is given is attacker-controlled: {@link verifyRecordSignature} answers
 * `false` on any malformed input and never throws.
 */
import type { KeyObject } from 'node:crypto';
import { RecordBody, type BatchProof, type SignedRecord } from '../../proto/gen/divs/v1/common.ts';
import { Domain, concat, equalBytes, pae, sha256, u64be } from './bytes.ts';
import { fail } from './errors.ts';
import { nodeVerify, type Suite } from './suites.ts';

/** Length of every hash in records and batch proofs (SHA-256). */
export const HASH_LENGTH = 32;

/** `previous_hash` of a UE's first record (sequence 1): 32 zero bytes. */
export const GENESIS_PREVIOUS_HASH: Uint8Array = new Uint8Array(HASH_LENGTH);

/** Largest batch a verifier accepts: 2^32 leaves (an inclusion path of at most 32 hashes). */
export const MAX_BATCH_SIZE = 2 ** 32;

/**
 * Hash that chains a UE's records: SHA-256 over the exact RecordBody bytes (never over the
 * signature, so signature malleability cannot fork a chain).
 */
export function recordHash(body: Uint8Array): Uint8Array {
  return sha256(body);
}

/** Decodes RecordBody bytes; MALFORMED_MESSAGE when they do not decode. */
export function decodeRecordBody(body: Uint8Array): RecordBody {
  if (!(body instanceof Uint8Array) || body.length === 0) fail('MALFORMED_MESSAGE', 'record.body: empty');
  try {
    return RecordBody.decode(body);
  } catch (e) {
    // attacker-controlled bytes: any decoder failure is the sender's fault
    fail('MALFORMED_MESSAGE', 'record.body does not decode as RecordBody', e);
  }
}

// ---------------------------------------------------------------- RFC 9162 helper
// TODO(lead): replace this private helper with protocol/src/merkle.ts (RFC 9162) once it lands:
// batchLeafHash -> its leaf hash, merkleBuild -> its root + inclusion paths, inclusionRoot ->
// its inclusion-proof verifier. The hashing below is exactly RFC 9162 section 2.1.

const LEAF_PREFIX = new Uint8Array([0x00]);
const NODE_PREFIX = new Uint8Array([0x01]);

/** RFC 9162 leaf hash of one batch body: SHA-256(0x00 || body). */
export function batchLeafHash(body: Uint8Array): Uint8Array {
  return sha256(LEAF_PREFIX, body);
}

function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(NODE_PREFIX, left, right);
}

/** Largest power of two strictly below n (n >= 2), as RFC 9162 splits a tree. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * Root of leaves[lo, hi) and, for every leaf in that range, its audit path bottom-up.
 * Recursion depth is log2(n); each level appends one sibling to every leaf path below it.
 */
function merkleBuild(leaves: Uint8Array[], lo: number, hi: number, paths: Uint8Array[][]): Uint8Array {
  if (hi - lo === 1) return leaves[lo] as Uint8Array;
  const mid = lo + splitPoint(hi - lo);
  const left = merkleBuild(leaves, lo, mid, paths);
  const right = merkleBuild(leaves, mid, hi, paths);
  for (let i = lo; i < mid; i++) (paths[i] as Uint8Array[]).push(right);
  for (let i = mid; i < hi; i++) (paths[i] as Uint8Array[]).push(left);
  return nodeHash(left, right);
}

/**
 * Root implied by an inclusion path (RFC 9162 section 2.1.3.2), or null when the path cannot
 * be one for (index, size): wrong length or index out of range. Plain arithmetic instead of
 * bit operators, because JS bit operators truncate to 32 bits.
 */
function inclusionRoot(index: number, size: number, leaf: Uint8Array, path: readonly Uint8Array[]): Uint8Array | null {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return null;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        // a right-edge node without a sibling at this level: climb until it is a right child
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
  return sn === 0 ? r : null;
}

/** A batch ready to sign: its root and, per body, the inclusion path (bottom-up). */
export interface BuiltBatch {
  root: Uint8Array;
  size: number;
  paths: Uint8Array[][];
}

/**
 * Builds the RFC 9162 tree over batch bodies (in order). The UE signs
 * {@link batchStatement}(root, size) under `Domain.recordBatch`.
 */
export function buildBatch(bodies: readonly Uint8Array[]): BuiltBatch {
  if (!Array.isArray(bodies) || bodies.length === 0) fail('INVALID_ARGUMENT', 'batch: at least one record body is required');
  if (bodies.length > MAX_BATCH_SIZE) fail('BATCH_TOO_LARGE', `batch: at most ${MAX_BATCH_SIZE} records`);
  const leaves = bodies.map((b, i) => {
    if (!(b instanceof Uint8Array)) fail('INVALID_ARGUMENT', `batch[${i}]: record body must be bytes`);
    return batchLeafHash(b);
  });
  const paths: Uint8Array[][] = leaves.map(() => []);
  const root = merkleBuild(leaves, 0, leaves.length, paths);
  return { root, size: leaves.length, paths };
}

/** The bytes a batch signature covers (inside PAE): `root || u64be(size)`. */
export function batchStatement(root: Uint8Array, size: number): Uint8Array {
  return concat(root, u64be(size));
}

/** Whether a proof is structurally sound: sizes, index range, 32-byte hashes. */
function wellFormedProof(b: BatchProof): boolean {
  return (
    typeof b === 'object' &&
    b !== null &&
    Number.isSafeInteger(b.size) &&
    b.size >= 1 &&
    b.size <= MAX_BATCH_SIZE &&
    Number.isSafeInteger(b.index) &&
    b.index >= 0 &&
    b.index < b.size &&
    b.root instanceof Uint8Array &&
    b.root.length === HASH_LENGTH &&
    Array.isArray(b.path) &&
    // a tree of at most 2^32 leaves has paths of at most 32 hashes
    b.path.length <= 32 &&
    b.path.every((h) => h instanceof Uint8Array && h.length === HASH_LENGTH)
  );
}

/**
 * Checks that `body` is leaf `proof.index` of a batch of `proof.size` with root `proof.root`.
 * Never throws: malformed proofs answer false.
 */
export function verifyBatchInclusion(body: Uint8Array, proof: BatchProof): boolean {
  try {
    if (!(body instanceof Uint8Array) || !wellFormedProof(proof)) return false;
    const root = inclusionRoot(proof.index, proof.size, batchLeafHash(body), proof.path);
    return root !== null && equalBytes(root, proof.root);
  } catch {
    // hostile input must never crash a verifier
    return false;
  }
}

/**
 * Verifies a record's UE signature with OpenSSL, in single or batch mode [VER-1] [VER-3].
 * Batch mode checks the inclusion path against the root, then the signature over
 * `root || u64be(size)`. Answers false on anything malformed; never throws.
 * It checks only the signature: chain position, endorsement and signing time are the
 * verifier's own checks.
 */
export function verifyRecordSignature(record: SignedRecord, suite: Suite, key: KeyObject): boolean {
  try {
    if (typeof record !== 'object' || record === null) return false;
    const { body, signature, batch } = record;
    if (!(body instanceof Uint8Array) || body.length === 0) return false;
    if (!(signature instanceof Uint8Array) || signature.length === 0) return false;
    if (batch === undefined || batch === null) return nodeVerify(suite, key, pae(Domain.record, body), signature);
    if (!verifyBatchInclusion(body, batch)) return false;
    return nodeVerify(suite, key, pae(Domain.recordBatch, batchStatement(batch.root, batch.size)), signature);
  } catch {
    // nodeVerify never throws; anything thrown here comes from hostile input (e.g. a getter)
    return false;
  }
}
