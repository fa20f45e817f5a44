/**
 * @module config
 * AS node configuration: one zod schema, loaded from a JSON file and/or DIVS_AS_* environment
 * variables, with errors that name the bad field.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { fail } from '../../protocol/src/errors.ts';

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
});

export type AsConfig = z.infer<typeof AsConfigSchema>;
export type AsConfigInput = z.input<typeof AsConfigSchema>;

/** Validates a config object; CONFIG_INVALID names every bad field. */
export function parseAsConfig(input: unknown): AsConfig {
  const r = AsConfigSchema.safeParse(input);
  if (!r.success) {
    fail('CONFIG_INVALID', r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '));
  }
  return r.data;
}

/** Reads a JSON config file, then overlays DIVS_AS_DATA_DIR, DIVS_AS_PORT, DIVS_AS_HTTP_PORT, DIVS_AS_CEF. */
export function loadAsConfig(file?: string, env: NodeJS.ProcessEnv = process.env, overrides: Record<string, unknown> = {}): AsConfig {
  let base: Record<string, unknown> = {};
  if (file) {
    try {
      base = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      fail('CONFIG_INVALID', `${file}: ${(e as Error).message}`);
    }
  }
  const fromEnv: Record<string, unknown> = {};
  if (env.DIVS_AS_DATA_DIR) fromEnv.dataDir = env.DIVS_AS_DATA_DIR;
  if (env.DIVS_AS_PORT) fromEnv.port = Number(env.DIVS_AS_PORT);
  if (env.DIVS_AS_HTTP_PORT) fromEnv.httpPort = Number(env.DIVS_AS_HTTP_PORT);
  if (env.DIVS_AS_CEF) fromEnv.cef = { address: env.DIVS_AS_CEF };
  return parseAsConfig({ ...base, ...fromEnv, ...overrides });
}
