/**
 * @module jobs/rpc
 * gRPC adapter of the job services [SC2-2] [SC2-3] [SC2-4] [SEC-1]: GatewayJobService for data
 * consumers (authenticated like GatewayConsumerService, by bearer token or mTLS client
 * certificate) and JobAdminService for the aggregator's operators (admin tokens or admin client
 * certificates). Everything else is in jobs/manager.ts.
 */
import type { GatewayJobServiceService, JobAdminServiceService, JobStatus } from '../../../proto/gen/divs/v1/jobs.ts';
import { fail } from '../../../protocol/src/errors.ts';
import type { CallContext, Handlers } from '../../../platform/src/grpc.ts';
import type { GatewayAuth } from '../auth.ts';
import type { JobManager } from './manager.ts';
import type { TransportFacts } from './policy.ts';
import { FINAL_STATES } from './store.ts';

export interface JobRpcDeps {
  manager: JobManager;
  /** Consumer authentication (the gateway's). */
  auth: GatewayAuth;
  /** Operator authentication (admins of the jobs configuration). */
  adminAuth: GatewayAuth;
  /** The gateway serves TLS. */
  tls: boolean;
}

/** Transport facts of a call: TLS, and whether a verified client certificate names the consumer. */
function transportOf(d: JobRpcDeps, ctx: CallContext, consumer: string): TransportFacts {
  let clientCertificate = false;
  if (d.tls) {
    const cert = ctx.peerCertificate();
    if (cert && cert.length > 0) {
      try {
        clientCertificate = d.auth.consumer(undefined, () => cert) === consumer;
      } catch {
        // a certificate that does not verify (or names someone else) is no mTLS for this consumer
        clientCertificate = false;
      }
    }
  }
  return { tls: d.tls, clientCertificate };
}

export function jobHandlers(d: JobRpcDeps): Handlers<typeof GatewayJobServiceService> {
  return {
    getJobPolicy: async (_req, ctx) => ({ policy: d.manager.policyView(d.auth.consumerOf(ctx)) }),
    submitJob: async (req, ctx) => {
      const consumer = d.auth.consumerOf(ctx);
      return { status: d.manager.submit(consumer, req, transportOf(d, ctx, consumer)) };
    },
    watchJob: async (req, send, ctx) => {
      const consumer = d.auth.consumerOf(ctx);
      // statuses not yet sent; a slow reader gets the latest progress, never a stale backlog
      const pending: (JobStatus | null)[] = [];
      let wake: (() => void) | undefined;
      const stop = d.manager.watch(consumer, req.jobId, (s) => {
        const last = pending[pending.length - 1];
        if (s !== null && last && !FINAL_STATES.has(last.state) && last.state === s.state) pending[pending.length - 1] = s;
        else pending.push(s);
        wake?.();
      });
      const onAbort = () => wake?.();
      ctx.signal.addEventListener('abort', onAbort);
      try {
        for (;;) {
          while (pending.length > 0) {
            const s = pending.shift() as JobStatus | null;
            if (s === null) fail('UNAVAILABLE', 'the gateway is shutting down; watch the job again after it restarts');
            await send({ status: s });
            if (FINAL_STATES.has(s.state)) return;
          }
          if (ctx.signal.aborted) return;
          await new Promise<void>((r) => (wake = r));
          wake = undefined;
        }
      } finally {
        ctx.signal.removeEventListener('abort', onAbort);
        stop();
      }
    },
    getJobResult: async (req, ctx) => d.manager.waitResult(d.auth.consumerOf(ctx), req.jobId, req.waitMs, ctx.signal),
    cancelJob: async (req, ctx) => ({ status: d.manager.cancel(d.auth.consumerOf(ctx), req.jobId) }),
  };
}

export function adminHandlers(d: JobRpcDeps): Handlers<typeof JobAdminServiceService> {
  return {
    listPendingJobs: async (_req, ctx) => {
      d.adminAuth.consumerOf(ctx);
      return { jobs: d.manager.pending() };
    },
    approveJob: async (req, ctx) => ({ status: d.manager.approve(d.adminAuth.consumerOf(ctx), req.jobId, req.rememberCode) }),
    rejectJob: async (req, ctx) => ({ status: d.manager.reject(d.adminAuth.consumerOf(ctx), req.jobId, req.reason) }),
  };
}
