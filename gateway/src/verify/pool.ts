/**
 * @module verify/pool
 * Verification worker threads [GEN-8]: P-256 verification and hashing are CPU work, so tasks
 * are spread over workers (one per core by default) while the main thread keeps serving gRPC,
 * HTTP and the store. Task buffers are transferred, not copied. A worker that dies fails only
 * the tasks it held (INTERNAL) and is replaced. With `threads: 0` tasks run inline (tests,
 * tiny deployments).
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { DivsError } from '../../../protocol/src/errors.ts';
import { VerifierCore } from './core.ts';
import { commitmentRoot } from './commitment.ts';
import { readStoreTask, type StoreTaskSpec } from './store-source.ts';
import type { TaskResult, VerifyTask } from './task.ts';

export type WorkerRequest =
  | { id: number; kind: 'verify'; task: VerifyTask }
  | { id: number; kind: 'verify-store'; spec: StoreTaskSpec }
  | { id: number; kind: 'commit'; leaves: Uint8Array }
  | { id: number; kind: 'forget' };

export type WorkerReply =
  | { id: number; kind: 'verify'; result: TaskResult }
  | { id: number; kind: 'verify-store'; result: TaskResult; flags: Uint8Array; segmentUes: Int32Array }
  | { id: number; kind: 'commit'; root: Uint8Array }
  | { id: number; kind: 'error'; message: string };

/** A store task's result with what the worker read. */
export interface StoreTaskResult {
  result: TaskResult;
  flags: Uint8Array;
  segmentUes: Int32Array;
}

interface Slot {
  worker: Worker;
  inFlight: number;
}

interface Pending {
  slot: Slot | null;
  resolve: (r: WorkerReply) => void;
  reject: (e: Error) => void;
}

interface Queued {
  req: WorkerRequest;
  transfer: ArrayBuffer[];
  resolve: (r: WorkerReply) => void;
  reject: (e: Error) => void;
}

/** Tasks a worker holds at once: one running, one ready to start the moment it finishes. */
const MAX_PER_WORKER = 2;

/** Buffers of a typed array that can be moved to another thread (it must own its buffer). */
function movable(...arrays: ArrayBufferView[]): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const a of arrays) {
    const b = a.buffer;
    // a view into a shared or pooled buffer is copied instead (transferring would detach the rest)
    if (b instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === b.byteLength && !out.includes(b)) out.push(b);
  }
  return out;
}

export interface PoolOptions {
  /** Worker threads; default: one per core (at most 8). 0 runs everything inline. */
  threads?: number;
}

export class VerifierPool {
  readonly threads: number;
  readonly #slots: Slot[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #queue: Queued[] = [];
  #inline: VerifierCore | null = null;
  #next = 1;
  #closed = false;

  constructor(opts: PoolOptions = {}) {
    const threads = opts.threads ?? Math.max(1, Math.min(availableParallelism(), 8));
    if (!Number.isInteger(threads) || threads < 0 || threads > 64) throw new DivsError('CONFIG_INVALID', 'verification threads: 0 to 64');
    this.threads = threads;
    for (let i = 0; i < threads; i++) this.#slots.push(this.#spawn());
    if (threads === 0) this.#inline = new VerifierCore();
  }

