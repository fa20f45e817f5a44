/**
 * @module rpc
 * gRPC adapter of the CEF: maps the three services of `divs/v1/cef.proto` onto {@link Usm}.
 * - CapabilityExposureService (RP-edl, towards DIVS AS nodes) and SubscriberManagementService
 *   (operator back office) require `authorization: Bearer <token>` metadata when tokens are
 *   configured: none -> UNAUTHENTICATED, an unknown one -> PERMISSION_DENIED.
 * - DeviceManagementService (towards UEs) is authenticated per request by the OTA MAC.
 * Decoding guards, error mapping, health and reflection come from platform/src/grpc.ts.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  CapabilityExposureServiceService,
  DeviceManagementServiceService,
  SubscriberManagementServiceService,
} from '../../proto/gen/divs/v1/cef.ts';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { RpcServer, type CallContext } from '../../platform/src/grpc.ts';
import type { Logger } from '../../platform/src/log.ts';
import { MAX_IDENTITIES_PER_REQUEST, type Usm } from './usm.ts';

export interface CefRpcOptions {
  usm: Usm;
  /** Bearer tokens accepted by the exposure service (and the management service unless `managementTokens` is set). Empty/absent: no token check. */
  tokens?: string[];
  /** Bearer tokens accepted by the management service; defaults to `tokens`. */
  managementTokens?: string[];
  log?: Logger;
  /** Largest accepted request; default 16 MiB, room for a full 10 000-record batch. */
  maxMessageBytes?: number;
}

/** Default request size limit of the CEF. */
export const CEF_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * A bearer-token check: resolves when the call carries one of `tokens`, else throws. Compares
 * SHA-256 digests in constant time so response timing does not reveal token prefixes.
 */
export function bearerCheck(tokens: readonly string[] | undefined): (ctx: CallContext) => void {
  const allowed = (tokens ?? []).filter((t) => t.length > 0).map(digest);
  if (allowed.length === 0) return () => {};
  return (ctx) => {
    const raw = ctx.metadata.get('authorization')[0];
    if (raw === undefined) fail('UNAUTHENTICATED', 'missing authorization: Bearer <token>');
    const m = /^Bearer ([\x21-\x7e]+)$/i.exec(String(raw));
    if (!m) fail('UNAUTHENTICATED', 'authorization must be "Bearer <token>"');
    const d = digest(m[1] as string);
    let ok = false;
    for (const a of allowed) ok = timingSafeEqual(a, d) || ok;
    if (!ok) fail('PERMISSION_DENIED', 'token not accepted');
  };
}

/** Builds (without listening) a gRPC server exposing the CEF services over `usm`. */
export function createCefServer(opts: CefRpcOptions): RpcServer {
  const { usm } = opts;
  const exposure = bearerCheck(opts.tokens);
  const management = bearerCheck(opts.managementTokens ?? opts.tokens);
  const server = new RpcServer({
    protoFiles: ['divs/v1/cef.proto'],
    ...(opts.log ? { log: opts.log } : {}),
    maxMessageBytes: opts.maxMessageBytes ?? CEF_MAX_MESSAGE_BYTES,
  });

  server.add(CapabilityExposureServiceService, {
    getAccountStatus: (req, ctx) => {
      exposure(ctx);
      return { status: usm.getAccountStatus(req.identity) };
    },
    batchGetAccountStatus: (req, ctx) => {
      exposure(ctx);
      if (req.identities.length > MAX_IDENTITIES_PER_REQUEST) {
        fail('BATCH_TOO_LARGE', `at most ${MAX_IDENTITIES_PER_REQUEST} identities per call, got ${req.identities.length}`);
      }
      // one result per identity: a bad or unknown identity fails only its own slot
      return {
        results: req.identities.map((id) => {
          try {
            return { status: usm.getAccountStatus(id), errorCode: '', errorMessage: '' };
          } catch (e) {
            if (!(e instanceof DivsError)) throw e;
            return { errorCode: e.code, errorMessage: e.message };
          }
        }),
      };
    },
    createSubscription: (req, ctx) => {
      exposure(ctx);
      const res = usm.createSubscription(req);
      ctx.log.info({ subscriptionId: res.subscriptionId, subscriber: req.subscriber, all: req.all }, 'subscription created');
      return res;
    },
    subscribe: async (req, send, ctx) => {
      exposure(ctx);
      for await (const event of usm.events(req.subscriptionId, req.afterSequence, ctx.signal)) await send({ event });
    },
    modifySubscription: (req, ctx) => {
      exposure(ctx);
      return usm.modifySubscription(req);
    },
    unsubscribe: (req, ctx) => {
      exposure(ctx);
      usm.unsubscribe(req.subscriptionId);
      ctx.log.info({ subscriptionId: req.subscriptionId }, 'subscription deleted');
      return {};
    },
  });

  server.add(SubscriberManagementServiceService, {
    provisionBatch: (req, ctx) => {
      management(ctx);
      const res = usm.provisionBatch(req.subscribers);
      ctx.log.info({ records: req.subscribers.length, provisioned: res.provisioned }, 'batch provisioned');
      return res;
    },
    applyAction: (req, ctx) => {
      management(ctx);
      const event = usm.applyAction(req);
      ctx.log.info({ sequence: event.sequence, type: event.type }, 'operator action applied');
      return { event };
    },
    setDeviceConfig: (req, ctx) => {
      management(ctx);
      return { updated: usm.setDeviceConfig(req) };
    },
  });

  server.add(DeviceManagementServiceService, {
    getDeviceConfig: (req) => usm.getDeviceConfig(req),
  });

  return server;
}
