/**
 * @module grpc
 * One adapter between DIVS services and gRPC, used by every process:
 * - handlers are plain async functions; a thrown {@link DivsError} becomes its gRPC status with
 *   the DIVS code in `divs-error-code` trailing metadata and in the status details;
 *   anything else becomes INTERNAL without leaking its message (logged locally);
 * - request bytes that do not decode become INVALID_ARGUMENT / MALFORMED_MESSAGE, and requests
 *   over the size limit RESOURCE_EXHAUSTED / MESSAGE_TOO_LARGE, both before any handler runs;
 * - every server gets gRPC health checking and server reflection;
 * - every call gets a trace ID (the caller's `x-divs-trace-id`, or a new one) in its logger and
 *   its async context, and clients made by {@link makeClient} forward it on outgoing calls;
 * - an optional `onCall` hook sees method, status and duration of every call (metrics).
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';
import { DivsError, isErrorCode, type ErrorCode } from '../../protocol/src/errors.ts';
import { silentLogger, type Logger } from './log.ts';
import { TRACE_ID_KEY, adoptTraceId, currentTraceId, withTraceId } from './trace.ts';

export const ERROR_CODE_KEY = 'divs-error-code';
export { TRACE_ID_KEY };
/** Default largest request a DIVS server accepts. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

/** Marker a wrapped deserializer returns instead of throwing. */
class BadRequest {
  readonly code: ErrorCode;
  readonly message: string;
  constructor(code: ErrorCode, message: string) {
    this.code = code;
    this.message = message;
  }
}

export type CallContext = {
  metadata: grpc.Metadata;
  peer: string;
  /** TLS peer certificate when the connection is mTLS. */
  peerCertificate: () => Buffer | undefined;
  cancelled: () => boolean;
  signal: AbortSignal;
  log: Logger;
  /** The caller's trace ID, or a new one; outgoing calls from the handler carry it. */
  traceId: string;
};

/** What the `onCall` hook of {@link RpcServerOptions} learns about each finished call. */
export interface RpcCallInfo {
  /** Full method path, e.g. `/divs.v1.UeRegistrationService/Register`. */
  method: string;
  kind: 'unary' | 'server_stream' | 'client_stream' | 'bidi_stream';
  /** gRPC status code the call ended with (CANCELLED when the client went away). */
  code: number;
  /** Wall-clock duration from the call's arrival to its end. */
  seconds: number;
}

export type UnaryHandler<Req, Res> = (req: Req, ctx: CallContext) => Promise<Res> | Res;
export type ServerStreamHandler<Req, Res> = (req: Req, send: (msg: Res) => Promise<void>, ctx: CallContext) => Promise<void>;
export type ClientStreamHandler<Req, Res> = (reqs: AsyncIterable<Req>, ctx: CallContext) => Promise<Res>;
export type BidiStreamHandler<Req, Res> = (reqs: AsyncIterable<Req>, send: (msg: Res) => Promise<void>, ctx: CallContext) => Promise<void>;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyHandler = UnaryHandler<any, any> | ServerStreamHandler<any, any> | ClientStreamHandler<any, any> | BidiStreamHandler<any, any>;

/** Handlers for a ts-proto service definition, keyed by its method names. */
export type Handlers<D extends grpc.ServiceDefinition> = {
  [K in keyof D]: D[K] extends grpc.MethodDefinition<infer Req, infer Res>
    ? D[K]['requestStream'] extends true
      ? D[K]['responseStream'] extends true
        ? BidiStreamHandler<Req, Res>
        : ClientStreamHandler<Req, Res>
      : D[K]['responseStream'] extends true
        ? ServerStreamHandler<Req, Res>
        : UnaryHandler<Req, Res>
    : never;
};

/** Converts any thrown value into a gRPC status object; logs unexpected ones. */
export function toServiceError(err: unknown, log: Logger): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  if (err instanceof DivsError) {
    metadata.set(ERROR_CODE_KEY, err.code);
    if (err.code === 'INTERNAL') log.error({ err, cause: err.cause }, 'internal error');
    return { code: err.grpcCode, details: `${err.code}: ${err.message}`, metadata };
  }
  if (err instanceof BadRequest) {
    const e = new DivsError(err.code, err.message);
    metadata.set(ERROR_CODE_KEY, e.code);
    return { code: e.grpcCode, details: `${e.code}: ${e.message}`, metadata };
  }
  log.error({ err }, 'unexpected error in handler');
  metadata.set(ERROR_CODE_KEY, 'INTERNAL');
  return { code: grpc.status.INTERNAL, details: 'INTERNAL: internal error', metadata };
}