  #spawn(): Slot {
    const worker = new Worker(new URL('./worker.ts', import.meta.url));
    const slot: Slot = { worker, inFlight: 0 };
    worker.unref();
    worker.on('message', (m: WorkerReply) => {
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      slot.inFlight--;
      if (m.kind === 'error') p.reject(new DivsError('INTERNAL', `verification worker: ${m.message}`));
      else p.resolve(m);
      this.#dispatch();
    });
    const fail = (err: unknown) => {
      // a crashed worker fails only its own tasks; a fresh one takes its place
      for (const [id, p] of this.#pending) {
        if (p.slot !== slot) continue;
        this.#pending.delete(id);
        p.reject(new DivsError('INTERNAL', 'verification worker failed', { cause: err }));
      }
      const i = this.#slots.indexOf(slot);
      if (i >= 0 && !this.#closed) {
        this.#slots[i] = this.#spawn();
        this.#dispatch();
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!this.#closed) fail(new Error(`worker exited with code ${code}`));
    });
    return slot;
  }

  /** Tasks running on workers or waiting for one. */
  get inFlight(): number {
    return this.#pending.size + this.#queue.length;
  }

  #post(req: WorkerRequest, transfer: ArrayBuffer[]): Promise<WorkerReply> {
    if (this.#closed) return Promise.reject(new DivsError('UNAVAILABLE', 'verification pool closed'));
    return new Promise<WorkerReply>((resolve, reject) => {
      this.#queue.push({ req, transfer, resolve, reject });
      this.#dispatch();
    });
  }

  /**
   * Hands queued tasks to workers with fewer than MAX_PER_WORKER in flight: a worker that runs
   * ahead takes more, so all finish together however uneven the tasks or the cores are.
   */
  #dispatch(): void {
    while (this.#queue.length > 0) {
      let slot: Slot | undefined;
      for (const s of this.#slots) if (s.inFlight < MAX_PER_WORKER && (slot === undefined || s.inFlight < slot.inFlight)) slot = s;
      if (slot === undefined) return;
      const q = this.#queue.shift() as Queued;
      const chosen = slot;
      chosen.inFlight++;
      this.#pending.set(q.req.id, {
        slot: chosen,
        resolve: (r) => {
          if (chosen.inFlight === 0) chosen.worker.unref();
          q.resolve(r);
        },
        reject: (e) => {
          if (chosen.inFlight === 0) chosen.worker.unref();
          q.reject(e);
        },
      });
      chosen.worker.ref();
      chosen.worker.postMessage(q.req, q.transfer);
    }
  }

  /**
   * Drops every worker's caches (imported UE keys, verified batch signatures): what follows is
   * judged as if seen for the first time. For benchmarks that judge the same records again;
   * the caches are correct either way (they hold only what verified over exact bytes).
   */
  forgetCaches(): void {
    this.#inline?.forgetCaches();
    // a worker handles its messages in order: tasks posted after this see empty caches
    for (const s of this.#slots) s.worker.postMessage({ id: 0, kind: 'forget' } satisfies WorkerRequest);
  }

  /** Judges a packed task; its buffers move to the worker (do not use them afterwards). */
  async verify(task: VerifyTask): Promise<TaskResult> {
    if (this.#inline) {
      await new Promise((r) => setImmediate(r));
      return this.#inline.run(task);
    }
    const id = this.#next++;
    const reply = await this.#post({ id, kind: 'verify', task }, movable(task.data, task.offsets, task.flags, task.segments));
    if (reply.kind !== 'verify') throw new DivsError('INTERNAL', 'unexpected worker reply');
    return reply.result;
  }

  /** Reads a task from the gateway store in a worker and judges it. */
  async verifyStore(spec: StoreTaskSpec): Promise<StoreTaskResult> {
    if (this.#inline) {
      await new Promise((r) => setImmediate(r));
      const { task, segmentUes } = readStoreTask(spec);
      return { result: this.#inline.run(task), flags: task.flags, segmentUes };
    }
    const id = this.#next++;
    const reply = await this.#post({ id, kind: 'verify-store', spec: { ...spec, id } }, []);
    if (reply.kind !== 'verify-store') throw new DivsError('INTERNAL', 'unexpected worker reply');
    return { result: reply.result, flags: reply.flags, segmentUes: reply.segmentUes };
  }

  /** RFC 9162 root over concatenated 32-byte record hashes (see commitment.ts). */
  async commitment(recordHashes: Uint8Array): Promise<Uint8Array> {
    if (this.#inline) return commitmentRoot(recordHashes, this.#inline.hasher);
    const id = this.#next++;
    const reply = await this.#post({ id, kind: 'commit', leaves: recordHashes }, movable(recordHashes));
    if (reply.kind !== 'commit') throw new DivsError('INTERNAL', 'unexpected worker reply');
    return reply.root;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const q of this.#queue.splice(0)) q.reject(new DivsError('UNAVAILABLE', 'verification pool closed'));
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      p.reject(new DivsError('UNAVAILABLE', 'verification pool closed'));
    }
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }
}
