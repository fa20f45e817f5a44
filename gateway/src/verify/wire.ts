/**
 * @module verify/wire
 * A zero-copy reader for the two messages on the verification hot path, SignedRecord and the
 * RecordBody inside it: it records where each field lives in the caller's buffer instead of
 * building objects, so a worker can scan thousands of records without allocating per record.
 *
 * Semantics follow the generated ts-proto decoders for every well-formed message (so ingest,
 * the gateway engine and consumers read the same values from the same bytes): the last
 * occurrence of a singular field wins, a field with an unexpected wire type is skipped as
 * unknown, unknown fields are skipped, and 64-bit integers outside the safe range are malformed.
 * Stricter than ts-proto on garbage only: a zero tag or an end-group tag (which ts-proto takes as
 * "stop here", leaving a nested reader mid-message), groups (wire type 3) and wire types 6/7 are
 * malformed. Input is hostile: every length is bounds-checked and nothing here throws; a
 * malformed message answers `false`.
 *
 * The verifier's hot path reads both messages with {@link scanRecord}: one pass, local
 * positions and inline short varints, for records encoded the way ts-proto encodes them (three
 * times faster than the general readers), and the general readers for anything else.
 */

/** Where the fields of one SignedRecord (and its body) are; -1 offsets mean "absent". Reused. */
export class RecordFields {
  // SignedRecord
  bodyOff = -1;
  bodyLen = 0;
  sigOff = -1;
  sigLen = 0;
  /** Whether field 3 (BatchProof) is present. */
  batch = false;
  batchIndex = 0;
  batchSize = 0;
  rootOff = -1;
  rootLen = 0;
  /** Number of inclusion path hashes, and whether every one is 32 bytes long. */
  pathCount = 0;
  /** Offset of the first path hash when the hashes are one canonical run (tag, length 32, hash; 34 bytes each), else -1. */
  pathOff = -1;
  pathHashes = true;
  /** The BatchProof bytes, to read the path with {@link scanPath} when it is needed. */
  batchOff = -1;
  batchLen = 0;
  // RecordBody
  identityOff = -1;
  identityLen = 0;
  sequence = 0;
  prevOff = -1;
  prevLen = 0;
  timestampMs = 0;
  contentTypeOff = -1;
  contentTypeLen = 0;
  /** Field 5 (payload): offset (-1 when absent) and length. */
  payloadOff = -1;
  payloadLen = 0;
  /** Field 7 (TxRef) present. */
  hasTx = false;
  txId = 0;
  txHashOff = -1;
  txHashLen = 0;
  /** EntryAddress.ledger_id bytes; -1 when absent (empty ledger id). */
  ledgerOff = -1;
  ledgerLen = 0;
  /** EntryAddress bytes (to read as_urls when needed); -1 when absent. */
  entryOff = -1;
  entryLen = 0;

  resetRecord(): void {
    this.bodyOff = -1;
    this.bodyLen = 0;
    this.sigOff = -1;
    this.sigLen = 0;
    this.batch = false;
    this.batchIndex = 0;
    this.batchSize = 0;
    this.rootOff = -1;
    this.rootLen = 0;
    this.pathCount = 0;
    this.pathOff = -1;
    this.pathHashes = true;
    this.batchOff = -1;
    this.batchLen = 0;
  }

  resetBody(): void {
    this.identityOff = -1;
    this.identityLen = 0;
    this.sequence = 0;
    this.prevOff = -1;
    this.prevLen = 0;
    this.timestampMs = 0;
    this.contentTypeOff = -1;
    this.contentTypeLen = 0;
    this.payloadOff = -1;
    this.payloadLen = 0;
    this.hasTx = false;
    this.txId = 0;
    this.txHashOff = -1;
    this.txHashLen = 0;
    this.ledgerOff = -1;
    this.ledgerLen = 0;
    this.entryOff = -1;
    this.entryLen = 0;
  }
}

