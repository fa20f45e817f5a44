/**
 * @module ue/client
 * The UE side of RP-ud [RP-UD] [FW-UE]: register (one UE, or many machine-type terminals in one
 * call), follow endorsement updates on a server stream that survives disconnects, and ask for
 * the latest reference. Every reference received goes into the UE's {@link RecordSigner}, which
 * keeps only the newest one [UPD-4], so the records it signs always carry the latest tx ID and
 * entry address [VER-1].
 */
import type { AccountStatus, EndorsementReason, SignedRegistration, TxRef, UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { UeRegistrationServiceClient, type RegisterBatchResult } from '../../proto/gen/divs/v1/ue_as.ts';
import { DivsError, fail, type ErrorCode } from '../../protocol/src/errors.ts';
import { validateUeIdentity } from '../../protocol/src/identity.ts';
import type { Suite } from '../../protocol/src/suites.ts';
import { grpc, makeClient, serverStream, unary } from '../../platform/src/grpc.ts';
import type { KeyStore } from './keystore.ts';
import { checkTxRef, type EndorsementRef, type RecordSigner } from './records.ts';
import { buildUeAuth, createRegistration } from './registration.ts';
import { asDivsError } from './util.ts';

/** The UE a client acts for: identity, the key store holding its key, and its record signer. */
export interface UeDevice {
  identity: UeIdentity;
  keystore: KeyStore;
  alias: string;
  /** Receives every endorsement reference (register, updates, latest). */
  signer?: RecordSigner;
}

export interface UeClientOptions {
  /** AS address, `host:port` (or `grpc://host:port`). */
  address: string;
  /** Channel credentials (TLS in production); insecure when omitted. */
  credentials?: grpc.ChannelCredentials;
  /** Needed for register, watchUpdates and getLatestRef; registerBatch works without. */
  device?: UeDevice;
  /** Deadline of unary calls (default 30 s). */
  timeoutMs?: number;
}

/** One endorsement update pushed by the AS [UPD-4]. */
export interface EndorsementUpdate extends EndorsementRef {
  reason: EndorsementReason;
  accountStatus: AccountStatus | undefined;
}

/** Reconnection backoff: exponential with jitter, capped. */
export interface BackoffOptions {
  /** First delay (default 500 ms). */
  initialMs?: number;
  /** Largest delay (default 30 s). */
  maxMs?: number;
  /** Growth per failed attempt (default 2). */
  factor?: number;
  /** Random spread, 0..1, so a fleet does not reconnect in lock-step (default 0.2). */
  jitter?: number;
}

export interface WatchOptions {
  backoff?: BackoffOptions;
  /**
   * Told about every failure: `retryInMs` is the delay before the next attempt, or undefined
   * when the watch stops (the error is also the rejection of `done`). Errors thrown by
   * `onUpdate`, and malformed updates (skipped), arrive with `retryInMs` 0: the watch goes on.
   */
  onError?: (err: DivsError, retryInMs: number | undefined) => void;
  /** Stops the watch when aborted. */
  signal?: AbortSignal;
}

export interface WatchHandle {
  /** Stops the watch (cancels the stream and any pending reconnect). */
  stop(): void;
  /** Resolves after stop(); rejects when a non-retryable error ends the watch. */
  readonly done: Promise<void>;
  /** Highest version received so far. */
  readonly knownVersion: number;
}

/**
 * Errors worth reconnecting after: the AS or the path to it is down or overloaded. Anything
 * else (bad auth, not registered, malformed request) will not heal by retrying.
 */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['UNAVAILABLE', 'TIMEOUT', 'INTERNAL', 'CEF_UNAVAILABLE', 'MESSAGE_TOO_LARGE']);

/** Whether a failed RP-ud call is worth retrying. */
export function isRetryable(err: DivsError): boolean {
  return RETRYABLE.has(err.code);
}

