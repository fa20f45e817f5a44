/**
 * @module commands/connection
 * Connection flags shared by the consumer commands that talk to aggregator gateways
 * (`divs consumer job|train|datasets`): gateway address(es), trust anchors, bearer token or
 * mTLS client certificate, and how they become gRPC credentials. Every bad value is a
 * CONFIG_INVALID (exit code 2).
 */
import { readFileSync } from 'node:fs';
import { fail } from '../../protocol/src/errors.ts';
import { pemBlocks } from '../../protocol/src/pki.ts';
import type { grpc } from '../../platform/src/grpc.ts';
import { gatewayCredentials } from '../../consumer/src/jobs.ts';
import { str, type Options } from './args.ts';

/** Help text of the connection flags. */
export const CONNECTION = `Connection:
  --gateway HOST:PORT    the gateway's gRPC address
  --trust ROOT_CA.pem    consortium root CA(s): attestations and reports must chain to them
  --token T              bearer token (or use --cert/--key for mTLS)
  --tls                  TLS to the gateway (implied by --cert); --gateway-name NAME pins its certificate CN
  --cert FILE --key FILE client certificate and key (mTLS)`;

/** parseArgs options of the connection flags (plus --json, which every such command has). */
export const CONNECTION_OPTIONS = {
  gateway: { type: 'string', multiple: true },
  trust: { type: 'string' },
  token: { type: 'string' },
  tls: { type: 'boolean' },
  'gateway-name': { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies Options;

/** Parsed flag values. */
export type Values = Record<string, string | boolean | string[] | undefined>;

/** A file named on the command line, as text; CONFIG_INVALID naming the flag when unreadable. */
export function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    fail('CONFIG_INVALID', `${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** The --trust file: its PEM text and every certificate in it (at least one). */
export function roots(v: Values): { pem: string; der: Uint8Array[] } {
  const pem = readText(str(v.trust, 'trust'), '--trust');
  const der = pemBlocks(pem);
  if (der.length === 0) fail('CONFIG_INVALID', '--trust: no certificate in the file');
  return { pem, der };
}

/** TLS credentials when --tls or --cert asks for them (mTLS with --cert/--key); plaintext otherwise. */
export function credentials(v: Values, rootsPem: string): grpc.ChannelCredentials | undefined {
  const cert = typeof v.cert === 'string' ? readText(v.cert, '--cert') : undefined;
  const key = typeof v.key === 'string' ? readText(v.key, '--key') : undefined;
  if (v.tls !== true && cert === undefined) return undefined;
  return gatewayCredentials({ rootsPem, clientCertPem: cert, clientKeyPem: key, gatewayName: typeof v['gateway-name'] === 'string' ? v['gateway-name'] : undefined });
}

/** Every --gateway given (at least one). */
export function gatewaysOf(v: Values): string[] {
  const g = v.gateway;
  const list = Array.isArray(g) ? g : typeof g === 'string' ? [g] : [];
  if (list.length === 0) fail('CONFIG_INVALID', '--gateway is required');
  return list;
}

/** The --token value, when given. */
export const tokenOf = (v: Values): string | undefined => (typeof v.token === 'string' && v.token.length > 0 ? v.token : undefined);
