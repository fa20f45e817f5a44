/**
 * @module jobs/store
 * Durable job state [SC2-4]: one SQLite file (`jobs.db` in the gateway's data directory, WAL,
 * fsync per commit) holding every job — its request, state, error, and once finished the exact
 * result bytes, the signed attestation and the signed verification report — plus the code
 * hashes operators approved for later jobs. A gateway restart loses no finished result; jobs
 * that were queued or running are queued again, jobs waiting for approval keep waiting.
 * Finished jobs are deleted after the retention period.
 */
import Database from 'better-sqlite3';
import { UeIdentity } from '../../../proto/gen/divs/v1/common.ts';
import { JobState } from '../../../proto/gen/divs/v1/jobs.ts';
import { fail } from '../../../protocol/src/errors.ts';
import type { JobLimitValues } from './policy.ts';
import { statementCache } from '../store.ts';

const SCHEMA_VERSION = 1;

/** States after which nothing changes any more. */
export const FINAL_STATES: ReadonlySet<JobState> = new Set<JobState>([
  JobState.JOB_STATE_SUCCEEDED,
  JobState.JOB_STATE_FAILED,
  JobState.JOB_STATE_WITHHELD,
  JobState.JOB_STATE_CANCELLED,
  JobState.JOB_STATE_REJECTED,
]);

/** One job as stored. */
export interface JobRecord {
  id: string;
  consumer: string;
  datasetId: string;
  state: JobState;
  code: string;
  /** SHA-256 (hex) of the code. */
  codeHash: string;
  paramsJson: string;
  limits: JobLimitValues;
  groupBy: string[];
  ues: UeIdentity[];
  nonce: Uint8Array;
  seed: number;
  idempotencyKey: string;
  /** "allow-list", "manual:<operator>", or "" while pending. */
  approval: string;
  submittedAtMs: number;
  startedAtMs: number;
  finishedAtMs: number;
  updatedAtMs: number;
  errorCode: string;
  errorMessage: string;
  recordsTotal: number;
  recordsValid: number;
  groupsTotal: number;
  groupsDone: number;
  progress: number;
  detail: string;
  /** Exact result bytes (SUCCEEDED only). */
  result: Uint8Array | null;
  /** Encoded JobAttestation (SUCCEEDED only). */
  attestation: Uint8Array | null;
  /** Encoded SignedVerificationReport (once verified). */
  report: Uint8Array | null;
}

interface Row {
  id: string;
  consumer: string;
  dataset: string;
  state: number;
  code: string;
  code_hash: string;
  params: string;
  limits: string;
  group_by: string;
  ues: string;
  nonce: Buffer;
  seed: number;
  idem_key: string;
  approval: string;
  submitted_ms: number;
  started_ms: number;
  finished_ms: number;
  updated_ms: number;
  error_code: string;
  error_message: string;
  records_total: number;
  records_valid: number;
  groups_total: number;
  groups_done: number;
  progress: number;
  detail: string;
  result: Buffer | null;
  attestation: Buffer | null;
  report: Buffer | null;
}

const COLUMNS = [
  'id', 'consumer', 'dataset', 'state', 'code', 'code_hash', 'params', 'limits', 'group_by', 'ues', 'nonce', 'seed', 'idem_key', 'approval',
  'submitted_ms', 'started_ms', 'finished_ms', 'updated_ms', 'error_code', 'error_message', 'records_total', 'records_valid', 'groups_total',
  'groups_done', 'progress', 'detail', 'result', 'attestation', 'report',
] as const;

function toRow(j: JobRecord): unknown[] {
  return [
    j.id, j.consumer, j.datasetId, j.state, j.code, j.codeHash, j.paramsJson, JSON.stringify(j.limits), JSON.stringify(j.groupBy),
    JSON.stringify(j.ues.map((u) => ({ imei: u.imei, iccid: u.iccid, eid: u.eid, msisdn: u.msisdn }))), j.nonce, j.seed,
    j.idempotencyKey, j.approval, j.submittedAtMs, j.startedAtMs, j.finishedAtMs, j.updatedAtMs, j.errorCode, j.errorMessage, j.recordsTotal,
    j.recordsValid, j.groupsTotal, j.groupsDone, j.progress, j.detail, j.result, j.attestation, j.report,
  ];
}

