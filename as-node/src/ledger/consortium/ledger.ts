/**
 * @module ledger/consortium/ledger
 * The consortium ledger backend [FW-BC] [BC-1] [RP-DD] [E2E-3]: AS nodes of several operators
 * share one ledger; blocks are ordered through an etcd cluster (Raft), and every node
 * validates every block before it stores its own SQLite copy (a {@link LocalLedger}).
 *
 * Ordering. Block h lives at etcd key `<prefix>blocks/<h, 16 digits>`. A node proposes the
 * block it built on its tip with one transaction that creates that key only if it does not
 * exist (compare create_revision = 0); etcd's Raft log gives every node the same single
 * winner. The loser applies the winner's block (which the failed transaction returns) and
 * proposes again on the new tip. To keep a fast node from winning every round, heights take
 * turns: height h is first offered to the (h mod n)-th member node (by name); an owner with
 * nothing to append passes its turn at once (`<prefix>turn/<node>`), and the others wait for
 * one that has not passed — longer while it follows the ledger (see #turnWait). Appends that
 * arrive while a proposal is in flight are grouped into the next block (whole appends only:
 * an append is atomic).
 *
 * Validation (block.ts): hash link, tx root, state root, canonical encodings, each
 * endorsement's AS signature and membership of its signer in the configuration in force,
 * version chains, governance majority for configuration blocks. A block that fails is refused
 * and reported (`refusals()`, log) and never reaches the store; the refusing node deletes it
 * from etcd (only if unchanged since it was read) so the height can be proposed again.
 * Validation is deterministic — certificates are checked at the block's own time — so every
 * honest node refuses the same blocks.
 *
 * Sync. A node catches up by range reads from its tip, then follows a watch on the prefix.
 * Proposers delete blocks older than `retainBlocks` in the same transaction and compact etcd's
 * history every `compactEvery` blocks; a node whose missing blocks are gone from etcd fetches
 * them from its peers over RP-dd (`GetBlocks`) and validates them the same way.
 *
 * Witnesses. After each block a node signs the checkpoint of its own copy and publishes a
 * cosignature; {@link checkpoint} returns the node's note with the other nodes' cosignature
 * lines for the same tree (cosign.ts), so consumers can require k of n.
 *
 * Failure semantics. An append resolves once its block is committed by etcd (a Raft majority
 * has it on disk) and stored by this node. When etcd has no quorum, appends fail with
 * ORDERING_UNAVAILABLE after `etcd.requestTimeoutMs`; such a block is whole or absent, never
 * partial, and may still be committed once the quorum returns (it is then applied like any
 * other block, and its entries reach `onForeignEntries`).
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { BlockHeader, type ConsistencyProof, type InclusionProof, type LatestProof, type SignedCheckpoint } from '../../../../proto/gen/divs/v1/common.ts';
import { equalBytes } from '../../../../protocol/src/bytes.ts';
import { DivsError, fail, type ErrorCode } from '../../../../protocol/src/errors.ts';
import { MerkleFrontier } from '../../../../protocol/src/merkle.ts';
import { formatCheckpoint, isValidKeyName, parseCheckpoint, signCheckpoint } from '../../../../protocol/src/checkpoint.ts';
import { rawPublicKey, type OwnSignatures, type Signer } from '../../../../protocol/src/suites.ts';
import { silentLogger } from '../../../../platform/src/log.ts';
import { LocalLedger } from '../local.ts';
import type { AppendItem, Ledger, LedgerEntry, LedgerInfo, StoredBlock } from '../types.ts';
import { Membership, type MemberSigner } from '../../governance/membership.ts';
import { configOfTx, configTx, genesisTx, verifyConfigUpdate } from '../../governance/config-update.ts';
import { LedgerTx, TxType } from '../../../../proto/gen/divs/v1/common.ts';
import {
  type BlockPlan,
  type ChainTip,
  type CheckedTx,
  CONSORTIUM_PROPOSER,
  GENESIS_PREV,
  checkTx,
  decodeEnvelope,
  encodeEnvelope,
  planBlock,
  validateBlock,
  versionError,
} from './block.ts';
import { CosignatureBook, cosign, verifyCosignature, withCosignatures } from './cosign.ts';
import { EtcdClient, prefixEnd, type EtcdOptions, type KeyValue, type Watch, type WatchEvent } from './etcd.ts';
import { PeerSync } from './peers.ts';

export interface ConsortiumLedgerOptions {
  /** SQLite file of this node's copy. */
  path: string;
  /** The genesis configuration every node of the consortium is given. */
  genesis: Membership;
  /** This node's name: its certificate CN, listed as a node of its organization. */
  nodeName: string;
  /** The AS key (signs checkpoints and cosignatures). */
  signer: Signer;
  /**
   * Signatures this AS made (its endorsements, signed by its crypto pool or signer): an
   * append of an endorsement whose AS signature is noted there, under this node's own key,
   * is not verified again before it is proposed. Other nodes verify it, as every block.
   */
  ownSignatures?: OwnSignatures;
  /** AS certificate chain (DER, leaf first, up to the organization's CA). */
  certChain: Uint8Array[];
  etcd: EtcdOptions;
  /** etcd key prefix; default `/divs/<ledger ID>/`. */
  prefix?: string;
  /** Bearer token (role `peer`) presented to other nodes for RP-dd sync. */
  peerToken?: string;
  /** RP-dd addresses to sync from, besides the member nodes' URLs in the configuration. */
  peers?: string[];
  /** Blocks kept in etcd; proposers delete older ones (0: keep all). Default 1024. */
  retainBlocks?: number;
  /** Compact etcd's history every this many blocks (0: never). Default 256. */
  compactEvery?: number;
  /** Most txs per block (and per append). Default 10,000. */
  maxBlockTxs?: number;
  /** Most tx bytes per block; etcd's --max-request-bytes must exceed it. Default 12 MiB. */
  maxBlockBytes?: number;
  /** How long non-owners wait for the owner of a height to propose (ms). Default 100. */
  turnTimeoutMs?: number;
  /** Period of the safety poll for blocks the watch missed (ms). Default 1000. */
  pollIntervalMs?: number;
  /** How long open() waits for the first catch-up (ms). Default 15,000. */
  syncTimeoutMs?: number;
  /** Entries of blocks this process did not append itself (endorsements only), in order. */
  onForeignEntries?: (entries: LedgerEntry[]) => void;
  log?: Logger;
  now?: () => number;
}

