/**
 * @module jobs/manager
 * The life cycle of consumer jobs [SC2-2] [SC2-3] [SC2-4]: submission under the usage policy,
 * manual approval, a bounded queue, verification of the dataset first, one sandbox run per
 * output group over the verified records only, the output checks, the signed attestation, and
 * every state change persisted (jobs/store.ts) and pushed to watchers.
 *
 * ```
 * submit ─▶ PENDING_APPROVAL ─approve─▶ QUEUED ─▶ VERIFYING ─▶ RUNNING ─▶ SUCCEEDED
 *              │ reject                   │           │            ├──▶ WITHHELD (output policy)
 *              ▼                          ▼           ▼            ▼
 *           REJECTED                 CANCELLED   FAILED / CANCELLED
 * ```
 *
 * A consumer sees only its own jobs: another consumer's job ID answers NOT_FOUND, as an unknown
 * one does. Jobs interrupted by a shutdown keep their state on disk and are queued again at the
 * next start.
 */
import { randomUUID } from 'node:crypto';
import { UeIdentity } from '../../../proto/gen/divs/v1/common.ts';
import { SignedVerificationReport } from '../../../proto/gen/divs/v1/gateway.ts';
import {
  JobAttestation,
  JobState,
  type GetJobResultResponse,
  type JobLimits,
  type JobPolicy,
  type JobStatement,
  type JobStatus,
  type PendingJob,
  type SubmitJobRequest,
} from '../../../proto/gen/divs/v1/jobs.ts';
import { fromHex, sha256, toHex, utf8 } from '../../../protocol/src/bytes.ts';
import { DivsError, fail, type ErrorCode } from '../../../protocol/src/errors.ts';
import { validateUeIdentity } from '../../../protocol/src/identity.ts';
import { silentLogger, type Logger } from '../../../platform/src/log.ts';
import type { JsonValue, RunnerMeasurement, RunnerPool } from '../../../enclave-runner/src/index.ts';
import type { DatasetCatalog } from '../datasets.ts';
import type { ReportSigner } from '../report.ts';
import { ueKeyOf } from '../store.ts';
import { measurementMessage, type AttestationSigner } from './attestation.ts';
import { checkGroupBy, groupData, parseRows, partition, type VerifiedRow } from './columns.ts';
import { checkGroupValue, resultBytes, type JobResultDocument, type ReleasedGroup } from './output.ts';
import type { JobLimitValues, JobPolicyConfig, PolicyEngine, TransportFacts } from './policy.ts';
import { jobCommitment, type SnapshotVerifier } from './snapshot.ts';
import { FINAL_STATES, type JobRecord, type JobStore } from './store.ts';

/** Largest job source (UTF-8 bytes), params JSON, nonce, UE restriction list, idempotency key. */
export const MAX_CODE_BYTES = 1 << 20;
export const MAX_PARAMS_BYTES = 1 << 20;
export const MAX_NONCE_BYTES = 64;
export const MAX_UES = 10_000;
export const MAX_IDEMPOTENCY_KEY = 128;
const MAX_REASON = 1000;
/** Longest GetJobResult wait. */
export const MAX_WAIT_MS = 60_000;

/** Codes that mean "the job ran, its output broke the output policy". */
const WITHHELD_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['OUTPUT_BELOW_THRESHOLD', 'OUTPUT_NOT_AGGREGATE', 'JOB_OUTPUT_LIMIT']);

export interface JobManagerOptions {
  store: JobStore;
  policy: PolicyEngine;
  catalog: DatasetCatalog;
  snapshots: SnapshotVerifier;
  reportSigner: ReportSigner;
  attestations: AttestationSigner;
  /** The runner pool, started on first use. */
  runners: () => Promise<RunnerPool>;
  measurement: RunnerMeasurement;
  /** Jobs verifying or running at once. */
  concurrency: number;
  /** Queued jobs beyond which submissions are refused (POOL_UNAVAILABLE). */
  maxQueued: number;
  /** Finished jobs older than this are deleted. */
  retentionMs: number;
  /** A verified snapshot of an unchanged dataset may be reused for this long (0: verify every job). */
  verificationMaxAgeMs?: number;
  log?: Logger;
}

/** What running a job's groups gave. */
interface GroupsRun {
  released: ReleasedGroup[];
  /** The rows of the groups that ran. */
  used: Set<VerifiedRow>;
  suppressed: number;
  unparsed: number;
}

