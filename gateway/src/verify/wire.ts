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

// The reader keeps its position in module state: one call at a time per thread, no allocation.
let buf: Uint8Array = new Uint8Array(0);
let pos = 0;
// Set by readVarint; NaN when the varint is malformed (too long, truncated).
let lastBig = false;

/**
 * Reads a varint at `pos` as a number. Values up to 2^53 are exact; larger ones set `lastBig`
 * (the caller decides: malformed for uint64 fields, two's complement for int64). NaN when the
 * varint is truncated or longer than 10 bytes.
 */
function readVarint(end: number): number {
  // one-byte varints (tags, lengths below 128, small numbers) are the common case: keep this
  // path small enough to be inlined
  if (pos < end) {
    const b = buf[pos] as number;
    if (b < 0x80) {
      pos++;
      lastBig = false;
      return b;
    }
  }
  return readVarintSlow(end);
}

function readVarintSlow(end: number): number {
  lastBig = false;
  let lo = 0;
  let shift = 0;
  // first 4 bytes: 28 bits in plain int arithmetic
  for (; shift < 28; shift += 7) {
    if (pos >= end) return NaN;
    const b = buf[pos++] as number;
    lo |= (b & 0x7f) << shift;
    if (b < 0x80) return lo >>> 0;
  }
  // remaining bits as a float: high part times 2^28
  let value = lo >>> 0;
  let mul = 268435456; // 2^28
  for (let i = 4; i < 10; i++) {
    if (pos >= end) return NaN;
    const b = buf[pos++] as number;
    value += (b & 0x7f) * mul;
    mul *= 128;
    if (b < 0x80) {
      if (value > Number.MAX_SAFE_INTEGER) lastBig = true;
      return value;
    }
  }
  return NaN;
}

/**
 * Reads an int64 varint. Non-negative values are exact up to 2^53; negative ones (10-byte two's
 * complement) are decoded through BigInt. NaN for malformed or out-of-safe-range values.
 */
function readInt64(end: number): number {
  const start = pos;
  const v = readVarint(end);
  if (Number.isNaN(v)) return NaN;
  if (!lastBig) return v;
  // redo exactly: two's complement 64-bit
  let x = 0n;
  let shift = 0n;
  for (let p = start; p < pos; p++) {
    x |= BigInt((buf[p] as number) & 0x7f) << shift;
    shift += 7n;
  }
  x = BigInt.asIntN(64, x);
  if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < BigInt(Number.MIN_SAFE_INTEGER)) return NaN;
  return Number(x);
}

/** Reads a tag (at most 5 bytes); 0 ends the message, NaN is malformed. */
function readTag(end: number): number {
  const t = readVarint(end);
  if (Number.isNaN(t) || t > 0xffffffff) return NaN;
  return t;
}

/** Reads a length prefix and checks the bytes are there; returns the length or -1. */
function readLen(end: number): number {
  const n = readVarint(end);
  if (Number.isNaN(n) || lastBig || n > end - pos) return -1;
  return n;
}

/** Skips a field of wire type `wt`; false when malformed. */
function skip(wt: number, end: number): boolean {
  switch (wt) {
    case 0:
      return !Number.isNaN(readVarint(end));
    case 1:
      if (end - pos < 8) return false;
      pos += 8;
      return true;
    case 2: {
      const n = readLen(end);
      if (n < 0) return false;
      pos += n;
      return true;
    }
    case 5:
      if (end - pos < 4) return false;
      pos += 4;
      return true;
    default:
      // groups (3) are not used by DIVS; 6 and 7 do not exist
      return false;
  }
}