function contextOf(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>, log: Logger): CallContext {
  const ac = new AbortController();
  (call as unknown as NodeJS.EventEmitter).on('cancelled', () => ac.abort());
  const traceId = adoptTraceId(call.metadata.get(TRACE_ID_KEY)[0]);
  return {
    metadata: call.metadata,
    peer: call.getPeer(),
    peerCertificate: () => {
      const auth = call.getAuthContext?.();
      return auth?.sslPeerCertificate?.raw;
    },
    cancelled: () => ac.signal.aborted,
    signal: ac.signal,
    log: log.child({ traceId }),
    traceId,
  };
}

function writer<Res>(call: grpc.ServerWritableStream<unknown, Res> | grpc.ServerDuplexStream<unknown, Res>, signal: AbortSignal) {
  return (msg: Res): Promise<void> =>
    new Promise((resolve, reject) => {
      if (signal.aborted) return reject(new DivsError('UNAVAILABLE', 'call cancelled'));
      // back-pressure: wait for drain when the transport buffer is full
      if (call.write(msg)) return resolve();
      const onDrain = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        call.off('drain', onDrain);
        reject(new DivsError('UNAVAILABLE', 'call cancelled'));
      };
      call.once('drain', onDrain);
      signal.addEventListener('abort', onAbort, { once: true });
    });
}

async function* requests<Req>(call: grpc.ServerReadableStream<Req, unknown> | grpc.ServerDuplexStream<Req, unknown>): AsyncIterable<Req> {
  // leaving the loop early (a handler that fails mid-stream) must not destroy the call, or the
  // error status the handler returns would never reach the client
  const it = (call as unknown as import('node:stream').Readable).iterator({ destroyOnReturn: false }) as AsyncIterable<Req | BadRequest>;
  for await (const msg of it) {
    if (msg instanceof BadRequest) throw msg;
    yield msg as Req;
  }
}

/** Wraps one handler into grpc-js form. */
function adapt(def: grpc.MethodDefinition<unknown, unknown>, fn: AnyHandler, log: Logger, hook: () => ((info: RpcCallInfo) => void) | undefined): grpc.UntypedHandleCall {
  const name = def.path;
  const l = log.child({ rpc: name });
  const kind: RpcCallInfo['kind'] = def.requestStream ? (def.responseStream ? 'bidi_stream' : 'client_stream') : def.responseStream ? 'server_stream' : 'unary';
  // reports the call's end once; a hook that throws must never break the call
  const ender = (ctx: CallContext) => {
    const t0 = process.hrtime.bigint();
    let done = false;
    return (code: number | undefined) => {
      const onCall = hook();
      if (done || !onCall) return;
      done = true;
      try {
        onCall({ method: name, kind, code: ctx.cancelled() ? grpc.status.CANCELLED : (code ?? grpc.status.UNKNOWN), seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
      } catch (err) {
        l.warn({ err }, 'onCall hook failed');
      }
    };
  };
  const reply = (cb: grpc.sendUnaryData<unknown>, end: (code: number | undefined) => void, l2: Logger) => [
    (res: unknown) => {
      end(grpc.status.OK);
      cb(null, res);
    },
    (err: unknown) => {
      const st = toServiceError(err, l2);
      end(st.code);
      cb(st);
    },
  ] as const;
  if (!def.requestStream && !def.responseStream) {
    return (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const ctx = contextOf(call, l);
      const [ok, bad] = reply(cb, ender(ctx), ctx.log);
      if (call.request instanceof BadRequest) return bad(call.request);
      withTraceId(ctx.traceId, () =>
        Promise.resolve()
          .then(() => (fn as UnaryHandler<unknown, unknown>)(call.request, ctx))
          .then(ok, bad),
      );
    };
  }
  if (!def.requestStream && def.responseStream) {
    return (call: grpc.ServerWritableStream<unknown, unknown>) => {
      const ctx = contextOf(call, l);
      const end = ender(ctx);
      const fail = (err: unknown) => {
        const st = toServiceError(err, ctx.log);
        end(st.code);
        if (!ctx.cancelled()) call.emit('error', st);
      };
      if (call.request instanceof BadRequest) return fail(call.request);
      withTraceId(ctx.traceId, () =>
        Promise.resolve()
          .then(() => (fn as ServerStreamHandler<unknown, unknown>)(call.request, writer(call, ctx.signal), ctx))
          .then(() => {
            end(grpc.status.OK);
            if (!ctx.cancelled()) call.end();
          }, fail),
      );
    };
  }
  if (def.requestStream && !def.responseStream) {
    return (call: grpc.ServerReadableStream<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const ctx = contextOf(call, l);
      const [ok, bad] = reply(cb, ender(ctx), ctx.log);
      withTraceId(ctx.traceId, () =>
        Promise.resolve()
          .then(() => (fn as ClientStreamHandler<unknown, unknown>)(requests(call), ctx))
          .then(ok, bad),
      );
    };
  }
  return (call: grpc.ServerDuplexStream<unknown, unknown>) => {
    const ctx = contextOf(call, l);
    const end = ender(ctx);
    withTraceId(ctx.traceId, () =>
      Promise.resolve()
        .then(() => (fn as BidiStreamHandler<unknown, unknown>)(requests(call), writer(call, ctx.signal), ctx))
        .then(
          () => {
            end(grpc.status.OK);
            if (!ctx.cancelled()) call.end();
          },
          (err: unknown) => {
            const st = toServiceError(err, ctx.log);
            end(st.code);
            if (!ctx.cancelled()) call.emit('error', st);
          },
        ),
    );
  };
}

/** Copies a service definition with deserializers that never throw and enforce a size limit. */
function guardDefinition(def: grpc.ServiceDefinition, maxBytes: number): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [k, m] of Object.entries(def)) {
    const md = m as grpc.MethodDefinition<unknown, unknown>;
    out[k] = {
      ...md,
      requestDeserialize: (buf: Buffer) => {
        if (buf.length > maxBytes) return new BadRequest('MESSAGE_TOO_LARGE', `request of ${buf.length} bytes exceeds the limit of ${maxBytes}`);
        try {
          return md.requestDeserialize(buf);
        } catch (e) {
          // the bytes are attacker-controlled: any decoder failure is the client's fault
          return new BadRequest('MALFORMED_MESSAGE', `request does not decode as ${md.path}: ${(e as Error).message}`);
        }
      },
    };
  }
  return out;
}

