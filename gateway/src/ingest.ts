/**
 * @module ingest
 * UE record intake [E2E-2] [VER-1], shared by the gRPC and HTTP adapters:
 *
 * 1. {@link decodeIngestRequest} reads an IngestRequest without copying records (each record
 *    stays the exact SignedRecord bytes received);
 * 2. {@link RecordParser} checks each record's structure — SignedRecord and RecordBody decode,
 *    a valid UE identity, sequence ≥ 1, 32-byte previous hash, a media type, an endorsement
 *    reference (tx ID + entry address), a well-formed batch proof — and computes the record
 *    hash; a bad record gets a coded rejection, the others go on. Signatures are not checked
 *    here: that needs the endorsement, which is the verification engine's job;
 * 3. {@link IngestWriter} commits records of all concurrent senders in groups (one transaction,
 *    one fsync per group) and resolves each frame only after its records are durable — the
 *    moment its acks may be sent.
 */
import { IngestResponse, AckStatus, type RecordAck } from '../../proto/gen/divs/v1/gateway.ts';
import { UeIdentity, EntryAddress } from '../../proto/gen/divs/v1/common.ts';
import { DivsError, fail, type ErrorCode } from '../../protocol/src/errors.ts';
import { validateUeIdentity } from '../../protocol/src/identity.ts';
import { ueKeyOf, type AppendOutcome, type StoreItem } from './store.ts';
import type { RecordSink } from './writer.ts';
import { Sha256Many } from '../../protocol/src/sha256x4.ts';
import { RecordFields, scanBody, scanSignedRecord } from './verify/wire.ts';

/** An IngestRequest with its records as exact SignedRecord bytes (views into the message). */
export interface RawIngestRequest {
  channel: string;
  frameId: number;
  records: Uint8Array[];
}

/** Limits on what a sender may hand the gateway. */
export interface IngestLimits {
  /** Largest SignedRecord (bytes); default 1 MiB + 64 KiB. */
  maxRecordBytes: number;
  /** Most records in one frame; default 10 000. */
  maxFrameRecords: number;
}

export const DEFAULT_LIMITS: IngestLimits = { maxRecordBytes: 1024 * 1024 + 64 * 1024, maxFrameRecords: 10_000 };

const CHANNEL = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;
const CONTENT_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;.*)?$/;
const MAX_AS_URLS = 8;

/** Checks a channel name (empty means "default"); INVALID_ARGUMENT otherwise. */
export function checkChannel(name: string): string {
  const c = name === '' ? 'default' : name;
  if (!CHANNEL.test(c)) fail('INVALID_ARGUMENT', 'channel: 1-128 characters of A-Z a-z 0-9 . _ : / -, starting alphanumeric');
  return c;
}

// ---------------------------------------------------------------- zero-copy request decoding

function varint(b: Uint8Array, p: { pos: number }, end: number): number {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (p.pos >= end) fail('MALFORMED_MESSAGE', 'ingest request: truncated varint');
    const x = b[p.pos++] as number;
    v += (x & 0x7f) * mul;
    if (x < 0x80) {
      if (!Number.isSafeInteger(v)) fail('MALFORMED_MESSAGE', 'ingest request: number out of range');
      return v;
    }
    mul *= 128;
  }
  fail('MALFORMED_MESSAGE', 'ingest request: varint too long');
}

/**
 * Decodes IngestRequest bytes (channel = 1, records = 2, frame_id = 3), keeping records as views
 * of `buf`. MALFORMED_MESSAGE on anything that is not one.
 */
export function decodeIngestRequest(buf: Uint8Array): RawIngestRequest {
  const p = { pos: 0 };
  const end = buf.length;
  let channel = '';
  let frameId = 0;
  const records: Uint8Array[] = [];
  while (p.pos < end) {
    const tag = varint(buf, p, end);
    const wt = tag % 8;
    const field = Math.floor(tag / 8);
    if (field === 0) fail('MALFORMED_MESSAGE', 'ingest request: field number 0');
    if (wt === 0) {
      const v = varint(buf, p, end);
      if (field === 3) frameId = v;
      continue;
    }
    if (wt === 2) {
      const n = varint(buf, p, end);
      if (n > end - p.pos) fail('MALFORMED_MESSAGE', 'ingest request: length beyond the message');
      const sub = buf.subarray(p.pos, p.pos + n);
      p.pos += n;
      if (field === 1) channel = Buffer.from(sub.buffer, sub.byteOffset, sub.byteLength).toString('utf8');
      else if (field === 2) records.push(sub);
      continue;
    }
    if (wt === 1) p.pos += 8;
    else if (wt === 5) p.pos += 4;
    else fail('MALFORMED_MESSAGE', `ingest request: wire type ${wt} not allowed`);
    if (p.pos > end) fail('MALFORMED_MESSAGE', 'ingest request: truncated');
  }
  return { channel, frameId, records };
}

