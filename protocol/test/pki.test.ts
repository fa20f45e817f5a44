/**
 * @module protocol/test/pki
 * The consortium PKI: issuing root/intermediate/leaf certificates, and verifying chains the way
 * a consumer or gateway verifies an AS certificate chain (FW-SU), including hostile input and
 * the verified-chain cache.
 */
import { describe, it, expect, beforeAll, beforeEach } from 'vitest';
import fc from 'fast-check';
import { X509Certificate as NodeX509, generateKeyPairSync, type webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import {
  chainCacheStats,
  chainFromPem,
  chainToPem,
  clearChainCache,
  createRootCa,
  derToPem,
  issueCertificate,
  issueIntermediateCa,
  pemBlocks,
  pemToDer,
  ROLE_OIDS,
  verifyChain,
  type CertificateAuthority,
  type IssuedCertificate,
} from '../src/pki.ts';
import { importPrivateKey, nodeSigner, nodeVerify, rawPublicKey, SignatureSuite } from '../src/suites.ts';
import { utf8 } from '../src/bytes.ts';
import { DivsError } from '../src/errors.ts';
import { expectCode, expectCodeAsync } from './helpers.ts';

const P256 = SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;
const DAY = 86_400_000;

let root: CertificateAuthority;
let otherRoot: CertificateAuthority;
let operatorCa: CertificateAuthority;
let asLeaf: IssuedCertificate;
let gwLeaf: IssuedCertificate;
let rootDer: Uint8Array;
let otherRootDer: Uint8Array;

const der = (pem: string): Uint8Array => pemToDer(pem);

beforeAll(async () => {
  root = await createRootCa({ name: 'CN=DIVS Test Root, O=Consortium', validityDays: 3650, notBefore: new Date(Date.now() - 30 * DAY) });
  otherRoot = await createRootCa({ name: 'CN=DIVS Test Root, O=Consortium', validityDays: 3650 }); // same name, other key
  operatorCa = await issueIntermediateCa({ ca: root, name: 'CN=Operator A CA, O=Operator A', validityDays: 1000 });
  asLeaf = await issueCertificate({ ca: root, subjectName: 'CN=as-1.operator-a.example, O=Operator A', role: 'as', validityDays: 365, dnsNames: ['as-1.operator-a.example'], ipAddresses: ['127.0.0.1'] });
  gwLeaf = await issueCertificate({ ca: operatorCa, subjectName: 'gateway-1', role: 'gateway', validityDays: 90 });
  rootDer = der(root.certPem);
  otherRootDer = der(otherRoot.certPem);
});

beforeEach(() => clearChainCache());

describe('issuing', () => {
  it('[SEC-3] the root is a self-signed P-256 CA with keyCertSign; node:crypto agrees', async () => {
    const bc = root.cert.getExtension(x509.BasicConstraintsExtension);
    expect(bc?.ca).toBe(true);
    expect(bc?.critical).toBe(true);
    const ku = root.cert.getExtension(x509.KeyUsagesExtension);
    expect((ku?.usages ?? 0) & x509.KeyUsageFlags.keyCertSign).toBeTruthy();
    expect(root.cert.subject).toBe(root.cert.issuer);
    expect(await root.cert.verify({ signatureOnly: true })).toBe(true);
    const n = new NodeX509(rootDer);
    expect(n.ca).toBe(true);
    expect(n.verify(n.publicKey)).toBe(true);
    expect(importPrivateKey(root.keyPem).asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  });

  it('[SEC-3] leaf certificates carry their role in the extended key usage, a SAN, and are not CAs', () => {
    const n = new NodeX509(der(asLeaf.certPem));
    expect(n.ca).toBe(false);
    expect(n.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', ROLE_OIDS.as]));
    expect(n.subjectAltName).toContain('DNS:as-1.operator-a.example');
    expect(n.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(n.checkIssued(new NodeX509(rootDer))).toBe(true);
    expect(n.verify(new NodeX509(rootDer).publicKey)).toBe(true);
    expect(new NodeX509(der(gwLeaf.certPem)).keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2', ROLE_OIDS.gateway]));
  });

  it('[SEC-3] [END-3] a generated key is PKCS#8 PEM usable with importPrivateKey and nodeSigner, for every suite', async () => {
    for (const suite of [P256, SignatureSuite.SIGNATURE_SUITE_ED25519, SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256]) {
      const leaf = await issueCertificate({ ca: root, subjectName: `leaf-${suite}`, role: 'as', validityDays: 30, suite });
      expect(leaf.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
      const signer = nodeSigner(importPrivateKey(leaf.keyPem as string));
      expect(signer.suite).toBe(suite);
      const v = verifyChain([der(leaf.certPem)], [rootDer], { role: 'as' });
      expect(v.suite).toBe(suite);
      expect(rawPublicKey(v.publicKey)).toEqual(signer.publicKey);
      const msg = utf8('endorsement bytes');
      expect(nodeVerify(suite, v.publicKey, msg, await signer.sign(msg))).toBe(true);
    }
  });

  it('[SEC-3] [END-3] the AS can keep its key: a certificate for a given public key has no keyPem', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const leaf = await issueCertificate({ ca: root, subjectName: 'as-own-key', role: 'as', validityDays: 30, publicKey });
    expect(leaf.keyPem).toBeUndefined();
    const v = verifyChain([der(leaf.certPem)], [rootDer]);
    expect(v.spkiDer).toEqual(new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })));
    const msg = utf8('x');
    expect(nodeVerify(P256, v.publicKey, msg, await nodeSigner(privateKey).sign(msg))).toBe(true);
    const fromSpki = await issueCertificate({ ca: root, subjectName: 'as-spki', role: 'as', validityDays: 30, publicKey: v.spkiDer });
    expect(verifyChain([der(fromSpki.certPem)], [rootDer]).spkiDer).toEqual(v.spkiDer);
  });

  it('[SEC-3] a leaf asked for the CA\'s own validity a second later is trimmed to the CA, not refused', async () => {
    const ca = await createRootCa({ name: 'CN=Same Validity Root', validityDays: 30 });
    await new Promise((r) => setTimeout(r, 1100));
    const leaf = await issueCertificate({ ca, subjectName: 'as-same', role: 'as', validityDays: 30 });
    expect(leaf.cert.notAfter.getTime()).toBeLessThanOrEqual(ca.cert.notAfter.getTime());
    expect(leaf.cert.notBefore.getTime()).toBeGreaterThanOrEqual(ca.cert.notBefore.getTime());
  });

  it('[SEC-3] bad issuing parameters are INVALID_ARGUMENT', async () => {
    const base = { ca: root, subjectName: 'x', role: 'as' as const, validityDays: 30 };
    await expectCodeAsync(issueCertificate({ ...base, role: 'admin' as 'as' }), 'INVALID_ARGUMENT');
    await expectCodeAsync(issueCertificate({ ...base, validityDays: 0 }), 'INVALID_ARGUMENT');
    await expectCodeAsync(issueCertificate({ ...base, validityDays: 1.5 }), 'INVALID_ARGUMENT');
    await expectCodeAsync(issueCertificate({ ...base, validityDays: 4000 }), 'INVALID_ARGUMENT'); // beyond the root
    await expectCodeAsync(issueCertificate({ ...base, subjectName: '' }), 'INVALID_ARGUMENT');
    await expectCodeAsync(issueCertificate({ ...base, dnsNames: ['bad name'] }), 'INVALID_ARGUMENT');
    await expectCodeAsync(issueCertificate({ ...base, ipAddresses: ['999.1.1.1'] }), 'INVALID_ARGUMENT');
    await expectCodeAsync(issueCertificate({ ...base, publicKey: new Uint8Array([1, 2, 3]) }), 'INVALID_ARGUMENT');
    await expectCodeAsync(issueCertificate({ ...base, publicKey: generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey }), 'UNSUPPORTED_SUITE');
    // a leaf is not a CA; a key that does not match the CA certificate is refused
    await expectCodeAsync(issueCertificate({ ...base, ca: { certPem: asLeaf.certPem, keyPem: asLeaf.keyPem as string } }), 'INVALID_ARGUMENT');
    await expectCodeAsync(issueCertificate({ ...base, ca: { certPem: root.certPem, keyPem: otherRoot.keyPem } }), 'INVALID_ARGUMENT');
    await expectCodeAsync(issueCertificate({ ...base, ca: { certPem: 'nope', keyPem: root.keyPem } }), 'INVALID_ARGUMENT');
    await expectCodeAsync(createRootCa({ name: 'r', validityDays: -1 }), 'INVALID_ARGUMENT');
    await expectCodeAsync(createRootCa({ name: 'r', validityDays: 10, pathLength: -1 }), 'INVALID_ARGUMENT');
  });
});

describe('verifyChain', () => {
  it('[FW-SU] [SEC-3] [END-3] an AS chain verifies against the consortium root and yields the leaf key and suite', () => {
    const v = verifyChain([der(asLeaf.certPem)], [rootDer], { role: 'as' });
    expect(v.subject).toBe('CN=as-1.operator-a.example, O=Operator A');
    expect(v.suite).toBe(P256);
    expect(v.roles).toEqual(['as']);
    expect(v.validUntil.getTime()).toBe(asLeaf.cert.notAfter.getTime());
    expect(rawPublicKey(v.publicKey)).toEqual(nodeSigner(importPrivateKey(asLeaf.keyPem as string)).publicKey);
    // the root may also be sent as the last element of the chain
    expect(verifyChain([der(asLeaf.certPem), rootDer], [rootDer]).subject).toBe(v.subject);
  });

  it('[FW-SU] [SEC-3] a chain through an operator CA verifies; without the intermediate it does not', () => {
    const chain = [der(gwLeaf.certPem), der(operatorCa.certPem)];
    expect(verifyChain(chain, [rootDer], { role: 'gateway' }).subject).toBe('CN=gateway-1');
    expect(verifyChain(chainFromPem(chainToPem(chain)), [otherRootDer, rootDer]).roles).toEqual(['gateway']);
    expectCode(() => verifyChain([der(gwLeaf.certPem)], [rootDer]), 'UNTRUSTED_CERTIFICATE');
    // the operator CA itself may be the configured anchor
    expect(verifyChain([der(gwLeaf.certPem)], [der(operatorCa.certPem)]).subject).toBe('CN=gateway-1');
  });

  it('[FW-SU] [SEC-3] [END-3] a certificate from another root (even with the same name) is UNTRUSTED_CERTIFICATE', async () => {
    const foreign = await issueCertificate({ ca: otherRoot, subjectName: 'as-1', role: 'as', validityDays: 30 });
    expectCode(() => verifyChain([der(foreign.certPem)], [rootDer]), 'UNTRUSTED_CERTIFICATE');
    expectCode(() => verifyChain([der(foreign.certPem), otherRootDer], [rootDer]), 'UNTRUSTED_CERTIFICATE');
    expectCode(() => verifyChain([der(asLeaf.certPem)], [otherRootDer]), 'UNTRUSTED_CERTIFICATE');
    expectCode(() => verifyChain([der(asLeaf.certPem)], []), 'UNTRUSTED_CERTIFICATE');
  });

  it('[FW-SU] [SEC-3] [END-3] an expired or not-yet-valid certificate is UNTRUSTED_CERTIFICATE', async () => {
    const notBefore = new Date(Date.now() - 10 * DAY);
    const short = await issueCertificate({ ca: root, subjectName: 'short-lived', role: 'as', validityDays: 2, notBefore });
    const chain = [der(short.certPem)];
    expect(verifyChain(chain, [rootDer], { at: new Date(notBefore.getTime() + DAY) }).subject).toBe('CN=short-lived');
    expectCode(() => verifyChain(chain, [rootDer]), 'UNTRUSTED_CERTIFICATE'); // now: expired
    expectCode(() => verifyChain(chain, [rootDer], { at: new Date(notBefore.getTime() - 1000) }), 'UNTRUSTED_CERTIFICATE');
    // a valid leaf under an expired intermediate is not trusted either
    expectCode(() => verifyChain([der(gwLeaf.certPem), der(operatorCa.certPem)], [rootDer], { at: new Date(Date.now() + 2000 * DAY) }), 'UNTRUSTED_CERTIFICATE');
  });

  it('[FW-SU] [SEC-3] [END-3] a tampered byte in the signed part or the signature is UNTRUSTED_CERTIFICATE', () => {
    const leaf = der(asLeaf.certPem);
    // change one character of the subject CN: the DER stays well-formed, the signature breaks
    const at = Buffer.from(leaf).indexOf('as-1.operator-a');
    expect(at).toBeGreaterThan(0);
    const renamed = leaf.slice();
    renamed[at] = 'b'.charCodeAt(0);
    expectCode(() => verifyChain([renamed], [rootDer]), 'UNTRUSTED_CERTIFICATE');
    const badSig = leaf.slice();
    badSig[badSig.length - 1] = (badSig[badSig.length - 1] as number) ^ 1;
    expectCode(() => verifyChain([badSig], [rootDer]), 'UNTRUSTED_CERTIFICATE');
  });

  it('[FW-SU] [SEC-3] any single flipped byte anywhere in the chain is rejected with a coded error', () => {
    const chain = [der(gwLeaf.certPem), der(operatorCa.certPem)];
    verifyChain(chain, [rootDer]); // cached: a tampered copy must not hit the cache
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 }), (which, pos, x) => {
        const c = chain.map((d) => d.slice());
        const target = c[which % 2] as Uint8Array;
        const i = pos % target.length;
        target[i] = (target[i] as number) ^ x;
        let code: string | undefined;
        try {
          verifyChain(c, [rootDer]);
        } catch (e) {
          expect(e).toBeInstanceOf(DivsError);
          code = (e as DivsError).code;
        }
        expect(['UNTRUSTED_CERTIFICATE', 'INVALID_CERTIFICATE']).toContain(code);
      }),
      { numRuns: 100 },
    );
  });

  it('[FW-SU] [SEC-3] [END-3] a certificate of the wrong role is UNTRUSTED_CERTIFICATE', async () => {
    const client = await issueCertificate({ ca: root, subjectName: 'consumer-1', role: 'client', validityDays: 30 });
    expectCode(() => verifyChain([der(asLeaf.certPem)], [rootDer], { role: 'gateway' }), 'UNTRUSTED_CERTIFICATE');
    expectCode(() => verifyChain([der(client.certPem)], [rootDer], { role: 'as' }), 'UNTRUSTED_CERTIFICATE');
    expectCode(() => verifyChain([der(gwLeaf.certPem), der(operatorCa.certPem)], [rootDer], { role: 'client' }), 'UNTRUSTED_CERTIFICATE');
    expect(verifyChain([der(client.certPem)], [rootDer], { role: 'client' }).roles).toEqual(['client']);
    expectCode(() => verifyChain([der(client.certPem)], [rootDer], { role: 'root' as 'as' }), 'INVALID_ARGUMENT');
  });

  it('[FW-SU] [SEC-3] garbage bytes are INVALID_CERTIFICATE, never a crash', () => {
    const leaf = der(asLeaf.certPem);
    const bad: unknown[] = [
      new Uint8Array(0),
      new Uint8Array([0x30, 0x80, 0, 0]), // indefinite length
      new Uint8Array([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
      utf8(asLeaf.certPem), // PEM text where DER belongs
      leaf.subarray(0, leaf.length - 1), // truncated
      new Uint8Array([...leaf, 0]), // trailing byte
      'not bytes',
      undefined,
      new Uint8Array(17 * 1024),
    ];
    for (const b of bad) expectCode(() => verifyChain([b as Uint8Array], [rootDer]), 'INVALID_CERTIFICATE');
    expectCode(() => verifyChain([], [rootDer]), 'INVALID_CERTIFICATE');
    expectCode(() => verifyChain(undefined as unknown as Uint8Array[], [rootDer]), 'INVALID_CERTIFICATE');
    expectCode(() => verifyChain(Array.from({ length: 9 }, () => leaf), [rootDer]), 'INVALID_CERTIFICATE');
    expectCode(() => verifyChain([leaf], [rootDer], { at: new Date(NaN) }), 'INVALID_ARGUMENT');
    expectCode(() => verifyChain([leaf], ['x' as unknown as Uint8Array]), 'INVALID_ARGUMENT');
    expectCode(() => verifyChain([leaf], [new Uint8Array([1, 2, 3])]), 'INVALID_CERTIFICATE');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
        expectCode(() => verifyChain([b], [rootDer]), 'INVALID_CERTIFICATE');
      }),
      { numRuns: 300 },
    );
  });

  it('[FW-SU] [SEC-3] a leaf cannot act as a CA, a CA cannot act as a leaf, path length is enforced', async () => {
    // a certificate "issued" by the AS leaf's key, with the leaf named as issuer
    const leafKey = await crypto.subtle.importKey('pkcs8', pemToDer(asLeaf.keyPem as string, 'PRIVATE KEY'), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    const sub = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const forged = await x509.X509CertificateGenerator.create({
      serialNumber: '0102',
      subject: 'CN=forged',
      issuer: asLeaf.cert.subjectName,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + DAY),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      publicKey: new Uint8Array(sub.export({ type: 'spki', format: 'der' })),
      signingKey: leafKey,
      extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
    });
    expectCode(() => verifyChain([new Uint8Array(forged.rawData), der(asLeaf.certPem)], [rootDer]), 'UNTRUSTED_CERTIFICATE');
    expectCode(() => verifyChain([der(operatorCa.certPem)], [rootDer]), 'UNTRUSTED_CERTIFICATE');

    const strictRoot = await createRootCa({ name: 'strict root', validityDays: 100, pathLength: 0 });
    const inter = await issueIntermediateCa({ ca: strictRoot, name: 'inter', validityDays: 50 });
    const leaf = await issueCertificate({ ca: inter, subjectName: 'leaf', role: 'as', validityDays: 10 });
    const direct = await issueCertificate({ ca: strictRoot, subjectName: 'direct', role: 'as', validityDays: 10 });
    expect(verifyChain([der(direct.certPem)], [der(strictRoot.certPem)]).subject).toBe('CN=direct');
    expectCode(() => verifyChain([der(leaf.certPem), der(inter.certPem)], [der(strictRoot.certPem)]), 'UNTRUSTED_CERTIFICATE');
  });

  it('[SEC-3] an unrecognized critical extension makes a certificate INVALID_CERTIFICATE', async () => {
    const caKey = await crypto.subtle.importKey('pkcs8', pemToDer(root.keyPem, 'PRIVATE KEY'), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    const sub = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: '0103',
      subject: 'CN=odd',
      issuer: root.cert.subjectName,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + DAY),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      publicKey: new Uint8Array(sub.export({ type: 'spki', format: 'der' })),
      signingKey: caKey,
      extensions: [new x509.BasicConstraintsExtension(false, undefined, true), new x509.Extension('1.2.3.4.5', true, new Uint8Array([0x05, 0x00]))],
    });
    expectCode(() => verifyChain([new Uint8Array(cert.rawData)], [rootDer]), 'INVALID_CERTIFICATE');
  });

  it('[FW-SU] [SEC-3] an Ed25519 CA signature verifies too', async () => {
    const keys = (await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as unknown as webcrypto.CryptoKeyPair;
    const edRoot = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=ed root',
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 10 * DAY),
      signingAlgorithm: { name: 'Ed25519' },
      keys,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    const sub = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: '02',
      subject: 'CN=ed leaf',
      issuer: edRoot.subjectName,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + DAY),
      signingAlgorithm: { name: 'Ed25519' },
      publicKey: new Uint8Array(sub.export({ type: 'spki', format: 'der' })),
      signingKey: keys.privateKey,
      extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
    });
    const v = verifyChain([new Uint8Array(leaf.rawData)], [new Uint8Array(edRoot.rawData)]);
    expect(v.subject).toBe('CN=ed leaf');
    expect(v.roles).toEqual([]);
  });
});