/** A refused block, as reported. */
export interface BlockRefusal {
  height: number;
  source: 'etcd' | 'peer' | 'proposal';
  code: ErrorCode;
  message: string;
  at: number;
}

interface Pending {
  checked: CheckedTx[];
  /** The configuration the txs were checked under, and until when their certificates hold. */
  membership: Membership;
  validUntil: number;
  bytes: number;
  keys: Set<string>;
  config: boolean;
  genesis: boolean;
  resolve(entries: LedgerEntry[]): void;
  reject(e: unknown): void;
}

/** Codes that mean "the block is at fault" (every honest node refuses it), not "this node is". */
const BLOCK_FAULTS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'INVALID_BLOCK',
  'INVALID_SIGNATURE',
  'NOT_MEMBER',
  'UNTRUSTED_CERTIFICATE',
  'INVALID_CERTIFICATE',
  'NOT_LATEST',
  'CONFIG_MAJORITY_MISSING',
  'CONFIG_INVALID',
  'MALFORMED_MESSAGE',
]);

const MAX_REFUSALS = 100;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const copy = (b: Uint8Array): Uint8Array => new Uint8Array(b);
const hexOf = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const asDivs = (e: unknown, code: ErrorCode = 'INTERNAL'): DivsError => (e instanceof DivsError ? e : new DivsError(code, (e as Error)?.message ?? String(e), { cause: e }));

/** The frontier of a stored tree of `size` leaves, from the last leaf's inclusion proof. */
function frontierOf(store: LocalLedger, size: number): MerkleFrontier {
  if (size === 0) return MerkleFrontier.empty();
  const last = store.get(size - 1);
  if (!last) fail('LEDGER_CORRUPT', `tx ${size - 1} missing`);
  // the last leaf's audit path is exactly the complete subtrees of the first size-1 leaves
  const path = [...store.inclusionProof(size - 1, size).hashes].reverse();
  const levels: number[] = [];
  for (let l = 52; l >= 0; l--) if (Math.floor((size - 1) / 2 ** l) % 2 === 1) levels.push(l);
  if (levels.length !== path.length) fail('LEDGER_CORRUPT', 'tree frontier does not match the ledger size');
  const byLevel = new Map(levels.map((l, i) => [l, path[i] as Uint8Array]));
  const f = MerkleFrontier.fromSubtrees(size - 1, (level) => byLevel.get(level) as Uint8Array);
  f.push(last.leafHash);
  return f;
}

/**
 * A consortium member's ledger.
 *
 * @example
 * ```ts
 * const ledger = await ConsortiumLedger.open({
 *   path: 'ledger.db', genesis: Membership.fromGenesisFile('genesis.json'), nodeName: 'as-a',
 *   signer, certChain, etcd: { endpoints: ['http://127.0.0.1:2379'] }, peerToken,
 * });
 * const [entry] = await ledger.append([{ tx }]); // committed through etcd, stored here
 * ```
 */
export class ConsortiumLedger implements Ledger {
  readonly ledgerId: string;
  readonly nodeName: string;
  readonly #o: ConsortiumLedgerOptions;
  readonly #store: LocalLedger;
  readonly #applyTs: { v: number };
  /** An endorsement this AS signed itself, under its own key (see ownSignatures). */
  readonly #madeHere = (s: MemberSigner, input: Uint8Array, sig: Uint8Array): boolean =>
    this.#o.ownSignatures !== undefined && s.node === this.nodeName && equalBytes(rawPublicKey(s.chain.publicKey), this.#o.signer.publicKey) && this.#o.ownSignatures.made(input, sig);
  readonly #etcd: EtcdClient;
  readonly #peers: PeerSync;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #genesis: Membership;
  readonly #prefix: string;
  readonly #blocksPrefix: string;
  readonly #cosigPrefix: string;
  readonly #turnPrefix: string;
  readonly #maxTxs: number;
  readonly #maxBytes: number;
  readonly #book = new CosignatureBook();
  readonly #blockRev = new Map<number, number>();
  readonly #refusals: BlockRefusal[] = [];
  readonly #heightWaiters = new Set<() => void>();
  /** Per node: the newest height after which it said it had nothing to append (its turn passes). */
  readonly #passed = new Map<string, number>();
  /** What other nodes publish besides blocks, by key prefix: cosignatures and turn passes. */
  readonly #signals: [string, (node: string, value: Uint8Array) => void][];
  readonly #cosignOut: LatestValue;
  readonly #passOut: LatestValue;
  #membership: Membership;
  #tip: ChainTip;
  /** Tree size before the newest block. */
  #prevSize = 0;
  #tipSince = performance.now();
  #note = '';
  #text = '';
  #served: string | undefined;
  #cosignature: Uint8Array | undefined;
  #pending: Pending[] = [];
  #serial: Promise<unknown> = Promise.resolve();
  #pumpQueued = false;
  #pumpTimer: NodeJS.Timeout | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #polling = false;
  #watch: Watch | undefined;
  #closed = false;
  #halted: DivsError | undefined;
  #synced = false;
  #onForeign: ((entries: LedgerEntry[]) => void) | undefined;
  #loop: Promise<void> = Promise.resolve();