/** Reads BatchProof [pos, end); path hashes are counted here and read by {@link scanPath}. */
function scanBatch(f: RecordFields, end: number): boolean {
  // a repeated BatchProof field replaces the earlier one, as the generated decoder does
  f.batchIndex = 0;
  f.batchSize = 0;
  f.rootOff = -1;
  f.rootLen = 0;
  f.pathCount = 0;
  f.pathHashes = true;
  f.batchOff = pos;
  f.batchLen = end - pos;
  while (pos < end) {
    const tag = readTag(end);
    if (Number.isNaN(tag)) return false;
    if (tag === 0 || (tag & 7) === 4) return false;
    switch (tag) {
      case 8: {
        const v = readVarint(end);
        if (Number.isNaN(v) || lastBig) return false;
        f.batchIndex = v;
        continue;
      }
      case 16: {
        const v = readVarint(end);
        if (Number.isNaN(v) || lastBig) return false;
        f.batchSize = v;
        continue;
      }
      case 26: {
        const n = readLen(end);
        if (n < 0) return false;
        if (n !== 32) f.pathHashes = false;
        f.pathCount++;
        pos += n;
        continue;
      }
      case 34: {
        const n = readLen(end);
        if (n < 0) return false;
        f.rootOff = pos;
        f.rootLen = n;
        pos += n;
        continue;
      }
    }
    if (!skip(tag & 7, end)) return false;
  }
  return true;
}

/**
 * Writes the offsets of the inclusion path hashes of a BatchProof (as located by
 * {@link scanSignedRecord}: `f.batchOff`, `f.batchLen`) into `out`, in order; returns how many
 * (at most out.length). The proof already scanned well-formed.
 */
export function scanPath(data: Uint8Array, batchOff: number, batchLen: number, out: Int32Array, outAt: number, max: number): number {
  buf = data;
  pos = batchOff;
  const end = batchOff + batchLen;
  let count = 0;
  while (pos < end && count < max) {
    const tag = readTag(end);
    if (Number.isNaN(tag) || tag === 0) return count;
    if (tag === 26) {
      const n = readLen(end);
      if (n < 0) return count;
      out[outAt + count++] = pos;
      pos += n;
      continue;
    }
    if (!skip(tag & 7, end)) return count;
  }
  return count;
}

/**
 * Scans SignedRecord bytes `data[off, off+len)` into `f` (offsets into `data`). Does not look
 * inside the body: call {@link scanBody} for that. False when malformed.
 */
export function scanSignedRecord(data: Uint8Array, off: number, len: number, f: RecordFields): boolean {
  buf = data;
  pos = off;
  const end = off + len;
  f.resetRecord();
  if (off < 0 || len < 0 || end > data.length) return false;
  while (pos < end) {
    const tag = readTag(end);
    if (Number.isNaN(tag)) return false;
    if (tag === 0 || (tag & 7) === 4) return false;
    switch (tag) {
      case 10: {
        const n = readLen(end);
        if (n < 0) return false;
        f.bodyOff = pos;
        f.bodyLen = n;
        pos += n;
        continue;
      }
      case 18: {
        const n = readLen(end);
        if (n < 0) return false;
        f.sigOff = pos;
        f.sigLen = n;
        pos += n;
        continue;
      }
      case 26: {
        const n = readLen(end);
        if (n < 0) return false;
        const subEnd = pos + n;
        f.batch = true;
        if (!scanBatch(f, subEnd)) return false;
        pos = subEnd;
        continue;
      }
    }
    if (!skip(tag & 7, end)) return false;
  }
  return true;
}

/** Reads EntryAddress [pos, end): the ledger id (last wins). */
function scanEntry(f: RecordFields, end: number): boolean {
  f.ledgerOff = -1;
  f.ledgerLen = 0;
  while (pos < end) {
    const tag = readTag(end);
    if (Number.isNaN(tag)) return false;
    if (tag === 0 || (tag & 7) === 4) return false;
    if (tag === 10) {
      const n = readLen(end);
      if (n < 0) return false;
      f.ledgerOff = pos;
      f.ledgerLen = n;
      pos += n;
      continue;
    }
    if (!skip(tag & 7, end)) return false;
  }
  return true;
}

