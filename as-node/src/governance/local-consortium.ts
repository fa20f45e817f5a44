/**
 * @module governance/local-consortium
 * Creates the PKI and genesis configuration of a consortium for local runs, tests and
 * benchmarks [BC-1] [SEC-3]: one consortium root CA, one intermediate CA per operator (its
 * organization CA), an admin certificate per operator (role `client`, approves configuration
 * updates) and an AS certificate per node (role `as`, chain = node + organization CA), all
 * ECDSA P-256. A real deployment does the same with each operator keeping its own CA and admin
 * keys; only certificates are exchanged.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chainFromPem, createRootCa, issueCertificate, issueIntermediateCa, type CertificateAuthority } from '../../../protocol/src/pki.ts';
import { fail } from '../../../protocol/src/errors.ts';
import { Membership } from './membership.ts';

export interface LocalOrgSpec {
  id: string;
  name: string;
  /** Node names (certificate CNs). */
  nodes: string[];
}

export interface LocalNode {
  name: string;
  orgId: string;
  /** PEM chain: node certificate, then the organization CA. */
  certPem: string;
  keyPem: string;
  /** The same chain, DER. */
  certChain: Uint8Array[];
}

export interface LocalOrg {
  id: string;
  name: string;
  ca: CertificateAuthority;
  adminCertPem: string;
  adminKeyPem: string;
}

export interface LocalConsortium {
  ledgerId: string;
  root: CertificateAuthority;
  orgs: LocalOrg[];
  nodes: LocalNode[];
  genesis: Membership;
  /** The genesis file content (PEM inline). */
  genesisJson: { ledgerId: string; orgs: { id: string; name: string; caCerts: string; adminCerts: string; nodes: { name: string; urls: string[] }[] }[] };
}

export interface CreateLocalConsortiumOptions {
  ledgerId: string;
  orgs: LocalOrgSpec[];
  /** RP-dd addresses per node name (host:port), written into the genesis configuration. */
  nodeUrls?: Record<string, string[]>;
  validityDays?: number;
}

/** Issues a new organization (CA, admin, nodes) under `root`. */
export async function createLocalOrg(root: CertificateAuthority, spec: LocalOrgSpec, validityDays = 825): Promise<{ org: LocalOrg; nodes: LocalNode[] }> {
  const ca = await issueIntermediateCa({ ca: root, name: `CN=${spec.name} CA, O=${spec.name}`, validityDays: validityDays + 30, pathLength: 0 });
  const admin = await issueCertificate({ ca, subjectName: `CN=admin@${spec.id}, O=${spec.name}`, role: 'client', validityDays });
  const nodes: LocalNode[] = [];
  for (const n of spec.nodes) {
    const leaf = await issueCertificate({ ca, subjectName: `CN=${n}, O=${spec.name}`, role: 'as', validityDays, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    const certPem = `${leaf.certPem.trim()}\n${ca.certPem.trim()}\n`;
    nodes.push({ name: n, orgId: spec.id, certPem, keyPem: leaf.keyPem, certChain: chainFromPem(certPem) });
  }
  return { org: { id: spec.id, name: spec.name, ca, adminCertPem: admin.certPem, adminKeyPem: admin.keyPem }, nodes };
}

/** The genesis-file entry of an organization. */
export function orgEntry(org: LocalOrg, nodes: LocalNode[], nodeUrls: Record<string, string[]> = {}): LocalConsortium['genesisJson']['orgs'][number] {
  return {
    id: org.id,
    name: org.name,
    caCerts: org.ca.certPem,
    adminCerts: org.adminCertPem,
    nodes: nodes.filter((n) => n.orgId === org.id).map((n) => ({ name: n.name, urls: nodeUrls[n.name] ?? [] })),
  };
}

/**
 * Creates a consortium: root CA, organizations, nodes and the genesis configuration.
 *
 * @example
 * ```ts
 * const c = await createLocalConsortium({ ledgerId: 'divs-consortium', orgs: [
 *   { id: 'op-a', name: 'Operator A', nodes: ['as-a'] }, { id: 'op-b', name: 'Operator B', nodes: ['as-b'] },
 * ] });
 * ```
 */
export async function createLocalConsortium(o: CreateLocalConsortiumOptions): Promise<LocalConsortium> {
  if (!Array.isArray(o.orgs) || o.orgs.length === 0) fail('INVALID_ARGUMENT', 'at least one organization is required');
  const days = o.validityDays ?? 825;
  const root = await createRootCa({ name: `CN=DIVS consortium root CA (${o.ledgerId}), O=DIVS consortium`, validityDays: days + 60 });
  const orgs: LocalOrg[] = [];
  const nodes: LocalNode[] = [];
  for (const spec of o.orgs) {
    const r = await createLocalOrg(root, spec, days);
    orgs.push(r.org);
    nodes.push(...r.nodes);
  }
  const genesisJson = { ledgerId: o.ledgerId, orgs: orgs.map((org) => orgEntry(org, nodes, o.nodeUrls)) };
  return { ledgerId: o.ledgerId, root, orgs, nodes, genesis: Membership.fromGenesisJson(genesisJson), genesisJson };
}

/**
 * Writes a consortium's files under `dir`: `root-ca.pem` (consumers' trust anchor),
 * `genesis.json`, `orgs/<id>/{ca.pem,ca.key,admin.pem,admin.key}`, `nodes/<name>.{pem,key}`.
 * Keys are written with mode 0600.
 */
export function writeLocalConsortium(c: LocalConsortium, dir: string): void {
  mkdirSync(join(dir, 'nodes'), { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'root-ca.pem'), c.root.certPem);
  writeFileSync(join(dir, 'root-ca.key'), c.root.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'genesis.json'), `${JSON.stringify(c.genesisJson, null, 2)}\n`);
  for (const org of c.orgs) {
    const d = join(dir, 'orgs', org.id);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    writeFileSync(join(d, 'ca.pem'), org.ca.certPem);
    writeFileSync(join(d, 'ca.key'), org.ca.keyPem, { mode: 0o600 });
    writeFileSync(join(d, 'admin.pem'), org.adminCertPem);
    writeFileSync(join(d, 'admin.key'), org.adminKeyPem, { mode: 0o600 });
  }
  for (const n of c.nodes) {
    writeFileSync(join(dir, 'nodes', `${n.name}.pem`), n.certPem);
    writeFileSync(join(dir, 'nodes', `${n.name}.key`), n.keyPem, { mode: 0o600 });
  }
}
