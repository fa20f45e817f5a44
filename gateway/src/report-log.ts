/**
 * @module report-log
 * The signed verification reports this gateway issued [SC2-2], kept for its operators: every
 * VerifyDataset answer and the report of every finished job, newest last, the most recent
 * `keep` of them. One small SQLite file (`reports.db` in the data directory, WAL) owned by the
 * dashboard: the exact signed bytes are stored, so what an operator is shown is what the
 * consumer got, and it survives restarts. Nothing here holds record payloads: a report carries
 * counts, hashes, endorsement references and UE identities only.
 */
import Database from 'better-sqlite3';
import { SignedVerificationReport, VerificationReport } from '../../proto/gen/divs/v1/gateway.ts';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { statementCache } from './store.ts';

const SCHEMA_VERSION = 1;

/** Where a report went. */
export type ReportSource = 'verify' | 'job';

/** Where and when a report was issued (its row in the log). */
interface ReportIssue {
  id: number;
  datasetId: string;
  source: ReportSource;
  /** Consumer it was issued to. */
  consumer: string;
  /** Job it belongs to ('' for VerifyDataset). */
  jobId: string;
  issuedAtMs: number;
}

/** A stored report, signed bytes included. */
export interface LoggedReport extends ReportIssue {
  signed: SignedVerificationReport;
  report: VerificationReport;
}

/** What lists show of a report. */
export interface ReportSummary extends ReportIssue {
  recordCount: number;
  validCount: number;
  invalidCount: number;
  unverifiedCount: number;
  complete: boolean;
  invalid: { reason: string; count: number }[];
  unverified: { reason: string; count: number }[];
  durationMs: number;
}

interface Row {
  id: number;
  dataset: string;
  source: string;
  consumer: string;
  job_id: string;
  issued_ms: number;
  signed: Buffer;
}

const sum = (l: readonly { count: number }[]): number => l.reduce((n, r) => n + r.count, 0);

/** Summary of a decoded report. */
export function summarize(r: Omit<LoggedReport, 'signed'>): ReportSummary {
  const rep = r.report;
  return {
    id: r.id,
    datasetId: r.datasetId,
    source: r.source,
    consumer: r.consumer,
    jobId: r.jobId,
    issuedAtMs: r.issuedAtMs,
    recordCount: rep.recordCount,
    validCount: rep.validCount,
    invalidCount: sum(rep.invalid),
    unverifiedCount: sum(rep.unverified),
    complete: rep.complete,
    invalid: rep.invalid.map((x) => ({ reason: x.reason, count: x.count })),
    unverified: rep.unverified.map((x) => ({ reason: x.reason, count: x.count })),
    durationMs: Math.max(0, rep.finishedAtMs - rep.startedAtMs),
  };
}

/** The report log; see the module comment. */
export class ReportLog {
  readonly #db: Database.Database;
  readonly #keep: number;
  readonly #insert: Database.Statement;
  readonly #prune: Database.Statement;
  /** The reads, prepared once (the dashboard and /metrics ask again and again). */
  readonly #stmt: (sql: string) => Database.Statement;

