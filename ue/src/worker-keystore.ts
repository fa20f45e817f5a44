/**
 * @module ue/worker-keystore
 * A {@link SoftwareKeyStore} living in its own worker thread, reached only by messages: the
 * calling thread holds no key material at all, the way a host talks to a SIM applet over APDUs
 * [REG-2] [VER-2]. Several of them spread key generation and signing over cores, which is what
 * lets the fleet simulator create thousands of UEs quickly (noble's constant-time P-256 costs
 * about 0.7 ms per key and per signature here).
 */
import { Worker } from 'node:worker_threads';
import { DivsError, isErrorCode } from '../../protocol/src/errors.ts';
import type { Suite } from '../../protocol/src/suites.ts';
import type { KeyStore, PublicKeyInfo } from './keystore.ts';

/** Operations the worker performs. */
export type KeyStoreOp =
  | { op: 'generate'; alias: string; suite: Suite }
  | { op: 'publicKey'; alias: string }
  | { op: 'sign'; alias: string; msg: Uint8Array }
  | { op: 'has'; alias: string }
  | { op: 'delete'; alias: string }
  | { op: 'save' };

/** Requests to the worker. */
export type KeyStoreRequest = KeyStoreOp & { id: number };

/** Replies from the worker: a value, or a coded error. */
export type KeyStoreReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; code: string; message: string };

/** First message of a worker: whether its store opened. */
export type KeyStoreReady = { ready: true } | { ready: false; code: string; message: string };

/** Options of the store inside the worker (the same as {@link SoftwareKeyStore.open}). */
export interface WorkerKeyStoreOptions {
  /** Encrypted store file; in memory when omitted. */
  path?: string;
  passphrase?: string;
  scryptN?: number;
  autosave?: boolean;
}

function coded(code: string, message: string): DivsError {
  return new DivsError(isErrorCode(code) ? code : 'INTERNAL', message);
}

/**
 * Key store in a worker thread. Start with {@link WorkerKeyStore.start}; always {@link close}.
 * The worker does not keep the process alive while idle.
 */
export class WorkerKeyStore implements KeyStore {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #next = 1;
  #failure: DivsError | undefined;

  get kind(): string {
    return 'worker';
  }

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.on('message', (m: KeyStoreReply) => {
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (this.#pending.size === 0) worker.unref();
      if (m.ok) p.resolve(m.value);
      else p.reject(coded(m.code, m.message));
    });
    const die = (err: DivsError) => {
      // a dead worker must fail the calls it was serving, not hang them
      this.#failure ??= err;
      for (const p of this.#pending.values()) p.reject(this.#failure);
      this.#pending.clear();
    };
    worker.on('error', (e) => die(new DivsError('INTERNAL', 'key store worker failed', { cause: e })));
    worker.on('exit', () => die(new DivsError('UNAVAILABLE', 'key store worker stopped')));
  }

  /** Starts a worker and opens its store; rejects with the store's coded error (e.g. wrong passphrase). */
  static async start(opts: WorkerKeyStoreOptions = {}): Promise<WorkerKeyStore> {
    const worker = new Worker(new URL('./keystore-worker.ts', import.meta.url), { workerData: opts });
    const ready = await new Promise<KeyStoreReady>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', (e) => reject(new DivsError('INTERNAL', 'key store worker failed to start', { cause: e })));
      worker.once('exit', (code) => reject(new DivsError('INTERNAL', `key store worker exited (${code}) before it was ready`)));
    }).catch(async (e: unknown) => {
      await worker.terminate();
      throw e;
    });
    if (!ready.ready) {
      await worker.terminate();
      throw coded(ready.code, ready.message);
    }
    worker.unref();
    return new WorkerKeyStore(worker);
  }

  #call<T>(req: KeyStoreOp): Promise<T> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      if (this.#pending.size === 0) this.#worker.ref();
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#worker.postMessage({ ...req, id });
    });
  }

  generate(alias: string, suite: Suite): Promise<PublicKeyInfo> {
    return this.#call({ op: 'generate', alias, suite });
  }

  publicKey(alias: string): Promise<PublicKeyInfo> {
    return this.#call({ op: 'publicKey', alias });
  }

  sign(alias: string, msg: Uint8Array): Promise<Uint8Array> {
    if (!(msg instanceof Uint8Array)) return Promise.reject(new DivsError('INVALID_ARGUMENT', 'msg: expected bytes'));
    return this.#call({ op: 'sign', alias, msg });
  }

  has(alias: string): Promise<boolean> {
    return this.#call({ op: 'has', alias });
  }

  delete(alias: string): Promise<boolean> {
    return this.#call({ op: 'delete', alias });
  }

  /** Writes the worker's store file (after bulk generation with autosave off). */
  save(): Promise<void> {
    return this.#call({ op: 'save' });
  }

  /** Stops the worker; its keys are gone from memory (persisted ones stay in the file). */
  async close(): Promise<void> {
    this.#failure ??= new DivsError('UNAVAILABLE', 'key store closed');
    await this.#worker.terminate();
  }

  toJSON(): { kind: string } {
    return { kind: this.kind };
  }
}
