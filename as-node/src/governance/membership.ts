/**
 * @module governance/membership
 * Who belongs to a consortium ledger [BC-1] [BC-5] [SEC-3]: the member organizations
 * (operators), each with its CA certificate(s), its admins and its AS nodes, as a
 * {@link ConsortiumConfig}. The genesis configuration is read from a JSON file every node is
 * given; later versions come from configuration transactions on the ledger.
 *
 * A {@link Membership} is one immutable version. It answers the question every node asks of
 * every endorsement in every block: which member node signed this? — the signer's certificate
 * chain must verify (role `as`, at the block's time) against the CA of a member organization,
 * and its common name must be one of that organization's listed nodes. Anything else is
 * NOT_MEMBER (or UNTRUSTED_CERTIFICATE / INVALID_CERTIFICATE for broken chains).
 */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { ConsortiumConfig, type MemberNode, type MemberOrg } from '../../../proto/gen/divs/v1/as_sync.ts';
import { equalBytes, sha256, toHex } from '../../../protocol/src/bytes.ts';
import { DivsError, fail } from '../../../protocol/src/errors.ts';
import { isValidKeyName } from '../../../protocol/src/checkpoint.ts';
import { chainFromPem, verifyChain, type CertRole, type VerifiedChain } from '../../../protocol/src/pki.ts';

export type { ConsortiumConfig, MemberNode, MemberOrg };

const ID = /^[A-Za-z0-9._-]{1,64}$/;
const LEDGER_ID = /^[A-Za-z0-9._:/-]{1,128}$/;
const MAX_ORGS = 64;
const MAX_CERTS = 16;
const MAX_NODES = 64;
const MAX_URLS = 8;

/** Common name of an RFC 4514 subject ("CN=as-a, O=Operator A" → "as-a"). */
export function commonNameOf(subject: string): string {
  return /(?:^|,\s*)CN=([^,]+)/.exec(subject)?.[1]?.trim() ?? subject;
}

interface KnownChain {
  chain: Uint8Array[];
  role: CertRole;
  signer: MemberSigner;
  notBefore: number;
  notAfter: number;
}

/** The member node that signed something, as established by its certificate chain. */
export interface MemberSigner {
  orgId: string;
  node: string;
  chain: VerifiedChain;
}

function isCaCert(der: Uint8Array): boolean {
  try {
    return new X509Certificate(der).ca;
  } catch {
    return false;
  }
}

/**
 * One version of the consortium configuration, validated.
 *
 * @example
 * ```ts
 * const m = Membership.fromGenesisFile('genesis.json');
 * const signer = m.identify(signed.certChain, new Date(header.timestampMs)); // { orgId, node, chain }
 * ```
 */
export class Membership {
  /** Exact ConsortiumConfig bytes. */
  readonly bytes: Uint8Array;
  /** SHA-256 of {@link bytes}: what the next update names as its predecessor. */
  readonly hash: Uint8Array;
  readonly config: ConsortiumConfig;
  readonly #orgOfNode = new Map<string, MemberOrg>();
  // chains verified under this (immutable) configuration, with the window in which every
  // certificate of the path is valid: every block repeats the same few chains, and a
  // verifyChain call hashes the chain and every anchor each time
  readonly #known: KnownChain[] = [];

  private constructor(bytes: Uint8Array, config: ConsortiumConfig) {
    this.bytes = bytes;
    this.hash = sha256(bytes);
    this.config = config;
    for (const o of config.orgs) for (const n of o.nodes) this.#orgOfNode.set(n.name, o);
  }

  /**
   * Decodes and validates exact ConsortiumConfig bytes; CONFIG_INVALID names the first
   * problem. With `at`, admin certificates must chain to their organization's CA at that time.
   */
  static fromBytes(bytes: Uint8Array, ledgerId?: string, at?: Date): Membership {
    let config: ConsortiumConfig;
    try {
      config = ConsortiumConfig.decode(bytes);
    } catch (e) {
      fail('CONFIG_INVALID', 'consortium config does not decode', e);
    }
    if (!equalBytes(ConsortiumConfig.encode(config).finish(), bytes)) fail('CONFIG_INVALID', 'consortium config is not canonically encoded');
    validate(config, ledgerId, at);
    return new Membership(new Uint8Array(bytes), config);
  }

  /** Builds (and validates) a configuration from its fields. */
  static fromConfig(config: ConsortiumConfig, at?: Date): Membership {
    return Membership.fromBytes(ConsortiumConfig.encode(config).finish(), undefined, at);
  }

