/**
 * @module enclave-runner/child
 * The runner child process: receives one job at a time over IPC from the pool, runs it in a
 * brand-new isolated-vm Isolate, replies with the result, and disposes the isolate.
 *
 * Started by the pool as `node --no-node-snapshot child.ts` via `child_process.fork` with
 * `serialization: 'advanced'`, a minimal environment (TZ=UTC, no secrets) and no stdout.
 * isolated-vm is loaded here and nowhere else: V8 cannot always recover from running out of
 * memory, so a hostile job may abort this process; the pool then fails the job and starts a
 * replacement while the gateway carries on.
 *
 * Why a fresh Isolate per job (not a fresh Context in a shared one): a job's heap, memory
 * limit, CPU clock, compiled code and any V8 state it managed to corrupt die with it; no
 * object, global or prototype can survive into the next job, and a memory-limit disposal
 * affects only this job. Creating an isolate, its context and the prelude costs about 3 ms, so
 * the child prepares the next job's isolate right after answering a job (see `warm`):
 * still one unused isolate per job, just made before the job arrives.
 *
 * Data path for the columns, hop by hop:
 * 1. gateway → child: the IPC channel serialises the ArrayBuffers (V8 structured clone) into
 *    the pipe; the child gets a COPY (there is no shared memory between processes).
 * 2. child → isolate: `new ExternalCopy(buffer, { transferOut: true })` detaches the child's
 *    ArrayBuffer and keeps its backing store, `copyInto({ release: true, transferIn: true })`
 *    hands that same store to the isolate: a TRANSFER, no byte is copied, and the child no
 *    longer holds the data.
 * 3. isolate → child: only the output, one JSON string, copied out (a primitive).
 *
 * Limits enforced here: memory (isolate memoryLimit), CPU time and wall time (a watchdog that
 * polls `isolate.cpuTime` and the clock from the child's own thread and disposes the isolate —
 * isolated-vm's `timeout` option alone covers neither pending promises nor microtask loops),
 * and output bytes. The pool adds an external watchdog in case this process stops responding.
 */
import ivm from 'isolated-vm';
import { measureRunner } from './measurement.ts';
import { RUN_ALIAS, sandboxPrelude, type SandboxDriver } from './prelude.ts';
import {
  DEFAULT_LIMITS,
  MAX_MESSAGE_LENGTH,
  parseParentMessage,
  type JobErrorCode,
  type JobRequestMessage,
  type ResultMessage,
} from './protocol.ts';

/** Filename consumer code compiles under (shows in its stack traces). */
const JOB_FILENAME = 'file:///job.js';
/** Specifier by which the wrapper module imports the job module. */
const JOB_SPECIFIER = 'divs:job';
/** The wrapper: its `default` binding is set only after the job module fully evaluated. */
const WRAPPER_SOURCE = `import * as job from '${JOB_SPECIFIER}';\nexport default job;\n`;
const PRELUDE_SOURCE = `(${sandboxPrelude.toString()})`;

/** Why the watchdog stopped the isolate, when it did. */
type StopReason = 'cpu' | 'wall' | 'memory' | 'cancel';

const MIB = 1 << 20;
/** After a forced stop, how long the isolate may take to unwind before the child gives up on it. */
const UNWIND_MS = 250;
/** Resident-size cap over the start of a job: RSS_FACTOR × memoryMb + RSS_SLACK_MB (MiB). */
const RSS_FACTOR = 3;
const RSS_SLACK_MB = 96;

interface Running {
  jobId: string;
  stop(reason: StopReason): void;
}

let running: Running | undefined;
/** Set once this child asked to be replaced; it takes no further jobs. */
let retiring = false;
const RETIRE_EXIT_MS = 5_000;

function send(message: object): void {
  // `send` is absent only if the IPC channel is gone, in which case there is no one to tell.
  if (process.send !== undefined && process.connected) process.send(message);
}

