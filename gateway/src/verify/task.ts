/**
 * @module verify/task
 * What the main thread hands a verification worker and what comes back: records packed into one
 * transferable buffer, the endorsement "windows" they are judged against, and per-record outcomes
 * as typed arrays. Plain data only (structured-clone safe), shared by the engine, the pool, the
 * workers and the gateway store reader.
 */
import { ERROR_CODES, type ErrorCode } from '../../../protocol/src/errors.ts';

/** Outcome of one record: `VALID` or a DIVS error code. */
export type Outcome = 'VALID' | ErrorCode;

/** Every outcome, indexed by its one-byte status number (VALID = 0). */
export const OUTCOMES: readonly Outcome[] = ['VALID', ...(Object.keys(ERROR_CODES) as ErrorCode[])];

const OUTCOME_INDEX = new Map<Outcome, number>(OUTCOMES.map((o, i) => [o, i]));

/** Status byte of an outcome. */
export function statusOf(o: Outcome): number {
  const i = OUTCOME_INDEX.get(o);
  if (i === undefined) throw new RangeError(`unknown outcome ${o}`);
  return i;
}

/** Outcome of a status byte. */
export function outcomeOf(status: number): Outcome {
  return OUTCOMES[status] ?? 'INTERNAL';
}

export const S_VALID = 0;

/**
 * Outcomes that mean "could not be checked", never "invalid data": the endorsement could not be
 * fetched (AS down, or the AS refused the gateway's credentials), or the gateway itself failed.
 * Such records are reported as unverified.
 */
export const UNVERIFIED: ReadonlySet<Outcome> = new Set<Outcome>(['AS_UNAVAILABLE', 'PERMISSION_DENIED', 'UNAUTHENTICATED', 'INTERNAL']);

/**
 * Everything a worker needs to judge records naming one endorsement (ledger + tx ID), derived on
 * the main thread from the verified endorsement and the UE's latest verified version.
 */
export interface WindowSpec {
  ledgerId: string;
  txId: number;
  /** Leaf hash of the endorsement transaction (what a record's tx_hash must equal when set). */
  txHash: Uint8Array;
  /** Set when the endorsement cannot be used; every record naming it gets this outcome. */
  error: ErrorCode | null;
  /** Hex SHA-256 of the UE public key (the ledger's UE key). */
  ueKey: string;
  suite: number;
  /** Raw UE public key (SEC1 point or Ed25519 bytes). */
  publicKey: Uint8Array;
  /** Exact encoding of the identity bound in the endorsement, and its fields; null if none. */
  identity: Uint8Array | null;
  identityFields: { imei: string; iccid: string; eid: string; msisdn: string } | null;
  /** Contract period of the latest version (ms); endMs 0 = open-ended. */
  startMs: number;
  endMs: number;
  /** Termination time of the latest version (ms); 0 = not terminated. */
  terminationMs: number;
}

/** Record flags set by the source. */
export const Flag = {
  /** Arrived after a record of the same UE with a higher sequence number. */
  LATE: 1,
  /**
   * Outside the selection being verified (e.g. another channel of the same UE): judged and part
   * of the UE's chain, but not counted in the report or the commitment.
   */
  CONTEXT: 2,
} as const;

/**
 * A unit of work: records of one or more UEs, each UE's records contiguous and in ascending
 * sequence order ("segments").
 */
export interface VerifyTask {
  id: number;
  /** Concatenated SignedRecord encodings. */
  data: Uint8Array;
  /** n + 1 offsets into data. */
  offsets: Uint32Array;
  /** n flag bytes ({@link Flag}). */
  flags: Uint8Array;
  /** Start index of each segment (one UE's run of records). */
  segments: Uint32Array;
  windows: WindowSpec[];
  /**
   * Remember single-mode signatures that verify, and do not verify a remembered one again (same
   * UE key and suite, same record hash, same signature bytes: the same answer). Set for data the
   * gateway verifies again and again (its store, job snapshots); benchmarks leave it unset.
   */
  remember?: boolean;
}

/** Per-record and per-segment results of a task. */
export interface TaskResult {
  id: number;
  /** n status bytes (index into {@link OUTCOMES}). */
  status: Uint8Array;
  /** n chain findings (see chain.ts `Finding`); the first authentic record of a segment is PENDING. */
  finding: Uint8Array;
  /** n × 32 bytes: SHA-256 of each body (zeros when the record did not decode). */
  hashes: Uint8Array;
  /** n: records missing before a GAP finding. */
  missing: Uint32Array;
  /** n: sequence number of each record (0 when it did not decode). */
  sequence: Float64Array;
  /** Per segment: index of the first and last authentic record (-1: none). */
  headIndex: Int32Array;
  tailIndex: Int32Array;
  /** Per segment × 32: previous-hash field of the head record. */
  headPrev: Uint8Array;
  /** Work done, for metrics and benchmarks. */
  stats: TaskStats;
}

export interface TaskStats {
  records: number;
  signatureChecks: number;
  batchGroups: number;
  /** SHA-256 digests computed (record hashes, leaf hashes, tree nodes, path steps). */
  digests: number;
  /** SHA-256 compression blocks those digests took (64 bytes each, padding included). */
  blocks: number;
  ms: number;
}

/** Buffers of a task result to transfer (not copy) back to the main thread. */
export function resultTransferList(r: TaskResult): ArrayBuffer[] {
  return [r.status.buffer, r.finding.buffer, r.hashes.buffer, r.missing.buffer, r.sequence.buffer, r.headIndex.buffer, r.tailIndex.buffer, r.headPrev.buffer] as ArrayBuffer[];
}

/** Packs SignedRecord encodings into task arrays (one segment per UE run given by `segmentStarts`). */
export function packRecords(records: readonly Uint8Array[], flags?: Uint8Array): { data: Uint8Array; offsets: Uint32Array; flags: Uint8Array } {
  let total = 0;
  for (const r of records) total += r.length;
  const data = new Uint8Array(total);
  const offsets = new Uint32Array(records.length + 1);
  let o = 0;
  records.forEach((r, i) => {
    offsets[i] = o;
    data.set(r, o);
    o += r.length;
  });
  offsets[records.length] = o;
  return { data, offsets, flags: flags ?? new Uint8Array(records.length) };
}
