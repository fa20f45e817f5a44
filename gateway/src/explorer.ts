/**
 * @module gateway/explorer
 * What the gateway's operator dashboard shows, as plain JSON-ready objects (no HTTP here; the
 * routes are in http.ts):
 * - overview: gateway identity, store figures, totals since start (ingest, verification, jobs);
 * - time series for charts: records acknowledged per second, verification outcomes by reason
 *   (latest report of each dataset), job durations (latest finished jobs);
 * - datasets [SC2-1]: descriptions only — IDs, channels, UE identities with counts, sequence and
 *   time ranges, schema — never a record or a payload byte;
 * - signed verification reports this gateway issued [SC2-2] [VER-3] (report-log.ts), decoded,
 *   with their signature checked against the consortium anchors as a consumer would;
 * - consumer jobs [SC2-3] [SC2-4] with state, durations, code hash and the signed attestation,
 *   decoded and checked (result hash bound, report hash bound, gateway chain and signature).
 *
 * Byte fields are lower-case hex. Unknown IDs are NOT_FOUND (UNKNOWN_DATASET for datasets), bad
 * parameters INVALID_ARGUMENT.
 */
import { X509Certificate } from 'node:crypto';
import { SignedVerificationReport, VerificationReport, type DatasetDescription } from '../../proto/gen/divs/v1/gateway.ts';
import { JobAttestation, JobStatement, JobState } from '../../proto/gen/divs/v1/jobs.ts';
import type { UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { sha256, toHex } from '../../protocol/src/bytes.ts';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { verifyAttestation } from '../../consumer/src/jobs.ts';
import { checkpointJson, endorsementJson, verifyReport } from '../../consumer/src/report.ts';
import type { DatasetCatalog, DatasetConfig } from './datasets.ts';
import { stateName, type JobManager } from './jobs/manager.ts';
import { FINAL_STATES, type JobRecord } from './jobs/store.ts';
import type { GatewayMetrics } from './metrics.ts';
import { summarize, type LoggedReport, type ReportLog, type ReportSummary } from './report-log.ts';

/** Largest page sizes the API serves. */
export const MAX_LIST = 500;
const MAX_UE_PAGE = 1000;

/** Parses an optional non-negative integer query parameter (INVALID_ARGUMENT otherwise). */
export function intParam(raw: string | undefined, name: string, dflt: number, max = Number.MAX_SAFE_INTEGER): number {
  if (raw === undefined || raw === '') return dflt;
  if (!/^\d{1,15}$/.test(raw)) fail('INVALID_ARGUMENT', `${name}: a non-negative integer`);
  const v = Number(raw);
  if (v > max) fail('INVALID_ARGUMENT', `${name}: at most ${max}`);
  return v;
}

/** A certificate as the dashboard shows it. */
export interface CertView {
  subject: string;
  issuer: string;
  validFrom: string;
  validTo: string;
  fingerprint256: string;
}

function certView(der: Uint8Array): CertView {
  try {
    const c = new X509Certificate(der);
    return { subject: c.subject.replaceAll('\n', ', '), issuer: c.issuer.replaceAll('\n', ', '), validFrom: c.validFrom, validTo: c.validTo, fingerprint256: c.fingerprint256 };
  } catch {
    // our own bytes, so this should not happen; show it rather than fail the page
    return { subject: '(does not parse)', issuer: '', validFrom: '', validTo: '', fingerprint256: toHex(sha256(der)) };
  }
}

const identityView = (u: UeIdentity | undefined) => ({ imei: u?.imei ?? '', iccid: u?.iccid ?? '', eid: u?.eid ?? '', msisdn: u?.msisdn ?? '' });

/** What the dashboard shows of every dataset: its description and who it is granted to (never a record). */
function datasetView(c: DatasetConfig, d: DatasetDescription) {
  const { datasetId: id, description, schema, channel, contentTypes, recordCount, ueCount, firstTimestampMs, lastTimestampMs } = d;
  return { id, description, schema, channel, contentTypes, grants: [...c.grants], recordCount, ueCount, firstTimestampMs, lastTimestampMs };
}

/** A check of a signature as a consumer would do it: verified, or the DIVS code it failed with. */
export interface CheckView {
  verified: boolean;
  code: string;
  message: string;
}

function check(fn: () => unknown): CheckView {
  try {
    fn();
    return { verified: true, code: 'OK', message: '' };
  } catch (e) {
    return e instanceof DivsError ? { verified: false, code: e.code, message: e.message } : { verified: false, code: 'INTERNAL', message: 'check failed' };
  }
}

export interface ExplorerOptions {
  gatewayId: string;
  /** Gateway certificate chain (DER, leaf first). */
  certChain: Uint8Array[];
  /** Consortium root CAs (DER): reports and attestations are checked against them. */
  anchors: Uint8Array[];
  catalog: DatasetCatalog;
  /** Every configured dataset (the operator sees them all, whatever their grants). */
  datasets: readonly DatasetConfig[];
  metrics: GatewayMetrics;
  reports: ReportLog;
  /** Null when jobs are disabled. */
  jobs: JobManager | null;
  startedAtMs?: number;
}

/** The dashboard's data; see the module comment. */
export class GatewayExplorer {
  readonly #o: ExplorerOptions;
  readonly #byId: ReadonlyMap<string, DatasetConfig>;
  readonly #startedAtMs: number;
  #jobCache: { atMs: number; list: JobRecord[] } | undefined;

  constructor(o: ExplorerOptions) {
    this.#o = o;
    this.#byId = new Map(o.datasets.map((d) => [d.id, d]));
    this.#startedAtMs = o.startedAtMs ?? Date.now();
  }

  /**
   * The newest jobs of every consumer, shared for a second by the pages and charts of one
   * refresh (the list is read from the job store).
   */
  #recentJobs(): JobRecord[] {
    const jobs = this.#o.jobs;
    if (!jobs) return [];
    const now = Date.now();
    if (!this.#jobCache || now - this.#jobCache.atMs > 1000) this.#jobCache = { atMs: now, list: jobs.operatorList(MAX_LIST) };
    return this.#jobCache.list;
  }

  overview() {
    const fig = this.#o.metrics.storeStats.get();
    const leaf = this.#o.certChain[0];
    const jobs = this.#o.jobs;
    const byState: Record<string, number> = {};
    for (const j of this.#recentJobs()) byState[stateName(j.state)] = (byState[stateName(j.state)] ?? 0) + 1;
    return {
      gatewayId: this.#o.gatewayId,
      startedAtMs: this.#startedAtMs,
      uptimeSeconds: Math.round((Date.now() - this.#startedAtMs) / 1000),
      certificate: leaf ? certView(leaf) : null,
      store: { records: fig.records, ues: fig.ues, channels: fig.channels },
      datasets: this.#o.datasets.length,
      reportsKept: this.#o.reports.count(),
      totals: this.#o.metrics.totals,
      jobs: jobs ? { enabled: true, queued: jobs.queued, running: jobs.running, pendingApproval: jobs.pendingApproval, byState } : { enabled: false, queued: 0, running: 0, pendingApproval: 0, byState },
    };
  }

  /** Chart data: ingest per second over the last `seconds`, outcomes by reason, job durations. */
  series(seconds: number) {
    const latest = this.#o.reports.latestPerDataset();
    const outcomes = new Map<string, { reason: string; result: 'valid' | 'invalid' | 'unverified'; count: number }>();
    const add = (reason: string, result: 'valid' | 'invalid' | 'unverified', count: number) => {
      const k = `${result}\n${reason}`;
      const had = outcomes.get(k);
      if (had) had.count += count;
      else outcomes.set(k, { reason, result, count });
    };
    const byDataset = [...latest.values()]
      .sort((a, b) => (a.datasetId < b.datasetId ? -1 : 1))
      .map((r) => {
        const s = summarize(r);
        add('VALID', 'valid', s.validCount);
        for (const x of s.invalid) add(x.reason, 'invalid', x.count);
        for (const x of s.unverified) add(x.reason, 'unverified', x.count);
        return { datasetId: s.datasetId, reportId: s.id, issuedAtMs: s.issuedAtMs, recordCount: s.recordCount, validCount: s.validCount, invalid: s.invalid, unverified: s.unverified };
      });
    const durations = this.#recentJobs()
      .filter((j) => FINAL_STATES.has(j.state) && j.finishedAtMs > 0)
      .slice(0, 40)
      .reverse()
      .map((j) => ({
        jobId: j.id,
        state: stateName(j.state),
        consumer: j.consumer,
        datasetId: j.datasetId,
        finishedAtMs: j.finishedAtMs,
        waitMs: j.startedAtMs > 0 ? Math.max(0, j.startedAtMs - j.submittedAtMs) : Math.max(0, j.finishedAtMs - j.submittedAtMs),
        runMs: j.startedAtMs > 0 ? Math.max(0, j.finishedAtMs - j.startedAtMs) : 0,
      }));
    return {
      ingest: this.#o.metrics.ingestRate.series(seconds),
      outcomes: [...outcomes.values()].filter((x) => x.count > 0).sort((a, b) => b.count - a.count || (a.reason < b.reason ? -1 : 1)),
      outcomesByDataset: byDataset,
      jobDurations: durations,
    };
  }

  /** Every configured dataset with its figures and latest report summary. */
  datasets() {
    const latest = this.#o.reports.latestPerDataset();
    return {
      datasets: this.#o.datasets.map((c) => {
        const r = latest.get(c.id);
        return { ...datasetView(c, this.#o.catalog.describe(c, true)), latestReport: r ? summarize(r) : null };
      }),
    };
  }

  #dataset(id: string): DatasetConfig {
    const c = this.#byId.get(id);
    if (!c) fail('UNKNOWN_DATASET', `no dataset ${JSON.stringify(id)} on this gateway`);
    return c;
  }

  /** One dataset: description, a page of its UEs, and its recent reports (summaries). */
  dataset(id: string, ueOffset = 0, ueLimit = 100) {
    const c = this.#dataset(id);
    const limit = Math.min(ueLimit, MAX_UE_PAGE);
    const d = this.#o.catalog.describe(c, false);
    return {
      ...datasetView(c, d),
      ueOffset,
      ues: d.ues.slice(ueOffset, ueOffset + limit).map((u) => ({
        identity: identityView(u.identity),
        recordCount: u.recordCount,
        firstTimestampMs: u.firstTimestampMs,
        lastTimestampMs: u.lastTimestampMs,
        firstSequence: u.firstSequence,
        lastSequence: u.lastSequence,
      })),
      reports: this.#o.reports.recent(25, c.id).map(summarize),
    };
  }

  /** Summaries of the newest reports (all datasets). */
  reports(limit: number): { reports: ReportSummary[] } {
    return { reports: this.#o.reports.recent(Math.min(limit, MAX_LIST)).map(summarize) };
  }

  /** One signed report, decoded, with its signature checked against the anchors. */
  report(id: number) {
    const r = this.#o.reports.get(id);
    if (!r) fail('NOT_FOUND', `no report ${id} (unknown, or older than the reports kept)`);
    return this.#reportView(r);
  }

  #reportView(r: LoggedReport) {
    const rep: VerificationReport = r.report;
    return {
      ...summarize(r),
      gatewayId: rep.gatewayId,
      nonce: toHex(rep.nonce),
      startedAtMs: rep.startedAtMs,
      finishedAtMs: rep.finishedAtMs,
      chain: rep.chain ?? { gaps: 0, missingRecords: 0, forks: 0, replays: 0, reordered: 0, forksRejectedAtIngest: 0 },
      datasetCommitment: toHex(rep.datasetCommitment),
      commitmentSize: rep.commitmentSize,
      ueCount: rep.ueCount,
      restrictedTo: rep.ues.map(identityView),
      checkpoints: rep.checkpoints.map(checkpointJson),
      endorsements: rep.endorsements.map(endorsementJson),
      reportBytes: r.signed.report.length,
      reportHash: toHex(sha256(r.signed.report)),
      signature: toHex(r.signed.signature),
      certChain: r.signed.certChain.map(certView),
      signatureCheck: check(() => verifyReport(r.signed, { roots: this.#o.anchors }, { datasetId: r.datasetId })),
    };
  }

  #jobs(): JobManager {
    if (!this.#o.jobs) fail('NOT_FOUND', 'jobs are disabled on this gateway');
    return this.#o.jobs;
  }

  /** Jobs of every consumer, newest first (optionally of one state, e.g. SUCCEEDED). */
  jobs(limit: number, state?: string) {
    const want = state ? stateValue(state) : undefined;
    const all = this.#recentJobs();
    return { enabled: this.#o.jobs !== null, jobs: all.filter((j) => want === undefined || j.state === want).slice(0, Math.min(limit, MAX_LIST)).map(jobSummary) };
  }

  /** One job with its attestation (decoded and checked) and its report summary. */
  job(id: string) {
    const j = this.#jobs().operatorGet(id);
    if (!j) fail('NOT_FOUND', `no job ${id}`);
    let signedReport: SignedVerificationReport | undefined;
    try {
      signedReport = j.report ? SignedVerificationReport.decode(j.report) : undefined;
    } catch {
      signedReport = undefined;
    }
    let attestation = null;
    if (j.attestation) {
      const att = JobAttestation.decode(j.attestation);
      const st = JobStatement.decode(att.statement);
      const result = j.result ?? new Uint8Array(0);
      attestation = {
        statement: {
          jobId: st.jobId,
          gatewayId: st.gatewayId,
          consumer: st.consumer,
          datasetId: st.datasetId,
          codeHash: toHex(st.codeHash),
          paramsHash: toHex(st.paramsHash),
          runner: st.runner ? { version: st.runner.version, digest: toHex(st.runner.digest), nodeVersion: st.runner.nodeVersion, v8Version: st.runner.v8Version, isolatedVmVersion: st.runner.isolatedVmVersion } : null,
          datasetCommitment: toHex(st.datasetCommitment),
          commitmentSize: st.commitmentSize,
          reportHash: toHex(st.reportHash),
          inputCommitment: toHex(st.inputCommitment),
          inputRecords: st.inputRecords,
          inputUes: st.inputUes,
          limits: st.limits ?? null,
          outputPolicy: st.outputPolicy ?? null,
          groupBy: st.groupBy,
          groups: st.groups,
          suppressedGroups: st.suppressedGroups,
          resultHash: toHex(st.resultHash),
          resultBytes: st.resultBytes,
          submittedAtMs: st.submittedAtMs,
          startedAtMs: st.startedAtMs,
          finishedAtMs: st.finishedAtMs,
          seed: st.seed,
          jobTimeMs: st.jobTimeMs,
          nonce: toHex(st.nonce),
          approval: st.approval,
        },
        statementBytes: att.statement.length,
        signature: toHex(att.signature),
        certChain: att.certChain.map(certView),
        // as the consumer checks it: gateway chain and signature, the result and report it binds
        check: check(() => verifyAttestation(att, { roots: this.#o.anchors }, { jobId: j.id, result, ...(signedReport ? { report: signedReport } : {}) })),
      };
    }
    return {
      ...jobSummary(j),
      paramsJson: j.paramsJson,
      code: j.code,
      limits: j.limits,
      groupBy: [...j.groupBy],
      ues: j.ues.map(identityView),
      nonce: toHex(j.nonce),
      seed: j.seed,
      progress: j.progress,
      detail: j.detail,
      groupsTotal: j.groupsTotal,
      groupsDone: j.groupsDone,
      // the result is the consumer's: operators see its size and hash, not its content
      resultBytes: j.result ? j.result.length : 0,
      resultHash: j.result ? toHex(sha256(j.result)) : '',
      report: signedReport ? this.#jobReport(j, signedReport) : null,
      attestation,
    };
  }

  #jobReport(j: JobRecord, signed: SignedVerificationReport) {
    const logged = this.#o.reports.byJob(j.id);
    let report: VerificationReport;
    try {
      // decoded only: its signature and binding are checked with the attestation
      report = VerificationReport.decode(signed.report);
    } catch {
      return null;
    }
    return { ...summarize({ id: logged?.id ?? 0, datasetId: j.datasetId, source: 'job', consumer: j.consumer, jobId: j.id, issuedAtMs: logged?.issuedAtMs ?? j.updatedAtMs, report }), reportId: logged?.id ?? null };
  }
}

/** JobState value of a state name ("SUCCEEDED" or "JOB_STATE_SUCCEEDED"); INVALID_ARGUMENT otherwise. */
function stateValue(name: string): JobState {
  const key = name.toUpperCase().startsWith('JOB_STATE_') ? name.toUpperCase() : `JOB_STATE_${name.toUpperCase()}`;
  const v = (JobState as Record<string, JobState>)[key];
  if (v === undefined || v === JobState.UNRECOGNIZED || v === JobState.JOB_STATE_UNSPECIFIED) fail('INVALID_ARGUMENT', `state: one of ${Object.keys(JobState).filter((k) => k.startsWith('JOB_STATE_') && k !== 'JOB_STATE_UNSPECIFIED').map((k) => k.slice(10)).join(', ')}`);
  return v;
}

function jobSummary(j: Readonly<JobRecord>) {
  const end = j.finishedAtMs || 0;
  return {
    jobId: j.id,
    consumer: j.consumer,
    datasetId: j.datasetId,
    state: stateName(j.state),
    final: FINAL_STATES.has(j.state),
    codeHash: j.codeHash,
    approval: j.approval,
    submittedAtMs: j.submittedAtMs,
    startedAtMs: j.startedAtMs,
    finishedAtMs: end,
    durationMs: end > 0 ? Math.max(0, end - j.submittedAtMs) : null,
    runMs: end > 0 && j.startedAtMs > 0 ? Math.max(0, end - j.startedAtMs) : null,
    recordsTotal: j.recordsTotal,
    recordsValid: j.recordsValid,
    errorCode: j.errorCode,
    errorMessage: j.errorMessage,
    hasAttestation: j.attestation !== null,
  };
}
