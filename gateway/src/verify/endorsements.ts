/**
 * @module verify/endorsements
 * Endorsements for verification [VER-3] [RP-DS] [FW-SU]: for each (ledger, tx ID) the records
 * name, fetch the endorsement from the AS in the record's entry address and verify it with only
 * the consortium trust anchors (AS certificate chain and signature, inclusion proof against a
 * signed checkpoint) — through the consumer SDK, which caches verified endorsements by tx ID
 * (they are immutable) — then fetch the UE's latest version with its proof (refreshed for every
 * verification run: a contract may have ended since), and turn the pair into a
 * {@link WindowSpec}.
 *
 * An AS that does not answer is retried with backoff; if it still does not, the endorsement's
 * records are "unverified: AS_UNAVAILABLE" — never valid, never invalid. Entry addresses are
 * attacker-controlled, so an optional allow-list limits which AS URLs the gateway dials.
 */
import type { TxRef } from '../../../proto/gen/divs/v1/common.ts';
import { DivsConsumer, type ConsumerOptions } from '../../../consumer/src/client.ts';
import type { VerifiedCheckpoint, VerifiedEndorsement } from '../../../consumer/src/verify.ts';
import { DivsError, type ErrorCode } from '../../../protocol/src/errors.ts';

import type { WindowSpec } from './task.ts';
import { errorWindow, windowFrom } from './windows.ts';

/** An endorsement reference as stored with records. */
export interface RefInput {
  ledgerId: string;
  txId: number;
  asUrls: readonly string[];
  /** Records naming it (for the report). */
  count?: number;
}

/** A checkpoint an endorsement was proven against. */
export interface CheckpointInfo {
  origin: string;
  size: number;
  rootHash: Uint8Array;
  signer: string;
}

/** What the verification used for one reference (goes into the report). */
export interface ResolvedRef {
  ledgerId: string;
  txId: number;
  window: WindowSpec;
  /** 'OK' or the code that made the endorsement unusable. */
  outcome: 'OK' | ErrorCode;
  count: number;
  claimed?: { txHash: Uint8Array; version: number; ueKey: Uint8Array; checkpoint: CheckpointInfo };
  latest?: { txId: number; version: number; checkpoint: CheckpointInfo };
}

export interface ResolverOptions {
  /** Consortium root CA certificates (DER). */
  anchors: { roots: Uint8Array[] };
  /** Bearer token per AS URL, or "*" for all. */
  tokens?: Record<string, string>;
  /** Per-call deadline (ms); default 5000. */
  timeoutMs?: number;
  /** Attempts for an AS that does not answer; default 3. */
  attempts?: number;
  /** First retry delay (ms), doubled per attempt; default 200. */
  backoffMs?: number;
  /** How long a latest-version answer is reused (ms); default 0 (refetched every run). */
  latestTtlMs?: number;
  /** Verified endorsements and latest versions kept (each); see ConsumerOptions.cacheEntries. */
  cacheEntries?: number;
  /** When set, only these AS URLs are ever dialled. */
  allowedAsUrls?: readonly string[];
  /** Parallel AS lookups; default 8. */
  concurrency?: number;
}

const TRANSIENT: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['UNAVAILABLE', 'TIMEOUT', 'AS_UNAVAILABLE']);

function checkpointInfo(c: VerifiedCheckpoint): CheckpointInfo {
  return { origin: c.origin, size: c.size, rootHash: c.rootHash.slice(), signer: c.signer };
}

const refKey = (ledgerId: string, txId: number): string => `${ledgerId}\n${txId}`;

/** Resolves endorsement references into windows, with retries and caching. */
export class EndorsementResolver {
  readonly #consumer: DivsConsumer;
  readonly #attempts: number;
  readonly #backoffMs: number;
  readonly #allowed: ReadonlySet<string> | null;
  readonly #concurrency: number;

  constructor(o: ResolverOptions) {
    const copts: ConsumerOptions = { anchors: o.anchors, tokens: o.tokens, timeoutMs: o.timeoutMs ?? 5000, latestTtlMs: o.latestTtlMs ?? 0, cacheEntries: o.cacheEntries };
    this.#consumer = new DivsConsumer(copts);
    this.#attempts = Math.max(1, o.attempts ?? 3);
    this.#backoffMs = o.backoffMs ?? 200;
    this.#allowed = o.allowedAsUrls && o.allowedAsUrls.length > 0 ? new Set(o.allowedAsUrls.map(normalizeUrl)) : null;
    this.#concurrency = Math.max(1, o.concurrency ?? 8);
  }

