/**
 * @module config
 * CEF simulator configuration: one zod schema, loaded from a JSON file, then DIVS_CEF_*
 * environment variables, then command-line flags; every error names the bad field.
 *
 * @example
 * // cef.json
 * { "dataDir": "./cef-data", "plmnId": "26201", "operatorName": "Example Mobile", "port": 7001,
 *   "httpPort": 8001, "tokens": ["<exposure token>"], "managementTokens": ["<operator token>"] }
 */
import { z } from 'zod';
import { configFromEnv, parseConfig, readConfigFile } from '../../platform/src/config.ts';

const port = z.number().int().min(0).max(65535);
const token = z.string().min(16, 'tokens must have at least 16 characters');

export const CefConfigSchema = z
  .object({
    /** Directory holding the subscriber database (created when missing). */
    dataDir: z.string().min(1),
    /** PLMN ID (MCC + MNC) of the operator; fixed for a data directory. */
    plmnId: z.string().regex(/^[0-9]{5,6}$/, 'a PLMN ID is 5 or 6 digits (MCC + MNC)'),
    /** Shown in logs and events; default "PLMN <plmnId>". */
    operatorName: z.string().min(1).max(200).optional(),
    host: z.string().min(1).default('127.0.0.1'),
    /** gRPC port; 0 picks a free one. */
    port: port.default(0),
    /** HTTP port for /healthz, /readyz, /metrics; 0 any free port, -1 none. */
    httpPort: z.union([port, z.literal(-1)]).default(0),
    /** Bearer tokens for status lookups and subscriptions (RP-edl); none: open (loopback use). */
    tokens: z.array(token).default([]),
    /** Bearer tokens for provisioning and operator actions. */
    managementTokens: z.array(token).default([]),
    /** How often expired contracts are recorded as terminated (ms); 0 disables. */
    expirySweepMs: z.number().int().min(0).max(86_400_000).default(60_000),
  })
  .strict();

export type CefConfig = z.infer<typeof CefConfigSchema>;

const list = (v: string): string[] =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);

/**
 * Reads a JSON config file, overlays DIVS_CEF_DATA_DIR, DIVS_CEF_PLMN, DIVS_CEF_PORT,
 * DIVS_CEF_HTTP_PORT, DIVS_CEF_TOKENS and DIVS_CEF_MANAGEMENT_TOKENS (comma-separated), then
 * `overrides` (flags); CONFIG_INVALID names every bad field.
 */
export function loadCefConfig(file?: string, env: NodeJS.ProcessEnv = process.env, overrides: Record<string, unknown> = {}): CefConfig {
  const fromEnv = configFromEnv(env, 'DIVS_CEF', {
    DATA_DIR: 'dataDir',
    PLMN: 'plmnId',
    PORT: ['port', Number],
    HTTP_PORT: ['httpPort', Number],
    TOKENS: ['tokens', list],
    MANAGEMENT_TOKENS: ['managementTokens', list],
  });
  return parseConfig(CefConfigSchema, { ...readConfigFile(file), ...fromEnv, ...overrides });
}
