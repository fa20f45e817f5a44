/**
 * @module config
 * Gateway configuration: one zod schema, from a JSON file and/or DIVS_GW_* environment
 * variables, with CONFIG_INVALID errors that name every bad field.
 */
import { z } from 'zod';
import { fail } from '../../protocol/src/errors.ts';
import { JobsConfigSchema } from './jobs/policy.ts';
import { configFromEnv, parseConfig, readConfigFile } from '../../platform/src/config.ts';

const name = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/);
const channel = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/);

export const DatasetSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/),
  description: z.string().max(4096).default(''),
  /** Payload schema reference published to consumers (e.g. a JSON Schema URI). */
  schema: z.string().max(4096).default(''),
  /** The ingest channel the dataset's records arrive on. */
  channel: channel.default('default'),
  /** Media types included; empty: all media types of the channel. */
  contentTypes: z.array(z.string().min(1).max(255)).default([]),
  /** Consumer names it is granted to; "*" = every authenticated consumer. */
  grants: z.array(z.string().min(1)).default([]),
});

export const GatewayConfigSchema = z.object({
  /** Where the record store, keys and certificates live. */
  dataDir: z.string().min(1),
  /** The gateway's name: its certificate CN and the gateway_id in reports. */
  name: name.default('gateway-1'),
  host: z.string().default('127.0.0.1'),
  /** gRPC port (ingest + consumer service); 0 picks a free one. */
  port: z.number().int().min(0).max(65535).default(0),
  /** HTTP ingest port; 0 picks a free one, null disables HTTP. */
  httpPort: z.number().int().min(0).max(65535).nullable().default(0),
  /** 'full': fsync per commit (acknowledged = on disk); 'normal': survives process crashes only. */
  durability: z.enum(['full', 'normal']).default('full'),
  pki: z
    .object({
      /** Gateway certificate chain (PEM, leaf first) and PKCS#8 key; created under dataDir/pki with `enroll`. */
      cert: z.string().optional(),
      key: z.string().optional(),
      /** Consortium root CA certificates (PEM files) endorsements, client certificates and reports chain to. */
      trustAnchors: z.array(z.string()).default([]),
      /** Issue the gateway certificate from this CA on first start (demos, tests). */
      enroll: z.object({ caCert: z.string(), caKey: z.string() }).optional(),
    })
    .default({ trustAnchors: [] }),
  /** gRPC over TLS with the gateway certificate; client certificates (mTLS) are then accepted. */
  tls: z.boolean().default(false),
  /** RP-ds client settings. */
  as: z
    .object({
      /** Bearer token per AS URL, or "*" for every AS. */
      tokens: z.record(z.string(), z.string()).default({}),
      timeoutMs: z.number().int().min(100).default(5000),
      attempts: z.number().int().min(1).max(10).default(3),
      backoffMs: z.number().int().min(0).default(200),
      latestTtlMs: z.number().int().min(0).default(0),
      /** Verified endorsements and latest versions kept in memory (each; least recently used out). */
      cacheEntries: z.number().int().min(1).default(100_000),
      /** Only these AS URLs are dialled; empty: any URL a record names. */
      allowedUrls: z.array(z.string()).default([]),
    })
    .default({ tokens: {}, timeoutMs: 5000, attempts: 3, backoffMs: 200, latestTtlMs: 0, cacheEntries: 100_000, allowedUrls: [] }),
  verify: z
    .object({
      /** Verification worker threads (0: inline). */
      threads: z.number().int().min(0).max(64).default(2),
      taskRecords: z.number().int().min(64).max(1_000_000).default(16384),
      /** Chains must start at sequence 1. */
      requireGenesis: z.boolean().default(true),
      /** Concurrent VerifyDataset runs. */
      concurrency: z.number().int().min(1).max(64).default(2),
    })
    .default({ threads: 2, taskRecords: 16384, requireGenesis: true, concurrency: 2 }),
  /** Data consumers: bearer token (or sha256:<hex> of it) and/or mTLS by certificate CN = name. */
  consumers: z.array(z.object({ name: z.string().min(1).max(128), token: z.string().min(16).optional() })).default([]),
  ingest: z
    .object({
      /** Bearer tokens senders must present; empty: open ingest. */
      tokens: z.array(z.string().min(16)).default([]),
      maxRecordBytes: z.number().int().min(256).default(1024 * 1024 + 64 * 1024),
      maxFrameRecords: z.number().int().min(1).max(100_000).default(10_000),
      /** Frames of one stream waiting for their commit before the stream stops reading. */
      window: z.number().int().min(1).max(4096).default(64),
    })
    .default({ tokens: [], maxRecordBytes: 1024 * 1024 + 64 * 1024, maxFrameRecords: 10_000, window: 64 }),
  datasets: z.array(DatasetSchema).default([]),
  /** Largest gRPC request (bytes). */
  maxMessageBytes: z.number().int().min(1024).default(16 * 1024 * 1024),
  /** Consumer jobs: runner pool, usage policies per consumer, operators (see jobs/policy.ts). */
  jobs: JobsConfigSchema.prefault({}),
  /**
   * Operator dashboard and its JSON API on the HTTP port (`/`, `/api/*`). Operators sign in with
   * a bearer token: the job admins (`jobs.admins`) and the `operators` listed here.
   */
  dashboard: z
    .object({
      enabled: z.boolean().default(true),
      /** Read-only operators beside the job admins: bearer token or sha256:<hex> of it. */
      operators: z.array(z.object({ name: z.string().min(1).max(128), token: z.string().min(16) })).default([]),
      /** Signed verification reports kept for the dashboard (reports.db), newest first. */
      keepReports: z.number().int().min(1).max(100_000).default(500),
    })
    .prefault({}),
});

export type GatewayConfig = z.infer<typeof GatewayConfigSchema>;
export type GatewayConfigInput = z.input<typeof GatewayConfigSchema>;

/** Validates a config object; CONFIG_INVALID names every bad field. */
export function parseGatewayConfig(input: unknown): GatewayConfig {
  const data = parseConfig(GatewayConfigSchema, input);
  const ids = new Set<string>();
  for (const d of data.datasets) {
    if (ids.has(d.id)) fail('CONFIG_INVALID', `datasets: ${d.id} appears twice`);
    ids.add(d.id);
  }
  const names = new Set<string>();
  for (const c of data.consumers) {
    if (names.has(c.name)) fail('CONFIG_INVALID', `consumers: ${c.name} appears twice`);
    names.add(c.name);
  }
  return data;
}

/** Reads a JSON config file, then overlays DIVS_GW_DATA_DIR, DIVS_GW_PORT, DIVS_GW_HTTP_PORT and `overrides`. */
export function loadGatewayConfig(file?: string, env: NodeJS.ProcessEnv = process.env, overrides: Record<string, unknown> = {}): GatewayConfig {
  const fromEnv = configFromEnv(env, 'DIVS_GW', { DATA_DIR: 'dataDir', PORT: ['port', Number], HTTP_PORT: ['httpPort', Number] });
  return parseGatewayConfig({ ...readConfigFile(file), ...fromEnv, ...overrides });
}