function clip(text: string): string {
  return text.length > MAX_MESSAGE_LENGTH ? `${text.slice(0, MAX_MESSAGE_LENGTH)}...` : text;
}

/** Message of an error that isolated-vm copied out of the isolate (a host-side value). */
function hostErrorMessage(e: unknown): string {
  if (e instanceof Error) return clip(String(e.message));
  if (typeof e === 'string' || typeof e === 'number' || typeof e === 'boolean') return clip(String(e));
  return 'a non-error value was thrown';
}

/** isolated-vm wants whole milliseconds ≥ 1. */
function remainingMs(deadline: number): number {
  return Math.max(1, Math.ceil(deadline - performance.now()));
}

/** Compiles the job as an ES module such that `export function run`, `export default` and a
 * plain top-level `function run` all work: first with an alias export appended (valid whenever
 * the module has a local binding named `run`), else as written. */
async function compileJob(isolate: ivm.Isolate, code: string): Promise<ivm.Module> {
  try {
    return await isolate.compileModule(`${code}\n;export { run as ${RUN_ALIAS} };\n`, { filename: JOB_FILENAME });
  } catch {
    // No local `run` (or a syntax error, which the plain compile below reports exactly).
  }
  return await isolate.compileModule(code, { filename: JOB_FILENAME });
}

/** A fresh isolate with its context and the prelude evaluated; no job code has touched it. */
interface Prepared {
  isolate: ivm.Isolate;
  /** Resolves once the context and the prelude's init function exist (rejects if that failed). */
  ready: Promise<{ context: ivm.Context; init: ivm.Reference<typeof sandboxPrelude> }>;
}

/**
 * The isolate made for the next job, for a memory limit (isolated-vm fixes the limit when the
 * isolate is created): a job with another limit gets a new isolate and this one is dropped.
 * Prepared when the child starts and after each job; never used twice.
 */
let warm: { memoryLimit: number; prepared: Prepared } | undefined;

function createIsolate(memoryLimit: number): Prepared {
  const isolate = new ivm.Isolate({
    memoryLimit,
    onCatastrophicError: (message: string) => {
      // isolated-vm's advice: this process can no longer be trusted. Abort; the pool fails the
      // job as crashed and starts a replacement.
      process.stderr.write(`enclave-runner: catastrophic isolate error: ${message}\n`);
      process.abort();
    },
  });
  const ready = (async () => {
    const context = await isolate.createContext();
    const prelude = await isolate.compileScript(PRELUDE_SOURCE, { filename: 'divs:prelude' });
    const init = (await prelude.run(context, { reference: true })) as ivm.Reference<typeof sandboxPrelude>;
    return { context, init };
  })();
  // a failure shows when the job awaits it; until then it must not count as unhandled
  ready.catch(() => undefined);
  return { isolate, ready };
}

function disposeQuietly(isolate: ivm.Isolate): void {
  try {
    if (!isolate.isDisposed) isolate.dispose();
  } catch {
    // already disposed
  }
}

/** The warm isolate when it was made for this limit, else a new one (the warm one is dropped). */
function takeIsolate(memoryLimit: number): Prepared {
  const w = warm;
  warm = undefined;
  if (w !== undefined && w.memoryLimit === memoryLimit && !w.prepared.isolate.isDisposed) return w.prepared;
  if (w !== undefined) disposeQuietly(w.prepared.isolate);
  return createIsolate(memoryLimit);
}

/** Makes the next job's isolate now, off its critical path. */
function prepareNext(memoryLimit: number): void {
  if (retiring || running !== undefined || warm !== undefined) return;
  try {
    warm = { memoryLimit, prepared: createIsolate(memoryLimit) };
  } catch {
    // out of memory for a spare isolate: the next job makes its own
  }
}

/** The memory limit of a job's isolate: its limit plus its input columns, which live in the isolate. */
function isolateMemoryLimit(req: JobRequestMessage): number {
  let dataBytes = 0;
  for (const c of req.columns) dataBytes += c.buffer.byteLength;
  return req.limits.memoryMb + Math.ceil(dataBytes / MIB);
}

