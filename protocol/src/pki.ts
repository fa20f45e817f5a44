/**
 * @module pki
 * The DIVS consortium PKI (DESIGN §2 "AS identity", FW-SU, SEC-3): one root CA per deployment,
 * optional intermediate CAs (e.g. one per operator), and leaf certificates for AS nodes,
 * gateways and clients whose role is written into the extended key usage.
 *
 * Issuing uses `@peculiar/x509` over node's WebCrypto. Verifying ({@link verifyChain}) is
 * synchronous and sits on the consumer/gateway hot path: it frames every certificate with a
 * strict DER reader (so the signed `tbsCertificate` bytes are exactly the bytes received),
 * reads extensions with `@peculiar/x509`, checks signatures with `node:crypto` (OpenSSL), and
 * caches verified chains keyed on the exact chain bytes and the exact anchor set.
 *
 * Errors: malformed or unsupported input is INVALID_CERTIFICATE; a well-formed chain that is
 * not trusted (unknown root, bad signature, outside its validity, CA flags, wrong role) is
 * UNTRUSTED_CERTIFICATE; bad issuing parameters are INVALID_ARGUMENT.
 *
 * Role marking: each role has an extended key usage OID under a UUID-derived arc (ITU-T X.667,
 * `2.25.<uuid>`), next to the standard serverAuth/clientAuth purposes:
 * as = serverAuth + clientAuth + DIVS-AS; gateway = serverAuth + clientAuth + DIVS-gateway;
 * client = clientAuth + DIVS-client.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, verify as sigVerify, KeyObject, type webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { DivsError, fail, type ErrorCode } from './errors.ts';
import { equalBytes, fromBase64, sha256, toBase64, toHex } from './bytes.ts';
import { SignatureSuite, suiteOfKeyObject, type Suite } from './suites.ts';

// peculiar's default provider is a global; node's WebCrypto is the one we want everywhere.
x509.cryptoProvider.set(globalThis.crypto);

/** What a leaf certificate may be used for. */
export type CertRole = 'as' | 'gateway' | 'client';
export const CERT_ROLES: readonly CertRole[] = ['as', 'gateway', 'client'];

/** DIVS OID arc: `2.25.` + the integer value of UUID b0df0e90-06de-42d6-86f1-22d3a7df7568. */
export const DIVS_OID_ARC = '2.25.235102304822313920594080102645084681576';

/** Extended key usage OID marking each role. */
export const ROLE_OIDS: Readonly<Record<CertRole, string>> = {
  as: `${DIVS_OID_ARC}.1.1`,
  gateway: `${DIVS_OID_ARC}.1.2`,
  client: `${DIVS_OID_ARC}.1.3`,
};

const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const OID_ANY_EKU = '2.5.29.37.0';

const ROLE_EKUS: Readonly<Record<CertRole, string[]>> = {
  // AS nodes are TLS clients of each other too (RP-dd sync, witnessing), hence clientAuth
  as: [OID_SERVER_AUTH, OID_CLIENT_AUTH, ROLE_OIDS.as],
  gateway: [OID_SERVER_AUTH, OID_CLIENT_AUTH, ROLE_OIDS.gateway],
  client: [OID_CLIENT_AUTH, ROLE_OIDS.client],
};

/** Bounds on what a peer may make us parse. */
export const MAX_CHAIN_LENGTH = 8;
export const MAX_CERT_BYTES = 16 * 1024;
const MAX_VALIDITY_DAYS = 100 * 366;
const DAY_MS = 86_400_000;
const CLOCK_SKEW_MS = 5 * 60_000;

const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

// ---------------------------------------------------------------- PEM

/** PEM-encodes DER bytes (64-character base64 lines). */
export function derToPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const b64 = toBase64(der);
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * Every PEM block with `label`, in order, as DER. Throws INVALID_CERTIFICATE (label
 * CERTIFICATE) or INVALID_ARGUMENT (other labels) when there is none or a body is not base64.
 */
