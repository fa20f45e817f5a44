/**
 * @module ledger/consortium/etcd
 * A small etcd v3 client over etcd's native gRPC API (services `etcdserverpb.KV` and
 * `etcdserverpb.Watch`, with `@grpc/grpc-js` and the ts-proto code of the wire-compatible
 * subset of etcd's API in `proto/etcdserverpb/rpc.proto`). The consortium ledger needs five
 * operations — range, put-if-absent (a compare-and-swap transaction, which can also prune),
 * delete-if-unchanged, compaction and a prefix watch — plus a plain put; this client is those
 * and nothing else, which keeps the AS free of the etcd3 package and its dependencies.
 *
 * Why not etcd's HTTP/JSON gateway (`/v3/kv/*`, `/v3/watch`), which this client used before:
 * the gateway turns every request and response into protobuf and back inside etcd, with block
 * values of ~150 KB in base64. Profiling the consortium benchmark put ~60 % of etcd's CPU in
 * that translation (protojson decoding of block values, JSON encoding of watch events) — more
 * than Raft and the WAL — and the AS nodes spent their own CPU on JSON and base64. Over gRPC a
 * value travels as raw bytes: it is copied once into the request, and a value read back is a
 * view into the received message.
 *
 * Endpoints are the members' client URLs (`http://host:port`, as in the configuration); each
 * gets one gRPC channel to `host:port`, opened on first use and kept. `http://` means plaintext
 * (etcd on loopback or a private network); `https://` means TLS, with the system's root
 * certificates (Node's store, `NODE_EXTRA_CA_CERTS`, or grpc-js's
 * `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH` for a private CA). Client certificates are not supported.
 *
 * Failures: every call has a deadline (`requestTimeoutMs`) over all its attempts, and each
 * attempt its own (`attemptTimeoutMs`, the gRPC deadline). An endpoint that cannot be reached,
 * times out an attempt, or answers UNAVAILABLE (no leader, no quorum), DEADLINE_EXCEEDED or
 * INTERNAL is left for the next one. When no endpoint answers in time the call fails with
 * ORDERING_UNAVAILABLE, whose message says the cluster is unreachable or has lost its quorum.
 * A write whose outcome is unknown (timed out) may still commit later — callers must treat it
 * as "maybe" (the ledger does: it reconciles through the watch).
 */
import * as grpc from '@grpc/grpc-js';
import { DivsError, fail } from '../../../../protocol/src/errors.ts';
import * as pb from '../../../../proto/gen/etcdserverpb/rpc.ts';

/**
 * One key-value pair as etcd stores it. `value` may be a view into the received gRPC message
 * (no copy): a caller that keeps a small value from a large response for long should copy it.
 */
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

/** Where the etcd cluster is and how long calls may take. */
export interface EtcdOptions {
  /**
   * Client URLs of the members, e.g. `http://127.0.0.1:2379`; tried in turn. `https://` uses
   * TLS with the system's root certificates. Without a port, the scheme's (80 or 443).
   */
  endpoints: string[];
  /** Deadline of each call, all retries included (ms). Default 6000. */
  requestTimeoutMs?: number;
  /** Deadline of one attempt on one endpoint (ms). Default 2500. */
  attemptTimeoutMs?: number;
}

/** What {@link EtcdClient.range} reads and how. */
export interface RangeOptions {
  /** Exclusive end of the range (keys ≥ key and < rangeEnd). */
  rangeEnd?: string;
  /** At most this many keys (0 or absent: no limit). */
  limit?: number;
  /** Read from the member's local state, without a quorum round (may be stale). */
  serializable?: boolean;
  /** Keys and revisions only (values come back empty). */
  keysOnly?: boolean;
}

/** The answer of {@link EtcdClient.range}. */
export interface RangeResult {
  kvs: KeyValue[];
  /** Store revision the read was made at. */
  revision: number;
  /** The range holds more keys than `limit` let through. */
  more: boolean;
}

