/**
 * @module ledger/consortium/etcd
 * A small etcd v3 client over etcd's gRPC gateway (HTTP/JSON, `/v3/kv/*`, `/v3/watch`), using
 * only node's `fetch`: the consortium ledger needs five operations — range, put-if-absent
 * (a compare-and-swap transaction), delete-if-unchanged, compaction and a prefix watch — and
 * this keeps the AS free of a second gRPC stack and of the etcd3 package's older
 * dependencies. Block values are a few hundred KiB at most, so JSON/base64 costs little next
 * to Raft's fsyncs.
 *
 * Failures: every call has a deadline (`requestTimeoutMs`); an endpoint that refuses the
 * connection, times out an attempt, or answers "unavailable" (no leader, no quorum) is left
 * for the next one. When no endpoint answers in time the call fails with
 * ORDERING_UNAVAILABLE, whose message says the cluster is unreachable or has lost its
 * quorum. A write whose outcome is unknown (timed out) may still commit later — callers must
 * treat it as "maybe" (the ledger does: it reconciles through the watch).
 */
import { DivsError, fail } from '../../../../protocol/src/errors.ts';

/** One key-value pair as etcd stores it. */
export interface KeyValue {
  key: string;
  value: Uint8Array;
  createRevision: number;
  modRevision: number;
  version: number;
}

/** A watch event: a put (with its value) or a delete. */
export interface WatchEvent {
  type: 'put' | 'delete';
  kv: KeyValue;
}

export interface EtcdOptions {
  /** Client URLs of the members, e.g. `http://127.0.0.1:2379`; tried in turn. */
  endpoints: string[];
  /** Deadline of each call, all retries included (ms). Default 6000. */
  requestTimeoutMs?: number;
  /** Deadline of one attempt on one endpoint (ms). Default 2500. */
  attemptTimeoutMs?: number;
}

export interface RangeOptions {
  /** Exclusive end of the range (keys ≥ key and < rangeEnd). */
  rangeEnd?: string;
  limit?: number;
  /** Read from the member's local state, without a quorum round (may be stale). */
  serializable?: boolean;
  keysOnly?: boolean;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** Store revision the read was made at. */
  revision: number;
  more: boolean;
}

export type PutIfAbsentResult = { created: true; revision: number } | { created: false; existing: KeyValue | undefined; revision: number };

export interface WatchHandlers {
  /** Events of one revision batch, in revision order. Awaited before the next batch. */
  onEvents(events: WatchEvent[], revision: number): void | Promise<void>;
  /** The watch start revision was compacted away: restart from a fresh read. */
  onCompacted(compactRevision: number): void;
  /** A transient problem (logged by the caller); the watch reconnects by itself. */
  onError?(err: DivsError): void;
}

export interface Watch {
  /** Stops the watch (idempotent). */
  close(): void;
  /** Resolves once the watch has stopped. */
  readonly done: Promise<void>;
}

/** etcd's smallest key greater than every key starting with `prefix` (keys are byte strings, one char per byte). */
export function prefixEnd(prefix: string): string {
  const b = Buffer.from(prefix, 'latin1');
  for (let i = b.length - 1; i >= 0; i--) {
    if ((b[i] as number) < 0xff) {
      const out = Buffer.from(b.subarray(0, i + 1));
      out[i] = (out[i] as number) + 1;
      return out.toString('latin1');
    }
  }
  return '\0';
}

const b64 = (s: string): string => Buffer.from(s, 'latin1').toString('base64');
const b64bytes = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

type Json = Record<string, unknown>;

function num(v: unknown): number {
  if (v === undefined || v === null) return 0;
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isSafeInteger(n) ? n : 0;
}

function parseKv(raw: unknown): KeyValue {
  const o = (raw ?? {}) as Json;
  return {
    key: Buffer.from(String(o.key ?? ''), 'base64').toString('latin1'),
    value: new Uint8Array(Buffer.from(String(o.value ?? ''), 'base64')),
    createRevision: num(o.create_revision),
    modRevision: num(o.mod_revision),
    version: num(o.version),
  };
}

/** An attempt failed in a way another endpoint may not: try the next one. */
class Retryable extends Error {}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The etcd client. Endpoints are tried starting with the last one that worked.
 *
 * @example
 * ```ts
 * const etcd = new EtcdClient({ endpoints: ['http://127.0.0.1:2379'] });
 * const r = await etcd.putIfAbsent('/divs/l/blocks/0000000000000000', bytes);
 * ```
 */
export class EtcdClient {
  readonly endpoints: string[];
  readonly #timeout: number;
  readonly #attempt: number;
  #preferred = 0;
  #closed = false;
  readonly #aborts = new Set<AbortController>();

