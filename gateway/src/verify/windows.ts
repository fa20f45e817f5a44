/**
 * @module verify/windows
 * Turns verified endorsements into the {@link WindowSpec}s workers judge records against, pure.
 * The window-level checks mirror `consumer/src/verify.ts` `checkRecord`: the claimed endorsement
 * (the one a record names) gives the key, suite and bound identity; the UE's latest version
 * gives the contract period and termination time, so a record signed before a termination stays
 * valid after it [VER-3].
 */
import { UeIdentity } from '../../../proto/gen/divs/v1/common.ts';
import type { VerifiedEndorsement } from '../../../consumer/src/verify.ts';
import { equalBytes, toHex } from '../../../protocol/src/bytes.ts';
import type { ErrorCode } from '../../../protocol/src/errors.ts';
import type { Suite } from '../../../protocol/src/suites.ts';
import type { WindowSpec } from './task.ts';

/** A window every record naming (ledger, tx ID) fails with `code` (endorsement unusable). */
export function errorWindow(ledgerId: string, txId: number, code: ErrorCode): WindowSpec {
  return {
    ledgerId,
    txId,
    txHash: new Uint8Array(32),
    error: code,
    ueKey: '',
    suite: 0,
    publicKey: new Uint8Array(0),
    identity: null,
    identityFields: null,
    startMs: 0,
    endMs: 0,
    terminationMs: 0,
  };
}

/**
 * The window of records naming `claimed`, judged with the UE's `latest` endorsement (same UE
 * key, version at least as high).
 */
export function windowFrom(ledgerId: string, claimed: VerifiedEndorsement, latest: VerifiedEndorsement): WindowSpec {
  if (!equalBytes(claimed.ueKey, latest.ueKey)) return errorWindow(ledgerId, claimed.txId, 'INVALID_ENDORSEMENT');
  if (latest.endorsement.version < claimed.endorsement.version) return errorWindow(ledgerId, claimed.txId, 'NOT_LATEST');
  const st = latest.endorsement.accountStatus;
  if (!st) return errorWindow(ledgerId, claimed.txId, 'INVALID_ENDORSEMENT');
  const bound = claimed.endorsement.accountStatus?.identity;
  const pk = claimed.params.publicKey;
  if (!pk) return errorWindow(ledgerId, claimed.txId, 'INVALID_ENDORSEMENT');
  return {
    ledgerId,
    txId: claimed.txId,
    txHash: claimed.leafHash.slice(),
    error: null,
    ueKey: toHex(claimed.ueKey),
    suite: pk.suite,
    publicKey: pk.key.slice(),
    identity: bound ? UeIdentity.encode(bound).finish() : null,
    identityFields: bound ? { imei: bound.imei, iccid: bound.iccid, eid: bound.eid, msisdn: bound.msisdn } : null,
    startMs: st.startTimeMs,
    endMs: st.endTimeMs,
    // checkRecord: a record is late only when a termination time is set
    terminationMs: st.terminationTimeMs > 0 ? st.terminationTimeMs : 0,
  };
}

/**
 * A window from key material the caller already trusts (no ledger lookup): offline tools and
 * benchmarks. `ueKey` is the hex SHA-256 of the public key, as on the ledger.
 */
export function trustedWindow(p: {
  ledgerId: string;
  txId: number;
  txHash: Uint8Array;
  suite: Suite;
  publicKey: Uint8Array;
  ueKey: string;
  identity: UeIdentity;
  startMs: number;
  endMs: number;
  terminationMs?: number;
}): WindowSpec {
  return {
    ledgerId: p.ledgerId,
    txId: p.txId,
    txHash: p.txHash.slice(),
    error: null,
    ueKey: p.ueKey,
    suite: p.suite,
    publicKey: p.publicKey.slice(),
    identity: UeIdentity.encode(p.identity).finish(),
    identityFields: { imei: p.identity.imei, iccid: p.identity.iccid, eid: p.identity.eid, msisdn: p.identity.msisdn },
    startMs: p.startMs,
    endMs: p.endMs,
    terminationMs: p.terminationMs ?? 0,
  };
}