export function pemBlocks(pem: string, label = 'CERTIFICATE'): Uint8Array[] {
  const code: ErrorCode = label === 'CERTIFICATE' ? 'INVALID_CERTIFICATE' : 'INVALID_ARGUMENT';
  if (typeof pem !== 'string') fail(code, `PEM ${label}: expected a string`);
  const out: Uint8Array[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([^-]*)-----END \1-----/g;
  for (const m of pem.matchAll(re)) {
    if (m[1] !== label) continue;
    const body = (m[2] ?? '').replace(/\s+/g, '');
    let der: Uint8Array;
    try {
      der = fromBase64(body, `PEM ${label}`);
    } catch (e) {
      fail(code, `PEM ${label}: body is not base64`, e);
    }
    if (der.length === 0) fail(code, `PEM ${label}: empty body`);
    out.push(der);
  }
  if (out.length === 0) fail(code, `no PEM ${label} block found`);
  return out;
}

/** The single PEM block with `label` as DER (see {@link pemBlocks} for errors; more than one is an error too). */
export function pemToDer(pem: string, label = 'CERTIFICATE'): Uint8Array {
  const blocks = pemBlocks(pem, label);
  if (blocks.length !== 1) fail(label === 'CERTIFICATE' ? 'INVALID_CERTIFICATE' : 'INVALID_ARGUMENT', `expected one PEM ${label} block, found ${blocks.length}`);
  return blocks[0] as Uint8Array;
}

/** A certificate chain file (leaf first) as a list of DER certificates. */
export function chainFromPem(pem: string): Uint8Array[] {
  return pemBlocks(pem, 'CERTIFICATE');
}

/** A chain (leaf first) as one PEM file. */
export function chainToPem(chainDer: Uint8Array[]): string {
  return chainDer.map((d) => derToPem(d)).join('');
}

// ---------------------------------------------------------------- strict DER framing

/** Thrown inside this module only; every caller turns it into INVALID_CERTIFICATE. */
class DerError extends Error {}

interface Tlv {
  tag: number;
  /** offset of the tag byte */
  start: number;
  /** offset of the first content byte */
  body: number;
  /** offset just past the content */
  end: number;
}

/** Reads one DER TLV at `off`, which must end by `limit`: low tag numbers, definite minimal lengths. */
function readTlv(b: Uint8Array, off: number, limit: number): Tlv {
  if (off + 2 > limit) throw new DerError('truncated');
  const tag = b[off] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag number');
  let len = b[off + 1] as number;
  let body = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3) throw new DerError('unsupported length');
    if (body + n > limit) throw new DerError('truncated');
    if (b[body] === 0) throw new DerError('non-minimal length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (b[body + i] as number);
    if (len < 0x80) throw new DerError('non-minimal length');
    body += n;
  }
  const end = body + len;
  if (end > limit) throw new DerError('truncated');
  return { tag, start: off, body, end };
}

/** The TLVs directly inside a constructed value. */
function children(b: Uint8Array, t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let o = t.body; o < t.end; ) {
    const c = readTlv(b, o, t.end);
    out.push(c);
    o = c.end;
  }
  return out;
}

const SEQ = 0x30;

/** DER content bytes of an OBJECT IDENTIFIER, for byte-exact comparison. */
function oidContent(oid: string): string {
  const arcs = oid.split('.').map((a) => BigInt(a));
  const first = (arcs[0] as bigint) * 40n + (arcs[1] as bigint);
  const bytes: number[] = [];
  for (const arc of [first, ...arcs.slice(2)]) {
    const groups: number[] = [];
    let v = arc;
    do {
      groups.unshift(Number(v & 0x7fn));
      v >>= 7n;
    } while (v > 0n);
    for (let i = 0; i < groups.length - 1; i++) groups[i] = (groups[i] as number) | 0x80;
    bytes.push(...groups);
  }
  return toHex(new Uint8Array(bytes));
}

// Extended key usages are compared as DER bytes: peculiar renders arcs above 2^53 (like the
// UUID arc) as placeholder strings, so string comparison would not be reliable.
const ROLE_OID_BYTES: Readonly<Record<CertRole, string>> = {
  as: oidContent(ROLE_OIDS.as),
  gateway: oidContent(ROLE_OIDS.gateway),
  client: oidContent(ROLE_OIDS.client),
};
const ANY_EKU_BYTES = oidContent(OID_ANY_EKU);

// AlgorithmIdentifier encodings we verify, byte for byte (RFC 5758 and RFC 8410: no parameters).
const ALG_ECDSA_SHA256 = '300a06082a8648ce3d040302';
const ALG_ED25519 = '300506032b6570';

const EXT_BASIC_CONSTRAINTS = '2.5.29.19';
const EXT_KEY_USAGE = '2.5.29.15';
const EXT_EXT_KEY_USAGE = '2.5.29.37';
// extensions we understand; any other critical one makes the certificate unusable (RFC 5280 4.2)
const KNOWN_EXTENSIONS = new Set([EXT_BASIC_CONSTRAINTS, EXT_KEY_USAGE, EXT_EXT_KEY_USAGE, '2.5.29.17', '2.5.29.14', '2.5.29.35']);

/** One certificate, parsed once, with the exact bytes each check needs. */
interface ParsedCert {
  der: Uint8Array;
  tbs: Uint8Array;
  sigAlg: string;
  signature: Uint8Array;
  issuer: Uint8Array;
  subject: Uint8Array;
  spki: Uint8Array;
  subjectText: string;
  notBefore: number;
  notAfter: number;
  isCa: boolean;
  pathLength: number | undefined;
  keyUsage: number | undefined;
  /** hex DER contents of the EKU OIDs; undefined when the extension is absent */
  ekus: Set<string> | undefined;
  publicKey: KeyObject;
  suite: Suite | null;
}