/** Delay before retry number `attempt` (0-based). */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = opts.initialMs ?? 500;
  const max = opts.maxMs ?? 30_000;
  const factor = opts.factor ?? 2;
  const jitter = Math.min(Math.max(opts.jitter ?? 0.2, 0), 1);
  const base = Math.min(max, initial * factor ** Math.min(attempt, 64));
  return Math.max(0, Math.round(base * (1 - jitter + 2 * jitter * random())));
}

function toUpdate(msg: { tx?: TxRef | undefined; version: number; reason: EndorsementReason; accountStatus?: AccountStatus | undefined }): EndorsementUpdate {
  if (!Number.isSafeInteger(msg.version) || msg.version < 1) fail('MALFORMED_MESSAGE', 'update.version: must be >= 1');
  return { tx: checkTxRef(msg.tx, 'update.tx'), version: msg.version, reason: msg.reason, accountStatus: msg.accountStatus };
}

/**
 * RP-ud client of one UE (or, without a device, of a fleet registrar).
 *
 * @example
 * const client = new UeClient({ address: 'as.example:7443', device: { identity, keystore, alias: 'ue', signer } });
 * await client.register();                       // signer now holds tx ID + entry address
 * const watch = client.watchUpdates(signer.endorsement?.version ?? 0, (u) => log.info(u));
 * ...
 * watch.stop(); client.close();
 */
export class UeClient {
  readonly #client: UeRegistrationServiceClient;
  readonly #device: UeDevice | undefined;
  readonly #timeoutMs: number;