  async #retry<T>(fn: () => Promise<T>): Promise<T> {
    let last: DivsError | undefined;
    for (let attempt = 0; attempt < this.#attempts; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, this.#backoffMs * 2 ** (attempt - 1)));
      try {
        return await fn();
      } catch (e) {
        last = e instanceof DivsError ? e : new DivsError('INTERNAL', String(e), { cause: e });
        if (!TRANSIENT.has(last.code)) throw last;
        // a channel that lost its AS backs off its reconnects (up to minutes): start fresh
        // channels, so an AS that is back is used at once (verified endorsements stay cached)
        this.#consumer.close();
      }
    }
    throw new DivsError('AS_UNAVAILABLE', `unverified: AS unavailable (${last?.message ?? 'no answer'})`, { cause: last });
  }

  /** Resolves one reference (never throws: failures become error windows). */
  async resolveOne(ref: RefInput): Promise<ResolvedRef> {
    const count = ref.count ?? 0;
    const base = { ledgerId: ref.ledgerId, txId: ref.txId, count };
    const urls = ref.asUrls.filter((u) => this.#allowed === null || this.#allowed.has(normalizeUrl(u)));
    if (urls.length === 0) {
      // nothing we may dial: the records cannot be checked, which is not their fault
      const code: ErrorCode = ref.asUrls.length === 0 ? 'MISSING_FIELD' : 'AS_UNAVAILABLE';
      return { ...base, window: errorWindow(ref.ledgerId, ref.txId, code), outcome: code };
    }
    const tx: TxRef = { txId: ref.txId, txHash: new Uint8Array(0), entryAddress: { ledgerId: ref.ledgerId, asUrls: urls } };
    let claimed: VerifiedEndorsement;
    try {
      claimed = await this.#retry(() => this.#consumer.endorsement(tx));
    } catch (e) {
      const code = codeOf(e);
      return { ...base, window: errorWindow(ref.ledgerId, ref.txId, code), outcome: code };
    }
    const claimedInfo = { txHash: claimed.leafHash.slice(), version: claimed.endorsement.version, ueKey: claimed.ueKey.slice(), checkpoint: checkpointInfo(claimed.checkpoint) };
    let latest: VerifiedEndorsement;
    try {
      latest = await this.#retry(() => this.#consumer.latestFor(tx, claimed.ueKey));
    } catch (e) {
      const code = codeOf(e);
      return { ...base, window: errorWindow(ref.ledgerId, ref.txId, code), outcome: code, claimed: claimedInfo };
    }
    const window = windowFrom(ref.ledgerId, claimed, latest);
    return {
      ...base,
      window,
      outcome: window.error ?? 'OK',
      claimed: claimedInfo,
      latest: { txId: latest.txId, version: latest.endorsement.version, checkpoint: checkpointInfo(latest.checkpoint) },
    };
  }

  /**
   * The windows {@link resolve} would most likely give, from what earlier runs verified (no AS
   * call, no TTL): one per distinct reference in the order `resolve` uses, or undefined when any
   * reference was never resolved. Only for speculative work checked against `resolve` later.
   */
  peekWindows(refs: readonly RefInput[]): WindowSpec[] | undefined {
    const out: WindowSpec[] = [];
    for (const r of dedupe(refs)) {
      const urls = r.asUrls.filter((u) => this.#allowed === null || this.#allowed.has(normalizeUrl(u)));
      if (urls.length === 0) return undefined;
      const hit = this.#consumer.peek({ txId: r.txId, txHash: new Uint8Array(0), entryAddress: { ledgerId: r.ledgerId, asUrls: urls } });
      if (!hit) return undefined;
      out.push(windowFrom(r.ledgerId, hit.claimed, hit.latest));
    }
    return out;
  }

  /** Resolves many references, a few at a time; one result per distinct (ledger, tx ID). */
  async resolve(refs: readonly RefInput[]): Promise<ResolvedRef[]> {
    const list = dedupe(refs);
    const out = new Array<ResolvedRef>(list.length);
    let next = 0;
    const lane = async () => {
      while (next < list.length) {
        const i = next++;
        out[i] = await this.resolveOne(list[i] as RefInput);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, list.length) }, lane));
    return out;
  }

  close(): void {
    this.#consumer.close();
  }
}

/** One reference per distinct (ledger, tx ID), AS URLs merged, counts summed, in first-seen order. */
function dedupe(refs: readonly RefInput[]): RefInput[] {
  const unique = new Map<string, RefInput>();
  for (const r of refs) {
    const k = refKey(r.ledgerId, r.txId);
    const had = unique.get(k);
    if (had) unique.set(k, { ...had, asUrls: [...new Set([...had.asUrls, ...r.asUrls])], count: (had.count ?? 0) + (r.count ?? 0) });
    else unique.set(k, { ...r, asUrls: [...r.asUrls] });
  }
  return [...unique.values()];
}

function codeOf(e: unknown): ErrorCode {
  if (!(e instanceof DivsError)) return 'INTERNAL';
  // the AS says the tx does not exist on its ledger: the record names an unknown tx ID
  if (e.code === 'WRONG_LEDGER') return 'UNKNOWN_TX';
  if (e.code === 'UNAVAILABLE' || e.code === 'TIMEOUT') return 'AS_UNAVAILABLE';
  return e.code;
}

function normalizeUrl(u: string): string {
  return u.replace(/^grpcs?:\/\//, '').toLowerCase();
}