/** Parses one certificate; `what` names it in errors. Throws INVALID_CERTIFICATE. */
function parseCert(der: unknown, what: string): ParsedCert {
  if (!(der instanceof Uint8Array)) fail('INVALID_CERTIFICATE', `${what}: expected DER bytes`);
  if (der.length > MAX_CERT_BYTES) fail('INVALID_CERTIFICATE', `${what}: larger than ${MAX_CERT_BYTES} bytes`);
  try {
    const outer = readTlv(der, 0, der.length);
    if (outer.tag !== SEQ || outer.end !== der.length) throw new DerError('not a single DER SEQUENCE');
    const [tbsT, algT, sigT, ...extra] = children(der, outer);
    if (!tbsT || !algT || !sigT || extra.length > 0 || tbsT.tag !== SEQ || algT.tag !== SEQ || sigT.tag !== 0x03) {
      throw new DerError('not a Certificate');
    }
    if (sigT.end - sigT.body < 2 || der[sigT.body] !== 0) throw new DerError('bad signature BIT STRING');
    const tbsFields = children(der, tbsT);
    const [verT, serialT, innerAlgT, issuerT, validityT, subjectT, spkiT] = tbsFields;
    if (!verT || verT.tag !== 0xa0 || toHex(der.subarray(verT.start, verT.end)) !== 'a003020102') throw new DerError('not an X.509 v3 certificate');
    if (!serialT || serialT.tag !== 0x02 || !innerAlgT || !issuerT || !validityT || !subjectT || !spkiT || spkiT.tag !== SEQ) {
      throw new DerError('malformed tbsCertificate');
    }
    const sigAlg = toHex(der.subarray(algT.start, algT.end));
    // RFC 5280 4.1.1.2: the signed algorithm must be the same as the outer one
    if (toHex(der.subarray(innerAlgT.start, innerAlgT.end)) !== sigAlg) throw new DerError('signature algorithm mismatch');

    const cert = new x509.X509Certificate(der);
    const seen = new Set<string>();
    let isCa = false;
    let pathLength: number | undefined;
    let keyUsage: number | undefined;
    let ekus: Set<string> | undefined;
    for (const ext of cert.extensions) {
      if (seen.has(ext.type)) throw new DerError(`duplicate extension ${ext.type}`);
      seen.add(ext.type);
      if (ext.critical && !KNOWN_EXTENSIONS.has(ext.type)) throw new DerError(`unrecognized critical extension ${ext.type}`);
      if (ext.type === EXT_BASIC_CONSTRAINTS) {
        const bc = new x509.BasicConstraintsExtension(ext.rawData);
        isCa = bc.ca;
        pathLength = bc.pathLength;
      } else if (ext.type === EXT_KEY_USAGE) {
        keyUsage = new x509.KeyUsagesExtension(ext.rawData).usages;
      } else if (ext.type === EXT_EXT_KEY_USAGE) {
        const v = new Uint8Array(ext.value);
        const seq = readTlv(v, 0, v.length);
        if (seq.tag !== SEQ || seq.end !== v.length) throw new DerError('malformed extended key usage');
        ekus = new Set(
          children(v, seq).map((o) => {
            if (o.tag !== 0x06) throw new DerError('malformed extended key usage');
            return toHex(v.subarray(o.body, o.end));
          }),
        );
      }
    }
    const spki = der.slice(spkiT.start, spkiT.end);
    const publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    let suite: Suite | null = null;
    try {
      suite = suiteOfKeyObject(publicKey);
    } catch {
      // a key of another kind can still be checked for a signature chain, never used by DIVS
    }
    const notBefore = cert.notBefore.getTime();
    const notAfter = cert.notAfter.getTime();
    if (!Number.isFinite(notBefore) || !Number.isFinite(notAfter)) throw new DerError('bad validity');
    return {
      der,
      tbs: der.subarray(tbsT.start, tbsT.end),
      sigAlg,
      signature: der.subarray(sigT.body + 1, sigT.end),
      issuer: der.subarray(issuerT.start, issuerT.end),
      subject: der.subarray(subjectT.start, subjectT.end),
      spki,
      subjectText: cert.subject,
      notBefore,
      notAfter,
      isCa,
      pathLength,
      keyUsage,
      ekus,
      publicKey,
      suite,
    };
  } catch (e) {
    if (e instanceof DivsError) throw e;
    // peculiar, asn1js and OpenSSL throw assorted errors on hostile bytes: all mean "malformed"
    fail('INVALID_CERTIFICATE', `${what}: malformed certificate (${e instanceof DerError ? e.message : 'undecodable'})`, e);
  }
}

// Parsed certificates by SHA-256 of their DER: intermediates and anchors recur in every chain,
// and parsing (asn1 + extensions) costs far more than the signature check. Entries hold their
// own copy of the bytes, so a caller reusing its buffer cannot change a cached certificate.
const PARSED_MAX = 1024;
const parsedCache = new Map<string, ParsedCert>();

