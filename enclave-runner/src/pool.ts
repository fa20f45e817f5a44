/**
 * @module enclave-runner/pool
 * {@link RunnerPool}: a fixed-size pool of runner child processes (see child.ts) with a job
 * queue, used by the gateway to run consumers' JavaScript over verified records. This module
 * runs in the gateway process and never loads isolated-vm: whatever a job does, the worst case
 * is a dead child, which fails that one job with a coded error and is replaced.
 *
 * Per job, the pool enforces what the child cannot enforce on itself:
 * - an external watchdog: once the child reports the job started, it must answer within
 *   `wallMs + graceMs`, or it is SIGKILLed and the job fails with JOB_TIMEOUT;
 * - crash handling: a child that exits or aborts mid-job fails it with JOB_RUNNER_CRASHED
 *   (JOB_MEMORY_LIMIT when V8 reported running out of memory);
 * - distrust of the child: every message is parsed, outputs re-checked against the limit and
 *   JSON; a child that sends anything unexpected is treated as compromised and killed.
 *
 * @example
 * ```ts
 * const pool = new RunnerPool({ size: 2, defaults: { memoryMb: 64, wallMs: 5000 } });
 * const r = await pool.run({
 *   code: 'export function run(data) { let s = 0; for (const v of data.columns.x) s += v; return { sum: s }; }',
 *   data: { columns: { x: { type: 'f64', buffer: new Float64Array([1, 2, 3]) } } },
 * });
 * if (r.ok) console.log(JSON.parse(r.output)); // { sum: 6 }
 * await pool.close();
 * ```
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { sha256, toHex, utf8 } from '../../protocol/src/bytes.ts';
import { DivsError } from '../../protocol/src/errors.ts';
import { silentLogger, type Logger } from '../../platform/src/log.ts';
import { CHILD_EXEC_ARGV, measureRunner, type RunnerMeasurement } from './measurement.ts';
import {
  COLUMN_TYPES,
  DEFAULT_LIMITS,
  MAX_COLUMN_NAME_LENGTH,
  MAX_COLUMNS,
  checkLimits,
  isColumnType,
  isJobId,
  parseChildMessage,
  type ColumnType,
  type JobErrorCode,
  type JobFailure,
  type JobLimits,
  type JobRequestMessage,
  type JobResult,
  type JobSuccess,
  type JsonValue,
  type WireColumn,
} from './protocol.ts';

const CHILD_PATH = fileURLToPath(new URL('./child.ts', import.meta.url));

/** One input column: its element type and its bytes (an ArrayBuffer or a view of one). */
export interface ColumnInput {
  type: ColumnType;
  buffer: ArrayBuffer | ArrayBufferView;
}

/** The records a job runs over: equal-length typed columns plus JSON metadata. */
export interface JobDataInput {
  columns?: Record<string, ColumnInput>;
  meta?: JsonValue;
}

/** A job as the gateway submits it. */
export interface RunnerJob {
  /** Caller's ID (1–128 printable ASCII); a UUID is made up when absent. */
  jobId?: string;
  /** ES module source defining `run(data, params)` (exported or not, or as default export). */
  code: string;
  /** JSON value passed as run()'s second argument. */
  params?: JsonValue;
  data?: JobDataInput;
  /** Overrides of the pool defaults. */
  limits?: Partial<JobLimits>;
  /** Math.random seed, a safe integer ≥ 0 (default 0). */
  seed?: number;
  /** What Date.now() returns inside the job (default: submission time). */
  startTimeMs?: number;
}

export interface RunnerPoolOptions {
  /** Number of child processes (default 2). */
  size?: number;
  /** A child is replaced after this many jobs (default 200), bounding any slow leak. */
  maxJobsPerChild?: number;
  /** Jobs waiting beyond this count are refused with POOL_UNAVAILABLE (default 256). */
  maxQueue?: number;
  /** A job waiting longer than this for a free child fails with POOL_UNAVAILABLE (default 60 s). */
  queueTimeoutMs?: number;
  /** Limits for jobs that do not set them (over {@link DEFAULT_LIMITS}). */
  defaults?: Partial<JobLimits>;
  /** External watchdog margin over wallMs (default 2000 ms; generous for loaded machines). */
  graceMs?: number;
  /** Time a new child has to load isolated-vm and report ready (default 30 s). */
  startTimeoutMs?: number;
  /** Largest job source in bytes (default 1 MiB). */
  maxCodeBytes?: number;
  /** Largest total column data per job in bytes (default 512 MiB). */
  maxDataBytes?: number;
  /** Largest params or metadata JSON in bytes (default 1 MiB each). */
  maxJsonBytes?: number;
  /** Node binary for the children (default: this process's). Must be the same Node version. */
  execPath?: string;
  logger?: Logger;
}

