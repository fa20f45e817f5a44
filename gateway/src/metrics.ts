/**
 * @module gateway/metrics
 * The gateway's Prometheus series, beside the per-RPC and per-HTTP-route ones every service has
 * (platform/metrics.ts):
 * - `divs_gateway_records_ingested_total{outcome}`: records acknowledged, `stored`, `duplicate`
 *   or `rejected` [E2E-2] [VER-1]; `divs_gateway_records_rejected_total{code}` says why;
 *   `divs_gateway_ingest_frames_refused_total{code}` counts whole frames refused (too large,
 *   overload, shutdown);
 * - `divs_verification_runs_total`, `divs_verification_duration_seconds`,
 *   `divs_verification_records_total{result,reason}` (`result` valid / invalid / unverified,
 *   `reason` the DIVS outcome code, `VALID` for valid records) and
 *   `divs_verification_chain_findings_total{finding}` for every verification run, VerifyDataset
 *   or job [VER-3] [SC2-2];
 * - `divs_jobs_queued`, `divs_jobs_running`, `divs_jobs_pending_approval` (queue depth, read at
 *   scrape time), `divs_jobs_finished_total{state}`, `divs_job_duration_seconds{state}`
 *   (submission to end) and `divs_job_run_seconds{state}` (start to end) [SC2-4];
 * - `divs_gateway_store_records`, `divs_gateway_store_ues`, `divs_gateway_datasets`,
 *   `divs_gateway_dataset_records{dataset}`, `divs_gateway_dataset_ues{dataset}`,
 *   `divs_gateway_ingest_pending` (records waiting for their commit).
 *
 * The same observations feed the dashboard: ingest rate per second ({@link IngestRate}) and the
 * totals since start. Store figures come from the per-UE statistics table (never a scan of the
 * records) and are cached for a few seconds, so frequent scrapes cost little.
 */
import type { Counter, Histogram } from 'prom-client';
import { AckStatus, type IngestResponse, type RecordAck } from '../../proto/gen/divs/v1/gateway.ts';
import { DivsError } from '../../protocol/src/errors.ts';
import type { Metrics } from '../../platform/src/metrics.ts';
import type { DatasetCatalog, DatasetConfig } from './datasets.ts';
import { Ingestor, type IngestWriter, type RawIngestRequest, type RecordParser } from './ingest.ts';
import type { JobManager } from './jobs/manager.ts';
import { stateName } from './jobs/manager.ts';
import { FINAL_STATES, type JobRecord } from './jobs/store.ts';
import type { StoreQueries } from './store.ts';
import type { VerificationOutcome } from './verify/engine.ts';

/** Ingest outcome of one record. */
export type IngestOutcome = 'stored' | 'duplicate' | 'rejected';

/** Records acknowledged per second, over a sliding window (for the dashboard's chart). */
export class IngestRate {
  readonly #seconds: number;
  readonly #stored: Float64Array;
  readonly #duplicate: Float64Array;
  readonly #rejected: Float64Array;
  /** The second (epoch seconds) each slot holds; -1 = empty. */
  readonly #slotSecond: Float64Array;

  /** Keeps the last `windowSeconds` seconds (default 15 minutes). */
  constructor(windowSeconds = 900) {
    this.#seconds = windowSeconds;
    this.#stored = new Float64Array(windowSeconds);
    this.#duplicate = new Float64Array(windowSeconds);
    this.#rejected = new Float64Array(windowSeconds);
    this.#slotSecond = new Float64Array(windowSeconds).fill(-1);
  }

  get windowSeconds(): number {
    return this.#seconds;
  }