function parseCertCached(der: unknown, what: string): ParsedCert {
  if (!(der instanceof Uint8Array)) fail('INVALID_CERTIFICATE', `${what}: expected DER bytes`);
  if (der.length > MAX_CERT_BYTES) fail('INVALID_CERTIFICATE', `${what}: larger than ${MAX_CERT_BYTES} bytes`);
  const key = toHex(sha256(der));
  const hit = parsedCache.get(key);
  if (hit) return hit;
  const parsed = parseCert(der.slice(), what);
  parsedCache.set(key, parsed);
  if (parsedCache.size > PARSED_MAX) parsedCache.delete(parsedCache.keys().next().value as string);
  return parsed;
}

/** Whether `child` carries a valid signature by `issuer`'s key. Never throws. */
function signedBy(child: ParsedCert, issuer: ParsedCert): boolean {
  try {
    if (child.sigAlg === ALG_ECDSA_SHA256) {
      if (issuer.suite !== SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256 && issuer.suite !== SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256) return false;
      return sigVerify('sha256', child.tbs, issuer.publicKey, child.signature);
    }
    if (child.sigAlg === ALG_ED25519) {
      if (issuer.suite !== SignatureSuite.SIGNATURE_SUITE_ED25519) return false;
      return sigVerify(null, child.tbs, issuer.publicKey, child.signature);
    }
    return false;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- chain verification

/** What a verified chain tells about its leaf. */
export interface VerifiedChain {
  /** Subject distinguished name of the leaf (RFC 4514 style). */
  subject: string;
  /** The leaf public key, ready for `nodeVerify`. */
  publicKey: KeyObject;
  /** DIVS signature suite of the leaf key. */
  suite: Suite;
  /** The leaf SubjectPublicKeyInfo, DER (a fresh copy on every call). */
  spkiDer: Uint8Array;
  /** DIVS roles named in the leaf's extended key usage. */
  roles: CertRole[];
  /** Earliest notAfter of the path: re-verify after this. */
  validUntil: Date;
}

export interface VerifyChainOptions {
  /** Time at which every certificate must be valid; default now. */
  at?: Date;
  /** Role the leaf must carry. */
  role?: CertRole;
}

interface CacheEntry {
  result: Omit<VerifiedChain, 'spkiDer' | 'validUntil'>;
  spkiDer: Uint8Array;
  notBefore: number;
  notAfter: number;
  /** role OIDs allowed by every CA of the path that restricts EKUs (undefined = unrestricted) */
  caEkus: Set<string>[];
}

const CACHE_MAX = 4096;
const cache = new Map<string, CacheEntry>();
const cacheStats = { hits: 0, misses: 0 };

/** Empties the verified-chain and parsed-certificate caches (tests; anchors need no clearing: they are part of every key). */
export function clearChainCache(): void {
  cache.clear();
  parsedCache.clear();
  cacheStats.hits = 0;
  cacheStats.misses = 0;
}

/** Counters of the verified-chain cache, for metrics. */
export function chainCacheStats(): { size: number; hits: number; misses: number } {
  return { size: cache.size, ...cacheStats };
}

/**
 * Cache key: SHA-256 over the chain with every certificate length-prefixed (so the same bytes
 * cut into other certificates are another key), then the anchor set (sorted digests, so order
 * does not matter but membership does).
 */
function cacheKey(chain: Uint8Array[], anchors: Uint8Array[]): string {
  const parts: Uint8Array[] = [];
  const u32 = (n: number): Uint8Array => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n);
    return b;
  };
  parts.push(u32(chain.length));
  for (const c of chain) parts.push(u32(c.length), c);
  const anchorDigests = [...new Set(anchors.map((a) => toHex(sha256(a))))].sort();
  parts.push(u32(anchorDigests.length));
  for (const d of anchorDigests) parts.push(Buffer.from(d, 'hex'));
  return toHex(sha256(...parts));
}

function roleAllowed(ekus: Set<string> | undefined, role: CertRole): boolean {
  return ekus === undefined || ekus.has(ROLE_OID_BYTES[role]) || ekus.has(ANY_EKU_BYTES);
}

function checkRole(roles: CertRole[], caEkus: Set<string>[], role: CertRole | undefined): void {
  if (role === undefined) return;
  if (!roles.includes(role)) fail('UNTRUSTED_CERTIFICATE', `certificate is not issued for role ${role}`);
  // a CA whose own EKU excludes the role cannot vouch for it
  if (!caEkus.every((e) => roleAllowed(e, role))) fail('UNTRUSTED_CERTIFICATE', `an issuing CA is not allowed to issue for role ${role}`);
}

