/**
 * @module endorse
 * Pure endorsement logic of the AS data management module (no I/O, no transport), shared by
 * the main thread and the crypto workers:
 * - {@link checkRegistration}: decode and validate a UE's signed registration and verify its
 *   self-signature with the UE's own key and suite [END-1] [REG-3];
 * - {@link endorsementFor}: combine registration + account status into the endorsing data
 *   [END-3] [UPD-3];
 * - {@link ledgerTxFor}: wrap a signed endorsement as the exact ledger transaction bytes.
 */
import {
  type AccountStatus,
  ContractState,
  Endorsement,
  type EndorsementReason,
  LedgerTx,
  RegistrationParams,
  SignedEndorsement,
  SignedRegistration,
  TxType,
  type UeIdentity,
} from '../../proto/gen/divs/v1/common.ts';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { Domain, pae, sha256 } from '../../protocol/src/bytes.ts';
import { assertSuite, importPublicKey, nodeVerify, type Suite } from '../../protocol/src/suites.ts';
import { sameIdentity, validateUeIdentity } from '../../protocol/src/identity.ts';

/** A registration whose UE signature verified. */
export interface CheckedRegistration {
  registration: SignedRegistration;
  identity: UeIdentity;
  suite: Suite;
  publicKey: Uint8Array;
  /** SHA-256 of the public key: the UE's stable key on the ledger. */
  ueKey: Uint8Array;
  createdAtMs: number;
}

export interface FreshnessPolicy {
  /** Oldest accepted created_at, relative to now (ms). */
  maxAgeMs: number;
  /** Largest accepted clock skew into the future (ms). */
  maxFutureMs: number;
}

export const DEFAULT_FRESHNESS: FreshnessPolicy = { maxAgeMs: 24 * 3600_000, maxFutureMs: 5 * 60_000 };

function decode<T>(codec: { decode(b: Uint8Array): T }, bytes: Uint8Array, what: string): T {
  try {
    return codec.decode(bytes);
  } catch (e) {
    // attacker-controlled bytes: a decoder failure is a malformed request, not a crash
    fail('MALFORMED_MESSAGE', `${what} does not decode`, e);
  }
}

/**
 * Validates a signed registration and verifies the UE's signature over
 * `pae("divs/registration", params)` with the key and suite inside the params [END-1].
 */
export function checkRegistration(reg: SignedRegistration | undefined, nowMs: number, policy: FreshnessPolicy = DEFAULT_FRESHNESS): CheckedRegistration {
  if (!reg || reg.params.length === 0) fail('MISSING_FIELD', 'registration.params: missing');
  if (reg.signature.length === 0) fail('MISSING_FIELD', 'registration.signature: missing');
  const params = decode(RegistrationParams, reg.params, 'registration.params');
  const identity = validateUeIdentity(params.identity, 'registration.identity');
  const pk = params.publicKey;
  if (!pk || pk.key.length === 0) fail('MISSING_FIELD', 'registration.public_key: missing');
  assertSuite(pk.suite);
  if (!params.suites.includes(pk.suite)) fail('SUITE_MISMATCH', 'registration.suites must include the public key suite');
  for (const s of params.suites) assertSuite(s);
  if (params.createdAtMs > nowMs + policy.maxFutureMs) fail('REGISTRATION_STALE', 'registration.created_at is in the future');
  if (params.createdAtMs < nowMs - policy.maxAgeMs) fail('REGISTRATION_STALE', 'registration.created_at is too old');
  const key = importPublicKey(pk.suite, pk.key);
  if (!nodeVerify(pk.suite, key, pae(Domain.registration, reg.params), reg.signature)) {
    fail('INVALID_SIGNATURE', 'registration signature does not verify with the registered public key');
  }
  return {
    registration: { params: reg.params, signature: reg.signature },
    identity,
    suite: pk.suite,
    publicKey: pk.key,
    ueKey: sha256(pk.key),
    createdAtMs: params.createdAtMs,
  };
}

/**
 * Checks the operator's record against the claimed identity: the binding must match exactly
 * and the contract must be active [END-2].
 */
export function checkAccountStatus(claimed: UeIdentity, status: AccountStatus, nowMs: number): void {
  if (!status.identity || !sameIdentity(claimed, status.identity)) {
    fail('IDENTITY_MISMATCH', "the identity binding differs from the operator's record");
  }
  if (status.state !== ContractState.CONTRACT_STATE_ACTIVE) fail('CONTRACT_INACTIVE', 'the network account contract is not active');
  if (status.endTimeMs > 0 && status.endTimeMs <= nowMs) fail('CONTRACT_INACTIVE', 'the network account contract has ended');
}

export interface EndorsementInput {
  registration: SignedRegistration;
  status: AccountStatus;
  version: number;
  previous?: { txId: number; leafHash: Uint8Array } | undefined;
  reason: EndorsementReason;
  asId: string;
  ueKey: Uint8Array;
  nowMs: number;
  statusEventSequence?: number;
}

/** Exact Endorsement bytes for the AS to sign [END-3] [UPD-3]. */
export function endorsementFor(i: EndorsementInput): Uint8Array {
  return Endorsement.encode({
    registration: i.registration,
    accountStatus: i.status,
    version: i.version,
    previousTxId: i.previous?.txId ?? 0,
    previousTxHash: i.previous?.leafHash ?? new Uint8Array(),
    endorsedAtMs: i.nowMs,
    asId: i.asId,
    reason: i.reason,
    ueKey: i.ueKey,
    statusEventSequence: i.statusEventSequence ?? 0,
  }).finish();
}

/** The bytes the AS signs for an endorsement. */
export const endorsementSigningInput = (endorsement: Uint8Array): Uint8Array => pae(Domain.endorsement, endorsement);

/** Exact LedgerTx bytes carrying a signed endorsement. */
export function ledgerTxFor(endorsement: Uint8Array, signature: Uint8Array, certChain: Uint8Array[], nowMs: number): Uint8Array {
  const payload = SignedEndorsement.encode({ endorsement, signature, certChain }).finish();
  return LedgerTx.encode({ type: TxType.TX_TYPE_ENDORSEMENT, payload, timestampMs: nowMs }).finish();
}

/** A decoded endorsement transaction. */
export interface DecodedEndorsementTx {
  tx: LedgerTx;
  signed: SignedEndorsement;
  endorsement: Endorsement;
}

/** Decodes ledger tx bytes that must carry an endorsement; LEDGER_CORRUPT otherwise. */
export function decodeEndorsementTx(bytes: Uint8Array): DecodedEndorsementTx {
  try {
    const tx = LedgerTx.decode(bytes);
    if (tx.type !== TxType.TX_TYPE_ENDORSEMENT) throw new Error(`tx type ${tx.type}`);
    const signed = SignedEndorsement.decode(tx.payload);
    const endorsement = Endorsement.decode(signed.endorsement);
    return { tx, signed, endorsement };
  } catch (e) {
    if (e instanceof DivsError) throw e;
    fail('LEDGER_CORRUPT', 'ledger transaction is not an endorsement', e);
  }
}
