/**
 * @module cef-link
 * The AS side of RP-edl [RP-EDL] [NET-1] [NET-2] [UPD-2]: account status lookups for
 * registrations, and the status-event subscription that drives endorsement updates. The
 * subscription resumes after the highest event sequence already on the ledger, so after a
 * restart no event is lost and none is applied twice (application is idempotent as well).
 */
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import type { Logger } from 'pino';
import {
  CapabilityExposureServiceClient,
  type StatusEvent,
} from '../../proto/gen/divs/v1/cef.ts';
import type { AccountStatus, UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { DivsError, isErrorCode } from '../../protocol/src/errors.ts';

/** Identities per BatchGetAccountStatus call. */
export const STATUS_BATCH = 5000;
import { grpc, makeClient, serverStream, unary } from '../../platform/src/grpc.ts';
import { silentLogger } from '../../platform/src/log.ts';
import type { StatusSource } from './contract.ts';

export interface CefLinkOptions {
  address: string;
  token?: string;
  /** File that remembers the subscription ID across restarts. */
  stateFile?: string;
  subscriber: string;
  log?: Logger;
  timeoutMs?: number;
}

export class CefLink implements StatusSource {
  readonly #client: CapabilityExposureServiceClient;
  readonly #o: CefLinkOptions;
  readonly #log: Logger;
  #stop = new AbortController();

  constructor(o: CefLinkOptions) {
    this.#o = o;
    this.#client = makeClient(CapabilityExposureServiceClient, o.address);
    this.#log = o.log ?? silentLogger;
  }

  #md(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.#o.token) md.set('authorization', `Bearer ${this.#o.token}`);
    return md;
  }

  /**
   * Account status per identity [NET-1], in batches of {@link STATUS_BATCH} per call; each
   * failure stays with its identity, and an unreachable CEF fails every slot with CEF_UNAVAILABLE.
   */
  async getStatuses(identities: UeIdentity[]): Promise<Array<AccountStatus | DivsError>> {
    const out: Array<AccountStatus | DivsError> = [];
    const chunks: UeIdentity[][] = [];
    for (let i = 0; i < identities.length; i += STATUS_BATCH) chunks.push(identities.slice(i, i + STATUS_BATCH));
    const answers = await Promise.all(
      chunks.map(async (chunk) => {
        try {
          const res = await unary(this.#client, this.#client.batchGetAccountStatus, { identities: chunk }, { metadata: this.#md(), timeoutMs: this.#o.timeoutMs ?? 15_000 });
          if (res.results.length !== chunk.length) throw new DivsError('CEF_UNAVAILABLE', 'CEF answered a different number of statuses');
          return res.results.map((r) =>
            r.status && !r.errorCode ? r.status : new DivsError(isErrorCode(r.errorCode) ? r.errorCode : 'INTERNAL', r.errorMessage || 'no status'),
          );
        } catch (e) {
          const err = e instanceof DivsError ? e : new DivsError('CEF_UNAVAILABLE', String(e));
          const mapped = err.code === 'UNAVAILABLE' || err.code === 'TIMEOUT' ? new DivsError('CEF_UNAVAILABLE', `CEF unavailable: ${err.message}`) : err;
          return chunk.map(() => mapped);
        }
      }),
    );
    for (const a of answers) out.push(...a);
    return out;
  }

  #savedSubscription(): string | undefined {
    if (!this.#o.stateFile) return undefined;
    try {
      return (JSON.parse(readFileSync(this.#o.stateFile, 'utf8')) as { subscriptionId?: string }).subscriptionId;
    } catch {
      return undefined;
    }
  }

  #saveSubscription(id: string): void {
    if (!this.#o.stateFile) return;
    const tmp = `${this.#o.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify({ subscriptionId: id }), { mode: 0o600 });
    renameSync(tmp, this.#o.stateFile);
  }

  async #subscriptionId(): Promise<string> {
    const saved = this.#savedSubscription();
    if (saved) return saved;
    const res = await unary(this.#client, this.#client.createSubscription, { subscriber: this.#o.subscriber, identities: [], all: true }, { metadata: this.#md() });
    this.#saveSubscription(res.subscriptionId);
    return res.subscriptionId;
  }

  /**
   * Follows status events until {@link close}: `apply` each in order; `cursor()` gives the
   * sequence to resume after (read from the ledger-derived index at each reconnect).
   */
  async follow(cursor: () => number, apply: (ev: StatusEvent) => Promise<unknown>, onReady?: () => void): Promise<void> {
    let backoff = 100;
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        const id = await this.#subscriptionId();
        const call = this.#client.subscribe({ subscriptionId: id, afterSequence: cursor() }, this.#md());
        const onAbort = () => call.cancel();
        signal.addEventListener('abort', onAbort, { once: true });
        onReady?.();
        onReady = undefined;
        try {
          for await (const msg of serverStream(call)) {
            backoff = 100;
            if (msg.event) await apply(msg.event);
          }
        } finally {
          signal.removeEventListener('abort', onAbort);
        }
      } catch (e) {
        if (signal.aborted) break;
        if (e instanceof DivsError && e.code === 'UNKNOWN_SUBSCRIPTION' && this.#o.stateFile) {
          this.#log.warn('CEF forgot our subscription; creating a new one');
          writeFileSync(this.#o.stateFile, '{}');
          continue;
        }
        this.#log.warn({ err: (e as Error).message, retryMs: backoff }, 'CEF subscription interrupted; resuming');
      }
      if (signal.aborted) break;
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 5000);
    }
  }

  close(): void {
    this.#stop.abort();
    this.#client.close();
  }
}