function finish(entry: CacheEntry): VerifiedChain {
  return { ...entry.result, roles: [...entry.result.roles], spkiDer: entry.spkiDer.slice(), validUntil: new Date(entry.notAfter) };
}

/**
 * Verifies a certificate chain (leaf first, then each issuer) against trust anchors: every
 * link's signature and names, every certificate's validity at `at`, CA flags and path length
 * of issuers, an end-entity leaf with a supported DIVS key, the leaf role if asked, and that the
 * chain ends at one of the anchors (the last certificate is an anchor, or is signed by one).
 * Verified chains are cached by their exact bytes and anchor set.
 *
 * @throws DivsError INVALID_CERTIFICATE for malformed or unsupported certificates,
 *   UNTRUSTED_CERTIFICATE for chains that are well-formed but not trusted, INVALID_ARGUMENT for
 *   bad options.
 * @example
 * const { publicKey, suite } = verifyChain(chainFromPem(pem), [rootDer], { role: 'as' });
 */
export function verifyChain(chainDer: Uint8Array[], trustAnchorsDer: Uint8Array[], options: VerifyChainOptions = {}): VerifiedChain {
  if (typeof options !== 'object' || options === null) fail('INVALID_ARGUMENT', 'verifyChain: options must be an object');
  const at = options.at ?? new Date();
  if (!(at instanceof Date) || !Number.isFinite(at.getTime())) fail('INVALID_ARGUMENT', 'verifyChain: at must be a valid Date');
  const role = options.role;
  if (role !== undefined && !CERT_ROLES.includes(role)) fail('INVALID_ARGUMENT', `verifyChain: unknown role ${String(role)}`);
  if (!Array.isArray(chainDer) || chainDer.length === 0) fail('INVALID_CERTIFICATE', 'certificate chain is empty');
  if (chainDer.length > MAX_CHAIN_LENGTH) fail('INVALID_CERTIFICATE', `certificate chain longer than ${MAX_CHAIN_LENGTH}`);
  chainDer.forEach((c, i) => {
    if (!(c instanceof Uint8Array)) fail('INVALID_CERTIFICATE', `certificate ${i}: expected DER bytes`);
    if (c.length > MAX_CERT_BYTES) fail('INVALID_CERTIFICATE', `certificate ${i}: larger than ${MAX_CERT_BYTES} bytes`);
  });
  if (!Array.isArray(trustAnchorsDer) || !trustAnchorsDer.every((a) => a instanceof Uint8Array)) {
    fail('INVALID_ARGUMENT', 'verifyChain: trust anchors must be a list of DER certificates');
  }
  if (trustAnchorsDer.length === 0) fail('UNTRUSTED_CERTIFICATE', 'no trust anchors configured');
  const now = at.getTime();

  const key = cacheKey(chainDer, trustAnchorsDer);
  const hit = cache.get(key);
  if (hit && now >= hit.notBefore && now <= hit.notAfter) {
    cacheStats.hits++;
    cache.delete(key);
    cache.set(key, hit); // most recently used last
    checkRole(hit.result.roles, hit.caEkus, role);
    return finish(hit);
  }
  cacheStats.misses++;

  const path = chainDer.map((c, i) => parseCertCached(c, `certificate ${i}`));
  const anchors = trustAnchorsDer.map((a, i) => parseCertCached(a, `trust anchor ${i}`));

  // the chain ends at an anchor: its last certificate is one, or is signed by one
  const top = path[path.length - 1] as ParsedCert;
  if (!anchors.some((a) => equalBytes(a.der, top.der))) {
    const issuer = anchors.find((a) => equalBytes(a.subject, top.issuer) && signedBy(top, a));
    if (!issuer) fail('UNTRUSTED_CERTIFICATE', `certificate chain of ${path[0]?.subjectText ?? '?'} does not end at a trust anchor`);
    path.push(issuer);
  }

  for (let i = 0; i < path.length; i++) {
    const c = path[i] as ParsedCert;
    if (now < c.notBefore) fail('UNTRUSTED_CERTIFICATE', `certificate ${i} (${c.subjectText}) is not valid before ${new Date(c.notBefore).toISOString()}`);
    if (now > c.notAfter) fail('UNTRUSTED_CERTIFICATE', `certificate ${i} (${c.subjectText}) expired at ${new Date(c.notAfter).toISOString()}`);
    if (i === 0) continue;
    // c issued path[i - 1]
    const child = path[i - 1] as ParsedCert;
    if (!c.isCa) fail('UNTRUSTED_CERTIFICATE', `certificate ${i} (${c.subjectText}) is not a CA`);
    if (c.keyUsage === undefined || (c.keyUsage & x509.KeyUsageFlags.keyCertSign) === 0) {
      fail('UNTRUSTED_CERTIFICATE', `certificate ${i} (${c.subjectText}) may not sign certificates`);
    }
    // CAs between this one and the leaf (RFC 5280 4.2.1.9; our CAs are never self-issued below the root)
    if (c.pathLength !== undefined && i - 1 > c.pathLength) {
      fail('UNTRUSTED_CERTIFICATE', `certificate ${i} (${c.subjectText}) path length constraint exceeded`);
    }
    if (!equalBytes(child.issuer, c.subject)) fail('UNTRUSTED_CERTIFICATE', `certificate ${i - 1} was not issued by certificate ${i} (name mismatch)`);
    if (!signedBy(child, c)) fail('UNTRUSTED_CERTIFICATE', `signature of certificate ${i - 1} (${child.subjectText}) does not verify`);
  }

  const leaf = path[0] as ParsedCert;
  if (leaf.isCa) fail('UNTRUSTED_CERTIFICATE', `leaf certificate (${leaf.subjectText}) is a CA, not an end entity`);
  if (leaf.keyUsage !== undefined && (leaf.keyUsage & x509.KeyUsageFlags.digitalSignature) === 0) {
    fail('UNTRUSTED_CERTIFICATE', `leaf certificate (${leaf.subjectText}) may not sign data`);
  }
  if (leaf.suite === null) fail('INVALID_CERTIFICATE', `leaf certificate (${leaf.subjectText}) has a key of no supported signature suite`);
  const roles = CERT_ROLES.filter((r) => leaf.ekus?.has(ROLE_OID_BYTES[r]) === true);
  const caEkus = path.slice(1).flatMap((c) => (c.ekus ? [c.ekus] : []));
  checkRole(roles, caEkus, role);

  const entry: CacheEntry = {
    result: { subject: leaf.subjectText, publicKey: leaf.publicKey, suite: leaf.suite, roles },
    spkiDer: leaf.spki,
    notBefore: Math.max(...path.map((c) => c.notBefore)),
    notAfter: Math.min(...path.map((c) => c.notAfter)),
    caEkus,
  };
  cache.delete(key);
  cache.set(key, entry);
  if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value as string);
  return finish(entry);
}

