/**
 * @module ledger/consortium/block
 * Consortium blocks: what a proposer builds and what every node checks before a block may
 * touch its store [FW-BC] [BC-1]. Pure apart from reading the node's own store through
 * {@link LedgerState}; no etcd, no gRPC.
 *
 * A block travels (in etcd, and between nodes over RP-dd) as a `GetBlocksResponse`: exact
 * BlockHeader bytes and exact LedgerTx bytes. A node accepts it only if all of this holds,
 * in this order (the first failure names the refusal):
 * 1. it decodes, its header is canonically encoded, names this ledger, the next height, the
 *    hash of this node's newest block (hash link), the next tx ID, its own tx count, a time
 *    not before the previous block's, and the consortium proposer;
 * 2. every transaction decodes and is either
 *    - an endorsement whose AS certificate chain verifies, at the block's time, against the
 *      CA of a member organization and names one of its nodes (NOT_MEMBER otherwise), whose
 *      `as_id` is that node, whose AS signature verifies over the exact endorsement bytes
 *      (INVALID_SIGNATURE) and whose `ue_key` is the SHA-256 of the UE public key it endorses;
 *    - or a configuration update, alone in its block, approved by a majority of the
 *      organizations in force (governance/config-update.ts) — block 0 holds exactly the
 *      genesis configuration;
 * 3. the block holds at most one version per UE key, and each version extends the UE's
 *    latest one on this node's ledger (version 1 for a new key; otherwise previous tx ID and
 *    hash name the latest and the version is one more) — NOT_LATEST otherwise;
 * 4. tx_root (RFC 9162 root over all txs so far) and state_root (sparse Merkle tree of latest
 *    versions) recomputed by this node equal the header's.
 * Refusals are coded DivsErrors; structural ones are INVALID_BLOCK.
 */
