/**
 * @module suites
 * The three DIVS signature suites, in two implementations that must agree on every vector:
 * `@noble/curves` (pure JS, used by UEs and anywhere a secret key is held in JS) and
 * `node:crypto` (OpenSSL, used on verifying hot paths: ~34x faster for P-256 verify here).
 *
 * Wire formats: ECDSA signatures are IEEE P1363 (`r || s`, 64 bytes); public keys are SEC1
 * points (33-byte compressed or 65-byte uncompressed); Ed25519 keys and signatures are the raw
 * 32 and 64 bytes of RFC 8032.
 *
 * Policy (decided explicitly, tested against Wycheproof): high-S ECDSA signatures are valid
 * (standard ECDSA; our signers emit low-S, and record identity never depends on signature
 * bytes, so malleability cannot fork a record); Ed25519 verification is strict RFC 8032
 * (canonical S and point encodings), which is what OpenSSL does. Wycheproof `acceptable`
 * cases follow that policy (ACCEPTABLE_POLICY in protocol/test/suites.test.ts): ECDSA cases
 * flagged only as signature malleability (high S) must verify, Ed25519 ones must not, and any
 * other `acceptable` case fails the vector test until a policy is written for it.
 *
 * Inputs are hostile: verifiers answer `false` on anything malformed or of the wrong type
 * (including a key of another suite than the one named); signers and importers throw a coded
 * {@link DivsError} (INVALID_ARGUMENT, INVALID_PUBLIC_KEY, UNSUPPORTED_SUITE, SUITE_MISMATCH).
 */
import { createPublicKey, createPrivateKey, hash as nodeHash, sign as nodeSignRaw, verify as nodeVerifyRaw, KeyObject } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { SignatureSuite } from '../../proto/gen/divs/v1/common.ts';
import { DivsError, fail } from './errors.ts';
import { abytes, pae } from './bytes.ts';
import { LruMap } from './lru.ts';

export { SignatureSuite };
export type Suite = SignatureSuite;

export type SigEncoding = 'p1363' | 'der';

const ECDSA = {
  [SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256]: { curve: p256, crv: 'P-256', name: 'ecdsa-p256-sha256' },
  [SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256]: { curve: secp256k1, crv: 'secp256k1', name: 'ecdsa-secp256k1-sha256' },
} as const;

type EcdsaSuite = keyof typeof ECDSA;

export const DEFAULT_SUITE: Suite = SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;

/** Short names for configuration files and CLI flags. */
export const SUITE_NAMES: Record<string, Suite> = {
  'ecdsa-p256-sha256': SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256,
  p256: SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256,
  ed25519: SignatureSuite.SIGNATURE_SUITE_ED25519,
  'ecdsa-secp256k1-sha256': SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256,
  secp256k1: SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256,
};

export function suiteName(suite: Suite): string {
  if (suite === SignatureSuite.SIGNATURE_SUITE_ED25519) return 'ed25519';
  if (isEcdsa(suite)) return ECDSA[suite].name;
  return `unknown(${String(suite)})`;
}

function isEcdsa(suite: Suite): suite is EcdsaSuite {
  return suite === SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256 || suite === SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256;
}

function ecdsa(suite: Suite): (typeof ECDSA)[EcdsaSuite] {
  if (!isEcdsa(suite)) fail('UNSUPPORTED_SUITE', `unsupported signature suite ${String(suite)}`);
  return ECDSA[suite];
}

/** Throws UNSUPPORTED_SUITE unless `suite` is one of ours. */
export function assertSuite(suite: unknown): asserts suite is Suite {
  if (suite !== SignatureSuite.SIGNATURE_SUITE_ED25519 && !isEcdsa(suite as Suite)) {
    fail('UNSUPPORTED_SUITE', `unsupported signature suite ${String(suite)}`);
  }
}

// ---------------------------------------------------------------- noble (UE side)

/** A fresh secret key from the platform CSPRNG. */
export function generateSecretKey(suite: Suite): Uint8Array {
  if (suite === SignatureSuite.SIGNATURE_SUITE_ED25519) return ed25519.utils.randomSecretKey();
  return ecdsa(suite).curve.utils.randomSecretKey();
}

/** Public key for a secret key (compressed SEC1 for ECDSA). Throws INVALID_ARGUMENT on a bad key. */
export function publicKeyOf(suite: Suite, secretKey: Uint8Array): Uint8Array {
  assertSuite(suite);
  abytes(secretKey, 'secretKey', 32);
  try {
    if (suite === SignatureSuite.SIGNATURE_SUITE_ED25519) return ed25519.getPublicKey(secretKey);
    return ecdsa(suite).curve.getPublicKey(secretKey, true);
  } catch (e) {
    // ECDSA scalars must be in [1, n): noble throws a plain Error for 0 or >= n
    fail('INVALID_ARGUMENT', `secretKey: not a valid ${suiteName(suite)} secret key`, e);
  }
}

