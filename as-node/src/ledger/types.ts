/**
 * @module ledger/types
 * The ledger interface every blockchain backend implements (local SQLite today, an
 * etcd-Raft-ordered consortium next). It stores exact transaction bytes in hash-linked blocks,
 * keeps an RFC 9162 Merkle tree over all transactions and a sparse Merkle tree mapping each UE
 * key to the leaf hash of its latest endorsement, and answers with proofs against signed
 * checkpoints. The endorsement logic above it (the BC-6 contract API) never touches storage.
 */
import type {
  ConsistencyProof,
  InclusionProof,
  LatestProof,
  SignedCheckpoint,
} from '../../../proto/gen/divs/v1/common.ts';

/** One transaction as stored. */
export interface LedgerEntry {
  /** Serial number in the ledger, from 0. */
  txId: number;
  /** RFC 9162 leaf hash: SHA-256(0x00 || tx). */
  leafHash: Uint8Array;
  /** Exact LedgerTx bytes. */
  tx: Uint8Array;
  blockHeight: number;
}

/** A transaction to append. */
export interface AppendItem {
  /** Exact LedgerTx bytes. */
  tx: Uint8Array;
  /** For endorsements: the UE key (32 bytes) whose latest version this tx becomes. */
  ueKey?: Uint8Array;
}

export interface StoredBlock {
  /** Exact BlockHeader bytes; block hash = SHA-256(header). */
  header: Uint8Array;
  hash: Uint8Array;
  height: number;
  txs: Uint8Array[];
}

export interface LedgerInfo {
  ledgerId: string;
  /** Number of blocks; the next block's height. */
  height: number;
  /** Number of transactions (Merkle tree size). */
  size: number;
  rootHash: Uint8Array;
  stateRoot: Uint8Array;
}

export interface Ledger {
  readonly ledgerId: string;
  info(): LedgerInfo;
  /**
   * Appends items as one block, atomically (all or nothing), and signs a new checkpoint. A
   * block holds at most one version per UE key (so its state root commits to every tx's UE):
   * when a key repeats within `items`, the append is cut into consecutive blocks before each
   * repeat — still one atomic write and one checkpoint, entries in order.
   */
  append(items: AppendItem[]): Promise<LedgerEntry[]>;
  get(txId: number): LedgerEntry | undefined;
  /** Entries whose AppendItem named this UE key, oldest first. */
  history(ueKey: Uint8Array): LedgerEntry[];
  latest(ueKey: Uint8Array): LedgerEntry | undefined;
  /** The newest signed checkpoint (covers every appended tx). */
  checkpoint(): SignedCheckpoint;
  /** Inclusion proof of txId in the tree of the given size (default: current size). */
  inclusionProof(txId: number, treeSize?: number): InclusionProof;
  consistencyProof(oldSize: number, newSize: number): ConsistencyProof;
  /** Proof of the UE key's latest leaf (or absence) against the current checkpoint's state root. */
  latestProof(ueKey: Uint8Array): LatestProof;
  blocks(fromHeight: number, max: number): StoredBlock[];
  close(): void;
}