  /**
   * Reads a genesis file (JSON): `{ ledgerId, orgs: [{ id, name, caCerts, adminCerts, nodes:
   * [{ name, urls }] }] }`, where `caCerts` and `adminCerts` are PEM text or paths (relative to
   * the file) of PEM files. The genesis configuration is version 1.
   */
  static fromGenesisFile(path: string): Membership {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      fail('CONFIG_INVALID', `genesis ${path}: ${(e as Error).message}`, e);
    }
    return Membership.fromGenesisJson(json, dirname(resolve(path)));
  }

  /** {@link fromGenesisFile} over already parsed JSON; relative PEM paths resolve against `baseDir`. */
  static fromGenesisJson(json: unknown, baseDir = process.cwd()): Membership {
    const g = json as { ledgerId?: unknown; orgs?: unknown };
    if (typeof g !== 'object' || g === null) fail('CONFIG_INVALID', 'genesis: expected an object');
    if (typeof g.ledgerId !== 'string') fail('CONFIG_INVALID', 'genesis.ledgerId: missing');
    if (!Array.isArray(g.orgs)) fail('CONFIG_INVALID', 'genesis.orgs: expected a list');
    const pem = (v: unknown, what: string): Uint8Array[] => {
      const list = Array.isArray(v) ? v : [v];
      return list.flatMap((s) => {
        if (typeof s !== 'string' || s.length === 0) fail('CONFIG_INVALID', `${what}: expected PEM text or a file path`);
        let text = s;
        if (!s.includes('-----BEGIN')) {
          try {
            text = readFileSync(resolve(baseDir, s), 'utf8');
          } catch (e) {
            fail('CONFIG_INVALID', `${what}: cannot read ${s}`, e);
          }
        }
        try {
          return chainFromPem(text);
        } catch (e) {
          fail('CONFIG_INVALID', `${what}: not PEM certificates`, e);
        }
      });
    };
    const orgs = g.orgs.map((o: unknown, i: number): MemberOrg => {
      const r = o as { id?: unknown; name?: unknown; caCerts?: unknown; adminCerts?: unknown; nodes?: unknown };
      if (typeof r !== 'object' || r === null) fail('CONFIG_INVALID', `genesis.orgs[${i}]: expected an object`);
      if (!Array.isArray(r.nodes)) fail('CONFIG_INVALID', `genesis.orgs[${i}].nodes: expected a list`);
      return {
        id: String(r.id ?? ''),
        name: String(r.name ?? r.id ?? ''),
        caCerts: pem(r.caCerts, `genesis.orgs[${i}].caCerts`),
        adminCerts: pem(r.adminCerts, `genesis.orgs[${i}].adminCerts`),
        nodes: r.nodes.map((n: unknown, j: number) => {
          const x = n as { name?: unknown; urls?: unknown };
          if (typeof x !== 'object' || x === null) fail('CONFIG_INVALID', `genesis.orgs[${i}].nodes[${j}]: expected an object`);
          return { name: String(x.name ?? ''), urls: Array.isArray(x.urls) ? x.urls.map(String) : [] };
        }),
      };
    });
    return Membership.fromConfig({ ledgerId: g.ledgerId, version: 1, orgs });
  }

  get ledgerId(): string {
    return this.config.ledgerId;
  }

  get version(): number {
    return this.config.version;
  }

  get orgs(): readonly MemberOrg[] {
    return this.config.orgs;
  }

  org(id: string): MemberOrg | undefined {
    return this.config.orgs.find((o) => o.id === id);
  }

  /** The organization a node belongs to. */
  orgOfNode(name: string): MemberOrg | undefined {
    return this.#orgOfNode.get(name);
  }

  /** Every member node, sorted by name (the proposer rotation order). */
  nodes(): MemberNode[] {
    return this.config.orgs.flatMap((o) => o.nodes).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * Identifies the member node whose certificate chain (leaf first) this is, at time `at`:
   * the chain verifies against a member organization's CA with `role` (default `as`) and its
   * common name is a node of that organization. Throws NOT_MEMBER, UNTRUSTED_CERTIFICATE or
   * INVALID_CERTIFICATE.
   */
  identify(certChain: Uint8Array[], at: Date, role: CertRole = 'as'): MemberSigner {
    if (!Array.isArray(certChain) || certChain.length === 0) fail('INVALID_CERTIFICATE', 'certificate chain is empty');
    const t = at.getTime();
    const hit = this.#known.find((k) => k.role === role && k.chain.length === certChain.length && k.chain.every((c, i) => equalBytes(c, certChain[i] as Uint8Array)));
    if (hit && t >= hit.notBefore && t <= hit.notAfter) return hit.signer;
    let lastErr: DivsError | undefined;
    for (let i = 0; i < this.config.orgs.length; i++) {
      const org = this.config.orgs[i] as MemberOrg;
      // cut the chain after the organization's CA, so a chain that goes on to the consortium
      // root still ends at the anchor this organization is trusted through
      const cut = certChain.findIndex((c) => org.caCerts.some((ca) => equalBytes(ca, c)));
      const chain = cut >= 0 ? certChain.slice(0, cut + 1) : certChain;
      let verified: VerifiedChain;
      try {
        verified = verifyChain(chain, org.caCerts, { at, role });
      } catch (e) {
        lastErr = e instanceof DivsError ? e : new DivsError('INVALID_CERTIFICATE', 'certificate chain does not parse', { cause: e });
        continue;
      }
      const cn = commonNameOf(verified.subject);
      if (role === 'as' && !org.nodes.some((n) => n.name === cn)) fail('NOT_MEMBER', `${cn} is not an AS node of member ${org.id}`);
      const signer = { orgId: org.id, node: cn, chain: verified };
      if (!hit) this.#remember(certChain, chain, org, role, signer, verified.validUntil.getTime());
      return signer;
    }
    // a chain that no member CA issued: not a member (a malformed one keeps its own code)
    if (lastErr?.code === 'INVALID_CERTIFICATE') throw lastErr;
    fail('NOT_MEMBER', `certificate chain is not issued by a member organization's CA${lastErr ? ` (${lastErr.message})` : ''}`);
  }

  #remember(certChain: Uint8Array[], path: Uint8Array[], org: MemberOrg, role: CertRole, signer: MemberSigner, notAfter: number): void {
    if (this.#known.length >= 64) this.#known.shift();
    let notBefore = 0;
    try {
      // the path as verified: the chain up to the organization's CA, plus that CA
      for (const der of [...path, ...org.caCerts]) notBefore = Math.max(notBefore, new X509Certificate(der).validFromDate.getTime());
    } catch {
      return; // parsed by verifyChain already; never cache what cannot be re-checked
    }
    this.#known.push({ chain: certChain.map((c) => new Uint8Array(c)), role, signer, notBefore, notAfter });
  }

  /** JSON-friendly summary (for logs and CLI output). */
  describe(): { ledgerId: string; version: number; hash: string; orgs: { id: string; name: string; nodes: string[]; admins: number }[] } {
    return {
      ledgerId: this.ledgerId,
      version: this.version,
      hash: toHex(this.hash),
      orgs: this.config.orgs.map((o) => ({ id: o.id, name: o.name, nodes: o.nodes.map((n) => n.name), admins: o.adminCerts.length })),
    };
  }
}

