/**
 * @module jobs/snapshot
 * "Verification runs first; only verified records reach the job" [SC2-2] [SC2-4] [VER-3].
 *
 * A job needs the records that verified, not just their count, so it cannot reuse the report of
 * a separate VerifyDataset run (records may arrive between two runs). Instead one snapshot is
 * read from the store and verified once, and the report, the dataset commitment and the rows
 * handed to the job all come from that same snapshot:
 *
 * 1. the selection's UEs (ascending identity key) and, per UE, its whole stored chain (all
 *    channels: records outside the dataset are chain links, "context", as in VerifyDataset);
 * 2. {@link VerificationEngine.verifyRecords} (the same worker-thread checks and AS lookups as
 *    VerifyDataset) gives a verdict per record;
 * 3. the verdicts of the dataset's records are counted exactly as the engine's tally counts
 *    them, into a VerificationReport (commitment = RFC 9162 root over the valid records' hashes
 *    in dataset order) that the caller signs;
 * 4. the valid records' bodies are decoded into rows for jobs/columns.ts.
 *
 * With `maxAgeMs` > 0 (the operator's `jobs.verificationMaxAgeMs`), the last snapshot of a
 * selection is reused while it is younger than that and the selection's per-UE record counts,
 * sequence ranges and whole-chain ranges are unchanged (any record added to the dataset, or
 * extending a UE's chain, forces a new verification). Its report then says when the reused
 * verification ran. What a reuse can miss for at most `maxAgeMs`: a change at the AS (e.g. a
 * back-dated contract termination) — the same bounded staleness as the resolver's
 * `as.latestTtlMs` — and a record on another channel filling a gap of a UE's chain.
 */
import { UeIdentity } from '../../../proto/gen/divs/v1/common.ts';
import type { VerificationReport } from '../../../proto/gen/divs/v1/gateway.ts';
import { fail } from '../../../protocol/src/errors.ts';
import { buildReport } from '../report.ts';
import { StoreReader, type RecordStore, type Selection } from '../store.ts';
import { Finding } from '../verify/chain.ts';
import { RecordFields, scanRecord } from '../verify/wire.ts';
import { commitmentRoot } from '../verify/commitment.ts';
import { Sha256Many } from '../../../protocol/src/sha256x4.ts';
import type { VerificationEngine, VerificationOutcome } from '../verify/engine.ts';
import { UNVERIFIED, type Outcome } from '../verify/task.ts';
import type { RecordVerdict } from '../verify/summary.ts';
import type { VerifiedRow } from './columns.ts';

let hasher: Sha256Many | undefined;

/**
 * RFC 9162 root over concatenated record hashes (see verify/commitment.ts) with one hasher per
 * process: building the WebAssembly kernel and its self-test costs milliseconds, too much to pay
 * twice per job.
 */
export function jobCommitment(recordHashes: Uint8Array): Uint8Array {
  hasher ??= Sha256Many.create();
  return commitmentRoot(recordHashes, hasher);
}

/** A verified snapshot of a dataset. */
export interface Snapshot {
  report: VerificationReport;
  /** The dataset's valid records, in dataset order (UE key, then sequence). */
  rows: VerifiedRow[];
  /** True when `rows` is the very array handed to `onGuess`: the guess was right. */
  guessConfirmed: boolean;
}

export interface SnapshotRequest {
  gatewayId: string;
  datasetId: string;
  selection: Selection;
  nonce: Uint8Array;
  /** UEs the request restricted the job to (empty: all), for the report. */
  ues: UeIdentity[];
  /** Refuse (POLICY_LIMIT_EXCEEDED) a dataset with more records than this. */
  maxRecords: number;
  /** Reuse an unchanged selection's snapshot up to this age (ms); 0: always verify. */
  maxAgeMs?: number;
  /** Checked between steps; an aborted snapshot throws JOB_CANCELLED. */
  signal?: AbortSignal;
  /**
   * Called at most once, before the snapshot is final, with the valid rows as judged against
   * the endorsement windows the previous verification proved, while the AS is still being asked
   * for the latest versions. A guess: only when the snapshot comes back with `guessConfirmed`
   * are these the verified rows; otherwise anything computed from them must be thrown away.
   */
  onGuess?: (rows: VerifiedRow[]) => void;
}