/** Encodes IngestRequest bytes from raw records (clients, tests). */
export function encodeIngestRequest(req: { channel?: string; frameId?: number; records: readonly Uint8Array[] }): Uint8Array {
  const parts: Uint8Array[] = [];
  const te = new TextEncoder();
  const uvar = (n: number): number[] => {
    const out: number[] = [];
    while (n > 127) {
      out.push((n % 128) | 0x80);
      n = Math.floor(n / 128);
    }
    out.push(n);
    return out;
  };
  if (req.channel) {
    const c = te.encode(req.channel);
    parts.push(new Uint8Array([10, ...uvar(c.length)]), c);
  }
  for (const r of req.records) parts.push(new Uint8Array([18, ...uvar(r.length)]), r);
  if (req.frameId) parts.push(new Uint8Array([24, ...uvar(req.frameId)]));
  return Buffer.concat(parts);
}

/**
 * Encodes an IngestResponse exactly as the generated encoder does (default values omitted),
 * without building a writer per ack: thousands of acks per second go through here.
 */
export function encodeIngestResponse(res: IngestResponse): Uint8Array {
  const acks = res.acks;
  // sizes first: fields of each ack, then its length prefix
  const sizes = new Int32Array(acks.length);
  let total = res.frameId !== 0 ? 1 + varintSize(res.frameId) : 0;
  for (let i = 0; i < acks.length; i++) {
    const a = acks[i] as RecordAck;
    let n = 0;
    if (a.status !== 0) n += 1 + varintSize(a.status);
    if (a.sequence !== 0) n += 1 + varintSize(a.sequence);
    if (a.recordHash.length > 0) n += 1 + varintSize(a.recordHash.length) + a.recordHash.length;
    if (a.errorCode !== '') {
      const l = Buffer.byteLength(a.errorCode);
      n += 1 + varintSize(l) + l;
    }
    if (a.errorMessage !== '') {
      const l = Buffer.byteLength(a.errorMessage);
      n += 1 + varintSize(l) + l;
    }
    sizes[i] = n;
    total += 1 + varintSize(n) + n;
  }
  const out = Buffer.allocUnsafe(total);
  let p = 0;
  const uvar = (v: number) => {
    while (v > 127) {
      out[p++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    out[p++] = v;
  };
  if (res.frameId !== 0) {
    out[p++] = 8;
    uvar(res.frameId);
  }
  for (let i = 0; i < acks.length; i++) {
    const a = acks[i] as RecordAck;
    out[p++] = 18;
    uvar(sizes[i] as number);
    if (a.status !== 0) {
      out[p++] = 8;
      uvar(a.status);
    }
    if (a.sequence !== 0) {
      out[p++] = 16;
      uvar(a.sequence);
    }
    if (a.recordHash.length > 0) {
      out[p++] = 26;
      uvar(a.recordHash.length);
      out.set(a.recordHash, p);
      p += a.recordHash.length;
    }
    if (a.errorCode !== '') {
      out[p++] = 34;
      uvar(Buffer.byteLength(a.errorCode));
      p += out.write(a.errorCode, p);
    }
    if (a.errorMessage !== '') {
      out[p++] = 42;
      uvar(Buffer.byteLength(a.errorMessage));
      p += out.write(a.errorMessage, p);
    }
  }
  return out;
}

function varintSize(v: number): number {
  let n = 1;
  while (v > 127) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

// ---------------------------------------------------------------- record checks

/** Outcome of checking one record. */
export type Parsed = { ok: true; item: StoreItem } | { ok: false; code: ErrorCode; message: string; sequence: number; hash: Uint8Array | null };

const CACHE_MAX = 100_000;

/**
 * Bounded memo from field bytes to their checked value: cleared when full (keys repeat heavily:
 * a few identities, media types, AS URLs). The last bytes seen are kept too, compared without
 * building a string: consecutive records of one UE hit that.
 */
class Memo<V> {
  readonly #m = new Map<string, V>();
  #last = new Uint8Array(0);
  #lastValue: V | undefined;

  get(b: Uint8Array, off: number, len: number, make: () => V): V {
    const last = this.#last;
    if (this.#lastValue !== undefined && last.length === len) {
      let same = true;
      for (let i = 0; i < len; i++) {
        if (last[i] !== b[off + i]) {
          same = false;
          break;
        }
      }
      if (same) return this.#lastValue;
    }
    const k = len === 0 ? '' : Buffer.from(b.buffer, b.byteOffset + off, len).toString('latin1');
    let v = this.#m.get(k);
    if (v === undefined) {
      v = make();
      if (this.#m.size >= CACHE_MAX) this.#m.clear();
      this.#m.set(k, v);
    }
    this.#last = b.slice(off, off + len);
    this.#lastValue = v;
    return v;
  }
}

type IdentityResult = { ok: true; identity: UeIdentity; key: string } | { ok: false; code: ErrorCode; message: string };
type TextResult = { ok: true; value: string } | { ok: false; message: string };

const utf8At = (b: Uint8Array, off: number, len: number): string => Buffer.from(b.buffer, b.byteOffset + off, len).toString('utf8');

/** Checks records for ingest; keeps memos of identities, media types and entry addresses. */
export class RecordParser {
  readonly #f = new RecordFields();
  readonly #hasher: Sha256Many;
  readonly #limits: IngestLimits;
  readonly #ids = new Memo<IdentityResult>();
  readonly #types = new Memo<TextResult>();
  readonly #ledgers = new Memo<string>();
  readonly #entries = new Memo<{ ok: true; urls: string[] } | { ok: false; message: string }>();

  constructor(limits: Partial<IngestLimits> = {}, hasher: Sha256Many = Sha256Many.create()) {
    this.#limits = { ...DEFAULT_LIMITS, ...limits };
    this.#hasher = hasher;
  }

  get limits(): IngestLimits {
    return this.#limits;
  }

  /** Checks the records of one frame; one result per record, in order. */
  parse(channel: string, records: readonly Uint8Array[]): Parsed[] {
    const out: Parsed[] = new Array(records.length);
    const h = this.#hasher;
    h.reset();
    const slots = new Int32Array(records.length).fill(-1);
    const f = this.#f;
    for (let i = 0; i < records.length; i++) {
      const rec = records[i] as Uint8Array;
      const r = this.#check(channel, rec, f);
      out[i] = r;
      if (r.ok || r.hash !== null) {
        // hash the body in the batch below (the arena copy keeps `rec` untouched)
        const at = h.write(rec.subarray(f.bodyOff, f.bodyOff + f.bodyLen));
        slots[i] = h.job(-1, at, f.bodyLen);
      }
    }
    h.run();
    const mem = h.bytes;
    for (let i = 0; i < records.length; i++) {
      const at = slots[i] as number;
      if (at < 0) continue;
      const hash = mem.slice(at, at + 32);
      const r = out[i] as Parsed;
      if (r.ok) r.item.hash = hash;
      else r.hash = hash;
    }
    h.reset();
    return out;
  }

  #check(channel: string, rec: Uint8Array, f: RecordFields): Parsed {
    const bad = (code: ErrorCode, message: string, seq = 0, hashable = false): Parsed => ({ ok: false, code, message, sequence: seq, hash: hashable ? new Uint8Array(0) : null });
    if (rec.length > this.#limits.maxRecordBytes) return bad('MESSAGE_TOO_LARGE', `record of ${rec.length} bytes exceeds ${this.#limits.maxRecordBytes}`);
    if (!scanSignedRecord(rec, 0, rec.length, f)) return bad('MALFORMED_MESSAGE', 'record does not decode as SignedRecord');
    if (f.bodyOff < 0 || f.bodyLen === 0) return bad('MISSING_FIELD', 'record.body: missing');
    if (f.sigOff < 0 || f.sigLen === 0) return bad('MISSING_FIELD', 'record.signature: missing');
    if (f.sigLen > 512) return bad('INVALID_ARGUMENT', 'record.signature: longer than 512 bytes');
    const batch = f.batch;
    if (batch && (!f.pathHashes || f.pathCount > 32 || f.batchSize < 1 || f.batchSize > 2 ** 32 || f.batchIndex >= f.batchSize || f.rootLen !== 32)) {
      return bad('MALFORMED_MESSAGE', 'record.batch: not a well-formed batch proof (index < size <= 2^32, 32-byte root and path hashes)');
    }
    if (!scanBody(rec, f.bodyOff, f.bodyLen, f)) return bad('MALFORMED_MESSAGE', 'record.body does not decode as RecordBody');
    const seq = f.sequence;
    // from here on the body decodes: rejections carry its hash and sequence
    if (seq < 1) return bad('INVALID_ARGUMENT', 'record.body.sequence: must be >= 1', seq, true);
    if (f.prevLen !== 32) return bad('MALFORMED_MESSAGE', 'record.body.previous_hash: must be 32 bytes', seq, true);
    if (f.timestampMs < 0) return bad('INVALID_ARGUMENT', 'record.body.timestamp_ms: must be >= 0', seq, true);
    if (f.identityOff < 0) return bad('IDENTITY_INCOMPLETE', 'record.body.identity: missing', seq, true);
    const id = this.#ids.get(rec, f.identityOff, f.identityLen, () => identityOf(rec.subarray(f.identityOff, f.identityOff + f.identityLen)));
    if (!id.ok) return bad(id.code, id.message, seq, true);
    const type = this.#types.get(rec, Math.max(0, f.contentTypeOff), f.contentTypeOff < 0 ? 0 : f.contentTypeLen, () => contentTypeOf(rec, f.contentTypeOff, f.contentTypeLen));
    if (!type.ok) return bad('INVALID_ARGUMENT', type.message, seq, true);
    if (!f.hasTx) return bad('MISSING_FIELD', 'record.body.endorsement: the record names no endorsement (tx ID + entry address)', seq, true);
    if (f.txHashLen !== 0 && f.txHashLen !== 32) return bad('INVALID_ARGUMENT', 'record.body.endorsement.tx_hash: must be 32 bytes', seq, true);
    if (f.ledgerOff < 0 || f.ledgerLen === 0) return bad('MISSING_FIELD', 'record.body.endorsement.entry_address.ledger_id: missing', seq, true);
    if (f.ledgerLen > 128) return bad('INVALID_ARGUMENT', 'record.body.endorsement.entry_address.ledger_id: too long', seq, true);
    const ledgerId = this.#ledgers.get(rec, f.ledgerOff, f.ledgerLen, () => utf8At(rec, f.ledgerOff, f.ledgerLen));
    const entry = this.#entries.get(rec, f.entryOff, f.entryLen, () => entryUrls(rec.subarray(f.entryOff, f.entryOff + f.entryLen)));
    if (!entry.ok) return bad('INVALID_ARGUMENT', entry.message, seq, true);
    return {
      ok: true,
      item: {
        channel,
        ueKey: id.key,
        identity: id.identity,
        sequence: seq,
        hash: new Uint8Array(0),
        timestampMs: f.timestampMs,
        contentType: type.value,
        ledgerId,
        txId: f.txId,
        asUrls: entry.urls,
        record: rec,
      },
    };
  }
}

function identityOf(bytes: Uint8Array): IdentityResult {
  try {
    const decoded = UeIdentity.decode(bytes);
    const identity = validateUeIdentity(decoded, 'record.body.identity');
    return { ok: true, identity, key: ueKeyOf(identity) };
  } catch (e) {
    if (e instanceof DivsError) return { ok: false, code: e.code, message: e.message };
    return { ok: false, code: 'MALFORMED_MESSAGE', message: 'record.body.identity does not decode' };
  }
}

function contentTypeOf(rec: Uint8Array, off: number, len: number): TextResult {
  if (off < 0 || len === 0) return { ok: false, message: 'record.body.content_type: missing' };
  const v = utf8At(rec, off, len);
  if (v.length > 255 || !CONTENT_TYPE.test(v)) return { ok: false, message: 'record.body.content_type: not a media type' };
  return { ok: true, value: v };
}

function entryUrls(bytes: Uint8Array): { ok: true; urls: string[] } | { ok: false; message: string } {
  let urls: string[];
  try {
    urls = EntryAddress.decode(bytes).asUrls;
  } catch {
    return { ok: false, message: 'record.body.endorsement.entry_address does not decode' };
  }
  if (urls.length === 0) return { ok: false, message: 'record.body.endorsement.entry_address.as_urls: at least one AS URL' };
  if (urls.length > MAX_AS_URLS) return { ok: false, message: `record.body.endorsement.entry_address.as_urls: at most ${MAX_AS_URLS}` };
  if (urls.some((u) => u.length === 0 || u.length > 512)) return { ok: false, message: 'record.body.endorsement.entry_address.as_urls: 1 to 512 characters each' };
  return { ok: true, urls };
}

// ---------------------------------------------------------------- acks

/** The ack of one record. */
export function ackOf(p: Parsed, outcome?: AppendOutcome): RecordAck {
  if (!p.ok) {
    return { status: AckStatus.ACK_STATUS_REJECTED, sequence: p.sequence, recordHash: p.hash ?? new Uint8Array(0), errorCode: p.code, errorMessage: p.message };
  }
  const base = { sequence: p.item.sequence, recordHash: p.item.hash };
  if (!outcome || outcome.status === 'stored') return { ...base, status: AckStatus.ACK_STATUS_STORED, errorCode: '', errorMessage: '' };
  if (outcome.status === 'duplicate') return { ...base, status: AckStatus.ACK_STATUS_DUPLICATE, errorCode: '', errorMessage: '' };
  return {
    ...base,
    status: AckStatus.ACK_STATUS_REJECTED,
    errorCode: 'RECORD_FORK',
    errorMessage: `another record with sequence ${p.item.sequence} is already stored for this UE (fork; kept as evidence)`,
  };
}

// ---------------------------------------------------------------- group commit

interface Waiting {
  items: StoreItem[];
  resolve: (o: AppendOutcome[]) => void;
  reject: (e: unknown) => void;
}

export interface WriterOptions {
  /** Most records waiting for a commit before senders are told to back off; default 200 000. */
  maxPending?: number;
  /** Most records in one transaction; default 20 000. */
  maxGroup?: number;
}

/**
 * Commits records for many concurrent senders in groups. Each submit resolves after the
 * transaction holding its records committed (or rejects, storing none of them). One group is
 * in the store at a time; what arrives meanwhile forms the next group (group commit).
 */
export class IngestWriter {
  readonly #sink: RecordSink;
  readonly #maxPending: number;
  readonly #maxGroup: number;
  #queue: Waiting[] = [];
  #pending = 0;
  #running: Promise<void> | null = null;
  #closed = false;
  /** Totals, for metrics. */
  readonly stats = { commits: 0, records: 0 };

  constructor(sink: RecordSink, opts: WriterOptions = {}) {
    this.#sink = sink;
    this.#maxPending = opts.maxPending ?? 200_000;
    this.#maxGroup = opts.maxGroup ?? 20_000;
  }

  /** Records waiting for a commit. */
  get pending(): number {
    return this.#pending;
  }

  submit(items: StoreItem[]): Promise<AppendOutcome[]> {
    if (this.#closed) return Promise.reject(new DivsError('UNAVAILABLE', 'gateway is shutting down'));
    if (items.length === 0) return Promise.resolve([]);
    if (this.#pending + items.length > this.#maxPending) return Promise.reject(new DivsError('UNAVAILABLE', 'gateway overloaded: too many records waiting to be stored, retry later'));
    this.#pending += items.length;
    const p = new Promise<AppendOutcome[]>((resolve, reject) => this.#queue.push({ items, resolve, reject }));
    // start after the current I/O turn: frames that arrived together share one commit
    this.#running ??= new Promise<void>((r) => setImmediate(r)).then(() => this.#drain());
    return p;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const group: Waiting[] = [];
      let n = 0;
      while (this.#queue.length > 0 && (n === 0 || n + (this.#queue[0] as Waiting).items.length <= this.#maxGroup)) {
        const w = this.#queue.shift() as Waiting;
        group.push(w);
        n += w.items.length;
      }
      const all = group.length === 1 ? (group[0] as Waiting).items : group.flatMap((w) => w.items);
      let outcomes: AppendOutcome[];
      try {
        outcomes = await this.#sink.append(all);
      } catch (e) {
        this.#pending -= n;
        for (const w of group) w.reject(e);
        continue;
      }
      this.#pending -= n;
      this.stats.commits++;
      this.stats.records += n;
      let o = 0;
      for (const w of group) {
        w.resolve(outcomes.slice(o, o + w.items.length));
        o += w.items.length;
      }
    }
    this.#running = null;
  }

  /** Refuses new records; resolves once records already submitted are committed (or failed). */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#running;
  }
}

/**
 * Ingest of one frame: check, store, ack. Records that fail their checks are acknowledged as
 * rejected; the frame resolves only after the others are durable.
 */
export class Ingestor {
  readonly parser: RecordParser;
  readonly writer: IngestWriter;

  constructor(parser: RecordParser, writer: IngestWriter) {
    this.parser = parser;
    this.writer = writer;
  }

  async frame(req: RawIngestRequest): Promise<IngestResponse> {
    const channel = checkChannel(req.channel);
    if (req.records.length > this.parser.limits.maxFrameRecords) fail('BATCH_TOO_LARGE', `a frame holds at most ${this.parser.limits.maxFrameRecords} records`);
    const parsed = this.parser.parse(channel, req.records);
    const items: StoreItem[] = [];
    for (const p of parsed) if (p.ok) items.push(p.item);
    const outcomes = await this.writer.submit(items);
    let k = 0;
    const acks = parsed.map((p) => (p.ok ? ackOf(p, outcomes[k++]) : ackOf(p)));
    return { frameId: req.frameId, acks };
  }
}