  private constructor(o: ConsortiumLedgerOptions, store: LocalLedger, applyTs: { v: number }, tip: ChainTip, membership: Membership) {
    this.#o = o;
    this.ledgerId = o.genesis.ledgerId;
    this.nodeName = o.nodeName;
    this.#store = store;
    this.#applyTs = applyTs;
    this.#genesis = o.genesis;
    this.#tip = tip;
    this.#prevSize = tip.size;
    this.#membership = membership;
    this.#log = (o.log ?? silentLogger).child({ ledger: this.ledgerId, node: o.nodeName });
    this.#now = o.now ?? Date.now;
    this.#prefix = o.prefix ?? `/divs/${this.ledgerId}/`;
    this.#blocksPrefix = `${this.#prefix}blocks/`;
    this.#cosigPrefix = `${this.#prefix}cosig/`;
    this.#turnPrefix = `${this.#prefix}turn/`;
    this.#signals = [
      [this.#cosigPrefix, (n, v) => this.#onCosignature(n, v)],
      [this.#turnPrefix, (n, v) => this.#onPass(n, v)],
    ];
    this.#maxTxs = o.maxBlockTxs ?? 10_000;
    this.#maxBytes = o.maxBlockBytes ?? 12 * 1024 * 1024;
    this.#etcd = new EtcdClient(o.etcd);
    this.#peers = new PeerSync({ token: o.peerToken });
    this.#onForeign = o.onForeignEntries;
    const lost = (what: string) => (e: unknown) => this.#log.debug({ err: asDivs(e).message }, `${what} not published`);
    this.#cosignOut = new LatestValue(this.#etcd, `${this.#cosigPrefix}${this.nodeName}`, lost('cosignature'));
    this.#passOut = new LatestValue(this.#etcd, `${this.#turnPrefix}${this.nodeName}`, lost('turn pass'));
  }

  /**
   * Opens (or creates) this node's copy, re-verifies it (LocalLedger), restores the chain tip
   * and the configuration in force, then catches up with etcd and its peers — waiting up to
   * `syncTimeoutMs` for that before returning (it goes on in the background). Throws
   * CONFIG_INVALID for bad options, WRONG_LEDGER when the file holds another consortium's
   * ledger, and the LocalLedger's open errors.
   */
  static async open(o: ConsortiumLedgerOptions): Promise<ConsortiumLedger> {
    checkOptions(o);
    const applyTs = { v: 0 };
    const store = await LocalLedger.open({
      path: o.path,
      ledgerId: o.genesis.ledgerId,
      signer: o.signer,
      // every node must derive byte-identical headers: see CONSORTIUM_PROPOSER
      signerName: CONSORTIUM_PROPOSER,
      certChain: o.certChain,
      now: () => applyTs.v,
      maxItems: o.maxBlockTxs ?? 10_000,
    });
    let ledger: ConsortiumLedger;
    try {
      const { tip, membership } = restore(store, o.genesis);
      ledger = new ConsortiumLedger(o, store, applyTs, tip, membership);
      await ledger.#signTip();
    } catch (e) {
      store.close();
      throw e;
    }
    await ledger.#start(o.syncTimeoutMs ?? 15_000);
    return ledger;
  }

  // ---------------------------------------------------------------- lifecycle

  async #start(syncTimeoutMs: number): Promise<void> {
    let firstSync!: () => void;
    const synced = new Promise<void>((r) => (firstSync = r));
    this.#loop = this.#syncLoop(firstSync);
    const poll = this.#o.pollIntervalMs ?? 1000;
    this.#pollTimer = setInterval(() => this.#poll(), poll);
    this.#pollTimer.unref();
    let t: NodeJS.Timeout | undefined;
    await Promise.race([synced, new Promise<void>((r) => (t = setTimeout(r, syncTimeoutMs)))]);
    clearTimeout(t);
    if (!this.#synced) this.#log.warn({ height: this.#tip.height }, 'not yet in sync with the consortium; serving the local copy and catching up in the background');
  }

  async #syncLoop(firstSync: () => void): Promise<void> {
    let backoff = 100;
    let marked = false;
    while (!this.#closed && !this.#halted) {
      try {
        if (!marked) {
          // one etcd prefix, one consortium: never validate (and delete) another one's blocks
          const r = await this.#etcd.putIfAbsent(`${this.#prefix}genesis`, this.#genesis.hash);
          if (!r.created) {
            this.#halt(new DivsError('WRONG_LEDGER', `etcd prefix ${this.#prefix} holds the ledger of another consortium (its genesis configuration differs)`));
            firstSync();
            return;
          }
          marked = true;
        }
        const rev = await this.#enqueue(() => this.#catchUp());
        await this.#loadSignals();
        this.#synced = true;
        firstSync();
        backoff = 100;
        if (this.#closed) return;
        const w = this.#etcd.watch(this.#prefix, rev + 1, {
          onEvents: (events) => this.#onEvents(events),
          onCompacted: (r) => this.#log.info({ compactRevision: r }, 'etcd history compacted under the watch; catching up by range reads'),
          onError: (e) => this.#log.debug({ err: e.message }, 'etcd watch interrupted; reconnecting'),
        });
        this.#watch = w;
        await w.done;
      } catch (e) {
        if (this.#closed) return;
        this.#log.warn({ err: asDivs(e).message, code: asDivs(e).code }, 'consortium sync failed; retrying');
        firstSync();
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  /**
   * The other nodes' newest cosignatures and turn passes, read once after catching up (the
   * watch brings later ones); then this node, if it has nothing to append, passes its turn.
   */
  async #loadSignals(): Promise<void> {
    for (const [prefix, on] of this.#signals) {
      const r = await this.#etcd.range(prefix, { rangeEnd: prefixEnd(prefix), limit: 1000 });
      for (const kv of r.kvs) on(kv.key.slice(prefix.length), kv.value);
    }
    this.#passIfIdle();
  }

  /** Publishes that this node has nothing to append after its newest block (its turns pass). */
  #passIfIdle(): void {
    const h = this.#tip.height - 1;
    if (!this.#closed && h >= 0 && this.#pending.length === 0) this.#passOut.set(new TextEncoder().encode(String(h)));
  }

  /** Closes the store and stops syncing. Appends still pending fail with UNAVAILABLE. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#pumpTimer);
    clearInterval(this.#pollTimer);
    this.#watch?.close();
    this.#etcd.close();
    this.#peers.close();
    const err = new DivsError('UNAVAILABLE', 'the ledger is closed');
    for (const p of this.#pending.splice(0)) p.reject(err);
    for (const w of this.#heightWaiters) w();
    this.#store.close();
  }

  /** Resolves once the background sync has stopped (after {@link close}). */
  get stopped(): Promise<void> {
    return this.#loop;
  }

  // ---------------------------------------------------------------- serial work

  /** Runs `fn` after every earlier apply/propose step: the chain is only ever touched here. */
  #enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#serial.then(fn, fn);
    this.#serial = run.catch(() => undefined);
    return run;
  }

  #kick(delayMs = 0): void {
    if (this.#closed) return;
    if (delayMs > 0) {
      if (this.#pumpTimer) return;
      this.#pumpTimer = setTimeout(() => {
        this.#pumpTimer = undefined;
        this.#kick();
      }, delayMs);
      return;
    }
    if (this.#pumpQueued) return;
    this.#pumpQueued = true;
    void this.#enqueue(async () => {
      this.#pumpQueued = false;
      await this.#pump();
    }).catch((e: unknown) => this.#log.error({ err: e }, 'proposer failed'));
  }

