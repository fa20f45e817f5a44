/**
 * @module verify
 * The gateway verification engine as a library [VER-3] [GEN-2]: everything needed to verify
 * signed UE records against DIVS endorsements outside the gateway process too (e.g. verifiable
 * data packages: records in memory, per-record verdicts, chain findings, dataset commitment).
 *
 * @example
 * const pool = new VerifierPool({ threads: 2 });
 * const resolver = new EndorsementResolver({ anchors: { roots: [rootDer] }, tokens: { '*': asToken } });
 * const engine = new VerificationEngine({ pool, resolver, requireGenesis: false });
 * const out = await engine.verifyRecords(signedRecordBytes);
 * out.verdicts[0].outcome; // 'VALID' | 'INVALID_SIGNATURE' | 'SIGNED_AFTER_TERMINATION' | …
 */
export { VerificationEngine, type EngineOptions, type VerificationOutcome } from './engine.ts';
export { VerifierPool, type PoolOptions } from './pool.ts';
export { EndorsementResolver, type ResolverOptions, type ResolvedRef, type RefInput, type CheckpointInfo } from './endorsements.ts';
export { ChainTracker, Finding, FINDING_NAMES, findingInvalidates, type ChainOptions, type ChainTail } from './chain.ts';
export { commitmentRoot } from './commitment.ts';
export { VerifierCore } from './core.ts';
export { Sha256Many, type HasherKind } from '../../../protocol/src/sha256x4.ts';
export { errorWindow, trustedWindow, windowFrom } from './windows.ts';
export { OUTCOMES, UNVERIFIED, Flag, packRecords, outcomeOf, statusOf, type Outcome, type TaskResult, type VerifyTask, type WindowSpec } from './task.ts';
export type { RecordVerdict, ChainCounts } from './summary.ts';
export { ueKeyOf } from './identity.ts';