/** A verification kept for reuse: everything but the per-request report fields. */
interface Cached {
  fingerprint: string;
  at: number;
  outcome: VerificationOutcome;
  ueIds: number[];
  rows: VerifiedRow[];
}

/** Snapshots kept, and the largest one kept (records). */
const CACHE_ENTRIES = 16;
const CACHE_MAX_ROWS = 200_000;

const YIELD_EVERY = 4096;
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) fail('JOB_CANCELLED', 'the job was cancelled');
}

/** Reads and verifies dataset snapshots for jobs. */
export class SnapshotVerifier {
  readonly #store: RecordStore;
  readonly #engine: VerificationEngine;
  readonly #cache = new Map<string, Cached>();
  #reader: StoreReader | undefined;

  constructor(o: { store: RecordStore; engine: VerificationEngine }) {
    this.#store = o.store;
    this.#engine = o.engine;
  }

  #read(): StoreReader {
    // a read-only connection of its own: a WAL snapshot per statement, ingest goes on meanwhile
    this.#reader ??= new StoreReader(this.#store.path);
    return this.#reader;
  }

  /** Verifies the selection and returns the report (unsigned) and the valid rows. */
  async verify(req: SnapshotRequest): Promise<Snapshot> {
    const startedAtMs = Date.now();
    const sel = req.selection;
    const ues = this.#store.selectionUes(sel);
    let selected = 0;
    for (const u of ues) selected += u.count;
    if (selected > req.maxRecords) fail('POLICY_LIMIT_EXCEEDED', `dataset ${req.datasetId} holds ${selected} records, more than the ${req.maxRecords} the policy lets one job read`);
    const channel = this.#store.channelId(sel.channel);
    const types = sel.contentTypes && sel.contentTypes.length > 0 ? new Set(sel.contentTypes) : null;
    const maxAge = req.maxAgeMs ?? 0;
    const cacheKey = JSON.stringify([sel.channel, sel.contentTypes ?? [], sel.ueKeys ?? null]);
    const fingerprint = JSON.stringify(ues.map((u) => [u.ue, u.count, u.firstSequence, u.lastSequence, u.chainFirst, u.chainLast]));
    if (maxAge > 0) {
      const hit = this.#cache.get(cacheKey);
      if (hit && hit.fingerprint === fingerprint && Date.now() - hit.at <= maxAge) return { report: this.#report(hit.outcome, hit.ueIds, req), rows: hit.rows, guessConfirmed: false };
    }

    // 1. whole chains of the selected UEs, in dataset order
    const records: Uint8Array[] = [];
    const ueOf: number[] = [];
    const inSelection: boolean[] = [];
    const late: boolean[] = [];
    const reader = this.#read();
    for (const [i, u] of ues.entries()) {
      for (const row of reader.slice(u.ue, u.chainFirst, u.chainLast)) {
        records.push(row.record);
        ueOf.push(i);
        inSelection.push(row.channel === channel && (types === null || types.has(row.contentType)));
        late.push(row.late);
        if (records.length % YIELD_EVERY === 0) {
          await tick();
          checkAborted(req.signal);
        }
      }
    }
    checkAborted(req.signal);

    // 2. one verdict per record
    const fields = new RecordFields();
    const rowsOf = (verdicts: RecordVerdict[]): VerifiedRow[] => {
      const out: VerifiedRow[] = [];
      for (let i = 0; i < records.length; i++) {
        const v = verdicts[i];
        if (inSelection[i] && v?.outcome === 'VALID') out.push(decodeRow(records[i] as Uint8Array, ueOf[i] as number, v.hash, fields));
      }
      return out;
    };
    let guessRows: VerifiedRow[] | undefined;
    const onGuess = req.onGuess;
    const res = await this.#engine.verifyRecords(records, {
      onGuess:
        onGuess &&
        ((verdicts) => {
          if (req.signal?.aborted) return;
          guessRows = rowsOf(verdicts);
          onGuess(guessRows);
        }),
    });
    checkAborted(req.signal);
    // the guess was the final judgement: its rows are the rows
    const guessConfirmed = res.guessed && guessRows !== undefined;

    // 3. count the dataset's records (context records are chain links only)
    const invalid = new Map<Outcome, number>();
    const unverified = new Map<Outcome, number>();
    const chain = { gaps: 0, missingRecords: 0, forks: 0, replays: 0, reordered: 0 };
    const validHashes: Uint8Array[] = [];
    let counted = 0;
    let valid = 0;
    for (let i = 0; i < records.length; i++) {
      if (!inSelection[i]) continue;
      const v = res.verdicts[i];
      if (!v) fail('INTERNAL', 'verification returned fewer verdicts than records');
      counted++;
      if (v.outcome === 'VALID') {
        valid++;
        if (late[i]) chain.reordered++;
        validHashes.push(v.hash);
      } else {
        const m = UNVERIFIED.has(v.outcome) ? unverified : invalid;
        m.set(v.outcome, (m.get(v.outcome) ?? 0) + 1);
      }
      if (v.finding === Finding.GAP) {
        chain.gaps++;
        chain.missingRecords += v.missing;
      } else if (v.finding === Finding.FORK) chain.forks++;
      else if (v.finding === Finding.REPLAY) chain.replays++;
      else if (v.finding === Finding.REORDERED) chain.reordered++;
      if (i % YIELD_EVERY === YIELD_EVERY - 1) {
        await tick();
        checkAborted(req.signal);
      }
    }
    const rows = guessConfirmed ? (guessRows as VerifiedRow[]) : rowsOf(res.verdicts);
    const hashes = new Uint8Array(32 * validHashes.length);
    validHashes.forEach((h, k) => hashes.set(h, 32 * k));
    const outcome: VerificationOutcome = {
      startedAtMs,
      finishedAtMs: Date.now(),
      records: counted,
      valid,
      invalid,
      unverified,
      chain,
      commitment: jobCommitment(hashes),
      commitmentSize: validHashes.length,
      endorsements: res.endorsements,
      ueCount: ues.length,
    };
    const ueIds = ues.map((u) => u.ue);
    if (maxAge > 0 && rows.length <= CACHE_MAX_ROWS) {
      this.#cache.delete(cacheKey);
      this.#cache.set(cacheKey, { fingerprint, at: outcome.finishedAtMs, outcome, ueIds, rows });
      while (this.#cache.size > CACHE_ENTRIES) this.#cache.delete(this.#cache.keys().next().value as string);
    }
    return { report: this.#report(outcome, ueIds, req), rows, guessConfirmed };
  }

  /** The report of a verification for one request (its nonce and UE restriction). */
  #report(outcome: VerificationOutcome, ueIds: number[], req: SnapshotRequest): VerificationReport {
    return buildReport(outcome, {
      gatewayId: req.gatewayId,
      datasetId: req.datasetId,
      nonce: req.nonce,
      ues: req.ues.map((u) => UeIdentity.fromPartial(u)),
      forksRejectedAtIngest: this.#store.forkCount(ueIds),
    });
  }

  close(): void {
    this.#cache.clear();
    this.#reader?.close();
    this.#reader = undefined;
  }
}

const utf8Text = new TextDecoder();

/** The row of a valid record (its bytes were verified, so they decode), read in place. */
function decodeRow(record: Uint8Array, ue: number, hash: Uint8Array, f: RecordFields): VerifiedRow {
  if (!scanRecord(record, 0, record.length, f)) fail('INTERNAL', 'a verified record does not decode');
  const contentType = f.contentTypeOff < 0 ? '' : utf8Text.decode(record.subarray(f.contentTypeOff, f.contentTypeOff + f.contentTypeLen));
  const payload = f.payloadOff < 0 ? new Uint8Array(0) : record.subarray(f.payloadOff, f.payloadOff + f.payloadLen);
  return { ue, hash, timestampMs: f.timestampMs, contentType, payload };
}
