/**
 * @module verify
 * Service-user verification [FW-SU] [VER-3], pure (no transport): given what an AS returned,
 * decide with only the configured trust anchors whether an endorsement is authentic, included
 * in the ledger, and the latest; then whether a UE record is valid under it.
 *
 * Steps for an endorsement (ProvenTx):
 * 1. the checkpoint's signer certificate chains to a trust anchor and signs the checkpoint;
 * 2. the tx leaf is included in the checkpoint's tree (RFC 9162 inclusion proof);
 * 3. the endorsement's AS certificate chains to a trust anchor and its signature covers the
 *    exact endorsement bytes;
 * 4. (optional) the latest-version proof against the checkpoint's state root says whether
 *    this leaf is the UE's latest.
 * Steps for a record: UE signature with the endorsed key and suite (single or batch mode),
 * identity bound in the endorsement, and signature time inside the contract period and before
 * termination, judged on the UE's latest endorsement.
 */
import type { KeyObject } from 'node:crypto';
import {
  ContractState,
  Endorsement,
  LedgerTx,
  RecordBody,
  RegistrationParams,
  SignedEndorsement,
  type SignedRecord,
  TxType,
  type UeIdentity,
} from '../../proto/gen/divs/v1/common.ts';
import type { ProvenTx, SignedEndorsementSummary } from '../../proto/gen/divs/v1/consumer_as.ts';
import { EndorsementSummary } from '../../proto/gen/divs/v1/consumer_as.ts';
import { DivsError, fail, type ErrorCode } from '../../protocol/src/errors.ts';
import { Domain, equalBytes, pae } from '../../protocol/src/bytes.ts';
import { importPublicKeyCached, nodeVerify, nodeVerifyMemo, type Suite } from '../../protocol/src/suites.ts';
import { sameIdentity } from '../../protocol/src/identity.ts';
import { verifyChain } from '../../protocol/src/pki.ts';
import { leafHash, verifyInclusion } from '../../protocol/src/merkle.ts';
import { verifyLatestProof } from '../../protocol/src/smt.ts';
import { verifyCheckpoint } from '../../protocol/src/checkpoint.ts';
import { verifyRecordSignature, recordHash } from '../../protocol/src/records.ts';
import { verifyCosignatures, type WitnessPolicy } from './witness.ts';

export interface TrustAnchors {
  /** DER root CA certificates of the consortium(s) this consumer trusts. */
  roots: Uint8Array[];
}

export interface VerifiedCheckpoint {
  origin: string;
  size: number;
  rootHash: Uint8Array;
  stateRoot: Uint8Array;
  signer: string;
  note: string;
  /** Witnesses whose signatures were verified, when a witness policy was given. */
  cosigners?: string[];
  /** End of the signer chain's validity (ms since the epoch): the verification holds until then. */
  validUntilMs?: number;
}

export interface VerifiedEndorsement {
  txId: number;
  leafHash: Uint8Array;
  endorsement: Endorsement;
  params: RegistrationParams;
  ueKey: Uint8Array;
  suite: Suite;
  /** The UE public key, ready for fast verification. */
  publicKey: KeyObject;
  asSubject: string;
  checkpoint: VerifiedCheckpoint;
  /** true/false when a latest-version proof was checked; undefined when none was given. */
  isLatest: boolean | undefined;
  /** End of validity of every certificate chain this verification relied on (ms since the epoch). */
  validUntilMs: number;
}

/** Common name of a certificate subject DN ("CN=as-1, O=…" -> "as-1"). */
export function commonName(subject: string): string {
  return /(?:^|,\s*)CN=([^,]+)/.exec(subject)?.[1]?.trim() ?? subject;
}

function decodeOr<T>(codec: { decode(b: Uint8Array): T }, b: Uint8Array, what: string): T {
  try {
    return codec.decode(b);
  } catch (e) {
    fail('INVALID_ENDORSEMENT', `${what} does not decode`, e);
  }
}

