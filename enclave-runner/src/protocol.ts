/**
 * @module enclave-runner/protocol
 * The contract between the runner pool (inside the gateway process) and its child processes,
 * which talk over Node's IPC channel with `serialization: 'advanced'` (V8 structured clone, so
 * ArrayBuffers travel as raw bytes, not as JSON arrays), plus the public job and result types.
 *
 * Trust: the pool trusts its caller (the gateway) but NOT its children — a child runs hostile
 * code and may in the worst case be compromised — so every message from a child is parsed with
 * {@link parseChildMessage} before it is believed. The child parses what it receives too
 * ({@link parseParentMessage}), as cheap defence in depth.
 */
import { DivsError } from '../../protocol/src/errors.ts';

/** A JSON value (what params, metadata and job outputs are made of). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * Column element types and the typed array each becomes inside the sandbox.
 * `i64`/`u64` become BigInt64Array/BigUint64Array (elements are bigint inside the job).
 */
export const COLUMN_TYPES = {
  f64: { bytes: 8, array: 'Float64Array' },
  f32: { bytes: 4, array: 'Float32Array' },
  i32: { bytes: 4, array: 'Int32Array' },
  u32: { bytes: 4, array: 'Uint32Array' },
  i16: { bytes: 2, array: 'Int16Array' },
  u16: { bytes: 2, array: 'Uint16Array' },
  i8: { bytes: 1, array: 'Int8Array' },
  u8: { bytes: 1, array: 'Uint8Array' },
  i64: { bytes: 8, array: 'BigInt64Array' },
  u64: { bytes: 8, array: 'BigUint64Array' },
} as const;

/** Element type of a data column. */
export type ColumnType = keyof typeof COLUMN_TYPES;

export function isColumnType(s: unknown): s is ColumnType {
  return typeof s === 'string' && Object.hasOwn(COLUMN_TYPES, s);
}

/** Resource limits of one job. */
export interface JobLimits {
  /**
   * Heap the job may use, in MiB. The isolate's V8 limit is this plus the size of the input
   * columns (which live in the isolate too), so a consumer's budget does not shrink with the
   * dataset. V8 treats the limit as a guideline: hostile code may reach 2–3× before it is
   * stopped, which is why the isolate lives in a disposable child process.
   */
  memoryMb: number;
  /** CPU time of the isolate (compile, evaluation, run, serialisation), in ms. */
  cpuMs: number;
  /** Wall-clock time from the child accepting the job to its reply, in ms. */
  wallMs: number;
  /** Maximum size of the job output (UTF-8 JSON text), in bytes. */
  outputBytes: number;
}

/** Limits applied when neither the job nor the pool's defaults set one. */
export const DEFAULT_LIMITS: Readonly<JobLimits> = Object.freeze({
  memoryMb: 64,
  cpuMs: 5_000,
  wallMs: 10_000,
  outputBytes: 1 << 20,
});

/** Inclusive bounds of every limit; values outside are rejected with INVALID_ARGUMENT. */
export const LIMIT_BOUNDS: Readonly<Record<keyof JobLimits, readonly [number, number]>> = Object.freeze({
  memoryMb: [8, 16_384],
  cpuMs: [1, 3_600_000],
  wallMs: [1, 3_600_000],
  outputBytes: [1, 256 << 20],
});

/** Codes a job can end with (all are in ERROR_CODES). */
export const JOB_ERROR_CODES = [
  'JOB_TIMEOUT',
  'JOB_CPU_LIMIT',
  'JOB_MEMORY_LIMIT',
  'JOB_OUTPUT_LIMIT',
  'JOB_INVALID_OUTPUT',
  'JOB_CODE_ERROR',
  'JOB_RUNNER_CRASHED',
  'JOB_CANCELLED',
  'POOL_UNAVAILABLE',
  'INVALID_ARGUMENT',
] as const;
export type JobErrorCode = (typeof JOB_ERROR_CODES)[number];

/** Codes a child may report; the rest (crash, pool state) only the pool can know. */
const CHILD_ERROR_CODES: ReadonlySet<string> = new Set<JobErrorCode>([
  'JOB_TIMEOUT',
  'JOB_CPU_LIMIT',
  'JOB_MEMORY_LIMIT',
  'JOB_OUTPUT_LIMIT',
  'JOB_INVALID_OUTPUT',
  'JOB_CODE_ERROR',
  'JOB_RUNNER_CRASHED',
  'JOB_CANCELLED',
  'INVALID_ARGUMENT',
]);