export interface RpcServerOptions {
  log?: Logger;
  /** Largest accepted request (bytes). */
  maxMessageBytes?: number;
  credentials?: grpc.ServerCredentials;
  /** Proto files (relative to proto/) to expose through server reflection. */
  protoFiles?: string[];
  /** Called once when each call ends (e.g. `Metrics.rpcHook()` for counts and latencies). */
  onCall?: (info: RpcCallInfo) => void;
}

/** A gRPC server with DIVS error mapping, health checking and reflection. */
export class RpcServer {
  readonly server: grpc.Server;
  readonly health: HealthImplementation;
  readonly log: Logger;
  #maxBytes: number;
  #credentials: grpc.ServerCredentials;
  #services: string[] = [];
  #onCall: ((info: RpcCallInfo) => void) | undefined;
  port = 0;

  constructor(opts: RpcServerOptions = {}) {
    this.log = opts.log ?? silentLogger;
    this.#maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#credentials = opts.credentials ?? grpc.ServerCredentials.createInsecure();
    this.#onCall = opts.onCall;
    this.server = new grpc.Server({
      // the guard enforces the real limit with a coded error; grpc-js stops anything far larger
      'grpc.max_receive_message_length': this.#maxBytes * 4 + 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
      'grpc.keepalive_permit_without_calls': 1,
    });
    this.health = new HealthImplementation({ '': 'NOT_SERVING' });
    this.health.addToServer(this.server);
    const files = opts.protoFiles ?? [];
    if (files.length > 0) {
      const pkg = protoLoader.loadSync(files, { includeDirs: [PROTO_DIR], keepCase: true, longs: String, enums: String, defaults: true });
      new ReflectionService(pkg).addToServer(this.server);
    }
  }