/**
 * Signs `msg` (hashing it with SHA-256 for ECDSA); ECDSA output is low-S P1363.
 * Throws INVALID_ARGUMENT on a bad key or message, UNSUPPORTED_SUITE on an unknown suite.
 */
export function nobleSign(suite: Suite, secretKey: Uint8Array, msg: Uint8Array): Uint8Array {
  assertSuite(suite);
  abytes(secretKey, 'secretKey', 32);
  abytes(msg, 'msg');
  try {
    if (suite === SignatureSuite.SIGNATURE_SUITE_ED25519) return ed25519.sign(msg, secretKey);
    return ecdsa(suite).curve.sign(msg, secretKey, { lowS: true, format: 'compact' });
  } catch (e) {
    fail('INVALID_ARGUMENT', `secretKey: not a valid ${suiteName(suite)} secret key`, e);
  }
}

/** Verifies with noble. Never throws on malformed input: answers false. */
export function nobleVerify(suite: Suite, publicKey: Uint8Array, msg: Uint8Array, sig: Uint8Array, encoding: SigEncoding = 'p1363'): boolean {
  try {
    if (suite === SignatureSuite.SIGNATURE_SUITE_ED25519) {
      return ed25519.verify(sig, msg, publicKey, { zip215: false });
    }
    if (!isEcdsa(suite)) return false;
    if (encoding === 'p1363' && sig.length !== 64) return false;
    return ECDSA[suite].curve.verify(sig, msg, publicKey, { lowS: false, format: encoding === 'der' ? 'der' : 'compact' });
  } catch {
    // undecodable key or signature bytes are attacker-controlled: that is "not valid"
    return false;
  }
}

// ---------------------------------------------------------------- node:crypto (verifiers)

const b64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');

/**
 * Imports a raw public key into a KeyObject for fast verification. Validates the point
 * (on curve, not identity) and throws INVALID_PUBLIC_KEY otherwise.
 */
export function importPublicKey(suite: Suite, publicKey: Uint8Array): KeyObject {
  assertSuite(suite);
  try {
    if (suite === SignatureSuite.SIGNATURE_SUITE_ED25519) {
      if (publicKey.length !== 32) throw new Error('Ed25519 public key must be 32 bytes');
      // noble rejects non-canonical encodings that OpenSSL might import
      ed25519.Point.fromBytes(publicKey, false);
      const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64u(publicKey) }, format: 'jwk' });
      keySuites.set(key, suite);
      return key;
    }
    // SEC1 point -> SPKI DER, parsed by OpenSSL, which checks that the point is on the curve
    // (~20x faster than decompressing with noble's BigInt arithmetic; this is the gateway's and
    // AS's hot path). Only the standard encodings are accepted: 02/03 || x, or 04 || x || y.
    const n = publicKey.length;
    const tag = publicKey[0];
    if (!((n === 33 && (tag === 0x02 || tag === 0x03)) || (n === 65 && tag === 0x04))) throw new Error('not a SEC1 point');
    const prefix = SPKI_PREFIX[suite as EcdsaSuite][n === 33 ? 0 : 1];
    const der = new Uint8Array(prefix.length + n);
    der.set(prefix);
    der.set(publicKey, prefix.length);
    const key = createPublicKey({ key: Buffer.from(der.buffer), format: 'der', type: 'spki' });
    // we know its suite: spare nodeVerify the costly asymmetricKeyDetails lookup
    keySuites.set(key, suite);
    return key;
  } catch (e) {
    if (e instanceof DivsError) throw e;
    fail('INVALID_PUBLIC_KEY', `invalid ${suiteName(suite)} public key`, e);
  }
}

/** Keys imported by {@link importPublicKeyCached}, least recently used out. */
const importedKeys = new LruMap<string, KeyObject>(4096);

/**
 * {@link importPublicKey} through a bounded cache: verifiers see the same UE and AS keys in
 * every answer (a compressed P-256 point costs ~0.1 ms to import, as much as a verification).
 * KeyObjects are immutable, so sharing one is safe. Not for one-off keys (registrations).
 */
