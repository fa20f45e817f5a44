/**
 * @module config
 * AS node configuration: one zod schema, loaded from a JSON file and/or DIVS_AS_* environment
 * variables, with errors that name the bad field.
 */
import { z } from 'zod';
import { configFromEnv, parseConfig, readConfigFile } from '../../platform/src/config.ts';

const role = z.enum(['consumer', 'peer', 'admin']);

export const AsConfigSchema = z.object({
  /** Where the ledger, index, keys and certificates live. */
  dataDir: z.string().min(1),
  /** This node's name: its certificate CN and the `as_id` in endorsements. */
  nodeName: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).default('as-1'),
  /** Blockchain instance ID, part of every entry address. */
  ledgerId: z.string().regex(/^[A-Za-z0-9._:/-]{1,128}$/).default('divs-local'),
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(0),
  /** HTTP port of the dashboard, API, /healthz, /readyz and /metrics: 0 any free port, -1 no HTTP server. */
  httpPort: z.number().int().min(-1).max(65535).default(0),
  /** HTTP listen address; loopback by default (the dashboard is an operator tool). */
  httpHost: z.string().min(1).default('127.0.0.1'),
  /** URL(s) UEs and consumers use to reach this node (entry address); default grpc://host:port. */
  publicUrls: z.array(z.string()).default([]),
  /** The operator's CEF (RP-edl). */
  cef: z.object({ address: z.string().min(1), token: z.string().optional() }),
  /** Bearer tokens of service users; with none configured, a consumer token is created in dataDir. */
  tokens: z.array(z.object({ token: z.string().min(16), name: z.string().min(1), roles: z.array(role).min(1) })).default([]),
  /** PKI: certificate and key files; created in dataDir/pki on first start when absent and autoPki is true. */
  pki: z
    .object({
      rootCaCert: z.string().optional(),
      rootCaKey: z.string().optional(),
      asCert: z.string().optional(),
      asKey: z.string().optional(),
      autoPki: z.boolean().default(true),
    })
    .default({ autoPki: true }),
  /**
   * TLS for every gRPC service. With `requireClientCert`, callers must present a certificate
   * under the consortium root CA (mTLS); its DIVS role gives its rights (client/gateway ->
   * consumer, as -> peer). UEs then also need a client certificate, so keep it off where UEs
   * connect directly. Default certificate: the AS certificate (issued with SANs for `host`).
   */
  tls: z
    .object({
      enabled: z.boolean().default(false),
      certFile: z.string().optional(),
      keyFile: z.string().optional(),
      clientCaFile: z.string().optional(),
      requireClientCert: z.boolean().default(false),
    })
    .default({ enabled: false, requireClientCert: false }),
  /** Crypto worker threads (0: inline on the main thread). */
  threads: z.number().int().min(0).max(64).default(2),
  /** Largest accepted request in bytes. */
  maxMessageBytes: z.number().int().min(1024).default(16 * 1024 * 1024),
  maxBatch: z.number().int().min(1).max(100_000).default(10_000),
  /** Oldest accepted registration created_at, in seconds. */
  registrationMaxAgeSec: z.number().int().min(1).default(86_400),
  /**
   * Ledger backend: `local` (one SQLite ledger, the default) or `consortium` (several
   * operators' AS nodes on one ledger ordered by etcd; see as-node/src/ledger/consortium/README.md).
   */
  ledger: z
    .discriminatedUnion('type', [
      z.object({ type: z.literal('local') }),
      z.object({
        type: z.literal('consortium'),
        /** Genesis configuration file (JSON), the same for every node. */
        genesis: z.string().min(1),
        etcd: z.object({
          endpoints: z.array(z.string().regex(/^https?:\/\/[^/\s]+$/)).min(1),
          requestTimeoutMs: z.number().int().min(100).optional(),
          attemptTimeoutMs: z.number().int().min(50).optional(),
          prefix: z.string().min(1).optional(),
        }),
        /** Token (role `peer` at the other nodes) this node presents for RP-dd sync. */
        peerToken: z.string().min(16).optional(),
        peers: z.array(z.string().min(1)).default([]),
        retainBlocks: z.number().int().min(0).optional(),
        compactEvery: z.number().int().min(0).optional(),
        maxBlockTxs: z.number().int().min(1).optional(),
        maxBlockBytes: z.number().int().min(1024).optional(),
        turnTimeoutMs: z.number().int().min(0).optional(),
        syncTimeoutMs: z.number().int().min(0).optional(),
      }),
    ])
    .default({ type: 'local' }),
});

export type AsConfig = z.infer<typeof AsConfigSchema>;
export type AsConfigInput = z.input<typeof AsConfigSchema>;

/** Validates a config object; CONFIG_INVALID names every bad field. */
export function parseAsConfig(input: unknown): AsConfig {
  return parseConfig(AsConfigSchema, input);
}

/** Reads a JSON config file, then overlays DIVS_AS_DATA_DIR, DIVS_AS_PORT, DIVS_AS_HTTP_PORT, DIVS_AS_CEF. */
export function loadAsConfig(file?: string, env: NodeJS.ProcessEnv = process.env, overrides: Record<string, unknown> = {}): AsConfig {
  const fromEnv = configFromEnv(env, 'DIVS_AS', { DATA_DIR: 'dataDir', PORT: ['port', Number], HTTP_PORT: ['httpPort', Number], CEF: ['cef', (address) => ({ address })] });
  return parseAsConfig({ ...readConfigFile(file), ...fromEnv, ...overrides });
}