/** The answer of {@link EtcdClient.putIfAbsent}: created, or what was there instead. */
export type PutIfAbsentResult = { created: true; revision: number } | { created: false; existing: KeyValue | undefined; revision: number };

/** Callbacks of {@link EtcdClient.watch}. */
export interface WatchHandlers {
  /** Events of one revision batch, in revision order. Awaited before the next batch. */
  onEvents(events: WatchEvent[], revision: number): void | Promise<void>;
  /** The watch start revision was compacted away: restart from a fresh read. */
  onCompacted(compactRevision: number): void;
  /** A transient problem (logged by the caller); the watch reconnects by itself. */
  onError?(err: DivsError): void;
}

/** A running watch. */
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

// grpc-js refuses messages over 4 MiB by default; etcd here accepts requests up to
// --max-request-bytes (32 MiB in etcd-cluster.ts, set per deployment) and a range of several
// blocks can answer with more. etcd enforces its own request limit (answering "request is too
// large"), so the client sets none of its own: 2 GiB - 1, etcd's Go client default.
const MAX_MESSAGE_BYTES = 2 ** 31 - 1;

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  // a member that comes back is used again within a second (grpc-js would otherwise back
  // off up to 2 minutes after a long outage, failing every call on that endpoint meanwhile)
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  // a member whose host vanished (no FIN, no RST) is noticed within ~15 s while a watch is
  // open; etcd accepts pings every 5 s and more (--grpc-keepalive-min-time)
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
};

/**
 * Status codes after which another member may well answer: etcd's "no leader", "request timed
 * out", "leader changed" (UNAVAILABLE), an attempt's deadline, a broken connection (grpc-js:
 * UNAVAILABLE, INTERNAL, or CANCELLED for a stream the server reset while shutting down — a
 * cancel of our own only comes from close(), which is checked first).
 */
const RETRYABLE = new Set<number>([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.INTERNAL, grpc.status.CANCELLED]);

/** A method of the etcd API, with (de)serializers that do not copy more than they must. */
interface Rpc<Req, Res> {
  path: string;
  serialize(m: Req): Buffer;
  deserialize(b: Buffer): Res;
}

function rpc<Req, Res>(path: string, req: { encode(m: Req): { finish(): Uint8Array } }, res: { decode(b: Uint8Array): Res }): Rpc<Req, Res> {
  return {
    path,
    // the generated serializers copy the encoded message once more into a Buffer (Buffer.from):
    // for a 20 MiB block that is a 20 MiB copy for nothing
    serialize: (m) => {
      const u = req.encode(m).finish();
      return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
    },
    deserialize: (b) => res.decode(b),
  };
}

const RANGE = rpc(pb.KVService.range.path, pb.RangeRequest, pb.RangeResponse);
const PUT = rpc(pb.KVService.put.path, pb.PutRequest, pb.PutResponse);
const TXN = rpc(pb.KVService.txn.path, pb.TxnRequest, pb.TxnResponse);
const COMPACT = rpc(pb.KVService.compact.path, pb.CompactionRequest, pb.CompactionResponse);
const WATCH = rpc(pb.WatchService.watch.path, pb.WatchRequest, pb.WatchResponse);

const EMPTY = new Uint8Array(0);
const NOT_LATIN1 = /[^\u0000-\u00ff]/;

/** The bytes of a key given as a latin1 string (one char per byte); INVALID_ARGUMENT otherwise. */
function keyBytes(what: string, key: unknown): Buffer {
  if (typeof key !== 'string' || key.length === 0) fail('INVALID_ARGUMENT', `etcd: ${what} must be a non-empty string`);
  if (NOT_LATIN1.test(key)) fail('INVALID_ARGUMENT', `etcd: ${what} has a character above U+00FF (keys are byte strings, one char per byte)`);
  return Buffer.from(key, 'latin1');
}

function checkInteger(what: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fail('INVALID_ARGUMENT', `etcd: ${what} must be an integer ≥ ${min}`);
  return v;
}