// Every scanner keeps its position in a local variable (module state costs ~3x on this path).
// Varints: one-byte values inline at each call site; longer ones through `varint`, which returns
// the value and leaves the next position in `at` (and whether it exceeds 2^53 in `big`).
let at = 0;
let big = false;

/**
 * Reads the varint at `p` (before `end`): its value (exact up to 2^53; `big` tells when it is
 * larger) with the next position in `at`; NaN when truncated or longer than 10 bytes.
 */
function varint(b: Uint8Array, p: number, end: number): number {
  big = false;
  let lo = 0;
  for (let shift = 0; shift < 28; shift += 7) {
    if (p >= end) return NaN;
    const x = b[p++] as number;
    lo |= (x & 0x7f) << shift;
    if (x < 0x80) {
      at = p;
      return lo >>> 0;
    }
  }
  // beyond 28 bits: a float, high part times 2^28
  let value = lo >>> 0;
  let mul = 268435456;
  for (let i = 4; i < 10; i++) {
    if (p >= end) return NaN;
    const x = b[p++] as number;
    value += (x & 0x7f) * mul;
    mul *= 128;
    if (x < 0x80) {
      at = p;
      if (value > Number.MAX_SAFE_INTEGER) big = true;
      return value;
    }
  }
  return NaN;
}

/** An int64 varint at `p`: exact for safe integers (negative through BigInt); NaN otherwise. */
function int64(b: Uint8Array, p: number, end: number): number {
  const v = varint(b, p, end);
  if (Number.isNaN(v) || !big) return v;
  let x = 0n;
  let shift = 0n;
  for (let q = p; q < at; q++) {
    x |= BigInt((b[q] as number) & 0x7f) << shift;
    shift += 7n;
  }
  x = BigInt.asIntN(64, x);
  if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < BigInt(Number.MIN_SAFE_INTEGER)) return NaN;
  return Number(x);
}

/** A length prefix at `p` whose bytes are all there: the length (next position in `at`), or -1. */
function length(b: Uint8Array, p: number, end: number): number {
  if (p < end) {
    const x = b[p] as number;
    if (x < 0x80) {
      at = p + 1;
      return x <= end - at ? x : -1;
    }
  }
  const n = varint(b, p, end);
  return Number.isNaN(n) || big || n > end - at ? -1 : n;
}

/** A tag at `p` (at most 32 bits, next position in `at`); -1 when malformed. */
function tagAt(b: Uint8Array, p: number, end: number): number {
  if (p < end) {
    const x = b[p] as number;
    if (x < 0x80) {
      at = p + 1;
      return x;
    }
  }
  const t = varint(b, p, end);
  return Number.isNaN(t) || t > 0xffffffff ? -1 : t;
}

/** Skips a field of wire type `wt` at `p`: the next position, or -1 when malformed. */
function skip(b: Uint8Array, wt: number, p: number, end: number): number {
  switch (wt) {
    case 0:
      return Number.isNaN(varint(b, p, end)) ? -1 : at;
    case 1:
      return end - p < 8 ? -1 : p + 8;
    case 2: {
      const n = length(b, p, end);
      return n < 0 ? -1 : at + n;
    }
    case 5:
      return end - p < 4 ? -1 : p + 4;
    default:
      // groups (3) are not used by DIVS; 6 and 7 do not exist
      return -1;
  }
}

/** A uint64 varint field value at `p` (next position in `at`); -1 when malformed or above 2^53. */
function uint(b: Uint8Array, p: number, end: number): number {
  if (p < end) {
    const x = b[p] as number;
    if (x < 0x80) {
      at = p + 1;
      return x;
    }
  }
  const v = varint(b, p, end);
  return Number.isNaN(v) || big ? -1 : v;
}

/**
 * The one BatchProof walker [p, end) behind {@link scanSignedRecord} and {@link scanPath}: reads
 * index, size and root into `f`, counts the path hashes and, when `out` is given, writes the
 * offset of each (at most `max`) to `out[outAt + k]`. False when malformed.
 */