import {
  BlockHeader,
  Endorsement,
  type LatestProof,
  LedgerTx,
  RegistrationParams,
  SignedEndorsement,
  TxType,
} from '../../../../proto/gen/divs/v1/common.ts';
import { hash as oneShotHash } from 'node:crypto';
import { constants as zlibConstants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { GetBlocksResponse } from '../../../../proto/gen/divs/v1/as_sync.ts';
import { Domain, equalBytes, pae, sha256, toHex } from '../../../../protocol/src/bytes.ts';
import { DivsError, fail } from '../../../../protocol/src/errors.ts';
import { MerkleFrontier, leafHash } from '../../../../protocol/src/merkle.ts';
import { nodeVerify, nodeVerifyAsync } from '../../../../protocol/src/suites.ts';
import type { Membership, MemberSigner } from '../../governance/membership.ts';
import { genesisTx, verifyConfigUpdate, type VerifiedConfigUpdate } from '../../governance/config-update.ts';
import type { LedgerEntry } from '../types.ts';
import { nextStateRoot } from './state-root.ts';

/**
 * `proposer` of every consortium block header. Blocks are cut by the ordering service, and
 * every node must derive byte-identical headers; who proposed a block is recorded in the
 * node logs, and every transaction carries its endorsing AS's signature anyway.
 */
export const CONSORTIUM_PROPOSER = 'consortium';

/** previous_block_hash of block 0. */
export const GENESIS_PREV = new Uint8Array(32);

/** The newest block of a node's ledger, and what the next block must build on. */
export interface ChainTip {
  /** Number of blocks (the next block's height). */
  height: number;
  /** Number of txs (the next block's first tx ID). */
  size: number;
  lastHash: Uint8Array;
  lastTimestamp: number;
  stateRoot: Uint8Array;
  /** Right edge of the RFC 9162 tree over all txs. */
  frontier: MerkleFrontier;
}

/** Read access to the node's own store, for version checks and state proofs. */
export interface LedgerState {
  latest(ueKey: Uint8Array): LedgerEntry | undefined;
  latestProof(ueKey: Uint8Array): LatestProof;
  /**
   * The state root after the next block sets these (UE key, leaf hash, tx ID), computed on the
   * store's own tree whose root must be `fromRoot`; the store may keep the staged update for the
   * append of that block. Without it the root is computed from latest-version proofs.
   */
  stageStateRoot?(updates: ReadonlyArray<readonly [Uint8Array, Uint8Array, number]>, fromRoot: Uint8Array): Uint8Array;
}

/** A transaction that passed {@link checkTx}. */
export interface CheckedTx {
  tx: Uint8Array;
  leaf: Uint8Array;
  kind: 'endorsement' | 'config';
  /** Endorsements: the UE key, version and previous version named. */
  ueKey?: Uint8Array;
  version?: number;
  previousTxId?: number;
  previousTxHash?: Uint8Array;
  signer?: MemberSigner;
  /** Config updates (not the genesis): the verified next configuration. */
  config?: VerifiedConfigUpdate;
  genesis?: boolean;
}

export interface CheckContext {
  membership: Membership;
  /** The genesis configuration (block 0 must hold exactly it). */
  genesis: Membership;
  /** Height of the block the tx goes into. */
  height: number;
  /** The block's time: certificates must be valid then. */
  at: Date;
  /** false only for txs this node verified already (its own appends). */
  verifySignature: boolean;
  /** True for an AS signature this node made itself over exactly these bytes: not verified again. */
  madeHere?: (signer: MemberSigner, input: Uint8Array, sig: Uint8Array) => boolean;
  /** Takes the AS signature check over (the caller verifies it later, e.g. in parallel). */
  deferSignature?: (signer: MemberSigner, input: Uint8Array, sig: Uint8Array) => void;
}

function decodeExact<T>(codec: { decode(b: Uint8Array): T; encode(m: T): { finish(): Uint8Array } }, bytes: Uint8Array, what: string): T {
  let m: T;
  try {
    m = codec.decode(bytes);
  } catch (e) {
    fail('INVALID_BLOCK', `${what} does not decode`, e);
  }
  // a leaf hash covers exact bytes: a second encoding of the same content is not accepted
  if (!equalBytes(codec.encode(m).finish(), bytes)) fail('INVALID_BLOCK', `${what} is not canonically encoded`);
  return m;
}

function decodeLoose<T>(codec: { decode(b: Uint8Array): T }, bytes: Uint8Array, what: string): T {
  try {
    return codec.decode(bytes);
  } catch (e) {
    fail('INVALID_BLOCK', `${what} does not decode`, e);
  }
}

const badSignature = (signer: MemberSigner): DivsError => new DivsError('INVALID_SIGNATURE', `the AS signature of ${signer.node} over the endorsement does not verify`);

/** Checks one transaction on its own (see the module header, step 2). */
export function checkTx(tx: Uint8Array, ctx: CheckContext): CheckedTx {
  if (!(tx instanceof Uint8Array) || tx.length === 0) fail('INVALID_BLOCK', 'empty transaction');
  // the leaf hash covers the exact tx bytes, however they encode their fields
  const ltx = decodeLoose(LedgerTx, tx, 'ledger tx');
  const leaf = leafHash(tx);
  if (ltx.type === TxType.TX_TYPE_CONFIG) {
    if (ctx.height === 0) {
      if (!equalBytes(tx, genesisTx(ctx.genesis))) fail('INVALID_BLOCK', 'block 0 must hold exactly the genesis configuration of this consortium');
      return { tx, leaf, kind: 'config', genesis: true };
    }
    return { tx, leaf, kind: 'config', config: verifyConfigUpdate(ltx.payload, ctx.membership, ctx.at) };
  }
  if (ltx.type !== TxType.TX_TYPE_ENDORSEMENT) fail('INVALID_BLOCK', `unknown transaction type ${ltx.type}`);
  if (ctx.height === 0) fail('INVALID_BLOCK', 'block 0 must hold the genesis configuration');
  // inner messages need not be canonical: the leaf covers the tx bytes, the AS signature the
  // exact endorsement bytes
  const signed = decodeLoose(SignedEndorsement, ltx.payload, 'signed endorsement');
  const en = decodeLoose(Endorsement, signed.endorsement, 'endorsement');
  const signer = ctx.membership.identify(signed.certChain, ctx.at, 'as');
  if (en.asId !== signer.node) fail('NOT_MEMBER', `endorsement names AS ${en.asId} but is signed by ${signer.node}`);
  if (ctx.verifySignature) {
    const input = pae(Domain.endorsement, signed.endorsement);
    if (ctx.madeHere?.(signer, input, signed.signature) === true) {
      // made here, under this node's key: valid by construction
    } else if (ctx.deferSignature) {
      ctx.deferSignature(signer, input, signed.signature);
    } else if (!nodeVerify(signer.chain.suite, signer.chain.publicKey, input, signed.signature)) {
      throw badSignature(signer);
    }
  }
  let params: RegistrationParams;
  try {
    params = RegistrationParams.decode(en.registration?.params ?? new Uint8Array(0));
  } catch (e) {
    fail('INVALID_BLOCK', 'endorsed registration parameters do not decode', e);
  }
  const pk = params.publicKey?.key;
  if (!pk || pk.length === 0) fail('INVALID_BLOCK', 'endorsement has no UE public key');
  if (!(en.ueKey instanceof Uint8Array) || !equalBytes(en.ueKey, oneShotHash('sha256', pk, 'buffer'))) fail('INVALID_BLOCK', 'endorsement ue_key is not the SHA-256 of the UE public key');
  if (!Number.isSafeInteger(en.version) || en.version < 1) fail('INVALID_BLOCK', 'endorsement version must be ≥ 1');
  return { tx, leaf, kind: 'endorsement', ueKey: en.ueKey, version: en.version, previousTxId: en.previousTxId, previousTxHash: en.previousTxHash, signer };
}

/** A block ready to be stored: exact header bytes, its hash, and the chain after it. */
export interface BlockPlan {
  header: Uint8Array;
  fields: BlockHeader;
  hash: Uint8Array;
  txs: CheckedTx[];
  /** The chain tip once the block is stored. */
  next: ChainTip;
  /** The configuration in force after the block (when it changes it). */
  membership?: Membership;
}

/**
 * Checks the block-level rules (steps 3 and 4 of the module header) for `txs` on top of `tip`
 * and builds the header a block with them must have. `txs` must have passed {@link checkTx}.
 */
export function planBlock(ledgerId: string, tip: ChainTip, txs: CheckedTx[], state: LedgerState, timestampMs: number, opts: { versionsChecked?: boolean } = {}): BlockPlan {
  if (txs.length === 0) fail('INVALID_BLOCK', 'a block holds at least one transaction');
  const configs = txs.filter((t) => t.kind === 'config');
  if (configs.length > 0 && txs.length !== 1) fail('INVALID_BLOCK', 'a configuration transaction must be alone in its block');
  if (tip.height === 0 && !txs[0]?.genesis) fail('INVALID_BLOCK', 'block 0 must hold the genesis configuration');
  if (!Number.isSafeInteger(timestampMs) || timestampMs < tip.lastTimestamp) fail('INVALID_BLOCK', `block time ${timestampMs} is before the previous block's (${tip.lastTimestamp})`);

  // step 3: one version per UE key, each extending the latest on this ledger
  const seen = new Set<string>();
  const updates: [Uint8Array, Uint8Array, number][] = [];
  for (const [i, t] of txs.entries()) {
    if (t.kind !== 'endorsement') continue;
    const ueKey = t.ueKey as Uint8Array;
    const k = toHex(ueKey);
    if (seen.has(k)) fail('INVALID_BLOCK', `tx ${i}: a second version of one UE key in one block`);
    seen.add(k);
    if (!opts.versionsChecked) {
      const err = versionError(t, state.latest(ueKey));
      if (err) throw new DivsError(err.code, `tx ${i}: ${err.message}`);
    }
    updates.push([ueKey, t.leaf, tip.size + i]);
  }

  // step 4: the roots this block leads to
  const frontier = tip.frontier.clone();
  for (const t of txs) frontier.push(t.leaf);
  const txRoot = frontier.root();
  // on the store's own tree when it offers that (its update is then reused by the append),
  // else from latest-version proofs; both give the root the store will have
  const stateRoot =
    updates.length === 0
      ? tip.stateRoot
      : state.stageStateRoot !== undefined
        ? state.stageStateRoot(updates, tip.stateRoot)
        : nextStateRoot(tip.stateRoot, updates.map(([k]) => state.latestProof(k)), updates.map(([k, v]) => [k, v] as const));
  const fields: BlockHeader = {
    ledgerId,
    height: tip.height,
    previousBlockHash: tip.lastHash,
    firstTxId: tip.size,
    txCount: txs.length,
    txRoot,
    stateRoot,
    timestampMs,
    proposer: CONSORTIUM_PROPOSER,
  };
  const header = BlockHeader.encode(fields).finish();
  const hash = sha256(header);
  const cfg = configs[0];
  const plan: BlockPlan = {
    header,
    fields,
    hash,
    txs,
    next: { height: tip.height + 1, size: tip.size + txs.length, lastHash: hash, lastTimestamp: timestampMs, stateRoot, frontier },
  };
  if (cfg?.config) plan.membership = cfg.config.next;
  return plan;
}

/**
 * Why an endorsement cannot be the next version of its UE key given the UE's latest entry on
 * this ledger (step 3 of the module header), or undefined when it can.
 */
export function versionError(t: CheckedTx, latest: LedgerEntry | undefined): DivsError | undefined {
  const v = t.version as number;
  if (latest === undefined) {
    if (v !== 1) return new DivsError('NOT_LATEST', `version ${v} of a UE key that has no version on the ledger`);
    if (t.previousTxId !== 0 || (t.previousTxHash?.length ?? 0) !== 0) return new DivsError('NOT_LATEST', 'version 1 must not name a previous version');
    return undefined;
  }
  if (v === 1) return new DivsError('NOT_LATEST', `version 1 of a UE key already endorsed (tx ${latest.txId})`);
  if (t.previousTxId !== latest.txId || !equalBytes(t.previousTxHash ?? new Uint8Array(0), latest.leafHash)) {
    return new DivsError('NOT_LATEST', `the previous version named is not the UE's latest (tx ${latest.txId})`);
  }
  let prevVersion: number;
  try {
    const ltx = LedgerTx.decode(latest.tx);
    prevVersion = Endorsement.decode(SignedEndorsement.decode(ltx.payload).endorsement).version;
  } catch (e) {
    return new DivsError('LEDGER_CORRUPT', `tx ${latest.txId} on this ledger is not an endorsement`, { cause: e });
  }
  if (v !== prevVersion + 1) return new DivsError('NOT_LATEST', `version ${v} does not follow version ${prevVersion}`);
  return undefined;
}

const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/**
 * Bytes of a block as stored in etcd: the GetBlocksResponse encoding (as RP-dd sends it),
 * compressed with zstd (level 1). Endorsements of one AS repeat its certificate chain, so a
 * block shrinks ~6x for ~3 ms per MB — which is what etcd then replicates, writes, and sends
 * to every watcher.
 */
export function encodeEnvelope(header: Uint8Array, txs: Uint8Array[], o: { compress?: boolean } = {}): Uint8Array {
  const raw = GetBlocksResponse.encode({ header, txs }).finish();
  if (o.compress === false) return raw;
  return new Uint8Array(zstdCompressSync(raw, { params: { [zlibConstants.ZSTD_c_compressionLevel]: 1 } }));
}

export interface ValidateOptions {
  ledgerId: string;
  tip: ChainTip;
  membership: Membership;
  genesis: Membership;
  state: LedgerState;
  maxTxs: number;
}

/**
 * Validates a block received from etcd or a peer against this node's chain (all four steps
 * of the module header) and returns the plan to store it. Rejects with the coded refusal.
 * The AS signatures are checked on libuv's thread pool (several cores) while this thread
 * checks the rest; the refusal is the one a check in the module header's order gives (the
 * first tx whose signature or structure fails, before any block-level rule).
 */
export async function validateBlock(header: Uint8Array, txs: Uint8Array[], o: ValidateOptions): Promise<BlockPlan> {
  if (!(header instanceof Uint8Array) || !Array.isArray(txs)) fail('INVALID_BLOCK', 'malformed block');
  const h = decodeExact(BlockHeader, header, 'block header');
  const { tip } = o;
  if (h.ledgerId !== o.ledgerId) fail('INVALID_BLOCK', `block names ledger ${h.ledgerId}, not ${o.ledgerId}`);
  if (h.height !== tip.height) fail('INVALID_BLOCK', `block height ${h.height}, expected ${tip.height}`);
  if (!equalBytes(h.previousBlockHash, tip.lastHash)) fail('INVALID_BLOCK', `block ${h.height} does not link to block ${tip.height - 1} (previous block hash differs)`);
  if (h.firstTxId !== tip.size) fail('INVALID_BLOCK', `block ${h.height}: first tx ${h.firstTxId}, expected ${tip.size}`);
  if (h.txCount !== txs.length) fail('INVALID_BLOCK', `block ${h.height}: header counts ${h.txCount} txs, the block holds ${txs.length}`);
  if (txs.length === 0 || txs.length > o.maxTxs) fail('INVALID_BLOCK', `block ${h.height}: ${txs.length} txs (1 to ${o.maxTxs} allowed)`);
  if (h.proposer !== CONSORTIUM_PROPOSER) fail('INVALID_BLOCK', `block ${h.height}: proposer must be ${CONSORTIUM_PROPOSER}`);
  if (h.timestampMs < tip.lastTimestamp) fail('INVALID_BLOCK', `block ${h.height}: time goes backwards`);
  const at = new Date(h.timestampMs);
  const txError = (i: number, e: unknown): unknown => (e instanceof DivsError ? new DivsError(e.code, `block ${h.height}, tx ${i}: ${e.message}`, { cause: e }) : e);
  const signatures: Promise<boolean>[] = [];
  const signers: MemberSigner[] = [];
  const checked: CheckedTx[] = [];
  let failure: unknown;
  let failedAt = txs.length;
  for (const [i, tx] of txs.entries()) {
    try {
      checked.push(
        checkTx(tx, {
          membership: o.membership,
          genesis: o.genesis,
          height: h.height,
          at,
          verifySignature: true,
          deferSignature: (signer, input, sig) => {
            signatures[i] = nodeVerifyAsync(signer.chain.suite, signer.chain.publicKey, input, sig);
            signers[i] = signer;
          },
        }),
      );
    } catch (e) {
      failure = txError(i, e);
      failedAt = i;
      break;
    }
  }
  let plan: BlockPlan | undefined;
  if (failure === undefined) {
    try {
      plan = planBlock(o.ledgerId, tip, checked, o.state, h.timestampMs);
      if (!equalBytes(plan.fields.txRoot, h.txRoot)) fail('INVALID_BLOCK', `block ${h.height}: tx_root does not match its transactions`);
      if (!equalBytes(plan.fields.stateRoot, h.stateRoot)) fail('INVALID_BLOCK', `block ${h.height}: state_root does not match its UE keys and versions`);
      if (!equalBytes(plan.header, header)) fail('INVALID_BLOCK', `block ${h.height}: header differs from the one its content determines`);
    } catch (e) {
      failure = e;
    }
  }
  const valid = await Promise.all(signatures);
  for (let i = 0; i < failedAt; i++) {
    if (valid[i] === false) throw txError(i, badSignature(signers[i] as MemberSigner));
  }
  if (failure !== undefined || plan === undefined) throw failure;
  return plan;
}

/**
 * Decodes an etcd value: zstd-compressed (see {@link encodeEnvelope}) or a bare
 * GetBlocksResponse. INVALID_BLOCK when it does not decode or inflates beyond `maxBytes`.
 */
export function decodeEnvelope(bytes: Uint8Array, maxBytes: number): GetBlocksResponse {
  let raw = bytes;
  if (bytes.length >= 4 && ZSTD_MAGIC.every((b, i) => bytes[i] === b)) {
    try {
      // bounded: a small value must not be able to inflate into gigabytes
      raw = zstdDecompressSync(bytes, { maxOutputLength: maxBytes });
    } catch (e) {
      fail('INVALID_BLOCK', 'compressed block does not inflate (or is too large)', e);
    }
  }
  try {
    return GetBlocksResponse.decode(raw);
  } catch (e) {
    fail('INVALID_BLOCK', 'block bytes do not decode', e);
  }
}