/** Runs one job in an isolate of `memoryLimit` MiB ({@link isolateMemoryLimit} of the request). */
async function runJob(req: JobRequestMessage, memoryLimit: number): Promise<ResultMessage> {
  const started = performance.now();
  const deadline = started + req.limits.wallMs;
  const prepared = takeIsolate(memoryLimit);
  const isolate = prepared.isolate;
  // V8's limit is soft (isolated-vm lends the heap extra room while it decides), so the
  // process's resident size is watched too. The columns are already resident at this point.
  const rssCap = process.memoryUsage.rss() + (RSS_FACTOR * req.limits.memoryMb + RSS_SLACK_MB) * MIB;

  let reason: StopReason | undefined;
  let cpuMs = 0;
  // isolated-vm may dispose the isolate from its own thread (memory limit) at any moment, so
  // reading or disposing it can throw even right after an isDisposed check.
  const readCpu = (): number => {
    try {
      if (!isolate.isDisposed) cpuMs = Number(isolate.cpuTime) / 1e6;
    } catch {
      // keep the last reading
    }
    return cpuMs;
  };
  const dispose = (): void => disposeQuietly(isolate);
  let signalStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (signalStopped = resolve));
  const stop = (why: StopReason): void => {
    reason ??= why;
    readCpu();
    dispose();
    signalStopped();
  };
  // Every isolated-vm call is asynchronous, so the isolate runs on a worker thread and this
  // thread stays free to watch it. A short poll keeps the overshoot small.
  const pollMs = Math.min(10, Math.max(2, Math.floor(Math.min(req.limits.cpuMs, req.limits.wallMs) / 20)));
  const watchdog = setInterval(() => {
    if (reason !== undefined) return;
    if (readCpu() > req.limits.cpuMs) stop('cpu');
    else if (process.memoryUsage.rss() > rssCap) stop('memory');
    else if (performance.now() >= deadline) stop('wall');
  }, pollMs);
  const wallTimer = setTimeout(() => stop('wall'), req.limits.wallMs);
  running = { jobId: req.jobId, stop };

  const timings = (): { cpuMs: number; wallMs: number } => ({
    cpuMs: Math.round(readCpu() * 1000) / 1000,
    wallMs: Math.round((performance.now() - started) * 1000) / 1000,
  });
  const failure = (code: JobErrorCode, message: string): ResultMessage => ({
    type: 'result',
    jobId: req.jobId,
    ok: false,
    code,
    message,
    ...timings(),
  });
  const stoppedFailure = (): ResultMessage | undefined => {
    switch (reason) {
      case 'cancel':
        return failure('JOB_CANCELLED', 'the job was cancelled');
      case 'memory':
        return failure('JOB_MEMORY_LIMIT', `memory limit of ${req.limits.memoryMb} MiB exceeded`);
      case 'cpu':
        return failure('JOB_CPU_LIMIT', `CPU time limit of ${req.limits.cpuMs} ms exceeded`);
      case 'wall':
        // The wall timer and the CPU poll race; report the CPU limit when it was the real cause.
        return readCpu() > req.limits.cpuMs
          ? failure('JOB_CPU_LIMIT', `CPU time limit of ${req.limits.cpuMs} ms exceeded`)
          : failure('JOB_TIMEOUT', `wall-clock limit of ${req.limits.wallMs} ms exceeded`);
      default:
        return undefined;
    }
  };

  const work = execute(req, prepared, deadline).then(
    (outcome) => stoppedFailure() ?? toResult(outcome),
    (e: unknown) => stoppedFailure() ?? toResult(classifyError(e, isolate, readCpu() > req.limits.cpuMs, req)),
  );
  // A stopped isolate normally unwinds within microseconds; one stuck in a native builtin that
  // ignores interrupts may not. Do not wait for it: answer, and ask to be replaced.
  const gaveUp = stopped.then(() => new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), UNWIND_MS)));
  try {
    const first = await Promise.race([work, gaveUp]);
    const result = first ?? { ...(stoppedFailure() as ResultMessage), retire: true };
    // After a memory stop the process's heap is bloated; a fresh child is cheaper than trust.
    return reason === 'memory' ? { ...result, retire: true } : result;
  } finally {
    clearInterval(watchdog);
    clearTimeout(wallTimer);
    running = undefined;
    readCpu();
    // disposing takes a fraction of a millisecond: after the answer is on its way
    setImmediate(dispose);
  }

  function toResult(outcome: Outcome): ResultMessage {
    if (outcome.ok) return { type: 'result', jobId: req.jobId, ok: true, output: outcome.output, outputBytes: outcome.outputBytes, ...timings() };
    return failure(outcome.code, outcome.message);
  }
}

