/**
 * @module explorer
 * Read-only views of the ledger for the operator's dashboard (no transport: the HTTP adapter
 * in http.ts serves them as JSON): ledger overview, blocks, transactions with their decoded
 * endorsement and inclusion proof, a UE's history of versions, checkpoints and their
 * (co)signatures. Every byte string is lower-case hex; times are milliseconds since the epoch.
 *
 * Each view re-checks what it can cheaply (AS and UE signatures, inclusion proof against the
 * signed checkpoint) so the operator sees at a glance whether what is stored still verifies.
 * Blocks are immutable, so per-block summaries are cached (bounded).
 */
import { X509Certificate } from 'node:crypto';
import {
  BlockHeader,
  ContractState,
  EndorsementReason,
  LedgerTx,
  RegistrationParams,
  TxType,
  type AccountStatus,
  type UeIdentity,
} from '../../proto/gen/divs/v1/common.ts';
import { fail } from '../../protocol/src/errors.ts';
import { Domain, pae, toHex } from '../../protocol/src/bytes.ts';
import { importPublicKey, nodeVerify, suiteName, suiteOfKeyObject, type Suite } from '../../protocol/src/suites.ts';
import { leafHash, verifyInclusion } from '../../protocol/src/merkle.ts';
import { checkpointSignedBy, parseCheckpoint } from '../../protocol/src/checkpoint.ts';
import { validateLookupIdentity } from '../../protocol/src/identity.ts';
import type { EndorsementContract } from './contract.ts';
import type { LedgerEntry, StoredBlock } from './ledger/types.ts';
import { decodeEndorsementTx, endorsementSigningInput } from './endorse.ts';

/** Largest page of blocks or transactions one call returns. */
export const MAX_PAGE = 200;
const BLOCK_CACHE = 4096;

/** `ENDORSEMENT_REASON_SIM_SWAP` -> `SIM_SWAP`, from a ts-proto enum object. */
function namer(e: Record<string, number>, prefix: string): (v: number) => string {
  const m = new Map(Object.entries(e).map(([k, v]) => [v, k.startsWith(prefix) ? k.slice(prefix.length) : k]));
  return (v) => m.get(v) ?? `UNKNOWN(${v})`;
}
export const reasonName = namer(EndorsementReason, 'ENDORSEMENT_REASON_');
export const contractStateName = namer(ContractState, 'CONTRACT_STATE_');
export const txTypeName = namer(TxType, 'TX_TYPE_');

export interface IdentityView {
  imei: string;
  iccid: string;
  eid: string;
  msisdn: string;
}

export interface BlockSummary {
  height: number;
  hash: string;
  previousHash: string;
  firstTxId: number;
  txCount: number;
  /** Ledger size after this block: the checkpoint size at this block boundary. */
  treeSize: number;
  txRoot: string;
  stateRoot: string;
  timestampMs: number;
  proposer: string;
  /** Endorsements of version 1 in this block. */
  registrations: number;
  /** Endorsements of a later version (status updates). */
  updates: number;
  /** Transactions that are not endorsements (configuration). */
  other: number;
}

export interface TxSummary {
  txId: number;
  leafHash: string;
  blockHeight: number;
  type: string;
  timestampMs: number;
  version?: number;
  reason?: string;
  identity?: IdentityView;
  state?: string;
  ueKey?: string;
}

export interface AccountStatusView {
  plmnId: string;
  operatorName: string;
  contractId: string;
  state: string;
  startTimeMs: number;
  endTimeMs: number;
  terminationTimeMs: number;
  owner: string;
  geoRestrictions: string[];
  terminalType: string;
  identity: IdentityView | null;
  revision: number;
}

export interface CertificateView {
  subject: string;
  issuer: string;
  serialNumber: string;
  validFrom: string;
  validTo: string;
  fingerprint256: string;
}