function walkBatch(b: Uint8Array, p: number, end: number, f: RecordFields, out: Int32Array | null, outAt: number, max: number): boolean {
  // a repeated BatchProof field replaces the earlier one, as the generated decoder does
  f.batchIndex = 0;
  f.batchSize = 0;
  f.rootOff = -1;
  f.rootLen = 0;
  f.pathHashes = true;
  f.pathOff = -1;
  f.batchOff = p;
  f.batchLen = end - p;
  let count = 0;
  while (p < end) {
    // the common case first: a run of 32-byte path hashes (tag 26, length 32)
    if (b[p] === 26 && b[p + 1] === 32 && p + 34 <= end) {
      if (out !== null && count < max) out[outAt + count] = p + 2;
      p += 34;
      count++;
      continue;
    }
    const tag = tagAt(b, p, end);
    if (tag <= 0 || (tag & 7) === 4) return false;
    p = at;
    if (tag === 8) {
      const v = uint(b, p, end);
      if (v < 0) return false;
      f.batchIndex = v;
      p = at;
    } else if (tag === 16) {
      const v = uint(b, p, end);
      if (v < 0) return false;
      f.batchSize = v;
      p = at;
    } else if (tag === 26) {
      const n = length(b, p, end);
      if (n < 0) return false;
      if (n !== 32) f.pathHashes = false;
      if (out !== null && count < max) out[outAt + count] = at;
      count++;
      p = at + n;
    } else if (tag === 34) {
      const n = length(b, p, end);
      if (n < 0) return false;
      f.rootOff = at;
      f.rootLen = n;
      p = at + n;
    } else {
      p = skip(b, tag & 7, p, end);
      if (p < 0) return false;
    }
  }
  f.pathCount = count;
  return true;
}

const pathScratch = new RecordFields();

/**
 * Writes the offsets of the inclusion path hashes of a BatchProof (as located by
 * {@link scanSignedRecord}: `f.batchOff`, `f.batchLen`) into `out`, in order; returns how many
 * (at most `max`). The proof already scanned well-formed.
 */
export function scanPath(data: Uint8Array, batchOff: number, batchLen: number, out: Int32Array, outAt: number, max: number): number {
  if (batchOff < 0 || batchLen < 0 || batchOff + batchLen > data.length) return 0;
  if (!walkBatch(data, batchOff, batchOff + batchLen, pathScratch, out, outAt, max)) return 0;
  return Math.min(pathScratch.pathCount, max);
}

/**
 * Scans SignedRecord bytes `data[off, off+len)` into `f` (offsets into `data`). Does not look
 * inside the body: call {@link scanBody} for that. False when malformed.
 */
export function scanSignedRecord(data: Uint8Array, off: number, len: number, f: RecordFields): boolean {
  f.resetRecord();
  const end = off + len;
  if (off < 0 || len < 0 || end > data.length) return false;
  let p = off;
  while (p < end) {
    const tag = tagAt(data, p, end);
    if (tag <= 0 || (tag & 7) === 4) return false;
    p = at;
    if (tag === 10 || tag === 18 || tag === 26) {
      const n = length(data, p, end);
      if (n < 0) return false;
      p = at;
      if (tag === 10) {
        f.bodyOff = p;
        f.bodyLen = n;
      } else if (tag === 18) {
        f.sigOff = p;
        f.sigLen = n;
      } else {
        f.batch = true;
        if (!walkBatch(data, p, p + n, f, null, 0, 0)) return false;
      }
      p += n;
      continue;
    }
    p = skip(data, tag & 7, p, end);
    if (p < 0) return false;
  }
  return true;
}

/**
 * Whether `data[off, off+len)` is a well-formed message of any fields (a UeIdentity: its values
 * are checked where they are used). The body scan does not look inside the identity, because
 * on the hot path it is compared as bytes with the endorsed one; this answers for the rest.
 */
