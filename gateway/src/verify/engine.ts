/**
 * @module verify/engine
 * The verification engine [VER-3] [GEN-2] [SC2-2]: resolves the endorsements a set of records
 * names (AS lookups, cached), plans worker tasks (records grouped by UE, in sequence order, in
 * large batches), runs them on the {@link VerifierPool}, stitches the per-UE chains across tasks,
 * and returns counts by reason, chain findings, the endorsements and checkpoints used, and the
 * dataset commitment.
 *
 * Two sources: the gateway store ({@link VerificationEngine.verifyStored}: workers read the
 * records themselves) and records in memory ({@link VerificationEngine.verifyRecords}: data
 * packages, tests, benchmarks — per-record verdicts included).
 */
import { EntryAddress, UeIdentity } from '../../../proto/gen/divs/v1/common.ts';
import { equalBytes } from '../../../protocol/src/bytes.ts';
import type { EndorsementResolver, RefInput, ResolvedRef } from './endorsements.ts';
import type { VerifierPool } from './pool.ts';
import type { StoreSlice, StoreTaskSpec } from './store-source.ts';
import { Tally, type ChainCounts, type RecordVerdict } from './summary.ts';
import { Flag, type Outcome, type TaskResult, type WindowSpec } from './task.ts';
import { RecordFields, scanBody, scanSignedRecord } from './wire.ts';
import type { Selection, StoreQueries, UeStat } from '../store.ts';
import { ueKeyOf } from './identity.ts';

/** What a verification run found. */
export interface VerificationOutcome {
  startedAtMs: number;
  finishedAtMs: number;
  records: number;
  valid: number;
  invalid: Map<Outcome, number>;
  unverified: Map<Outcome, number>;
  chain: ChainCounts;
  /** RFC 9162 root over the valid records' hashes (see commitment.ts) and its leaf count. */
  commitment: Uint8Array;
  commitmentSize: number;
  endorsements: ResolvedRef[];
  ueCount: number;
}

export interface EngineOptions {
  pool: VerifierPool;
  resolver: EndorsementResolver;
  /** Chains must start at sequence 1 (default true): a chain that starts later has a gap. */
  requireGenesis?: boolean;
  /** Records per worker task (default 16384). */
  taskRecords?: number;
  /** Tasks in flight per worker thread (default 2). */
  perThread?: number;
}

/** Below this many records per thread a selection is not split further (task overhead wins). */
const MIN_SPLIT_RECORDS = 32;

