/**
 * @module writer
 * The store's writes on their own thread [E2E-2]: inserting records and committing them (with
 * an fsync) is most of ingest's CPU, so a writer thread owns the writable {@link RecordStore}
 * while the main thread keeps reading gRPC/HTTP frames, checking records and sending acks. A
 * group of records crosses over packed into a few transferred buffers (record bytes, numbers,
 * a string table), never one object per record; outcomes come back the same way. A group is
 * answered only after its transaction committed, so acks still mean "durably stored".
 */
import { Worker } from 'node:worker_threads';
import { DivsError, isErrorCode } from '../../protocol/src/errors.ts';
import type { AppendOutcome, StoreItem, StoreOptions } from './store.ts';

/** Anything that stores groups of records: a RecordStore in process, or the writer thread. */
export interface RecordSink {
  append(items: readonly StoreItem[]): AppendOutcome[] | Promise<AppendOutcome[]>;
}

/** A group of StoreItems as plain transferable data. */
export interface PackedItems {
  records: Uint8Array;
  offsets: Uint32Array;
  hashes: Uint8Array;
  /** seq, timestamp, tx ID per item. */
  nums: Float64Array;
  /** channel, UE key, content type, ledger ID per item: indexes into `strings`. */
  idx: Int32Array;
  strings: string[];
  /** AS URLs of each endorsement reference in the group ("ledger\ntx" -> URLs). */
  urls: [string, string[]][];
}

export type WriterRequest = { id: number; kind: 'append'; items: PackedItems; receivedMs: number } | { id: number; kind: 'close' };
export type WriterReply =
  | { id: number; kind: 'ready' }
  | { id: number; kind: 'append'; statuses: Uint8Array; forkHashes: Uint8Array }
  | { id: number; kind: 'closed' }
  | { id: number; kind: 'error'; code: string; message: string };

/** Packs items (one copy of every record's bytes into one buffer). */
export function packItems(items: readonly StoreItem[]): PackedItems {
  const n = items.length;
  let total = 0;
  for (const it of items) total += it.record.length;
  const records = new Uint8Array(total);
  const offsets = new Uint32Array(n + 1);
  const hashes = new Uint8Array(32 * n);
  const nums = new Float64Array(3 * n);
  const idx = new Int32Array(4 * n);
  const strings: string[] = [];
  const ids = new Map<string, number>();
  const str = (s: string): number => {
    let i = ids.get(s);
    if (i === undefined) {
      i = strings.length;
      strings.push(s);
      ids.set(s, i);
    }
    return i;
  };
  const urls = new Map<string, string[]>();
  let o = 0;
  for (let i = 0; i < n; i++) {
    const it = items[i] as StoreItem;
    offsets[i] = o;
    records.set(it.record, o);
    o += it.record.length;
    hashes.set(it.hash, 32 * i);
    nums[3 * i] = it.sequence;
    nums[3 * i + 1] = it.timestampMs;
    nums[3 * i + 2] = it.txId;
    idx[4 * i] = str(it.channel);
    idx[4 * i + 1] = str(it.ueKey);
    idx[4 * i + 2] = str(it.contentType);
    idx[4 * i + 3] = str(it.ledgerId);
    const rk = `${it.ledgerId}\n${it.txId}`;
    if (!urls.has(rk)) urls.set(rk, [...it.asUrls]);
  }
  offsets[n] = o;
  return { records, offsets, hashes, nums, idx, strings, urls: [...urls.entries()] };
}

/** The inverse of {@link packItems} (in the writer thread). */
export function unpackItems(p: PackedItems): StoreItem[] {
  const n = p.offsets.length - 1;
  const urls = new Map(p.urls);
  const out: StoreItem[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const ueKey = p.strings[p.idx[4 * i + 1] as number] as string;
    // the key is the identity: imei|iccid|eid|msisdn (validated digits and '+', never '|')
    const [imei = '', iccid = '', eid = '', msisdn = ''] = ueKey.split('|');
    const ledgerId = p.strings[p.idx[4 * i + 3] as number] as string;
    const txId = p.nums[3 * i + 2] as number;
    out[i] = {
      channel: p.strings[p.idx[4 * i] as number] as string,
      ueKey,
      identity: { imei, iccid, eid, msisdn },
      sequence: p.nums[3 * i] as number,
      hash: p.hashes.subarray(32 * i, 32 * i + 32),
      timestampMs: p.nums[3 * i + 1] as number,
      contentType: p.strings[p.idx[4 * i + 2] as number] as string,
      ledgerId,
      txId,
      asUrls: urls.get(`${ledgerId}\n${txId}`) ?? [],
      record: p.records.subarray(p.offsets[i] as number, p.offsets[i + 1] as number),
    };
  }
  return out;
}