/**
 * Verifies a signed checkpoint against the trust anchors [FW-SU]; with a witness policy, also
 * that k of its n witnesses signed it (witness.ts; COSIGNATURES_MISSING otherwise) [RP-DD].
 */
export function verifySignedCheckpoint(cp: { note: string; certChain: Uint8Array[] } | undefined, anchors: TrustAnchors, at?: Date, witnesses?: WitnessPolicy): VerifiedCheckpoint {
  if (!cp || !cp.note) fail('INVALID_CHECKPOINT', 'checkpoint missing');
  const signer = verifyChain(cp.certChain, anchors.roots, { at, role: 'as' });
  const name = commonName(signer.subject);
  const parsed = verifyCheckpoint(cp.note, name, signer.suite, signer.publicKey);
  const v: VerifiedCheckpoint = {
    origin: parsed.origin,
    size: parsed.size,
    rootHash: parsed.rootHash,
    stateRoot: parsed.stateRoot,
    signer: name,
    note: cp.note,
    validUntilMs: signer.validUntil.getTime(),
  };
  if (witnesses) v.cosigners = verifyCosignatures(cp.note, witnesses).cosigners;
  return v;
}

/** Verifies an endorsement with its proofs [VER-3] [FW-SU]; throws a coded error on any failure. */
export function verifyProvenEndorsement(p: ProvenTx | undefined, anchors: TrustAnchors, opts: { ledgerId?: string; at?: Date; witnesses?: WitnessPolicy } = {}): VerifiedEndorsement {
  if (!p || p.tx.length === 0) fail('INVALID_ENDORSEMENT', 'no endorsement in the answer');
  const checkpoint = verifySignedCheckpoint(p.checkpoint, anchors, opts.at, opts.witnesses);
  if (opts.ledgerId && checkpoint.origin !== opts.ledgerId) fail('INVALID_CHECKPOINT', `checkpoint is for ledger ${checkpoint.origin}, not ${opts.ledgerId}`);
  const leaf = leafHash(p.tx);
  const inc = p.inclusion;
  if (!inc || inc.leafIndex !== p.txId || inc.treeSize !== checkpoint.size) fail('INVALID_PROOF', 'inclusion proof does not match the tx and checkpoint');
  if (!verifyInclusion(leaf, inc.leafIndex, inc.treeSize, inc.hashes, checkpoint.rootHash)) fail('INVALID_PROOF', 'inclusion proof does not verify');

  const tx = decodeOr(LedgerTx, p.tx, 'ledger tx');
  if (tx.type !== TxType.TX_TYPE_ENDORSEMENT) fail('INVALID_ENDORSEMENT', 'tx is not an endorsement');
  const signed = decodeOr(SignedEndorsement, tx.payload, 'signed endorsement');
  const as = verifyChain(signed.certChain, anchors.roots, { at: opts.at, role: 'as' });
  // memoized per AS key: a UE's latest version is fetched again on every verification run
  if (!nodeVerifyMemo(as.suite, as.publicKey, pae(Domain.endorsement, signed.endorsement), signed.signature)) {
    fail('INVALID_ENDORSEMENT', 'AS signature over the endorsement does not verify');
  }
  const endorsement = decodeOr(Endorsement, signed.endorsement, 'endorsement');
  const params = decodeOr(RegistrationParams, endorsement.registration?.params ?? new Uint8Array(), 'registration params');
  const pk = params.publicKey;
  if (!pk) fail('INVALID_ENDORSEMENT', 'endorsement has no UE public key');
  if (endorsement.asId !== commonName(as.subject)) fail('INVALID_ENDORSEMENT', `endorsement names AS ${endorsement.asId} but is signed by ${as.subject}`);

  let isLatest: boolean | undefined;
  if (p.latest) {
    if (!equalBytes(p.latest.ueKey, endorsement.ueKey)) fail('INVALID_PROOF', 'latest-version proof is for another UE');
    if (!verifyLatestProof(p.latest, checkpoint.stateRoot)) fail('INVALID_PROOF', 'latest-version proof does not verify against the checkpoint');
    isLatest = equalBytes(p.latest.value, leaf);
  }
  return {
    txId: p.txId,
    leafHash: leaf,
    endorsement,
    params,
    ueKey: endorsement.ueKey,
    suite: pk.suite,
    publicKey: importPublicKeyCached(pk.suite, pk.key),
    asSubject: commonName(as.subject),
    checkpoint,
    isLatest,
    validUntilMs: Math.min(as.validUntil.getTime(), checkpoint.validUntilMs ?? Number.POSITIVE_INFINITY),
  };
}

