/**
 * @module metrics
 * Prometheus metrics (prom-client) for every DIVS process.
 *
 * - Process metrics (CPU, memory, event-loop lag, GC, handles) are collected once per process
 *   in one registry shared by every service the process runs.
 * - Each service gets its own {@link Metrics} registry, labelled `service=<name>`, with the
 *   standard RPC and HTTP series and whatever gauges and counters the service adds.
 * - `/metrics` (see http.ts) serves both, merged, in the Prometheus text format.
 *
 * Series every service has:
 * - `divs_rpc_requests_total{method,code}` and `divs_rpc_duration_seconds{method}` for every gRPC
 *   call (fed by {@link Metrics.rpcHook} through `RpcServerOptions.onCall`);
 * - `divs_http_requests_total{route,method,status}` and `divs_http_request_duration_seconds`.
 *
 * @example
 * const metrics = new Metrics('as-node');
 * const server = new RpcServer({ onCall: metrics.rpcHook() });
 * const height = metrics.gauge('divs_ledger_height', 'blocks on the ledger', [], (g) => g.set(ledger.info().height));
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { GrpcCode } from '../../protocol/src/errors.ts';
import type { RpcCallInfo } from './grpc.ts';

/** Latency buckets (seconds): sub-millisecond lookups up to long-lived streams. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120, 600];

let processRegistry: Registry | undefined;

/** The process-wide registry with Node.js default metrics (created on first use). */
export function processMetricsRegistry(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

const STATUS_NAMES: Record<number, string> = Object.fromEntries(Object.entries(GrpcCode).map(([k, v]) => [v, k]));

/** gRPC status name for a numeric code (`UNKNOWN` for anything outside the spec). */
export const grpcStatusName = (code: number): string => STATUS_NAMES[code] ?? 'UNKNOWN';

/** One service's metrics registry with the standard RPC and HTTP series. */
export class Metrics {
  readonly service: string;
  readonly registry: Registry;
  readonly #rpcCount: Counter<'method' | 'code'>;
  readonly #rpcSeconds: Histogram<'method'>;
  readonly #httpCount: Counter<'route' | 'method' | 'status'>;
  readonly #httpSeconds: Histogram<'route' | 'method'>;
  readonly #includeProcess: boolean;

  /** `defaultMetrics: false` leaves out the process metrics (e.g. in unit tests). */
  constructor(service: string, opts: { defaultMetrics?: boolean } = {}) {
    this.service = service;
    this.registry = new Registry();
    this.registry.setDefaultLabels({ service });
    this.#includeProcess = opts.defaultMetrics !== false;
    // created now, not at the first scrape: the process CPU counters count from here on
    if (this.#includeProcess) processMetricsRegistry();
    this.#rpcCount = this.counter('divs_rpc_requests_total', 'gRPC calls finished, by method and status code', ['method', 'code']);
    this.#rpcSeconds = this.histogram('divs_rpc_duration_seconds', 'gRPC call duration from arrival to end, by method', ['method']);
    this.#httpCount = this.counter('divs_http_requests_total', 'HTTP requests answered, by route pattern, method and status', ['route', 'method', 'status']);
    this.#httpSeconds = this.histogram('divs_http_request_duration_seconds', 'HTTP request duration, by route pattern and method', ['route', 'method']);
  }

  /** A counter (the existing one when the name is registered already). */
  counter<L extends string = string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    const have = this.registry.getSingleMetric(name);
    if (have) return have as Counter<L>;
    return new Counter<L>({ name, help, labelNames, registers: [this.registry] });
  }

  /** A gauge; `collect` runs at every scrape to set its value (e.g. from the ledger). */
  gauge<L extends string = string>(name: string, help: string, labelNames: readonly L[] = [], collect?: (g: Gauge<L>) => void | Promise<void>): Gauge<L> {
    const have = this.registry.getSingleMetric(name);
    if (have) return have as Gauge<L>;
    return new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [this.registry],
      ...(collect
        ? {
            collect(this: Gauge<L>) {
              return collect(this);
            },
          }
        : {}),
    });
  }

  /** A histogram with {@link LATENCY_BUCKETS} unless other buckets are given. */
  histogram<L extends string = string>(name: string, help: string, labelNames: readonly L[] = [], buckets: number[] = LATENCY_BUCKETS): Histogram<L> {
    const have = this.registry.getSingleMetric(name);
    if (have) return have as Histogram<L>;
    return new Histogram<L>({ name, help, labelNames, buckets, registers: [this.registry] });
  }

  /** The `onCall` hook for `RpcServer`: counts every call and records its duration. */
  rpcHook(): (info: RpcCallInfo) => void {
    return (info) => {
      const method = info.method.replace(/^\//, '');
      this.#rpcCount.inc({ method, code: grpcStatusName(info.code) });
      this.#rpcSeconds.observe({ method }, info.seconds);
    };
  }

  /** Records one answered HTTP request (route = the matched pattern, never the raw path). */
  observeHttp(route: string, method: string, status: number, seconds: number): void {
    this.#httpCount.inc({ route, method, status: String(status) });
    this.#httpSeconds.observe({ route, method }, seconds);
  }

  /** Content type of {@link Metrics.text}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every series of this service (and of the process), in the Prometheus text format. */
  async text(): Promise<string> {
    // concatenated rather than Registry.merge()d: merging drops this registry's default labels
    const own = await this.registry.metrics();
    return this.#includeProcess ? `${await processMetricsRegistry().metrics()}\n${own}` : own;
  }
}