export function importPublicKeyCached(suite: Suite, publicKey: Uint8Array): KeyObject {
  const id = `${suite}:${Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64')}`;
  let key = importedKeys.get(id);
  if (key === undefined) importedKeys.set(id, (key = importPublicKey(suite, publicKey)));
  return key;
}

const hexBytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
/** DER SubjectPublicKeyInfo headers (algorithm id-ecPublicKey + curve OID, BIT STRING) for 33/65-byte points. */
const SPKI_PREFIX: Record<EcdsaSuite, [Uint8Array, Uint8Array]> = {
  [SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256]: [
    hexBytes('3039301306072a8648ce3d020106082a8648ce3d030107032200'),
    hexBytes('3059301306072a8648ce3d020106082a8648ce3d030107034200'),
  ],
  [SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256]: [
    hexBytes('3036301006072a8648ce3d020106052b8104000a032200'),
    hexBytes('3056301006072a8648ce3d020106052b8104000a034200'),
  ],
};

/** DER-encodes one non-negative big-endian integer (ASN.1 INTEGER). */
function derInt(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  const pad = (v[0] as number) & 0x80 ? 1 : 0;
  const out = new Uint8Array(2 + pad + v.length);
  out[0] = 0x02;
  out[1] = pad + v.length;
  out.set(v, 2 + pad);
  return out;
}

/** Converts a 64-byte P1363 ECDSA signature to DER; null when it is not 64 bytes. */
export function p1363ToDer(sig: Uint8Array): Uint8Array | null {
  if (!(sig instanceof Uint8Array) || sig.length !== 64) return null;
  const r = derInt(sig.subarray(0, 32));
  const s = derInt(sig.subarray(32, 64));
  const out = new Uint8Array(2 + r.length + s.length);
  out[0] = 0x30;
  out[1] = r.length + s.length;
  out.set(r, 2);
  out.set(s, 2 + r.length);
  return out;
}

/**
 * Verifies with OpenSSL. `key` is a bare KeyObject (the `{ key, dsaEncoding }` object form is
 * ~35% slower), so P1363 signatures are converted to DER here. Never throws on bad input.
 */
export function nodeVerify(suite: Suite, key: KeyObject, msg: Uint8Array, sig: Uint8Array, encoding: SigEncoding = 'p1363'): boolean {
  try {
    const args = opensslArgs(suite, key, msg, sig, encoding);
    return args !== null && nodeVerifyRaw(args.digest, msg, key, args.sig);
  } catch {
    // OpenSSL throws on some malformed DER: attacker-controlled bytes mean "not valid"
    return false;
  }
}

/**
 * {@link nodeVerify} on libuv's thread pool: many verifications started together run on
 * several cores while the calling thread goes on. Same answers; never rejects.
 */
export function nodeVerifyAsync(suite: Suite, key: KeyObject, msg: Uint8Array, sig: Uint8Array, encoding: SigEncoding = 'p1363'): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      const args = opensslArgs(suite, key, msg, sig, encoding);
      if (args === null) resolve(false);
      else nodeVerifyRaw(args.digest, msg, key, args.sig, (err, ok) => resolve(err === null && ok));
    } catch {
      resolve(false);
    }
  });
}

/** What OpenSSL is given to verify `sig` over `msg`, or null when it cannot be valid. */
function opensslArgs(suite: Suite, key: KeyObject, msg: Uint8Array, sig: Uint8Array, encoding: SigEncoding): { digest: string | null; sig: Uint8Array } | null {
  // node:crypto would also accept strings (as UTF-8) and DataViews: noble does not, and
  // both implementations must give the same answer
  if (!(msg instanceof Uint8Array) || !(sig instanceof Uint8Array)) return null;
  // OpenSSL verifies with whatever key it is given: a P-256 key under the secp256k1 suite,
  // or an EC key with the Ed25519 suite's null digest, would otherwise verify
  if (keySuite(key) !== suite) return null;
  if (suite === SignatureSuite.SIGNATURE_SUITE_ED25519) return sig.length === 64 ? { digest: null, sig } : null;
  if (!isEcdsa(suite)) return null;
  const der = encoding === 'der' ? sig : p1363ToDer(sig);
  return der === null ? null : { digest: 'sha256', sig: der };
}

/** Signatures already verified, per public key: message digest + signature → true. */
const verifiedMemo = new WeakMap<KeyObject, Map<string, true>>();
const MEMO_PER_KEY = 8192;

/**
 * {@link nodeVerify} with a bounded memory of signatures that verified under this exact key
 * object: the same (key, message, signature) triple always gives the same answer, and
 * verifiers see the same signed objects again and again (an AS checkpoint in every answer of a
 * batch, a UE's latest endorsement on every verification run). Only successes are kept; the key
 * is SHA-256 of the message plus the signature bytes, so a changed byte anywhere misses.
 */
