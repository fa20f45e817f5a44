/**
 * @module report
 * Consumer side of aggregator-initiated verification [SC2-1] [SC2-2] [FW-SU]: ask a gateway to
 * verify a dataset and check the signed report it returns with only the consortium trust
 * anchors — the gateway certificate must chain to a trusted root with the "gateway" role, its
 * key must sign `PAE("divs/verification-report", exact report bytes)`, and the report must be
 * the one asked for (dataset, nonce). Also lists the dataset descriptions a gateway grants, and
 * shows what a report relied on as JSON ({@link checkpointJson}, {@link endorsementJson}).
 *
 * @example
 * const gw = new GatewayConsumer({ address: 'gw.example:7443', token, anchors: { roots: [rootDer] } });
 * const { report, gateway } = await gw.verifyDataset('meters-2026');
 * console.log(report.validCount, '/', report.recordCount, 'verified by', gateway);
 */
import { randomBytes } from 'node:crypto';
import {
  GatewayConsumerServiceClient,
  VerificationReport,
  type CheckpointUse,
  type DatasetDescription,
  type EndorsementUse,
  type SignedVerificationReport,
} from '../../proto/gen/divs/v1/gateway.ts';
import type { UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { Domain, equalBytes, pae, toHex } from '../../protocol/src/bytes.ts';
import { fail } from '../../protocol/src/errors.ts';
import { verifyChain } from '../../protocol/src/pki.ts';
import { nodeVerify } from '../../protocol/src/suites.ts';
import { grpc, makeClient, unary } from '../../platform/src/grpc.ts';
import { commonName, type TrustAnchors } from './verify.ts';

/** A report whose signature and binding checked out. */
export interface VerifiedReport {
  report: VerificationReport;
  /** Common name of the signing gateway certificate. */
  gateway: string;
}

export interface ReportExpectations {
  /** The dataset asked for. */
  datasetId?: string;
  /** The nonce sent with the request. */
  nonce?: Uint8Array;
  /** Time at which the gateway certificate must be valid; default now. */
  at?: Date;
}

/**
 * Verifies a signed verification report [SC2-2]: gateway certificate chain (role "gateway")
 * against the anchors, signature over the exact report bytes, and that the report answers this
 * request. UNTRUSTED_CERTIFICATE / INVALID_CERTIFICATE for the chain, INVALID_SIGNATURE for the
 * signature, MALFORMED_MESSAGE when the bytes are not a report, INVALID_ARGUMENT when it is
 * another request's report or names a gateway other than its signer.
 */
export function verifyReport(signed: SignedVerificationReport | undefined, anchors: TrustAnchors, expect: ReportExpectations = {}): VerifiedReport {
  if (!signed || !(signed.report instanceof Uint8Array) || signed.report.length === 0) fail('MISSING_FIELD', 'no report in the answer');
  const gw = verifyChain(signed.certChain, anchors.roots, { role: 'gateway', at: expect.at });
  if (!nodeVerify(gw.suite, gw.publicKey, pae(Domain.report, signed.report), signed.signature)) fail('INVALID_SIGNATURE', 'the gateway signature over the report does not verify');
  let report: VerificationReport;
  try {
    report = VerificationReport.decode(signed.report);
  } catch (e) {
    fail('MALFORMED_MESSAGE', 'report bytes do not decode', e);
  }
  const gateway = commonName(gw.subject);
  if (report.gatewayId !== gateway) fail('INVALID_ARGUMENT', `report names gateway ${report.gatewayId} but is signed by ${gateway}`);
  if (expect.datasetId !== undefined && report.datasetId !== expect.datasetId) fail('INVALID_ARGUMENT', `report is for dataset ${report.datasetId}, not ${expect.datasetId}`);
  if (expect.nonce !== undefined && !equalBytes(report.nonce, expect.nonce)) fail('INVALID_ARGUMENT', 'report nonce differs from the request: it answers another request');
  return { report, gateway };
}

/** A checkpoint a report relied on, as JSON. */
export interface CheckpointJson {
  origin: string;
  size: number;
  /** Lower-case hex. */
  rootHash: string;
  signer: string;
}

/** A checkpoint of a report as JSON (root hash in hex); null when the report has none there. */
export function checkpointJson(c: CheckpointUse | undefined): CheckpointJson | null {
  return c ? { origin: c.origin, size: c.size, rootHash: toHex(c.rootHash), signer: c.signer } : null;
}

/** An endorsement a report relied on, as JSON (hashes and keys in lower-case hex). */
export interface EndorsementJson {
  ledgerId: string;
  txId: number;
  txHash: string;
  version: number;
  latestTxId: number;
  latestVersion: number;
  ueKey: string;
  recordCount: number;
  outcome: string;
  checkpoint: CheckpointJson | null;
  latestCheckpoint: CheckpointJson | null;
}

/** An endorsement of a report as JSON: the version used, the latest one, and their checkpoints. */
export function endorsementJson(e: EndorsementUse): EndorsementJson {
  return {
    ledgerId: e.ledgerId,
    txId: e.txId,
    txHash: toHex(e.txHash),
    version: e.version,
    latestTxId: e.latestTxId,
    latestVersion: e.latestVersion,
    ueKey: toHex(e.ueKey),
    recordCount: e.recordCount,
    outcome: e.outcome,
    checkpoint: checkpointJson(e.checkpoint),
    latestCheckpoint: checkpointJson(e.latestCheckpoint),
  };
}

export interface GatewayConsumerOptions {
  /** Gateway address, `host:port`. */
  address: string;
  /** Bearer token (or use mTLS credentials). */
  token?: string;
  credentials?: grpc.ChannelCredentials;
  anchors: TrustAnchors;
  /** Deadline of calls (ms); default 120 000 (verifying a large dataset takes a while). */
  timeoutMs?: number;
}

/** Consumer client of a gateway's consumer service (scenario 10.2 steps 3-7). */
export class GatewayConsumer {
  readonly #client: GatewayConsumerServiceClient;
  readonly #o: GatewayConsumerOptions;

  constructor(o: GatewayConsumerOptions) {
    this.#o = o;
    this.#client = makeClient(GatewayConsumerServiceClient, o.address, o.credentials);
  }

  #md(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.#o.token) md.set('authorization', `Bearer ${this.#o.token}`);
    return md;
  }

  /** Descriptions of the datasets this consumer may use (never raw data) [SC2-1]. */
  async listDatasets(opts: { datasetId?: string; omitUes?: boolean } = {}): Promise<DatasetDescription[]> {
    const res = await unary(this.#client, this.#client.listDatasets, { datasetId: opts.datasetId ?? '', omitUes: opts.omitUes ?? false }, { metadata: this.#md(), timeoutMs: this.#o.timeoutMs });
    return res.datasets;
  }

  /**
   * Asks the gateway to verify a dataset and checks the signed report (fresh nonce, expected
   * dataset, gateway role and signature) [SC2-2].
   */
  async verifyDataset(datasetId: string, opts: { ues?: UeIdentity[]; nonce?: Uint8Array } = {}): Promise<VerifiedReport & { signed: SignedVerificationReport }> {
    const nonce = opts.nonce ?? new Uint8Array(randomBytes(16));
    const res = await unary(this.#client, this.#client.verifyDataset, { datasetId, nonce, ues: opts.ues ?? [] }, { metadata: this.#md(), timeoutMs: this.#o.timeoutMs ?? 120_000 });
    if (!res.report) fail('MISSING_FIELD', 'the gateway answered without a report');
    return { ...verifyReport(res.report, this.#o.anchors, { datasetId, nonce }), signed: res.report };
  }

  close(): void {
    this.#client.close();
  }
}