/** Verifies a partial (VER-5) answer: AS-signed public key + contract period. */
export function verifyEndorsementSummary(s: SignedEndorsementSummary | undefined, anchors: TrustAnchors, at?: Date): EndorsementSummary {
  if (!s) fail('INVALID_ENDORSEMENT', 'no summary in the answer');
  const as = verifyChain(s.certChain, anchors.roots, { at, role: 'as' });
  if (!nodeVerify(as.suite, as.publicKey, pae(Domain.endorsementSummary, s.summary), s.signature)) fail('INVALID_ENDORSEMENT', 'AS signature over the summary does not verify');
  return decodeOr(EndorsementSummary, s.summary, 'endorsement summary');
}

export type RecordVerdict =
  | { ok: true; body: RecordBody; hash: Uint8Array }
  | { ok: false; code: ErrorCode; reason: string; body?: RecordBody };

/**
 * Judges a signed record against the endorsement it names (`claimed`) and the UE's latest
 * endorsement (`latest`, same UE key) [VER-3]:
 * - signature by the endorsed key (single or batch mode);
 * - the record's identity is the binding endorsed in `claimed`;
 * - signature time inside the contract period of `latest`, and before its termination time —
 *   a record signed before termination stays valid after it.
 */
export function checkRecord(record: SignedRecord, claimed: VerifiedEndorsement, latest: VerifiedEndorsement): RecordVerdict {
  let body: RecordBody;
  try {
    body = RecordBody.decode(record.body);
  } catch {
    return { ok: false, code: 'MALFORMED_MESSAGE', reason: 'record body does not decode' };
  }
  if (!equalBytes(claimed.ueKey, latest.ueKey)) return { ok: false, code: 'INVALID_ENDORSEMENT', reason: 'latest endorsement is for another UE', body };
  if (latest.endorsement.version < claimed.endorsement.version) return { ok: false, code: 'NOT_LATEST', reason: 'latest endorsement is older than the claimed one', body };
  if (body.endorsement && body.endorsement.txId !== claimed.txId) return { ok: false, code: 'INVALID_ENDORSEMENT', reason: 'record names another endorsement', body };
  if (!verifyRecordSignature(record, claimed.suite, claimed.publicKey)) return { ok: false, code: 'INVALID_SIGNATURE', reason: 'UE signature does not verify with the endorsed key', body };
  const bound = claimed.endorsement.accountStatus?.identity;
  if (!body.identity || !bound || !sameIdentity(body.identity as UeIdentity, bound)) {
    return { ok: false, code: 'IDENTITY_MISMATCH', reason: 'record identity differs from the endorsed binding', body };
  }
  const st = latest.endorsement.accountStatus;
  if (!st) return { ok: false, code: 'INVALID_ENDORSEMENT', reason: 'endorsement has no account status', body };
  const t = body.timestampMs;
  if (t < st.startTimeMs || (st.endTimeMs > 0 && t > st.endTimeMs)) {
    return { ok: false, code: 'SIGNED_OUTSIDE_CONTRACT', reason: 'signature time is outside the contract period', body };
  }
  const terminated = st.state === ContractState.CONTRACT_STATE_TERMINATED || st.terminationTimeMs > 0;
  if (terminated && st.terminationTimeMs > 0 && t >= st.terminationTimeMs) {
    return { ok: false, code: 'SIGNED_AFTER_TERMINATION', reason: 'signed at or after the contract termination', body };
  }
  return { ok: true, body, hash: recordHash(record.body) };
}

export { DivsError };
