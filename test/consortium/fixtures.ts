/**
 * @module test/consortium/fixtures
 * Real signed endorsement transactions for the consortium tests and benchmark (no vitest
 * import, so the benchmark can use it): UE registrations signed with fresh P-256 keys,
 * endorsements built with the AS's own code (endorse.ts) and signed with an AS key of the
 * local consortium PKI.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { ContractState, EndorsementReason, LedgerTx, RegistrationParams, SignatureSuite, SignedEndorsement, type AccountStatus, type SignedRegistration } from '../../proto/gen/divs/v1/common.ts';
import { Domain, pae, sha256 } from '../../protocol/src/bytes.ts';
import { importPrivateKey, nodeSign, rawPublicKey, suiteOfKeyObject, type OwnSignatures } from '../../protocol/src/suites.ts';
import { syntheticIdentity } from '../../cef/src/fixtures.ts';
import { endorsementFor, endorsementSigningInput, ledgerTxFor } from '../../as-node/src/endorse.ts';
import type { LocalNode } from '../../as-node/src/governance/local-consortium.ts';
import type { KeyObject } from 'node:crypto';

/** An AS node able to sign endorsements. */
export interface Endorser {
  name: string;
  key: KeyObject;
  certChain: Uint8Array[];
}

export const endorserOf = (n: LocalNode): Endorser => ({ name: n.name, key: importPrivateKey(n.keyPem), certChain: n.certChain });

/** A UE with a registered key. */
export interface TestUe {
  index: number;
  registration: SignedRegistration;
  ueKey: Uint8Array;
}

let seq = 0;

/** A UE (identity i) with a fresh P-256 key and its signed registration. */
export function newUe(index = ++seq + 100_000): TestUe {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pk = rawPublicKey(privateKey);
  const params = RegistrationParams.encode({
    identity: syntheticIdentity(index),
    publicKey: { suite: SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256, key: pk },
    suites: [SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256],
    createdAtMs: Date.now(),
  }).finish();
  const signature = new Uint8Array(sign('sha256', pae(Domain.registration, params), { key: privateKey, dsaEncoding: 'ieee-p1363' }));
  return { index, registration: { params, signature }, ueKey: sha256(pk) };
}

export function statusOf(ue: TestUe, plmnId = '26201', state: ContractState = ContractState.CONTRACT_STATE_ACTIVE): AccountStatus {
  const now = Date.now();
  return {
    plmnId,
    operatorName: `Operator ${plmnId}`,
    contractId: `C-${ue.index}`,
    state,
    startTimeMs: now - 3_600_000,
    endTimeMs: now + 365 * 86_400_000,
    terminationTimeMs: state === ContractState.CONTRACT_STATE_TERMINATED ? now : 0,
    owner: 'Example Utility GmbH',
    geoRestrictions: ['DE'],
    terminalType: 'smart-meter',
    identity: syntheticIdentity(ue.index),
    revision: 1,
  };
}

/**
 * Exact LedgerTx bytes of an endorsement of `ue` by `as`; with `own`, the AS signature is
 * noted there as made by this process (as the AS node's crypto pool notes what it signs).
 */
export function endorsementTx(as: Endorser, ue: TestUe, o: { version?: number; previous?: { txId: number; leafHash: Uint8Array }; asId?: string; status?: AccountStatus; own?: OwnSignatures } = {}): Uint8Array {
  const now = Date.now();
  const body = endorsementFor({
    registration: ue.registration,
    status: o.status ?? statusOf(ue),
    version: o.version ?? 1,
    previous: o.previous,
    reason: (o.version ?? 1) === 1 ? EndorsementReason.ENDORSEMENT_REASON_REGISTRATION : EndorsementReason.ENDORSEMENT_REASON_STATUS_CHANGE,
    asId: o.asId ?? as.name,
    ueKey: ue.ueKey,
    nowMs: now,
  });
  const input = endorsementSigningInput(body);
  const sig = nodeSign(suiteOfKeyObject(as.key), as.key, input);
  o.own?.note(input, sig);
  return ledgerTxFor(body, sig, as.certChain, now);
}

/** The same LedgerTx with one bit of its AS signature flipped. */
export function withBrokenSignature(tx: Uint8Array): Uint8Array {
  const t = LedgerTx.decode(tx);
  const se = SignedEndorsement.decode(t.payload);
  // decoded fields are views into the tx: copy before altering
  se.signature = Uint8Array.from(se.signature);
  se.signature[10] = (se.signature[10] as number) ^ 1;
  return LedgerTx.encode({ ...t, payload: SignedEndorsement.encode(se).finish() }).finish();
}

/** `n` registrations of new UEs endorsed by `as`, as append items. */
export function registrations(as: Endorser, n: number, own?: OwnSignatures): { tx: Uint8Array; ueKey: Uint8Array }[] {
  return Array.from({ length: n }, () => {
    const ue = newUe();
    return { tx: endorsementTx(as, ue, own ? { own } : {}), ueKey: ue.ueKey };
  });
}