type Outcome = { ok: true; output: string; outputBytes: number } | { ok: false; code: JobErrorCode; message: string };

/** Compiles, evaluates and runs the job in `isolate`; rejects with whatever isolated-vm threw. */
async function execute(req: JobRequestMessage, prepared: Prepared, deadline: number): Promise<Outcome> {
  const isolate = prepared.isolate;
  const { context, init } = await prepared.ready;
  const seedHi = Math.floor(req.seed / 2 ** 32);
  const seedLo = req.seed >>> 0;
  const drive = (await init.apply(undefined, [seedHi, seedLo, req.startTimeMs], {
    timeout: remainingMs(deadline),
    result: { reference: true },
  })) as unknown as ivm.Reference<SandboxDriver>;

  const job = await compileJob(isolate, req.code);
  if (job.dependencySpecifiers.length > 0) {
    return { ok: false, code: 'JOB_CODE_ERROR', message: 'import declarations are not allowed: a job is one self-contained module' };
  }
  const wrapper = await isolate.compileModule(WRAPPER_SOURCE, { filename: 'divs:wrapper' });
  await wrapper.instantiate(context, (specifier) => {
    if (specifier === JOB_SPECIFIER) return job;
    throw new Error(`cannot import ${JSON.stringify(specifier)}`);
  });
  // Runs the job's top-level code.
  await wrapper.evaluate({ timeout: remainingMs(deadline) });

  const spec = JSON.stringify({
    rows: req.rows,
    meta: JSON.parse(req.metaJson) as unknown,
    columns: req.columns.map((c) => [c.name, c.type]),
  });
  // Hop 2 of the data path: transfer (not copy) each column's backing store into the isolate.
  const transfers = req.columns.map((c) =>
    new ivm.ExternalCopy(c.buffer, { transferOut: true }).copyInto({ release: true, transferIn: true }),
  );
  const reply = (await drive.apply(
    undefined,
    [wrapper.namespace.derefInto(), spec, req.paramsJson, req.limits.outputBytes, ...transfers] as never,
    { timeout: remainingMs(deadline), result: { promise: true } },
  )) as unknown;

  if (typeof reply !== 'string' || reply.length === 0) {
    return { ok: false, code: 'JOB_RUNNER_CRASHED', message: 'the sandbox driver returned no reply' };
  }
  const payload = reply.slice(1);
  switch (reply[0]) {
    case 'O': {
      const outputBytes = Buffer.byteLength(payload, 'utf8');
      if (outputBytes > req.limits.outputBytes) {
        return { ok: false, code: 'JOB_OUTPUT_LIMIT', message: `output of ${outputBytes} bytes exceeds the limit of ${req.limits.outputBytes}` };
      }
      // The driver used the pristine JSON.stringify, but the host does not take its word.
      try {
        JSON.parse(payload);
      } catch {
        return { ok: false, code: 'JOB_INVALID_OUTPUT', message: 'the output is not valid JSON' };
      }
      return { ok: true, output: payload, outputBytes };
    }
    case 'C':
      return { ok: false, code: 'JOB_CODE_ERROR', message: clip(payload) };
    case 'M':
      return { ok: false, code: 'JOB_MEMORY_LIMIT', message: `memory limit of ${req.limits.memoryMb} MiB reached: ${clip(payload)}` };
    case 'I':
      return { ok: false, code: 'JOB_INVALID_OUTPUT', message: clip(payload) };
    case 'L':
      return { ok: false, code: 'JOB_OUTPUT_LIMIT', message: `output exceeds the limit of ${req.limits.outputBytes} bytes (${clip(payload)})` };
    default:
      return { ok: false, code: 'JOB_RUNNER_CRASHED', message: 'the sandbox driver returned a malformed reply' };
  }
}