// ---------------------------------------------------------------- issuing

/** A CA able to issue: its certificate and PKCS#8 private key, both PEM. */
export interface CaCredentials {
  certPem: string;
  keyPem: string;
}

/** A CA as created here, with its parsed certificate. */
export interface CertificateAuthority extends CaCredentials {
  cert: x509.X509Certificate;
}

/** An issued leaf certificate; `keyPem` (PKCS#8) only when the key was generated here. */
export interface IssuedCertificate {
  certPem: string;
  keyPem?: string;
  cert: x509.X509Certificate;
}

function checkValidity(validityDays: unknown, notBefore: unknown): { notBefore: Date; notAfter: Date } {
  if (typeof validityDays !== 'number' || !Number.isInteger(validityDays) || validityDays < 1 || validityDays > MAX_VALIDITY_DAYS) {
    fail('INVALID_ARGUMENT', `validityDays must be an integer from 1 to ${MAX_VALIDITY_DAYS}`);
  }
  if (notBefore !== undefined && (!(notBefore instanceof Date) || !Number.isFinite(notBefore.getTime()))) {
    fail('INVALID_ARGUMENT', 'notBefore must be a valid Date');
  }
  // whole seconds: that is what X.509 time encodes, so the certificate says exactly this. By
  // default the start is backdated a little, so a verifier whose clock lags accepts a fresh one.
  const start = Math.floor(((notBefore as Date | undefined)?.getTime() ?? Date.now() - CLOCK_SKEW_MS) / 1000) * 1000;
  return { notBefore: new Date(start), notAfter: new Date(start + validityDays * DAY_MS) };
}

/** A subject name: an RFC 4514 DN when it contains '=', otherwise a common name. */
function subjectOf(name: unknown, label: string): string | x509.JsonName {
  if (typeof name !== 'string' || name.trim() === '' || name.length > 1024) fail('INVALID_ARGUMENT', `${label}: expected a non-empty name`);
  if (!name.includes('=')) return [{ CN: [name] }];
  try {
    new x509.Name(name);
  } catch (e) {
    fail('INVALID_ARGUMENT', `${label}: not a distinguished name`, e);
  }
  return name;
}

function serialNumber(): string {
  const b = randomBytes(16);
  // positive, fixed length, never zero (RFC 5280 4.1.2.2)
  b[0] = ((b[0] as number) & 0x7f) | 0x40;
  return toHex(b);
}

async function signingKeyOf(pkcs8: KeyObject): Promise<webcrypto.CryptoKey> {
  return crypto.subtle.importKey('pkcs8', pkcs8.export({ type: 'pkcs8', format: 'der' }), ECDSA_P256, false, ['sign']);
}