/** A finished job. `output` is JSON text produced inside the sandbox and re-validated outside. */
export interface JobSuccess {
  ok: true;
  jobId: string;
  /** The JSON text of run()'s result; always parseable with JSON.parse. */
  output: string;
  /** UTF-8 size of `output`. */
  outputBytes: number;
  /** Isolate CPU time used, ms. */
  cpuMs: number;
  /** Wall time in the child, ms. */
  wallMs: number;
  /** SHA-256 (hex) of the job source as UTF-8: what an attestation binds. */
  codeHash: string;
  /** Math.random seed and Date.now() value the job saw, for reproduction. */
  seed: number;
  startTimeMs: number;
  /** The limits the job ran under (after defaults). */
  limits: JobLimits;
}

/** A failed job, with a stable code and a message for people. */
export interface JobFailure {
  ok: false;
  jobId: string;
  code: JobErrorCode;
  message: string;
  /** Present once the job was accepted. */
  codeHash?: string;
  cpuMs?: number;
  wallMs?: number;
}

export type JobResult = JobSuccess | JobFailure;

// ---------------------------------------------------------------------------------------------
// IPC messages
// ---------------------------------------------------------------------------------------------

/** One column on the wire. `buffer` is a structured-clone copy made by the IPC channel. */
export interface WireColumn {
  name: string;
  type: ColumnType;
  buffer: ArrayBuffer;
}

/** Pool → child: run one job. The child runs one job at a time. */
export interface JobRequestMessage {
  type: 'job';
  jobId: string;
  code: string;
  /** JSON text of params (parsed inside the isolate, never in the child). */
  paramsJson: string;
  /** JSON text of data.meta. */
  metaJson: string;
  columns: WireColumn[];
  /** Row count: every column holds exactly this many elements. */
  rows: number;
  limits: JobLimits;
  seed: number;
  startTimeMs: number;
}

/** Pool → child: stop the running job (the child disposes its isolate and replies). */
export interface CancelMessage {
  type: 'cancel';
  jobId: string;
}

export type ParentMessage = JobRequestMessage | CancelMessage;

/** Child → pool: isolated-vm loaded; `measurement` is the child's own runner digest. */
export interface ReadyMessage {
  type: 'ready';
  pid: number;
  measurement: string;
}

/** Child → pool: the job arrived (its data is deserialised) and its clock now runs. */
export interface StartedMessage {
  type: 'started';
  jobId: string;
}

/**
 * Child → pool: the job's outcome. `retire` asks the pool to replace this child: its isolate
 * was stopped but did not wind down (a native builtin that ignores interrupts, say), so it may
 * still be burning CPU or memory on a worker thread.
 */
export type ResultMessage =
  | { type: 'result'; jobId: string; ok: true; output: string; outputBytes: number; cpuMs: number; wallMs: number; retire?: boolean }
  | {
      type: 'result';
      jobId: string;
      ok: false;
      code: JobErrorCode;
      message: string;
      cpuMs: number;
      wallMs: number;
      retire?: boolean;
    };

export type ChildMessage = ReadyMessage | StartedMessage | ResultMessage;

// ---------------------------------------------------------------------------------------------
// Parsing (both directions)
// ---------------------------------------------------------------------------------------------

/** Longest job ID accepted. */
export const MAX_JOB_ID_LENGTH = 128;
/** Longest column name accepted. */
export const MAX_COLUMN_NAME_LENGTH = 128;
/** Most columns per job (each is one argument into the isolate). */
export const MAX_COLUMNS = 1024;
/** Longest error message passed on (messages can carry consumer-chosen text). */
export const MAX_MESSAGE_LENGTH = 2000;

