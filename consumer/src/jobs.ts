/**
 * @module jobs
 * Consumer side of gateway jobs (scenario 10.2) [SC2-3] [SC2-4] [SC2-5]: learn the usage policy,
 * submit JavaScript to run over a dataset's verified records, watch it, fetch the result, and
 * check the gateway's attestation with only the consortium trust anchors.
 *
 * {@link verifyAttestation} checks that the gateway certificate chains to a trusted root with
 * the "gateway" role, that its key signed `PAE("divs/attestation", exact statement bytes)`, that
 * the statement names its signer, and — given the result bytes and the verification report —
 * that they are the ones the statement binds (SHA-256 of the result, SHA-256 of the report
 * bytes, same dataset commitment). A changed byte anywhere fails.
 *
 * @example
 * const gw = new JobClient({ address: 'gw.example:7443', token, anchors: { roots: [rootDer] } });
 * const r = await gw.run({ datasetId: 'meters', code, params: { threshold: 2 } }, { onStatus: (s) => console.log(s.detail) });
 * console.log(r.document.groups[0].value, 'attested by', r.gateway, 'over', r.statement.inputRecords, 'verified records');
 */
import { randomBytes } from 'node:crypto';
import { VerificationReport, type SignedVerificationReport } from '../../proto/gen/divs/v1/gateway.ts';
import type { UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import {
  GatewayJobServiceClient,
  JobAdminServiceClient,
  JobStatement,
  JobState,
  type JobAttestation,
  type JobPolicy,
  type JobStatus,
  type PendingJob,
  type WatchJobResponse,
} from '../../proto/gen/divs/v1/jobs.ts';
import { Domain, equalBytes, pae, sha256, toHex, utf8 } from '../../protocol/src/bytes.ts';
import { DivsError, fail, isErrorCode } from '../../protocol/src/errors.ts';
import { pemBlocks, verifyChain } from '../../protocol/src/pki.ts';
import { nodeVerify } from '../../protocol/src/suites.ts';
import { grpc, makeClient, serverStream, unary } from '../../platform/src/grpc.ts';
import { verifyReport } from './report.ts';
import { commonName, type TrustAnchors } from './verify.ts';

export { JobState, type JobPolicy, type JobStatus, type JobStatement, type JobAttestation, type PendingJob };

/** States after which a job does not change. */
export const FINAL_JOB_STATES: ReadonlySet<JobState> = new Set<JobState>([
  JobState.JOB_STATE_SUCCEEDED,
  JobState.JOB_STATE_FAILED,
  JobState.JOB_STATE_WITHHELD,
  JobState.JOB_STATE_CANCELLED,
  JobState.JOB_STATE_REJECTED,
]);

/** "RUNNING" for JOB_STATE_RUNNING. */
export function jobStateName(s: JobState): string {
  return (Object.entries(JobState).find(([, v]) => v === s)?.[0] ?? 'JOB_STATE_UNSPECIFIED').replace(/^JOB_STATE_/, '');
}

/** What a consumer expects an attestation to say; every field given is checked. */
export interface AttestationExpectations {
  /** The exact result bytes received: their SHA-256 must be the statement's result hash. */
  result?: Uint8Array;
  /** The verification report received with the result: verified, and bound by report hash. */
  report?: SignedVerificationReport;
  jobId?: string;
  consumer?: string;
  datasetId?: string;
  /** SHA-256 of the code submitted. */
  codeHash?: Uint8Array;
  /** SHA-256 of the params JSON text submitted. */
  paramsHash?: Uint8Array;
  nonce?: Uint8Array;
  /** Expected runner measurement digest (e.g. from the policy the consumer agreed to). */
  runnerDigest?: Uint8Array;
  /** Time at which the gateway certificate must be valid; default now. */
  at?: Date;
}

/** An attestation that checked out. */
export interface VerifiedAttestation {
  statement: JobStatement;
  /** Common name of the signing gateway certificate. */
  gateway: string;
  /** The verification report, when one was given. */
  report?: VerificationReport;
}

const mismatch = (what: string): never => fail('ATTESTATION_MISMATCH', what);

/**
 * Verifies a job attestation [SC2-3] [SC2-5]; see the module comment. UNTRUSTED_CERTIFICATE /
 * INVALID_CERTIFICATE for the chain, INVALID_SIGNATURE for the signature (statement bytes
 * changed), MALFORMED_MESSAGE when the bytes are not a statement, ATTESTATION_MISMATCH when the
 * statement does not bind what was received or expected (result, report, job, code, …).
 */
export function verifyAttestation(att: JobAttestation | undefined, anchors: TrustAnchors, expect: AttestationExpectations = {}): VerifiedAttestation {
  if (!att || !(att.statement instanceof Uint8Array) || att.statement.length === 0) fail('MISSING_FIELD', 'no attestation');
  const gw = verifyChain(att.certChain, anchors.roots, { role: 'gateway', at: expect.at });
  if (!nodeVerify(gw.suite, gw.publicKey, pae(Domain.attestation, att.statement), att.signature)) fail('INVALID_SIGNATURE', 'the gateway signature over the job statement does not verify');
  let statement: JobStatement;
  try {
    statement = JobStatement.decode(att.statement);
  } catch (e) {
    fail('MALFORMED_MESSAGE', 'statement bytes do not decode', e);
  }
  const gateway = commonName(gw.subject);
  if (statement.gatewayId !== gateway) mismatch(`statement names gateway ${statement.gatewayId} but is signed by ${gateway}`);
  if (expect.result !== undefined) {
    if (!equalBytes(sha256(expect.result), statement.resultHash) || statement.resultBytes !== expect.result.length) mismatch('the result is not the one the statement binds');
  }
  let report: VerificationReport | undefined;
  if (expect.report !== undefined) {
    report = verifyReport(expect.report, anchors, { datasetId: statement.datasetId, nonce: statement.nonce, at: expect.at }).report;
    if (!equalBytes(sha256(expect.report.report), statement.reportHash)) mismatch('the verification report is not the one the statement binds');
    if (!equalBytes(report.datasetCommitment, statement.datasetCommitment) || report.commitmentSize !== statement.commitmentSize) mismatch('statement and report name different dataset commitments');
    if (report.gatewayId !== gateway) mismatch('the report was signed by another gateway');
  }
  if (expect.jobId !== undefined && statement.jobId !== expect.jobId) mismatch(`statement is for job ${statement.jobId}, not ${expect.jobId}`);
  if (expect.consumer !== undefined && statement.consumer !== expect.consumer) mismatch(`statement is for consumer ${statement.consumer}`);
  if (expect.datasetId !== undefined && statement.datasetId !== expect.datasetId) mismatch(`statement is for dataset ${statement.datasetId}`);
  if (expect.codeHash !== undefined && !equalBytes(statement.codeHash, expect.codeHash)) mismatch('the gateway ran other code than submitted');
  if (expect.paramsHash !== undefined && !equalBytes(statement.paramsHash, expect.paramsHash)) mismatch('the gateway ran the code with other params');
  if (expect.nonce !== undefined && !equalBytes(statement.nonce, expect.nonce)) mismatch('statement nonce differs from the request');
  if (expect.runnerDigest !== undefined && !equalBytes(statement.runner?.digest ?? new Uint8Array(0), expect.runnerDigest)) mismatch('the job ran in another runner than agreed');
  return report ? { statement, gateway, report } : { statement, gateway };
}

/** Resource limits a job asks for (unset: the policy default). */
export interface JobLimitsInput {
  memoryMb?: number;
  cpuMs?: number;
  wallMs?: number;
  outputBytes?: number;
}

/** A job to submit. */
export interface JobSpec {
  datasetId: string;
  /** ES module source defining `run(data, params)`. */
  code: string;
  /** JSON-serialisable params (run()'s second argument). */
  params?: unknown;
  limits?: JobLimitsInput;
  /** Fields the gateway groups the verified records by (one run per group). */
  groupBy?: string[];
  /** Only these UEs of the dataset. */
  ues?: UeIdentity[];
  /** Default: 16 random bytes. */
  nonce?: Uint8Array;
  seed?: number;
  idempotencyKey?: string;
}

/** One released group of a result. */
export interface ResultGroup<V = unknown> {
  key: Record<string, string | number | boolean | null>;
  /** Distinct UEs and records behind the value, as counted by the gateway. */
  ues: number;
  records: number;
  value: V;
}

/** The result document a gateway releases. */
export interface JobResultDocument<V = unknown> {
  jobId: string;
  datasetId: string;
  groupBy: string[];
  groups: ResultGroup<V>[];
  suppressedGroups: number;
  unparsedRecords: number;
}

/** A result whose attestation and report checked out. */
export interface VerifiedJobResult<V = unknown> extends VerifiedAttestation {
  jobId: string;
  status: JobStatus;
  /** Exact result bytes and their parsed form. */
  result: Uint8Array;
  document: JobResultDocument<V>;
  /** What to keep to show later which data and code produced the result. */
  attestation: JobAttestation;
  signedReport: SignedVerificationReport;
  report: VerificationReport;
}

export interface JobClientOptions {
  /** Gateway address, `host:port`. */
  address: string;
  /** Bearer token (or mTLS credentials). */
  token?: string;
  credentials?: grpc.ChannelCredentials;
  anchors: TrustAnchors;
  /** Deadline of unary calls (ms); default 60 000. */
  timeoutMs?: number;
}

/** The error a failed, withheld, cancelled or rejected job ended with. */
export function jobError(s: JobStatus): DivsError {
  const code = isErrorCode(s.errorCode) ? s.errorCode : 'INTERNAL';
  return new DivsError(code, `job ${s.jobId} ${jobStateName(s.state).toLowerCase()}: ${s.errorMessage || s.errorCode}`);
}

function paramsText(params: unknown): string {
  if (params === undefined) return '';
  let text: string | undefined;
  try {
    text = JSON.stringify(params);
  } catch (e) {
    fail('INVALID_ARGUMENT', 'params are not JSON-serialisable', e);
  }
  if (typeof text !== 'string') fail('INVALID_ARGUMENT', 'params are not a JSON value');
  return text;
}

/** Client of a gateway's job service. */
export class JobClient {
  readonly #client: GatewayJobServiceClient;
  readonly #o: JobClientOptions;
  readonly address: string;
  /** What each submitted job must be attested with (by job ID). */
  readonly #submitted = new Map<string, { codeHash: Uint8Array; paramsHash: Uint8Array; nonce: Uint8Array; datasetId: string }>();

  constructor(o: JobClientOptions) {
    this.#o = o;
    this.address = o.address;
    this.#client = makeClient(GatewayJobServiceClient, o.address, o.credentials);
  }

  #md(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.#o.token) md.set('authorization', `Bearer ${this.#o.token}`);
    return md;
  }

  #opts() {
    return { metadata: this.#md(), timeoutMs: this.#o.timeoutMs ?? 60_000 };
  }

  /** The usage policy the gateway applies to this consumer [SC2-3]. */
  async policy(): Promise<JobPolicy> {
    const res = await unary(this.#client, this.#client.getJobPolicy, {}, this.#opts());
    if (!res.policy) fail('MISSING_FIELD', 'the gateway answered without a policy');
    return res.policy;
  }

  /** Submits a job; resolves with its first status (QUEUED or PENDING_APPROVAL). */
  async submit(spec: JobSpec): Promise<JobStatus> {
    const paramsJson = paramsText(spec.params);
    const nonce = spec.nonce ?? new Uint8Array(randomBytes(16));
    const res = await unary(
      this.#client,
      this.#client.submitJob,
      {
        datasetId: spec.datasetId,
        ues: spec.ues ?? [],
        code: spec.code,
        paramsJson,
        limits: { memoryMb: spec.limits?.memoryMb ?? 0, cpuMs: spec.limits?.cpuMs ?? 0, wallMs: spec.limits?.wallMs ?? 0, outputBytes: spec.limits?.outputBytes ?? 0 },
        groupBy: spec.groupBy ?? [],
        nonce,
        seed: spec.seed ?? 0,
        idempotencyKey: spec.idempotencyKey ?? '',
      },
      this.#opts(),
    );
    if (!res.status) fail('MISSING_FIELD', 'the gateway answered without a status');
    this.#submitted.set(res.status.jobId, {
      codeHash: sha256(utf8(spec.code)),
      paramsHash: sha256(utf8(paramsJson === '' ? 'null' : paramsJson)),
      nonce,
      datasetId: spec.datasetId,
    });
    return res.status;
  }

  /**
   * Follows a job until it is final; calls `onStatus` for every status and resolves with the
   * final one. `signal` stops watching (not the job).
   */
  async watch(jobId: string, onStatus?: (s: JobStatus) => void, signal?: AbortSignal): Promise<JobStatus> {
    const call = this.#client.watchJob({ jobId }, this.#md());
    const stop = () => call.cancel();
    signal?.addEventListener('abort', stop, { once: true });
    let last: JobStatus | undefined;
    try {
      for await (const msg of serverStream<WatchJobResponse>(call)) {
        if (!msg.status) continue;
        last = msg.status;
        onStatus?.(last);
        if (FINAL_JOB_STATES.has(last.state)) return last;
      }
    } catch (e) {
      if (signal?.aborted) fail('JOB_CANCELLED', 'stopped watching');
      throw e;
    } finally {
      signal?.removeEventListener('abort', stop);
    }
    if (signal?.aborted) fail('JOB_CANCELLED', 'stopped watching');
    fail('UNAVAILABLE', `the watch of job ${jobId} ended before the job finished${last ? ` (last state ${jobStateName(last.state)})` : ''}`);
  }

  /** The job's status now. */
  async status(jobId: string): Promise<JobStatus> {
    const res = await unary(this.#client, this.#client.getJobResult, { jobId, waitMs: 0 }, this.#opts()).catch((e: unknown) => {
      if (e instanceof DivsError && e.code === 'JOB_NOT_FINISHED') return undefined;
      throw e;
    });
    if (res?.status) return res.status;
    // unfinished: the watch's first message is the current status
    const call = this.#client.watchJob({ jobId }, this.#md());
    try {
      for await (const msg of serverStream<WatchJobResponse>(call)) if (msg.status) return msg.status;
    } finally {
      call.cancel();
    }
    fail('UNAVAILABLE', 'no status');
  }

  /**
   * The result of a finished job, verified: attestation (gateway chain and signature, result
   * and report hashes, and — for jobs this client submitted — code, params, nonce and dataset)
   * and the verification report. A job that did not succeed throws its error code
   * (e.g. OUTPUT_BELOW_THRESHOLD, JOB_CPU_LIMIT, JOB_REJECTED).
   */
  async result<V = unknown>(jobId: string, expect: AttestationExpectations = {}, o: { waitMs?: number } = {}): Promise<VerifiedJobResult<V>> {
    const waitMs = Math.max(0, Math.min(60_000, Math.floor(o.waitMs ?? 0)));
    const opts = this.#opts();
    const res = await unary(this.#client, this.#client.getJobResult, { jobId, waitMs }, { ...opts, timeoutMs: opts.timeoutMs + waitMs });
    const status = res.status;
    if (!status) fail('MISSING_FIELD', 'the gateway answered without a status');
    if (status.state !== JobState.JOB_STATE_SUCCEEDED) throw jobError(status);
    if (!res.report) fail('MISSING_FIELD', 'the gateway answered without a verification report');
    const mine = this.#submitted.get(jobId);
    const v = verifyAttestation(res.attestation, this.#o.anchors, {
      ...(mine ? { codeHash: mine.codeHash, paramsHash: mine.paramsHash, nonce: mine.nonce, datasetId: mine.datasetId } : {}),
      ...expect,
      jobId,
      result: res.result,
      report: res.report,
    });
    let document: JobResultDocument<V>;
    try {
      document = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(res.result)) as JobResultDocument<V>;
    } catch (e) {
      fail('MALFORMED_MESSAGE', 'the result is not JSON', e);
    }
    if (!document || !Array.isArray(document.groups) || document.jobId !== jobId) fail('MALFORMED_MESSAGE', 'the result is not a job result document');
    return { ...v, jobId, status, result: res.result, document, attestation: res.attestation as JobAttestation, signedReport: res.report, report: v.report as VerificationReport };
  }

  /** Cancels a job (a finished job stays as it is); resolves with its status. */
  async cancel(jobId: string): Promise<JobStatus> {
    const res = await unary(this.#client, this.#client.cancelJob, { jobId }, this.#opts());
    if (!res.status) fail('MISSING_FIELD', 'the gateway answered without a status');
    return res.status;
  }

  /**
   * Submit, wait until final, and fetch the verified result (throws the job's error code). With
   * `onStatus` the job is watched (every status); without, the result call itself waits.
   */
  async run<V = unknown>(spec: JobSpec, o: { onStatus?: (s: JobStatus) => void; signal?: AbortSignal } = {}): Promise<VerifiedJobResult<V>> {
    const first = await this.submit(spec);
    if (!o.onStatus && first.state !== JobState.JOB_STATE_PENDING_APPROVAL) {
      for (;;) {
        if (o.signal?.aborted) fail('JOB_CANCELLED', 'stopped waiting');
        try {
          return await this.result<V>(first.jobId, {}, { waitMs: 60_000 });
        } catch (e) {
          if (!(e instanceof DivsError) || e.code !== 'JOB_NOT_FINISHED') throw e;
        }
      }
    }
    o.onStatus?.(first);
    const last = FINAL_JOB_STATES.has(first.state) ? first : await this.watch(first.jobId, o.onStatus, o.signal);
    if (last.state !== JobState.JOB_STATE_SUCCEEDED) throw jobError(last);
    return this.result<V>(first.jobId);
  }

  close(): void {
    this.#client.close();
  }
}

