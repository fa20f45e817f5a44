/**
 * @module verify/core
 * Judges one {@link VerifyTask} [VER-3] [GEN-2]: the per-record work of the verification engine,
 * run on worker threads (or inline). No I/O; every byte of the task is treated as hostile.
 *
 * For each record, in the order of `consumer/src/verify.ts` `checkRecord` (so a consumer and
 * the gateway reach the same verdict on the same record):
 * 1. the SignedRecord and its RecordBody decode (MALFORMED_MESSAGE), it names an endorsement
 *    (MISSING_FIELD), the endorsement was usable (the window's code, e.g. AS_UNAVAILABLE,
 *    UNKNOWN_TX, INVALID_ENDORSEMENT, NOT_LATEST), and the record's tx hash/ledger match it
 *    (INVALID_ENDORSEMENT);
 * 2. the UE signature with the endorsed key (INVALID_SIGNATURE): one `node:crypto` verify per
 *    record in single mode; in batch mode one verify per batch (cached) and the record's
 *    membership in the signed RFC 9162 tree — by rebuilding the whole tree when the task holds
 *    the whole batch, by checking each record's inclusion path otherwise;
 * 3. the identity in the body is the one bound in the endorsement (IDENTITY_MISMATCH);
 * 4. the signature time lies in the contract period of the UE's latest endorsement
 *    (SIGNED_OUTSIDE_CONTRACT) and before its termination (SIGNED_AFTER_TERMINATION);
 * 5. the per-UE chain over authentic records (chain.ts): forks and replays invalidate the
 *    record, gaps and reordering are findings.
 *
 * Hashing (record hashes, leaf hashes, tree nodes) goes through the multi-buffer SHA-256 kernel
 * in big batches; UE keys are imported once per worker. Per record the hot path allocates
 * nothing: records are read by the one-pass reader (wire.ts `scanRecord`) in chunks of
 * ~256 KiB that are copied into the kernel's arena and hashed while still in cache, working
 * columns are reused across tasks, and byte comparisons run in bulk (`eqMany`).
 */
import { verify as osslVerify, type KeyObject } from 'node:crypto';
import { UeIdentity } from '../../../proto/gen/divs/v1/common.ts';
import { Domain, concat, pae, paeHead, u64be, utf8, writeU64be } from '../../../protocol/src/bytes.ts';
import { SignatureSuite, importPublicKey, nodeVerify, type Suite } from '../../../protocol/src/suites.ts';
import { ChainTracker, Finding, findingInvalidates } from './chain.ts';
import { Sha256Many } from '../../../protocol/src/sha256x4.ts';
import { S_VALID, statusOf, type TaskResult, type VerifyTask, type WindowSpec } from './task.ts';
import { RecordFields, sameBytes, scanMessage, scanPath, scanRecord } from './wire.ts';
import { SCAN_STRIDE, fieldsFromScan, scanRecords, verifierHasher } from './scan-kernel.ts';

const S_MALFORMED = statusOf('MALFORMED_MESSAGE');
const S_MISSING = statusOf('MISSING_FIELD');
const S_UNKNOWN_TX = statusOf('UNKNOWN_TX');
const S_BAD_ENDORSEMENT = statusOf('INVALID_ENDORSEMENT');
const S_BAD_SIGNATURE = statusOf('INVALID_SIGNATURE');
const S_IDENTITY = statusOf('IDENTITY_MISMATCH');
const S_OUTSIDE = statusOf('SIGNED_OUTSIDE_CONTRACT');
const S_AFTER = statusOf('SIGNED_AFTER_TERMINATION');
const S_FORK = statusOf('RECORD_FORK');
const S_REPLAY = statusOf('RECORD_REPLAYED');
/** Internal: not judged yet (never leaves this module). */
const PENDING = 255;
/** Remembered single-mode signatures per worker (~250 bytes each); cleared when full. */
const VERIFIED_MAX = 262_144;

/** A record of a complete batch whose root matched, waiting for its inclusion path comparisons. */
const PATH_PENDING = 254;

const MAX_BATCH = 2 ** 32;
const KEY_CACHE_MAX = 200_000;
const BATCH_CACHE_MAX = 100_000;

/** A window prepared for this worker: key imported, ledger id as bytes. */
interface LiveWindow {
  spec: WindowSpec;
  status: number;
  key: KeyObject | null;
  suite: Suite;
  ledger: Uint8Array;
  /** Arena offsets of the window's tx hash and bound identity (-1: none), for bulk compares. */
  txHashAt: number;
  identityAt: number;
}

/**
 * The verifier of one worker thread: its hasher, imported UE keys and verified batch signatures
 * persist across tasks.
 */
export class VerifierCore {
  readonly hasher: Sha256Many;
  readonly #keys = new Map<string, KeyObject | null>();
  readonly #batchSigs = new Map<string, boolean>();
  /** Single-mode signatures that verified, for tasks that ask to remember (see VerifyTask.remember). */
  readonly #verified = new Set<string>();

  /** Drops the imported UE keys and the verified batch signatures (see VerifierPool.forgetCaches). */
  forgetCaches(): void {
    this.#keys.clear();
    this.#batchSigs.clear();
    this.#verified.clear();
  }
  readonly #f = new RecordFields();