/** Runs `fn` over items with at most `limit` running, delivering results in order to `sink`. */
async function pipeline<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>, sink: (r: R, item: T) => void): Promise<void> {
  const results = new Map<number, R>();
  let next = 0;
  let delivered = 0;
  let failure: unknown;
  const drain = () => {
    while (results.has(delivered)) {
      const r = results.get(delivered) as R;
      results.delete(delivered);
      sink(r, items[delivered] as T);
      delivered++;
    }
  };
  const lane = async () => {
    while (next < items.length && failure === undefined) {
      const i = next++;
      try {
        results.set(i, await fn(items[i] as T));
      } catch (e) {
        failure ??= e;
        return;
      }
      drain();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
  if (failure !== undefined) throw failure;
  drain();
}

export class VerificationEngine {
  readonly #pool: VerifierPool;
  readonly #resolver: EndorsementResolver;
  readonly #requireGenesis: boolean;
  readonly #taskRecords: number;
  readonly #inFlight: number;
  readonly #threads: number;
  readonly #listeners = new Set<(o: VerificationOutcome) => void>();

  constructor(o: EngineOptions) {
    this.#pool = o.pool;
    this.#resolver = o.resolver;
    this.#requireGenesis = o.requireGenesis ?? true;
    this.#taskRecords = o.taskRecords ?? 16384;
    this.#threads = Math.max(1, o.pool.threads);
    this.#inFlight = this.#threads * (o.perThread ?? 2);
  }

  /**
   * Calls `listener` with the outcome of every finished verification run (metrics, dashboard);
   * returns the function that removes it. A listener that throws changes nothing for the run.
   */
  onOutcome(listener: (o: VerificationOutcome) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async #finish(t0: number, tally: Tally, endorsements: ResolvedRef[], ueCount: number): Promise<VerificationOutcome> {
    const hashes = tally.validHashes();
    const commitmentSize = hashes.length / 32;
    const commitment = await this.#pool.commitment(hashes);
    const outcome: VerificationOutcome = {
      startedAtMs: t0,
      finishedAtMs: Date.now(),
      records: tally.records,
      valid: tally.valid,
      invalid: tally.invalid,
      unverified: tally.unverified,
      chain: tally.chain,
      commitment,
      commitmentSize,
      endorsements,
      ueCount,
    };
    for (const l of this.#listeners) {
      try {
        l(outcome);
      } catch {
        // observers (metrics) must never fail a verification
      }
    }
    return outcome;
  }

  /**
   * Resolves `refs` (the latest versions are asked of the AS every run) and judges the records
   * with the windows that gives. Meanwhile the records are judged against the windows the
   * previous run verified (speculatively); that judgement is kept only when the fresh answers
   * give exactly the same windows — a judgement is a function of the records and the windows,
   * so it is then the one a run after the lookups would make. Otherwise (a contract ended, a new
   * version) the records are judged again.
   */
  async #judgeFresh<J>(
    refs: readonly RefInput[],
    judge: (windows: WindowSpec[]) => Promise<J>,
    onGuess?: (judged: J) => void,
  ): Promise<{ resolved: ResolvedRef[]; judged: J; guessed: boolean }> {
    const guess = this.#resolver.peekWindows(refs);
    const fresh = this.#resolver.resolve(refs);
    if (!guess) {
      const resolved = await fresh;
      return { resolved, judged: await judge(resolved.map((r) => r.window)), guessed: false };
    }
    let answered = false;
    void fresh.then(
      () => (answered = true),
      () => (answered = true),
    );
    const early = judge(guess).then(
      (j) => {
        // handed out only while the fresh answers are still awaited: afterwards it is no guess
        if (onGuess !== undefined && !answered) onGuess(j);
        return j;
      },
      () => undefined,
    );
    const [speculative, resolved] = await Promise.all([early, fresh]);
    const windows = resolved.map((r) => r.window);
    if (speculative !== undefined && sameWindows(guess, windows)) return { resolved, judged: speculative, guessed: true };
    return { resolved, judged: await judge(windows), guessed: false };
  }

  /**
   * Verifies the records of a selection in the gateway store. UEs are taken in ascending key
   * order, each chain in sequence order; records of a UE outside the selection are checked as
   * chain links but not counted. `forksAtIngest` is added by the caller (store query).
   */
  async verifyStored(store: StoreQueries, sel: Selection): Promise<VerificationOutcome & { ues: UeStat[] }> {
    const t0 = Date.now();
    const channel = store.channelId(sel.channel);
    const ues = store.selectionUes(sel);
    if (channel === undefined || ues.length === 0) return { ...(await this.#finish(t0, new Tally({ requireGenesis: this.#requireGenesis }), [], 0)), ues };
    const refs = store.refsOfUes(ues.map((u) => u.ue));

    // plan: whole chains (first..last stored sequence), cut into slices of about taskRecords;
    // a small selection is still spread over every worker thread, since a consumer waits for it
    let total = 0;
    for (const u of ues) total += u.chainLast - u.chainFirst + 1;
    const taskRecords = Math.min(this.#taskRecords, Math.max(MIN_SPLIT_RECORDS, Math.ceil(total / this.#threads)));
    const tasks: StoreSlice[][] = [];
    let cur: StoreSlice[] = [];
    let curSize = 0;
    const push = (s: StoreSlice, size: number) => {
      if (curSize > 0 && curSize + size > taskRecords) {
        tasks.push(cur);
        cur = [];
        curSize = 0;
      }
      cur.push(s);
      curSize += size;
    };
    for (const u of ues) {
      const span = u.chainLast - u.chainFirst + 1;
      if (span <= taskRecords) {
        push({ ue: u.ue, from: u.chainFirst, to: u.chainLast }, span);
        continue;
      }
      for (let from = u.chainFirst; from <= u.chainLast; from += taskRecords) {
        push({ ue: u.ue, from, to: Math.min(u.chainLast, from + taskRecords - 1) }, Math.min(taskRecords, u.chainLast - from + 1));
      }
    }
    if (cur.length > 0) tasks.push(cur);

    const contentTypes = sel.contentTypes && sel.contentTypes.length > 0 ? [...sel.contentTypes] : null;
    let id = 0;
    const judge = async (windows: WindowSpec[]): Promise<Tally> => {
      const tally = new Tally({ requireGenesis: this.#requireGenesis });
      await pipeline(
        tasks,
        this.#inFlight,
        (slices) => {
          const spec: StoreTaskSpec = { id: ++id, dbPath: store.path, slices, channel, contentTypes, windows: windowsFor(windows), remember: true };
          return this.#pool.verifyStore(spec);
        },
        (res) => {
          tally.add(res.result, res.flags, res.segmentUes);
        },
      );
      return tally;
    };

    const { resolved, judged: tally } = await this.#judgeFresh(refs, judge);
    return { ...(await this.#finish(t0, tally, resolved, ues.length)), ues };
  }

  /**
   * Verifies records held in memory (SignedRecord encodings, any order). Records are grouped
   * by UE identity and sorted by sequence; a record presented after a higher sequence number of
   * its UE is "reordered". `windows`, when given, replace AS lookups (trusted key material).
   * Returns per-record verdicts in input order.
   */
  async verifyRecords(
    records: readonly Uint8Array[],
    opts: { windows?: WindowSpec[]; onGuess?: (verdicts: RecordVerdict[]) => void } = {},
  ): Promise<VerificationOutcome & { verdicts: RecordVerdict[]; guessed: boolean }> {
    const t0 = Date.now();
    const f = new RecordFields();
    const n = records.length;
    const ueOf = new Int32Array(n).fill(-1);
    const seqOf = new Float64Array(n);
    const late = new Uint8Array(n);
    const ueIds = new Map<string, number>();
    const maxSeq: number[] = [];
    const refs = new Map<string, RefInput>();
    const dec = new TextDecoder();
    for (let i = 0; i < n; i++) {
      const r = records[i] as Uint8Array;
      if (!(r instanceof Uint8Array) || !scanSignedRecord(r, 0, r.length, f) || f.bodyOff < 0 || !scanBody(r, f.bodyOff, f.bodyLen, f)) continue;
      // UE = exact identity bytes (a re-encoded identity would be another chain: conservative)
      const key = f.identityOff < 0 ? '' : Buffer.from(r.buffer, r.byteOffset + f.identityOff, f.identityLen).toString('latin1');
      let ue = ueIds.get(key);
      if (ue === undefined) {
        ue = ueIds.size;
        ueIds.set(key, ue);
        maxSeq.push(0);
      }
      ueOf[i] = ue;
      seqOf[i] = f.sequence;
      if (f.sequence < (maxSeq[ue] as number)) late[i] = 1;
      else maxSeq[ue] = f.sequence;
      if (f.hasTx) {
        const ledgerId = f.ledgerOff < 0 ? '' : dec.decode(r.subarray(f.ledgerOff, f.ledgerOff + f.ledgerLen));
        const rk = `${ledgerId}\n${f.txId}`;
        let ref = refs.get(rk);
        if (!ref) {
          ref = { ledgerId, txId: f.txId, asUrls: f.entryOff < 0 ? [] : asUrls(r, f.entryOff, f.entryLen), count: 0 };
          refs.set(rk, ref);
        }
        ref.count = (ref.count ?? 0) + 1;
      }
    }
    // a small input is still spread over every worker thread (a consumer waits for it)
    const taskRecords = Math.min(this.#taskRecords, Math.max(MIN_SPLIT_RECORDS, Math.ceil(n / this.#threads)));
    // order: records that do not decode first (one segment each), then UEs by identity key (as
    // the gateway store orders them), each by sequence
    const rank = new Int32Array(ueIds.size);
    [...ueIds.keys()]
      .map((bytes, ue) => ({ ue, key: identityKey(bytes) }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.ue - b.ue))
      .forEach((x, i) => {
        rank[x.ue] = i;
      });
    const rankOf = (i: number): number => ((ueOf[i] as number) < 0 ? -1 : (rank[ueOf[i] as number] as number));
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => rankOf(a) - rankOf(b) || (seqOf[a] as number) - (seqOf[b] as number) || a - b);
    const segmentsOf: { idx: number[]; ue: number }[] = [];
    for (const i of order) {
      const ue = ueOf[i] as number;
      const last = segmentsOf[segmentsOf.length - 1];
      if (ue >= 0 && last && last.ue === ue && last.idx.length < taskRecords) last.idx.push(i);
      else segmentsOf.push({ idx: [i], ue: ue >= 0 ? ue : -1 - i });
    }
    const tasks: { idx: number[]; ue: number }[][] = [];
    let cur: { idx: number[]; ue: number }[] = [];
    let size = 0;
    for (const s of segmentsOf) {
      if (size > 0 && size + s.idx.length > taskRecords) {
        tasks.push(cur);
        cur = [];
        size = 0;
      }
      cur.push(s);
      size += s.idx.length;
    }
    if (cur.length > 0) tasks.push(cur);

    let id = 0;
    const judge = async (windows: WindowSpec[]): Promise<{ tally: Tally; verdicts: RecordVerdict[] }> => {
      const tally = new Tally({ requireGenesis: this.#requireGenesis });
      const verdicts = new Array<RecordVerdict>(n);
      await pipeline(
        tasks,
        this.#inFlight,
        (segs): Promise<TaskResult> => {
          const idx = segs.flatMap((s) => s.idx);
          let total = 0;
          for (const i of idx) total += (records[i] as Uint8Array).length;
          const data = new Uint8Array(total);
          const offsets = new Uint32Array(idx.length + 1);
          const flags = new Uint8Array(idx.length);
          let o = 0;
          idx.forEach((i, k) => {
            offsets[k] = o;
            const r = records[i] as Uint8Array;
            data.set(r, o);
            o += r.length;
            flags[k] = late[i] === 1 ? Flag.LATE : 0;
          });
          offsets[idx.length] = o;
          const segments = new Uint32Array(segs.length);
          let at = 0;
          segs.forEach((s, k) => {
            segments[k] = at;
            at += s.idx.length;
          });
          return this.#pool.verify({ id: ++id, data, offsets, flags, segments, windows: windowsFor(windows), remember: true });
        },
        (res, segs) => {
          const idx = segs.flatMap((s) => s.idx);
          const flags = Uint8Array.from(idx, (i) => (late[i] === 1 ? Flag.LATE : 0));
          const v = tally.add(res, flags, segs.map((s) => s.ue), true) as RecordVerdict[];
          idx.forEach((i, k) => {
            verdicts[i] = v[k] as RecordVerdict;
          });
        },
      );
      return { tally, verdicts };
    };

    let resolved: ResolvedRef[];
    let judged: { tally: Tally; verdicts: RecordVerdict[] };
    let guessed = false;
    if (opts.windows) {
      const windows = opts.windows;
      resolved = windows.map((w) => ({ ledgerId: w.ledgerId, txId: w.txId, window: w, outcome: w.error ?? 'OK', count: refs.get(`${w.ledgerId}\n${w.txId}`)?.count ?? 0 }));
      judged = await judge(windows);
    } else {
      const onGuess = opts.onGuess;
      ({ resolved, judged, guessed } = await this.#judgeFresh([...refs.values()], judge, onGuess && ((j) => onGuess(j.verdicts))));
    }
    const { tally, verdicts } = judged;
    return { ...(await this.#finish(t0, tally, resolved, ueIds.size)), verdicts, guessed };
  }
}

/** Whether two window lists are the same, field for field (the inputs a judgement depends on). */
export function sameWindows(a: readonly WindowSpec[], b: readonly WindowSpec[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as WindowSpec;
    const y = b[i] as WindowSpec;
    if (
      x.ledgerId !== y.ledgerId ||
      x.txId !== y.txId ||
      x.error !== y.error ||
      x.ueKey !== y.ueKey ||
      x.suite !== y.suite ||
      x.startMs !== y.startMs ||
      x.endMs !== y.endMs ||
      x.terminationMs !== y.terminationMs ||
      !equalBytes(x.txHash, y.txHash) ||
      !equalBytes(x.publicKey, y.publicKey) ||
      (x.identity === null) !== (y.identity === null) ||
      (x.identity !== null && !equalBytes(x.identity, y.identity as Uint8Array)) ||
      JSON.stringify(x.identityFields) !== JSON.stringify(y.identityFields)
    ) {
      return false;
    }
  }
  return true;
}

function windowsFor(all: WindowSpec[]): WindowSpec[] {
  // every task gets every window: they are small, and a record may name any of them
  return all;
}

/** Store key of an identity given as its encoded bytes (latin1); the bytes themselves if they do not decode. */
function identityKey(latin1Bytes: string): string {
  try {
    return ueKeyOf(UeIdentity.decode(Buffer.from(latin1Bytes, 'latin1')));
  } catch {
    return `\uffff${latin1Bytes}`;
  }
}

/** The as_urls of an EntryAddress; none when it does not decode. */
function asUrls(r: Uint8Array, off: number, len: number): string[] {
  try {
    return EntryAddress.decode(r.subarray(off, off + len)).asUrls;
  } catch {
    // hostile bytes: no AS to ask, the records become unverifiable (MISSING_FIELD)
    return [];
  }
}