const STATUS_NAMES = ['stored', 'duplicate', 'fork'] as const;

/** The store's writes on a worker thread. */
export class StoreWriter implements RecordSink {
  readonly #opts: StoreOptions;
  #worker: Worker | null = null;
  #ready: Promise<void> | null = null;
  readonly #pending = new Map<number, { resolve: (r: WriterReply) => void; reject: (e: Error) => void }>();
  #next = 1;
  #closed = false;

  private constructor(opts: StoreOptions) {
    this.#opts = opts;
  }

  /** Starts the writer thread; resolves once it has opened (or created) the store file. */
  static async start(opts: StoreOptions): Promise<StoreWriter> {
    const w = new StoreWriter(opts);
    await w.#spawn();
    return w;
  }

  #spawn(): Promise<void> {
    const worker = new Worker(new URL('./writer-worker.ts', import.meta.url), { workerData: this.#opts });
    this.#worker = worker;
    this.#ready = new Promise<void>((resolve, reject) => {
      const onMessage = (m: WriterReply) => {
        if (m.kind === 'ready') {
          resolve();
          return;
        }
        if (m.id === 0 && m.kind === 'error') {
          reject(new DivsError(isErrorCode(m.code) ? m.code : 'STORAGE_FAILED', m.message));
          return;
        }
        const p = this.#pending.get(m.id);
        if (!p) return;
        this.#pending.delete(m.id);
        if (m.kind === 'error') p.reject(new DivsError(isErrorCode(m.code) ? m.code : 'STORAGE_FAILED', m.message));
        else p.resolve(m);
      };
      worker.on('message', onMessage);
      const died = (err: unknown) => {
        // a dead writer fails the groups it held (never acknowledged); the next group starts a new one
        if (this.#worker === worker) {
          this.#worker = null;
          this.#ready = null;
        }
        for (const [id, p] of this.#pending) {
          this.#pending.delete(id);
          p.reject(new DivsError('STORAGE_FAILED', 'the store writer stopped', { cause: err }));
        }
        reject(new DivsError('STORAGE_FAILED', 'the store writer stopped', { cause: err }));
      };
      worker.on('error', died);
      worker.on('exit', (code) => died(new Error(`exit ${code}`)));
    });
    return this.#ready;
  }

  async #call(req: WriterRequest, transfer: ArrayBuffer[]): Promise<WriterReply> {
    if (this.#closed) throw new DivsError('UNAVAILABLE', 'store writer closed');
    if (!this.#ready) await this.#spawn();
    await this.#ready;
    const worker = this.#worker as Worker;
    return new Promise<WriterReply>((resolve, reject) => {
      this.#pending.set(req.id, { resolve, reject });
      worker.postMessage(req, transfer);
    });
  }

  /** Stores a group in one transaction; resolves after the commit, one outcome per item. */
  async append(items: readonly StoreItem[]): Promise<AppendOutcome[]> {
    if (items.length === 0) return [];
    const packed = packItems(items);
    const id = this.#next++;
    const reply = await this.#call({ id, kind: 'append', items: packed, receivedMs: Date.now() }, [
      packed.records.buffer as ArrayBuffer,
      packed.offsets.buffer as ArrayBuffer,
      packed.hashes.buffer as ArrayBuffer,
      packed.nums.buffer as ArrayBuffer,
      packed.idx.buffer as ArrayBuffer,
    ]);
    if (reply.kind !== 'append') throw new DivsError('INTERNAL', 'unexpected writer reply');
    const out: AppendOutcome[] = new Array(items.length);
    let f = 0;
    for (let i = 0; i < items.length; i++) {
      const st = STATUS_NAMES[reply.statuses[i] as number] ?? 'stored';
      if (st === 'fork') {
        out[i] = { status: 'fork', existingHash: reply.forkHashes.slice(32 * f, 32 * f + 32) };
        f++;
      } else out[i] = { status: st };
    }
    return out;
  }

  /** Closes the store (after groups already sent) and stops the thread. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const worker = this.#worker;
    if (worker && this.#ready) {
      try {
        await this.#call({ id: this.#next++, kind: 'close' }, []);
      } catch {
        // already gone: nothing left to close
      }
    }
    this.#closed = true;
    await worker?.terminate();
  }
}
