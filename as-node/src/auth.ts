/**
 * @module auth
 * Access control module [FW-ACL] [SEC-1]: service users (data consumers, gateways, peer AS
 * nodes, operators' admins) authenticate with a bearer token or an mTLS client certificate and
 * carry roles; anonymous calls are refused. UEs authenticate differently: by signatures made
 * with their registered key (see the UE adapter).
 */
import { hash, timingSafeEqual } from 'node:crypto';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { verifyChain, type CertRole } from '../../protocol/src/pki.ts';
import type { CallContext } from '../../platform/src/grpc.ts';

export type Role = 'consumer' | 'peer' | 'admin';

export interface Principal {
  name: string;
  roles: Role[];
  via: 'token' | 'mtls';
}

export interface TokenGrant {
  /** The secret, or `sha256:<hex>` of it (so config files need not hold secrets). */
  token: string;
  name: string;
  roles: Role[];
}

/** Rights given by a certificate's DIVS role. */
function rolesOf(certRoles: CertRole[]): Role[] {
  const out = new Set<Role>();
  for (const r of certRoles) {
    if (r === 'client' || r === 'gateway') out.add('consumer');
    if (r === 'as') out.add('peer');
  }
  return [...out];
}

const digest = (s: string): Buffer => hash('sha256', s, 'buffer');

export class Authenticator {
  readonly #tokens: Array<{ hash: Buffer; name: string; roles: Role[] }>;
  readonly #mtlsRoles: Record<string, Role[]>;
  readonly #anchors: Uint8Array[];

  /**
   * `anchors`: root CAs (DER) client certificates must chain to; `mtlsRoles`: certificate CN ->
   * roles, overriding the roles derived from the certificate's DIVS role.
   */
  constructor(tokens: TokenGrant[], anchors: Uint8Array[] = [], mtlsRoles: Record<string, Role[]> = {}) {
    this.#anchors = anchors;
    this.#tokens = tokens.map((t) => ({
      hash: t.token.startsWith('sha256:') ? Buffer.from(t.token.slice(7), 'hex') : digest(t.token),
      name: t.name,
      roles: t.roles,
    }));
    this.#mtlsRoles = mtlsRoles;
  }

  /** Who is calling; UNAUTHENTICATED when nobody is. */
  authenticate(ctx: CallContext): Principal {
    const header = ctx.metadata.get('authorization')[0];
    if (typeof header === 'string' && header.length > 0) {
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      if (!m) fail('UNAUTHENTICATED', 'authorization must be "Bearer <token>"');
      const h = digest(m[1] as string);
      // compare against every grant in constant time per grant
      const grant = this.#tokens.find((t) => t.hash.length === h.length && timingSafeEqual(t.hash, h));
      if (!grant) fail('PERMISSION_DENIED', 'unknown bearer token');
      return { name: grant.name, roles: grant.roles, via: 'token' };
    }
    const raw = ctx.peerCertificate();
    if (raw && this.#anchors.length > 0) {
      // TLS verified the chain already; verifying again against our anchors also yields roles
      let cert;
      try {
        cert = verifyChain([new Uint8Array(raw)], this.#anchors, {});
      } catch (e) {
        throw e instanceof DivsError ? e : new DivsError('UNTRUSTED_CERTIFICATE', 'client certificate does not verify');
      }
      const cn = /CN=([^,]+)/.exec(cert.subject)?.[1]?.trim() ?? cert.subject;
      const roles = this.#mtlsRoles[cn] ?? rolesOf(cert.roles);
      if (roles.length === 0) fail('PERMISSION_DENIED', 'client certificate has no DIVS role');
      return { name: cn, roles, via: 'mtls' };
    }
    fail('UNAUTHENTICATED', 'anonymous queries are refused: present a bearer token or a client certificate');
  }

  /** Authenticates and requires one of `roles`. */
  require(ctx: CallContext, ...roles: Role[]): Principal {
    const p = this.authenticate(ctx);
    if (!roles.some((r) => p.roles.includes(r))) fail('PERMISSION_DENIED', `requires role ${roles.join(' or ')}`);
    return p;
  }
}