/** Client of a gateway's job admin service (the aggregator's operators). */
export class JobAdminClient {
  readonly #client: JobAdminServiceClient;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;

  constructor(o: { address: string; token?: string; credentials?: grpc.ChannelCredentials; timeoutMs?: number }) {
    this.#client = makeClient(JobAdminServiceClient, o.address, o.credentials);
    this.#token = o.token;
    this.#timeoutMs = o.timeoutMs ?? 30_000;
  }

  #opts() {
    const md = new grpc.Metadata();
    if (this.#token) md.set('authorization', `Bearer ${this.#token}`);
    return { metadata: md, timeoutMs: this.#timeoutMs };
  }

  /** Jobs waiting for approval, with their code for review. */
  async pending(): Promise<PendingJob[]> {
    return (await unary(this.#client, this.#client.listPendingJobs, {}, this.#opts())).jobs;
  }

  /** Approves a pending job; `rememberCode` also approves its code hash for the consumer's later jobs. */
  async approve(jobId: string, rememberCode = false): Promise<JobStatus> {
    const res = await unary(this.#client, this.#client.approveJob, { jobId, rememberCode }, this.#opts());
    if (!res.status) fail('MISSING_FIELD', 'no status');
    return res.status;
  }

  async reject(jobId: string, reason: string): Promise<JobStatus> {
    const res = await unary(this.#client, this.#client.rejectJob, { jobId, reason }, this.#opts());
    if (!res.status) fail('MISSING_FIELD', 'no status');
    return res.status;
  }

  close(): void {
    this.#client.close();
  }
}

/**
 * TLS (and, with a client certificate, mTLS) credentials for talking to a gateway [SEC-1].
 * Gateway certificates name the gateway, not a host, so instead of a host-name check the
 * server certificate must carry the "gateway" role under the given roots (and, when
 * `gatewayName` is set, have that common name); TLS itself checks the chain and key possession.
 */
export function gatewayCredentials(o: { rootsPem: string; clientCertPem?: string; clientKeyPem?: string; gatewayName?: string }): grpc.ChannelCredentials {
  const roots = pemBlocks(o.rootsPem);
  if (roots.length === 0) fail('CONFIG_INVALID', 'rootsPem: no certificate');
  if ((o.clientCertPem === undefined) !== (o.clientKeyPem === undefined)) fail('CONFIG_INVALID', 'client certificate and key go together');
  return grpc.credentials.createSsl(
    Buffer.from(o.rootsPem),
    o.clientKeyPem === undefined ? null : Buffer.from(o.clientKeyPem),
    o.clientCertPem === undefined ? null : Buffer.from(o.clientCertPem),
    {
      checkServerIdentity: (_host, cert) => {
        try {
          const v = verifyChain([new Uint8Array(cert.raw)], roots, { role: 'gateway' });
          const cn = commonName(v.subject);
          if (o.gatewayName !== undefined && cn !== o.gatewayName) return new Error(`the gateway certificate names ${cn}, not ${o.gatewayName}`);
          return undefined;
        } catch (e) {
          return e instanceof Error ? e : new Error(String(e));
        }
      },
    },
  );
}

/** Hex SHA-256 of a job source: what allow-lists name. */
export function codeHashOf(code: string): string {
  return toHex(sha256(utf8(code)));
}