/** Counters and per-child state, for health checks and metrics. */
export interface PoolStats {
  size: number;
  starting: number;
  idle: number;
  busy: number;
  queued: number;
  /** Children started after the initial ones, for any reason. */
  restarts: number;
  /** Children that died unexpectedly (exit, abort, failed start, malformed message). */
  crashes: number;
  /** Children killed by the external watchdog. */
  watchdogKills: number;
  /** Children retired in order: after maxJobsPerChild jobs, or at their own request after a
   * memory stop or an isolate that did not unwind promptly. */
  recycled: number;
  completed: number;
  failed: number;
  cancelled: number;
  /** Per child: its state, jobs run, and the job it holds (`started` once the child has it). */
  children: Array<{ pid: number; state: SlotState; jobs: number; jobId?: string; started?: boolean }>;
}

type SlotState = 'starting' | 'idle' | 'busy' | 'draining' | 'retiring' | 'dead';

interface Job {
  jobId: string;
  msg: JobRequestMessage;
  codeHash: string;
  dataBytes: number;
  resolve: (r: JobResult) => void;
  settled: boolean;
  queueTimer?: NodeJS.Timeout;
  slot?: Slot;
  /** The child confirmed it holds the job (its clock runs). */
  started?: boolean;
}

interface Slot {
  proc: ChildProcess;
  pid: number;
  state: SlotState;
  jobs: number;
  job?: Job;
  /** Cancelled job whose reply we still wait for before reusing the child. */
  drainJobId?: string;
  timer?: NodeJS.Timeout;
  killedBy?: 'watchdog' | 'close' | 'retire' | 'fault';
  stderrTail: string;
  exited: Promise<void>;
  markExited: () => void;
}

const STDERR_TAIL_BYTES = 8192;
const OOM_PATTERN = /out of memory|Allocation failed|heap limit|OOM/i;

function clampInt(v: number | undefined, dflt: number, min: number, label: string): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < min) throw new DivsError('CONFIG_INVALID', `${label} must be an integer >= ${min}`);
  return v;
}

/** The pool's failure shape, with the code hash when known. */
function failure(jobId: string, code: JobErrorCode, message: string, extra?: Partial<JobFailure>): JobFailure {
  return { ok: false, jobId, code, message, ...extra };
}

/** Bytes of a column as an ArrayBuffer of exactly that size (IPC needs an ArrayBuffer). */
function columnBytes(name: string, input: ColumnInput): ArrayBuffer {
  const b = input.buffer as unknown;
  if (b instanceof ArrayBuffer) return b;
  if (ArrayBuffer.isView(b)) {
    if (b.buffer instanceof ArrayBuffer && b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) return b.buffer;
    // A view into a larger or shared buffer: copy just its bytes.
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength).slice().buffer;
  }
  throw new DivsError('INVALID_ARGUMENT', `column ${name}: buffer must be an ArrayBuffer or a typed array`);
}

function jsonText(value: unknown, label: string, maxBytes: number): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value === undefined ? null : value);
  } catch (e) {
    throw new DivsError('INVALID_ARGUMENT', `${label} is not JSON-serialisable`, { cause: e });
  }
  if (typeof text !== 'string') throw new DivsError('INVALID_ARGUMENT', `${label} is not a JSON value`);
  if (Buffer.byteLength(text, 'utf8') > maxBytes) throw new DivsError('INVALID_ARGUMENT', `${label} exceeds ${maxBytes} bytes`);
  return text;
}

/**
 * A pool of sandbox child processes. `run` never rejects: every outcome, including bad input,
 * is a {@link JobResult} with a stable code (use {@link RunnerPool.runOrThrow} for exceptions).
 */
export class RunnerPool {
  readonly measurement: RunnerMeasurement;
  readonly #size: number;
  readonly #maxJobsPerChild: number;
  readonly #maxQueue: number;
  readonly #queueTimeoutMs: number;
  readonly #defaults: JobLimits;
  readonly #graceMs: number;
  readonly #startTimeoutMs: number;
  readonly #maxCodeBytes: number;
  readonly #maxDataBytes: number;
  readonly #maxJsonBytes: number;
  readonly #execPath: string;
  readonly #log: Logger;

