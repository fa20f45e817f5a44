/**
 * @module verify/commitment
 * The dataset commitment of a verification report, pure: the RFC 9162 Merkle root over the
 * record hashes of the valid records, each record hash taken as one leaf item
 * (`leaf = SHA-256(0x00 || record hash)`), in dataset order. It equals
 * `protocol/src/merkle.ts` `batchRoot(recordHashes)` (EMPTY_ROOT for none), so anyone holding
 * the records can recompute it; here it is computed level by level with the multi-buffer hasher.
 */
import { EMPTY_ROOT } from '../../../protocol/src/merkle.ts';
import { Sha256Many } from '../../../protocol/src/sha256x4.ts';

/**
 * Root over `recordHashes` (concatenated 32-byte hashes). Bottom-up pairing with the odd node
 * promoted gives the RFC 9162 tree (splits at the largest power of two below n).
 */
export function commitmentRoot(recordHashes: Uint8Array, hasher: Sha256Many = Sha256Many.create()): Uint8Array {
  if (recordHashes.length % 32 !== 0) throw new RangeError('commitment: record hashes must be 32 bytes each');
  const n = recordHashes.length / 32;
  if (n === 0) return EMPTY_ROOT.slice();
  hasher.reset();
  const items = hasher.write(recordHashes);
  let level = new Int32Array(n);
  for (let i = 0; i < n; i++) level[i] = hasher.job(0x00, items + 32 * i, 32);
  hasher.run();
  while (level.length > 1) {
    const next = new Int32Array(Math.ceil(level.length / 2));
    for (let k = 0; k + 1 < level.length; k += 2) next[k / 2] = hasher.job(0x01, level[k] as number, 32, level[k + 1] as number, 32);
    if (level.length % 2 === 1) next[next.length - 1] = level[level.length - 1] as number;
    hasher.run();
    level = next;
  }
  const root = hasher.digest(level[0] as number);
  hasher.reset();
  return root;
}
