/**
 * @module client
 * Typed promise client of the CEF for DIVS AS nodes (RP-edl: status, subscriptions, event
 * streams), operator tools (provisioning, actions, device config) and UEs (OTA device config).
 * Every failure is a {@link DivsError} with the CEF's code.
 */
import {
  CapabilityExposureServiceClient,
  DeviceManagementServiceClient,
  SubscriberManagementServiceClient,
  type ApplyActionRequest,
  type CreateSubscriptionResponse,
  type DeviceConfig,
  type GetDeviceConfigRequest,
  type GetDeviceConfigResponse,
  type ModifySubscriptionResponse,
  type ProvisionBatchResponse,
  type StatusEvent,
  type SubscriberRecord,
} from '../../proto/gen/divs/v1/cef.ts';
import type { AccountStatus, UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { DivsError, fail, isErrorCode, type ErrorCode } from '../../protocol/src/errors.ts';
import { fromServiceError, grpc, unary } from '../../platform/src/grpc.ts';
import { fetchDeviceConfig, type OtaTransport } from './ota.ts';

export { fetchDeviceConfig } from './ota.ts';

export interface CefClientOptions {
  /** Bearer token sent as `authorization: Bearer <token>`. */
  token?: string;
  /** Channel credentials; insecure by default. */
  credentials?: grpc.ChannelCredentials;
  /** Deadline of unary calls (ms); default 30 000. */
  timeoutMs?: number;
}

/** The action part of an ApplyAction request. */
export type OperatorAction = NonNullable<ApplyActionRequest['action']>;

/** Identity with only some fields set; the rest default to empty. */
export type IdentityInput = Partial<UeIdentity>;

const fullIdentity = (id: IdentityInput): UeIdentity => ({ imei: id.imei ?? '', iccid: id.iccid ?? '', eid: id.eid ?? '', msisdn: id.msisdn ?? '' });

/** Errors after which resuming a stream cannot help. */
const PERMANENT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'UNKNOWN_SUBSCRIPTION',
  'UNAUTHENTICATED',
  'PERMISSION_DENIED',
  'INVALID_RANGE',
  'INVALID_ARGUMENT',
  'MALFORMED_MESSAGE',
  'MISSING_FIELD',
]);

export interface FollowOptions {
  /** Stops following (the iterator then ends without error). */
  signal?: AbortSignal;
  /** First reconnect delay (ms), doubled per failed attempt up to `maxDelayMs`; default 200. */
  initialDelayMs?: number;
  /** Default 5000. */
  maxDelayMs?: number;
  /** Called before each reconnect with the error that ended the previous stream. */
  onRetry?: (err: DivsError, attempt: number) => void;
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Client of one CEF instance (all three services over one channel).
 * @example
 * const cef = new CefClient('127.0.0.1:50051', { token: 'secret' });
 * const status = await cef.getAccountStatus({ imei: '356938035643809' });
 * const { subscriptionId, currentSequence } = await cef.createSubscription({ subscriber: 'as-1', identities: [status.identity!] });
 * for await (const ev of cef.follow(subscriptionId, currentSequence)) console.log(ev.sequence, ev.type);
 */
export class CefClient implements OtaTransport {
  readonly #exposure: CapabilityExposureServiceClient;
  readonly #management: SubscriberManagementServiceClient;
  readonly #device: DeviceManagementServiceClient;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;

