/**
 * @module verify/summary
 * Verdict aggregation, pure: takes task results in plan order, judges the first authentic record
 * of every segment against the end of the UE's previous segment (chains cut across tasks), and
 * counts outcomes by reason, chain findings by name, and the hashes of the valid records in
 * dataset order (for the commitment).
 */
import { ChainTracker, Finding, findingInvalidates } from './chain.ts';
import { Flag, S_VALID, UNVERIFIED, outcomeOf, statusOf, type Outcome, type TaskResult } from './task.ts';

const S_FORK = statusOf('RECORD_FORK');
const S_REPLAY = statusOf('RECORD_REPLAYED');

/** Chain findings over the counted records. */
export interface ChainCounts {
  gaps: number;
  missingRecords: number;
  forks: number;
  replays: number;
  reordered: number;
}

/** Per-record verdict (for in-memory verification). */
export interface RecordVerdict {
  outcome: Outcome;
  finding: Finding;
  /** Records missing before this one (GAP). */
  missing: number;
  /** Arrived after a record with a higher sequence number. */
  late: boolean;
  /** SHA-256 of the body (zeros when it did not decode). */
  hash: Uint8Array;
}

export class Tally {
  records = 0;
  valid = 0;
  readonly invalid = new Map<Outcome, number>();
  readonly unverified = new Map<Outcome, number>();
  readonly chain: ChainCounts = { gaps: 0, missingRecords: 0, forks: 0, replays: 0, reordered: 0 };
  readonly #trackers = new Map<number, ChainTracker>();
  readonly #requireGenesis: boolean;
  readonly #valid: Uint8Array[] = [];
  #validBytes = 0;

  constructor(opts: { requireGenesis?: boolean } = {}) {
    this.#requireGenesis = opts.requireGenesis ?? true;
  }

  /**
   * Adds one task's results. `segmentUes[s]` names the UE of segment s (numbers, any scheme);
   * a UE's segments must arrive in sequence order across calls. Returns per-record verdicts
   * when `verdicts` is true.
   */
  add(r: TaskResult, flags: Uint8Array, segmentUes: ArrayLike<number>, verdicts = false): RecordVerdict[] | undefined {
    const n = r.status.length;
    const { status, finding, missing, hashes, sequence } = r;
    // 1. heads: continue each UE's chain from its previous segment
    for (let s = 0; s < r.headIndex.length; s++) {
      const ue = segmentUes[s] as number;
      let t = this.#trackers.get(ue);
      if (!t) {
        t = new ChainTracker({ requireGenesis: this.#requireGenesis, assumeUnique: true });
        this.#trackers.set(ue, t);
      }
      const h = r.headIndex[s] as number;
      if (h >= 0) {
        const f = t.observe(sequence[h] as number, r.headPrev, 32 * s, hashes, 32 * h);
        finding[h] = f;
        if (f === Finding.GAP) missing[h] = t.missing;
        if (findingInvalidates(f) && status[h] === S_VALID) status[h] = f === Finding.FORK ? S_FORK : S_REPLAY;
      }
      const tail = r.tailIndex[s] as number;
      if (tail >= 0 && tail !== h) t.resume({ sequence: sequence[tail] as number, hash: hashes.subarray(32 * tail, 32 * tail + 32) });
    }
    // 2. counts over the records of the selection (context records are only chain links)
    const out: RecordVerdict[] | undefined = verdicts ? [] : undefined;
    let runStart = -1;
    const flush = (end: number) => {
      if (runStart < 0) return;
      this.#valid.push(hashes.slice(32 * runStart, 32 * end));
      this.#validBytes += 32 * (end - runStart);
      runStart = -1;
    };
    for (let i = 0; i < n; i++) {
      const fl = flags[i] as number;
      if ((fl & Flag.CONTEXT) !== 0) {
        flush(i);
        continue;
      }
      this.records++;
      const st = status[i] as number;
      const fi = finding[i] as Finding;
      if (st === S_VALID) {
        this.valid++;
        if (runStart < 0) runStart = i;
        if ((fl & Flag.LATE) !== 0) this.chain.reordered++;
      } else {
        flush(i);
        const o = outcomeOf(st);
        const m = UNVERIFIED.has(o) ? this.unverified : this.invalid;
        m.set(o, (m.get(o) ?? 0) + 1);
      }
      if (fi === Finding.GAP) {
        this.chain.gaps++;
        this.chain.missingRecords += missing[i] as number;
      } else if (fi === Finding.FORK) this.chain.forks++;
      else if (fi === Finding.REPLAY) this.chain.replays++;
      else if (fi === Finding.REORDERED) this.chain.reordered++;
      out?.push({ outcome: outcomeOf(st), finding: fi === Finding.PENDING ? Finding.OK : fi, missing: missing[i] as number, late: (fl & Flag.LATE) !== 0, hash: hashes.slice(32 * i, 32 * i + 32) });
    }
    flush(n);
    return out;
  }

  /** Hashes of the valid records, concatenated in dataset order. */
  validHashes(): Uint8Array {
    const out = new Uint8Array(this.#validBytes);
    let o = 0;
    for (const c of this.#valid) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}
