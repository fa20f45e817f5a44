/**
 * @module auth
 * Who may talk to the gateway [FW-ACL] [SEC-1]. Data consumers authenticate with a bearer token
 * or an mTLS client certificate (role "client" under the consortium root CA, its common name
 * naming the consumer); the aggregator's policy then decides which datasets each consumer sees.
 * Ingest senders may be required to present one of the configured ingest tokens; without any,
 * ingest is open (records are still verified against their endorsements before anyone relies
 * on them).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { fail } from '../../protocol/src/errors.ts';
import { verifyChain } from '../../protocol/src/pki.ts';
import type { CallContext } from '../../platform/src/grpc.ts';
import { commonName } from '../../consumer/src/verify.ts';

/** A consumer known to the gateway. */
export interface ConsumerEntry {
  name: string;
  /** The bearer secret, or `sha256:<hex>` of it; omit for certificate-only consumers. */
  token?: string;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

function secretHash(token: string): Buffer {
  if (token.startsWith('sha256:')) {
    const hex = token.slice(7);
    if (!/^[0-9a-f]{64}$/i.test(hex)) fail('CONFIG_INVALID', 'token: sha256:<64 hex digits>');
    return Buffer.from(hex, 'hex');
  }
  return digest(token);
}

/** Parses "Bearer <token>"; undefined when there is no header. */
function bearer(header: unknown): string | undefined {
  if (header === undefined || header === null || header === '') return undefined;
  const m = typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header) : null;
  if (!m) fail('UNAUTHENTICATED', 'authorization must be "Bearer <token>"');
  return m[1] as string;
}

function matches(hashes: readonly Buffer[], token: string): number {
  const h = digest(token);
  let found = -1;
  // compare with every entry, so timing does not tell which one matched
  hashes.forEach((x, i) => {
    if (x.length === h.length && timingSafeEqual(x, h) && found < 0) found = i;
  });
  return found;
}

export class GatewayAuth {
  readonly #consumers: { name: string; hash: Buffer | null }[];
  readonly #names: ReadonlySet<string>;
  readonly #ingest: Buffer[];
  readonly #anchors: Uint8Array[];

  /** `anchors`: root CA certificates (DER) client certificates must chain to. */
  constructor(o: { consumers: readonly ConsumerEntry[]; ingestTokens?: readonly string[]; anchors: Uint8Array[] }) {
    this.#consumers = o.consumers.map((c) => ({ name: c.name, hash: c.token ? secretHash(c.token) : null }));
    this.#names = new Set(o.consumers.map((c) => c.name));
    this.#ingest = (o.ingestTokens ?? []).map(secretHash);
    this.#anchors = o.anchors;
  }

  /** Whether ingest requires a token. */
  get ingestProtected(): boolean {
    return this.#ingest.length > 0;
  }

  /**
   * The consumer behind a request: bearer token first, else the TLS client certificate.
   * UNAUTHENTICATED without credentials, PERMISSION_DENIED with unknown ones.
   */
  consumer(authorization: unknown, peerCertificate?: () => Uint8Array | undefined): string {
    const token = bearer(authorization);
    if (token !== undefined) {
      const hashes = this.#consumers.map((c) => c.hash ?? Buffer.alloc(0));
      const i = matches(hashes, token);
      if (i < 0) fail('PERMISSION_DENIED', 'unknown bearer token');
      return (this.#consumers[i] as { name: string }).name;
    }
    const cert = peerCertificate?.();
    if (cert && cert.length > 0) {
      // the TLS layer checked possession of the key; the chain and role are checked here
      const v = verifyChain([new Uint8Array(cert)], this.#anchors, { role: 'client' });
      const name = commonName(v.subject);
      if (!this.#names.has(name)) fail('PERMISSION_DENIED', `client certificate ${name} is not a consumer of this gateway`);
      return name;
    }
    fail('UNAUTHENTICATED', 'present a bearer token or a client certificate');
  }

  /** The consumer of a gRPC call. */
  consumerOf(ctx: CallContext): string {
    return this.consumer(ctx.metadata.get('authorization')[0], () => ctx.peerCertificate());
  }

  /** Checks ingest credentials (a no-op when ingest is open). */
  ingest(authorization: unknown): void {
    if (this.#ingest.length === 0) return;
    const token = bearer(authorization);
    if (token === undefined) fail('UNAUTHENTICATED', 'ingest requires a bearer token');
    if (matches(this.#ingest, token) < 0) fail('PERMISSION_DENIED', 'unknown ingest token');
  }
}
