/**
 * @module client
 * Consumer SDK over RP-ds [RP-DS] [FW-SU] [VER-3] [VER-4]: fetches endorsements by tx ID +
 * entry address from the AS named in the record, verifies them with only the configured trust
 * anchors, caches verified endorsements by (ledger, tx ID) — they are immutable — and judges
 * records. The latest version of a UE is fetched with its proof on every verification batch
 * (it changes when a contract ends), with a short cache.
 */
import type { SignedRecord, TxRef } from '../../proto/gen/divs/v1/common.ts';
import { RecordBody } from '../../proto/gen/divs/v1/common.ts';
import { EndorsementView, ProvenTx, VerificationDataServiceClient } from '../../proto/gen/divs/v1/consumer_as.ts';
import { DivsError, fail, isErrorCode } from '../../protocol/src/errors.ts';
import { equalBytes, sha256, toHex } from '../../protocol/src/bytes.ts';
import { LruMap } from '../../protocol/src/lru.ts';
import { grpc, makeClient, unary } from '../../platform/src/grpc.ts';
import { checkRecord, type RecordVerdict, type TrustAnchors, type VerifiedEndorsement, verifyEndorsementSummary, verifyProvenEndorsement } from './verify.ts';

export interface ConsumerOptions {
  anchors: TrustAnchors;
  /** Bearer token per AS URL (or one for all, under "*"). */
  tokens?: Record<string, string>;
  timeoutMs?: number;
  /** How long a "latest version" answer is reused (ms). */
  latestTtlMs?: number;
  /**
   * Most verified endorsements, and most latest versions, kept in memory (each least recently
   * used first out; default 100,000). A dropped one is fetched and verified again when needed.
   */
  cacheEntries?: number;
}

const DEFAULT_CACHE_ENTRIES = 100_000;

/** UE keys per GetLatestBatch call (the AS accepts up to 1024). */
const LATEST_BATCH_MAX = 512;

interface LatestBatch {
  urls: string[];
  items: Array<{ ueKey: Uint8Array; resolve: (p: ProvenTx) => void; reject: (e: unknown) => void }>;
}

export class DivsConsumer {
  readonly #o: ConsumerOptions;
  readonly #clients = new Map<string, VerificationDataServiceClient>();
  readonly #endorsements: LruMap<string, VerifiedEndorsement>;
  /** Latest versions by ledger and UE key: when fetched, what verified, and (for fetched answers)
   * the digest of the exact answer, so an unchanged answer is not verified again. */
  readonly #latest: LruMap<string, { at: number; v: VerifiedEndorsement; answer?: string }>;
  /** Latest-version requests waiting for this turn's GetLatestBatch, per AS URL list. */
  readonly #latestBatches = new Map<string, LatestBatch>();
  /** AS URL lists whose AS does not implement GetLatestBatch. */
  readonly #unbatched = new Set<string>();

  constructor(o: ConsumerOptions) {
    this.#o = o;
    const max = o.cacheEntries ?? DEFAULT_CACHE_ENTRIES;
    this.#endorsements = new LruMap(max);
    this.#latest = new LruMap(max);
  }

