/**
 * @module ledger/local
 * The local ledger backend [FW-BC] [FW-DM]: one AS node, one SQLite file (better-sqlite3, WAL,
 * synchronous=FULL — see sqlite.ts for why). Tamper-evident [GEN-5] and append-only [GEN-6].
 *
 * What is stored (tables):
 * - `blocks(height, hash, header, smt_version)`: exact BlockHeader bytes; hash = SHA-256(header);
 *   `smt_version` points at the sparse Merkle tree root after the block;
 * - `txs(tx_id, block_height, leaf_hash, ue_key, prev_tx_id, tx)`: exact LedgerTx bytes and
 *   RFC 9162 leaf hash; `ue_key` names the UE whose latest version the tx became and
 *   `prev_tx_id` that UE's previous version, so history is a walk back from the latest (whose
 *   tx ID the state tree's leaf keeps). No index keyed by UE: random-key index inserts were the
 *   part of an append whose cost grew with the ledger; every write here is sequential;
 * - `tree_nodes(last_leaf, level, hash)`: every complete subtree of the RFC 9162 tree (level ≥ 1;
 *   level 0 is `txs.leaf_hash`), keyed by its last leaf so rows are written in order; any
 *   inclusion or consistency proof costs O(log n) lookups, nothing is rehashed;
 * - `smt_nodes(version, path, nodes)`: the versioned, immutable sparse Merkle tree nodes
 *   (protocol/src/smt.ts), version = block height so writes are sequential, grouped in chunks
 *   of 4 levels (one row per chunk and version: ~4x fewer rows than one per node);
 * - `checkpoints(tree_size, note)`: the signed checkpoint made after each append;
 * - `meta`: schema version and ledger ID.
 * Triggers refuse UPDATE and DELETE on all of them, so not even a bug in this process can
 * rewrite history [GEN-6]; nothing in the API can either.
 *
 * On open, the whole ledger is re-verified before anything is served [GEN-5]: block hash links,
 * header encodings, tx leaf hashes, tx_root after every block (recomputed incrementally, and
 * every stored tree node compared), the state root after every block (the SMT is replayed from
 * the txs' UE keys, which also checks every previous-version pointer), each checkpoint body
 * against the state at its size, and the signature of the latest checkpoint. Any difference is
 * LEDGER_TAMPERED naming the block, tx or node. Stored SMT nodes are not re-compared at open
 * (it would double the time): every node read is checked against its parent's hash down from
 * the verified state root, so an altered one fails with LEDGER_TAMPERED when read and can
 * never produce a wrong answer. Reads re-check tx leaf hashes and self-verify proofs against
 * the current root too. A consistent rewrite of the whole file would need the AS key to
 * re-sign the latest checkpoint; truncation back to an older, validly signed state needs an
 * outside witness to notice (cosigned checkpoints, RP-dd).
 *
 * Appends are serialized by an internal promise queue. Each append writes its block(s), txs,
 * tree and SMT nodes and checkpoint in ONE SQLite transaction: all or nothing.
 */
import { createHash } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { BlockHeader, type ConsistencyProof, type InclusionProof, type LatestProof, type SignedCheckpoint } from '../../../proto/gen/divs/v1/common.ts';
import { equalBytes } from '../../../protocol/src/bytes.ts';
import { DivsError, fail } from '../../../protocol/src/errors.ts';
import { MerkleFrontier, consistencyProof, inclusionProof, leafHash, verifyConsistency, verifyInclusion, type NewSubtree, type SubtreeHash } from '../../../protocol/src/merkle.ts';
import {
  SMT_EMPTY,
  SmtOverlay,
  SmtReplay,
  SparseMerkleTree,
  decodeSmtChunk,
  encodeSmtChunks,
  smtChunkPath,
  smtPathBytes,
  smtPathDepth,
  type SmtBatch,
  type SmtNode,
  type SmtNodeStore,
  type SmtPath,
  type SmtRef,
  type SmtStoredNode,
} from '../../../protocol/src/smt.ts';
import { checkpointSignedBy, formatCheckpoint, isValidKeyName, isValidOrigin, parseCheckpoint, signCheckpoint, type CheckpointBody } from '../../../protocol/src/checkpoint.ts';
import { importPublicKey, type Signer, type Suite } from '../../../protocol/src/suites.ts';
import type { AppendItem, Ledger, LedgerEntry, LedgerInfo, StoredBlock } from './types.ts';
import { openDatabase, prepare, sqliteError, type Db, type Stmt } from './sqlite.ts';

/** Schema version written in `meta`. */
const SCHEMA_VERSION = '1';
/** previous_block_hash of block 0. */
const GENESIS_PREV = new Uint8Array(32);
/** Defaults for the append limits. */
const DEFAULT_MAX_ITEMS = 10_000;
const DEFAULT_MAX_TX_BYTES = 4 * 1024 * 1024;
const MAX_APPEND_BYTES = 256 * 1024 * 1024;
/** Inclusion proofs kept per ledger size (each ~1 KiB at a million transactions). */
const PROOF_CACHE_ENTRIES = 16_384;
/**
 * Default number of state-tree nodes cached below the linked top (~350 bytes each, so ~90 MB):
 * the whole tree of ~100k UEs; beyond that the least recently cached nodes are read back from
 * SQLite when needed.
 */
const DEFAULT_SMT_CACHE_NODES = 1 << 18;
/**
 * The state tree's top levels stay linked in memory (nodes shallower than this depth: at most
 * 2^17 positions, ~40 MB): every update and proof walks them, so they never go through the
 * cache or SQLite.
 */
const SMT_LINK_DEPTH = 16;

const TABLES = ['meta', 'blocks', 'txs', 'tree_nodes', 'smt_nodes', 'checkpoints'] as const;