  /** Adds a ts-proto service definition with typed handlers. */
  add<D extends grpc.ServiceDefinition>(definition: D, handlers: Handlers<D>): this {
    const impl: grpc.UntypedServiceImplementation = {};
    for (const [k, def] of Object.entries(definition)) {
      const fn = (handlers as Record<string, AnyHandler>)[k];
      if (!fn) throw new Error(`missing handler for ${def.path}`);
      impl[k] = adapt(def as grpc.MethodDefinition<unknown, unknown>, fn, this.log, () => this.#onCall);
    }
    this.server.addService(guardDefinition(definition, this.#maxBytes), impl);
    const first = Object.values(definition)[0] as grpc.MethodDefinition<unknown, unknown> | undefined;
    if (first) this.#services.push(first.path.split('/')[1] as string);
    return this;
  }

  /** Sets the hook that sees every finished call (replaces `onCall` of the options). */
  observeCalls(onCall: ((info: RpcCallInfo) => void) | undefined): this {
    this.#onCall = onCall;
    return this;
  }

  /** Binds (port 0 = any free port), starts, and marks every service SERVING. */
  async listen(host = '127.0.0.1', port = 0): Promise<number> {
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${host}:${port}`, this.#credentials, (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.setServing('SERVING');
    return this.port;
  }

  setServing(status: ServingStatus): void {
    this.health.setStatus('', status);
    for (const s of this.#services) this.health.setStatus(s, status);
  }

  /** Graceful stop: refuses new calls, waits up to `graceMs` for running ones, then forces. */
  async close(graceMs = 2000): Promise<void> {
    this.setServing('NOT_SERVING');
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

// ---------------------------------------------------------------- client side

/** Turns a gRPC client error into a DivsError (code from trailing metadata when present). */
export function fromServiceError(err: unknown): DivsError {
  if (err instanceof DivsError) return err;
  const e = err as Partial<grpc.ServiceError>;
  const raw = e.metadata?.get(ERROR_CODE_KEY)[0];
  const details = e.details ?? (err as Error)?.message ?? 'unknown error';
  if (typeof raw === 'string' && isErrorCode(raw)) {
    const msg = details.startsWith(`${raw}: `) ? details.slice(raw.length + 2) : details;
    return new DivsError(raw, msg, { cause: err });
  }
  switch (e.code) {
    case grpc.status.UNAVAILABLE:
      return new DivsError('UNAVAILABLE', details, { cause: err });
    case grpc.status.DEADLINE_EXCEEDED:
      return new DivsError('TIMEOUT', details, { cause: err });
    case grpc.status.RESOURCE_EXHAUSTED:
      return new DivsError('MESSAGE_TOO_LARGE', details, { cause: err });
    case grpc.status.UNAUTHENTICATED:
      return new DivsError('UNAUTHENTICATED', details, { cause: err });
    case grpc.status.PERMISSION_DENIED:
      return new DivsError('PERMISSION_DENIED', details, { cause: err });
    default:
      return new DivsError('INTERNAL', details, { cause: err });
  }
}

type UnaryMethod<Req, Res> = (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => grpc.ClientUnaryCall;

export interface CallOpts {
  /** Milliseconds until the call fails with TIMEOUT. */
  timeoutMs?: number;
  metadata?: grpc.Metadata;
}

/** Promise form of a unary client method; errors arrive as DivsError. */
export function unary<Req, Res>(client: grpc.Client, method: UnaryMethod<Req, Res>, req: Req, opts: CallOpts = {}): Promise<Res> {
  const md = opts.metadata ?? new grpc.Metadata();
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  return new Promise((resolve, reject) => {
    method.call(client, req, md, { deadline }, (err, res) => (err ? reject(fromServiceError(err)) : resolve(res)));
  });
}

/** Async iteration over a server stream; errors arrive as DivsError. */
export async function* serverStream<Res>(stream: grpc.ClientReadableStream<Res>): AsyncIterable<Res> {
  try {
    for await (const msg of stream as AsyncIterable<Res>) yield msg;
  } catch (e) {
    throw fromServiceError(e);
  }
}

export type ClientCtor<C> = new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>) => C;

/** Adds the current trace ID (see trace.ts) to outgoing calls that do not name one already. */
export const traceInterceptor: grpc.Interceptor = (options, nextCall) =>
  new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      const id = currentTraceId();
      if (id !== undefined && metadata.get(TRACE_ID_KEY).length === 0) metadata.set(TRACE_ID_KEY, id);
      next(metadata, listener);
    },
  });

/** Makes a client for a `host:port` address (insecure unless credentials are given); it forwards trace IDs. */
export function makeClient<C>(ctor: ClientCtor<C>, address: string, credentials?: grpc.ChannelCredentials): C {
  return new ctor(address.replace(/^grpc:\/\//, ''), credentials ?? grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    interceptors: [traceInterceptor],
  });
}

export { grpc };