function malformed(what: string): never {
  throw new DivsError('MALFORMED_MESSAGE', `enclave IPC: ${what}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNonNegativeNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

/** A job ID: 1–128 printable ASCII characters. */
export function isJobId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_JOB_ID_LENGTH && /^[\x21-\x7e]+$/.test(v);
}

/** Checks a complete limits object against {@link LIMIT_BOUNDS}; returns an error text or null. */
export function checkLimits(limits: unknown): string | null {
  if (!isRecord(limits)) return 'limits must be an object';
  for (const key of Object.keys(LIMIT_BOUNDS) as (keyof JobLimits)[]) {
    const v = limits[key];
    const [min, max] = LIMIT_BOUNDS[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      return `limits.${key} must be an integer in [${min}, ${max}]`;
    }
  }
  return null;
}

/** Validates a message from the pool; throws MALFORMED_MESSAGE. */
export function parseParentMessage(m: unknown): ParentMessage {
  if (!isRecord(m)) malformed('message is not an object');
  if (m.type === 'cancel') {
    if (!isJobId(m.jobId)) malformed('bad jobId');
    return { type: 'cancel', jobId: m.jobId };
  }
  if (m.type !== 'job') malformed('unknown message type');
  if (!isJobId(m.jobId)) malformed('bad jobId');
  if (typeof m.code !== 'string') malformed('code must be a string');
  if (typeof m.paramsJson !== 'string' || typeof m.metaJson !== 'string') malformed('params/meta must be JSON text');
  if (!Number.isSafeInteger(m.rows) || (m.rows as number) < 0) malformed('bad rows');
  if (!Number.isSafeInteger(m.seed) || (m.seed as number) < 0) malformed('bad seed');
  if (!Number.isSafeInteger(m.startTimeMs)) malformed('bad startTimeMs');
  const limitError = checkLimits(m.limits);
  if (limitError !== null) malformed(limitError);
  if (!Array.isArray(m.columns) || m.columns.length > MAX_COLUMNS) malformed('bad columns');
  const rows = m.rows as number;
  const names = new Set<string>();
  const columns: WireColumn[] = [];
  for (const c of m.columns as unknown[]) {
    if (!isRecord(c) || typeof c.name !== 'string' || !isColumnType(c.type) || !(c.buffer instanceof ArrayBuffer)) {
      malformed('bad column');
    }
    if (names.has(c.name)) malformed('duplicate column');
    names.add(c.name);
    if (c.buffer.byteLength !== rows * COLUMN_TYPES[c.type].bytes) malformed(`column ${c.name}: length does not match rows`);
    columns.push({ name: c.name, type: c.type, buffer: c.buffer });
  }
  const limits = m.limits as JobLimits;
  return {
    type: 'job',
    jobId: m.jobId,
    code: m.code,
    paramsJson: m.paramsJson,
    metaJson: m.metaJson,
    columns,
    rows,
    limits: {
      memoryMb: limits.memoryMb,
      cpuMs: limits.cpuMs,
      wallMs: limits.wallMs,
      outputBytes: limits.outputBytes,
    },
    seed: m.seed as number,
    startTimeMs: m.startTimeMs as number,
  };
}

/**
 * Validates a message from a child; throws MALFORMED_MESSAGE. A child that sends something that
 * does not parse is treated as compromised by the pool (killed, its job failed).
 * `maxOutputBytes` bounds the output of a result (the running job's output limit).
 */
export function parseChildMessage(m: unknown, maxOutputBytes: number): ChildMessage {
  if (!isRecord(m)) malformed('message is not an object');
  switch (m.type) {
    case 'ready':
      if (!Number.isSafeInteger(m.pid) || typeof m.measurement !== 'string' || !/^[0-9a-f]{64}$/.test(m.measurement)) {
        malformed('bad ready message');
      }
      return { type: 'ready', pid: m.pid as number, measurement: m.measurement };
    case 'started':
      if (!isJobId(m.jobId)) malformed('bad jobId');
      return { type: 'started', jobId: m.jobId };
    case 'result': {
      if (!isJobId(m.jobId)) malformed('bad jobId');
      if (!isNonNegativeNumber(m.cpuMs) || !isNonNegativeNumber(m.wallMs)) malformed('bad timings');
      if (m.retire !== undefined && typeof m.retire !== 'boolean') malformed('bad retire flag');
      const retire = m.retire === true;
      if (m.ok === true) {
        if (typeof m.output !== 'string' || !Number.isSafeInteger(m.outputBytes)) malformed('bad output');
        // Re-check what the child claims: size first (cheap), then that it really is JSON.
        const bytes = Buffer.byteLength(m.output, 'utf8');
        if (bytes !== m.outputBytes || bytes > maxOutputBytes) malformed('output size mismatch or over limit');
        try {
          JSON.parse(m.output);
        } catch {
          malformed('output is not JSON');
        }
        return { type: 'result', jobId: m.jobId, ok: true, output: m.output, outputBytes: bytes, cpuMs: m.cpuMs, wallMs: m.wallMs, retire };
      }
      if (m.ok !== false || typeof m.code !== 'string' || !CHILD_ERROR_CODES.has(m.code) || typeof m.message !== 'string') {
        malformed('bad failure');
      }
      return {
        type: 'result',
        jobId: m.jobId,
        ok: false,
        code: m.code as JobErrorCode,
        message: m.message.slice(0, MAX_MESSAGE_LENGTH),
        cpuMs: m.cpuMs,
        wallMs: m.wallMs,
        retire,
      };
    }
    default:
      malformed('unknown message type');
  }
}