export function scanMessage(data: Uint8Array, off: number, len: number): boolean {
  const end = off + len;
  if (off < 0 || len < 0 || end > data.length) return false;
  let p = off;
  while (p < end) {
    const tag = tagAt(data, p, end);
    if (tag <= 0 || (tag & 7) === 4) return false;
    p = skip(data, tag & 7, at, end);
    if (p < 0) return false;
  }
  return true;
}

/** Reads EntryAddress [p, end): the ledger id (last wins). */
function scanEntry(b: Uint8Array, p: number, end: number, f: RecordFields): boolean {
  f.ledgerOff = -1;
  f.ledgerLen = 0;
  while (p < end) {
    const tag = tagAt(b, p, end);
    if (tag <= 0 || (tag & 7) === 4) return false;
    p = at;
    if (tag === 10) {
      const n = length(b, p, end);
      if (n < 0) return false;
      f.ledgerOff = at;
      f.ledgerLen = n;
      p = at + n;
      continue;
    }
    p = skip(b, tag & 7, p, end);
    if (p < 0) return false;
  }
  return true;
}

/** Reads TxRef [p, end). */
function scanTx(b: Uint8Array, p: number, end: number, f: RecordFields): boolean {
  f.hasTx = true;
  f.txId = 0;
  f.txHashOff = -1;
  f.txHashLen = 0;
  f.ledgerOff = -1;
  f.ledgerLen = 0;
  f.entryOff = -1;
  f.entryLen = 0;
  while (p < end) {
    const tag = tagAt(b, p, end);
    if (tag <= 0 || (tag & 7) === 4) return false;
    p = at;
    if (tag === 8) {
      const v = uint(b, p, end);
      if (v < 0) return false;
      f.txId = v;
      p = at;
    } else if (tag === 18) {
      const n = length(b, p, end);
      if (n < 0) return false;
      f.txHashOff = at;
      f.txHashLen = n;
      p = at + n;
    } else if (tag === 26) {
      const n = length(b, p, end);
      if (n < 0) return false;
      p = at;
      f.entryOff = p;
      f.entryLen = n;
      if (!scanEntry(b, p, p + n, f)) return false;
      p += n;
    } else {
      p = skip(b, tag & 7, p, end);
      if (p < 0) return false;
    }
  }
  return true;
}

/** Scans RecordBody bytes `data[off, off+len)` into `f`. False when malformed. */
export function scanBody(data: Uint8Array, off: number, len: number, f: RecordFields): boolean {
  f.resetBody();
  const end = off + len;
  if (off < 0 || len < 0 || end > data.length) return false;
  let p = off;
  while (p < end) {
    const tag = tagAt(data, p, end);
    if (tag <= 0 || (tag & 7) === 4) return false;
    p = at;
    switch (tag) {
      case 16: {
        const v = uint(data, p, end);
        if (v < 0) return false;
        f.sequence = v;
        p = at;
        continue;
      }
      case 32: {
        const v = int64(data, p, end);
        if (Number.isNaN(v)) return false;
        f.timestampMs = v;
        p = at;
        continue;
      }
      case 10:
      case 26:
      case 42:
      case 50:
      case 58: {
        const n = length(data, p, end);
        if (n < 0) return false;
        p = at;
        if (tag === 10) {
          // compared as bytes with the endorsed identity; decoded (checked) only when they differ
          f.identityOff = p;
          f.identityLen = n;
        } else if (tag === 26) {
          f.prevOff = p;
          f.prevLen = n;
        } else if (tag === 42) {
          f.payloadOff = p;
          f.payloadLen = n;
        } else if (tag === 50) {
          f.contentTypeOff = p;
          f.contentTypeLen = n;
        } else if (!scanTx(data, p, p + n, f)) return false;
        p += n;
        continue;
      }
    }
    p = skip(data, tag & 7, p, end);
    if (p < 0) return false;
  }
  return true;
}