  #slot(second: number): number {
    const i = second % this.#seconds;
    if (this.#slotSecond[i] !== second) {
      this.#slotSecond[i] = second;
      this.#stored[i] = 0;
      this.#duplicate[i] = 0;
      this.#rejected[i] = 0;
    }
    return i;
  }

  add(stored: number, duplicate: number, rejected: number, atMs = Date.now()): void {
    const i = this.#slot(Math.floor(atMs / 1000));
    this.#stored[i] = (this.#stored[i] ?? 0) + stored;
    this.#duplicate[i] = (this.#duplicate[i] ?? 0) + duplicate;
    this.#rejected[i] = (this.#rejected[i] ?? 0) + rejected;
  }

  /** Per-second counts of the last `seconds` whole seconds up to `nowMs` (oldest first). */
  series(seconds: number, nowMs = Date.now()): { startMs: number; stepMs: number; stored: number[]; duplicate: number[]; rejected: number[] } {
    const n = Math.max(1, Math.min(this.#seconds, Math.floor(seconds)));
    const last = Math.floor(nowMs / 1000);
    const out = { startMs: (last - n + 1) * 1000, stepMs: 1000, stored: [] as number[], duplicate: [] as number[], rejected: [] as number[] };
    for (let sec = last - n + 1; sec <= last; sec++) {
      const i = sec % this.#seconds;
      const here = this.#slotSecond[i] === sec;
      out.stored.push(here ? (this.#stored[i] as number) : 0);
      out.duplicate.push(here ? (this.#duplicate[i] as number) : 0);
      out.rejected.push(here ? (this.#rejected[i] as number) : 0);
    }
    return out;
  }
}

/** Store figures as the dashboard and /metrics show them. */
export interface StoreFigures {
  records: number;
  ues: number;
  channels: number;
  datasets: { id: string; records: number; ues: number }[];
  atMs: number;
}

/**
 * Store figures from the statistics table, cached for `ttlMs` (a scrape and a dashboard refresh
 * in the same few seconds share one query).
 */
export class StoreStats {
  readonly #store: StoreQueries;
  readonly #datasets: readonly DatasetConfig[];
  readonly #catalog: DatasetCatalog;
  readonly #ttlMs: number;
  #cached: StoreFigures | undefined;

  constructor(store: StoreQueries, catalog: DatasetCatalog, datasets: readonly DatasetConfig[], ttlMs = 2000) {
    this.#store = store;
    this.#catalog = catalog;
    this.#datasets = datasets;
    this.#ttlMs = ttlMs;
  }

  get(nowMs = Date.now()): StoreFigures {
    if (this.#cached && nowMs - this.#cached.atMs < this.#ttlMs) return this.#cached;
    const channels = this.#store.channels();
    const ues = new Set<string>();
    let records = 0;
    for (const channel of channels) {
      for (const u of this.#store.selectionUes({ channel })) {
        records += u.count;
        ues.add(u.key);
      }
    }
    const datasets = this.#datasets.map((d) => {
      const list = this.#store.selectionUes(this.#catalog.selection(d));
      return { id: d.id, records: list.reduce((n, u) => n + u.count, 0), ues: list.length };
    });
    this.#cached = { records, ues: ues.size, channels: channels.length, datasets, atMs: nowMs };
    return this.#cached;
  }
}

/** Totals since the process started (the dashboard's overview). */
export interface GatewayTotals {
  ingest: Record<IngestOutcome, number>;
  verification: { runs: number; records: number; valid: number; invalid: Record<string, number>; unverified: Record<string, number> };
  jobsFinished: Record<string, number>;
}

export interface GatewayMetricsOptions {
  store: StoreQueries;
  catalog: DatasetCatalog;
  /** Every configured dataset. */
  datasets: readonly DatasetConfig[];
  writer?: IngestWriter;
}

/** The gateway's series; see the module comment. */
export class GatewayMetrics {
  readonly metrics: Metrics;
  readonly ingestRate = new IngestRate();
  readonly storeStats: StoreStats;
  readonly totals: GatewayTotals = {
    ingest: { stored: 0, duplicate: 0, rejected: 0 },
    verification: { runs: 0, records: 0, valid: 0, invalid: {}, unverified: {} },
    jobsFinished: {},
  };
  readonly #ingested: Counter<'outcome'>;
  readonly #rejected: Counter<'code'>;
  readonly #framesRefused: Counter<'code'>;
  readonly #verifyRuns: Counter;
  readonly #verifySeconds: Histogram;
  readonly #verifyRecords: Counter<'result' | 'reason'>;
  readonly #findings: Counter<'finding'>;
  readonly #jobsFinished: Counter<'state'>;
  readonly #jobSeconds: Histogram<'state'>;
  readonly #jobRunSeconds: Histogram<'state'>;
  #jobs: JobManager | undefined;

  constructor(metrics: Metrics, o: GatewayMetricsOptions) {
    this.metrics = metrics;
    this.storeStats = new StoreStats(o.store, o.catalog, o.datasets);
    this.#ingested = metrics.counter('divs_gateway_records_ingested_total', 'UE records acknowledged, by outcome (stored, duplicate, rejected)', ['outcome']);
    this.#rejected = metrics.counter('divs_gateway_records_rejected_total', 'UE records rejected at ingest, by DIVS error code', ['code']);
    this.#framesRefused = metrics.counter('divs_gateway_ingest_frames_refused_total', 'ingest frames refused as a whole, by DIVS error code', ['code']);
    this.#verifyRuns = metrics.counter('divs_verification_runs_total', 'verification runs finished (VerifyDataset and jobs)');
    this.#verifySeconds = metrics.histogram('divs_verification_duration_seconds', 'duration of a verification run');
    this.#verifyRecords = metrics.counter('divs_verification_records_total', 'records verified, by result (valid, invalid, unverified) and reason', ['result', 'reason']);
    this.#findings = metrics.counter('divs_verification_chain_findings_total', 'chain findings of verification runs (gaps, forks, replays, reordered)', ['finding']);
    this.#jobsFinished = metrics.counter('divs_jobs_finished_total', 'consumer jobs that reached a final state, by state', ['state']);
    this.#jobSeconds = metrics.histogram('divs_job_duration_seconds', 'consumer job duration from submission to its final state, by state', ['state']);
    this.#jobRunSeconds = metrics.histogram('divs_job_run_seconds', 'consumer job duration from start (verification) to its final state, by state', ['state']);
    metrics.gauge('divs_jobs_queued', 'consumer jobs waiting in the queue', [], (g) => g.set(this.#jobs?.queued ?? 0));
    metrics.gauge('divs_jobs_running', 'consumer jobs verifying or running', [], (g) => g.set(this.#jobs?.running ?? 0));
    metrics.gauge('divs_jobs_pending_approval', 'consumer jobs waiting for an operator', [], (g) => g.set(this.#jobs?.pendingApproval ?? 0));
    metrics.gauge('divs_gateway_store_records', 'UE records in the store', [], (g) => g.set(this.storeStats.get().records));
    metrics.gauge('divs_gateway_store_ues', 'distinct UEs with records in the store', [], (g) => g.set(this.storeStats.get().ues));
    metrics.gauge('divs_gateway_datasets', 'datasets configured', [], (g) => g.set(o.datasets.length));
    metrics.gauge('divs_gateway_dataset_records', 'records per dataset', ['dataset'], (g) => {
      for (const d of this.storeStats.get().datasets) g.set({ dataset: d.id }, d.records);
    });
    metrics.gauge('divs_gateway_dataset_ues', 'UEs per dataset', ['dataset'], (g) => {
      for (const d of this.storeStats.get().datasets) g.set({ dataset: d.id }, d.ues);
    });
    const writer = o.writer;
    if (writer) metrics.gauge('divs_gateway_ingest_pending', 'records waiting for their commit', [], (g) => g.set(writer.pending));
  }

  /** Counts the acks of one frame. */
  countAcks(acks: readonly RecordAck[], atMs = Date.now()): void {
    let stored = 0;
    let duplicate = 0;
    let rejected = 0;
    for (const a of acks) {
      if (a.status === AckStatus.ACK_STATUS_STORED) stored++;
      else if (a.status === AckStatus.ACK_STATUS_DUPLICATE) duplicate++;
      else {
        rejected++;
        this.#rejected.inc({ code: a.errorCode || 'UNKNOWN' });
      }
    }
    if (stored) this.#ingested.inc({ outcome: 'stored' }, stored);
    if (duplicate) this.#ingested.inc({ outcome: 'duplicate' }, duplicate);
    if (rejected) this.#ingested.inc({ outcome: 'rejected' }, rejected);
    this.totals.ingest.stored += stored;
    this.totals.ingest.duplicate += duplicate;
    this.totals.ingest.rejected += rejected;
    this.ingestRate.add(stored, duplicate, rejected, atMs);
  }

  /** Counts a frame refused as a whole. */
  frameRefused(err: unknown): void {
    this.#framesRefused.inc({ code: err instanceof DivsError ? err.code : 'INTERNAL' });
  }

  /** Counts one finished verification run. */
  observeVerification(o: VerificationOutcome): void {
    this.#verifyRuns.inc();
    this.#verifySeconds.observe(Math.max(0, o.finishedAtMs - o.startedAtMs) / 1000);
    const t = this.totals.verification;
    t.runs++;
    t.records += o.records;
    t.valid += o.valid;
    if (o.valid) this.#verifyRecords.inc({ result: 'valid', reason: 'VALID' }, o.valid);
    for (const [reason, n] of o.invalid) {
      this.#verifyRecords.inc({ result: 'invalid', reason }, n);
      t.invalid[reason] = (t.invalid[reason] ?? 0) + n;
    }
    for (const [reason, n] of o.unverified) {
      this.#verifyRecords.inc({ result: 'unverified', reason }, n);
      t.unverified[reason] = (t.unverified[reason] ?? 0) + n;
    }
    const c = o.chain;
    for (const [finding, n] of [
      ['gap', c.gaps],
      ['fork', c.forks],
      ['replay', c.replays],
      ['reordered', c.reordered],
    ] as const) {
      if (n > 0) this.#findings.inc({ finding }, n);
    }
  }

  /** Reads queue depths from the job manager at every scrape. */
  attachJobs(jobs: JobManager): void {
    this.#jobs = jobs;
  }

  /** Counts a job that reached its final state (call on every change; others are ignored). */
  jobChanged(j: Readonly<JobRecord>): void {
    if (!FINAL_STATES.has(j.state)) return;
    const state = stateName(j.state);
    this.#jobsFinished.inc({ state });
    this.totals.jobsFinished[state] = (this.totals.jobsFinished[state] ?? 0) + 1;
    const end = j.finishedAtMs || Date.now();
    this.#jobSeconds.observe({ state }, Math.max(0, end - j.submittedAtMs) / 1000);
    if (j.startedAtMs > 0) this.#jobRunSeconds.observe({ state }, Math.max(0, end - j.startedAtMs) / 1000);
  }
}

/** The ingest pipeline, counting every acknowledged record and every refused frame. */
export class MeteredIngestor extends Ingestor {
  readonly #m: GatewayMetrics;

  constructor(parser: RecordParser, writer: IngestWriter, m: GatewayMetrics) {
    super(parser, writer);
    this.#m = m;
  }

  override async frame(req: RawIngestRequest): Promise<IngestResponse> {
    let res: IngestResponse;
    try {
      res = await super.frame(req);
    } catch (e) {
      this.#m.frameRefused(e);
      throw e;
    }
    this.#m.countAcks(res.acks);
    return res;
  }
}
