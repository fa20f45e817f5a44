/**
 * @module trace
 * Request/trace IDs carried across DIVS services. A server adopts the caller's ID (gRPC
 * metadata or HTTP header `x-divs-trace-id`) when it is well formed, or makes a new one, and
 * runs the handler inside {@link withTraceId}; outgoing gRPC calls made while it runs carry the
 * same ID (see `makeClient` in grpc.ts), and every log line of the call names it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';

/** gRPC metadata key and HTTP header of the trace ID. */
export const TRACE_ID_KEY = 'x-divs-trace-id';

const store = new AsyncLocalStorage<string>();
// the ID comes from a peer: accept only short, printable, log-safe tokens
const VALID = /^[A-Za-z0-9._:-]{8,64}$/;

/** A new random trace ID (16 bytes, hex). */
export function newTraceId(): string {
  return randomBytes(16).toString('hex');
}

/** The caller's trace ID when it is well formed, else a new one. */
export function adoptTraceId(raw: unknown): string {
  return typeof raw === 'string' && VALID.test(raw) ? raw : newTraceId();
}

/** Runs `fn` with `traceId` as the current trace ID (for outgoing calls and logs). */
export function withTraceId<T>(traceId: string, fn: () => T): T {
  return store.run(traceId, fn);
}

/** The trace ID of the request being handled, if any. */
export function currentTraceId(): string | undefined {
  return store.getStore();
}