  #pae = new Uint8Array(4096);
  readonly #paeHeader = paeHead(Domain.record);

  constructor(hasher: Sha256Many = verifierHasher()) {
    this.hasher = hasher;
  }

  /** `PAE("divs/record", data[off, off+len))` in a reused buffer (valid until the next call). */
  #recordPae(data: Uint8Array, off: number, len: number): Uint8Array {
    const head = this.#paeHeader;
    const total = head.length + 8 + len;
    if (this.#pae.length < total) this.#pae = new Uint8Array(Math.max(total, this.#pae.length * 2));
    const b = this.#pae;
    b.set(head, 0);
    writeU64be(b, head.length, len);
    b.set(data.subarray(off, off + len), head.length + 8);
    return b.subarray(0, total);
  }

  #der = new Uint8Array(80);

  /**
   * `nodeVerify(suite, key, msg, sig)` for the hot path. ECDSA P1363 signatures are DER-encoded
   * into a reused buffer instead of a fresh one per record: a new off-heap buffer for every
   * OpenSSL call costs more than the rest of the record's checks. Same answers as nodeVerify
   * (the window's key was imported for its suite; any 64 bytes are converted the same way).
   */
  #verify(w: LiveWindow, msg: Uint8Array, sig: Uint8Array): boolean {
    if (w.suite !== SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256 && w.suite !== SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256) {
      return nodeVerify(w.suite, w.key as KeyObject, msg, sig);
    }
    if (sig.length !== 64) return false;
    const der = this.#derOf(sig);
    try {
      return osslVerify('sha256', msg, w.key as KeyObject, der);
    } catch {
      // OpenSSL rejects some encodings by throwing: not a valid signature
      return false;
    }
  }

  /** DER of a 64-byte P1363 signature, in the reused buffer (valid until the next call). */
  #derOf(sig: Uint8Array): Uint8Array {
    const der = this.#der;
    let p = 2;
    for (let half = 0; half < 64; half += 32) {
      // ASN.1 INTEGER: minimal, non-negative (a leading zero when the top bit is set)
      let start = half;
      while (start < half + 31 && sig[start] === 0) start++;
      const pad = (sig[start] as number) & 0x80 ? 1 : 0;
      const len = half + 32 - start + pad;
      der[p++] = 0x02;
      der[p++] = len;
      if (pad) der[p++] = 0;
      for (let k = start; k < half + 32; k++) der[p++] = sig[k] as number;
    }
    der[0] = 0x30;
    der[1] = p - 2;
    return der.subarray(0, p);
  }

  /** Test hook: the DER the single-mode check hands OpenSSL for a P1363 signature. */
  derOf(sig: Uint8Array): Uint8Array {
    return this.#derOf(sig).slice();
  }

  /** Test hook: the PAE bytes the single-mode check verifies for a body. */
  recordPaeOf(body: Uint8Array): Uint8Array {
    return this.#recordPae(body, 0, body.length).slice();
  }

  #key(w: WindowSpec): KeyObject | null {
    const id = `${w.suite}:${w.ueKey}:${Buffer.from(w.publicKey).toString('hex')}`;
    let k = this.#keys.get(id);
    if (k === undefined) {
      try {
        k = importPublicKey(w.suite as Suite, w.publicKey);
      } catch {
        // an endorsed key that does not import makes the endorsement unusable, not the worker
        k = null;
      }
      if (this.#keys.size >= KEY_CACHE_MAX) this.#keys.clear();
      this.#keys.set(id, k);
    }
    return k;
  }

  #live(w: WindowSpec): LiveWindow {
    let status = w.error === null ? S_VALID : statusOf(w.error);
    const key = status === S_VALID ? this.#key(w) : null;
    if (status === S_VALID && key === null) status = S_BAD_ENDORSEMENT;
    const h = this.hasher;
    return {
      spec: w,
      status,
      key,
      suite: w.suite as Suite,
      ledger: utf8(w.ledgerId),
      txHashAt: w.txHash.length === 32 ? h.write(w.txHash) : -1,
      identityAt: w.identity ? h.write(w.identity) : -1,
    };
  }

  #scratch: Scratch | null = null;

  /** Working columns for `n` records: reused while big enough (their contents are stale). */
  #scratchFor(n: number): Scratch {
    if (this.#scratch === null || this.#scratch.capacity < n) this.#scratch = new Scratch(Math.max(n, 1024));
    return this.#scratch;
  }

  /** Judges every record of a task. Never throws for bad records: they get a status. */
  run(task: VerifyTask): TaskResult {
    const t0 = performance.now();
    const { data, offsets, segments } = task;
    const n = offsets.length - 1;
    const f = this.#f;
    const h = this.hasher;
    h.reset();

    // arena: the packed bytes, one 32-byte slot per record for its hash and one for its leaf
    // hash, the windows' tx hashes and identities, and 32 zero bytes (genesis previous hash).
    // Everything is reserved before any job runs, so the memory does not grow under the views.
    const base = h.alloc(data.length);
    const hashesAt = h.alloc(32 * n);
    const leavesAt = h.alloc(32 * n);
    const zeroAt = h.alloc(32);
    h.bytes.fill(0, zeroAt, zeroAt + 32);
    const windows = task.windows.map((w) => this.#live(w));
    const byTx = new Map<number, LiveWindow[]>();
    for (const w of windows) {
      const list = byTx.get(w.spec.txId);
      if (list) list.push(w);
      else byTx.set(w.spec.txId, [w]);
    }

    // results (fresh: they are transferred to the caller)
    const status = new Uint8Array(n).fill(PENDING);
    const finding = new Uint8Array(n);
    const missing = new Uint32Array(n);
    const sequence = new Float64Array(n);
    // per-record working columns, reused across tasks (a task allocates nothing per record)
    const sc = this.#scratchFor(n);
    const { timestamp, bodyOff, bodyLen, sigOff, sigLen, prevOff, identOff, identLen, isBatch, bIndex, bSize, rootOff, batchOff, batchLen, pathCount, win } = sc;
    // bulk byte comparisons queued per record (-1: none)
    const { idCmp, txCmp, rootCmp, sigCmp, hasTx, txHashBad, proofBad } = sc;
    let digests = 0;
    let lastWin: LiveWindow | null = null;

    // ---- 1. decode, find the endorsement window, queue hashes and comparisons. In chunks: a
    // chunk is copied into the arena, read, and its record and leaf hashes computed while its
    // bytes are still in cache (one trip through memory per byte instead of three).
    // the record offsets, for the WebAssembly record reader
    const offsetsAt = h.alloc(4 * (n + 1));
    new Uint32Array(h.bytes.buffer, offsetsAt, n + 1).set(offsets.subarray(0, n + 1));
    for (let c0 = 0; c0 < n; ) {
      const c1 = chunkEnd(offsets, c0, n);
      const from = offsets[c0] as number;
      const to = offsets[c1] as number;
      h.bytes.set(data.subarray(from, to), base + from);
      // the chunk's records read in one call (released after the chunk: nothing else is
      // allocated meanwhile); null without the kernel
      const top = h.mark();
      const scanAt = h.alloc(SCAN_STRIDE * (c1 - c0));
      const scanned = scanRecords(h, offsetsAt + 4 * c0, c1 - c0, base, scanAt) ? { i32: new Int32Array(h.bytes.buffer, scanAt, (SCAN_STRIDE * (c1 - c0)) >> 2), f64: new Float64Array(h.bytes.buffer, scanAt, (SCAN_STRIDE * (c1 - c0)) >> 3) } : null;
      const r1 = readChunk(c0, c1, data, offsets, f, h, base, hashesAt, byTx, lastWin, status, sequence, sc, scanned);
      h.release(top);
      digests += r1.digests;
      lastWin = r1.lastWin;
      h.run();
      c0 = c1;
    }
    // batch leaves over the record hashes just computed (one compression block each)
    let leaves = 0;
    for (let i = 0; i < n; i++) {
      if (isBatch[i] !== 1) continue;
      h.jobInto(leavesAt + 32 * i, 0x00, hashesAt + 32 * i, 32);
      leaves++;
    }
    if (leaves > 0) {
      h.run();
      digests += leaves;
    }
    const eq = h.compareAll();

    // ---- 1b. decisions in checkRecord order: decodes, names an endorsement, usable, tx hash
    for (let i = 0; i < n; i++) {
      if (status[i] === S_MALFORMED) continue;
      const c = idCmp[i] as number;
      if (!(c >= 0 && eq[c] === 1) && identOff[i] as number >= 0 && !scanMessage(data, identOff[i] as number, identLen[i] as number)) status[i] = S_MALFORMED;
      else if (hasTx[i] !== 1) status[i] = S_MISSING;
      else if (win[i] === null) status[i] = S_UNKNOWN_TX;
      else if ((win[i] as LiveWindow).status !== S_VALID) status[i] = (win[i] as LiveWindow).status;
      else if (txHashBad[i] === 1 || (txCmp[i] as number >= 0 && eq[txCmp[i] as number] !== 1)) status[i] = S_BAD_ENDORSEMENT;
      else if (sigLen[i] === 0 || proofBad[i] === 1) status[i] = S_BAD_SIGNATURE;
    }

    // ---- 2a. batch mode: one signature per batch, membership by tree rebuild or paths
    let signatureChecks = 0;
    let batchGroups = 0;
    const fullGroups: { start: number; end: number; root: number }[] = [];
    const pathRecords: { i: number; root: number }[] = [];
    for (let i = 0; i < n; ) {
      if (isBatch[i] !== 1 || status[i] !== PENDING) {
        i++;
        continue;
      }
      // a group: consecutive records of one batch (same window, size, root and signature)
      let j = i + 1;
      while (j < n && isBatch[j] === 1 && status[j] === PENDING && win[j] === win[i] && bSize[j] === bSize[i] && rootCmp[j] as number >= 0 && eq[rootCmp[j] as number] === 1 && sigCmp[j] as number >= 0 && eq[sigCmp[j] as number] === 1) j++;
      batchGroups++;
      const w = win[i] as LiveWindow;
      const rootAt = base + (rootOff[i] as number);
      const root = data.subarray(rootOff[i] as number, (rootOff[i] as number) + 32);
      const sig = data.subarray(sigOff[i] as number, (sigOff[i] as number) + (sigLen[i] as number));
      const size = bSize[i] as number;
      const cacheKey = `${w.spec.ueKey}:${Buffer.from(root).toString('hex')}:${size}:${Buffer.from(sig).toString('hex')}`;
      let sigOk = this.#batchSigs.get(cacheKey);
      if (sigOk === undefined) {
        signatureChecks++;
        sigOk = nodeVerify(w.suite, w.key as KeyObject, pae(Domain.recordBatch, concat(root, u64be(size))), sig);
        if (this.#batchSigs.size >= BATCH_CACHE_MAX) this.#batchSigs.clear();
        this.#batchSigs.set(cacheKey, sigOk);
      }
      if (!sigOk) {
        for (let k = i; k < j; k++) status[k] = S_BAD_SIGNATURE;
      } else {
        let whole = j - i === size;
        for (let k = i; whole && k < j; k++) if (bIndex[k] !== k - i) whole = false;
        if (whole) fullGroups.push({ start: i, end: j, root: rootAt });
        else for (let k = i; k < j; k++) pathRecords.push({ i: k, root: rootAt });
      }
      i = j;
    }

    // whole batches: rebuild every tree level by level, all groups at once. Why this proves
    // membership: the UE signed (root, size); the group holds `size` records whose proofs name
    // that root and size and whose indices are exactly 0 .. size-1, in order; the RFC 9162 tree
    // over their leaves SHA-256(0x00 || SHA-256(body)) is rebuilt here from the bodies. If it
    // yields the signed root, then (SHA-256 being collision resistant, leaves and nodes
    // domain-separated by their 0x00 / 0x01 prefixes) every body is the leaf at its index of
    // the tree the UE signed. Each record's own inclusion path is then compared with the
    // siblings the rebuilt tree gives it (32-byte comparisons, no hashing), so a record whose
    // path bytes were altered fails here exactly as it fails `checkRecord` on its own. If the
    // rebuilt root differs, every record of the group falls back to its own path below, which
    // is how a tampered body is pinned to its record.
    if (fullGroups.length > 0) {
      // every level of every group is kept: the path check below reads the siblings from them
      const levelsOf: Int32Array[][] = fullGroups.map((g) => {
        const l = new Int32Array(g.end - g.start);
        for (let k = 0; k < l.length; k++) l[k] = leavesAt + 32 * (g.start + k);
        return [l];
      });
      for (;;) {
        let more = false;
        for (const levels of levelsOf) {
          const cur = levels[levels.length - 1] as Int32Array;
          if (cur.length === 1) continue;
          more = true;
          const next = new Int32Array(Math.ceil(cur.length / 2));
          const slots = h.alloc(32 * Math.floor(cur.length / 2));
          for (let k = 0; k + 1 < cur.length; k += 2) {
            const dst = slots + 16 * k;
            h.jobInto(dst, 0x01, cur[k] as number, 32, cur[k + 1] as number, 32);
            next[k / 2] = dst;
          }
          if (cur.length % 2 === 1) next[next.length - 1] = cur[cur.length - 1] as number;
          digests += Math.floor(cur.length / 2);
          levels.push(next);
        }
        if (!more) break;
        h.run();
      }
      const mem = h.bytes;
      // the rebuilt root proves every body; each record's own path must then be the one the
      // tree gives it (its siblings, bottom-up, skipping levels where its node is promoted),
      // so that the gateway and a holder of that record alone (`checkRecord`) agree on it
      const pathAt = sc.pathAt;
      // per record of a matching group: its comparisons [cmpFrom, cmpTo) and whether its path
      // has the right shape (typed columns: no object per record)
      const { cmpFrom, cmpTo, pathOk } = sc;
      let checked = 0;
      /** Queues every record's path, level by level, against the rebuilt tree (exact per record). */
      const queueEach = (g: { start: number; end: number }, levels: Int32Array[]): void => {
        const depth = levels.length - 1;
        for (let k = g.start; k < g.end; k++) {
          const count = pathCount[k] as number;
          // a canonical run of path hashes is read in place; anything else is walked once
          const run = sc.pathOff[k] as number;
          let ok = run >= 0 || scanPath(data, batchOff[k] as number, batchLen[k] as number, pathAt, 0, count) === count;
          let idx = k - g.start;
          let p = 0;
          let from = -1;
          let to = -1;
          for (let L = 0; ok && L < depth; L++) {
            const level = levels[L] as Int32Array;
            const sib = idx ^ 1;
            if (sib < level.length) {
              if (p >= count) ok = false;
              else {
                to = h.compare(base + (run >= 0 ? run + 34 * p : (pathAt[p] as number)), level[sib] as number, 32);
                if (from < 0) from = to;
                p++;
              }
            }
            idx >>= 1;
          }
          cmpFrom[k] = from;
          cmpTo[k] = to + 1;
          pathOk[k] = ok && p === count ? 1 : 0;
          status[k] = PATH_PENDING;
          checked++;
        }
      };
      // A whole batch of 2^d records whose paths are all canonical runs of d hashes: records of
      // one 2^L-block share their path from level L up, so instead of d comparisons per record
      // it takes one per block and level — each block's path (from level L+1 up, one range) equals
      // its sibling block's, and each block's level-L hash is the tree's — about 3 per record.
      // Any mismatch sends the group to the exact per-record check, which names the records.
      const fast: { gi: number; from: number; to: number }[] = [];
      const queueShared = (g: { start: number; end: number }, levels: Int32Array[]): boolean => {
        const size = g.end - g.start;
        const depth = levels.length - 1;
        if (size < 2 || (size & (size - 1)) !== 0) return false;
        for (let k = g.start; k < g.end; k++) if ((sc.pathOff[k] as number) < 0 || pathCount[k] !== depth) return false;
        let from = -1;
        let to = -1;
        for (let L = 0; L < depth; L++) {
          const level = levels[L] as Int32Array;
          const step = 1 << L;
          for (let i = 0; i < size; i += step) {
            const r = g.start + i;
            const run = base + (sc.pathOff[r] as number);
            // this block's level-L hash is its sibling node in the tree
            to = h.compare(run + 34 * L, level[(i >> L) ^ 1] as number, 32);
            if (from < 0) from = to;
            // a left block's path above level L is its right sibling block's (tags and lengths too)
            if ((i & (2 * step - 1)) === 0 && L + 1 < depth) to = h.compare(run + 34 * (L + 1) - 2, base + (sc.pathOff[r + step] as number) + 34 * (L + 1) - 2, 34 * (depth - 1 - L));
          }
        }
        fast.push({ gi: -1, from, to: to + 1 });
        for (let k = g.start; k < g.end; k++) status[k] = PATH_PENDING;
        return true;
      };
      fullGroups.forEach((g, gi) => {
        const levels = levelsOf[gi] as Int32Array[];
        const top = (levels[levels.length - 1] as Int32Array)[0] as number;
        // a tampered body changes the root: find out which records still prove membership
        if (!sameBytes(mem, top, mem, g.root, 32)) {
          for (let k = g.start; k < g.end; k++) pathRecords.push({ i: k, root: g.root });
          return;
        }
        if (queueShared(g, levels)) (fast[fast.length - 1] as { gi: number }).gi = gi;
        else queueEach(g, levels);
      });
      if (checked > 0 || fast.length > 0) {
        let same = h.compareAll();
        // shared checks that failed: the same groups record by record (a second, rare round)
        const again: number[] = [];
        for (const f of fast) {
          let ok = true;
          for (let c = f.from; ok && c < f.to; c++) if (same[c] !== 1) ok = false;
          const g = fullGroups[f.gi] as { start: number; end: number };
          if (ok) for (let k = g.start; k < g.end; k++) status[k] = S_VALID;
          else again.push(f.gi);
        }
        const settle = (): void => {
          for (let k = 0; k < n; k++) {
            if (status[k] !== PATH_PENDING) continue;
            let ok = pathOk[k] === 1;
            for (let c = cmpFrom[k] as number; ok && c >= 0 && c < (cmpTo[k] as number); c++) if (same[c] !== 1) ok = false;
            status[k] = ok ? S_VALID : S_BAD_SIGNATURE;
          }
        };
        if (again.length === 0) settle();
        else {
          // the per-record groups of the first round are settled with its results first
          if (checked > 0) {
            for (const gi of again) {
              const g = fullGroups[gi] as { start: number; end: number };
              for (let k = g.start; k < g.end; k++) status[k] = PENDING;
            }
            settle();
          }
          checked = 0;
          for (const gi of again) queueEach(fullGroups[gi] as { start: number; end: number }, levelsOf[gi] as Int32Array[]);
          same = h.compareAll();
          settle();
        }
      }
    }

    // partial batches (or a failed rebuild): RFC 9162 inclusion path per record, step by step,
    // up to the root whose signature was checked
    if (pathRecords.length > 0) {
      const m = pathRecords.length;
      const cur = new Int32Array(m);
      const fn = new Float64Array(m);
      const sn = new Float64Array(m);
      const active = new Uint8Array(m).fill(1);
      const pathAt = new Int32Array(32 * m);
      for (let r = 0; r < m; r++) {
        const i = (pathRecords[r] as { i: number }).i;
        cur[r] = leavesAt + 32 * i;
        fn[r] = bIndex[i] as number;
        sn[r] = (bSize[i] as number) - 1;
        scanPath(data, batchOff[i] as number, batchLen[i] as number, pathAt, 32 * r, pathCount[i] as number);
      }
      for (let step = 0; ; step++) {
        let queued = 0;
        for (let r = 0; r < m; r++) {
          if (active[r] === 0) continue;
          const { i, root } = pathRecords[r] as { i: number; root: number };
          if (step === pathCount[i]) {
            active[r] = 0;
            const mem = h.bytes;
            status[i] = sn[r] === 0 && sameBytes(mem, cur[r] as number, mem, root, 32) ? S_VALID : S_BAD_SIGNATURE;
            continue;
          }
          if (sn[r] === 0) {
            active[r] = 0;
            status[i] = S_BAD_SIGNATURE;
            continue;
          }
          const p = base + (pathAt[32 * r + step] as number);
          let a = fn[r] as number;
          let b = sn[r] as number;
          if (a % 2 === 1 || a === b) {
            cur[r] = h.job(0x01, p, 32, cur[r] as number, 32);
            if (a % 2 === 0) {
              while (a % 2 === 0 && a !== 0) {
                a = Math.floor(a / 2);
                b = Math.floor(b / 2);
              }
            }
          } else {
            cur[r] = h.job(0x01, cur[r] as number, 32, p, 32);
          }
          fn[r] = Math.floor(a / 2);
          sn[r] = Math.floor(b / 2);
          queued++;
        }
        if (queued === 0) break;
        digests += queued;
        h.run();
      }
    }

    // ---- 2b. single mode: one OpenSSL verify per record, over PAE("divs/record", body) built
    // in a reused buffer (the same bytes pae() makes, without three allocations per record)
    const remember = task.remember === true;
    for (let i = 0; i < n; i++) {
      if (status[i] !== PENDING) continue;
      const w = win[i] as LiveWindow;
      const sig = data.subarray(sigOff[i] as number, (sigOff[i] as number) + (sigLen[i] as number));
      // (key, record hash, signature) already verified: the same bytes give the same answer
      let memo: string | undefined;
      if (remember) {
        memo = `${w.spec.ueKey}:${w.spec.suite}:${Buffer.from(h.bytes.buffer, h.bytes.byteOffset + hashesAt + 32 * i, 32).toString('base64')}:${Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength).toString('base64')}`;
        if (this.#verified.has(memo)) {
          status[i] = S_VALID;
          continue;
        }
      }
      signatureChecks++;
      const bo = bodyOff[i] as number;
      const bl = bodyLen[i] as number;
      const msg = this.#recordPae(data, bo, bl);
      const ok = this.#verify(w, msg, sig);
      status[i] = ok ? S_VALID : S_BAD_SIGNATURE;
      if (ok && memo !== undefined) {
        if (this.#verified.size >= VERIFIED_MAX) this.#verified.clear();
        this.#verified.add(memo);
      }
    }

    // ---- 3, 4. identity binding and signature time, for authentic records
    const authentic = sc.authentic;
    authentic.fill(0, 0, n);
    for (let i = 0; i < n; i++) {
      if (status[i] !== S_VALID) continue;
      authentic[i] = 1;
      const lw = win[i] as LiveWindow;
      const w = lw.spec;
      const c = idCmp[i] as number;
      if (!(c >= 0 && eq[c] === 1) && !sameIdentity(w, data, identOff[i] as number, identLen[i] as number)) {
        status[i] = S_IDENTITY;
        continue;
      }
      const t = timestamp[i] as number;
      if (t < w.startMs || (w.endMs > 0 && t > w.endMs)) status[i] = S_OUTSIDE;
      else if (w.terminationMs > 0 && t >= w.terminationMs) status[i] = S_AFTER;
    }

    // ---- 5. chains, one tracker per segment (heads are judged by the caller): the links are
    // compared in bulk first, each against the record the tracker will hold as its tail then
    const segCount = segments.length;
    const { linkCmp, zeroCmp } = sc;
    linkCmp.fill(-1, 0, n);
    zeroCmp.fill(-1, 0, n);
    for (let s = 0; s < segCount; s++) {
      const from = segments[s] as number;
      const to = s + 1 < segCount ? (segments[s + 1] as number) : n;
      let tail = -1;
      for (let i = from; i < to; i++) {
        if (authentic[i] !== 1) continue;
        const seq = sequence[i] as number;
        if (seq === 1) zeroCmp[i] = h.compare(base + (prevOff[i] as number), zeroAt, 32);
        if (tail >= 0) {
          const ts = sequence[tail] as number;
          if (seq === ts + 1) linkCmp[i] = h.compare(base + (prevOff[i] as number), hashesAt + 32 * tail, 32);
          else if (seq === ts) linkCmp[i] = h.compare(hashesAt + 32 * i, hashesAt + 32 * tail, 32);
        }
        if (tail < 0 || seq > (sequence[tail] as number)) tail = i;
      }
    }
    const links = h.compareAll();
    const mem = h.bytes;
    const headIndex = new Int32Array(segCount).fill(-1);
    const tailIndex = new Int32Array(segCount).fill(-1);
    const headPrev = new Uint8Array(32 * segCount);
    for (let s = 0; s < segCount; s++) {
      const from = segments[s] as number;
      const to = s + 1 < segCount ? (segments[s + 1] as number) : n;
      const tracker = new ChainTracker({ assumeUnique: true, startsMidChain: true });
      for (let i = from; i < to; i++) {
        // context records (outside the selection) are links of the same chain: tracked, not counted
        if (authentic[i] !== 1) continue;
        const lc = linkCmp[i] as number;
        const zc = zeroCmp[i] as number;
        const fi = tracker.observeLinked(sequence[i] as number, lc >= 0 && links[lc] === 1, zc >= 0 && links[zc] === 1, mem, hashesAt + 32 * i);
        finding[i] = fi;
        if (fi === Finding.PENDING) {
          headIndex[s] = i;
          headPrev.set(mem.subarray(base + (prevOff[i] as number), base + (prevOff[i] as number) + 32), 32 * s);
        } else if (fi === Finding.GAP) {
          missing[i] = tracker.missing;
        } else if (findingInvalidates(fi as Finding) && status[i] === S_VALID) {
          status[i] = fi === Finding.FORK ? S_FORK : S_REPLAY;
        }
        tailIndex[s] = i;
      }
    }

    // the scratch columns outlive the task: drop its windows
    win.fill(null, 0, n);
    const hashes = mem.slice(hashesAt, hashesAt + 32 * n);
    // records that never got a hash (malformed) keep zeros
    for (let i = 0; i < n; i++) if (status[i] === S_MALFORMED) hashes.fill(0, 32 * i, 32 * i + 32);
    return {
      id: task.id,
      status,
      finding,
      hashes,
      missing,
      sequence,
      headIndex,
      tailIndex,
      headPrev,
      stats: { records: n, signatureChecks, batchGroups, digests, blocks: h.blocks, ms: performance.now() - t0 },
    };
  }
}

/**
 * Phase 1 of {@link VerifierCore.run} over records [c0, c1): reads each record, finds its
 * window, queues its record and leaf hash and its byte comparisons. A function of its own so
 * the optimizing compiler sees the hot loop by itself.
 */
function readChunk(
  c0: number,
  c1: number,
  data: Uint8Array,
  offsets: Uint32Array,
  f: RecordFields,
  h: Sha256Many,
  base: number,
  hashesAt: number,
  byTx: Map<number, LiveWindow[]>,
  lastWinIn: LiveWindow | null,
  status: Uint8Array,
  sequence: Float64Array,
  sc: Scratch,
  scanned: { i32: Int32Array; f64: Float64Array } | null,
): { digests: number; lastWin: LiveWindow | null } {
  const { timestamp, bodyOff, bodyLen, sigOff, sigLen, prevOff, identOff, identLen, isBatch, bIndex, bSize, rootOff, batchOff, batchLen, pathCount, win } = sc;
  const { idCmp, txCmp, rootCmp, sigCmp, hasTx, txHashBad, proofBad } = sc;
  let lastWin = lastWinIn;
  let digests = 0;
  isBatch.fill(0, c0, c1);
  hasTx.fill(0, c0, c1);
  txHashBad.fill(0, c0, c1);
  proofBad.fill(0, c0, c1);
  idCmp.fill(-1, c0, c1);
  txCmp.fill(-1, c0, c1);
  rootCmp.fill(-1, c0, c1);
  sigCmp.fill(-1, c0, c1);
  win.fill(null, c0, c1);
  for (let i = c0; i < c1; i++) {
    if (scanned !== null && scanned.i32[(i - c0) * SCAN_WORDS] === 1) fieldsFromScan(scanned.i32, scanned.f64, i - c0, f);
    else if (!scanRecord(data, offsets[i] as number, (offsets[i + 1] as number) - (offsets[i] as number), f)) {
      status[i] = S_MALFORMED;
      continue;
    }
    if (f.sequence < 1 || f.prevLen !== 32) {
      status[i] = S_MALFORMED;
      continue;
    }
    bodyOff[i] = f.bodyOff;
    bodyLen[i] = f.bodyLen;
    sigOff[i] = f.sigOff;
    sigLen[i] = f.sigLen;
    sequence[i] = f.sequence;
    timestamp[i] = f.timestampMs;
    identOff[i] = f.identityOff;
    identLen[i] = f.identityLen;
    prevOff[i] = f.prevOff;
    h.jobInto(hashesAt + 32 * i, -1, base + f.bodyOff, f.bodyLen);
    digests++;
    let w: LiveWindow | null = null;
    if (f.hasTx) {
      hasTx[i] = 1;
      w = lastWin;
      if (w === null || w.spec.txId !== f.txId || !sameLedger(w, data, f)) {
        w = null;
        for (const c of byTx.get(f.txId) ?? []) {
          if (sameLedger(c, data, f)) {
            w = c;
            break;
          }
        }
        if (w !== null) lastWin = w;
      }
    }
    win[i] = w;
    if (w !== null && w.identityAt >= 0 && f.identityOff >= 0 && f.identityLen === (w.spec.identity as Uint8Array).length) idCmp[i] = h.compare(base + f.identityOff, w.identityAt, f.identityLen);
    if (w === null || w.status !== S_VALID) continue;
    if (f.txHashLen > 0) {
      if (f.txHashLen !== 32 || w.txHashAt < 0) txHashBad[i] = 1;
      else txCmp[i] = h.compare(base + f.txHashOff, w.txHashAt, 32);
    }
    if (f.batch) {
      // a proof that cannot be one (sizes, index, hash lengths) never verifies
      if (!f.pathHashes || f.pathCount > 32 || f.batchSize < 1 || f.batchSize > MAX_BATCH || f.batchIndex >= f.batchSize || f.rootLen !== 32) {
        proofBad[i] = 1;
        continue;
      }
      isBatch[i] = 1;
      bIndex[i] = f.batchIndex;
      bSize[i] = f.batchSize;
      rootOff[i] = f.rootOff;
      batchOff[i] = f.batchOff;
      batchLen[i] = f.batchLen;
      pathCount[i] = f.pathCount;
      sc.pathOff[i] = f.pathOff;
      // its leaf, SHA-256(0x00 || record hash), is queued once the record hashes are done
      // same batch as the record before? (root and signature bytes, compared in bulk)
      if (i > 0 && isBatch[i - 1] === 1 && win[i - 1] === w) {
        rootCmp[i] = h.compare(base + f.rootOff, base + (rootOff[i - 1] as number), 32);
        if (sigLen[i - 1] === f.sigLen) sigCmp[i] = h.compare(base + f.sigOff, base + (sigOff[i - 1] as number), f.sigLen);
      }
    }
  }
  return { digests, lastWin };
}

const SCAN_WORDS = SCAN_STRIDE >> 2;

/** Records per phase-1 chunk: about 256 KiB of packed records, at least one record. */
const CHUNK_BYTES = 256 * 1024;

function chunkEnd(offsets: Uint32Array, c0: number, n: number): number {
  const limit = (offsets[c0] as number) + CHUNK_BYTES;
  let c1 = c0 + 1;
  while (c1 < n && (offsets[c1 + 1] as number) <= limit) c1++;
  return c1;
}

/** Per-record working columns of {@link VerifierCore.run}, kept between tasks. */
class Scratch {
  readonly capacity: number;
  /** Offsets of one record's inclusion path hashes (at most 32). */
  readonly pathAt = new Int32Array(32);
  readonly timestamp: Float64Array;
  readonly bodyOff: Int32Array;
  readonly bodyLen: Int32Array;
  readonly sigOff: Int32Array;
  readonly sigLen: Int32Array;
  readonly prevOff: Int32Array;
  readonly identOff: Int32Array;
  readonly identLen: Int32Array;
  readonly isBatch: Uint8Array;
  readonly bIndex: Float64Array;
  readonly bSize: Float64Array;
  readonly rootOff: Int32Array;
  readonly batchOff: Int32Array;
  readonly batchLen: Int32Array;
  readonly pathCount: Uint8Array;
  readonly win: (LiveWindow | null)[];
  readonly idCmp: Int32Array;
  readonly txCmp: Int32Array;
  readonly rootCmp: Int32Array;
  readonly sigCmp: Int32Array;
  readonly hasTx: Uint8Array;
  readonly txHashBad: Uint8Array;
  readonly proofBad: Uint8Array;
  readonly authentic: Uint8Array;
  readonly cmpFrom: Int32Array;
  readonly pathOff: Int32Array;
  readonly cmpTo: Int32Array;
  readonly pathOk: Uint8Array;
  readonly linkCmp: Int32Array;
  readonly zeroCmp: Int32Array;

  constructor(n: number) {
    this.capacity = n;
    this.timestamp = new Float64Array(n);
    this.bodyOff = new Int32Array(n);
    this.bodyLen = new Int32Array(n);
    this.sigOff = new Int32Array(n);
    this.sigLen = new Int32Array(n);
    this.prevOff = new Int32Array(n);
    this.identOff = new Int32Array(n);
    this.identLen = new Int32Array(n);
    this.isBatch = new Uint8Array(n);
    this.bIndex = new Float64Array(n);
    this.bSize = new Float64Array(n);
    this.rootOff = new Int32Array(n);
    this.batchOff = new Int32Array(n);
    this.batchLen = new Int32Array(n);
    this.pathCount = new Uint8Array(n);
    this.win = new Array<LiveWindow | null>(n).fill(null);
    this.idCmp = new Int32Array(n);
    this.txCmp = new Int32Array(n);
    this.rootCmp = new Int32Array(n);
    this.sigCmp = new Int32Array(n);
    this.hasTx = new Uint8Array(n);
    this.txHashBad = new Uint8Array(n);
    this.proofBad = new Uint8Array(n);
    this.authentic = new Uint8Array(n);
    this.cmpFrom = new Int32Array(n);
    this.pathOff = new Int32Array(n);
    this.cmpTo = new Int32Array(n);
    this.pathOk = new Uint8Array(n);
    this.linkCmp = new Int32Array(n);
    this.zeroCmp = new Int32Array(n);
  }
}

function sameLedger(w: LiveWindow, data: Uint8Array, f: RecordFields): boolean {
  const len = f.ledgerOff < 0 ? 0 : f.ledgerLen;
  return len === w.ledger.length && (len === 0 || sameBytes(data, f.ledgerOff, w.ledger, 0, len));
}

/** Whether the body's identity is the one bound in the endorsement, by decoded fields (the exact-bytes case was compared in bulk). */
function sameIdentity(w: WindowSpec, data: Uint8Array, off: number, len: number): boolean {
  if (w.identityFields === null || off < 0) return false;
  try {
    // another (valid) encoding of the same fields: compare decoded values
    const id = UeIdentity.decode(data.subarray(off, off + len));
    const b = w.identityFields;
    return id.imei === b.imei && id.iccid === b.iccid && id.eid === b.eid && id.msisdn === b.msisdn;
  } catch {
    return false;
  }
}
