/**
 * @module rpc/query
 * RP-ds adapter [RP-DS] [VER-4] [VER-5]: endorsed data by tx ID (whole or partial), history
 * and latest version by UE identity, checkpoints and consistency proofs. Every answer carries
 * an inclusion proof and the signed checkpoint it is proven against. Callers must be
 * authenticated service users [FW-ACL].
 */
import {
  EndorsementSummary,
  EndorsementView,
  type ProvenTx,
  type VerificationDataServiceService,
} from '../../../proto/gen/divs/v1/consumer_as.ts';
import { RegistrationParams } from '../../../proto/gen/divs/v1/common.ts';
import { DivsError, fail, type ErrorCode } from '../../../protocol/src/errors.ts';

/** UE keys per GetLatestBatch call. */
export const MAX_LATEST_BATCH = 1024;
const PER_KEY_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['INVALID_ARGUMENT', 'NOT_REGISTERED']);
import { Domain, pae } from '../../../protocol/src/bytes.ts';
import type { Handlers } from '../../../platform/src/grpc.ts';
import type { EndorsementContract } from '../contract.ts';
import type { LedgerEntry } from '../ledger/types.ts';
import type { Authenticator } from '../auth.ts';
import type { CryptoPool } from '../crypto-pool.ts';
import { decodeEndorsementTx } from '../endorse.ts';

/** A tx with inclusion proof against the current checkpoint (computed without yielding, so both match). */
export function prove(contract: EndorsementContract, e: LedgerEntry, withLatest: boolean): ProvenTx {
  const checkpoint = contract.ledger.checkpoint();
  const inclusion = contract.ledger.inclusionProof(e.txId);
  let latest;
  if (withLatest) {
    const { endorsement } = decodeEndorsementTx(e.tx);
    latest = contract.ledger.latestProof(endorsement.ueKey);
  }
  return { txId: e.txId, tx: e.tx, inclusion, checkpoint, latest };
}

export function queryHandlers(
  contract: EndorsementContract,
  auth: Authenticator,
  pool: CryptoPool,
  certChain: Uint8Array[],
  clock: () => number = Date.now,
): Handlers<typeof VerificationDataServiceService> {
  const consumer = { require: (ctx: Parameters<Authenticator['require']>[0]) => auth.require(ctx, 'consumer', 'peer', 'admin') };
  return {
    getEndorsement: async (req, ctx) => {
      consumer.require(ctx);
      if (req.ledgerId && req.ledgerId !== contract.ledger.ledgerId) {
        fail('WRONG_LEDGER', `this AS serves ledger ${contract.ledger.ledgerId}, not ${req.ledgerId}`);
      }
      const e = contract.get(req.txId);
      if (req.view === EndorsementView.ENDORSEMENT_VIEW_KEY_AND_TERMINATION) {
        // VER-5: only the public key and contract period/termination, freshly signed by the AS
        const { endorsement: en } = decodeEndorsementTx(e.tx);
        const params = RegistrationParams.decode(en.registration?.params ?? new Uint8Array());
        const st = en.accountStatus;
        const summary = EndorsementSummary.encode({
          txId: e.txId,
          txHash: e.leafHash,
          publicKey: params.publicKey,
          state: st?.state ?? 0,
          startTimeMs: st?.startTimeMs ?? 0,
          endTimeMs: st?.endTimeMs ?? 0,
          terminationTimeMs: st?.terminationTimeMs ?? 0,
          version: en.version,
          issuedAtMs: clock(),
          ledgerId: contract.ledger.ledgerId,
        }).finish();
        const [signature] = await pool.sign([pae(Domain.endorsementSummary, summary)]);
        return { summary: { summary, signature: signature as Uint8Array, certChain } };
      }
      return { proven: prove(contract, e, req.withLatestProof) };
    },
    getHistory: async (req, ctx) => {
      consumer.require(ctx);
      const entries = contract.history(req.identity);
      return { versions: entries.map((e) => prove(contract, e, false)) };
    },
    getLatest: async (req, ctx) => {
      consumer.require(ctx);
      if (req.ueKey.length > 0) {
        if (req.ueKey.length !== 32) fail('INVALID_ARGUMENT', 'ue_key: expected 32 bytes');
        const entry = contract.ledger.latest(req.ueKey);
        if (!entry) fail('NOT_REGISTERED', 'no endorsement for this UE key');
        return { latest: prove(contract, entry, true) };
      }
      const { entry } = contract.latest(req.identity);
      return { latest: prove(contract, entry, true) };
    },
    getLatestBatch: async (req, ctx) => {
      consumer.require(ctx);
      if (req.ueKeys.length === 0) fail('MISSING_FIELD', 'ue_keys: empty');
      if (req.ueKeys.length > MAX_LATEST_BATCH) fail('BATCH_TOO_LARGE', `at most ${MAX_LATEST_BATCH} UE keys per call`);
      // answered without yielding: every result is proven against the same checkpoint
      const results = req.ueKeys.map((ueKey) => {
        try {
          if (ueKey.length !== 32) fail('INVALID_ARGUMENT', 'ue_key: expected 32 bytes');
          const entry = contract.ledger.latest(ueKey);
          if (!entry) fail('NOT_REGISTERED', 'no endorsement for this UE key');
          return { ueKey, latest: prove(contract, entry, true), errorCode: '', errorMessage: '' };
        } catch (e) {
          // only per-key faults become per-key results; a broken ledger fails the call
          if (!(e instanceof DivsError) || !PER_KEY_CODES.has(e.code)) throw e;
          return { ueKey, latest: undefined, errorCode: e.code, errorMessage: e.message };
        }
      });
      return { results };
    },
    getCheckpoint: async (_req, ctx) => {
      consumer.require(ctx);
      return { checkpoint: contract.ledger.checkpoint() };
    },
    getConsistencyProof: async (req, ctx) => {
      consumer.require(ctx);
      const size = contract.ledger.info().size;
      if (req.oldSize > req.newSize || req.newSize > size) fail('INVALID_RANGE', `sizes must satisfy old <= new <= ${size}`);
      return { proof: contract.ledger.consistencyProof(req.oldSize, req.newSize) };
    },
  };
}