const SCHEMA = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE blocks (height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL, smt_version INTEGER);
CREATE TABLE txs (tx_id INTEGER PRIMARY KEY, block_height INTEGER NOT NULL, leaf_hash BLOB NOT NULL, ue_key BLOB, prev_tx_id INTEGER, tx BLOB NOT NULL);
CREATE TABLE tree_nodes (last_leaf INTEGER NOT NULL, level INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (last_leaf, level)) WITHOUT ROWID;
CREATE TABLE smt_nodes (version INTEGER NOT NULL, path BLOB NOT NULL, nodes BLOB NOT NULL, PRIMARY KEY (version, path)) WITHOUT ROWID;
CREATE TABLE checkpoints (tree_size INTEGER PRIMARY KEY, note TEXT NOT NULL);
${TABLES.map(
  (t) => `CREATE TRIGGER ${t}_no_update BEFORE UPDATE ON ${t} BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ${t}_no_delete BEFORE DELETE ON ${t} BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;`,
).join('\n')}
`;

/** A key (besides the current signer) whose signature on the stored latest checkpoint is accepted at open. */
export interface TrustedCheckpointKey {
  name: string;
  suite: Suite;
  /** Raw public key (SEC1 point or Ed25519 bytes). */
  publicKey: Uint8Array;
}

export interface LocalLedgerOptions {
  /** SQLite file; created with the schema when missing. */
  path: string;
  /** Ledger (blockchain instance) ID: the checkpoint origin; no spaces or '+'. */
  ledgerId: string;
  /** The AS key that signs checkpoints. */
  signer: Signer;
  /** Key name in checkpoint signature lines (the AS name; no spaces or '+'). */
  signerName: string;
  /** AS certificate chain (DER, leaf first), returned with every checkpoint. */
  certChain: Uint8Array[];
  /**
   * Earlier AS keys (key rotation): the stored latest checkpoint may be signed by one of them.
   * It is then re-signed in memory with `signer`; the next append stores a new one.
   */
  trustedKeys?: TrustedCheckpointKey[];
  /** Clock for block timestamps (ms). Default Date.now. */
  now?: () => number;
  /** Most items per append (BATCH_TOO_LARGE beyond). Default 10,000. */
  maxItems?: number;
  /** Largest tx in bytes (MESSAGE_TOO_LARGE beyond). Default 4 MiB. */
  maxTxBytes?: number;
  /** State-tree nodes cached in memory below the linked top levels. Default 262,144. */
  smtCacheNodes?: number;
}

/** A staged next-block update of the sparse Merkle tree (see LocalLedger.stageStateRoot). */
interface StagedState {
  /** The state it was staged on. */
  state: State;
  updates: ReadonlyArray<readonly [Uint8Array, Uint8Array, number]>;
  overlay: SmtOverlay;
  smt: SparseMerkleTree;
  batch: SmtBatch;
}

/** Same keys, leaf hashes and tx IDs, in the same order. */
function sameUpdates(a: ReadonlyArray<readonly [Uint8Array, Uint8Array, number]>, b: ReadonlyArray<readonly [Uint8Array, Uint8Array, number]>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as readonly [Uint8Array, Uint8Array, number];
    const y = b[i] as readonly [Uint8Array, Uint8Array, number];
    if (x[2] !== y[2] || !equalBytes(x[0], y[0]) || !equalBytes(x[1], y[1])) return false;
  }
  return true;
}

interface State {
  /** Number of blocks. */
  height: number;
  /** Number of txs. */
  size: number;
  frontier: MerkleFrontier;
  rootHash: Uint8Array;
  lastBlockHash: Uint8Array;
  lastTimestamp: number;
  smtRoot: SmtRef | null;
  note: string;
}

interface TxRow {
  tx_id: number;
  block_height: number;
  leaf_hash: Uint8Array;
  ue_key: Uint8Array | null;
  prev_tx_id: number | null;
  tx: Uint8Array;
}

interface BlockRow {
  height: number;
  hash: Uint8Array;
  header: Uint8Array;
  smt_version: number | null;
}

interface Statements {
  begin: Stmt;
  commit: Stmt;
  rollback: Stmt;
  insertTx: Stmt;
  insertTree: Stmt;
  insertSmt: Stmt;
  insertBlock: Stmt;
  insertCheckpoint: Stmt;
  getTx: Stmt;
  txsFrom: Stmt;
  leafHashOf: Stmt;
  treeNode: Stmt;
  smtChunk: Stmt;
  blocksFrom: Stmt;
  treeFrom: Stmt;
  checkpointsFrom: Stmt;
  counts: Stmt;
}

function prepareStatements(db: Db): Statements {
  const p = (sql: string): Stmt => prepare(db, sql);
  return {
    begin: p('BEGIN IMMEDIATE'),
    commit: p('COMMIT'),
    rollback: p('ROLLBACK'),
    insertTx: p('INSERT INTO txs (tx_id, block_height, leaf_hash, ue_key, prev_tx_id, tx) VALUES (?, ?, ?, ?, ?, ?)'),
    insertTree: p('INSERT INTO tree_nodes (last_leaf, level, hash) VALUES (?, ?, ?)'),
    insertSmt: p('INSERT INTO smt_nodes (version, path, nodes) VALUES (?, ?, ?)'),
    insertBlock: p('INSERT INTO blocks (height, hash, header, smt_version) VALUES (?, ?, ?, ?)'),
    insertCheckpoint: p('INSERT INTO checkpoints (tree_size, note) VALUES (?, ?)'),
    getTx: p('SELECT tx_id, block_height, leaf_hash, ue_key, prev_tx_id, tx FROM txs WHERE tx_id = ?'),
    txsFrom: p('SELECT tx_id, block_height, leaf_hash, ue_key, prev_tx_id, tx FROM txs WHERE tx_id > ? ORDER BY tx_id LIMIT ?'),
    leafHashOf: p('SELECT leaf_hash FROM txs WHERE tx_id = ?').pluck(),
    treeNode: p('SELECT hash FROM tree_nodes WHERE last_leaf = ? AND level = ?').pluck(),
    smtChunk: p('SELECT nodes FROM smt_nodes WHERE version = ? AND path = ?').pluck(),
    blocksFrom: p('SELECT height, hash, header, smt_version FROM blocks WHERE height > ? ORDER BY height LIMIT ?'),
    treeFrom: p('SELECT last_leaf, level, hash FROM tree_nodes WHERE (last_leaf, level) > (?, ?) ORDER BY last_leaf, level LIMIT ?'),
    checkpointsFrom: p('SELECT tree_size, note FROM checkpoints WHERE tree_size > ? ORDER BY tree_size LIMIT ?'),
    counts: p('SELECT (SELECT count(*) FROM blocks) AS blocks, (SELECT count(*) FROM txs) AS txs, (SELECT count(*) FROM tree_nodes) AS tree'),
  };
}

const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest());
const copy = (b: Uint8Array): Uint8Array => new Uint8Array(b);
const isBlob = (b: unknown, len?: number): b is Uint8Array => b instanceof Uint8Array && (len === undefined || b.length === len);
const hexKey = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
function tampered(msg: string): never {
  fail('LEDGER_TAMPERED', `ledger altered on disk: ${msg}`);
}

/** Index of the last leaf a complete subtree covers: its storage key. */
const lastLeafOf = (level: number, index: number): number => (index + 1) * 2 ** level - 1;

/** Reads rows in pages of `limit` through a keyset query, as a generator. */
function* paged<R>(fetch: (after: R | undefined) => R[]): Generator<R> {
  let after: R | undefined;
  for (;;) {
    const rows = fetch(after);
    if (rows.length === 0) return;
    yield* rows;
    after = rows[rows.length - 1];
  }
}

/**
 * SMT nodes in SQLite (chunked, see smt.ts) with a bounded in-memory cache of the current
 * tree. Writes happen inside the ledger's append transaction; nodes enter the cache only after
 * it commits. A chunk that does not decode is LEDGER_TAMPERED; a node that decodes but was
 * altered is caught by the tree, which checks every node read against its parent's hash.
 */
class SqliteSmtStore implements SmtNodeStore {
  readonly #s: Statements;
  readonly #max: number;
  // position -> newest node there: the live tree (older versions are only read for history)
  readonly #cache = new Map<SmtPath, SmtStoredNode>();

  constructor(s: Statements, maxCached: number) {
    this.#s = s;
    this.#max = maxCached;
  }

  get(version: number, path: SmtPath): SmtNode | undefined {
    const hit = this.#cache.get(path);
    if (hit !== undefined && hit.version === version) return hit.node;
    const chunkPath = smtChunkPath(path);
    const raw: unknown = this.#s.smtChunk.get(version, smtPathBytes(chunkPath));
    if (raw === undefined) return undefined;
    if (!isBlob(raw)) tampered(`state-tree chunk (version ${version}) is not a blob`);
    let nodes: SmtStoredNode[];
    try {
      nodes = decodeSmtChunk({ version, path: chunkPath, bytes: raw });
    } catch {
      tampered(`state-tree chunk (version ${version}) does not decode`);
    }
    const found = nodes.find((n) => n.path === path);
    // cache only what was asked for, and only if it is not older than what is cached there
    if (found !== undefined && (hit === undefined || hit.version < version)) this.#remember(found);
    return found?.node;
  }

  /** Writes rows (call inside the append transaction). */
  put(nodes: readonly SmtStoredNode[]): void {
    for (const c of encodeSmtChunks(nodes)) this.#s.insertSmt.run(c.version, smtPathBytes(c.path), c.bytes);
  }

  /** Caches nodes that are now committed (the live tree's new part below the linked top). */
  committed(nodes: readonly SmtStoredNode[]): void {
    for (const n of nodes) if (smtPathDepth(n.path) >= SMT_LINK_DEPTH) this.#remember(n);
  }

  #remember(n: SmtStoredNode): void {
    if (!this.#cache.has(n.path) && this.#cache.size >= this.#max) {
      // bounded: drop the oldest-inserted eighth (Map iterates in insertion order)
      let drop = Math.max(1, this.#max >> 3);
      for (const key of this.#cache.keys()) {
        this.#cache.delete(key);
        if (--drop === 0) break;
      }
    }
    this.#cache.set(n.path, n);
  }
}

interface CheckedItem {
  tx: Uint8Array;
  ueKey: Uint8Array | undefined;
  /** The caller's leaf hash of `tx`, if it gave one. */
  leaf: Uint8Array | undefined;
}

/** What {@link LocalLedger.append} takes: an {@link AppendItem}, optionally with its leaf hash. */
export interface LocalAppendItem extends AppendItem {
  /** RFC 9162 leaf hash of `tx`, computed by the caller over exactly these bytes (32 bytes). */
  leafHash?: Uint8Array;
}

/**
 * The embedded single-node ledger.
 *
 * @example
 * ```ts
 * const ledger = await LocalLedger.open({ path: 'ledger.db', ledgerId: 'divs-local', signer, signerName: 'as-1', certChain });
 * const [e] = await ledger.append([{ tx, ueKey }]);
 * const proof = ledger.inclusionProof(e.txId); // against ledger.checkpoint()
 * ```
 */
export class LocalLedger implements Ledger {
  readonly ledgerId: string;
  readonly #db: Db;
  readonly #s: Statements;
  readonly #signer: Signer;
  readonly #signerName: string;
  readonly #certChain: Uint8Array[];
  readonly #now: () => number;
  readonly #maxItems: number;
  readonly #maxTxBytes: number;
  readonly #smtStore: SqliteSmtStore;
  readonly #smt: SparseMerkleTree;
  #state: State;
  /**
   * The sparse-Merkle update of the next block as {@link stageStateRoot} computed it (for a
   * validator, before the block reaches {@link append}): the append of exactly those updates on
   * exactly this state applies it instead of computing it again.
   */
  #staged: StagedState | undefined;
  #queue: Promise<void> = Promise.resolve();
  #closed = false;
  /** Inclusion proofs against the current size (cleared when the ledger grows). */
  readonly #proofCache = new Map<number, Uint8Array[]>();
  #proofCacheSize = -1;
  /** Latest-version proofs per UE key against the current state (cleared when the ledger grows). */
  readonly #latestCache = new Map<string, LatestProof>();
  #latestCacheSize = -1;

  private constructor(db: Db, s: Statements, opts: LocalLedgerOptions, state: State) {
    this.ledgerId = opts.ledgerId;
    this.#db = db;
    this.#s = s;
    this.#signer = opts.signer;
    this.#signerName = opts.signerName;
    this.#certChain = opts.certChain.map(copy);
    this.#now = opts.now ?? Date.now;
    this.#maxItems = opts.maxItems ?? DEFAULT_MAX_ITEMS;
    this.#maxTxBytes = opts.maxTxBytes ?? DEFAULT_MAX_TX_BYTES;
    this.#smtStore = new SqliteSmtStore(s, opts.smtCacheNodes ?? DEFAULT_SMT_CACHE_NODES);
    this.#smt = new SparseMerkleTree(this.#smtStore, state.smtRoot, { link: SMT_LINK_DEPTH });
    this.#state = state;
  }

  /**
   * Opens the ledger at `opts.path`, creating it when the file is new, and re-verifies all of
   * it. Throws CONFIG_INVALID (bad options), WRONG_LEDGER (the file holds another ledger),
   * LEDGER_CORRUPT (not a ledger database), UNAVAILABLE (in use by another process) or
   * LEDGER_TAMPERED (altered on disk, naming what).
   */
  static async open(opts: LocalLedgerOptions): Promise<LocalLedger> {
    checkOptions(opts);
    const verifyKey = importPublicKey(opts.signer.suite, opts.signer.publicKey);
    const db = openDatabase(opts.path);
    try {
      const fresh = prepare(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'").pluck().get() === 0;
      if (fresh) {
        const body: CheckpointBody = { origin: opts.ledgerId, size: 0, rootHash: MerkleFrontier.empty().root(), stateRoot: SMT_EMPTY };
        const note = await signCheckpoint(body, opts.signerName, opts.signer);
        try {
          db.exec('BEGIN IMMEDIATE');
          db.exec(SCHEMA);
          const meta = prepare(db, 'INSERT INTO meta (key, value) VALUES (?, ?)');
          meta.run('schema', SCHEMA_VERSION);
          meta.run('ledger_id', opts.ledgerId);
          prepare(db, 'INSERT INTO checkpoints (tree_size, note) VALUES (0, ?)').run(note);
          db.exec('COMMIT');
        } catch (e) {
          if (db.inTransaction) db.exec('ROLLBACK');
          throw sqliteError(e, 'ledger create', 'UNAVAILABLE');
        }
      } else {
        checkSchema(db, opts.ledgerId);
      }
      const s = prepareStatements(db);
      const state = verifyAll(s, opts.ledgerId);
      // The latest checkpoint must carry a valid signature of a key we trust: without the AS
      // key nobody can produce it, so a consistently rewritten file is caught here.
      const keys = [{ name: opts.signerName, suite: opts.signer.suite, key: verifyKey }, ...(opts.trustedKeys ?? []).map((k) => ({ name: k.name, suite: k.suite, key: importPublicKey(k.suite, k.publicKey) as KeyObject }))];
      const signedBy = keys.findIndex((k) => checkpointSignedBy(state.note, k.name, k.suite, k.key));
      if (signedBy < 0) tampered(`the latest checkpoint (size ${state.size}) has no valid signature of a trusted key`);
      if (signedBy > 0) state.note = await signCheckpoint(parseCheckpoint(state.note).text, opts.signerName, opts.signer);
      return new LocalLedger(db, s, opts, state);
    } catch (e) {
      db.close();
      throw e instanceof DivsError ? e : sqliteError(e, 'ledger open', 'LEDGER_CORRUPT');
    }
  }

  info(): LedgerInfo {
    const st = this.#state;
    return { ledgerId: this.ledgerId, height: st.height, size: st.size, rootHash: copy(st.rootHash), stateRoot: copy(this.#smt.rootHash) };
  }

  // ------------------------------------------------------------------ append

  /**
   * The state root after the next block sets `updates` (UE key, leaf hash of its new latest
   * version, tx ID), on this store's own tree (whose root must be `fromRoot`, else
   * LEDGER_DIVERGED), without writing anything. Kept for the append
   * that stores that block: it then applies this update instead of computing it again.
   */
  stageStateRoot(updates: ReadonlyArray<readonly [Uint8Array, Uint8Array, number]>, fromRoot: Uint8Array): Uint8Array {
    this.#open();
    const st = this.#state;
    if (!equalBytes(st.smtRoot?.hash ?? SMT_EMPTY, fromRoot)) fail('LEDGER_DIVERGED', 'the state root to build on is not this store\'s');
    const overlay = new SmtOverlay(this.#smtStore);
    const smt = new SparseMerkleTree(overlay, st.smtRoot, { link: SMT_LINK_DEPTH });
    const batch = smt.stage(updates, st.height);
    const root = batch.root?.hash ?? SMT_EMPTY;
    this.#staged = { state: st, updates: updates.map(([k, v, aux]) => [copy(k), copy(v), aux] as const), overlay, smt, batch };
    return copy(root);
  }

  /**
   * Appends one block of txs (more when a UE key repeats), durably, and answers their entries.
   * An item may carry `leafHash`, the RFC 9162 leaf hash of its `tx` computed by the caller
   * over exactly these bytes (the consortium ledger's validation did): the store then does not
   * hash the tx again. It is trusted as a caller's own computation, not as input — should it
   * ever be wrong, the next read of the tx (every read re-hashes the row) or the next open
   * reports LEDGER_TAMPERED, and nothing is served against it.
   */
  append(items: LocalAppendItem[]): Promise<LedgerEntry[]> {
    let checked: CheckedItem[];
    try {
      this.#open();
      checked = this.#check(items);
    } catch (e) {
      return Promise.reject(e);
    }
    const run = this.#queue.then(() => this.#append(checked));
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  #check(items: LocalAppendItem[]): CheckedItem[] {
    if (!Array.isArray(items) || items.length === 0) fail('INVALID_ARGUMENT', 'append: at least one item is required');
    if (items.length > this.#maxItems) fail('BATCH_TOO_LARGE', `append: at most ${this.#maxItems} items`);
    let total = 0;
    return items.map((it, i) => {
      if (typeof it !== 'object' || it === null) fail('INVALID_ARGUMENT', `append[${i}]: not an item`);
      const { tx, ueKey, leafHash: leaf } = it;
      if (!(tx instanceof Uint8Array) || tx.length === 0) fail('INVALID_ARGUMENT', `append[${i}]: tx must be non-empty bytes`);
      if (tx.length > this.#maxTxBytes) fail('MESSAGE_TOO_LARGE', `append[${i}]: tx larger than ${this.#maxTxBytes} bytes`);
      total += tx.length;
      if (total > MAX_APPEND_BYTES) fail('MESSAGE_TOO_LARGE', 'append: batch too large');
      if (ueKey !== undefined && !(ueKey instanceof Uint8Array && ueKey.length === 32)) fail('INVALID_ARGUMENT', `append[${i}]: ueKey must be 32 bytes`);
      if (leaf !== undefined && !(leaf instanceof Uint8Array && leaf.length === 32)) fail('INVALID_ARGUMENT', `append[${i}]: leafHash must be 32 bytes`);
      // copies: the caller may reuse its buffers once append() returns
      return { tx: copy(tx), ueKey: ueKey === undefined ? undefined : copy(ueKey), leaf: leaf === undefined ? undefined : copy(leaf) };
    });
  }

  async #append(items: CheckedItem[]): Promise<LedgerEntry[]> {
    this.#open();
    const st = this.#state;
    const frontier = st.frontier.clone();
    const staged = this.#staged;
    this.#staged = undefined;
    // a staged update is for this state only (the object changes with every append)
    const reuse = staged !== undefined && staged.state === st ? staged : undefined;
    let overlay = reuse?.overlay ?? new SmtOverlay(this.#smtStore);
    let smt = reuse?.smt ?? new SparseMerkleTree(overlay, st.smtRoot, { link: SMT_LINK_DEPTH });
    const timestamp = Math.max(st.lastTimestamp, Math.trunc(this.#now()));

    // One block, or several when a UE key repeats: a block holds at most one version per UE
    // key, so each block's state root commits to every tx's UE attribution.
    const groups: CheckedItem[][] = [[]];
    let inGroup = new Set<string>();
    for (const it of items) {
      const k = it.ueKey ? hexKey(it.ueKey) : undefined;
      if (k !== undefined && inGroup.has(k)) {
        groups.push([]);
        inGroup = new Set();
      }
      if (k !== undefined) inGroup.add(k);
      (groups[groups.length - 1] as CheckedItem[]).push(it);
    }

    const entries: LedgerEntry[] = [];
    const prevOf: (number | null)[] = [];
    const subtrees: NewSubtree[] = [];
    const blocks: BlockRow[] = [];
    let height = st.height;
    let size = st.size;
    let prev = st.lastBlockHash;
    for (const group of groups) {
      const first = size;
      const updates: [Uint8Array, Uint8Array, number][] = [];
      for (const it of group) {
        const leaf = it.leaf ?? leafHash(it.tx);
        for (const n of frontier.push(leaf)) subtrees.push(n);
        if (it.ueKey) updates.push([it.ueKey, leaf, size]);
        entries.push({ txId: size, leafHash: leaf, tx: it.tx, blockHeight: height });
        size++;
      }
      const previous = new Map<string, number>();
      if (updates.length > 0) {
        let batch: SmtBatch;
        if (reuse !== undefined && groups.length === 1 && sameUpdates(reuse.updates, updates)) {
          // the validator staged exactly this update on exactly this state: apply it as it is
          batch = reuse.batch;
        } else {
          if (reuse !== undefined && smt === reuse.smt) {
            overlay = new SmtOverlay(this.#smtStore);
            smt = new SparseMerkleTree(overlay, st.smtRoot, { link: SMT_LINK_DEPTH });
          }
          batch = smt.stage(updates, height);
        }
        for (const old of batch.replaced) previous.set(hexKey(old.key), old.aux);
        smt.apply(batch);
      }
      for (const it of group) prevOf.push(it.ueKey ? (previous.get(hexKey(it.ueKey)) ?? null) : null);
      const header = BlockHeader.encode({
        ledgerId: this.ledgerId,
        height,
        previousBlockHash: prev,
        firstTxId: first,
        txCount: group.length,
        txRoot: frontier.root(),
        stateRoot: smt.rootHash,
        timestampMs: timestamp,
        proposer: this.#signerName,
      }).finish();
      const hash = sha256(header);
      blocks.push({ height, hash, header, smt_version: smt.root?.version ?? null });
      prev = hash;
      height++;
    }
    const rootHash = frontier.root();
    let note: string;
    try {
      note = await signCheckpoint(
        { origin: this.ledgerId, size, rootHash, stateRoot: smt.rootHash, block: { height: height - 1, hash: prev } },
        this.#signerName,
        this.#signer,
      );
    } catch (e) {
      throw e instanceof DivsError ? e : new DivsError('UNAVAILABLE', 'append: the AS signer failed', { cause: e });
    }
    this.#open();

    const s = this.#s;
    const smtNodes = overlay.nodes();
    try {
      s.begin.run();
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i] as LedgerEntry;
        s.insertTx.run(e.txId, e.blockHeight, e.leafHash, items[i]?.ueKey ?? null, prevOf[i] ?? null, e.tx);
      }
      for (const n of subtrees) s.insertTree.run(lastLeafOf(n.level, n.index), n.level, n.hash);
      this.#smtStore.put(smtNodes);
      for (const b of blocks) s.insertBlock.run(b.height, b.hash, b.header, b.smt_version);
      s.insertCheckpoint.run(size, note);
      s.commit.run();
    } catch (e) {
      if (this.#db.inTransaction) {
        try {
          s.rollback.run();
        } catch {
          // the transaction is gone either way; report the original failure
        }
      }
      throw sqliteError(e, 'append');
    }
    // committed: publish the new state (synchronously, so readers never see half of it)
    this.#smtStore.committed(smtNodes);
    this.#smt.reset(smt.root);
    this.#state = { height, size, frontier, rootHash, lastBlockHash: prev, lastTimestamp: timestamp, smtRoot: smt.root, note };
    // tx bytes are this call's own copies (made in #check) and nothing here keeps them; leaf
    // hashes are shared with the frontier, so those are copied
    return entries.map((e) => ({ txId: e.txId, leafHash: copy(e.leafHash), tx: e.tx, blockHeight: e.blockHeight }));
  }

  // ------------------------------------------------------------------ reads

  #open(): void {
    if (this.#closed) fail('UNAVAILABLE', 'the ledger is closed');
  }

  #entry(row: TxRow): LedgerEntry {
    // re-check the leaf hash on every read: a row altered after open is refused, not served
    const leaf = leafHash(row.tx);
    if (!equalBytes(leaf, row.leaf_hash)) tampered(`tx ${row.tx_id}: bytes do not match the leaf hash`);
    return { txId: row.tx_id, leafHash: leaf, tx: copy(row.tx), blockHeight: row.block_height };
  }

  get(txId: number): LedgerEntry | undefined {
    this.#open();
    if (!Number.isSafeInteger(txId) || txId < 0) fail('INVALID_ARGUMENT', 'txId must be a non-negative integer');
    if (txId >= this.#state.size) return undefined;
    const row = this.#s.getTx.get(txId) as TxRow | undefined;
    if (row === undefined) tampered(`tx ${txId} is missing`);
    return this.#entry(row);
  }

  history(ueKey: Uint8Array): LedgerEntry[] {
    this.#open();
    checkUeKey(ueKey);
    const out: LedgerEntry[] = [];
    const latest = this.#latestRow(ueKey);
    // walk back through prev_tx_id; IDs strictly decrease, so the walk ends
    for (let row = latest; row !== undefined; ) {
      out.push(this.#entry(row));
      const prev = row.prev_tx_id;
      if (prev === null) break;
      if (!Number.isSafeInteger(prev) || prev < 0 || prev >= row.tx_id) tampered(`tx ${row.tx_id}: bad previous-version pointer`);
      const next = this.#s.getTx.get(prev) as TxRow | undefined;
      if (next === undefined || !isBlob(next.ue_key, 32) || !equalBytes(next.ue_key, ueKey)) tampered(`tx ${row.tx_id}: previous version ${prev} is not of this UE`);
      row = next;
    }
    return out.reverse();
  }

  latest(ueKey: Uint8Array): LedgerEntry | undefined {
    this.#open();
    checkUeKey(ueKey);
    const row = this.#latestRow(ueKey);
    return row === undefined ? undefined : this.#entry(row);
  }

  /** The row of the UE key's latest version: the state tree says which, and the row must agree. */
  #latestRow(ueKey: Uint8Array): TxRow | undefined {
    const leaf = this.#smt.lookupLeaf(ueKey);
    if (leaf === undefined) return undefined;
    const row = leaf.aux < this.#state.size ? (this.#s.getTx.get(leaf.aux) as TxRow | undefined) : undefined;
    if (row === undefined || !isBlob(row.leaf_hash, 32) || !equalBytes(row.leaf_hash, leaf.value) || !isBlob(row.ue_key, 32) || !equalBytes(row.ue_key, ueKey)) {
      tampered('the state tree points at a tx that is not the latest version of this UE');
    }
    return row;
  }

  checkpoint(): SignedCheckpoint {
    this.#open();
    return { note: this.#state.note, certChain: this.#certChain.map(copy) };
  }

  #subtree: SubtreeHash = (level, index) => {
    const h: unknown = level === 0 ? this.#s.leafHashOf.get(index) : this.#s.treeNode.get(lastLeafOf(level, index), level);
    if (!isBlob(h, 32)) tampered(`tree node (level ${level}, index ${index}) is missing`);
    return h;
  };

  inclusionProof(txId: number, treeSize?: number): InclusionProof {
    this.#open();
    const size = this.#state.size;
    const n = treeSize ?? size;
    if (!Number.isSafeInteger(txId) || txId < 0) fail('INVALID_ARGUMENT', 'txId must be a non-negative integer');
    if (!Number.isSafeInteger(n)) fail('INVALID_ARGUMENT', 'treeSize must be an integer');
    if (txId >= size) fail('UNKNOWN_TX', `tx ${txId} is not in the ledger (size ${size})`);
    if (n > size || n <= txId) fail('INVALID_RANGE', `tree size ${n} must be in (${txId}, ${size}]`);
    // proofs against the current size are asked for again and again (every query answer carries
    // one): keep them until the ledger grows
    if (n === size) {
      if (this.#proofCacheSize !== size) {
        this.#proofCache.clear();
        this.#proofCacheSize = size;
      }
      const hit = this.#proofCache.get(txId);
      if (hit) return { leafIndex: txId, treeSize: n, hashes: hit.map(copy) };
    }
    const hashes = inclusionProof(txId, n, this.#subtree);
    // self-check against the current root: a tree row altered after open is refused, not served
    if (n === size) {
      if (!verifyInclusion(this.#subtree(0, txId), txId, n, hashes, this.#state.rootHash)) tampered(`inclusion proof of tx ${txId} does not match the root`);
      if (this.#proofCache.size >= PROOF_CACHE_ENTRIES) this.#proofCache.delete(this.#proofCache.keys().next().value as number);
      this.#proofCache.set(txId, hashes.map(copy));
    }
    return { leafIndex: txId, treeSize: n, hashes };
  }

  consistencyProof(oldSize: number, newSize: number): ConsistencyProof {
    this.#open();
    const size = this.#state.size;
    if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(newSize)) fail('INVALID_ARGUMENT', 'sizes must be integers');
    if (oldSize < 0 || oldSize > newSize || newSize > size) fail('INVALID_RANGE', `need 0 ≤ old ≤ new ≤ ${size}`);
    const hashes = consistencyProof(oldSize, newSize, this.#subtree);
    if (newSize === size && oldSize > 0) {
      const oldRoot = oldSize === newSize ? this.#state.rootHash : rangeRoot(oldSize, this.#subtree);
      if (!verifyConsistency(oldSize, newSize, oldRoot, this.#state.rootHash, hashes)) tampered(`consistency proof ${oldSize} → ${newSize} does not match the root`);
    }
    return { oldSize, newSize, hashes };
  }

  latestProof(ueKey: Uint8Array): LatestProof {
    this.#open();
    checkUeKey(ueKey);
    const size = this.#state.size;
    if (this.#latestCacheSize !== size) {
      this.#latestCache.clear();
      this.#latestCacheSize = size;
    }
    const k = hexKey(ueKey);
    let proof = this.#latestCache.get(k);
    if (proof === undefined) {
      proof = this.#smt.prove(ueKey);
      if (this.#latestCache.size >= PROOF_CACHE_ENTRIES) this.#latestCache.delete(this.#latestCache.keys().next().value as string);
      this.#latestCache.set(k, proof);
    }
    // copies: callers may keep or alter what they get (structuredClone costs ~40 µs here)
    return { ueKey: copy(proof.ueKey), value: copy(proof.value), bitmap: copy(proof.bitmap), siblings: proof.siblings.map(copy), otherKey: copy(proof.otherKey), otherValue: copy(proof.otherValue) };
  }

  blocks(fromHeight: number, max: number): StoredBlock[] {
    this.#open();
    if (!Number.isSafeInteger(fromHeight) || fromHeight < 0) fail('INVALID_RANGE', 'fromHeight must be a non-negative integer');
    if (!Number.isSafeInteger(max) || max < 0) fail('INVALID_ARGUMENT', 'max must be a non-negative integer');
    const limit = Math.min(max, this.#state.height - fromHeight);
    if (limit <= 0) return [];
    const rows = this.#s.blocksFrom.all(fromHeight - 1, limit) as BlockRow[];
    return rows.map((b) => {
      if (!isBlob(b.header) || !isBlob(b.hash, 32) || !equalBytes(sha256(b.header), b.hash)) tampered(`block ${b.height}: hash does not match the header`);
      const h = decodeHeader(b.header, b.height);
      const txRows = this.#s.txsFrom.all(h.firstTxId - 1, h.txCount) as TxRow[];
      if (txRows.length !== h.txCount || txRows.some((r, i) => r.tx_id !== h.firstTxId + i)) tampered(`block ${b.height}: txs are missing`);
      return { header: copy(b.header), hash: copy(b.hash), height: b.height, txs: txRows.map((r) => this.#entry(r).tx) };
    });
  }

  /** Closes the database. Appends still queued fail with UNAVAILABLE. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}

// ---------------------------------------------------------------- helpers

function checkUeKey(ueKey: unknown): asserts ueKey is Uint8Array {
  if (!(ueKey instanceof Uint8Array) || ueKey.length !== 32) fail('INVALID_ARGUMENT', 'ueKey must be 32 bytes');
}

function rangeRoot(size: number, sub: SubtreeHash): Uint8Array {
  return MerkleFrontier.fromSubtrees(size, sub).root();
}

function checkOptions(o: LocalLedgerOptions): void {
  if (typeof o !== 'object' || o === null) fail('CONFIG_INVALID', 'ledger options missing');
  if (typeof o.path !== 'string' || o.path.length === 0) fail('CONFIG_INVALID', 'ledger path missing');
  if (!isValidOrigin(o.ledgerId)) fail('CONFIG_INVALID', 'ledgerId must be non-empty, without spaces or "+"');
  if (!isValidKeyName(o.signerName)) fail('CONFIG_INVALID', 'signerName must be non-empty, without spaces or "+"');
  if (typeof o.signer !== 'object' || o.signer === null || typeof o.signer.sign !== 'function' || !(o.signer.publicKey instanceof Uint8Array)) fail('CONFIG_INVALID', 'signer missing');
  if (!Array.isArray(o.certChain) || !o.certChain.every((c) => c instanceof Uint8Array && c.length > 0)) fail('CONFIG_INVALID', 'certChain must be a list of DER certificates');
  for (const [k, v] of [
    ['maxItems', o.maxItems],
    ['maxTxBytes', o.maxTxBytes],
    ['smtCacheNodes', o.smtCacheNodes],
  ] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) fail('CONFIG_INVALID', `${k} must be a positive integer`);
  }
}

function checkSchema(db: Db, ledgerId: string): void {
  const tables = new Set(prepare(db, "SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[]);
  for (const t of TABLES) if (!tables.has(t)) fail('LEDGER_CORRUPT', `not a DIVS ledger database (table ${t} missing)`);
  const meta = new Map((prepare(db, 'SELECT key, value FROM meta').all() as { key: string; value: string }[]).map((r) => [r.key, r.value]));
  if (meta.get('schema') !== SCHEMA_VERSION) fail('LEDGER_CORRUPT', `unsupported ledger schema ${String(meta.get('schema'))}`);
  const stored = meta.get('ledger_id');
  if (stored !== ledgerId) fail('WRONG_LEDGER', `the ledger file holds ledger ${String(stored)}, not ${ledgerId}`);
}

function decodeHeader(b: Uint8Array, height: number): BlockHeader {
  let h: BlockHeader;
  try {
    h = BlockHeader.decode(b);
  } catch {
    tampered(`block ${height}: header does not decode`);
  }
  // exact bytes are what the hash covers; a header that re-encodes differently was not ours
  if (!equalBytes(BlockHeader.encode(h).finish(), b)) tampered(`block ${height}: header is not canonically encoded`);
  return h;
}

/**
 * Re-verifies everything stored and returns the resulting state; throws LEDGER_TAMPERED naming
 * the first inconsistency. One pass over each table in key order, O(n) hashes.
 */
function verifyAll(s: Statements, ledgerId: string): State {
  const PAGE = 4096;
  const txs = paged<TxRow>((a) => s.txsFrom.all(a ? a.tx_id : -1, PAGE) as TxRow[]);
  const tree = paged<{ last_leaf: number; level: number; hash: Uint8Array }>((a) => s.treeFrom.all(a ? a.last_leaf : -1, a ? a.level : 0, PAGE) as { last_leaf: number; level: number; hash: Uint8Array }[]);
  const blocks = paged<BlockRow>((a) => s.blocksFrom.all(a ? a.height : -1, 256) as BlockRow[]);
  const checkpoints = paged<{ tree_size: number; note: string }>((a) => s.checkpointsFrom.all(a ? a.tree_size : -1, 256) as { tree_size: number; note: string }[]);

  const frontier = MerkleFrontier.empty();
  // the state tree replayed as a mutable in-memory trie (same roots, a fraction of the work)
  const smt = new SmtReplay();
  let smtVersion: number | null = null;
  let height = 0;
  let size = 0;
  let prev: Uint8Array = GENESIS_PREV;
  let lastTimestamp = 0;
  let treeRows = 0;

  let cp = checkpoints.next();
  let note = '';
  // Every checkpoint must describe the ledger exactly as it was after some append.
  const checkCheckpoint = (block?: { height: number; hash: Uint8Array }): void => {
    while (!cp.done && cp.value.tree_size <= size) {
      const row = cp.value;
      if (row.tree_size < size) tampered(`checkpoint at size ${row.tree_size} is not at a block boundary`);
      if (typeof row.note !== 'string') tampered(`checkpoint at size ${size} is not text`);
      let text: string;
      try {
        text = parseCheckpoint(row.note).text;
      } catch {
        tampered(`checkpoint at size ${size} is malformed`);
      }
      const want = formatCheckpoint({ origin: ledgerId, size, rootHash: frontier.root(), stateRoot: smt.rootHash, ...(block ? { block } : {}) });
      if (text !== want) tampered(`checkpoint at size ${size} does not match the ledger`);
      note = row.note;
      cp = checkpoints.next();
    }
  };
  checkCheckpoint();

  for (const b of blocks) {
    const h = height;
    if (b.height !== h) tampered(`block ${h} is missing (found ${String(b.height)})`);
    if (!isBlob(b.header) || !isBlob(b.hash, 32)) tampered(`block ${h}: malformed row`);
    if (!equalBytes(sha256(b.header), b.hash)) tampered(`block ${h}: hash does not match the header`);
    const hd = decodeHeader(b.header, h);
    if (hd.ledgerId !== ledgerId) tampered(`block ${h}: header names ledger ${hd.ledgerId}`);
    if (hd.height !== h) tampered(`block ${h}: header says height ${hd.height}`);
    if (!equalBytes(hd.previousBlockHash, prev)) tampered(`block ${h}: previous block hash does not link to block ${h - 1}`);
    if (hd.firstTxId !== size) tampered(`block ${h}: first tx ${hd.firstTxId}, expected ${size}`);
    if (hd.txCount < 1) tampered(`block ${h}: no txs`);
    if (hd.timestampMs < lastTimestamp) tampered(`block ${h}: timestamp goes backwards`);

    const updates: [Uint8Array, Uint8Array, number][] = [];
    const prevs: { prev: unknown }[] = [];
    const ues = new Set<string>();
    for (let j = 0; j < hd.txCount; j++) {
      const next = txs.next();
      if (next.done) tampered(`tx ${size} of block ${h} is missing`);
      const t = next.value;
      if (t.tx_id !== size) tampered(`tx ${size} of block ${h} is missing (found ${String(t.tx_id)})`);
      if (t.block_height !== h) tampered(`tx ${size}: recorded in block ${String(t.block_height)}, belongs to block ${h}`);
      if (!isBlob(t.tx) || !isBlob(t.leaf_hash, 32)) tampered(`tx ${size}: malformed row`);
      const leaf = leafHash(t.tx);
      if (!equalBytes(leaf, t.leaf_hash)) tampered(`tx ${size}: bytes do not match the leaf hash`);
      if (t.ue_key !== null) {
        if (!isBlob(t.ue_key, 32)) tampered(`tx ${size}: malformed UE key`);
        const k = hexKey(t.ue_key);
        if (ues.has(k)) tampered(`block ${h}: two versions of one UE key`);
        ues.add(k);
        updates.push([t.ue_key, leaf, size]);
        prevs.push({ prev: t.prev_tx_id });
      } else if (t.prev_tx_id !== null) tampered(`tx ${size}: previous-version pointer without a UE key`);
      for (const n of frontier.push(leaf)) {
        const r = tree.next();
        treeRows++;
        if (r.done || r.value.level !== n.level || r.value.last_leaf !== lastLeafOf(n.level, n.index)) tampered(`tree node (level ${n.level}, index ${n.index}) is missing`);
        if (!isBlob(r.value.hash, 32) || !equalBytes(r.value.hash, n.hash)) tampered(`tree node (level ${n.level}, index ${n.index}) was altered`);
      }
      size++;
    }
    if (!equalBytes(frontier.root(), hd.txRoot)) tampered(`block ${h}: tx_root does not match its txs`);

    if (updates.length > 0) {
      // The state-tree rows this block wrote are not re-read here: every node later read from
      // them is checked against its parent's hash, down from the state root this replay
      // verified, so an altered or missing row can never yield a wrong answer — only
      // LEDGER_TAMPERED when it is read. (Comparing them would double the cost of opening.)
      // each UE tx must point at the version it replaced (the history walk depends on it)
      for (let i = 0; i < updates.length; i++) {
        const [key, leaf, txId] = updates[i] as [Uint8Array, Uint8Array, number];
        const replaced = smt.set(key, leaf, txId);
        if ((prevs[i] as { prev: unknown }).prev !== (replaced ?? null)) tampered(`tx ${txId}: previous-version pointer was altered`);
      }
      smtVersion = h;
    }
    if (!equalBytes(smt.rootHash, hd.stateRoot)) tampered(`block ${h}: state_root does not match the UE keys of the txs`);
    if (b.smt_version !== smtVersion) tampered(`block ${h}: state-tree version pointer was altered`);

    prev = b.hash;
    lastTimestamp = hd.timestampMs;
    height++;
    checkCheckpoint({ height: h, hash: b.hash });
  }

  const extraTx = txs.next();
  if (!extraTx.done) tampered(`tx ${String(extraTx.value.tx_id)} is not in any block`);
  const extraTree = tree.next();
  if (!extraTree.done) tampered(`tree node (level ${String(extraTree.value.level)}, last leaf ${String(extraTree.value.last_leaf)}) is not part of the tree`);
  if (!cp.done) tampered(`checkpoint at size ${String(cp.value.tree_size)} is beyond the ledger`);
  if (note === '') tampered(`no checkpoint for the ledger at size ${size}`);
  const counts = s.counts.get() as { blocks: number; txs: number; tree: number };
  if (counts.blocks !== height || counts.txs !== size || counts.tree !== treeRows) tampered('row counts do not match the chain');
  // The latest checkpoint must be the one for the final state (and it is: it was matched last).
  if (parseCheckpoint(note).size !== size) tampered(`the latest checkpoint is for size ${parseCheckpoint(note).size}, the ledger has ${size}`);
  // the served tree is read through the store from this (verified) root
  const smtRoot = smtVersion === null ? null : { version: smtVersion, hash: smt.rootHash };
  return { height, size, frontier, rootHash: frontier.root(), lastBlockHash: prev, lastTimestamp, smtRoot, note };
}
