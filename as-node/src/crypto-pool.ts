/**
 * @module crypto-pool
 * Registration crypto on worker threads: verifying UE self-signatures [END-1] and signing
 * endorsements [END-3] are the AS's CPU cost, so batches are split across workers (one per
 * core by default) while the main thread keeps serving gRPC and writing the ledger.
 * Small batches run inline: a worker round-trip costs more than a few signatures.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { KeyObject } from 'node:crypto';
import { DivsError, type ErrorCode } from '../../protocol/src/errors.ts';
import { nodeSign, suiteOfKeyObject, type OwnSignatures, type Suite } from '../../protocol/src/suites.ts';
import type { SignedRegistration, UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { checkRegistration, type CheckedRegistration, type FreshnessPolicy, DEFAULT_FRESHNESS } from './endorse.ts';

export type CheckResult = { ok: true; value: CheckedRegistration } | { ok: false; code: ErrorCode; message: string };

/** Messages to a worker. */
type TaskBody = { kind: 'check'; regs: SignedRegistration[]; nowMs: number; policy: FreshnessPolicy } | { kind: 'sign'; msgs: Uint8Array[] };
export type WorkerTask = TaskBody & { id: number };

export type WorkerReply = { id: number; check?: CheckResult[]; sigs?: Uint8Array[]; error?: string };

/** Runs checkRegistration over items, mapping coded failures to results (never throws). */
export function checkAll(regs: SignedRegistration[], nowMs: number, policy: FreshnessPolicy): CheckResult[] {
  return regs.map((r) => {
    try {
      return { ok: true, value: checkRegistration(r, nowMs, policy) };
    } catch (e) {
      if (e instanceof DivsError) return { ok: false, code: e.code, message: e.message };
      return { ok: false, code: 'INTERNAL', message: 'registration check failed' };
    }
  });
}

const INLINE_BELOW = 16;

export class CryptoPool {
  readonly #workers: Worker[] = [];
  readonly #pending = new Map<number, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>();
  readonly #key: KeyObject;
  readonly #suite: Suite;
  readonly #own: OwnSignatures | undefined;
  #next = 1;
  #rr = 0;
  #closed = false;

  /** @param own where the signatures made are noted (the consortium ledger skips checking those) */
  constructor(signingKey: KeyObject, threads = Math.max(1, Math.min(availableParallelism(), 4)), own?: OwnSignatures) {
    this.#key = signingKey;
    this.#own = own;
    this.#suite = suiteOfKeyObject(signingKey);
    const keyDer = signingKey.export({ format: 'der', type: 'pkcs8' });
    for (let i = 0; i < threads; i++) {
      const w = new Worker(new URL('./crypto-worker.ts', import.meta.url), { workerData: { keyDer } });
      w.unref();
      w.on('message', (m: WorkerReply) => {
        const p = this.#pending.get(m.id);
        if (!p) return;
        this.#pending.delete(m.id);
        if (m.error) p.reject(new DivsError('INTERNAL', m.error));
        else p.resolve(m);
      });
      w.on('error', (err) => {
        // a worker bug must fail the calls it was serving, not hang them
        for (const [id, p] of this.#pending) {
          this.#pending.delete(id);
          p.reject(new DivsError('INTERNAL', 'crypto worker failed', { cause: err }));
        }
      });
      this.#workers.push(w);
    }
  }

  get suite(): Suite {
    return this.#suite;
  }

  #call(task: TaskBody): Promise<WorkerReply> {
    if (this.#closed) return Promise.reject(new DivsError('UNAVAILABLE', 'crypto pool closed'));
    const id = this.#next++;
    const w = this.#workers[this.#rr++ % this.#workers.length] as Worker;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      w.postMessage({ ...task, id });
    });
  }

  #chunks<T>(items: T[]): T[][] {
    const n = this.#workers.length;
    const size = Math.ceil(items.length / n);
    const out: T[][] = [];
    for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
    return out;
  }

  /** Verifies registrations (one result per item, in order). */
  async check(regs: SignedRegistration[], nowMs: number, policy: FreshnessPolicy = DEFAULT_FRESHNESS): Promise<CheckResult[]> {
    if (regs.length < INLINE_BELOW || this.#workers.length === 0) return checkAll(regs, nowMs, policy);
    const parts = await Promise.all(this.#chunks(regs).map((c) => this.#call({ kind: 'check', regs: c, nowMs, policy })));
    return parts.flatMap((p) => p.check ?? []);
  }

  /** Signs each message with the AS key (P1363 for ECDSA). */
  async sign(msgs: Uint8Array[]): Promise<Uint8Array[]> {
    let sigs: Uint8Array[];
    if (msgs.length < INLINE_BELOW || this.#workers.length === 0) sigs = msgs.map((m) => nodeSign(this.#suite, this.#key, m));
    else sigs = (await Promise.all(this.#chunks(msgs).map((c) => this.#call({ kind: 'sign', msgs: c })))).flatMap((p) => p.sigs ?? []);
    if (this.#own) for (let i = 0; i < sigs.length; i++) this.#own.note(msgs[i] as Uint8Array, sigs[i] as Uint8Array);
    return sigs;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}

export type { UeIdentity };