export interface TxDetail extends TxSummary {
  endorsement?: {
    version: number;
    reason: string;
    asId: string;
    endorsedAtMs: number;
    ueKey: string;
    statusEventSequence: number;
    /** Previous version, absent for version 1. */
    previous: { txId: number; txHash: string } | null;
    /** The next version of the same UE when there is one. */
    next: { txId: number; version: number } | null;
    isLatest: boolean;
    registration: {
      identity: IdentityView | null;
      publicKey: string;
      suite: string;
      suites: string[];
      createdAtMs: number;
      signature: string;
      signatureValid: boolean;
    };
    accountStatus: AccountStatusView | null;
    asSignature: string;
    asSignatureValid: boolean;
    certChain: CertificateView[];
  };
  inclusion: { leafIndex: number; treeSize: number; hashes: string[]; verified: boolean };
  checkpoint: { note: string; size: number; rootHash: string };
}

export interface UeVersionView {
  txId: number;
  version: number;
  reason: string;
  state: string;
  endorsedAtMs: number;
  blockHeight: number;
  leafHash: string;
  previousTxId: number | null;
  identity: IdentityView | null;
  owner: string;
  terminationTimeMs: number;
}

export interface UeView {
  ueKey: string;
  publicKey: string;
  suite: string;
  identity: IdentityView;
  contractState: string;
  latestTxId: number;
  version: number;
  versions: UeVersionView[];
}

export interface SignatureView {
  name: string;
  keyId: string;
  /** `signer` for this AS's own signature, `cosigner` for a witness's. */
  role: 'signer' | 'cosigner';
  /** Verified against the AS certificate (signer); null where no key is known here (cosigners). */
  verified: boolean | null;
}

export interface CheckpointView {
  origin: string;
  size: number;
  rootHash: string;
  stateRoot: string;
  block: { height: number; hash: string } | null;
  note: string;
  signatures: SignatureView[];
}

export interface ExplorerOptions {
  /** Key name of this AS in checkpoint signature lines (its node name). */
  asName: string;
}

const hex = (b: Uint8Array | undefined): string => (b ? toHex(b) : '');

const identityView = (id: UeIdentity | undefined): IdentityView | null => (id ? { imei: id.imei, iccid: id.iccid, eid: id.eid, msisdn: id.msisdn } : null);

function statusView(st: AccountStatus | undefined): AccountStatusView | null {
  if (!st) return null;
  return {
    plmnId: st.plmnId,
    operatorName: st.operatorName,
    contractId: st.contractId,
    state: contractStateName(st.state),
    startTimeMs: st.startTimeMs,
    endTimeMs: st.endTimeMs,
    terminationTimeMs: st.terminationTimeMs,
    owner: st.owner,
    geoRestrictions: [...st.geoRestrictions],
    terminalType: st.terminalType,
    identity: identityView(st.identity),
    revision: st.revision,
  };
}

function certView(der: Uint8Array): CertificateView | null {
  try {
    const c = new X509Certificate(der);
    return { subject: c.subject, issuer: c.issuer, serialNumber: c.serialNumber, validFrom: c.validFrom, validTo: c.validTo, fingerprint256: c.fingerprint256 };
  } catch {
    // a stored chain that does not parse is shown as absent, never a crash
    return null;
  }
}

/** Verifies `sig` over `msg` with the leaf certificate's key; false on anything unusable. */
function verifyWithCert(leaf: Uint8Array | undefined, msg: Uint8Array, sig: Uint8Array): boolean {
  if (!leaf) return false;
  try {
    const key = new X509Certificate(leaf).publicKey;
    return nodeVerify(suiteOfKeyObject(key), key, msg, sig);
  } catch {
    return false;
  }
}

/** A non-negative integer from a query/path parameter; INVALID_ARGUMENT otherwise. */
export function intParam(raw: string | undefined, name: string, dflt?: number): number {
  if (raw === undefined || raw === '') {
    if (dflt === undefined) fail('MISSING_FIELD', `${name}: missing`);
    return dflt;
  }
  if (!/^[0-9]{1,15}$/.test(raw)) fail('INVALID_ARGUMENT', `${name}: not a non-negative integer`);
  return Number(raw);
}

/** Read-only ledger views for the dashboard. */
export class LedgerExplorer {
  readonly #c: EndorsementContract;
  readonly #o: ExplorerOptions;
  readonly #blocks = new Map<number, BlockSummary>();

  constructor(contract: EndorsementContract, opts: ExplorerOptions) {
    this.#c = contract;
    this.#o = opts;
  }