function validate(c: ConsortiumConfig, ledgerId: string | undefined, at: Date | undefined): void {
  if (!LEDGER_ID.test(c.ledgerId) || !isValidKeyName(c.ledgerId)) fail('CONFIG_INVALID', 'consortium config: invalid ledger ID');
  if (ledgerId !== undefined && c.ledgerId !== ledgerId) fail('CONFIG_INVALID', `consortium config is for ledger ${c.ledgerId}, not ${ledgerId}`);
  if (!Number.isSafeInteger(c.version) || c.version < 1) fail('CONFIG_INVALID', 'consortium config: version must be ≥ 1');
  if (c.orgs.length === 0) fail('CONFIG_INVALID', 'consortium config: at least one organization is required');
  if (c.orgs.length > MAX_ORGS) fail('CONFIG_INVALID', `consortium config: at most ${MAX_ORGS} organizations`);
  const orgIds = new Set<string>();
  const nodeNames = new Set<string>();
  for (const o of c.orgs) {
    const where = `organization ${o.id || '(no id)'}`;
    if (!ID.test(o.id)) fail('CONFIG_INVALID', `${where}: id must match ${ID.source}`);
    if (orgIds.has(o.id)) fail('CONFIG_INVALID', `${where}: listed twice`);
    orgIds.add(o.id);
    if (o.caCerts.length === 0 || o.caCerts.length > MAX_CERTS) fail('CONFIG_INVALID', `${where}: needs 1 to ${MAX_CERTS} CA certificates`);
    for (const ca of o.caCerts) if (!isCaCert(ca)) fail('CONFIG_INVALID', `${where}: a CA certificate is not a CA certificate`);
    if (o.adminCerts.length === 0 || o.adminCerts.length > MAX_CERTS) fail('CONFIG_INVALID', `${where}: needs 1 to ${MAX_CERTS} admin certificates`);
    for (const a of o.adminCerts) {
      // with a time (a configuration being applied at a block's time) the whole chain is
      // checked then; without one (a genesis file read years later) only its form
      try {
        if (at !== undefined) verifyChain([a], o.caCerts, { at, role: 'client' });
        else new X509Certificate(a);
      } catch (e) {
        fail('CONFIG_INVALID', `${where}: an admin certificate is not a valid client certificate of its CA (${(e as Error).message})`, e);
      }
    }
    if (o.nodes.length > MAX_NODES) fail('CONFIG_INVALID', `${where}: at most ${MAX_NODES} nodes`);
    for (const n of o.nodes) {
      if (!ID.test(n.name) || !isValidKeyName(n.name)) fail('CONFIG_INVALID', `${where}: node name ${JSON.stringify(n.name)} must match ${ID.source}`);
      if (nodeNames.has(n.name)) fail('CONFIG_INVALID', `node ${n.name} is listed twice`);
      nodeNames.add(n.name);
      if (n.urls.length > MAX_URLS || n.urls.some((u) => typeof u !== 'string' || u.length === 0 || u.length > 256)) fail('CONFIG_INVALID', `node ${n.name}: bad urls`);
    }
  }
}