  constructor(opts: UeClientOptions) {
    if (typeof opts.address !== 'string' || opts.address.length === 0) fail('CONFIG_INVALID', 'address: required');
    if (opts.device) validateUeIdentity(opts.device.identity, 'device.identity');
    this.#client = makeClient(UeRegistrationServiceClient, opts.address, opts.credentials);
    this.#device = opts.device;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /**
   * Registers this UE's key [REG-1] [REG-3]: builds and signs RegistrationParams in the key
   * store, sends them, and hands the returned tx ID + entry address to the signer [END-4].
   */
  async register(opts: { suites?: readonly Suite[]; createdAtMs?: number } = {}): Promise<EndorsementRef> {
    const d = this.#requireDevice();
    const { signed } = await createRegistration(d.identity, d.keystore, d.alias, opts);
    const res = await unary(this.#client, this.#client.register, { registration: signed }, { timeoutMs: this.#timeoutMs });
    const ref = { tx: checkTxRef(res.tx, 'response.tx'), version: res.version };
    if (!Number.isSafeInteger(ref.version) || ref.version < 1) fail('MALFORMED_MESSAGE', 'response.version: must be >= 1');
    await d.signer?.updateEndorsement(ref.tx, ref.version);
    return ref;
  }

  /**
   * Registers many terminals in one call [MTC-1]; one result per registration, in order (the
   * AS reports per-item failures as error codes). MALFORMED_MESSAGE when the AS answers with
   * another number of results.
   */
  async registerBatch(registrations: readonly SignedRegistration[], opts: { timeoutMs?: number } = {}): Promise<RegisterBatchResult[]> {
    if (!Array.isArray(registrations) || registrations.length === 0) fail('INVALID_ARGUMENT', 'registrations: at least one is required');
    const res = await unary(
      this.#client,
      this.#client.registerBatch,
      { registrations: [...registrations] },
      { timeoutMs: opts.timeoutMs ?? this.#timeoutMs },
    );
    if (res.results.length !== registrations.length) {
      fail('MALFORMED_MESSAGE', `AS returned ${res.results.length} results for ${registrations.length} registrations`);
    }
    return res.results;
  }

  /**
   * The latest endorsement reference of this UE [FW-UE], authenticated by a fresh signature
   * of the UE key; handed to the signer, which keeps it only when newer.
   */
  async getLatestRef(): Promise<EndorsementRef> {
    const d = this.#requireDevice();
    const auth = await buildUeAuth(d.identity, 'latest', d.keystore, d.alias);
    const res = await unary(this.#client, this.#client.getLatestRef, { auth }, { timeoutMs: this.#timeoutMs });
    const ref = { tx: checkTxRef(res.tx, 'response.tx'), version: res.version };
    if (!Number.isSafeInteger(ref.version) || ref.version < 1) fail('MALFORMED_MESSAGE', 'response.version: must be >= 1');
    await d.signer?.updateEndorsement(ref.tx, ref.version);
    return ref;
  }

  /**
   * Follows this UE's endorsement updates [UPD-4] [FW-UE]. Asks for versions newer than
   * `knownVersion`; on a dropped stream or an unavailable AS it reconnects with backoff and
   * resumes after the newest version received, so nothing is missed and nothing is delivered
   * twice. Each update goes to the signer, then to `onUpdate` (awaited, in order).
   * Authentication is rebuilt (fresh timestamp) for every connection.
   */
  watchUpdates(knownVersion: number, onUpdate: (u: EndorsementUpdate) => void | Promise<void>, opts: WatchOptions = {}): WatchHandle {
    const d = this.#requireDevice();
    if (!Number.isSafeInteger(knownVersion) || knownVersion < 0) fail('INVALID_ARGUMENT', 'knownVersion: must be a non-negative integer');
    let known = knownVersion;
    let stopped = false;
    let call: grpc.ClientReadableStream<unknown> | undefined;
    let wakeSleep: (() => void) | undefined;
    const report = (e: DivsError, retryIn: number | undefined) => {
      try {
        opts.onError?.(e, retryIn);
      } catch {
        /* a failing error callback must not end the watch */
      }
    };
    const stop = () => {
      stopped = true;
      call?.cancel();
      wakeSleep?.();
    };
    if (opts.signal?.aborted) stopped = true;
    opts.signal?.addEventListener('abort', stop, { once: true });

    const run = async (): Promise<void> => {
      let attempt = 0;
      while (!stopped) {
        let failure: DivsError | undefined;
        try {
          const auth = await buildUeAuth(d.identity, 'watch', d.keystore, d.alias);
          if (stopped) break;
          const stream = this.#client.watchUpdates({ auth, knownVersion: known });
          call = stream;
          for await (const msg of serverStream(stream)) {
            if (stopped) break;
            attempt = 0;
            let u: EndorsementUpdate;
            try {
              u = toUpdate(msg);
            } catch (e) {
              report(asDivsError(e), 0);
              continue;
            }
            // a resumed stream may repeat what we already have: keep versions strictly rising
            if (u.version <= known) continue;
            known = u.version;
            try {
              await d.signer?.updateEndorsement(u.tx, u.version);
              await onUpdate(u);
            } catch (e) {
              report(asDivsError(e, 'update handler failed'), 0);
            }
          }
        } catch (e) {
          failure = asDivsError(e);
        } finally {
          call = undefined;
        }
        if (stopped) break;
        if (failure && !isRetryable(failure)) {
          report(failure, undefined);
          throw failure;
        }
        // a clean end (AS restart, drain) is retried like a failure, after the same backoff
        const delay = backoffDelay(attempt++, opts.backoff);
        report(failure ?? new DivsError('UNAVAILABLE', 'update stream ended'), delay);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          wakeSleep = () => {
            clearTimeout(t);
            resolve();
          };
        });
        wakeSleep = undefined;
      }
    };
    const done = run().finally(() => opts.signal?.removeEventListener('abort', stop));
    return {
      stop,
      done,
      get knownVersion() {
        return known;
      },
    };
  }

  /** Closes the channel. */
  close(): void {
    this.#client.close();
  }

  #requireDevice(): UeDevice {
    if (!this.#device) fail('CONFIG_INVALID', 'this client has no device (identity, key store, alias)');
    return this.#device;
  }
}