interface Running {
  ctl: AbortController;
  /** The runner job of the group being run. */
  runnerJobId?: string;
  pool?: RunnerPool;
}

/** Gets every status change; `null` when the gateway shuts down (the watch ends). */
type Listener = (s: JobStatus | null) => void;

const limitsMessage = (l: JobLimitValues): JobLimits => ({ memoryMb: l.memoryMb, cpuMs: l.cpuMs, wallMs: l.wallMs, outputBytes: l.outputBytes });

function aborted(signal: AbortSignal): void {
  if (signal.aborted) fail('JOB_CANCELLED', 'the job was cancelled');
}

/** Runs consumer jobs; see the module comment. */
export class JobManager {
  readonly #o: JobManagerOptions;
  readonly #log: Logger;
  /** Unfinished jobs. */
  readonly #active = new Map<string, JobRecord>();
  readonly #queue: string[] = [];
  readonly #running = new Map<string, Running>();
  readonly #watchers = new Map<string, Set<Listener>>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #changeListeners = new Set<(j: Readonly<JobRecord>) => void>();
  readonly #pruneTimer: NodeJS.Timeout;
  #closing = false;

  constructor(o: JobManagerOptions) {
    this.#o = o;
    this.#log = (o.log ?? silentLogger).child({ component: 'jobs' });
    // jobs a previous process left unfinished: approval waits go on, the rest run again
    for (const j of o.store.inStates([JobState.JOB_STATE_PENDING_APPROVAL, JobState.JOB_STATE_QUEUED, JobState.JOB_STATE_VERIFYING, JobState.JOB_STATE_RUNNING])) {
      if (j.state !== JobState.JOB_STATE_PENDING_APPROVAL) {
        if (j.state !== JobState.JOB_STATE_QUEUED) this.#log.warn({ jobId: j.id }, 'job interrupted by a restart: queued again');
        Object.assign(j, { state: JobState.JOB_STATE_QUEUED, progress: 0, detail: 'queued again after a gateway restart', groupsTotal: 0, groupsDone: 0, updatedAtMs: Date.now() });
        o.store.save(j);
        this.#queue.push(j.id);
      }
      this.#active.set(j.id, j);
    }
    this.#prune();
    this.#pruneTimer = setInterval(() => this.#prune(), 3_600_000);
    this.#pruneTimer.unref();
    setImmediate(() => this.#pump());
  }

  #prune(): void {
    try {
      const n = this.#o.store.prune(Date.now() - this.#o.retentionMs);
      if (n > 0) this.#log.info({ deleted: n }, 'finished jobs past retention deleted');
    } catch (e) {
      this.#log.warn({ err: (e as Error).message }, 'pruning finished jobs failed');
    }
  }

  // ------------------------------------------------------------------ consumer API