  get #ledger() {
    return this.#c.ledger;
  }

  /** Ledger ID, height, size, roots, registered UEs and the latest checkpoint. */
  overview(): { ledgerId: string; height: number; size: number; rootHash: string; stateRoot: string; registeredUes: number; entryAddress: { ledgerId: string; asUrls: string[] }; asName: string; checkpoint: CheckpointView } {
    const i = this.#ledger.info();
    return {
      ledgerId: i.ledgerId,
      height: i.height,
      size: i.size,
      rootHash: hex(i.rootHash),
      stateRoot: hex(i.stateRoot),
      registeredUes: this.#c.registry.count(),
      entryAddress: { ledgerId: this.#c.entryAddress.ledgerId, asUrls: [...this.#c.entryAddress.asUrls] },
      asName: this.#o.asName,
      checkpoint: this.checkpoint(),
    };
  }

  #stored(height: number): StoredBlock {
    const info = this.#ledger.info();
    if (!Number.isSafeInteger(height) || height < 0 || height >= info.height) fail('UNKNOWN_BLOCK', `no block ${height} on ledger ${info.ledgerId} (height ${info.height})`);
    const [b] = this.#ledger.blocks(height, 1);
    if (!b) fail('UNKNOWN_BLOCK', `no block ${height}`);
    return b;
  }

  #summarize(b: StoredBlock): BlockSummary {
    const h = BlockHeader.decode(b.header);
    let registrations = 0;
    let updates = 0;
    let other = 0;
    for (const tx of b.txs) {
      const s = this.#txSummary(tx, 0, 0);
      if (s.version === undefined) other++;
      else if (s.version <= 1) registrations++;
      else updates++;
    }
    return {
      height: b.height,
      hash: hex(b.hash),
      previousHash: hex(h.previousBlockHash),
      firstTxId: h.firstTxId,
      txCount: h.txCount,
      treeSize: h.firstTxId + h.txCount,
      txRoot: hex(h.txRoot),
      stateRoot: hex(h.stateRoot),
      timestampMs: h.timestampMs,
      proposer: h.proposer,
      registrations,
      updates,
      other,
    };
  }

  /** Summary of one block (cached: blocks never change). */
  blockSummary(height: number): BlockSummary {
    const have = this.#blocks.get(height);
    if (have) return have;
    const s = this.#summarize(this.#stored(height));
    if (this.#blocks.size >= BLOCK_CACHE) this.#blocks.delete(this.#blocks.keys().next().value as number);
    this.#blocks.set(height, s);
    return s;
  }

  /**
   * Blocks `from` .. `from + limit - 1` (oldest first); without `from`, the newest `limit`.
   * Blocks are read one at a time so a page of large batch blocks never sits in memory at once.
   */
  blocks(from: number | undefined, limit = 20): { height: number; from: number; blocks: BlockSummary[] } {
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE) fail('INVALID_ARGUMENT', `limit: must be 1..${MAX_PAGE}`);
    const height = this.#ledger.info().height;
    const start = from ?? Math.max(0, height - limit);
    if (!Number.isSafeInteger(start) || start < 0) fail('INVALID_ARGUMENT', 'from: must be a non-negative integer');
    if (start > height) fail('INVALID_RANGE', `from ${start} is beyond the ledger height ${height}`);
    const out: BlockSummary[] = [];
    for (let h = start; h < Math.min(height, start + limit); h++) out.push(this.blockSummary(h));
    return { height, from: start, blocks: out };
  }

  /** One block: header fields and a page of its transactions. */
  block(height: number, offset = 0, limit = 100): BlockSummary & { txs: TxSummary[]; offset: number } {
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE) fail('INVALID_ARGUMENT', `limit: must be 1..${MAX_PAGE}`);
    const b = this.#stored(height);
    const summary = this.blockSummary(height);
    if (!Number.isSafeInteger(offset) || offset < 0 || (offset > 0 && offset >= b.txs.length)) fail('INVALID_RANGE', `offset: must be below ${b.txs.length}`);
    const txs = b.txs.slice(offset, offset + limit).map((tx, k) => this.#txSummary(tx, summary.firstTxId + offset + k, height));
    return { ...summary, txs, offset };
  }

  #txSummary(bytes: Uint8Array, txId: number, blockHeight: number): TxSummary {
    const base = { txId, leafHash: hex(leafHash(bytes)), blockHeight };
    let tx: LedgerTx;
    try {
      tx = LedgerTx.decode(bytes);
    } catch {
      return { ...base, type: 'UNDECODABLE', timestampMs: 0 };
    }
    if (tx.type !== TxType.TX_TYPE_ENDORSEMENT) return { ...base, type: txTypeName(tx.type), timestampMs: tx.timestampMs };
    try {
      const { endorsement: en } = decodeEndorsementTx(bytes);
      const params = RegistrationParams.decode(en.registration?.params ?? new Uint8Array());
      return {
        ...base,
        type: 'ENDORSEMENT',
        timestampMs: tx.timestampMs,
        version: en.version,
        reason: reasonName(en.reason),
        identity: identityView(en.accountStatus?.identity ?? params.identity) ?? undefined,
        state: contractStateName(en.accountStatus?.state ?? 0),
        ueKey: hex(en.ueKey),
      };
    } catch {
      return { ...base, type: 'ENDORSEMENT', timestampMs: tx.timestampMs };
    }
  }

  /** One transaction with its decoded endorsement, re-checked signatures and inclusion proof. */
  tx(txId: number): TxDetail {
    const e = this.#c.get(txId);
    const summary = this.#txSummary(e.tx, e.txId, e.blockHeight);
    // proof and checkpoint read together, without yielding, so they match
    const cp = this.#ledger.checkpoint();
    const inc = this.#ledger.inclusionProof(e.txId);
    const parsed = parseCheckpoint(cp.note);
    const verified = parsed.size === inc.treeSize && verifyInclusion(e.leafHash, inc.leafIndex, inc.treeSize, inc.hashes, parsed.rootHash);
    const out: TxDetail = {
      ...summary,
      inclusion: { leafIndex: inc.leafIndex, treeSize: inc.treeSize, hashes: inc.hashes.map(hex), verified },
      checkpoint: { note: cp.note, size: parsed.size, rootHash: hex(parsed.rootHash) },
    };
    if (summary.type !== 'ENDORSEMENT') return out;
    const { signed, endorsement: en } = decodeEndorsementTx(e.tx);
    const reg = en.registration ?? { params: new Uint8Array(), signature: new Uint8Array() };
    const params = RegistrationParams.decode(reg.params);
    const pk = params.publicKey;
    let ueSigValid = false;
    try {
      if (pk) ueSigValid = nodeVerify(pk.suite as Suite, importPublicKey(pk.suite as Suite, pk.key), pae(Domain.registration, reg.params), reg.signature);
    } catch {
      ueSigValid = false;
    }
    const history = this.#ledger.history(en.ueKey);
    const idx = history.findIndex((h) => h.txId === e.txId);
    const nextEntry = idx >= 0 ? history[idx + 1] : undefined;
    const latest = this.#ledger.latest(en.ueKey);
    out.endorsement = {
      version: en.version,
      reason: reasonName(en.reason),
      asId: en.asId,
      endorsedAtMs: en.endorsedAtMs,
      ueKey: hex(en.ueKey),
      statusEventSequence: en.statusEventSequence,
      previous: en.version > 1 ? { txId: en.previousTxId, txHash: hex(en.previousTxHash) } : null,
      next: nextEntry ? { txId: nextEntry.txId, version: en.version + 1 } : null,
      isLatest: latest !== undefined && latest.txId === e.txId,
      registration: {
        identity: identityView(params.identity),
        publicKey: hex(pk?.key),
        suite: pk ? suiteName(pk.suite as Suite) : '',
        suites: params.suites.map((s) => suiteName(s as Suite)),
        createdAtMs: params.createdAtMs,
        signature: hex(reg.signature),
        signatureValid: ueSigValid,
      },
      accountStatus: statusView(en.accountStatus),
      asSignature: hex(signed.signature),
      asSignatureValid: verifyWithCert(signed.certChain[0], endorsementSigningInput(signed.endorsement), signed.signature),
      certChain: signed.certChain.map(certView).filter((c): c is CertificateView => c !== null),
    };
    return out;
  }

  #versionView(e: LedgerEntry): UeVersionView {
    const { endorsement: en } = decodeEndorsementTx(e.tx);
    return {
      txId: e.txId,
      version: en.version,
      reason: reasonName(en.reason),
      state: contractStateName(en.accountStatus?.state ?? 0),
      endorsedAtMs: en.endorsedAtMs,
      blockHeight: e.blockHeight,
      leafHash: hex(e.leafHash),
      previousTxId: en.version > 1 ? en.previousTxId : null,
      identity: identityView(en.accountStatus?.identity),
      owner: en.accountStatus?.owner ?? '',
      terminationTimeMs: en.accountStatus?.terminationTimeMs ?? 0,
    };
  }

  /** Every UE bound to any field of the identity, each with its versions (oldest first). */
  ue(query: Partial<IdentityView>): { query: IdentityView; ues: UeView[] } {
    const id = validateLookupIdentity({ imei: query.imei ?? '', iccid: query.iccid ?? '', eid: query.eid ?? '', msisdn: query.msisdn ?? '' }, 'query');
    const rows = this.#c.ues(id);
    const ues = rows.map((r) => ({
      ueKey: hex(r.ueKey),
      publicKey: hex(r.publicKey),
      suite: suiteName(r.suite as Suite),
      identity: { imei: r.imei, iccid: r.iccid, eid: r.eid, msisdn: r.msisdn },
      contractState: contractStateName(r.contractState),
      latestTxId: r.latestTxId,
      version: r.version,
      versions: this.#ledger.history(r.ueKey).map((e) => this.#versionView(e)),
    }));
    // newest registration first: the one a lookup by a reused field most likely means
    ues.sort((a, b) => b.latestTxId - a.latestTxId);
    return { query: { imei: id.imei, iccid: id.iccid, eid: id.eid, msisdn: id.msisdn }, ues };
  }

  /** The latest signed checkpoint with its signature lines, the AS's own one verified. */
  checkpoint(): CheckpointView {
    const cp = this.#ledger.checkpoint();
    const p = parseCheckpoint(cp.note);
    let asKey: ReturnType<typeof keyOf> = null;
    const leaf = cp.certChain[0];
    if (leaf) asKey = keyOf(leaf);
    const own = asKey !== null && checkpointSignedBy(cp.note, this.#o.asName, asKey.suite, asKey.key);
    return {
      origin: p.origin,
      size: p.size,
      rootHash: hex(p.rootHash),
      stateRoot: hex(p.stateRoot),
      block: p.block ? { height: p.block.height, hash: hex(p.block.hash) } : null,
      note: cp.note,
      signatures: p.signatures.map((s) => (s.name === this.#o.asName ? { name: s.name, keyId: hex(s.keyId), role: 'signer', verified: own } : { name: s.name, keyId: hex(s.keyId), role: 'cosigner', verified: null })),
    };
  }

  /**
   * The latest signed checkpoint, and the tree state at each of the newest `limit` block
   * boundaries (size, root, state root) — each is what the checkpoint signed at that block said.
   */
  checkpoints(limit = 20): { latest: CheckpointView; history: Array<Pick<BlockSummary, 'height' | 'hash' | 'treeSize' | 'txRoot' | 'stateRoot' | 'timestampMs'>> } {
    const { blocks } = this.blocks(undefined, limit);
    const latest = this.checkpoint();
    const history = blocks.reverse().map((b) => ({ height: b.height, hash: b.hash, treeSize: b.treeSize, txRoot: b.txRoot, stateRoot: b.stateRoot, timestampMs: b.timestampMs }));
    if (history[0] && history[0].treeSize === latest.size && history[0].txRoot !== latest.rootHash) fail('LEDGER_CORRUPT', 'the newest block and the checkpoint disagree on the root');
    return { latest, history };
  }
}

function keyOf(der: Uint8Array): { key: ReturnType<typeof importPublicKey>; suite: Suite } | null {
  try {
    const key = new X509Certificate(der).publicKey;
    return { key, suite: suiteOfKeyObject(key) };
  } catch {
    return null;
  }
}