  private constructor(db: Database.Database, keep: number) {
    this.#db = db;
    this.#keep = keep;
    this.#insert = db.prepare(
      "INSERT INTO reports (dataset, source, consumer, job_id, issued_ms, signed) SELECT ?, ?, ?, ?, ?, ? WHERE ? = '' OR NOT EXISTS (SELECT 1 FROM reports WHERE job_id = ?)",
    );
    this.#prune = db.prepare('DELETE FROM reports WHERE id <= (SELECT id FROM reports ORDER BY id DESC LIMIT 1 OFFSET ?)');
    this.#stmt = statementCache(db);
  }

  /** Opens (creating) the log at `path`, keeping the newest `keep` reports. STORAGE_FAILED when it cannot. */
  static open(path: string, keep: number): ReportLog {
    let db: Database.Database | undefined;
    try {
      db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS reports (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          dataset TEXT NOT NULL,
          source TEXT NOT NULL,
          consumer TEXT NOT NULL,
          job_id TEXT NOT NULL DEFAULT '',
          issued_ms INTEGER NOT NULL,
          signed BLOB NOT NULL
        );
        CREATE INDEX IF NOT EXISTS reports_dataset ON reports (dataset, id);
        CREATE INDEX IF NOT EXISTS reports_job ON reports (job_id) WHERE job_id <> '';
      `);
      const v = db.prepare("SELECT value FROM meta WHERE key = 'schema'").pluck().get() as string | undefined;
      if (v === undefined) db.prepare("INSERT INTO meta (key, value) VALUES ('schema', ?)").run(String(SCHEMA_VERSION));
      else if (v !== String(SCHEMA_VERSION)) fail('STORAGE_FAILED', `report log ${path} has schema ${v}, this gateway reads ${SCHEMA_VERSION}`);
      return new ReportLog(db, keep);
    } catch (e) {
      db?.close();
      if (e instanceof DivsError) throw e;
      fail('STORAGE_FAILED', `cannot open the report log ${path}: ${(e as Error).message}`, e);
    }
  }

  /**
   * Keeps a signed report (a job's report only once). Returns its ID, or 0 when the job's report
   * was logged already.
   */
  add(signed: SignedVerificationReport, meta: { datasetId: string; source: ReportSource; consumer: string; jobId?: string; issuedAtMs?: number }): number {
    const jobId = meta.jobId ?? '';
    const bytes = SignedVerificationReport.encode(signed).finish();
    const res = this.#insert.run(meta.datasetId, meta.source, meta.consumer, jobId, meta.issuedAtMs ?? Date.now(), bytes, jobId, jobId);
    if (res.changes === 0) return 0;
    this.#prune.run(this.#keep);
    return Number(res.lastInsertRowid);
  }

  #decode(r: Row): LoggedReport {
    const signed = SignedVerificationReport.decode(r.signed);
    return {
      id: r.id,
      datasetId: r.dataset,
      source: r.source === 'job' ? 'job' : 'verify',
      consumer: r.consumer,
      jobId: r.job_id,
      issuedAtMs: r.issued_ms,
      signed,
      report: VerificationReport.decode(signed.report),
    };
  }

  /** One report; undefined when unknown (or pruned). */
  get(id: number): LoggedReport | undefined {
    const r = this.#stmt('SELECT * FROM reports WHERE id = ?').get(id) as Row | undefined;
    return r ? this.#decode(r) : undefined;
  }

  /** The report logged for a job; undefined when none was. */
  byJob(jobId: string): LoggedReport | undefined {
    if (jobId === '') return undefined;
    const r = this.#stmt('SELECT * FROM reports WHERE job_id = ? ORDER BY id DESC LIMIT 1').get(jobId) as Row | undefined;
    return r ? this.#decode(r) : undefined;
  }

  /** The newest reports (of one dataset, or of all), newest first. */
  recent(limit: number, datasetId?: string): LoggedReport[] {
    const rows = (
      datasetId === undefined
        ? this.#stmt('SELECT * FROM reports ORDER BY id DESC LIMIT ?').all(limit)
        : this.#stmt('SELECT * FROM reports WHERE dataset = ? ORDER BY id DESC LIMIT ?').all(datasetId, limit)
    ) as Row[];
    return rows.map((r) => this.#decode(r));
  }

  /** The newest report of each dataset that has one. */
  latestPerDataset(): Map<string, LoggedReport> {
    const rows = this.#stmt('SELECT * FROM reports WHERE id IN (SELECT MAX(id) FROM reports GROUP BY dataset)').all() as Row[];
    return new Map(rows.map((r) => [r.dataset, this.#decode(r)]));
  }

  /** Reports kept. */
  count(): number {
    return this.#stmt('SELECT COUNT(*) FROM reports').pluck().get() as number;
  }

  close(): void {
    this.#db.close();
  }
}