function fromRow(r: Row): JobRecord {
  return {
    id: r.id,
    consumer: r.consumer,
    datasetId: r.dataset,
    state: r.state as JobState,
    code: r.code,
    codeHash: r.code_hash,
    paramsJson: r.params,
    limits: JSON.parse(r.limits) as JobLimitValues,
    groupBy: JSON.parse(r.group_by) as string[],
    ues: (JSON.parse(r.ues) as UeIdentity[]).map((u) => UeIdentity.fromPartial(u)),
    nonce: new Uint8Array(r.nonce),
    seed: r.seed,
    idempotencyKey: r.idem_key,
    approval: r.approval,
    submittedAtMs: r.submitted_ms,
    startedAtMs: r.started_ms,
    finishedAtMs: r.finished_ms,
    updatedAtMs: r.updated_ms,
    errorCode: r.error_code,
    errorMessage: r.error_message,
    recordsTotal: r.records_total,
    recordsValid: r.records_valid,
    groupsTotal: r.groups_total,
    groupsDone: r.groups_done,
    progress: r.progress,
    detail: r.detail,
    result: r.result ? new Uint8Array(r.result) : null,
    attestation: r.attestation ? new Uint8Array(r.attestation) : null,
    report: r.report ? new Uint8Array(r.report) : null,
  };
}

/** The job database. */
/** What a committed job state survives: a gateway process crash, or also an OS crash / power loss. */
export type JobDurability = 'process' | 'power';

export class JobStore {
  readonly #db: Database.Database;
  readonly #upsert: Database.Statement;
  readonly #get: Database.Statement;
  /** A prepared statement per SQL text, kept for the store's life. */
  readonly #stmt: (sql: string) => Database.Statement;

