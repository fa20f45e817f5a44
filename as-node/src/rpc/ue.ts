/**
 * @module rpc/ue
 * RP-ud adapter: registration intake and tx ID + entry address delivery to UEs [RP-UD]
 * [FW-SIG]. UEs prove who they are with signatures made with their registered key, never with
 * passwords; a UE can only read and watch its own endorsement [FW-ACL].
 */
import {
  UeChallenge,
  type UeAuth,
  type UeRegistrationServiceServer,
  type UeRegistrationServiceService,
  type WatchUpdatesResponse,
} from '../../../proto/gen/divs/v1/ue_as.ts';
import { fail } from '../../../protocol/src/errors.ts';
import { Domain, pae } from '../../../protocol/src/bytes.ts';
import { validateUeIdentity } from '../../../protocol/src/identity.ts';
import { importPublicKey, nodeVerify } from '../../../protocol/src/suites.ts';
import type { Handlers } from '../../../platform/src/grpc.ts';
import type { EndorsementContract, UpdateNotice } from '../contract.ts';
import type { UeRow } from '../registry.ts';
import { decodeEndorsementTx } from '../endorse.ts';

export const UE_AUTH_WINDOW_MS = 5 * 60_000;

/** Verifies a UE's challenge signature; returns its registry row [FW-ACL]. */
export function authenticateUe(contract: EndorsementContract, auth: UeAuth | undefined, purpose: string, nowMs: number): UeRow {
  if (!auth || auth.challenge.length === 0 || auth.signature.length === 0) fail('UNAUTHENTICATED', 'auth: challenge and signature required');
  let ch: UeChallenge;
  try {
    ch = UeChallenge.decode(auth.challenge);
  } catch (e) {
    fail('MALFORMED_MESSAGE', 'auth.challenge does not decode', e);
  }
  if (ch.purpose !== purpose) fail('UNAUTHENTICATED', `auth.challenge is for "${ch.purpose}", not "${purpose}"`);
  if (Math.abs(ch.timestampMs - nowMs) > UE_AUTH_WINDOW_MS) fail('AUTH_EXPIRED', 'auth.challenge timestamp is outside the accepted window');
  const id = validateUeIdentity(ch.identity, 'auth.identity');
  const msg = pae(Domain.ueChallenge, auth.challenge);
  for (const row of contract.registry.byIdentity(id)) {
    if (row.imei !== id.imei || row.msisdn !== id.msisdn || row.iccid !== id.iccid || row.eid !== id.eid) continue;
    if (nodeVerify(row.suite as never, importPublicKey(row.suite as never, row.publicKey), msg, auth.signature)) return row;
  }
  fail('UNAUTHENTICATED', 'no registered key of this identity verifies the challenge');
}

function noticeToResponse(n: UpdateNotice): WatchUpdatesResponse {
  return { tx: n.tx, version: n.version, reason: n.reason, accountStatus: n.status };
}

export function ueHandlers(contract: EndorsementContract, clock: () => number = Date.now): Handlers<typeof UeRegistrationServiceService> {
  const h: Handlers<typeof UeRegistrationServiceService> = {
    register: async (req) => contract.register(req.registration),
    registerBatch: async (req) => {
      const results = await contract.registerBatch(req.registrations);
      return {
        results: results.map((r) =>
          r.ok ? { tx: r.tx, version: r.version, errorCode: '', errorMessage: '' } : { version: 0, errorCode: r.code, errorMessage: r.message },
        ),
      };
    },
    watchUpdates: async (req, send, ctx) => {
      const row = authenticateUe(contract, req.auth, 'watch', clock());
      // subscribe first, then send what the UE missed, so nothing falls between the two
      const queue: UpdateNotice[] = [];
      let wake: (() => void) | undefined;
      const stop = contract.watch(row.ueKey, (n) => {
        queue.push(n);
        wake?.();
      });
      try {
        let sent = req.knownVersion;
        for (const e of contract.ledger.history(row.ueKey)) {
          const { endorsement: en } = decodeEndorsementTx(e.tx);
          if (en.version <= sent) continue;
          await send({ tx: contract.txRef(e), version: en.version, reason: en.reason, accountStatus: en.accountStatus });
          sent = en.version;
        }
        while (!ctx.cancelled()) {
          const n = queue.shift();
          if (!n) {
            await new Promise<void>((resolve) => {
              wake = resolve;
              ctx.signal.addEventListener('abort', () => resolve(), { once: true });
            });
            wake = undefined;
            continue;
          }
          if (n.version <= sent) continue;
          await send(noticeToResponse(n));
          sent = n.version;
        }
      } finally {
        stop();
      }
    },
    getLatestRef: async (req) => {
      const row = authenticateUe(contract, req.auth, 'latest', clock());
      const e = contract.ledger.latest(row.ueKey);
      if (!e) fail('NOT_REGISTERED', 'no endorsement for this UE');
      return { tx: contract.txRef(e), version: row.version };
    },
  };
  return h;
}

export type { UeRegistrationServiceServer };