function generateP256(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

const keyPemOf = (k: KeyObject): string => k.export({ type: 'pkcs8', format: 'pem' }) as string;
const spkiOf = (k: KeyObject): Uint8Array => new Uint8Array(k.export({ type: 'spki', format: 'der' }));

/** Loads and checks an issuing CA: a CA certificate allowed to sign certificates, and its matching key. */
function loadCa(ca: unknown): { cert: x509.X509Certificate; key: KeyObject; parsed: ParsedCert } {
  const c = ca as Partial<CaCredentials> | undefined;
  if (!c || typeof c.certPem !== 'string' || typeof c.keyPem !== 'string') fail('INVALID_ARGUMENT', 'ca: expected { certPem, keyPem }');
  let parsed: ParsedCert;
  try {
    parsed = parseCert(pemToDer(c.certPem), 'ca certificate');
  } catch (e) {
    fail('INVALID_ARGUMENT', 'ca.certPem: not a certificate', e);
  }
  if (!parsed.isCa || parsed.keyUsage === undefined || (parsed.keyUsage & x509.KeyUsageFlags.keyCertSign) === 0) {
    fail('INVALID_ARGUMENT', 'ca.certPem: not a CA certificate allowed to sign certificates');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(c.keyPem);
  } catch (e) {
    fail('INVALID_ARGUMENT', 'ca.keyPem: not a private key', e);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') fail('INVALID_ARGUMENT', 'ca.keyPem: CA keys are ECDSA P-256');
  if (!equalBytes(spkiOf(createPublicKey(key)), parsed.spki)) fail('INVALID_ARGUMENT', 'ca.keyPem does not match ca.certPem');
  return { cert: new x509.X509Certificate(parsed.der), key, parsed };
}

async function caExtensions(publicKey: KeyObject, pathLength: number | undefined): Promise<x509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(spkiOf(publicKey)),
  ];
}

/**
 * Creates a self-signed root CA for one DIVS deployment (ECDSA P-256, basicConstraints CA,
 * keyCertSign). `name` is an RFC 4514 DN ("CN=DIVS Root, O=Consortium") or a bare common name.
 * @example
 * const root = await createRootCa({ name: 'DIVS Consortium Root', validityDays: 3650 });
 */
export async function createRootCa(params: { name: string; validityDays: number; notBefore?: Date; pathLength?: number }): Promise<CertificateAuthority> {
  const subject = subjectOf(params?.name, 'name');
  const { notBefore, notAfter } = checkValidity(params.validityDays, params.notBefore);
  const pathLength = checkPathLength(params.pathLength);
  const { publicKey, privateKey } = generateP256();
  const signingKey = await signingKeyOf(privateKey);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject,
    issuer: subject,
    notBefore,
    notAfter,
    signingAlgorithm: ECDSA_SHA256,
    publicKey: spkiOf(publicKey),
    signingKey,
    extensions: await caExtensions(publicKey, pathLength),
  });
  return { certPem: cert.toString('pem'), keyPem: keyPemOf(privateKey), cert };
}

function checkPathLength(p: unknown): number | undefined {
  if (p === undefined) return undefined;
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > 8) fail('INVALID_ARGUMENT', 'pathLength must be an integer from 0 to 8');
  return p;
}

/** How far a requested validity may overhang the CA's and be trimmed rather than refused. */
const TRIM_MS = 10 * 60_000;

/**
 * The validity asked for must sit inside the issuing CA's own validity. An overhang of up to
 * {@link TRIM_MS} is trimmed to the CA's bounds: a CA and a leaf made with the same validity a
 * second apart (or a backdated default start) would otherwise be refused at random.
 */
function checkInsideCa(parsed: ParsedCert, v: { notBefore: Date; notAfter: Date }): { notBefore: Date; notAfter: Date } {
  const nb = v.notBefore.getTime();
  const na = v.notAfter.getTime();
  if (nb < parsed.notBefore - TRIM_MS || na > parsed.notAfter + TRIM_MS) {
    fail('INVALID_ARGUMENT', 'requested validity is outside the issuing CA validity');
  }
  return { notBefore: new Date(Math.max(nb, parsed.notBefore)), notAfter: new Date(Math.min(na, parsed.notAfter)) };
}

/**
 * Issues an intermediate CA (e.g. one per operator) under `ca`, with a fresh P-256 key.
 */
export async function issueIntermediateCa(params: { ca: CaCredentials; name: string; validityDays: number; notBefore?: Date; pathLength?: number }): Promise<CertificateAuthority> {
  const issuer = loadCa(params?.ca);
  const subject = subjectOf(params.name, 'name');
  const validity = checkInsideCa(issuer.parsed, checkValidity(params.validityDays, params.notBefore));
  const pathLength = checkPathLength(params.pathLength ?? 0);
  const { publicKey, privateKey } = generateP256();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject,
    issuer: issuer.cert.subjectName,
    ...validity,
    signingAlgorithm: ECDSA_SHA256,
    publicKey: spkiOf(publicKey),
    signingKey: await signingKeyOf(issuer.key),
    extensions: [...(await caExtensions(publicKey, pathLength)), await x509.AuthorityKeyIdentifierExtension.create(issuer.parsed.spki)],
  });
  return { certPem: cert.toString('pem'), keyPem: keyPemOf(privateKey), cert };
}

