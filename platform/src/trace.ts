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

// a random per-process prefix and a counter: unique across processes and restarts, and
// ~100× cheaper than 16 fresh random bytes per call (trace IDs need uniqueness, not secrecy)
const PREFIX = randomBytes(10).toString('hex');
let counter = 0;

/** A new trace ID (32 hex digits: 10 random bytes of this process, then a counter). */
export function newTraceId(): string {
  counter = (counter + 1) % 0x1_0000_0000_0000;
  return PREFIX + counter.toString(16).padStart(12, '0');
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