  /** Accepts a job under the caller's policy, or refuses it with a coded reason. */
  submit(consumer: string, req: SubmitJobRequest, transport: TransportFacts): JobStatus {
    if (this.#closing) fail('UNAVAILABLE', 'the gateway is shutting down');
    const dataset = this.#o.catalog.get(req.datasetId, consumer);
    if (typeof req.code !== 'string' || req.code.length === 0) fail('MISSING_FIELD', 'code: the job source');
    const codeBytes = utf8(req.code);
    if (codeBytes.length > MAX_CODE_BYTES) fail('INVALID_ARGUMENT', `code: at most ${MAX_CODE_BYTES} bytes`);
    const paramsJson = req.paramsJson === '' ? 'null' : req.paramsJson;
    if (utf8(paramsJson).length > MAX_PARAMS_BYTES) fail('INVALID_ARGUMENT', `params_json: at most ${MAX_PARAMS_BYTES} bytes`);
    try {
      JSON.parse(paramsJson);
    } catch {
      fail('INVALID_ARGUMENT', 'params_json: not JSON');
    }
    const groupBy = checkGroupBy(req.groupBy);
    if (req.nonce.length > MAX_NONCE_BYTES) fail('INVALID_ARGUMENT', `nonce: at most ${MAX_NONCE_BYTES} bytes`);
    if (!Number.isSafeInteger(req.seed) || req.seed < 0) fail('INVALID_ARGUMENT', 'seed: a safe integer');
    if (req.ues.length > MAX_UES) fail('INVALID_ARGUMENT', `ues: at most ${MAX_UES}`);
    const ues = req.ues.map((u, i) => UeIdentity.fromPartial(validateUeIdentity(u, `ues[${i}]`)));
    const key = req.idempotencyKey;
    if (key.length > MAX_IDEMPOTENCY_KEY || !/^[\x21-\x7e]*$/.test(key)) fail('INVALID_ARGUMENT', `idempotency_key: at most ${MAX_IDEMPOTENCY_KEY} printable ASCII characters`);
    const codeHash = toHex(sha256(codeBytes));
    if (key !== '') {
      const had = this.#o.store.byIdempotencyKey(consumer, key);
      if (had) {
        if (had.codeHash !== codeHash || had.datasetId !== dataset.id || had.paramsJson !== paramsJson) fail('INVALID_ARGUMENT', 'idempotency_key was used for another job');
        return this.#statusOf(this.#active.get(had.id) ?? had);
      }
    }
    const decision = this.#o.policy.decide({
      consumer,
      datasetId: dataset.id,
      codeHash,
      limits: { memoryMb: req.limits?.memoryMb, cpuMs: req.limits?.cpuMs, wallMs: req.limits?.wallMs, outputBytes: req.limits?.outputBytes },
      transport,
      activeJobs: this.#o.store.activeCount(consumer),
      approvedCodeHashes: this.#o.store.approvedCode(consumer),
    });
    if (decision.approval === 'allow-list' && this.#queue.length >= this.#o.maxQueued) fail('POOL_UNAVAILABLE', `the job queue is full (${this.#o.maxQueued} jobs)`);
    const now = Date.now();
    const j: JobRecord = {
      id: randomUUID(),
      consumer,
      datasetId: dataset.id,
      state: decision.approval === 'manual' ? JobState.JOB_STATE_PENDING_APPROVAL : JobState.JOB_STATE_QUEUED,
      code: req.code,
      codeHash,
      paramsJson,
      limits: decision.limits,
      groupBy,
      ues,
      nonce: req.nonce.slice(),
      seed: req.seed,
      idempotencyKey: key,
      approval: decision.approval === 'manual' ? '' : 'allow-list',
      submittedAtMs: now,
      startedAtMs: 0,
      finishedAtMs: 0,
      updatedAtMs: now,
      errorCode: '',
      errorMessage: '',
      recordsTotal: 0,
      recordsValid: 0,
      groupsTotal: 0,
      groupsDone: 0,
      progress: 0,
      detail: decision.approval === 'manual' ? 'waiting for an operator to approve the code' : 'queued',
      result: null,
      attestation: null,
      report: null,
    };
    this.#o.store.save(j);
    this.#active.set(j.id, j);
    this.#log.info({ jobId: j.id, consumer, dataset: dataset.id, codeHash, approval: decision.approval }, 'job submitted');
    if (j.state === JobState.JOB_STATE_QUEUED) {
      this.#queue.push(j.id);
      queueMicrotask(() => this.#pump());
    }
    return this.#statusOf(j);
  }

  /** A job of this consumer (active or finished); NOT_FOUND otherwise. */
  #own(consumer: string, jobId: string): JobRecord {
    if (typeof jobId !== 'string' || jobId.length === 0 || jobId.length > 64) fail('NOT_FOUND', 'no such job');
    const j = this.#active.get(jobId) ?? this.#o.store.get(jobId);
    if (!j || j.consumer !== consumer) fail('NOT_FOUND', `no job ${jobId} of ${consumer}`);
    return j;
  }

  status(consumer: string, jobId: string): JobStatus {
    return this.#statusOf(this.#own(consumer, jobId));
  }

  /**
   * Calls `listener` with the job's status now and at every change until it is final; returns
   * the function that stops it.
   */
  watch(consumer: string, jobId: string, listener: Listener): () => void {
    const j = this.#own(consumer, jobId);
    listener(this.#statusOf(j));
    if (FINAL_STATES.has(j.state)) return () => undefined;
    let set = this.#watchers.get(jobId);
    if (!set) this.#watchers.set(jobId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#watchers.delete(jobId);
    };
  }