  constructor(address: string, opts: CefClientOptions = {}) {
    const target = address.replace(/^grpcs?:\/\//, '');
    const creds = opts.credentials ?? grpc.credentials.createInsecure();
    this.#exposure = new CapabilityExposureServiceClient(target, creds, {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
      // reconnect quickly after a CEF restart so resumed streams do not stall
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 5000,
    });
    const channelOverride = this.#exposure.getChannel();
    this.#management = new SubscriberManagementServiceClient(target, creds, { channelOverride });
    this.#device = new DeviceManagementServiceClient(target, creds, { channelOverride });
    this.#token = opts.token;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  #opts() {
    const metadata = new grpc.Metadata();
    if (this.#token) metadata.set('authorization', `Bearer ${this.#token}`);
    return { metadata, timeoutMs: this.#timeoutMs };
  }

  // ------------------------------------------------------------ RP-edl (AS side)

  /** Account status of the UE an identity names [NET-1]. */
  /** Account status of many UEs in one call; one result per identity, in order [NET-1] [MTC-1]. */
  async batchGetAccountStatus(identities: IdentityInput[]): Promise<Array<AccountStatus | DivsError>> {
    const res = await unary(this.#exposure, this.#exposure.batchGetAccountStatus, { identities: identities.map(fullIdentity) }, this.#opts());
    return res.results.map((r) =>
      r.status && !r.errorCode ? r.status : new DivsError(isErrorCode(r.errorCode) ? r.errorCode : 'INTERNAL', r.errorMessage || 'no status'),
    );
  }

  async getAccountStatus(identity: IdentityInput): Promise<AccountStatus> {
    const res = await unary(this.#exposure, this.#exposure.getAccountStatus, { identity: fullIdentity(identity) }, this.#opts());
    if (!res.status) fail('INTERNAL', 'CEF answered without a status');
    return res.status;
  }

  /** Subscribes to status events of some UEs or all [NET-2]. */
  createSubscription(req: { subscriber: string; identities?: IdentityInput[]; all?: boolean }): Promise<CreateSubscriptionResponse> {
    return unary(
      this.#exposure,
      this.#exposure.createSubscription,
      { subscriber: req.subscriber, identities: (req.identities ?? []).map(fullIdentity), all: req.all ?? false },
      this.#opts(),
    );
  }

  modifySubscription(req: { subscriptionId: string; add?: IdentityInput[]; remove?: IdentityInput[]; all?: boolean }): Promise<ModifySubscriptionResponse> {
    return unary(
      this.#exposure,
      this.#exposure.modifySubscription,
      { subscriptionId: req.subscriptionId, add: (req.add ?? []).map(fullIdentity), remove: (req.remove ?? []).map(fullIdentity), all: req.all },
      this.#opts(),
    );
  }

  async unsubscribe(subscriptionId: string): Promise<void> {
    await unary(this.#exposure, this.#exposure.unsubscribe, { subscriptionId }, this.#opts());
  }

  /**
   * One Subscribe stream: events with sequence > `afterSequence`, backlog then live, until the
   * stream fails (a DivsError: UNAVAILABLE when the CEF goes away, UNKNOWN_SUBSCRIPTION after
   * Unsubscribe). Breaking out of the loop or aborting `signal` cancels the call.
   * Use {@link follow} to resume automatically.
   */
  async *subscribe(subscriptionId: string, afterSequence: number, signal?: AbortSignal): AsyncGenerator<StatusEvent, void, undefined> {
    const { metadata } = this.#opts();
    const call = this.#exposure.subscribe({ subscriptionId, afterSequence }, metadata);
    const onAbort = () => call.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const msg of call as AsyncIterable<{ event?: StatusEvent }>) {
        if (msg.event) yield msg.event;
      }
    } catch (e) {
      if (signal?.aborted) return;
      throw fromServiceError(e);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      call.cancel();
    }
  }

  /**
   * Follows a subscription forever: like {@link subscribe}, but when the stream breaks
   * (CEF restart, network) it reconnects with backoff and resumes after the last delivered
   * sequence, so the caller sees every event exactly once, in order. Ends when `signal`
   * aborts; throws on errors resuming cannot fix (UNKNOWN_SUBSCRIPTION, auth, bad range).
   */
  async *follow(subscriptionId: string, afterSequence: number, opts: FollowOptions = {}): AsyncGenerator<StatusEvent, void, undefined> {
    let last = afterSequence;
    let attempt = 0;
    const initial = opts.initialDelayMs ?? 200;
    const max = opts.maxDelayMs ?? 5000;
    while (!opts.signal?.aborted) {
      try {
        for await (const ev of this.subscribe(subscriptionId, last, opts.signal)) {
          attempt = 0;
          last = ev.sequence;
          yield ev;
        }
        if (opts.signal?.aborted) return;
        // a clean end (server drained) is resumed like a broken stream
      } catch (e) {
        const err = e instanceof DivsError ? e : fromServiceError(e);
        if (PERMANENT.has(err.code)) throw err;
        attempt++;
        opts.onRetry?.(err, attempt);
      }
      await sleep(Math.min(max, initial * 2 ** Math.max(0, attempt - 1)), opts.signal);
    }
  }

  // ------------------------------------------------------------ operator back office

  /** Provisions up to 10 000 subscribers [MTC-1]; per-record results in request order. */
  provisionBatch(subscribers: SubscriberRecord[]): Promise<ProvisionBatchResponse> {
    return unary(this.#management, this.#management.provisionBatch, { subscribers }, this.#opts());
  }

  /**
   * Applies an operator action and returns the status event it produced.
   * @example
   * await cef.applyAction({ msisdn: '+491701234567' }, { $case: 'suspend', value: {} });
   */
  async applyAction(identity: IdentityInput, action: OperatorAction): Promise<StatusEvent> {
    const res = await unary(this.#management, this.#management.applyAction, { identity: fullIdentity(identity), action }, this.#opts());
    if (!res.event) fail('INTERNAL', 'CEF answered without an event');
    return res.event;
  }

  /** Sets the device configuration of some subscribers or all [MTC-2]; returns how many it applies to. */
  async setDeviceConfig(req: { identities?: IdentityInput[]; all?: boolean; config: Omit<DeviceConfig, 'configVersion'> & { configVersion?: number } }): Promise<number> {
    const res = await unary(
      this.#management,
      this.#management.setDeviceConfig,
      {
        identities: (req.identities ?? []).map(fullIdentity),
        all: req.all ?? false,
        config: { entryAddress: req.config.entryAddress, gatewayUrl: req.config.gatewayUrl, configVersion: req.config.configVersion ?? 0 },
      },
      this.#opts(),
    );
    return res.updated;
  }

  // ------------------------------------------------------------ UE side (MTC-2)

  /** Raw GetDeviceConfig call (the request must already carry its MAC). */
  getDeviceConfigRaw(request: GetDeviceConfigRequest): Promise<GetDeviceConfigResponse> {
    return unary(this.#device, this.#device.getDeviceConfig, request, { timeoutMs: this.#timeoutMs });
  }

  /** Fetches this UE's device configuration, authenticating with its OTA key and verifying the answer. */
  getDeviceConfig(identity: IdentityInput, otaKey: Uint8Array): Promise<DeviceConfig> {
    return fetchDeviceConfig(this, fullIdentity(identity), otaKey);
  }

  /**
   * Waits until the channel is connected (e.g. after a CEF restart: calls made while the
   * channel is still backing off fail fast with UNAVAILABLE). Throws UNAVAILABLE after
   * `timeoutMs`.
   */
  waitForReady(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#exposure.waitForReady(Date.now() + timeoutMs, (err) =>
        err ? reject(new DivsError('UNAVAILABLE', `CEF not reachable within ${timeoutMs} ms: ${err.message}`, { cause: err })) : resolve(),
      );
    });
  }

  /** Closes the channel. */
  close(): void {
    this.#exposure.close();
  }
}