  constructor(o: EtcdOptions) {
    if (!Array.isArray(o.endpoints) || o.endpoints.length === 0) fail('CONFIG_INVALID', 'etcd: at least one endpoint is required');
    for (const e of o.endpoints) {
      if (typeof e !== 'string' || !/^https?:\/\/[^/\s]+$/.test(e)) fail('CONFIG_INVALID', `etcd: endpoint ${String(e)} must look like http://host:port`);
    }
    this.endpoints = [...o.endpoints];
    this.#timeout = o.requestTimeoutMs ?? 6000;
    this.#attempt = o.attemptTimeoutMs ?? 2500;
  }

  /** POSTs `body` to `path` on the endpoints in turn until one answers or the deadline passes. */
  async #call(path: string, body: Json): Promise<Json> {
    if (this.#closed) fail('ORDERING_UNAVAILABLE', 'etcd client closed');
    const deadline = Date.now() + this.#timeout;
    let last = 'no attempt';
    for (let i = 0; ; i++) {
      const idx = (this.#preferred + i) % this.endpoints.length;
      const url = `${this.endpoints[idx] as string}${path}`;
      const left = deadline - Date.now();
      if (left <= 0) break;
      const ac = new AbortController();
      this.#aborts.add(ac);
      const timer = setTimeout(() => ac.abort(), Math.min(left, this.#attempt));
      try {
        const res = await fetch(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, signal: ac.signal });
        const text = await res.text();
        let json: Json;
        try {
          json = JSON.parse(text) as Json;
        } catch {
          throw new Retryable(`${url}: HTTP ${res.status}, not JSON`);
        }
        if (!res.ok || typeof json.error === 'string' || (typeof json.code === 'number' && json.code !== 0)) {
          const msg = String(json.message ?? json.error ?? `HTTP ${res.status}`);
          const code = num(json.code);
          // 14 UNAVAILABLE (no leader), 4 DEADLINE_EXCEEDED (request timed out), 13 INTERNAL: another member may do
          if (code === 14 || code === 4 || code === 13 || res.status >= 500) throw new Retryable(`${url}: ${msg}`);
          if (/too large/i.test(msg)) fail('MESSAGE_TOO_LARGE', `etcd refused the request: ${msg}`);
          if (/compacted/i.test(msg)) fail('INVALID_RANGE', `etcd: ${msg}`);
          fail('ORDERING_UNAVAILABLE', `etcd refused the request: ${msg}`);
        }
        this.#preferred = idx;
        return json;
      } catch (e) {
        if (e instanceof DivsError) throw e;
        last = e instanceof Retryable ? e.message : `${url}: ${ac.signal.aborted ? 'timed out' : (e as Error).message}`;
        if (this.#closed) fail('ORDERING_UNAVAILABLE', 'etcd client closed');
        // all members refused at once (e.g. restarting): do not spin
        if ((i + 1) % this.endpoints.length === 0) await sleep(Math.min(100, Math.max(0, deadline - Date.now())));
      } finally {
        clearTimeout(timer);
        this.#aborts.delete(ac);
      }
    }
    throw new DivsError('ORDERING_UNAVAILABLE', `the etcd ordering cluster is unreachable or has lost its quorum (no answer within ${this.#timeout} ms; last: ${last})`);
  }

  /** Reads keys [key, rangeEnd) (or exactly `key`), sorted by key. */
  async range(key: string, o: RangeOptions = {}): Promise<RangeResult> {
    const body: Json = { key: b64(key), sort_order: 'ASCEND', sort_target: 'KEY' };
    if (o.rangeEnd !== undefined) body.range_end = b64(o.rangeEnd);
    if (o.limit !== undefined) body.limit = String(o.limit);
    if (o.serializable) body.serializable = true;
    if (o.keysOnly) body.keys_only = true;
    const r = await this.#call('/v3/kv/range', body);
    return { kvs: ((r.kvs as unknown[]) ?? []).map(parseKv), revision: num((r.header as Json | undefined)?.revision), more: r.more === true };
  }

  /**
   * Creates `key` = `value` only if the key does not exist (compare create_revision = 0), in
   * one transaction with deleting the key ranges `alsoDelete` (e.g. pruning). On a lost race,
   * returns the value that is there. An attempt that timed out and is retried may find its own
   * value: that counts as created.
   */
  async putIfAbsent(key: string, value: Uint8Array, alsoDelete: { key: string; rangeEnd?: string }[] = []): Promise<PutIfAbsentResult> {
    const k = b64(key);
    const body: Json = {
      compare: [{ key: k, target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
      success: [
        { request_put: { key: k, value: b64bytes(value) } },
        ...alsoDelete.map((d) => ({ request_delete_range: d.rangeEnd === undefined ? { key: b64(d.key) } : { key: b64(d.key), range_end: b64(d.rangeEnd) } })),
      ],
      failure: [{ request_range: { key: k } }],
    };
    const r = await this.#call('/v3/kv/txn', body);
    const revision = num((r.header as Json | undefined)?.revision);
    if (r.succeeded === true) return { created: true, revision };
    const range = (((r.responses as Json[] | undefined) ?? [])[0]?.response_range ?? {}) as Json;
    const existing = ((range.kvs as unknown[]) ?? []).map(parseKv)[0];
    if (existing && Buffer.compare(existing.value, value) === 0) return { created: true, revision: existing.modRevision };
    return { created: false, existing, revision };
  }

  /** Unconditional put (cosignatures). */
  async put(key: string, value: Uint8Array): Promise<number> {
    const r = await this.#call('/v3/kv/put', { key: b64(key), value: b64bytes(value) });
    return num((r.header as Json | undefined)?.revision);
  }

  /** Deletes `key` only if it was last modified at `modRevision`; true when it did. */
  async deleteIfUnchanged(key: string, modRevision: number): Promise<boolean> {
    const k = b64(key);
    const r = await this.#call('/v3/kv/txn', {
      compare: [{ key: k, target: 'MOD', result: 'EQUAL', mod_revision: String(modRevision) }],
      success: [{ request_delete_range: { key: k } }],
      failure: [],
    });
    return r.succeeded === true;
  }

  /** Compacts the store's history up to `revision` (old revisions of keys can no longer be read or watched). */
  async compact(revision: number): Promise<void> {
    await this.#call('/v3/kv/compaction', { revision: String(revision), physical: true });
  }

  /** Current store revision. */
  async revision(): Promise<number> {
    return (await this.range('\0', { limit: 1, keysOnly: true })).revision;
  }

  /**
   * Watches every key under `prefix` from `fromRevision`, reconnecting to the next endpoint
   * when a stream breaks (resuming after the last revision delivered). `onCompacted` ends the
   * watch: the caller restarts from a fresh read.
   */
  watch(prefix: string, fromRevision: number, h: WatchHandlers): Watch {
    let stopped = false;
    let current: AbortController | undefined;
    let next = fromRevision;
    const body = (rev: number): string =>
      JSON.stringify({ create_request: { key: b64(prefix), range_end: b64(prefixEnd(prefix)), start_revision: String(rev), progress_notify: true } });
    const run = async (): Promise<void> => {
      let failures = 0;
      while (!stopped && !this.#closed) {
        const idx = this.#preferred % this.endpoints.length;
        const ac = new AbortController();
        current = ac;
        this.#aborts.add(ac);
        try {
          const res = await fetch(`${this.endpoints[idx] as string}/v3/watch`, { method: 'POST', body: body(next), headers: { 'content-type': 'application/json' }, signal: ac.signal });
          if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
          const reader = res.body.getReader();
          const dec = new TextDecoder();
          // one message per line; a block's line spans many chunks: keep the pieces and scan
          // only new text for the newline (appending and rescanning would be quadratic)
          const pieces: string[] = [];
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            let chunk = dec.decode(value, { stream: true });
            let nl: number;
            while ((nl = chunk.indexOf('\n')) >= 0) {
              pieces.push(chunk.slice(0, nl));
              chunk = chunk.slice(nl + 1);
              const line = pieces.join('').trim();
              pieces.length = 0;
              if (line.length === 0) continue;
              const msg = JSON.parse(line) as Json;
              if (msg.error) throw new Error(String((msg.error as Json).message ?? JSON.stringify(msg.error)));
              const result = (msg.result ?? {}) as Json;
              const compacted = num(result.compact_revision);
              if (compacted > 0) {
                stopped = true;
                h.onCompacted(compacted);
                return;
              }
              if (result.canceled === true) throw new Error(String(result.cancel_reason ?? 'watch canceled'));
              const events = ((result.events as Json[] | undefined) ?? []).map((ev) => ({ type: ev.type === 'DELETE' ? 'delete' : 'put', kv: parseKv(ev.kv) }) as WatchEvent);
              const rev = num((result.header as Json | undefined)?.revision);
              failures = 0;
              if (events.length > 0) {
                await h.onEvents(events, rev);
                next = Math.max(next, ...events.map((e) => e.kv.modRevision + 1));
              }
            }
            if (chunk.length > 0) pieces.push(chunk);
          }
          throw new Error('watch stream ended');
        } catch (e) {
          if (stopped || this.#closed) return;
          failures++;
          this.#preferred = idx + 1;
          h.onError?.(new DivsError('ORDERING_UNAVAILABLE', `etcd watch on ${this.endpoints[idx] as string}: ${(e as Error).message}`, { cause: e }));
          await sleep(Math.min(1000, 50 * failures));
        } finally {
          this.#aborts.delete(ac);
        }
      }
    };
    const done = run();
    return {
      close: () => {
        stopped = true;
        current?.abort();
      },
      done,
    };
  }

  /** Aborts every call in flight and refuses new ones. */
  close(): void {
    this.#closed = true;
    for (const ac of this.#aborts) ac.abort();
    this.#aborts.clear();
  }
}