export function nodeVerifyMemo(suite: Suite, key: KeyObject, msg: Uint8Array, sig: Uint8Array): boolean {
  if (!(msg instanceof Uint8Array) || !(sig instanceof Uint8Array)) return false;
  let seen = verifiedMemo.get(key);
  const id = `${suite}:${nodeHash('sha256', msg, 'base64')}:${Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength).toString('base64')}`;
  if (seen?.has(id) === true) return true;
  if (!nodeVerify(suite, key, msg, sig)) return false;
  if (seen === undefined) verifiedMemo.set(key, (seen = new Map()));
  if (seen.size >= MEMO_PER_KEY) seen.delete(seen.keys().next().value as string);
  seen.set(id, true);
  return true;
}

/**
 * Signs with a node private KeyObject (AS, gateway); ECDSA output is P1363. Throws
 * INVALID_ARGUMENT for a missing/public key or non-byte message, SUITE_MISMATCH when the key
 * belongs to another suite.
 */
export function nodeSign(suite: Suite, key: KeyObject, msg: Uint8Array): Uint8Array {
  assertSuite(suite);
  if (!(key instanceof KeyObject) || key.type !== 'private') fail('INVALID_ARGUMENT', 'nodeSign: expected a private KeyObject');
  abytes(msg, 'msg');
  const keys = keySuite(key);
  if (keys !== suite) fail('SUITE_MISMATCH', `nodeSign: key is ${keys === null ? 'of no supported suite' : suiteName(keys)}, not ${suiteName(suite)}`);
  if (suite === SignatureSuite.SIGNATURE_SUITE_ED25519) return new Uint8Array(nodeSignRaw(null, msg, key));
  // signed with the bare KeyObject (DER out) and converted here: the `{ key, dsaEncoding }`
  // object form costs ~60 µs more per signature in Node 24 (99 µs against 37 µs for P-256)
  return derToP1363(nodeSignRaw('sha256', msg, key));
}

/** ECDSA-Sig-Value DER (as OpenSSL produces it) → r || s, 32 bytes each. */
export function derToP1363(der: Uint8Array): Uint8Array {
  // SEQUENCE (short length: at most 2 × 35 bytes) { INTEGER r, INTEGER s }
  const bad = (): never => fail('INTERNAL', 'ECDSA signature: unexpected DER encoding');
  if (der.length < 8 || der[0] !== 0x30 || der[1] !== der.length - 2) bad();
  const out = new Uint8Array(64);
  let at = 2;
  for (let k = 0; k < 2; k++) {
    if (der[at] !== 0x02) bad();
    const len = der[at + 1] as number;
    let start = at + 2;
    let n = len;
    // drop the sign byte(s) DER adds in front of a high bit
    while (n > 32 && der[start] === 0) {
      start++;
      n--;
    }
    if (n > 32 || n < 1 || at + 2 + len > der.length) bad();
    out.set(der.subarray(start, start + n), 32 * k + (32 - n));
    at += 2 + len;
  }
  if (at !== der.length) bad();
  return out;
}

/** Imports a PKCS#8 PEM/DER private key. */
export function importPrivateKey(pem: string | Uint8Array): KeyObject {
  try {
    return typeof pem === 'string' ? createPrivateKey(pem) : createPrivateKey({ key: Buffer.from(pem), format: 'der', type: 'pkcs8' });
  } catch (e) {
    fail('INVALID_ARGUMENT', 'invalid private key', e);
  }
}

// Suite of each KeyObject seen, cached: `asymmetricKeyDetails` builds a fresh object on every
// read (~1 µs), and nodeVerify checks the key's suite on every call.
const keySuites = new WeakMap<KeyObject, Suite | null>();

/** Suite of a public or private KeyObject; null for anything else (never throws). */
function keySuite(key: unknown): Suite | null {
  if (!(key instanceof KeyObject)) return null;
  let s = keySuites.get(key);
  if (s === undefined) {
    s = null;
    if (key.asymmetricKeyType === 'ed25519') s = SignatureSuite.SIGNATURE_SUITE_ED25519;
    else if (key.asymmetricKeyType === 'ec') {
      const c = key.asymmetricKeyDetails?.namedCurve;
      if (c === 'prime256v1' || c === 'P-256') s = SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;
      else if (c === 'secp256k1') s = SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256;
    }
    keySuites.set(key, s);
  }
  return s;
}