  /** The result, attestation and report of a finished job; JOB_NOT_FINISHED before. */
  result(consumer: string, jobId: string): GetJobResultResponse {
    const j = this.#own(consumer, jobId);
    if (!FINAL_STATES.has(j.state)) fail('JOB_NOT_FINISHED', `job ${jobId} is ${stateName(j.state)}`);
    return {
      status: this.#statusOf(j),
      result: j.result ?? new Uint8Array(0),
      attestation: j.attestation ? JobAttestation.decode(j.attestation) : undefined,
      report: j.report ? SignedVerificationReport.decode(j.report) : undefined,
    };
  }

  /**
   * {@link result}, after waiting up to `waitMs` for the job to finish (JOB_NOT_FINISHED if it
   * does not; UNAVAILABLE when the gateway shuts down meanwhile).
   */
  async waitResult(consumer: string, jobId: string, waitMs: number, signal?: AbortSignal): Promise<GetJobResultResponse> {
    const j = this.#own(consumer, jobId);
    if (waitMs > 0 && !FINAL_STATES.has(j.state)) {
      await new Promise<void>((resolve) => {
        let stop: () => void = () => undefined;
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          stop();
          resolve();
        };
        const timer = setTimeout(done, Math.min(waitMs, MAX_WAIT_MS));
        signal?.addEventListener('abort', done, { once: true });
        stop = this.watch(consumer, jobId, (st) => {
          if (st === null || FINAL_STATES.has(st.state)) done();
        });
      });
    }
    return this.result(consumer, jobId);
  }

  /** Cancels an unfinished job; a finished one is returned as it is. */
  cancel(consumer: string, jobId: string): JobStatus {
    const j = this.#own(consumer, jobId);
    if (FINAL_STATES.has(j.state)) return this.#statusOf(j);
    const r = this.#running.get(j.id);
    if (r) {
      r.ctl.abort();
      if (r.runnerJobId && r.pool) r.pool.cancel(r.runnerJobId);
    }
    const i = this.#queue.indexOf(j.id);
    if (i >= 0) this.#queue.splice(i, 1);
    this.#finish(j, JobState.JOB_STATE_CANCELLED, 'JOB_CANCELLED', `cancelled by ${consumer}`);
    return this.#statusOf(j);
  }

  /** The usage policy that applies to a consumer [SC2-3]. */
  policyView(consumer: string): JobPolicy {
    const p = this.#o.policy.policyFor(consumer);
    if (!p) fail('POLICY_DATASET_DENIED', `the usage policy grants ${consumer} no jobs on this gateway`);
    return {
      gatewayId: this.#o.attestations.gatewayId,
      consumer,
      datasets: this.#o.catalog
        .visible(consumer)
        .map((d) => d.id)
        .filter((id) => this.#o.policy.datasetAllowed(p, id)),
      defaultLimits: limitsMessage(this.#o.policy.defaultLimits(p)),
      maxLimits: limitsMessage({ ...p.maxLimits, outputBytes: Math.min(p.maxLimits.outputBytes, p.maxOutputBytes) }),
      output: { minDistinctUes: p.minDistinctUes, maxOutputBytes: p.maxOutputBytes, maxGroups: p.maxGroups, maxValuesPerGroup: p.maxValuesPerGroup },
      allowedCodeHashes: [...new Set([...p.approval.allowCodeHashes.map((h) => h.toLowerCase()), ...this.#o.store.approvedCode(consumer)])].map((h) => fromHex(h)),
      manualApproval: p.approval.manual,
      transport: p.transport,
      runner: measurementMessage(this.#o.measurement),
      maxRecords: p.maxRecords,
      maxActiveJobs: p.maxActiveJobs,
    };
  }

  // ------------------------------------------------------------------ operator API

  /** Jobs waiting for approval, oldest first. */
  pending(): PendingJob[] {
    return [...this.#active.values()]
      .filter((j) => j.state === JobState.JOB_STATE_PENDING_APPROVAL)
      .sort((a, b) => a.submittedAtMs - b.submittedAtMs)
      .map((j) => ({
        jobId: j.id,
        consumer: j.consumer,
        datasetId: j.datasetId,
        codeHash: fromHex(j.codeHash),
        code: j.code,
        paramsJson: j.paramsJson,
        limits: limitsMessage(j.limits),
        groupBy: [...j.groupBy],
        submittedAtMs: j.submittedAtMs,
      }));
  }

  #pendingJob(jobId: string): JobRecord {
    const j = typeof jobId === 'string' && jobId.length <= 64 ? (this.#active.get(jobId) ?? this.#o.store.get(jobId)) : undefined;
    if (!j) fail('NOT_FOUND', `no job ${String(jobId)}`);
    if (j.state !== JobState.JOB_STATE_PENDING_APPROVAL) fail('JOB_STATE_CONFLICT', `job ${jobId} is ${stateName(j.state)}, not waiting for approval`);
    return j;
  }

  /** An operator approves a pending job (and, with `rememberCode`, its code for the consumer's later jobs). */
  approve(operator: string, jobId: string, rememberCode: boolean): JobStatus {
    const j = this.#pendingJob(jobId);
    if (this.#queue.length >= this.#o.maxQueued) fail('POOL_UNAVAILABLE', `the job queue is full (${this.#o.maxQueued} jobs)`);
    if (rememberCode) this.#o.store.approveCode(j.consumer, j.codeHash, operator);
    this.#set(j, { state: JobState.JOB_STATE_QUEUED, approval: `manual:${operator}`, detail: `approved by ${operator}; queued` }, true);
    this.#log.info({ jobId: j.id, operator, rememberCode }, 'job approved');
    this.#queue.push(j.id);
    queueMicrotask(() => this.#pump());
    return this.#statusOf(j);
  }

  /** An operator rejects a pending job (JOB_REJECTED). */
  reject(operator: string, jobId: string, reason: string): JobStatus {
    const j = this.#pendingJob(jobId);
    const why = typeof reason === 'string' && reason.trim() !== '' ? reason.trim().slice(0, MAX_REASON) : 'no reason given';
    this.#finish(j, JobState.JOB_STATE_REJECTED, 'JOB_REJECTED', `rejected by ${operator}: ${why}`);
    this.#log.info({ jobId: j.id, operator }, 'job rejected');
    return this.#statusOf(j);
  }

  // ------------------------------------------------------------------ running

  #pump(): void {
    while (!this.#closing && this.#running.size < this.#o.concurrency && this.#queue.length > 0) {
      const id = this.#queue.shift() as string;
      const j = this.#active.get(id);
      if (!j || j.state !== JobState.JOB_STATE_QUEUED) continue;
      const r: Running = { ctl: new AbortController() };
      this.#running.set(id, r);
      const task = this.#process(j, r)
        // #process records every failure itself; this only guards against a bug there
        .catch((e: unknown) => this.#log.error({ jobId: id, err: e }, 'job processing failed'))
        .finally(() => {
          this.#running.delete(id);
          this.#tasks.delete(task);
          this.#pump();
        });
      this.#tasks.add(task);
    }
  }

  /**
   * Partitions verified rows (the gateway counts each group's UEs, jobs/output.ts), runs the job
   * in the sandbox once per group that meets the threshold, and checks each group's output.
   * Reports progress through `onProgress` (groups done, groups in all), when given; stops
   * (JOB_CANCELLED) once `signal` is aborted — the job's own, or a narrower one.
   */
  async #runGroups(
    j: JobRecord,
    r: Running,
    rows: VerifiedRow[],
    p: JobPolicyConfig,
    datasetId: string,
    startedAtMs: number,
    onProgress?: (done: number, total: number) => void,
    signal: AbortSignal = r.ctl.signal,
  ): Promise<GroupsRun> {
    const { parsed, unparsed } = parseRows(rows);
    const groups = partition(parsed, j.groupBy, p.maxGroups);
    const runnable = groups.filter((g) => g.rows.length > 0 && g.ues >= p.minDistinctUes);
    const suppressed = groups.length - runnable.length;
    if (runnable.length === 0) {
      const most = Math.max(0, ...groups.map((g) => g.ues));
      fail('OUTPUT_BELOW_THRESHOLD', `no group holds records of ${p.minDistinctUes} distinct UEs (the policy threshold); the largest holds ${most} (${parsed.length} usable verified records)`);
    }
    onProgress?.(0, runnable.length);
    const pool = await this.#o.runners();
    aborted(signal);
    r.pool = pool;
    const params = JSON.parse(j.paramsJson) as JsonValue;
    const released: ReleasedGroup[] = [];
    const used = new Set<VerifiedRow>();
    try {
      for (const [i, g] of runnable.entries()) {
        aborted(signal);
        r.runnerJobId = `${j.id}.${i}`;
        const res = await pool.run({
          jobId: r.runnerJobId,
          code: j.code,
          params,
          data: groupData(g, { datasetId, groupBy: j.groupBy }),
          limits: j.limits,
          seed: j.seed,
          startTimeMs: startedAtMs,
        });
        aborted(signal);
        if (!res.ok) throw new DivsError(res.code, runnable.length > 1 ? `group ${i + 1} of ${runnable.length}: ${res.message}` : res.message);
        if (res.codeHash !== j.codeHash) fail('INTERNAL', 'the runner ran other code than submitted');
        const value = JSON.parse(res.output) as unknown;
        checkGroupValue(value, g.rows.length, p);
        released.push({ key: g.key, ues: g.ues, records: g.rows.length, value });
        for (const row of g.rows) used.add(row.row);
        onProgress?.(i + 1, runnable.length);
      }
    } finally {
      r.runnerJobId = undefined;
    }
    return { released, used, suppressed, unparsed };
  }

  async #process(j: JobRecord, r: Running): Promise<void> {
    const signal = r.ctl.signal;
    try {
      const startedAtMs = Date.now();
      // running states are not written to disk: after a restart the job runs again from QUEUED
      this.#set(j, { state: JobState.JOB_STATE_VERIFYING, startedAtMs, progress: 0.05, detail: 'verifying the dataset against the DIVS ledger' }, false);
      // the policy and grants are read again: they may have changed while the job waited
      const dataset = this.#o.catalog.get(j.datasetId, j.consumer);
      const p = this.#o.policy.policyFor(j.consumer);
      if (!p || !this.#o.policy.datasetAllowed(p, j.datasetId)) fail('POLICY_DATASET_DENIED', `the usage policy no longer allows jobs of ${j.consumer} on ${j.datasetId}`);
      const nonce = j.nonce.length > 0 ? j.nonce : utf8(j.id);
      // While the AS is asked for the latest versions, the job already runs on the rows that the
      // windows of the previous verification give (a guess). Its output is used only when the
      // fresh answers confirm those windows — then the rows are exactly the verified ones and
      // the deterministic run (fixed seed and clock) gives what a run after verification would;
      // otherwise it is thrown away and the job runs again on the verified rows. Nothing of a
      // guess leaves the gateway, and the job's states and progress follow the verified path.
      let guess: Promise<{ ok: true; run: GroupsRun } | { ok: false; error: unknown }> | undefined;
      const guessCtl = new AbortController();
      const snap = await this.#o.snapshots.verify({
        gatewayId: this.#o.attestations.gatewayId,
        datasetId: dataset.id,
        selection: this.#o.catalog.selection(dataset, j.ues.length > 0 ? j.ues.map(ueKeyOf) : undefined),
        nonce,
        ues: j.ues,
        maxRecords: p.maxRecords,
        maxAgeMs: this.#o.verificationMaxAgeMs ?? 0,
        signal,
        onGuess: (rows) => {
          guess = this.#runGroups(j, r, rows, p, dataset.id, startedAtMs, undefined, AbortSignal.any([signal, guessCtl.signal])).then(
            (run) => ({ ok: true as const, run }),
            (error: unknown) => ({ ok: false as const, error }),
          );
        },
      });
      aborted(signal);
      const verifiedAtMs = Date.now();
      const signedReport = this.#o.reportSigner.sign(snap.report);
      const reportBytes = SignedVerificationReport.encode(signedReport).finish();
      this.#set(
        j,
        {
          state: JobState.JOB_STATE_RUNNING,
          report: reportBytes,
          recordsTotal: snap.report.recordCount,
          recordsValid: snap.report.validCount,
          progress: 0.4,
          detail: `${snap.report.validCount} of ${snap.report.recordCount} records verified; running`,
        },
        false,
      );

      let run: GroupsRun;
      if (guess !== undefined && !snap.guessConfirmed) {
        // the rows changed: stop the run on the old ones rather than wait for it to finish
        guessCtl.abort();
        if (r.runnerJobId !== undefined && r.pool !== undefined) r.pool.cancel(r.runnerJobId);
      }
      const guessed = guess === undefined ? undefined : await guess;
      aborted(signal);
      if (snap.guessConfirmed && guessed !== undefined) {
        if (!guessed.ok) throw guessed.error;
        run = guessed.run;
        this.#set(j, { groupsTotal: run.released.length, groupsDone: run.released.length, progress: 0.95, detail: `${run.released.length} group(s) done` }, false);
      } else {
        run = await this.#runGroups(j, r, snap.rows, p, dataset.id, startedAtMs, (done, total) =>
          this.#set(j, { groupsTotal: total, groupsDone: done, progress: 0.4 + (0.55 * done) / total, detail: done === 0 ? `${total} group(s) to run` : `group ${done} of ${total} done` }, false),
        );
      }
      const { released, used, suppressed, unparsed } = run;

      const doc: JobResultDocument = { jobId: j.id, datasetId: dataset.id, groupBy: [...j.groupBy], groups: released, suppressedGroups: suppressed, unparsedRecords: unparsed };
      const result = resultBytes(doc, p);
      // what the job was given: the rows of the groups that ran, in dataset order
      const inputHashes: Uint8Array[] = [];
      const inputUes = new Set<number>();
      for (const row of snap.rows) {
        if (!used.has(row)) continue;
        inputHashes.push(row.hash);
        inputUes.add(row.ue);
      }
      const concatenated = new Uint8Array(32 * inputHashes.length);
      inputHashes.forEach((h, k) => concatenated.set(h, 32 * k));
      aborted(signal);
      const finishedAtMs = Date.now();
      const statement: JobStatement = {
        jobId: j.id,
        gatewayId: this.#o.attestations.gatewayId,
        consumer: j.consumer,
        datasetId: dataset.id,
        codeHash: fromHex(j.codeHash),
        paramsHash: sha256(utf8(j.paramsJson)),
        runner: measurementMessage(this.#o.measurement),
        datasetCommitment: snap.report.datasetCommitment,
        commitmentSize: snap.report.commitmentSize,
        reportHash: sha256(signedReport.report),
        inputCommitment: jobCommitment(concatenated),
        inputRecords: inputHashes.length,
        inputUes: inputUes.size,
        limits: limitsMessage(j.limits),
        outputPolicy: { minDistinctUes: p.minDistinctUes, maxOutputBytes: p.maxOutputBytes, maxGroups: p.maxGroups, maxValuesPerGroup: p.maxValuesPerGroup },
        groupBy: [...j.groupBy],
        groups: released.length,
        suppressedGroups: suppressed,
        resultHash: sha256(result),
        resultBytes: result.length,
        submittedAtMs: j.submittedAtMs,
        startedAtMs,
        finishedAtMs,
        seed: j.seed,
        jobTimeMs: startedAtMs,
        nonce,
        approval: j.approval,
      };
      const attestation = this.#o.attestations.sign(statement);
      this.#set(
        j,
        {
          state: JobState.JOB_STATE_SUCCEEDED,
          finishedAtMs,
          progress: 1,
          detail: `${released.length} group(s) released${suppressed > 0 ? `, ${suppressed} below the threshold suppressed` : ''}`,
          result,
          attestation: JobAttestation.encode(attestation).finish(),
        },
        true,
      );
      this.#log.info(
        { jobId: j.id, consumer: j.consumer, groups: released.length, suppressed, bytes: result.length, queuedMs: startedAtMs - j.submittedAtMs, verifyMs: verifiedAtMs - startedAtMs, runMs: finishedAtMs - verifiedAtMs },
        'job succeeded',
      );
    } catch (e) {
      // a shutdown leaves the job as it is on disk: it runs again at the next start
      if (this.#closing) return;
      // a cancelled job is already final
      if (signal.aborted || FINAL_STATES.has(j.state)) return;
      const err = e instanceof DivsError ? e : new DivsError('INTERNAL', 'the job failed inside the gateway', { cause: e });
      if (!(e instanceof DivsError)) this.#log.error({ jobId: j.id, err: e }, 'job failed unexpectedly');
      const state = WITHHELD_CODES.has(err.code) ? JobState.JOB_STATE_WITHHELD : JobState.JOB_STATE_FAILED;
      try {
        this.#finish(j, state, err.code, err.message);
      } catch (e2) {
        this.#log.error({ jobId: j.id, err: e2 }, 'cannot store the outcome of a job');
      }
      this.#log.info({ jobId: j.id, consumer: j.consumer, state: stateName(state), code: err.code }, 'job ended without a result');
    }
  }

  /** Updates a job, persists it when `persist`, and tells its watchers. */
  #set(j: JobRecord, changes: Partial<JobRecord>, persist: boolean): void {
    Object.assign(j, changes, { updatedAtMs: Date.now() });
    if (persist) this.#o.store.save(j);
    this.#emit(j);
  }

  #finish(j: JobRecord, state: JobState, code: ErrorCode, message: string): void {
    this.#set(j, { state, errorCode: code, errorMessage: message.slice(0, 2000), finishedAtMs: Date.now(), detail: stateName(state).toLowerCase(), result: null, attestation: null }, true);
  }

  #emit(j: JobRecord): void {
    if (FINAL_STATES.has(j.state)) this.#active.delete(j.id);
    for (const l of this.#changeListeners) {
      try {
        l(j);
      } catch (e) {
        this.#log.warn({ jobId: j.id, err: (e as Error).message }, 'job change listener failed');
      }
    }
    const set = this.#watchers.get(j.id);
    if (!set) return;
    const s = this.#statusOf(j);
    for (const l of [...set]) {
      try {
        l(s);
      } catch (e) {
        this.#log.warn({ jobId: j.id, err: (e as Error).message }, 'job watcher failed');
      }
    }
    if (FINAL_STATES.has(j.state)) this.#watchers.delete(j.id);
  }

  #statusOf(j: JobRecord): JobStatus {
    return {
      jobId: j.id,
      state: j.state,
      progress: j.progress,
      detail: j.detail,
      errorCode: j.errorCode,
      errorMessage: j.errorMessage,
      datasetId: j.datasetId,
      submittedAtMs: j.submittedAtMs,
      updatedAtMs: j.updatedAtMs,
      recordsTotal: j.recordsTotal,
      recordsValid: j.recordsValid,
      groupsTotal: j.groupsTotal,
      groupsDone: j.groupsDone,
      codeHash: fromHex(j.codeHash),
    };
  }

  /** Jobs verifying or running now. */
  get running(): number {
    return this.#running.size;
  }

  // ------------------------------------------------------------------ observability (read-only)

  /** Jobs waiting in the queue (approved, not yet started). */
  get queued(): number {
    return this.#queue.length;
  }

  /** Jobs waiting for an operator's approval. */
  get pendingApproval(): number {
    let n = 0;
    for (const j of this.#active.values()) if (j.state === JobState.JOB_STATE_PENDING_APPROVAL) n++;
    return n;
  }

  /**
   * Calls `listener` after every state or progress change of any job (metrics, dashboard), with
   * the job as it is now (do not modify it); returns the function that removes it.
   */
  onChange(listener: (j: Readonly<JobRecord>) => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  /**
   * Every job of every consumer (operator view), newest submission first, at most `limit`:
   * unfinished ones as they are in memory now (running states are not on disk), the others as
   * stored.
   */
  operatorList(limit: number): JobRecord[] {
    const all = new Map<string, JobRecord>();
    for (const j of this.#o.store.inStates(Object.values(JobState).filter((v) => v !== JobState.JOB_STATE_UNSPECIFIED && v !== JobState.UNRECOGNIZED))) all.set(j.id, j);
    for (const j of this.#active.values()) all.set(j.id, j);
    return [...all.values()].sort((a, b) => b.submittedAtMs - a.submittedAtMs || (a.id < b.id ? -1 : 1)).slice(0, Math.max(0, limit));
  }

  /** One job of any consumer (operator view); undefined when unknown. */
  operatorGet(jobId: string): JobRecord | undefined {
    if (typeof jobId !== 'string' || jobId.length === 0 || jobId.length > 64) return undefined;
    return this.#active.get(jobId) ?? this.#o.store.get(jobId);
  }

  /**
   * Stops: refuses new jobs, stops the running ones without recording an outcome (they run
   * again at the next start), ends every watch, and waits (at most `graceMs`) for the running
   * jobs to let go of the store and the verifier.
   */
  async close(graceMs = 5_000): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearInterval(this.#pruneTimer);
    for (const r of this.#running.values()) {
      r.ctl.abort();
      if (r.runnerJobId && r.pool) r.pool.cancel(r.runnerJobId);
    }
    for (const set of this.#watchers.values()) for (const l of set) l(null);
    this.#watchers.clear();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.#tasks]), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
  }
}

/** "SUCCEEDED" for JOB_STATE_SUCCEEDED. */
export function stateName(s: JobState): string {
  const name = Object.entries(JobState).find(([, v]) => v === s)?.[0] ?? 'JOB_STATE_UNSPECIFIED';
  return name.replace(/^JOB_STATE_/, '');
}