const DNS_NAME = /^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$/;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Parameters of {@link issueCertificate}. */
export interface IssueCertificateParams {
  ca: CaCredentials;
  /** RFC 4514 DN or a bare common name. */
  subjectName: string;
  role: CertRole;
  /** The subject's own key (SPKI DER or a KeyObject): the private key never reaches the CA. */
  publicKey?: KeyObject | Uint8Array;
  /** Suite of a key generated here when no `publicKey` is given; default ECDSA P-256. */
  suite?: Suite;
  validityDays: number;
  notBefore?: Date;
  dnsNames?: string[];
  ipAddresses?: string[];
}

/**
 * Issues a leaf certificate for an AS node, gateway or client. Without `publicKey` a key of
 * `suite` (default P-256) is generated and returned as PKCS#8 PEM, usable with
 * `importPrivateKey` and `nodeSigner`.
 * @example
 * const as = await issueCertificate({ ca: root, subjectName: 'CN=as-1, O=Operator A', role: 'as', validityDays: 365 });
 */
export async function issueCertificate(params: IssueCertificateParams & { publicKey?: undefined }): Promise<IssuedCertificate & { keyPem: string }>;
export async function issueCertificate(params: IssueCertificateParams): Promise<IssuedCertificate>;
export async function issueCertificate(params: IssueCertificateParams): Promise<IssuedCertificate> {
  const issuer = loadCa(params?.ca);
  const subject = subjectOf(params.subjectName, 'subjectName');
  if (!CERT_ROLES.includes(params.role)) fail('INVALID_ARGUMENT', `role must be one of ${CERT_ROLES.join(', ')}`);
  const validity = checkInsideCa(issuer.parsed, checkValidity(params.validityDays, params.notBefore));

  let publicKey: KeyObject;
  let keyPem: string | undefined;
  if (params.publicKey !== undefined) {
    try {
      const k = params.publicKey;
      publicKey =
        k instanceof Uint8Array
          ? createPublicKey({ key: Buffer.from(k), format: 'der', type: 'spki' })
          : k instanceof KeyObject && k.type === 'public'
            ? k
            : createPublicKey(k);
    } catch (e) {
      fail('INVALID_ARGUMENT', 'publicKey: not a public key (SPKI DER or KeyObject)', e);
    }
    suiteOfKeyObject(publicKey);
  } else {
    const suite = params.suite ?? SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;
    const pair =
      suite === SignatureSuite.SIGNATURE_SUITE_ED25519
        ? generateKeyPairSync('ed25519')
        : suite === SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256
          ? generateKeyPairSync('ec', { namedCurve: 'secp256k1' })
          : suite === SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256
            ? generateP256()
            : fail('UNSUPPORTED_SUITE', `unsupported signature suite ${String(suite)}`);
    publicKey = pair.publicKey;
    keyPem = keyPemOf(pair.privateKey);
  }

  const altNames: x509.JsonGeneralName[] = [];
  for (const d of params.dnsNames ?? []) {
    if (typeof d !== 'string' || !DNS_NAME.test(d)) fail('INVALID_ARGUMENT', `dnsNames: ${String(d)} is not a DNS name`);
    altNames.push({ type: 'dns', value: d });
  }
  for (const ip of params.ipAddresses ?? []) {
    if (typeof ip !== 'string' || (!IPV4.test(ip) && !/^[0-9a-fA-F:]+$/.test(ip))) fail('INVALID_ARGUMENT', `ipAddresses: ${String(ip)} is not an IP address`);
    altNames.push({ type: 'ip', value: ip });
  }

  const spki = spkiOf(publicKey);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(ROLE_EKUS[params.role]),
    await x509.SubjectKeyIdentifierExtension.create(spki),
    await x509.AuthorityKeyIdentifierExtension.create(issuer.parsed.spki),
  ];
  if (altNames.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(altNames));
  let cert: x509.X509Certificate;
  try {
    cert = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject,
      issuer: issuer.cert.subjectName,
      ...validity,
      signingAlgorithm: ECDSA_SHA256,
      publicKey: spki,
      signingKey: await signingKeyOf(issuer.key),
      extensions,
    });
  } catch (e) {
    // e.g. an IPv6 literal peculiar cannot encode
    fail('INVALID_ARGUMENT', 'cannot issue a certificate with these parameters', e);
  }
  return keyPem === undefined ? { certPem: cert.toString('pem'), cert } : { certPem: cert.toString('pem'), keyPem, cert };
}

/** DER bytes of a parsed certificate. */
export function certDer(cert: x509.X509Certificate): Uint8Array {
  return new Uint8Array(cert.rawData);
}