/** Byte equality of `a[aOff, aOff+len)` and `b[bOff, bOff+len)` (not constant-time: public data). */
export function sameBytes(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

// ---------------------------------------------------------------- one-pass reader (hot path)

/**
 * The varint that follows the one-byte tag at `p`: its value, with {@link at} set past it, or
 * -1 when it does not fit before `end` or takes more than 7 bytes (a value of 2^49 or more: the
 * general readers take those). One- and two-byte values (lengths and small numbers, the common
 * case) are read inline, longer ones (timestamps take 6 bytes) in one loop; V8 inlines this
 * function into the one-pass reader.
 */
function afterTag(b: Uint8Array, p: number, end: number): number {
  const x = b[p + 1] as number;
  if (x < 0x80 && p + 2 <= end) {
    at = p + 2;
    return x;
  }
  const y = b[p + 2] as number;
  if (y < 0x80 && p + 3 <= end) {
    at = p + 3;
    return (x & 0x7f) | (y << 7);
  }
  // longer values (timestamps take 6 bytes): one pass, value and length together
  let v = (x & 0x7f) | ((y & 0x7f) << 7);
  let mul = 16384;
  const lim = end - p - 1 < 7 ? end - p - 1 : 7;
  for (let q = 2; q < lim; q++) {
    const c = b[p + 1 + q] as number;
    v += (c & 0x7f) * mul;
    if (c < 0x80) {
      at = p + 2 + q;
      return v;
    }
    mul *= 128;
  }
  return -1;
}

/**
 * Reads a SignedRecord and the RecordBody inside it in one pass, as ts-proto (and the UE SDK)
 * write them — every field at most once, in field-number order, short varints — and anything
 * else through {@link scanSignedRecord} + {@link scanBody}, so the answer is theirs for every
 * input: the one-pass reader only accepts bytes on which the general readers find exactly the
 * fields it found (a canonical message has one occurrence of each field, so "last wins" and
 * "skip unknown" never come into play), and hands everything else to them.
 *
 * True when the SignedRecord is well-formed, has a non-empty body and the body is well-formed;
 * `f` then holds both (offsets into `data`). False when malformed. Does not look inside the
 * identity (see {@link scanMessage}).
 */
export function scanRecord(data: Uint8Array, off: number, len: number, f: RecordFields): boolean {
  if (scanCanonical(data, off, len, f)) return true;
  return scanSignedRecord(data, off, len, f) && f.bodyOff >= 0 && f.bodyLen > 0 && scanBody(data, f.bodyOff, f.bodyLen, f);
}

/**
 * The one-pass reader of {@link scanRecord}: true only for canonical, well-formed records
 * (false says "not canonical or malformed": ask the general readers). Exported for tests.
 */
export function scanCanonical(b: Uint8Array, off: number, len: number, f: RecordFields): boolean {
  const end = off + len;
  if (off < 0 || len <= 0 || end > b.length) return false;
  f.resetRecord();
  f.resetBody();
  let p = off;
  let n = 0;
  // SignedRecord.body (1), required and non-empty here
  if (b[p] !== 10) return false;
  n = afterTag(b, p, end);
  if (n < 0) return false;
  p = at;
  if (n === 0 || n > end - p) return false;
  const bodyOff = p;
  const bodyEnd = p + n;
  f.bodyOff = p;
  f.bodyLen = n;
  p += n;
  // signature (2)
  if (p < end && b[p] === 18) {
    n = afterTag(b, p, end);
    if (n < 0) return false;
    p = at;
    if (n > end - p) return false;
    f.sigOff = p;
    f.sigLen = n;
    p += n;
  }
  // batch (3): index (1), size (2), path (3) as 32-byte hashes, root (4)
  if (p < end && b[p] === 26) {
    n = afterTag(b, p, end);
    if (n < 0) return false;
    p = at;
    if (n > end - p) return false;
    const be = p + n;
    f.batch = true;
    f.batchOff = p;
    f.batchLen = n;
    if (p < be && b[p] === 8) {
      f.batchIndex = afterTag(b, p, be);
      if (f.batchIndex < 0) return false;
      p = at;
    }
    if (p < be && b[p] === 16) {
      f.batchSize = afterTag(b, p, be);
      if (f.batchSize < 0) return false;
      p = at;
    }
    let count = 0;
    const run = p;
    while (p + 34 <= be && b[p] === 26 && b[p + 1] === 32) {
      p += 34;
      count++;
    }
    f.pathCount = count;
    f.pathOff = count > 0 ? run + 2 : -1;
    if (p < be && b[p] === 34) {
      n = afterTag(b, p, be);
      if (n < 0) return false;
      p = at;
      if (n > be - p) return false;
      f.rootOff = p;
      f.rootLen = n;
      p += n;
    }
    if (p !== be) return false;
  }
  if (p !== end) return false;

  // RecordBody
  p = bodyOff;
  const e = bodyEnd;
  if (p < e && b[p] === 10) {
    n = afterTag(b, p, e);
    if (n < 0) return false;
    p = at;
    if (n > e - p) return false;
    f.identityOff = p;
    f.identityLen = n;
    p += n;
  }
  if (p < e && b[p] === 16) {
    f.sequence = afterTag(b, p, e);
    if (f.sequence < 0) return false;
    p = at;
  }
  if (p < e && b[p] === 26) {
    n = afterTag(b, p, e);
    if (n < 0) return false;
    p = at;
    if (n > e - p) return false;
    f.prevOff = p;
    f.prevLen = n;
    p += n;
  }
  if (p < e && b[p] === 32) {
    // int64: a negative value takes 10 bytes, so a short varint is the same non-negative number
    f.timestampMs = afterTag(b, p, e);
    if (f.timestampMs < 0) return false;
    p = at;
  }
  if (p < e && b[p] === 42) {
    n = afterTag(b, p, e);
    if (n < 0) return false;
    p = at;
    if (n > e - p) return false;
    f.payloadOff = p;
    f.payloadLen = n;
    p += n;
  }
  if (p < e && b[p] === 50) {
    n = afterTag(b, p, e);
    if (n < 0) return false;
    p = at;
    if (n > e - p) return false;
    f.contentTypeOff = p;
    f.contentTypeLen = n;
    p += n;
  }
  if (p < e && b[p] === 58) {
    // TxRef: tx_id (1), tx_hash (2), entry_address (3) = EntryAddress { ledger_id (1), as_urls (2)* }
    n = afterTag(b, p, e);
    if (n < 0) return false;
    p = at;
    if (n > e - p) return false;
    const te = p + n;
    f.hasTx = true;
    if (p < te && b[p] === 8) {
      f.txId = afterTag(b, p, te);
      if (f.txId < 0) return false;
      p = at;
    }
    if (p < te && b[p] === 18) {
      n = afterTag(b, p, te);
      if (n < 0) return false;
      p = at;
      if (n > te - p) return false;
      f.txHashOff = p;
      f.txHashLen = n;
      p += n;
    }
    if (p < te && b[p] === 26) {
      n = afterTag(b, p, te);
      if (n < 0) return false;
      p = at;
      if (n > te - p) return false;
      const ee = p + n;
      f.entryOff = p;
      f.entryLen = n;
      if (p < ee && b[p] === 10) {
        n = afterTag(b, p, ee);
        if (n < 0) return false;
        p = at;
        if (n > ee - p) return false;
        f.ledgerOff = p;
        f.ledgerLen = n;
        p += n;
      }
      while (p < ee && b[p] === 18) {
        n = afterTag(b, p, ee);
        if (n < 0) return false;
        p = at;
        if (n > ee - p) return false;
        p += n;
      }
      if (p !== ee) return false;
    }
    if (p !== te) return false;
  }
  return p === e;
}