/** Reads TxRef [pos, end). */
function scanTx(f: RecordFields, end: number): boolean {
  f.hasTx = true;
  f.txId = 0;
  f.txHashOff = -1;
  f.txHashLen = 0;
  f.ledgerOff = -1;
  f.ledgerLen = 0;
  f.entryOff = -1;
  f.entryLen = 0;
  while (pos < end) {
    const tag = readTag(end);
    if (Number.isNaN(tag)) return false;
    if (tag === 0 || (tag & 7) === 4) return false;
    switch (tag) {
      case 8: {
        const v = readVarint(end);
        if (Number.isNaN(v) || lastBig) return false;
        f.txId = v;
        continue;
      }
      case 18: {
        const n = readLen(end);
        if (n < 0) return false;
        f.txHashOff = pos;
        f.txHashLen = n;
        pos += n;
        continue;
      }
      case 26: {
        const n = readLen(end);
        if (n < 0) return false;
        const subEnd = pos + n;
        f.entryOff = pos;
        f.entryLen = n;
        if (!scanEntry(f, subEnd)) return false;
        pos = subEnd;
        continue;
      }
    }
    if (!skip(tag & 7, end)) return false;
  }
  return true;
}

/** Checks that an embedded UeIdentity is well-formed protobuf (its values are checked elsewhere). */
function scanOpaque(end: number): boolean {
  while (pos < end) {
    const tag = readTag(end);
    if (Number.isNaN(tag)) return false;
    if (tag === 0 || (tag & 7) === 4) return false;
    if (!skip(tag & 7, end)) return false;
  }
  return true;
}

/** Scans RecordBody bytes `data[off, off+len)` into `f`. False when malformed. */
export function scanBody(data: Uint8Array, off: number, len: number, f: RecordFields): boolean {
  buf = data;
  pos = off;
  const end = off + len;
  f.resetBody();
  if (off < 0 || len < 0 || end > data.length) return false;
  while (pos < end) {
    const tag = readTag(end);
    if (Number.isNaN(tag)) return false;
    if (tag === 0 || (tag & 7) === 4) return false;
    switch (tag) {
      case 10: {
        const n = readLen(end);
        if (n < 0) return false;
        f.identityOff = pos;
        f.identityLen = n;
        const subEnd = pos + n;
        if (!scanOpaque(subEnd)) return false;
        pos = subEnd;
        continue;
      }
      case 16: {
        const v = readVarint(end);
        if (Number.isNaN(v) || lastBig) return false;
        f.sequence = v;
        continue;
      }
      case 26: {
        const n = readLen(end);
        if (n < 0) return false;
        f.prevOff = pos;
        f.prevLen = n;
        pos += n;
        continue;
      }
      case 32: {
        const v = readInt64(end);
        if (Number.isNaN(v)) return false;
        f.timestampMs = v;
        continue;
      }
      case 42: {
        const n = readLen(end);
        if (n < 0) return false;
        f.payloadLen = n;
        pos += n;
        continue;
      }
      case 50: {
        const n = readLen(end);
        if (n < 0) return false;
        f.contentTypeOff = pos;
        f.contentTypeLen = n;
        pos += n;
        continue;
      }
      case 58: {
        const n = readLen(end);
        if (n < 0) return false;
        const subEnd = pos + n;
        if (!scanTx(f, subEnd)) return false;
        pos = subEnd;
        continue;
      }
    }
    if (!skip(tag & 7, end)) return false;
  }
  return true;
}

/** Byte equality of `a[aOff, aOff+len)` and `b[bOff, bOff+len)` (not constant-time: public data). */
export function sameBytes(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/**
 * Like {@link sameBytes} over DataViews of the same bytes, four bytes per step (hashes,
 * signatures and identities are compared per record on the hot path).
 */
export function sameWords(a: DataView, aOff: number, b: DataView, bOff: number, len: number): boolean {
  let i = 0;
  for (; i + 4 <= len; i += 4) if (a.getInt32(aOff + i) !== b.getInt32(bOff + i)) return false;
  for (; i < len; i++) if (a.getUint8(aOff + i) !== b.getUint8(bOff + i)) return false;
  return true;
}

/** Whether `data[off, off+len)` are all zero. */
export function allZero(data: Uint8Array, off: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (data[off + i] !== 0) return false;
  return true;
}