function checkBytes(what: string, v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array)) fail('INVALID_ARGUMENT', `etcd: ${what} must be a Uint8Array`);
  return v;
}

const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

function toKv(kv: pb.KeyValue | undefined): KeyValue {
  if (kv === undefined) return { key: '', value: EMPTY, createRevision: 0, modRevision: 0, version: 0 };
  const v = kv.value;
  return {
    key: latin1(kv.key),
    // a plain Uint8Array view of the decoder's Buffer slice: no copy, and none of Buffer's
    // different semantics (Buffer#slice does not copy) leaking to callers
    value: v.byteLength === 0 ? EMPTY : new Uint8Array(v.buffer, v.byteOffset, v.byteLength),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
  };
}

function describe(e: unknown): string {
  const s = e as Partial<grpc.ServiceError>;
  if (typeof s.code === 'number') return s.code === grpc.status.DEADLINE_EXCEEDED ? 'timed out' : (s.details ?? s.message ?? `gRPC status ${s.code}`);
  return e instanceof Error ? e.message : String(e);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One member's client URL and its gRPC channel (opened on first use). */
interface Endpoint {
  url: string;
  /** `host:port` for grpc-js. */
  target: string;
  tls: boolean;
  client: grpc.Client | undefined;
}

function parseEndpoint(e: unknown): Endpoint {
  if (typeof e !== 'string' || !/^https?:\/\/[^/\s]+$/.test(e)) fail('CONFIG_INVALID', `etcd: endpoint ${String(e)} must look like http://host:port`);
  let u: URL;
  try {
    u = new URL(e);
  } catch (err) {
    fail('CONFIG_INVALID', `etcd: endpoint ${e} is not a valid URL`, err);
  }
  if (u.username || u.password || u.search || u.hash) fail('CONFIG_INVALID', `etcd: endpoint ${e} must be only scheme, host and port`);
  const tls = u.protocol === 'https:';
  // URL#hostname keeps the brackets of an IPv6 literal, as grpc-js wants them
  return { url: e, target: `${u.hostname}:${u.port || (tls ? '443' : '80')}`, tls, client: undefined };
}

/**
 * The etcd client. Endpoints are tried starting with the last one that worked.
 *
 * @example
 * ```ts
 * const etcd = new EtcdClient({ endpoints: ['http://127.0.0.1:2379'] });
 * const r = await etcd.putIfAbsent('/divs/l/blocks/0000000000000000', bytes);
 * etcd.close();
 * ```
 */
export class EtcdClient {
  /** The members' client URLs, as given. */
  readonly endpoints: string[];
  readonly #endpoints: Endpoint[];
  readonly #timeout: number;
  readonly #attempt: number;
  #preferred = 0;
  #closed = false;
  readonly #calls = new Set<grpc.ClientUnaryCall>();
  /** Stops of the running watches (close() stops them). */
  readonly #watches = new Set<() => void>();

  /** Checks the options (CONFIG_INVALID); connects only when a call needs it. */
  constructor(o: EtcdOptions) {
    if (typeof o !== 'object' || o === null) fail('CONFIG_INVALID', 'etcd: options missing');
    if (!Array.isArray(o.endpoints) || o.endpoints.length === 0) fail('CONFIG_INVALID', 'etcd: at least one endpoint is required');
    this.#endpoints = o.endpoints.map(parseEndpoint);
    this.endpoints = [...o.endpoints];
    for (const [k, v, d] of [
      ['requestTimeoutMs', o.requestTimeoutMs, 6000],
      ['attemptTimeoutMs', o.attemptTimeoutMs, 2500],
    ] as const) {
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) fail('CONFIG_INVALID', `etcd: ${k} must be a positive integer (ms; default ${d})`);
    }
    this.#timeout = o.requestTimeoutMs ?? 6000;
    this.#attempt = o.attemptTimeoutMs ?? 2500;
  }

  /** The gRPC channel of endpoint `idx`, opened on first use. */
  #client(idx: number): grpc.Client {
    const ep = this.#endpoints[idx] as Endpoint;
    ep.client ??= new grpc.Client(ep.target, ep.tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    return ep.client;
  }

  /** One attempt of a unary call on one endpoint, cancelled by close(). */
  #attemptOn<Req, Res>(idx: number, m: Rpc<Req, Res>, req: Req, deadline: number): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      let settled = false;
      const call = this.#client(idx).makeUnaryRequest(m.path, m.serialize, m.deserialize, req, new grpc.Metadata(), { deadline }, (err, res) => {
        settled = true;
        this.#calls.delete(call);
        if (err) reject(err);
        else if (res === undefined) reject(new Error('empty answer'));
        else resolve(res);
      });
      if (!settled) this.#calls.add(call);
    });
  }

  /** Calls `m` on the endpoints in turn until one answers or the deadline passes. */
  async #call<Req, Res>(m: Rpc<Req, Res>, req: Req): Promise<Res> {
    const n = this.#endpoints.length;
    const deadline = Date.now() + this.#timeout;
    let last = 'no attempt';
    for (let i = 0; ; i++) {
      if (this.#closed) fail('ORDERING_UNAVAILABLE', 'etcd client closed');
      const idx = (this.#preferred + i) % n;
      const left = deadline - Date.now();
      if (left <= 0) break;
      try {
        const res = await this.#attemptOn(idx, m, req, Date.now() + Math.min(left, this.#attempt));
        this.#preferred = idx;
        return res;
      } catch (e) {
        if (this.#closed) fail('ORDERING_UNAVAILABLE', 'etcd client closed');
        const code = (e as Partial<grpc.ServiceError>).code;
        const msg = describe(e);
        // a status from etcd itself (not a transport failure another member may not have)
        if (typeof code === 'number' && !RETRYABLE.has(code)) {
          // etcd: "etcdserver: request is too large"; its gRPC server, over --max-request-bytes
          // plus framing: "grpc: received message larger than max"
          if (/request is too large|larger than max/i.test(msg)) fail('MESSAGE_TOO_LARGE', `etcd refused the request: ${msg}`);
          if (/compacted/i.test(msg)) fail('INVALID_RANGE', `etcd: ${msg}`);
          fail('ORDERING_UNAVAILABLE', `etcd refused the request: ${msg}`);
        }
        last = `${(this.#endpoints[idx] as Endpoint).url}: ${msg}`;
        // all members refused at once (e.g. restarting): do not spin
        if ((i + 1) % n === 0) await sleep(Math.min(100, Math.max(0, deadline - Date.now())));
      }
    }
    throw new DivsError('ORDERING_UNAVAILABLE', `the etcd ordering cluster is unreachable or has lost its quorum (no answer within ${this.#timeout} ms; last: ${last})`);
  }

  /** Reads keys [key, rangeEnd) (or exactly `key`), sorted by key. */
  async range(key: string, o: RangeOptions = {}): Promise<RangeResult> {
    const r = await this.#call(RANGE, {
      key: keyBytes('key', key),
      rangeEnd: o.rangeEnd === undefined ? EMPTY : keyBytes('rangeEnd', o.rangeEnd),
      limit: o.limit === undefined ? 0 : checkInteger('limit', o.limit, 0),
      revision: 0,
      sortOrder: pb.RangeRequest_SortOrder.ASCEND,
      sortTarget: pb.RangeRequest_SortTarget.KEY,
      serializable: o.serializable === true,
      keysOnly: o.keysOnly === true,
      countOnly: false,
    });
    return { kvs: r.kvs.map(toKv), revision: r.header?.revision ?? 0, more: r.more };
  }

  /**
   * Creates `key` = `value` only if the key does not exist (compare create_revision = 0), in
   * one transaction with deleting the key ranges `alsoDelete` (e.g. pruning). On a lost race,
   * returns the value that is there. An attempt that timed out and is retried may find its own
   * value: that counts as created.
   */
  async putIfAbsent(key: string, value: Uint8Array, alsoDelete: { key: string; rangeEnd?: string }[] = []): Promise<PutIfAbsentResult> {
    const k = keyBytes('key', key);
    checkBytes('value', value);
    if (!Array.isArray(alsoDelete)) fail('INVALID_ARGUMENT', 'etcd: alsoDelete must be an array');
    const deletes: pb.RequestOp[] = alsoDelete.map((d, i) => ({
      request: {
        $case: 'requestDeleteRange',
        value: { key: keyBytes(`alsoDelete[${i}].key`, d?.key), rangeEnd: d.rangeEnd === undefined ? EMPTY : keyBytes(`alsoDelete[${i}].rangeEnd`, d.rangeEnd), prevKv: false },
      },
    }));
    const r = await this.#call(TXN, {
      compare: [{ result: pb.Compare_CompareResult.EQUAL, target: pb.Compare_CompareTarget.CREATE, key: k, targetUnion: { $case: 'createRevision', value: 0 }, rangeEnd: EMPTY }],
      success: [{ request: { $case: 'requestPut', value: { key: k, value, lease: '0', prevKv: false } } }, ...deletes],
      failure: [{ request: { $case: 'requestRange', value: rangeOf(k) } }],
    });
    const revision = r.header?.revision ?? 0;
    if (r.succeeded) return { created: true, revision };
    const first = r.responses[0]?.response;
    const found = first?.$case === 'responseRange' ? first.value.kvs[0] : undefined;
    const existing = found === undefined ? undefined : toKv(found);
    if (existing && Buffer.compare(existing.value, value) === 0) return { created: true, revision: existing.modRevision };
    return { created: false, existing, revision };
  }

  /** Unconditional put (cosignatures). Resolves with the store revision of the put. */
  async put(key: string, value: Uint8Array): Promise<number> {
    const r = await this.#call(PUT, { key: keyBytes('key', key), value: checkBytes('value', value), lease: '0', prevKv: false });
    return r.header?.revision ?? 0;
  }

  /** Deletes `key` only if it was last modified at `modRevision`; true when it did. */
  async deleteIfUnchanged(key: string, modRevision: number): Promise<boolean> {
    const k = keyBytes('key', key);
    const r = await this.#call(TXN, {
      compare: [{ result: pb.Compare_CompareResult.EQUAL, target: pb.Compare_CompareTarget.MOD, key: k, targetUnion: { $case: 'modRevision', value: checkInteger('modRevision', modRevision, 1) }, rangeEnd: EMPTY }],
      success: [{ request: { $case: 'requestDeleteRange', value: { key: k, rangeEnd: EMPTY, prevKv: false } } }],
      failure: [],
    });
    return r.succeeded;
  }

  /**
   * Compacts the store's history up to `revision` (old revisions of keys can no longer be read
   * or watched); resolves once the compaction is applied. A revision already compacted is
   * INVALID_RANGE.
   */
  async compact(revision: number): Promise<void> {
    await this.#call(COMPACT, { revision: checkInteger('revision', revision, 1), physical: true });
  }

  /** Current store revision. */
  async revision(): Promise<number> {
    return (await this.range('\0', { limit: 1, keysOnly: true })).revision;
  }

  /**
   * Watches every key under `prefix` from `fromRevision` (0: from now), reconnecting to the
   * next endpoint when a stream breaks (resuming after the last revision delivered).
   * `onCompacted` ends the watch: the caller restarts from a fresh read. Events arrive in
   * revision order; the next batch is read only once `onEvents` has settled (a batch whose
   * handler throws is reported through `onError` and delivered again after reconnecting).
   */
  watch(prefix: string, fromRevision: number, h: WatchHandlers): Watch {
    const key = keyBytes('prefix', prefix);
    const rangeEnd = Buffer.from(prefixEnd(prefix), 'latin1');
    checkInteger('fromRevision', fromRevision, 0);
    if (typeof h?.onEvents !== 'function' || typeof h.onCompacted !== 'function') fail('INVALID_ARGUMENT', 'etcd: watch handlers need onEvents and onCompacted');
    let stopped = false;
    let call: grpc.ClientDuplexStream<pb.WatchRequest, pb.WatchResponse> | undefined;
    let wake: (() => void) | undefined;
    let next = fromRevision;
    const stop = (): void => {
      stopped = true;
      call?.cancel();
      wake?.();
    };
    // a pause between reconnections that stop() cuts short
    const pause = (ms: number): Promise<void> =>
      new Promise<void>((r) => {
        const t = setTimeout(r, ms);
        wake = () => {
          clearTimeout(t);
          r();
        };
      }).finally(() => (wake = undefined));
    // with "hasleader", etcd ends the stream (UNAVAILABLE, "no leader") once its member has been
    // cut off from the leader for a while, instead of keeping a watch that can see nothing
    // new: the watch moves to another member (as etcd's own client does)
    const md = new grpc.Metadata();
    md.set('hasleader', 'true');
    const run = async (): Promise<void> => {
      let failures = 0;
      while (!stopped && !this.#closed) {
        const idx = this.#preferred % this.#endpoints.length;
        try {
          const c = this.#client(idx).makeBidiStreamRequest(WATCH.path, WATCH.serialize, WATCH.deserialize, md);
          call = c;
          // errors reach the loop below through the iteration; this listener keeps one that
          // arrives after the loop let go of the stream (e.g. the cancel in finally) from
          // becoming an unhandled 'error' event
          c.on('error', () => {});
          c.write({
            requestUnion: {
              $case: 'createRequest',
              value: { key, rangeEnd, startRevision: next, progressNotify: true, filters: [], prevKv: false, watchId: 0, fragment: false },
            },
          });
          // async iteration reads one message at a time: while onEvents runs, grpc-js stops
          // reading (a few messages buffered), HTTP/2 flow control holds etcd back, and etcd
          // keeps the rest for this watcher — backpressure end to end, nothing dropped
          for await (const msg of c as AsyncIterable<pb.WatchResponse>) {
            failures = 0;
            if (msg.compactRevision > 0) {
              stopped = true;
              h.onCompacted(msg.compactRevision);
              return;
            }
            if (msg.canceled) throw new Error(`etcd canceled the watch${msg.cancelReason ? `: ${msg.cancelReason}` : ''}`);
            if (msg.events.length === 0) continue; // the created answer, progress notifications
            const events = msg.events.map((ev): WatchEvent => ({ type: ev.type === pb.Event_EventType.DELETE ? 'delete' : 'put', kv: toKv(ev.kv) }));
            await h.onEvents(events, msg.header?.revision ?? 0);
            for (const e of events) next = Math.max(next, e.kv.modRevision + 1);
          }
          throw new Error('watch stream ended');
        } catch (e) {
          if (stopped || this.#closed) return;
          failures++;
          this.#preferred = (idx + 1) % this.#endpoints.length;
          h.onError?.(new DivsError('ORDERING_UNAVAILABLE', `etcd watch on ${(this.#endpoints[idx] as Endpoint).url}: ${describe(e)}`, { cause: e }));
          await pause(Math.min(1000, 50 * failures));
        } finally {
          call?.cancel();
          call = undefined;
        }
      }
    };
    this.#watches.add(stop);
    const done = run().finally(() => this.#watches.delete(stop));
    return { close: stop, done };
  }

  /** Cancels every call and watch in flight, closes the channels and refuses new calls (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#calls) c.cancel();
    this.#calls.clear();
    for (const stop of this.#watches) stop();
    for (const ep of this.#endpoints) {
      ep.client?.close();
      ep.client = undefined;
    }
  }
}

/** A range request for exactly `key`. */
function rangeOf(key: Uint8Array): pb.RangeRequest {
  return { key, rangeEnd: EMPTY, limit: 0, revision: 0, sortOrder: pb.RangeRequest_SortOrder.NONE, sortTarget: pb.RangeRequest_SortTarget.KEY, serializable: false, keysOnly: false, countOnly: false };
}
