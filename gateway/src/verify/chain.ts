/**
 * @module verify/chain
 * Per-UE record chain checks [VER-3] [GEN-2], pure. A UE numbers its records 1, 2, 3, … and puts
 * the SHA-256 of the previous record's body into each body (32 zero bytes for record 1), so a
 * verifier that sees authentic records (UE signature checked) in some order can name what
 * happened to the chain:
 *
 * - `GAP`: records are missing before this one (`missing` says how many);
 * - `FORK`: this record's previous hash is not the hash of the record before it, or another
 *   record with the same sequence number but other content was seen — two histories;
 * - `REPLAY`: the very same record (same sequence, same hash) was seen before;
 * - `REORDERED`: a record with a higher sequence number was seen before this one.
 *
 * The tracker consumes records in presentation order. With `assumeUnique` (the gateway store
 * guarantees one record per UE and sequence and hands them over sorted), it keeps O(1) state;
 * otherwise it remembers every sequence number seen, to tell replays from forks.
 * Only authentic records should be fed: a record whose signature failed is "missing".
 */

/** What the chain says about one record. */
export const Finding = {
  OK: 0,
  GAP: 1,
  FORK: 2,
  REPLAY: 3,
  REORDERED: 4,
  /** The first record of a tracker started mid-chain: judged later, against what came before. */
  PENDING: 5,
} as const;
export type Finding = (typeof Finding)[keyof typeof Finding];

export const FINDING_NAMES: Readonly<Record<Finding, string>> = {
  [Finding.OK]: 'OK',
  [Finding.GAP]: 'CHAIN_GAP',
  [Finding.FORK]: 'RECORD_FORK',
  [Finding.REPLAY]: 'RECORD_REPLAYED',
  [Finding.REORDERED]: 'RECORD_REORDERED',
  [Finding.PENDING]: 'PENDING',
};

/** Whether a finding disqualifies the record itself (not just reports on its neighbours). */
export function findingInvalidates(f: Finding): boolean {
  return f === Finding.FORK || f === Finding.REPLAY;
}

export interface ChainOptions {
  /**
   * A chain must start at sequence 1 (previous hash all zero). With false, the first record may
   * be anywhere (a data package cut from a longer chain); default true.
   */
  requireGenesis?: boolean;
  /** Records come sorted by sequence with no duplicates (gateway store); default false. */
  assumeUnique?: boolean;
  /** The first record seen continues a chain judged elsewhere: report it PENDING. */
  startsMidChain?: boolean;
}

/** The tail of a chain: what the next record must link to. */
export interface ChainTail {
  sequence: number;
  hash: Uint8Array;
}

function equal32(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  // first bytes differ for almost any two different hashes: fail fast, then check the rest
  for (let i = 0; i < 32; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

function isZero32(a: Uint8Array, off: number): boolean {
  for (let i = 0; i < 32; i++) if (a[off + i] !== 0) return false;
  return true;
}

const hexOf = (b: Uint8Array, off: number): string => Buffer.from(b.buffer, b.byteOffset + off, 32).toString('hex');

/**
 * Follows one UE's chain. Hashes are passed as (buffer, offset) pairs so callers can point into
 * packed arrays without copying.
 *
 * @example
 * const t = new ChainTracker();
 * t.observe(1, zeros, 0, h1, 0); // Finding.OK
 * t.observe(3, h2, 0, h3, 0);    // Finding.GAP, t.missing === 1
 */
export class ChainTracker {
  readonly #requireGenesis: boolean;
  readonly #unique: boolean;
  #pending: boolean;
  #lastSeq = 0;
  // the tail's hash, by reference (buffer + offset): no copy per record on the hot path
  #tailBuf: Uint8Array = new Uint8Array(32);
  #tailOff = 0;
  #started = false;
  // sequence -> hash (hex), only without assumeUnique
  readonly #seen: Map<number, string> | null;
  /** Records missing before the last GAP finding. */
  missing = 0;

  constructor(opts: ChainOptions = {}) {
    this.#requireGenesis = opts.requireGenesis ?? true;
    this.#unique = opts.assumeUnique ?? false;
    this.#pending = opts.startsMidChain ?? false;
    this.#seen = this.#unique ? null : new Map();
  }

  /** The highest linked record so far (undefined before any). */
  get tail(): ChainTail | undefined {
    return this.#started ? { sequence: this.#lastSeq, hash: this.#tailBuf.slice(this.#tailOff, this.#tailOff + 32) } : undefined;
  }

  /** Continues from a tail judged elsewhere (the previous part of the same chain). */
  resume(tail: ChainTail | undefined): void {
    this.#pending = false;
    if (!tail) return;
    this.#started = true;
    this.#lastSeq = tail.sequence;
    this.#tailBuf = tail.hash.slice(0, 32);
    this.#tailOff = 0;
  }

  /**
   * Judges the next authentic record: its sequence number, its previous-hash field and its own
   * hash (SHA-256 of the body). The hash is kept by reference: its bytes must not change while
   * this record is the tail.
   */
  observe(seq: number, prev: Uint8Array, prevOff: number, hash: Uint8Array, hashOff: number): Finding {
    const next = seq === this.#lastSeq + 1;
    const eqTail = this.#started && (next ? equal32(prev, prevOff, this.#tailBuf, this.#tailOff) : seq === this.#lastSeq && equal32(this.#tailBuf, this.#tailOff, hash, hashOff));
    return this.observeLinked(seq, eqTail, seq === 1 && isZero32(prev, prevOff), hash, hashOff);
  }

  /**
   * {@link observe} for callers that compared bytes themselves, in bulk: `eqTail` says whether
   * the record's previous hash equals the tail's hash (when seq = tail + 1) or whether its own
   * hash equals the tail's hash (when seq = tail); `prevZero` whether the previous hash is all
   * zero (sequence 1). Ignored in other cases.
   */
  observeLinked(seq: number, eqTail: boolean, prevZero: boolean, hash: Uint8Array, hashOff: number): Finding {
    this.missing = 0;
    if (this.#seen !== null) {
      const before = this.#seen.get(seq);
      if (before !== undefined) return before === hexOf(hash, hashOff) ? Finding.REPLAY : Finding.FORK;
      this.#seen.set(seq, hexOf(hash, hashOff));
    }
    if (this.#pending) {
      this.#pending = false;
      this.#advance(seq, hash, hashOff);
      return Finding.PENDING;
    }
    if (!this.#started) {
      this.#advance(seq, hash, hashOff);
      if (seq === 1) return prevZero ? Finding.OK : Finding.FORK;
      if (!this.#requireGenesis) return Finding.OK;
      this.missing = seq - 1;
      return Finding.GAP;
    }
    if (seq === this.#lastSeq) {
      // only reachable with assumeUnique: a duplicate slipped through
      return eqTail ? Finding.REPLAY : Finding.FORK;
    }
    if (seq < this.#lastSeq) return Finding.REORDERED;
    if (seq === this.#lastSeq + 1) {
      this.#advance(seq, hash, hashOff);
      return eqTail ? Finding.OK : Finding.FORK;
    }
    this.missing = seq - this.#lastSeq - 1;
    this.#advance(seq, hash, hashOff);
    return Finding.GAP;
  }

  #advance(seq: number, hash: Uint8Array, hashOff: number): void {
    this.#started = true;
    this.#lastSeq = seq;
    this.#tailBuf = hash;
    this.#tailOff = hashOff;
  }
}