  private constructor(db: Database.Database) {
    this.#db = db;
    this.#stmt = statementCache(db);
    this.#upsert = db.prepare(
      `INSERT INTO jobs (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})
       ON CONFLICT (id) DO UPDATE SET ${COLUMNS.filter((c) => c !== 'id').map((c) => `${c} = excluded.${c}`).join(', ')}`,
    );
    this.#get = db.prepare('SELECT * FROM jobs WHERE id = ?');
  }

  /** Opens (creating when new) the job database. STORAGE_FAILED when it cannot. */
  static open(path: string, durability: JobDurability = 'process'): JobStore {
    let db: Database.Database;
    try {
      db = new Database(path);
    } catch (e) {
      fail('STORAGE_FAILED', `cannot open the job store ${path}: ${(e as Error).message}`, e);
    }
    try {
      db.pragma('journal_mode = WAL');
      // 'process': every commit survives a crash of the gateway process (SIGKILL, OOM) without
      // an fsync; an OS crash or power loss may roll the newest commits back, after which a job
      // runs again from its last stored state (same seed, same start time: same result) or the
      // consumer resubmits with its idempotency key. 'power': fsync on every commit (~2-5 ms).
      db.pragma(durability === 'power' ? 'synchronous = FULL' : 'synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS jobs (
          id TEXT PRIMARY KEY, consumer TEXT NOT NULL, dataset TEXT NOT NULL, state INTEGER NOT NULL,
          code TEXT NOT NULL, code_hash TEXT NOT NULL, params TEXT NOT NULL, limits TEXT NOT NULL, group_by TEXT NOT NULL,
          ues TEXT NOT NULL, nonce BLOB NOT NULL, seed INTEGER NOT NULL, idem_key TEXT NOT NULL, approval TEXT NOT NULL,
          submitted_ms INTEGER NOT NULL, started_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
          error_code TEXT NOT NULL, error_message TEXT NOT NULL, records_total INTEGER NOT NULL, records_valid INTEGER NOT NULL,
          groups_total INTEGER NOT NULL, groups_done INTEGER NOT NULL, progress REAL NOT NULL, detail TEXT NOT NULL,
          result BLOB, attestation BLOB, report BLOB);
        CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, submitted_ms);
        CREATE INDEX IF NOT EXISTS jobs_consumer ON jobs (consumer, state);
        CREATE UNIQUE INDEX IF NOT EXISTS jobs_idem ON jobs (consumer, idem_key) WHERE idem_key <> '';
        CREATE TABLE IF NOT EXISTS approved_code (
          consumer TEXT NOT NULL, code_hash TEXT NOT NULL, approved_by TEXT NOT NULL, approved_ms INTEGER NOT NULL,
          PRIMARY KEY (consumer, code_hash)) WITHOUT ROWID;
      `);
      const v = db.prepare("SELECT value FROM meta WHERE key = 'schema'").pluck().get() as string | undefined;
      if (v === undefined) db.prepare("INSERT INTO meta (key, value) VALUES ('schema', ?)").run(String(SCHEMA_VERSION));
      else if (Number(v) !== SCHEMA_VERSION) fail('STORAGE_FAILED', `job store schema ${v} is not ${SCHEMA_VERSION}`);
      return new JobStore(db);
    } catch (e) {
      db.close();
      if (e instanceof Error && e.name === 'DivsError') throw e;
      fail('STORAGE_FAILED', `cannot initialise the job store ${path}: ${(e as Error).message}`, e);
    }
  }

  #run<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      fail('STORAGE_FAILED', `job store: cannot ${what}: ${(e as Error).message}`, e);
    }
  }

  /** Inserts or replaces a job (one commit). */
  save(j: JobRecord): void {
    this.#run('save a job', () => this.#upsert.run(...toRow(j)));
  }

  get(id: string): JobRecord | undefined {
    const r = this.#run('read a job', () => this.#get.get(id) as Row | undefined);
    return r ? fromRow(r) : undefined;
  }

  /** The job a consumer submitted with an idempotency key, if any. */
  byIdempotencyKey(consumer: string, key: string): JobRecord | undefined {
    const r = this.#run('read a job', () => this.#stmt("SELECT * FROM jobs WHERE consumer = ? AND idem_key = ? AND idem_key <> ''").get(consumer, key) as Row | undefined);
    return r ? fromRow(r) : undefined;
  }

  /** Jobs in these states, oldest first. */
  inStates(states: readonly JobState[]): JobRecord[] {
    if (states.length === 0) return [];
    const rows = this.#run('list jobs', () => this.#stmt(`SELECT * FROM jobs WHERE state IN (${states.map(() => '?').join(',')}) ORDER BY submitted_ms, id`).all(...states) as Row[]);
    return rows.map(fromRow);
  }

  /** Unfinished jobs of a consumer. */
  activeCount(consumer: string): number {
    const finals = [...FINAL_STATES];
    return this.#run('count jobs', () =>
      this.#stmt(`SELECT COUNT(*) FROM jobs WHERE consumer = ? AND state NOT IN (${finals.map(() => '?').join(',')})`).pluck().get(consumer, ...finals) as number,
    );
  }

  /** Code hashes operators approved for a consumer's later jobs. */
  approvedCode(consumer: string): Set<string> {
    const rows = this.#run('read approvals', () => this.#stmt('SELECT code_hash FROM approved_code WHERE consumer = ?').pluck().all(consumer) as string[]);
    return new Set(rows);
  }

  /** Remembers an operator's approval of a code hash for a consumer. */
  approveCode(consumer: string, codeHash: string, by: string, atMs = Date.now()): void {
    this.#run('store an approval', () =>
      this.#stmt('INSERT INTO approved_code (consumer, code_hash, approved_by, approved_ms) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING').run(consumer, codeHash, by, atMs),
    );
  }

  /** Deletes finished jobs that finished before `beforeMs`; returns how many. */
  prune(beforeMs: number): number {
    const finals = [...FINAL_STATES];
    return this.#run('prune jobs', () =>
      Number(this.#stmt(`DELETE FROM jobs WHERE finished_ms > 0 AND finished_ms < ? AND state IN (${finals.map(() => '?').join(',')})`).run(beforeMs, ...finals).changes),
    );
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
