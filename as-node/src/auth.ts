/**
 * @module auth
 * Access control module [FW-ACL] [SEC-1]: service users (data consumers, gateways, peer AS
 * nodes, operators' admins) authenticate with a bearer token or an mTLS client certificate and
 * carry roles; anonymous calls are refused. UEs authenticate differently: by signatures made
 * with their registered key (see the UE adapter).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { X509Certificate } from 'node:crypto';
import { fail } from '../../protocol/src/errors.ts';
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

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export class Authenticator {
  readonly #tokens: Array<{ hash: Buffer; name: string; roles: Role[] }>;
  readonly #mtlsRoles: Record<string, Role[]>;

  /** `mtlsRoles`: certificate subject CN -> roles, for clients authenticated by mTLS. */
  constructor(tokens: TokenGrant[], mtlsRoles: Record<string, Role[]> = {}) {
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
    if (raw) {
      // the TLS layer already verified the chain against our client CA; map its subject to roles
      const cn = /CN=([^,\n]+)/.exec(new X509Certificate(raw).subject)?.[1];
      const roles = (cn && this.#mtlsRoles[cn]) || [];
      if (!cn || roles.length === 0) fail('PERMISSION_DENIED', 'client certificate has no DIVS role');
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