describe('verified-chain cache', () => {
  it('[FW-SU] [SEC-3] a second verification of the same bytes is a cache hit; anchor order does not matter', () => {
    const chain = [der(gwLeaf.certPem), der(operatorCa.certPem)];
    verifyChain(chain, [rootDer, otherRootDer]);
    expect(chainCacheStats()).toMatchObject({ size: 1, hits: 0, misses: 1 });
    verifyChain(chain.map((c) => c.slice()), [otherRootDer, rootDer], { role: 'gateway' });
    expect(chainCacheStats()).toMatchObject({ size: 1, hits: 1, misses: 1 });
  });

  it('[FW-SU] [SEC-3] the cache is not fooled by another anchor set, re-cut bytes, another time or another role', () => {
    const chain = [der(gwLeaf.certPem), der(operatorCa.certPem)];
    verifyChain(chain, [rootDer]);
    expectCode(() => verifyChain(chain, [otherRootDer]), 'UNTRUSTED_CERTIFICATE');
    // the same bytes cut differently are not the same chain
    const joined = new Uint8Array([...(chain[0] as Uint8Array), ...(chain[1] as Uint8Array)]);
    expectCode(() => verifyChain([joined], [rootDer]), 'INVALID_CERTIFICATE');
    expectCode(() => verifyChain(chain, [rootDer], { at: new Date(Date.now() + 400 * DAY) }), 'UNTRUSTED_CERTIFICATE');
    expectCode(() => verifyChain(chain, [rootDer], { role: 'as' }), 'UNTRUSTED_CERTIFICATE');
    expect(verifyChain(chain, [rootDer], { role: 'gateway' }).subject).toBe('CN=gateway-1');
  });

  it('[FW-SU] [SEC-3] a caller mutating a result cannot poison the cache', () => {
    const chain = [der(asLeaf.certPem)];
    const first = verifyChain(chain, [rootDer]);
    const spki = first.spkiDer.slice();
    first.spkiDer.fill(0);
    first.roles.push('client');
    const second = verifyChain(chain, [rootDer], { role: 'as' });
    expect(second.spkiDer).toEqual(spki);
    expect(second.roles).toEqual(['as']);
    expectCode(() => verifyChain(chain, [rootDer], { role: 'client' }), 'UNTRUSTED_CERTIFICATE');
  });
});

