/**
 * @module records
 * Signed UE data records [VER-1]: the record hash that links a UE's chain, batch signing over
 * an RFC 9162 Merkle root, and one pure verifier for both modes, shared by the UE SDK (which
 * builds batches), the gateway and consumers (which verify them).
 *
 * Single mode: the UE signs `PAE("divs/record", body)`.
 * Batch mode: the UE builds the RFC 9162 tree whose items are the batch's record hashes (in
 * order; leaves `SHA-256(0x00 || SHA-256(body))`), signs `PAE("divs/record-batch",
 * root || u64be(size))` once, and each record carries its {@link BatchProof} (index, size,
 * inclusion path, root) with that one signature. Items are the record hashes rather than the
 * bodies because every verifier computes the record hash anyway (it links the chain): a body is
 * hashed once, not twice, and the tree has the shape of the dataset commitment (a tree over
 * record hashes), so one proof format serves both.
 *
 * Everything a verifier is given is attacker-controlled: {@link verifyRecordSignature} answers
 * `false` on any malformed input and never throws.
 */
import type { KeyObject } from 'node:crypto';
import { RecordBody, type BatchProof, type SignedRecord } from '../../proto/gen/divs/v1/common.ts';
import { Domain, concat, pae, sha256, u64be } from './bytes.ts';
import { fail } from './errors.ts';
import { HASH_LENGTH, batchPaths, leafHash, verifyInclusion } from './merkle.ts';
import { nodeVerify, type Suite } from './suites.ts';

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

// ---------------------------------------------------------------- batch trees (RFC 9162, merkle.ts)

/** RFC 9162 leaf hash of one batch body: SHA-256(0x00 || record hash), record hash = SHA-256(body). */
export function batchLeafHash(body: Uint8Array): Uint8Array {
  return leafHash(recordHash(body));
}

/** A batch ready to sign: its root and, per body, the inclusion path (bottom-up). */
export interface BuiltBatch {
  root: Uint8Array;
  size: number;
  paths: Uint8Array[][];
}

/**
 * Builds the RFC 9162 tree over the record hashes of batch bodies (in order). The UE signs
 * {@link batchStatement}(root, size) under `Domain.recordBatch`.
 */
export function buildBatch(bodies: readonly Uint8Array[]): BuiltBatch {
  if (!Array.isArray(bodies) || bodies.length === 0) fail('INVALID_ARGUMENT', 'batch: at least one record body is required');
  if (bodies.length > MAX_BATCH_SIZE) fail('BATCH_TOO_LARGE', `batch: at most ${MAX_BATCH_SIZE} records`);
  bodies.forEach((b, i) => {
    if (!(b instanceof Uint8Array)) fail('INVALID_ARGUMENT', `batch[${i}]: record body must be bytes`);
  });
  const { root, paths } = batchPaths(bodies.map(recordHash));
  return { root, size: bodies.length, paths };
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
    return verifyInclusion(batchLeafHash(body), proof.index, proof.size, proof.path, proof.root);
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