/**
 * Suite of a node key object (for AS/gateway keys loaded from PEM). Throws INVALID_ARGUMENT for
 * a non-KeyObject, UNSUPPORTED_SUITE for a key of another type or curve.
 */
export function suiteOfKeyObject(key: KeyObject): Suite {
  if (!(key instanceof KeyObject)) fail('INVALID_ARGUMENT', 'expected a KeyObject');
  const s = keySuite(key);
  if (s === null) {
    const what = key.asymmetricKeyType === 'ec' ? `ec ${key.asymmetricKeyDetails?.namedCurve ?? '?'}` : (key.asymmetricKeyType ?? key.type);
    fail('UNSUPPORTED_SUITE', `unsupported key type ${what}`);
  }
  return s;
}

// raw public keys per KeyObject: a JWK export costs ~0.1 ms and checkpoint key IDs and
// signers ask for the same key's bytes on every note they sign or verify
const rawKeys = new WeakMap<KeyObject, Uint8Array>();

/** Raw public key bytes (compressed SEC1 / raw Ed25519) of a node key object. */
export function rawPublicKey(key: KeyObject): Uint8Array {
  suiteOfKeyObject(key);
  let raw = rawKeys.get(key);
  if (raw === undefined) {
    raw = exportRawPublicKey(key);
    rawKeys.set(key, raw);
  }
  return raw.slice();
}

function exportRawPublicKey(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = pub.export({ format: 'jwk' });
  const x = new Uint8Array(Buffer.from(jwk.x ?? '', 'base64url'));
  if (jwk.kty === 'OKP') return x;
  const y = new Uint8Array(Buffer.from(jwk.y ?? '', 'base64url'));
  const out = new Uint8Array(33);
  out[0] = ((y[31] as number) & 1) === 1 ? 0x03 : 0x02;
  out.set(x, 1);
  return out;
}

// ---------------------------------------------------------------- domain-separated helpers

/** Anything that signs: a UE key store, the AS key, the gateway key. */
export interface Signer {
  readonly suite: Suite;
  readonly publicKey: Uint8Array;
  /** Signs exactly `msg`. Callers pass PAE-encoded bytes (see {@link signDomain}). */
  sign(msg: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

/** Signs `payload` under a domain type (PAE over exact bytes). */
export function signDomain(signer: Signer, type: string, payload: Uint8Array): Uint8Array | Promise<Uint8Array> {
  return signer.sign(pae(type, payload));
}

/** Verifies a domain-separated signature with OpenSSL. */
export function verifyDomain(suite: Suite, key: KeyObject, type: string, payload: Uint8Array, sig: Uint8Array): boolean {
  // pae would frame a string's length but copy no bytes of it: never let one through
  if (!(payload instanceof Uint8Array)) return false;
  return nodeVerify(suite, key, pae(type, payload), sig);
}

/**
 * Signatures this process made, remembered for a while: a signature the process made itself
 * over exactly these bytes verifies by construction, so a component that must check
 * signatures it may have produced (the consortium ledger checking an AS's own endorsements
 * before proposing them) can skip OpenSSL for those. Bounded (least recently used go first):
 * a forgotten one is only verified again. Keyed by the signature (ECDSA and Ed25519
 * signatures of different messages differ) and checked against the SHA-256 of the message.
 */
export class OwnSignatures {
  readonly #made: LruMap<string, Buffer>;

  /** @param max signatures remembered (default 32,768: more than one block's worth) */
  constructor(max = 32_768) {
    this.#made = new LruMap(max);
  }

  /** Records that this process signed exactly `msg` with `sig`. */
  note(msg: Uint8Array, sig: Uint8Array): void {
    this.#made.set(Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength).toString('latin1'), nodeHash('sha256', msg, 'buffer'));
  }

  /** True when {@link note} recorded exactly this message and signature (and they are still remembered). */
  made(msg: Uint8Array, sig: Uint8Array): boolean {
    const digest = this.#made.get(Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength).toString('latin1'));
    return digest !== undefined && digest.equals(nodeHash('sha256', msg, 'buffer'));
  }
}

/**
 * A signer over a node private key (AS and gateway keys, held server-side); with `own`, each
 * signature it makes is noted there.
 */
export function nodeSigner(key: KeyObject, own?: OwnSignatures): Signer {
  const suite = suiteOfKeyObject(key);
  const publicKey = rawPublicKey(key);
  return {
    suite,
    publicKey,
    sign: (msg) => {
      const sig = nodeSign(suite, key, msg);
      own?.note(msg, sig);
      return sig;
    },
  };
}