describe('PEM helpers', () => {
  it('[SEC-3] DER and PEM round-trip; a chain file splits into its certificates', () => {
    const d = der(asLeaf.certPem);
    expect(pemToDer(derToPem(d))).toEqual(d);
    expect(derToPem(d).split('\n').every((l) => l.length <= 64)).toBe(true);
    const file = `leaf\n${asLeaf.certPem}\nintermediate\n${operatorCa.certPem}${root.keyPem}`;
    expect(chainFromPem(file)).toEqual([d, der(operatorCa.certPem)]);
    expect(pemBlocks(file, 'PRIVATE KEY')).toHaveLength(1);
  });

  it('[SEC-3] bad PEM is a coded error', () => {
    expectCode(() => pemToDer('hello'), 'INVALID_CERTIFICATE');
    expectCode(() => pemToDer('-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n'), 'INVALID_CERTIFICATE');
    expectCode(() => pemToDer('-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n'), 'INVALID_CERTIFICATE');
    expectCode(() => pemToDer(asLeaf.certPem + root.certPem), 'INVALID_CERTIFICATE');
    expectCode(() => pemToDer(root.certPem, 'PRIVATE KEY'), 'INVALID_ARGUMENT');
    expectCode(() => chainFromPem(undefined as unknown as string), 'INVALID_CERTIFICATE');
  });
});