  readonly #slots = new Set<Slot>();
  readonly #queue: Job[] = [];
  readonly #jobs = new Map<string, Job>();
  readonly #readyWaiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  readonly #respawnTimers = new Set<NodeJS.Timeout>();
  #started = 0;
  #startFailures = 0;
  #broken = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #counters = { restarts: 0, crashes: 0, watchdogKills: 0, recycled: 0, completed: 0, failed: 0, cancelled: 0 };

  constructor(options: RunnerPoolOptions = {}) {
    this.#size = clampInt(options.size, 2, 1, 'size');
    this.#maxJobsPerChild = clampInt(options.maxJobsPerChild, 200, 1, 'maxJobsPerChild');
    this.#maxQueue = clampInt(options.maxQueue, 256, 0, 'maxQueue');
    this.#queueTimeoutMs = clampInt(options.queueTimeoutMs, 60_000, 1, 'queueTimeoutMs');
    this.#graceMs = clampInt(options.graceMs, 2_000, 0, 'graceMs');
    this.#startTimeoutMs = clampInt(options.startTimeoutMs, 30_000, 1, 'startTimeoutMs');
    this.#maxCodeBytes = clampInt(options.maxCodeBytes, 1 << 20, 1, 'maxCodeBytes');
    this.#maxDataBytes = clampInt(options.maxDataBytes, 512 << 20, 0, 'maxDataBytes');
    this.#maxJsonBytes = clampInt(options.maxJsonBytes, 1 << 20, 4, 'maxJsonBytes');
    const defaults = { ...DEFAULT_LIMITS, ...definedOnly(options.defaults ?? {}) };
    const err = checkLimits(defaults);
    if (err !== null) throw new DivsError('CONFIG_INVALID', `defaults: ${err}`);
    this.#defaults = defaults;
    this.#execPath = options.execPath ?? process.execPath;
    this.#log = (options.logger ?? silentLogger).child({ component: 'enclave-runner' });
    this.measurement = measureRunner();
    for (let i = 0; i < this.#size; i++) this.#spawn();
  }

  /** Resolves once every child is ready; rejects with POOL_UNAVAILABLE if none can start. */
  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new DivsError('POOL_UNAVAILABLE', 'the runner pool is closed'));
    if (this.#broken) return Promise.reject(new DivsError('POOL_UNAVAILABLE', 'no runner process could be started'));
    if (this.#readyCount() >= this.#size) return Promise.resolve();
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  /** Runs a job; resolves with its result (never rejects). */
  run(job: RunnerJob): Promise<JobResult> {
    const jobId = job?.jobId ?? randomUUID();
    if (!isJobId(jobId)) return Promise.resolve(failure(String(jobId).slice(0, 128), 'INVALID_ARGUMENT', 'jobId must be 1-128 printable ASCII characters'));
    if (this.#closed) return Promise.resolve(failure(jobId, 'POOL_UNAVAILABLE', 'the runner pool is closed'));
    let prepared: { msg: JobRequestMessage; codeHash: string; dataBytes: number };
    try {
      prepared = this.#prepare(jobId, job);
    } catch (e) {
      const message = e instanceof DivsError ? e.message : 'invalid job';
      return Promise.resolve(failure(jobId, 'INVALID_ARGUMENT', message));
    }
    if (this.#broken) return Promise.resolve(failure(jobId, 'POOL_UNAVAILABLE', 'no runner process could be started'));
    if (this.#jobs.has(jobId)) return Promise.resolve(failure(jobId, 'INVALID_ARGUMENT', `job ${jobId} is already queued or running`));
    if (this.#queue.length >= this.#maxQueue && this.#idleSlot() === undefined) {
      return Promise.resolve(failure(jobId, 'POOL_UNAVAILABLE', 'the job queue is full'));
    }
    return new Promise<JobResult>((resolve) => {
      const entry: Job = { jobId, ...prepared, resolve, settled: false };
      entry.queueTimer = setTimeout(() => {
        const i = this.#queue.indexOf(entry);
        if (i >= 0) this.#queue.splice(i, 1);
        this.#settle(entry, failure(jobId, 'POOL_UNAVAILABLE', `no runner became free within ${this.#queueTimeoutMs} ms`));
      }, this.#queueTimeoutMs);
      this.#jobs.set(jobId, entry);
      this.#queue.push(entry);
      this.#pump();
    });
  }

  /** Runs a job; resolves with its success or throws a DivsError with the failure's code. */
  async runOrThrow(job: RunnerJob): Promise<JobSuccess> {
    const r = await this.run(job);
    if (!r.ok) throw new DivsError(r.code, r.message);
    return r;
  }

  /**
   * Cancels a queued or running job; its `run` promise resolves with JOB_CANCELLED at once.
   * A running job's child disposes its isolate and is reused (killed if it does not answer
   * within graceMs). Returns false when no such job is queued or running.
   */
  cancel(jobId: string): boolean {
    const job = this.#jobs.get(jobId);
    if (job === undefined || job.settled) return false;
    const slot = job.slot;
    if (slot === undefined) {
      const i = this.#queue.indexOf(job);
      if (i >= 0) this.#queue.splice(i, 1);
      this.#settle(job, failure(jobId, 'JOB_CANCELLED', 'the job was cancelled before it started', { codeHash: job.codeHash }));
      return true;
    }
    this.#settle(job, failure(jobId, 'JOB_CANCELLED', 'the job was cancelled', { codeHash: job.codeHash }));
    slot.job = undefined;
    slot.state = 'draining';
    slot.drainJobId = jobId;
    // A job still on its way over the pipe gets its delivery time on top of the grace period.
    const drainMs = this.#graceMs + (job.started === true ? 0 : this.#deliveryMs(job));
    this.#setTimer(slot, drainMs, () => this.#kill(slot, 'fault', 'did not stop a cancelled job in time'));
    this.#sendTo(slot, { type: 'cancel', jobId });
    return true;
  }

  /** Fails queued jobs (POOL_UNAVAILABLE) and running ones (JOB_CANCELLED), kills every child by PID. */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closed = true;
    for (const t of this.#respawnTimers) clearTimeout(t);
    this.#respawnTimers.clear();
    for (const job of this.#queue.splice(0)) this.#settle(job, failure(job.jobId, 'POOL_UNAVAILABLE', 'the runner pool was closed'));
    const waiters = this.#readyWaiters.splice(0);
    for (const w of waiters) w.reject(new DivsError('POOL_UNAVAILABLE', 'the runner pool was closed'));
    const exits: Promise<void>[] = [];
    for (const slot of this.#slots) {
      if (slot.job !== undefined) {
        this.#settle(slot.job, failure(slot.job.jobId, 'JOB_CANCELLED', 'the runner pool was closed', { codeHash: slot.job.codeHash }));
      }
      exits.push(slot.exited);
      this.#kill(slot, 'close', 'pool closed');
    }
    this.#closing = Promise.all(exits).then(() => undefined);
    return this.#closing;
  }

  /** Current counters and children. */
  stats(): PoolStats {
    const children = [...this.#slots].map((s) => ({
      pid: s.pid,
      state: s.state,
      jobs: s.jobs,
      ...(s.job === undefined ? {} : { jobId: s.job.jobId, started: s.job.started === true }),
    }));
    const count = (st: SlotState): number => children.filter((c) => c.state === st).length;
    return {
      size: this.#size,
      starting: count('starting'),
      idle: count('idle'),
      busy: count('busy') + count('draining'),
      queued: this.#queue.length,
      ...this.#counters,
      children,
    };
  }

  // -------------------------------------------------------------------------------------------

  #prepare(jobId: string, job: RunnerJob): { msg: JobRequestMessage; codeHash: string; dataBytes: number } {
    if (typeof job !== 'object' || job === null) throw new DivsError('INVALID_ARGUMENT', 'job must be an object');
    if (typeof job.code !== 'string' || job.code.length === 0) throw new DivsError('INVALID_ARGUMENT', 'code must be a non-empty string');
    const code = utf8(job.code);
    if (code.length > this.#maxCodeBytes) throw new DivsError('INVALID_ARGUMENT', `code exceeds ${this.#maxCodeBytes} bytes`);
    const paramsJson = jsonText(job.params, 'params', this.#maxJsonBytes);
    const data = job.data ?? {};
    if (typeof data !== 'object' || data === null) throw new DivsError('INVALID_ARGUMENT', 'data must be an object');
    const metaJson = jsonText(data.meta, 'data.meta', this.#maxJsonBytes);

    const columns: WireColumn[] = [];
    let rows: number | undefined;
    let dataBytes = 0;
    const input = data.columns ?? {};
    if (typeof input !== 'object' || input === null) throw new DivsError('INVALID_ARGUMENT', 'data.columns must be an object');
    const names = Object.keys(input);
    if (names.length > MAX_COLUMNS) throw new DivsError('INVALID_ARGUMENT', `at most ${MAX_COLUMNS} columns`);
    for (const name of names) {
      if (name.length === 0 || name.length > MAX_COLUMN_NAME_LENGTH) {
        throw new DivsError('INVALID_ARGUMENT', `column names must have 1-${MAX_COLUMN_NAME_LENGTH} characters`);
      }
      const col = input[name] as ColumnInput;
      if (typeof col !== 'object' || col === null || !isColumnType(col.type)) {
        throw new DivsError('INVALID_ARGUMENT', `column ${name}: type must be one of ${Object.keys(COLUMN_TYPES).join(', ')}`);
      }
      const buffer = columnBytes(name, col);
      const size = COLUMN_TYPES[col.type].bytes;
      if (buffer.byteLength % size !== 0) throw new DivsError('INVALID_ARGUMENT', `column ${name}: byte length is not a multiple of ${size}`);
      const n = buffer.byteLength / size;
      if (rows !== undefined && n !== rows) throw new DivsError('INVALID_ARGUMENT', `column ${name}: ${n} rows, other columns have ${rows}`);
      rows = n;
      dataBytes += buffer.byteLength;
      columns.push({ name, type: col.type, buffer });
    }
    if (dataBytes > this.#maxDataBytes) throw new DivsError('INVALID_ARGUMENT', `data exceeds ${this.#maxDataBytes} bytes`);

    const limits = { ...this.#defaults, ...definedOnly(job.limits ?? {}) };
    const limitError = checkLimits(limits);
    if (limitError !== null) throw new DivsError('INVALID_ARGUMENT', limitError);
    const seed = job.seed ?? 0;
    if (!Number.isSafeInteger(seed) || seed < 0) throw new DivsError('INVALID_ARGUMENT', 'seed must be a safe integer >= 0');
    const startTimeMs = job.startTimeMs ?? Date.now();
    if (!Number.isSafeInteger(startTimeMs)) throw new DivsError('INVALID_ARGUMENT', 'startTimeMs must be a safe integer');

    return {
      msg: {
        type: 'job',
        jobId,
        code: job.code,
        paramsJson,
        metaJson,
        columns,
        rows: rows ?? 0,
        limits: { memoryMb: limits.memoryMb, cpuMs: limits.cpuMs, wallMs: limits.wallMs, outputBytes: limits.outputBytes },
        seed,
        startTimeMs,
      },
      codeHash: toHex(sha256(code)),
      dataBytes,
    };
  }

  #spawn(): void {
    if (this.#closed) return;
    if (this.#started++ >= this.#size) this.#counters.restarts++;
    let markExited!: () => void;
    const exited = new Promise<void>((resolve) => (markExited = resolve));
    const proc = fork(CHILD_PATH, [], {
      execPath: this.#execPath,
      execArgv: [...CHILD_EXEC_ARGV],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      // Nothing of the gateway's environment (secrets, NODE_OPTIONS) reaches the sandbox
      // process; UTC and the C locale keep date and number formatting reproducible.
      env: { TZ: 'UTC', LANG: 'C', LC_ALL: 'C' },
    });
    const slot: Slot = { proc, pid: proc.pid ?? -1, state: 'starting', jobs: 0, stderrTail: '', exited, markExited };
    this.#slots.add(slot);
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => {
      slot.stderrTail = (slot.stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
    });
    proc.on('message', (m: unknown) => this.#onMessage(slot, m));
    // 'close' (not 'exit'): stderr is fully read by then, so an OOM report is not missed.
    proc.on('close', (code, signal) => this.#onGone(slot, code === null ? `signal ${signal ?? '?'}` : `exit code ${code}`));
    proc.on('error', (e) => {
      // Spawn failures and failed sends; 'exit' may or may not follow, so end the slot here too.
      this.#log.warn({ pid: slot.pid, err: e.message }, 'runner process error');
      if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) this.#onGone(slot, e.message);
      else this.#kill(slot, 'fault', e.message);
    });
    this.#setTimer(slot, this.#startTimeoutMs, () => this.#kill(slot, 'fault', 'did not become ready in time'));
    this.#log.debug({ pid: slot.pid }, 'runner process started');
  }

  #onMessage(slot: Slot, raw: unknown): void {
    if (slot.state === 'dead' || slot.state === 'retiring') return;
    let msg;
    try {
      msg = parseChildMessage(raw, slot.job?.msg.limits.outputBytes ?? 0);
    } catch (e) {
      this.#kill(slot, 'fault', `malformed message: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    switch (msg.type) {
      case 'ready':
        if (slot.state !== 'starting') return this.#kill(slot, 'fault', 'unexpected ready message');
        if (msg.measurement !== this.measurement.digest) {
          this.#log.error({ pid: slot.pid, child: msg.measurement, pool: this.measurement.digest }, 'runner measurement mismatch');
          return this.#kill(slot, 'fault', 'runner measurement differs from the pool (sources changed on disk?)');
        }
        this.#clearTimer(slot);
        this.#startFailures = 0;
        this.#broken = false;
        slot.state = 'idle';
        if (this.#readyCount() >= this.#size) for (const w of this.#readyWaiters.splice(0)) w.resolve();
        this.#pump();
        return;
      case 'started': {
        const job = slot.job;
        if (slot.state === 'draining' && msg.jobId === slot.drainJobId) return;
        if (slot.state !== 'busy' || job === undefined || job.jobId !== msg.jobId) return this.#kill(slot, 'fault', 'unexpected started message');
        job.started = true;
        // The external watchdog: the child's own limits should end the job at wallMs; if the
        // child is stuck (or stopped), it is killed a grace period later.
        const limit = job.msg.limits.wallMs + this.#graceMs;
        this.#setTimer(slot, limit, () => {
          this.#counters.watchdogKills++;
          this.#settle(job, failure(job.jobId, 'JOB_TIMEOUT', `the runner did not answer within ${limit} ms and was killed`, { codeHash: job.codeHash }));
          this.#kill(slot, 'watchdog', 'external watchdog');
        });
        return;
      }
      case 'result': {
        if (slot.state === 'draining' && msg.jobId === slot.drainJobId) return this.#free(slot, msg.retire === true);
        const job = slot.job;
        if (slot.state !== 'busy' || job === undefined || job.jobId !== msg.jobId) return this.#kill(slot, 'fault', 'unexpected result message');
        slot.jobs++;
        const { msg: req, codeHash } = job;
        if (msg.ok) {
          this.#settle(job, {
            ok: true,
            jobId: job.jobId,
            output: msg.output,
            outputBytes: msg.outputBytes,
            cpuMs: msg.cpuMs,
            wallMs: msg.wallMs,
            codeHash,
            seed: req.seed,
            startTimeMs: req.startTimeMs,
            limits: req.limits,
          });
        } else {
          this.#settle(job, failure(job.jobId, msg.code, msg.message, { codeHash, cpuMs: msg.cpuMs, wallMs: msg.wallMs }));
        }
        return this.#free(slot, msg.retire === true);
      }
    }
  }

  /** The child finished its job: reuse it, or replace it when it asked to or has run enough. */
  #free(slot: Slot, retire: boolean): void {
    this.#clearTimer(slot);
    slot.job = undefined;
    slot.drainJobId = undefined;
    if (this.#closed) return;
    if (retire || slot.jobs >= this.#maxJobsPerChild) {
      this.#counters.recycled++;
      this.#kill(slot, 'retire', retire ? 'isolate did not unwind after a stop' : 'recycled after maxJobsPerChild jobs');
      return;
    }
    slot.state = 'idle';
    this.#pump();
  }

  #onGone(slot: Slot, how: string): void {
    if (slot.state === 'dead') return;
    const was = slot.state;
    slot.state = 'dead';
    this.#clearTimer(slot);
    this.#slots.delete(slot);
    slot.markExited();
    const job = slot.job;
    slot.job = undefined;
    const expected = slot.killedBy === 'close' || slot.killedBy === 'retire';
    if (!expected && slot.killedBy !== 'watchdog') this.#counters.crashes++;
    if (job !== undefined && !job.settled) {
      const oom = OOM_PATTERN.test(slot.stderrTail);
      this.#settle(
        job,
        oom
          ? failure(job.jobId, 'JOB_MEMORY_LIMIT', 'the runner process ran out of memory and was replaced', { codeHash: job.codeHash })
          : failure(job.jobId, 'JOB_RUNNER_CRASHED', `the runner process died (${how}) and was replaced`, { codeHash: job.codeHash }),
      );
    }
    if (!expected) {
      this.#log.warn({ pid: slot.pid, how, state: was, killedBy: slot.killedBy, stderr: slot.stderrTail.slice(-2000) }, 'runner process ended');
    }
    if (this.#closed) return;
    let delay = 0;
    if (was === 'starting') {
      this.#startFailures++;
      delay = Math.min(10_000, 200 * 2 ** (this.#startFailures - 1));
      if (this.#startFailures >= 3 && this.#readyCount() === 0) this.#markBroken();
    }
    const t = setTimeout(() => {
      this.#respawnTimers.delete(t);
      this.#spawn();
    }, delay);
    this.#respawnTimers.add(t);
  }

  /** No child can start: fail waiting work fast instead of letting it time out. */
  #markBroken(): void {
    if (!this.#broken) this.#log.error({ failures: this.#startFailures }, 'runner processes fail to start; pool unavailable');
    this.#broken = true;
    for (const job of this.#queue.splice(0)) this.#settle(job, failure(job.jobId, 'POOL_UNAVAILABLE', 'no runner process could be started'));
    for (const w of this.#readyWaiters.splice(0)) w.reject(new DivsError('POOL_UNAVAILABLE', 'no runner process could be started'));
  }

  #pump(): void {
    if (this.#closed) return;
    for (let slot = this.#idleSlot(); slot !== undefined && this.#queue.length > 0; slot = this.#idleSlot()) {
      const job = this.#queue.shift() as Job;
      clearTimeout(job.queueTimer);
      slot.state = 'busy';
      slot.job = job;
      job.slot = slot;
      this.#setTimer(slot, this.#deliveryMs(job), () => this.#kill(slot, 'fault', 'did not acknowledge a job in time'));
      this.#sendTo(slot, job.msg);
    }
  }

  /**
   * Time a child has to confirm it received a job: its data crosses the pipe first (measured
   * at 130-380 MB/s on a loaded 2-core machine; budgeted at 10 MB/s).
   */
  #deliveryMs(job: Job): number {
    return this.#graceMs + 5_000 + Math.ceil(job.dataBytes / 10_000);
  }

  #sendTo(slot: Slot, message: object): void {
    try {
      slot.proc.send(message, (err) => {
        if (err) this.#kill(slot, 'fault', `IPC send failed: ${err.message}`);
      });
    } catch (e) {
      this.#kill(slot, 'fault', `IPC send failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  #kill(slot: Slot, by: NonNullable<Slot['killedBy']>, why: string): void {
    if (slot.state === 'dead') return;
    slot.killedBy ??= by;
    if (by !== 'close' && by !== 'retire') this.#log.warn({ pid: slot.pid, why }, 'killing runner process');
    if (by === 'retire') slot.state = 'retiring';
    // SIGKILL by PID: also ends a stopped or wedged process, and cannot be caught.
    if (slot.proc.exitCode === null && slot.proc.signalCode === null) slot.proc.kill('SIGKILL');
    else this.#onGone(slot, why);
  }

  #settle(job: Job, result: JobResult): void {
    if (job.settled) return;
    job.settled = true;
    clearTimeout(job.queueTimer);
    this.#jobs.delete(job.jobId);
    if (result.ok) this.#counters.completed++;
    else if (result.code === 'JOB_CANCELLED') this.#counters.cancelled++;
    else this.#counters.failed++;
    job.resolve(result);
  }

  #setTimer(slot: Slot, ms: number, fn: () => void): void {
    this.#clearTimer(slot);
    slot.timer = setTimeout(fn, ms);
  }

  #clearTimer(slot: Slot): void {
    if (slot.timer !== undefined) clearTimeout(slot.timer);
    slot.timer = undefined;
  }

  #idleSlot(): Slot | undefined {
    for (const s of this.#slots) if (s.state === 'idle') return s;
    return undefined;
  }

  #readyCount(): number {
    let n = 0;
    for (const s of this.#slots) if (s.state === 'idle' || s.state === 'busy' || s.state === 'draining') n++;
    return n;
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
