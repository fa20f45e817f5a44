/**
 * @module ledger/consortium/state-root
 * The state root after a block, computed from latest-version proofs alone: for a
 * `LedgerState` (block.ts) that cannot stage the update on its own tree (the consortium's local
 * store can, and then its staged update is reused by the append — see `planBlock`).
 *
 * A validator must know a block's state root before the block touches its store, but the
 * store's sparse Merkle tree is private to it. Every tree path a block changes is covered by
 * the latest-version proofs of the block's UE keys against the current root: from them this
 * module rebuilds the part of the tree the update reads (branches along each path, with the
 * untouched siblings as bare hashes) and lets {@link SparseMerkleTree.stage} compute the new
 * root exactly as the store will. Each rebuilt node is hashed bottom-up from its proof and the
 * tree checks every node it reads against its parent, so proofs that do not all fold to the
 * current root are LEDGER_TAMPERED, never a wrong answer.
 */
import type { LatestProof } from '../../../../proto/gen/divs/v1/common.ts';
import { equalBytes } from '../../../../protocol/src/bytes.ts';
import { fail } from '../../../../protocol/src/errors.ts';
import { MemorySmtStore, SMT_EMPTY, SparseMerkleTree, keyBit, smtBranch, smtLeaf, smtPath, type SmtRef, type SmtStoredNode } from '../../../../protocol/src/smt.ts';

const VERSION = 0;

/**
 * Adds the nodes along one proof's path, bottom-up. Returns the ref of the path's top (the
 * root), or `joined` when the path reached a node an earlier proof already placed (same
 * position, same hash: everything above it is that proof's, already checked against the
 * root) — proofs of a block share their top levels, so each is hashed once.
 */
function addPath(proof: LatestProof, placed: Map<string, Uint8Array>, nodes: SmtStoredNode[]): SmtRef | null | 'joined' {
  const key = proof.ueKey;
  if (!(key instanceof Uint8Array) || key.length !== 32 || !(proof.bitmap instanceof Uint8Array) || proof.bitmap.length !== 32) {
    fail('LEDGER_TAMPERED', 'state proof: malformed key or bitmap');
  }
  let depth = 0;
  let count = 0;
  for (let i = 0; i < 256; i++) {
    if (keyBit(proof.bitmap, i) === 1) {
      depth = i + 1;
      count++;
    }
  }
  if (count !== proof.siblings.length) fail('LEDGER_TAMPERED', 'state proof: sibling count does not match the bitmap');
  /** Places a node; true when an identical one was there already. */
  const place = (path: string, node: SmtStoredNode['node']): boolean => {
    const there = placed.get(path);
    if (there !== undefined) {
      if (!equalBytes(there, node.hash)) fail('LEDGER_TAMPERED', 'state proofs disagree about a node');
      return true;
    }
    placed.set(path, node.hash);
    nodes.push({ version: VERSION, path, node });
    return false;
  };
  // the node at the end of the path: the key's leaf, another key's leaf, or nothing
  let ref: SmtRef | null = null;
  const terminal = proof.value.length === 32 ? smtLeaf(key, proof.value) : proof.otherKey.length === 32 && proof.otherValue.length === 32 ? smtLeaf(proof.otherKey, proof.otherValue) : undefined;
  if (terminal) {
    if (place(smtPath(key, depth), terminal)) return 'joined';
    ref = { version: VERSION, hash: terminal.hash };
  }
  let j = proof.siblings.length - 1;
  for (let d = depth - 1; d >= 0; d--) {
    let sib: SmtRef | null = null;
    if (keyBit(proof.bitmap, d) === 1) {
      const h = proof.siblings[j--] as Uint8Array;
      if (!(h instanceof Uint8Array) || h.length !== 32) fail('LEDGER_TAMPERED', 'state proof: malformed sibling');
      sib = { version: VERSION, hash: h };
    }
    const branch = keyBit(key, d) === 1 ? smtBranch(sib, ref) : smtBranch(ref, sib);
    if (place(smtPath(key, d), branch)) return 'joined';
    ref = { version: VERSION, hash: branch.hash };
  }
  return ref;
}

/**
 * The state root after setting `updates` (UE key → latest leaf hash) on the tree whose root is
 * `currentRoot`, given a latest-version proof of every updated key against `currentRoot`.
 * Throws LEDGER_TAMPERED if the proofs are inconsistent with `currentRoot`.
 *
 * @example
 * ```ts
 * const proofs = keys.map((k) => store.latestProof(k));
 * const root = nextStateRoot(store.info().stateRoot, proofs, keys.map((k, i) => [k, leaves[i]]));
 * ```
 */
export function nextStateRoot(currentRoot: Uint8Array, proofs: readonly LatestProof[], updates: ReadonlyArray<readonly [Uint8Array, Uint8Array]>): Uint8Array {
  if (updates.length === 0) return currentRoot;
  const store = new MemorySmtStore();
  const nodes: SmtStoredNode[] = [];
  const placed = new Map<string, Uint8Array>();
  const empty = equalBytes(currentRoot, SMT_EMPTY);
  for (const p of proofs) {
    const top = addPath(p, placed, nodes);
    if (top === 'joined') continue;
    if (!equalBytes(top?.hash ?? SMT_EMPTY, currentRoot)) fail('LEDGER_TAMPERED', 'state proof does not fold to the current state root');
  }
  store.put(nodes);
  const tree = new SparseMerkleTree(store, empty ? null : { version: VERSION, hash: currentRoot });
  return tree.stage(updates, VERSION + 1).root?.hash ?? SMT_EMPTY;
}