/** Maps what isolated-vm threw (compile errors, top-level throws, its own limits) to a code. */
function classifyError(e: unknown, isolate: ivm.Isolate, overCpu: boolean, req: JobRequestMessage): Outcome {
  // isolated-vm disposes the isolate by itself only when the memory limit is hit.
  if (isolate.isDisposed) return { ok: false, code: 'JOB_MEMORY_LIMIT', message: `memory limit of ${req.limits.memoryMb} MiB exceeded` };
  const message = hostErrorMessage(e);
  if (message === 'Script execution timed out.') {
    return overCpu
      ? { ok: false, code: 'JOB_CPU_LIMIT', message: `CPU time limit of ${req.limits.cpuMs} ms exceeded` }
      : { ok: false, code: 'JOB_TIMEOUT', message: `wall-clock limit of ${req.limits.wallMs} ms exceeded` };
  }
  return { ok: false, code: 'JOB_CODE_ERROR', message };
}

function onMessage(raw: unknown): void {
  let msg;
  try {
    msg = parseParentMessage(raw);
  } catch (e) {
    // The pool never sends this; if it did, say so instead of dying.
    const jobId = typeof (raw as { jobId?: unknown })?.jobId === 'string' ? (raw as { jobId: string }).jobId : 'unknown';
    send({ type: 'result', jobId, ok: false, code: 'INVALID_ARGUMENT', message: hostErrorMessage(e), cpuMs: 0, wallMs: 0 });
    return;
  }
  if (msg.type === 'cancel') {
    if (running !== undefined && running.jobId === msg.jobId) running.stop('cancel');
    return;
  }
  if (running !== undefined || retiring) {
    const why = retiring ? 'runner is retiring' : 'runner is busy';
    send({ type: 'result', jobId: msg.jobId, ok: false, code: 'JOB_RUNNER_CRASHED', message: why, cpuMs: 0, wallMs: 0 });
    return;
  }
  const job = msg;
  // read before the run: the run transfers the columns away
  const memoryLimit = isolateMemoryLimit(job);
  send({ type: 'started', jobId: job.jobId });
  runJob(job, memoryLimit).then((result) => {
    if (result.retire === true) {
      // The pool kills a retiring child by PID; leave on our own if that somehow never comes.
      retiring = true;
      setTimeout(() => process.exit(0), RETIRE_EXIT_MS);
    }
    send(result);
    // the next job most likely comes with the same limits
    setImmediate(() => prepareNext(memoryLimit));
  }, (e: unknown) => {
    // runJob catches everything; reaching this means a bug in the runner itself.
    send({ type: 'result', jobId: job.jobId, ok: false, code: 'JOB_RUNNER_CRASHED', message: hostErrorMessage(e), cpuMs: 0, wallMs: 0 });
  });
}

// Without the pool this process has no purpose: exit when the IPC channel closes, so a
// crashed gateway leaves no orphaned runners behind.
process.on('disconnect', () => process.exit(0));
process.on('message', onMessage);
send({ type: 'ready', pid: process.pid, measurement: measureRunner().digest });
// the first job most likely comes with the default limits and a small input (≤ 1 MiB)
prepareNext(DEFAULT_LIMITS.memoryMb + 1);