  #client(url: string): VerificationDataServiceClient {
    let c = this.#clients.get(url);
    if (!c) this.#clients.set(url, (c = makeClient(VerificationDataServiceClient, url)));
    return c;
  }

  #md(url: string): grpc.Metadata {
    const md = new grpc.Metadata();
    const t = this.#o.tokens?.[url] ?? this.#o.tokens?.['*'];
    if (t) md.set('authorization', `Bearer ${t}`);
    return md;
  }

  /** Tries each AS URL of the entry address in turn; a refusal (not an outage) is final. */
  async #withAs<T>(urls: string[], fn: (c: VerificationDataServiceClient, md: grpc.Metadata, url: string) => Promise<T>): Promise<T> {
    if (urls.length === 0) fail('INVALID_ARGUMENT', 'entry address names no AS');
    let last: DivsError | undefined;
    for (const url of urls) {
      try {
        return await fn(this.#client(url), this.#md(url), url);
      } catch (e) {
        const err = e instanceof DivsError ? e : new DivsError('UNAVAILABLE', String(e));
        if (err.code !== 'UNAVAILABLE' && err.code !== 'TIMEOUT') throw err;
        last = err;
      }
    }
    throw new DivsError('UNAVAILABLE', `AS unavailable: ${last?.message ?? 'no answer'}`, { cause: last });
  }

  /** Fetches and verifies the endorsement a tx ref names (cached: endorsements are immutable). */
  async endorsement(ref: TxRef): Promise<VerifiedEndorsement> {
    const ledgerId = ref.entryAddress?.ledgerId ?? '';
    const key = `${ledgerId}#${ref.txId}`;
    const hit = this.#endorsements.get(key);
    if (hit) return hit;
    return (await this.provenEndorsement(ref)).verified;
  }

  /**
   * The endorsement a tx ref names, fetched fresh with its latest-version proof: the exact
   * ProvenTx the AS answered (to carry in a data package for offline re-verification [SC1-1])
   * and its verification. Refreshes the caches.
   */
  async provenEndorsement(ref: TxRef): Promise<{ proven: ProvenTx; verified: VerifiedEndorsement }> {
    const ledgerId = ref.entryAddress?.ledgerId ?? '';
    const res = await this.#withAs(ref.entryAddress?.asUrls ?? [], (c, md) =>
      unary(c, c.getEndorsement, { txId: ref.txId, ledgerId, view: EndorsementView.ENDORSEMENT_VIEW_FULL, withLatestProof: true }, { metadata: md, timeoutMs: this.#o.timeoutMs }),
    );
    const v = verifyProvenEndorsement(res.proven, this.#o.anchors, { ledgerId });
    if (ref.txHash.length > 0 && toHex(ref.txHash) !== toHex(v.leafHash)) fail('INVALID_ENDORSEMENT', 'the AS returned a different transaction than the tx hash names');
    this.#endorsements.set(`${ledgerId}#${ref.txId}`, v);
    if (v.isLatest) this.#latest.set(`${ledgerId}#${toHex(v.ueKey)}`, { at: Date.now(), v });
    return { proven: res.proven as ProvenTx, verified: v };
  }

  /**
   * What this client last verified for a tx ref and its UE's latest version, however old, or
   * undefined. For speculative work that is checked against fresh answers before it is used.
   */
  peek(ref: TxRef): { claimed: VerifiedEndorsement; latest: VerifiedEndorsement } | undefined {
    const ledgerId = ref.entryAddress?.ledgerId ?? '';
    const claimed = this.#endorsements.get(`${ledgerId}#${ref.txId}`);
    const latest = claimed && this.#latest.get(`${ledgerId}#${toHex(claimed.ueKey)}`)?.v;
    return claimed && latest ? { claimed, latest } : undefined;
  }

  /** The UE's latest endorsement, proven latest against a checkpoint. */
  async latestFor(ref: TxRef, ueKey: Uint8Array): Promise<VerifiedEndorsement> {
    const ledgerId = ref.entryAddress?.ledgerId ?? '';
    const key = `${ledgerId}#${toHex(ueKey)}`;
    const hit = this.#latest.get(key);
    if (hit && Date.now() - hit.at < (this.#o.latestTtlMs ?? 5_000)) return hit.v;
    return (await this.provenLatest(ref, ueKey)).verified;
  }

  /**
   * The UE's latest endorsement, fetched fresh from the AS the ref names: the exact ProvenTx
   * (with the latest-version proof against its checkpoint) and its verification. NOT_LATEST
   * when the AS does not prove it latest.
   */
  async provenLatest(ref: TxRef, ueKey: Uint8Array): Promise<{ proven: ProvenTx; verified: VerifiedEndorsement }> {
    const ledgerId = ref.entryAddress?.ledgerId ?? '';
    const proven = await this.#fetchLatest(ref.entryAddress?.asUrls ?? [], ueKey);
    const key = `${ledgerId}#${toHex(ueKey)}`;
    // Until the ledger grows, the AS answers a UE's latest version with the same bytes every
    // time (same tx, checkpoint and proofs); an answer verified before is not verified again
    // while the certificate chains it relied on are still valid.
    const answer = toHex(sha256(ProvenTx.encode(proven).finish()));
    const now = Date.now();
    const had = this.#latest.get(key);
    const v = had !== undefined && had.answer === answer && now <= had.v.validUntilMs ? had.v : verifyProvenEndorsement(proven, this.#o.anchors, { ledgerId });
    if (v.isLatest !== true) fail('NOT_LATEST', 'the AS did not prove this is the latest version');
    if (!equalBytes(v.ueKey, ueKey)) fail('INVALID_ENDORSEMENT', 'the AS answered with the latest version of another UE');
    this.#latest.set(key, { at: now, v, answer });
    return { proven, verified: v };
  }

  /**
   * The AS's latest version of a UE key, unverified. Requests for the same AS made in one turn
   * of the event loop go out as one GetLatestBatch call (a verification run asks for every UE of
   * a dataset at once, and one call per UE costs the AS more than the lookup itself); an AS
   * without that RPC is asked one key at a time.
   */
  #fetchLatest(urls: string[], ueKey: Uint8Array): Promise<ProvenTx> {
    const k = urls.join(' ');
    if (urls.length === 0 || this.#unbatched.has(k)) return this.#fetchLatestOne(urls, ueKey);
    let batch = this.#latestBatches.get(k);
    if (!batch) {
      const b: LatestBatch = { urls, items: [] };
      this.#latestBatches.set(k, (batch = b));
      setImmediate(() => void this.#flushLatest(k, b));
    }
    const b = batch;
    return new Promise<ProvenTx>((resolve, reject) => {
      b.items.push({ ueKey, resolve, reject });
      if (b.items.length >= LATEST_BATCH_MAX) void this.#flushLatest(k, b);
    });
  }

  async #fetchLatestOne(urls: string[], ueKey: Uint8Array): Promise<ProvenTx> {
    const res = await this.#withAs(urls, (c, md) => unary(c, c.getLatest, { ueKey }, { metadata: md, timeoutMs: this.#o.timeoutMs }));
    if (!res.latest) fail('INVALID_ENDORSEMENT', 'the AS answered without a latest version');
    return res.latest;
  }

  async #flushLatest(k: string, b: LatestBatch): Promise<void> {
    if (this.#latestBatches.get(k) !== b) return; // flushed already (full)
    this.#latestBatches.delete(k);
    const items = b.items;
    let results;
    try {
      const res = await this.#withAs(b.urls, (c, md) => unary(c, c.getLatestBatch, { ueKeys: items.map((i) => i.ueKey) }, { metadata: md, timeoutMs: this.#o.timeoutMs }));
      results = res.results;
    } catch (e) {
      if ((e as DivsError & { cause?: { code?: number } }).cause?.code === grpc.status.UNIMPLEMENTED) {
        // an AS of an older release: one key per call from now on
        this.#unbatched.add(k);
        for (const it of items) this.#fetchLatestOne(b.urls, it.ueKey).then(it.resolve, it.reject);
        return;
      }
      for (const it of items) it.reject(e);
      return;
    }
    items.forEach((it, i) => {
      const r = results[i];
      if (results.length !== items.length || !r || !equalBytes(r.ueKey, it.ueKey)) {
        it.reject(new DivsError('INVALID_ENDORSEMENT', 'the AS answered a latest-version batch out of order'));
      } else if (r.errorCode !== '') {
        it.reject(new DivsError(isErrorCode(r.errorCode) ? r.errorCode : 'INTERNAL', r.errorMessage || r.errorCode));
      } else if (!r.latest) {
        it.reject(new DivsError('INVALID_ENDORSEMENT', 'the AS answered without a latest version'));
      } else {
        it.resolve(r.latest);
      }
    });
  }

  /** Partial endorsement (VER-5): public key and termination time only. */
  async summary(ref: TxRef) {
    const res = await this.#withAs(ref.entryAddress?.asUrls ?? [], (c, md) =>
      unary(c, c.getEndorsement, { txId: ref.txId, ledgerId: ref.entryAddress?.ledgerId ?? '', view: EndorsementView.ENDORSEMENT_VIEW_KEY_AND_TERMINATION, withLatestProof: false }, { metadata: md }),
    );
    return verifyEndorsementSummary(res.summary, this.#o.anchors);
  }

  /** Verifies one signed record end to end [VER-3]; never throws for a bad record, only reports. */
  async verifyRecord(record: SignedRecord): Promise<RecordVerdict> {
    let body: RecordBody;
    try {
      body = RecordBody.decode(record.body);
    } catch {
      return { ok: false, code: 'MALFORMED_MESSAGE', reason: 'record body does not decode' };
    }
    const ref = body.endorsement;
    if (!ref) return { ok: false, code: 'MISSING_FIELD', reason: 'record names no endorsement (tx ID + entry address)', body };
    try {
      const claimed = await this.endorsement(ref);
      // never trust a cached "latest" flag: the contract may have ended since (TTL-bound cache)
      const latest = await this.latestFor(ref, claimed.ueKey);
      return checkRecord(record, claimed, latest);
    } catch (e) {
      const err = e instanceof DivsError ? e : new DivsError('INTERNAL', String(e));
      return { ok: false, code: err.code, reason: err.message, body };
    }
  }

  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }
}
