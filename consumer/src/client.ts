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
import { EndorsementView, type ProvenTx, VerificationDataServiceClient } from '../../proto/gen/divs/v1/consumer_as.ts';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { equalBytes, toHex } from '../../protocol/src/bytes.ts';
import { grpc, makeClient, unary } from '../../platform/src/grpc.ts';
import { checkRecord, type RecordVerdict, type TrustAnchors, type VerifiedEndorsement, verifyEndorsementSummary, verifyProvenEndorsement } from './verify.ts';

export interface ConsumerOptions {
  anchors: TrustAnchors;
  /** Bearer token per AS URL (or one for all, under "*"). */
  tokens?: Record<string, string>;
  timeoutMs?: number;
  /** How long a "latest version" answer is reused (ms). */
  latestTtlMs?: number;
}

export class DivsConsumer {
  readonly #o: ConsumerOptions;
  readonly #clients = new Map<string, VerificationDataServiceClient>();
  readonly #endorsements = new Map<string, VerifiedEndorsement>();
  readonly #latest = new Map<string, { at: number; v: VerifiedEndorsement }>();

  constructor(o: ConsumerOptions) {
    this.#o = o;
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
    const res = await this.#withAs(ref.entryAddress?.asUrls ?? [], (c, md) =>
      unary(c, c.getLatest, { ueKey }, { metadata: md, timeoutMs: this.#o.timeoutMs }),
    );
    const v = verifyProvenEndorsement(res.latest, this.#o.anchors, { ledgerId });
    if (v.isLatest !== true) fail('NOT_LATEST', 'the AS did not prove this is the latest version');
    if (!equalBytes(v.ueKey, ueKey)) fail('INVALID_ENDORSEMENT', 'the AS answered with the latest version of another UE');
    this.#latest.set(`${ledgerId}#${toHex(ueKey)}`, { at: Date.now(), v });
    return { proven: res.latest as ProvenTx, verified: v };
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
