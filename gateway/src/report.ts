/**
 * @module report
 * The gateway's signed verification report [SC2-2]: what a VerifyDataset run found, as a
 * VerificationReport message, signed by the gateway key over `PAE("divs/verification-report",
 * exact report bytes)` and shipped with the gateway certificate chain (role "gateway" under the
 * consortium root CA). Consumers check it with `consumer/src/report.ts`. Building is pure and
 * deterministic: reasons, endorsements and checkpoints are sorted.
 */
import { VerificationReport, type CheckpointUse, type EndorsementUse, type SignedVerificationReport } from '../../proto/gen/divs/v1/gateway.ts';
import type { UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { Domain, toHex } from '../../protocol/src/bytes.ts';
import type { CheckpointInfo } from './verify/endorsements.ts';
import type { VerificationOutcome } from './verify/engine.ts';
import { GatewayKeySigner } from './signer.ts';

export interface ReportMeta {
  gatewayId: string;
  datasetId: string;
  nonce: Uint8Array;
  /** UEs the request restricted the run to (empty: all). */
  ues: UeIdentity[];
  /** Conflicting records refused at ingest for the dataset's UEs. */
  forksRejectedAtIngest: number;
}

const byName = (m: Map<string, number>) =>
  [...m.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([reason, count]) => ({ reason, count }));

const cpUse = (c: CheckpointInfo): CheckpointUse => ({ origin: c.origin, size: c.size, rootHash: c.rootHash, signer: c.signer });
const cpKey = (c: CheckpointInfo): string => `${c.origin}\n${c.size}\n${toHex(c.rootHash)}\n${c.signer}`;

/** The report message of a verification run. */
export function buildReport(o: VerificationOutcome, meta: ReportMeta): VerificationReport {
  const endorsements: EndorsementUse[] = [...o.endorsements]
    .sort((a, b) => (a.ledgerId < b.ledgerId ? -1 : a.ledgerId > b.ledgerId ? 1 : a.txId - b.txId))
    .map((e) => ({
      ledgerId: e.ledgerId,
      txId: e.txId,
      txHash: e.claimed?.txHash ?? new Uint8Array(0),
      version: e.claimed?.version ?? 0,
      latestTxId: e.latest?.txId ?? 0,
      latestVersion: e.latest?.version ?? 0,
      ueKey: e.claimed?.ueKey ?? new Uint8Array(0),
      recordCount: e.count,
      outcome: e.outcome,
      checkpoint: e.claimed ? cpUse(e.claimed.checkpoint) : undefined,
      latestCheckpoint: e.latest ? cpUse(e.latest.checkpoint) : undefined,
    }));
  const cps = new Map<string, CheckpointInfo>();
  for (const e of o.endorsements) {
    if (e.claimed) cps.set(cpKey(e.claimed.checkpoint), e.claimed.checkpoint);
    if (e.latest) cps.set(cpKey(e.latest.checkpoint), e.latest.checkpoint);
  }
  const checkpoints = [...cps.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, c]) => cpUse(c));
  let unverified = 0;
  for (const v of o.unverified.values()) unverified += v;
  return {
    gatewayId: meta.gatewayId,
    datasetId: meta.datasetId,
    nonce: meta.nonce,
    startedAtMs: o.startedAtMs,
    finishedAtMs: o.finishedAtMs,
    recordCount: o.records,
    validCount: o.valid,
    invalid: byName(o.invalid),
    unverified: byName(o.unverified),
    chain: { ...o.chain, forksRejectedAtIngest: meta.forksRejectedAtIngest },
    datasetCommitment: o.commitment,
    commitmentSize: o.commitmentSize,
    endorsements,
    checkpoints,
    ues: meta.ues,
    ueCount: o.ueCount,
    complete: unverified === 0,
  };
}

/** Signs reports with the gateway key. */
export class ReportSigner extends GatewayKeySigner {
  /** Encodes the report once and signs exactly those bytes. */
  sign(report: VerificationReport): SignedVerificationReport {
    const bytes = VerificationReport.encode(report).finish();
    return { report: bytes, signature: this.signBytes(Domain.report, bytes), certChain: this.certChain };
  }
}