  #poll(): void {
    if (this.#closed || this.#polling || !this.#synced) return;
    if (performance.now() - this.#tipSince < (this.#o.pollIntervalMs ?? 1000)) return;
    this.#polling = true;
    // a watch on a partitioned member goes quiet without an error: look for blocks directly
    // (a local read: without a quorum it answers at once instead of holding up appends)
    void this.#enqueue(() => this.#catchUp(true))
      .catch((e: unknown) => this.#log.debug({ err: asDivs(e).message }, 'poll failed'))
      .finally(() => (this.#polling = false));
  }

  #onEvents(events: WatchEvent[]): void {
    for (const ev of events) {
      const key = ev.kv.key;
      if (key.startsWith(this.#blocksPrefix)) {
        if (ev.type !== 'put') continue;
        const h = Number(key.slice(this.#blocksPrefix.length));
        if (!Number.isSafeInteger(h)) continue;
        const kv = ev.kv;
        void this.#enqueue(async () => {
          if (h === this.#tip.height) await this.#applyFromEtcd(h, kv);
          else if (h > this.#tip.height) await this.#catchUp();
        }).catch((e: unknown) => {
          if (!this.#closed) this.#log.warn({ err: asDivs(e).message, height: h }, 'applying a block from etcd failed');
        });
      } else if (ev.type === 'put') {
        for (const [prefix, on] of this.#signals) if (key.startsWith(prefix)) on(key.slice(prefix.length), ev.kv.value);
      }
    }
  }

  // ---------------------------------------------------------------- catching up

  #blockKey(h: number): string {
    return `${this.#blocksPrefix}${String(h).padStart(16, '0')}`;
  }

  /**
   * Applies every block etcd (or, for what etcd no longer has, a peer) has beyond the tip.
   * `serializable`: read the member's local state, without a quorum round.
   */
  async #catchUp(serializable = false): Promise<number> {
    for (;;) {
      if (this.#closed) return 0;
      const from = this.#tip.height;
      const r = await this.#etcd.range(this.#blockKey(from), { rangeEnd: prefixEnd(this.#blocksPrefix), limit: 8, serializable });
      if (r.kvs.length === 0) {
        if (from === 0) this.#ensureGenesis();
        if (this.#pending.length > 0) this.#kick();
        return r.revision;
      }
      const first = Number((r.kvs[0] as KeyValue).key.slice(this.#blocksPrefix.length));
      if (first > from) {
        // pruned from etcd (or never there): the blocks must come from a peer
        await this.#fromPeers(first);
        if (this.#tip.height < first) fail('ORDERING_UNAVAILABLE', `blocks ${from} to ${first - 1} are no longer in etcd and no peer served them`);
        continue;
      }
      let applied = 0;
      for (const kv of r.kvs) {
        const h = Number(kv.key.slice(this.#blocksPrefix.length));
        if (h < this.#tip.height) continue;
        if (h > this.#tip.height || !(await this.#applyFromEtcd(h, kv))) break;
        applied++;
      }
      if (applied === 0) return r.revision;
    }
  }

  #peerAddresses(): string[] {
    const own = new Set(this.#membership.nodes().find((n) => n.name === this.nodeName)?.urls ?? []);
    const fromConfig = this.#membership
      .nodes()
      .filter((n) => n.name !== this.nodeName)
      .flatMap((n) => n.urls);
    return [...new Set([...(this.#o.peers ?? []), ...fromConfig])].filter((a) => !own.has(a));
  }

  /** Fetches blocks from peers over RP-dd until the tip reaches `target` (0: as far as they go). */
  async #fromPeers(target: number): Promise<void> {
    for (const addr of this.#peerAddresses()) {
      if (this.#closed || (target > 0 && this.#tip.height >= target)) return;
      try {
        const max = target > 0 ? target - this.#tip.height : 0;
        for await (const b of this.#peers.blocks(addr, this.#tip.height, max)) {
          let plan: BlockPlan;
          try {
            plan = await this.#validate(b.header, b.txs);
          } catch (e) {
            this.#refuse(this.#tip.height, 'peer', e);
            break; // this peer serves bad blocks: try the next one
          }
          await this.#commit(plan, undefined);
          if (this.#closed || (target > 0 && this.#tip.height >= target)) return;
        }
        this.#log.info({ peer: addr, height: this.#tip.height }, 'caught up from a peer over RP-dd');
      } catch (e) {
        this.#log.warn({ peer: addr, err: asDivs(e).message }, 'peer sync failed');
      }
    }
  }

  #validate(header: Uint8Array, txs: Uint8Array[]): Promise<BlockPlan> {
    return validateBlock(header, txs, { ledgerId: this.ledgerId, tip: this.#tip, membership: this.#membership, genesis: this.#genesis, state: this.#store, maxTxs: this.#maxTxs });
  }

  /** Validates and stores block h read from etcd; a refused block is reported and deleted from etcd. */
  async #applyFromEtcd(h: number, kv: KeyValue): Promise<boolean> {
    let plan: BlockPlan;
    try {
      // txs, their framing and the header: generous room over the block limit, never unbounded
      const env = decodeEnvelope(kv.value, 2 * this.#maxBytes + 1024 * 1024);
      plan = await this.#validate(env.header, env.txs);
    } catch (e) {
      const err = this.#refuse(h, 'etcd', e);
      if (BLOCK_FAULTS.has(err.code)) {
        // every honest node refuses it: free the height for a valid proposal (only if nobody
        // replaced it meanwhile)
        await this.#etcd.deleteIfUnchanged(kv.key, kv.modRevision).catch((d: unknown) => this.#log.warn({ err: asDivs(d).message }, 'could not delete a refused block'));
      } else {
        this.#halt(err);
      }
      return false;
    }
    this.#noteRevision(h, kv.modRevision);
    await this.#commit(plan, undefined);
    return true;
  }

  #refuse(height: number, source: BlockRefusal['source'], e: unknown): DivsError {
    const err = asDivs(e, 'INVALID_BLOCK');
    this.#refusals.push({ height, source, code: err.code, message: err.message, at: Date.now() });
    if (this.#refusals.length > MAX_REFUSALS) this.#refusals.shift();
    this.#log.error({ height, source, code: err.code, err: err.message }, 'block refused: it does not reach this node\'s ledger');
    return err;
  }

  #halt(err: DivsError): void {
    if (this.#halted) return;
    this.#halted = err;
    this.#log.fatal({ code: err.code, err: err.message }, 'this node can no longer follow the consortium ledger; appends are refused');
    for (const p of this.#pending.splice(0)) p.reject(err);
  }

  // ---------------------------------------------------------------- proposing

  #ensureGenesis(): void {
    if (this.#tip.height !== 0 || this.#pending.some((p) => p.genesis)) return;
    const tx = genesisTx(this.#genesis);
    const checked = checkTx(tx, { membership: this.#membership, genesis: this.#genesis, height: 0, at: new Date(0), verifySignature: false });
    this.#pending.unshift({ checked: [checked], membership: this.#membership, validUntil: Infinity, bytes: tx.length, keys: new Set(), config: true, genesis: true, resolve: () => undefined, reject: () => undefined });
  }

  /**
   * Milliseconds to wait before proposing height h (0: now). Height h is first offered to the
   * (h mod n)-th node; an owner that said it has nothing to append passes the turn to the next
   * one at once. The others wait for the (effective) owner: `turnTimeoutMs` when it is silent
   * (it did not cosign the block before the newest: down, or far behind), up to
   * BUSY_TURN_FACTOR times that while it follows (it is still validating the newest block, or
   * proposing) — the node that proposed the newest block stored it without validating it and
   * would otherwise take every second height.
   */
  #turnWait(h: number): number {
    if (h === 0) return 0;
    const nodes = this.#membership.nodes();
    if (nodes.length <= 1) return 0;
    let owner: string | undefined;
    for (let i = 0; i < nodes.length && owner === undefined; i++) {
      const name = (nodes[(h + i) % nodes.length] as { name: string }).name;
      if (name === this.nodeName || (this.#passed.get(name) ?? -1) < h - 1) owner = name;
    }
    if (owner === undefined || owner === this.nodeName) return 0;
    const turn = this.#o.turnTimeoutMs ?? 100;
    const following = this.#book.latestSize(owner) >= this.#prevSize;
    return Math.max(0, (following ? turn * BUSY_TURN_FACTOR : turn) - (performance.now() - this.#tipSince));
  }

  #takeBatch(): Pending[] {
    const out: Pending[] = [];
    let n = 0;
    let bytes = 0;
    const keys = new Set<string>();
    while (this.#pending.length > 0) {
      const p = this.#pending[0] as Pending;
      if (p.config) {
        if (out.length === 0) out.push(this.#pending.shift() as Pending);
        break;
      }
      if (out.length > 0 && (n + p.checked.length > this.#maxTxs || bytes + p.bytes > this.#maxBytes)) break;
      let clash = false;
      for (const k of p.keys) if (keys.has(k)) clash = true;
      if (clash) break;
      out.push(this.#pending.shift() as Pending);
      n += p.checked.length;
      bytes += p.bytes;
      for (const k of p.keys) keys.add(k);
    }
    return out;
  }

  /** Plans this node's block from `batch` at time `ts`; appends that became invalid are refused and dropped. */
  #planOwn(batch: Pending[], ts: number): BlockPlan | undefined {
    const h = this.#tip.height;
    const at = new Date(ts);
    const keep: Pending[] = [];
    for (const p of batch) {
      try {
        // the configuration or the clock may have moved since the append was checked
        if (p.membership !== this.#membership || ts > p.validUntil) {
          p.checked = p.checked.map((t) => checkTx(t.tx, { membership: this.#membership, genesis: this.#genesis, height: h, at, verifySignature: false }));
          p.membership = this.#membership;
          p.validUntil = validUntilOf(p.checked);
        }
        for (const t of p.checked) {
          if (t.kind !== 'endorsement') continue;
          const err = versionError(t, this.#store.latest(t.ueKey as Uint8Array));
          if (err) throw err;
        }
        keep.push(p);
      } catch (e) {
        p.reject(asDivs(e));
      }
    }
    batch.splice(0, batch.length, ...keep);
    if (keep.length === 0) return undefined;
    return planBlock(this.ledgerId, this.#tip, keep.flatMap((p) => p.checked), this.#store, ts, { versionsChecked: true });
  }

  async #pump(): Promise<void> {
    while (this.#pending.length > 0 && !this.#closed && !this.#halted) {
      const h = this.#tip.height;
      if (h > 0) this.#pending = this.#pending.filter((p) => !p.genesis);
      else if (!(this.#pending[0] as Pending).genesis) this.#ensureGenesis();
      if (this.#pending.length === 0) return;
      const wait = this.#turnWait(h);
      if (wait > 0) {
        this.#kick(Math.ceil(wait));
        return;
      }
      const batch = this.#takeBatch();
      const ts = Math.max(this.#tip.lastTimestamp, Math.trunc(this.#now()));
      let plan: BlockPlan | undefined;
      try {
        plan = this.#planOwn(batch, ts);
      } catch (e) {
        // the whole block is unplannable (e.g. the store failed): refuse its appends
        for (const p of batch) p.reject(asDivs(e));
        continue;
      }
      if (!plan) continue;
      const retain = this.#o.retainBlocks ?? 1024;
      // every block older than the retention window goes, in the same transaction (a range:
      // blocks put by hand or by a proposer that did not prune are covered too)
      const prune = retain > 0 && h >= retain ? [{ key: this.#blocksPrefix, rangeEnd: this.#blockKey(h - retain + 1) }] : [];
      let r;
      try {
        r = await this.#etcd.putIfAbsent(this.#blockKey(h), encodeEnvelope(plan.header, plan.txs.map((t) => t.tx)), prune);
      } catch (e) {
        // outcome unknown: the block may still be committed (then it is applied from the
        // watch); every append waiting now would meet the same outage
        const err = asDivs(e, 'ORDERING_UNAVAILABLE');
        this.#log.warn({ height: h, code: err.code, err: err.message }, 'proposal failed');
        for (const p of [...batch, ...this.#pending.splice(0).filter((q) => !q.genesis)]) p.reject(err);
        return;
      }
      if (this.#closed) return;
      if (r.created) {
        this.#noteRevision(h, r.revision);
        this.#log.debug({ height: h, txs: plan.txs.length }, 'proposed block committed');
        try {
          await this.#commit(plan, batch);
        } catch (e) {
          const err = asDivs(e);
          for (const p of batch) p.reject(err);
          if (!this.#closed) this.#halt(new DivsError('LEDGER_DIVERGED', `block ${h} is committed in etcd but could not be stored here: ${err.message}`, { cause: e }));
          return;
        }
        this.#compactAfter(h);
      } else {
        // another node's block holds this height: apply it, then try again on top of it
        this.#pending.unshift(...batch);
        if (r.existing) await this.#applyFromEtcd(h, r.existing);
      }
    }
  }

  /** Remembers the etcd revision of block h (for compaction), keeping a bounded window. */
  #noteRevision(h: number, revision: number): void {
    this.#blockRev.set(h, revision);
    const keep = 2 * Math.max(1, this.#o.compactEvery ?? 256);
    if (this.#blockRev.size > keep) for (const k of this.#blockRev.keys()) if (k < h - keep) this.#blockRev.delete(k);
  }

  #compactAfter(h: number): void {
    const every = this.#o.compactEvery ?? 256;
    if (every <= 0 || h % every !== 0 || h < every) return;
    const rev = this.#blockRev.get(h - every);
    if (rev === undefined) return;
    this.#etcd.compact(rev).then(
      () => this.#log.debug({ revision: rev }, 'etcd history compacted'),
      (e: unknown) => this.#log.debug({ err: asDivs(e).message }, 'etcd compaction skipped'),
    );
  }

  // ---------------------------------------------------------------- storing

  /**
   * Stores a planned block: the checkpoint is signed first, so the note a query sees always
   * matches the store (the swap below happens with no I/O in between).
   */
  async #commit(plan: BlockPlan, owners: Pending[] | undefined): Promise<void> {
    const h = plan.fields.height;
    const text = formatCheckpoint({ origin: this.ledgerId, size: plan.next.size, rootHash: plan.fields.txRoot, stateRoot: plan.fields.stateRoot, block: { height: h, hash: plan.hash } });
    const note = await signCheckpoint(text, this.nodeName, this.#o.signer);
    const cos = await cosign(text, this.nodeName, this.#o.signer, this.#o.certChain);
    this.#applyTs.v = plan.fields.timestampMs;
    // the leaf hashes validation computed over these exact bytes: the store need not hash again
    const entries = await this.#store.append(plan.txs.map((t) => (t.ueKey ? { tx: t.tx, ueKey: t.ueKey, leafHash: t.leaf } : { tx: t.tx, leafHash: t.leaf })));
    // the store derived its header itself: it must be the consortium's, byte for byte (its
    // own checkpoint names the new block's hash, without re-reading the block)
    const info = this.#store.info();
    const storedBlock = parseCheckpoint(this.#store.checkpoint().note).block;
    if (info.height !== h + 1 || !storedBlock || storedBlock.height !== h || !equalBytes(storedBlock.hash, plan.hash)) {
      const err = new DivsError('LEDGER_DIVERGED', `block ${h} was stored with another hash than the consortium's`);
      this.#halt(err);
      throw err;
    }
    this.#log.debug({ height: h, txs: plan.txs.length, own: owners !== undefined, afterMs: Math.round(performance.now() - this.#tipSince) }, 'block stored');
    this.#prevSize = this.#tip.size;
    this.#tip = plan.next;
    this.#tipSince = performance.now();
    this.#note = note;
    this.#text = text;
    this.#served = undefined;
    this.#cosignature = cos.bytes;
    if (plan.membership) {
      const gone = this.#membership.nodes().filter((n) => !plan.membership?.orgOfNode(n.name));
      for (const n of gone) this.#book.forget(n.name);
      this.#membership = plan.membership;
      this.#log.info({ height: h, config: plan.membership.describe() }, 'consortium configuration changed');
    }
    if (owners) {
      let at = 0;
      for (const p of owners) {
        p.resolve(entries.slice(at, at + p.checked.length));
        at += p.checked.length;
      }
    } else if (this.#onForeign) {
      const mine = entries.filter((_, i) => plan.txs[i]?.kind === 'endorsement');
      if (mine.length > 0) {
        try {
          this.#onForeign(mine);
        } catch (e) {
          this.#log.error({ err: e }, 'onForeignEntries failed');
        }
      }
    }
    if (!this.#closed && this.#cosignature) this.#cosignOut.set(this.#cosignature);
    // nothing to append (once the appends this block answered have had their turn to append
    // again): the others need not wait for this node's turn
    setImmediate(() => {
      if (this.#tip.height === h + 1) this.#passIfIdle();
    });
    for (const w of [...this.#heightWaiters]) w();
    if (this.#pending.length > 0) this.#kick();
  }

  async #signTip(): Promise<void> {
    const t = this.#tip;
    const text = formatCheckpoint({
      origin: this.ledgerId,
      size: t.size,
      rootHash: t.frontier.root(),
      stateRoot: t.stateRoot,
      ...(t.height > 0 ? { block: { height: t.height - 1, hash: t.lastHash } } : {}),
    });
    this.#text = text;
    this.#note = await signCheckpoint(text, this.nodeName, this.#o.signer);
    this.#cosignature = (await cosign(text, this.nodeName, this.#o.signer, this.#o.certChain)).bytes;
    this.#served = undefined;
  }

  // ---------------------------------------------------------------- cosignatures

  #onCosignature(name: string, value: Uint8Array): void {
    if (name === this.nodeName) return;
    try {
      const c = verifyCosignature(value, this.#membership, new Date(this.#now()));
      if (c.name !== name) fail('INVALID_CHECKPOINT', `cosignature of ${c.name} published under ${name}`);
      this.#book.add(c);
      if (c.size === this.#tip.size) this.#served = undefined;
      for (const w of [...this.#heightWaiters]) w();
    } catch (e) {
      this.#log.warn({ from: name, err: asDivs(e).message }, 'cosignature refused');
    }
  }

  /** Another node stored block `value` and had nothing to append then: its next turn passes. */
  #onPass(name: string, value: Uint8Array): void {
    const h = Number(new TextDecoder().decode(value));
    if (name === this.nodeName || !Number.isSafeInteger(h) || h < 0 || h <= (this.#passed.get(name) ?? -1)) return;
    this.#passed.set(name, h);
    if (this.#pending.length > 0) this.#kick();
  }

  /** Names of the other nodes that cosigned this node's current checkpoint. */
  cosigners(): string[] {
    return this.#book.linesFor(this.#text, this.#tip.size, this.nodeName).map((l) => l.slice(2, l.indexOf(' ', 2)));
  }

  // ---------------------------------------------------------------- the Ledger interface

  info(): LedgerInfo {
    return this.#store.info();
  }

  /**
   * Appends items as one block through the consortium: each tx is validated now (signature,
   * membership, structure); the block is proposed through etcd and the call resolves when it
   * is committed and stored here. Throws (rejects) BATCH_TOO_LARGE, MESSAGE_TOO_LARGE,
   * INVALID_ARGUMENT, the validation codes (INVALID_SIGNATURE, NOT_MEMBER, NOT_LATEST, …),
   * ORDERING_UNAVAILABLE when etcd has no quorum, UNAVAILABLE when closed.
   */
  append(items: AppendItem[]): Promise<LedgerEntry[]> {
    let p: Omit<Pending, 'resolve' | 'reject'>;
    try {
      p = this.#checkAppend(items);
    } catch (e) {
      return Promise.reject(asDivs(e));
    }
    return new Promise<LedgerEntry[]>((resolve, reject) => {
      this.#pending.push({ ...p, resolve, reject });
      this.#kick();
    });
  }

  #checkAppend(items: AppendItem[]): Omit<Pending, 'resolve' | 'reject'> {
    if (this.#closed) fail('UNAVAILABLE', 'the ledger is closed');
    if (this.#halted) throw this.#halted;
    if (!Array.isArray(items) || items.length === 0) fail('INVALID_ARGUMENT', 'append: at least one item is required');
    if (items.length > this.#maxTxs) fail('BATCH_TOO_LARGE', `append: at most ${this.#maxTxs} items`);
    const at = new Date(Math.max(this.#tip.lastTimestamp, this.#now()));
    let bytes = 0;
    const keys = new Set<string>();
    const checked = items.map((it, i) => {
      if (typeof it !== 'object' || it === null || !(it.tx instanceof Uint8Array) || it.tx.length === 0) fail('INVALID_ARGUMENT', `append[${i}]: tx must be non-empty bytes`);
      bytes += it.tx.length;
      if (bytes > this.#maxBytes) fail('MESSAGE_TOO_LARGE', `append: more than ${this.#maxBytes} bytes`);
      let c: CheckedTx;
      try {
        c = checkTx(copy(it.tx), { membership: this.#membership, genesis: this.#genesis, height: Math.max(1, this.#tip.height), at, verifySignature: true, madeHere: this.#madeHere });
      } catch (e) {
        const err = asDivs(e);
        throw new DivsError(err.code, `append[${i}]: ${err.message}`, { cause: e });
      }
      if (c.kind === 'endorsement') {
        const k = hexOf(c.ueKey as Uint8Array);
        if (it.ueKey !== undefined && !(it.ueKey instanceof Uint8Array && equalBytes(it.ueKey, c.ueKey as Uint8Array))) fail('INVALID_ARGUMENT', `append[${i}]: ueKey differs from the endorsement's UE key`);
        if (keys.has(k)) fail('INVALID_ARGUMENT', `append[${i}]: a second version of one UE key in one append`);
        keys.add(k);
      }
      return c;
    });
    const config = checked.some((c) => c.kind === 'config');
    if (config && checked.length !== 1) fail('INVALID_ARGUMENT', 'append: a configuration update must be appended alone');
    return { checked, membership: this.#membership, validUntil: validUntilOf(checked), bytes, keys, config, genesis: false };
  }

  /**
   * Submits a configuration update approved off-line (SignedConfigUpdate bytes) [BC-5]: it is
   * checked against the configuration in force now (CONFIG_MAJORITY_MISSING when short of a
   * majority), appended alone in a block, and checked again by every node when applied.
   */
  async submitConfigUpdate(signedUpdate: Uint8Array): Promise<{ entry: LedgerEntry; membership: Membership }> {
    verifyConfigUpdate(signedUpdate, this.#membership, new Date(Math.max(this.#tip.lastTimestamp, this.#now())));
    const [entry] = await this.append([{ tx: configTx(signedUpdate, this.#now()) }]);
    if (!entry) fail('INTERNAL', 'no entry');
    return { entry, membership: this.#membership };
  }

  get(txId: number): LedgerEntry | undefined {
    return this.#store.get(txId);
  }

  history(ueKey: Uint8Array): LedgerEntry[] {
    return this.#store.history(ueKey);
  }

  latest(ueKey: Uint8Array): LedgerEntry | undefined {
    return this.#store.latest(ueKey);
  }

  /** This node's checkpoint of its copy, with the cosignatures of the nodes that verified the same tree. */
  checkpoint(): SignedCheckpoint {
    if (this.#closed) fail('UNAVAILABLE', 'the ledger is closed');
    this.#served ??= withCosignatures(this.#note, this.#book.linesFor(this.#text, this.#tip.size, this.nodeName));
    return { note: this.#served, certChain: this.#o.certChain.map(copy) };
  }

  inclusionProof(txId: number, treeSize?: number): InclusionProof {
    return this.#store.inclusionProof(txId, treeSize);
  }

  consistencyProof(oldSize: number, newSize: number): ConsistencyProof {
    return this.#store.consistencyProof(oldSize, newSize);
  }

  latestProof(ueKey: Uint8Array): LatestProof {
    return this.#store.latestProof(ueKey);
  }

  blocks(fromHeight: number, max: number): StoredBlock[] {
    return this.#store.blocks(fromHeight, max);
  }

  // ---------------------------------------------------------------- consortium extras

  /** The configuration in force. */
  membership(): Membership {
    return this.#membership;
  }

  /** Blocks this node refused (newest last, at most 100). */
  refusals(): BlockRefusal[] {
    return this.#refusals.map((r) => ({ ...r }));
  }

  /** Sets the receiver of entries this process did not append (e.g. the UE index). */
  onForeignEntries(fn: (entries: LedgerEntry[]) => void): void {
    this.#onForeign = fn;
  }

  /** Whether the first catch-up with etcd completed. */
  get synced(): boolean {
    return this.#synced;
  }

  /** Set when the node stopped following the ledger (diverged or unstorable block). */
  get halted(): DivsError | undefined {
    return this.#halted;
  }

  /**
   * Resolves once the ledger has at least `height` blocks and, if asked, at least
   * `cosigners` other nodes cosigned its current checkpoint; TIMEOUT after `timeoutMs`.
   */
  async waitFor(cond: { height?: number; cosigners?: number }, timeoutMs = 10_000): Promise<void> {
    const ok = (): boolean => this.#tip.height >= (cond.height ?? 0) && this.cosigners().length >= (cond.cosigners ?? 0);
    if (ok()) return;
    await new Promise<void>((resolve, reject) => {
      const done = (): void => {
        if (!ok() && !this.#closed) return;
        clearTimeout(t);
        this.#heightWaiters.delete(done);
        if (this.#closed && !ok()) reject(new DivsError('UNAVAILABLE', 'the ledger is closed'));
        else resolve();
      };
      const t = setTimeout(() => {
        this.#heightWaiters.delete(done);
        reject(new DivsError('TIMEOUT', `ledger ${this.nodeName} did not reach ${JSON.stringify(cond)} within ${timeoutMs} ms (height ${this.#tip.height}, cosigners ${this.cosigners().length})`));
      }, timeoutMs);
      this.#heightWaiters.add(done);
    });
  }
}

// ---------------------------------------------------------------- helpers

/** Until when every signer certificate of `txs` is valid (config txs: judged at proposal anyway). */
function validUntilOf(txs: CheckedTx[]): number {
  let t = Infinity;
  for (const c of txs) {
    if (c.kind === 'config') return -Infinity;
    const until = c.signer?.chain.validUntil.getTime();
    if (until !== undefined && until < t) t = until;
  }
  return t;
}

/** How many turn timeouts a node waits for an owner that follows the ledger (see #turnWait). */
const BUSY_TURN_FACTOR = 5;

/** The newest value of one etcd key, put one at a time: values set meanwhile, only the last goes. */
class LatestValue {
  readonly #etcd: EtcdClient;
  readonly #key: string;
  readonly #onError: (e: unknown) => void;
  #next: Uint8Array | undefined;
  #busy = false;

  constructor(etcd: EtcdClient, key: string, onError: (e: unknown) => void) {
    this.#etcd = etcd;
    this.#key = key;
    this.#onError = onError;
  }

  set(value: Uint8Array): void {
    this.#next = value;
    if (!this.#busy) this.#flush();
  }

  #flush(): void {
    const v = this.#next;
    if (v === undefined) return;
    this.#next = undefined;
    this.#busy = true;
    this.#etcd
      .put(this.#key, v)
      .catch(this.#onError)
      .finally(() => {
        this.#busy = false;
        this.#flush();
      });
  }
}

function checkOptions(o: ConsortiumLedgerOptions): void {
  if (typeof o !== 'object' || o === null) fail('CONFIG_INVALID', 'consortium ledger options missing');
  if (!(o.genesis instanceof Membership)) fail('CONFIG_INVALID', 'consortium ledger: genesis configuration missing');
  if (typeof o.path !== 'string' || o.path.length === 0) fail('CONFIG_INVALID', 'consortium ledger: path missing');
  if (!isValidKeyName(o.nodeName)) fail('CONFIG_INVALID', 'consortium ledger: nodeName must be non-empty, without spaces or "+"');
  if (!Array.isArray(o.certChain) || o.certChain.length === 0) fail('CONFIG_INVALID', 'consortium ledger: certChain missing');
  for (const [k, v, min] of [
    ['retainBlocks', o.retainBlocks, 0],
    ['compactEvery', o.compactEvery, 0],
    ['maxBlockTxs', o.maxBlockTxs, 1],
    ['maxBlockBytes', o.maxBlockBytes, 1024],
    ['turnTimeoutMs', o.turnTimeoutMs, 0],
    ['pollIntervalMs', o.pollIntervalMs, 10],
    ['syncTimeoutMs', o.syncTimeoutMs, 0],
  ] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < min)) fail('CONFIG_INVALID', `consortium ledger: ${k} must be an integer ≥ ${min}`);
  }
}

/** The chain tip and the configuration in force, from a stored (already re-verified) copy. */
function restore(store: LocalLedger, genesis: Membership): { tip: ChainTip; membership: Membership } {
  const info = store.info();
  const frontier = frontierOf(store, info.size);
  if (!equalBytes(frontier.root(), info.rootHash)) fail('LEDGER_CORRUPT', 'tree frontier does not match the ledger root');
  let lastHash: Uint8Array = GENESIS_PREV;
  let lastTimestamp = 0;
  let membership = genesis;
  const PAGE = 64;
  for (let h = 0; h < info.height; h += PAGE) {
    for (const b of store.blocks(h, PAGE)) {
      const hd = BlockHeader.decode(b.header);
      lastHash = b.hash;
      lastTimestamp = hd.timestampMs;
      if (hd.proposer !== CONSORTIUM_PROPOSER) fail('WRONG_LEDGER', `block ${b.height} of ${store.ledgerId} was not made by a consortium (proposer ${hd.proposer})`);
      if (b.txs.length !== 1) continue;
      const tx = LedgerTx.decode(b.txs[0] as Uint8Array);
      if (tx.type !== TxType.TX_TYPE_CONFIG) continue;
      if (b.height === 0) {
        if (!equalBytes(b.txs[0] as Uint8Array, genesisTx(genesis))) fail('WRONG_LEDGER', 'the ledger file holds another consortium (its genesis configuration differs)');
        continue;
      }
      try {
        configOfTx(tx);
        membership = verifyConfigUpdate(tx.payload, membership, new Date(hd.timestampMs)).next;
      } catch (e) {
        throw new DivsError('LEDGER_DIVERGED', `configuration block ${b.height} no longer verifies: ${asDivs(e).message}`, { cause: e });
      }
    }
  }
  if (info.height > 0 && !equalBytes(lastHash, (store.blocks(info.height - 1, 1)[0] as StoredBlock).hash)) fail('LEDGER_CORRUPT', 'block chain changed while opening');
  return { tip: { height: info.height, size: info.size, lastHash, lastTimestamp, stateRoot: info.stateRoot, frontier }, membership };
}
