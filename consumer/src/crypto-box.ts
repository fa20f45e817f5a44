/**
 * @module crypto-box
 * Public-key encryption of data packages to one recipient [SC1-1] ("the consumer receives shared
 * data, plaintext or ciphertext"), ECIES-style on node:crypto (OpenSSL), in the format fixed by
 * `proto/divs/v1/package.proto` (EnvelopeHeader):
 *
 * 1. a fresh ephemeral key pair on the recipient key's curve (X25519 or P-256);
 *    Z = ECDH(ephemeral private, recipient public);
 * 2. K = HKDF-SHA256(IKM = Z, salt = empty,
 *    info = PAE("divs/package-envelope", ephemeral public || recipient SPKI DER), 32 bytes);
 * 3. AES-256-GCM under K with a random 12-byte nonce, the exact header bytes as AAD, the 16-byte
 *    tag appended to the ciphertext.
 *
 * Binding the recipient SPKI into the key derivation and the whole header into the AAD means a
 * ciphertext cannot be re-targeted, and no header field (content type, nonce, key id) can be
 * swapped without the tag failing. Every failure to open is DECRYPTION_FAILED, with no detail
 * that would help an attacker beyond "wrong key" vs "damaged".
 */
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, KeyObject, randomBytes } from 'node:crypto';
import { EncryptedPackage, EnvelopeHeader, EnvelopeKem } from '../../proto/gen/divs/v1/package.ts';
import { concat, equalBytes, pae, sha256 } from '../../protocol/src/bytes.ts';
import { fail } from '../../protocol/src/errors.ts';

/** PAE type of the HKDF info. */
export const ENVELOPE_DOMAIN = 'divs/package-envelope';
export const ENVELOPE_FORMAT_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

/** A key as accepted here: a KeyObject, PEM text (key or, for public keys, a certificate) or DER (SPKI / PKCS#8). */
export type KeyInput = KeyObject | string | Uint8Array;

/** The key agreement a key supports; INVALID_ARGUMENT for any other key. */
function kemOf(key: KeyObject): EnvelopeKem {
  if (key.asymmetricKeyType === 'x25519') return EnvelopeKem.ENVELOPE_KEM_X25519_HKDF_SHA256;
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return EnvelopeKem.ENVELOPE_KEM_P256_HKDF_SHA256;
  fail('INVALID_ARGUMENT', `recipient key must be X25519 or P-256, not ${key.asymmetricKeyType ?? key.type}`);
}

/** Loads a recipient public key (a private key gives its public half). INVALID_ARGUMENT when unusable. */
export function loadRecipientPublicKey(key: KeyInput): KeyObject {
  let k: KeyObject;
  try {
    if (key instanceof KeyObject) k = key.type === 'private' ? createPublicKey(key) : key;
    else if (typeof key === 'string') k = createPublicKey(key);
    else if (key instanceof Uint8Array) k = createPublicKey({ key: Buffer.from(key), format: 'der', type: 'spki' });
    else fail('INVALID_ARGUMENT', 'recipient key: expected a KeyObject, PEM or SPKI DER');
  } catch (e) {
    fail('INVALID_ARGUMENT', 'recipient key: not a public key', e);
  }
  if (k.type !== 'public') fail('INVALID_ARGUMENT', 'recipient key: not a public key');
  kemOf(k);
  return k;
}

/** Loads a recipient private key (PKCS#8 / SEC1 PEM, PKCS#8 DER, KeyObject). INVALID_ARGUMENT when unusable. */
export function loadRecipientPrivateKey(key: KeyInput): KeyObject {
  let k: KeyObject;
  try {
    if (key instanceof KeyObject) k = key;
    else if (typeof key === 'string') k = createPrivateKey(key);
    else if (key instanceof Uint8Array) k = createPrivateKey({ key: Buffer.from(key), format: 'der', type: 'pkcs8' });
    else fail('INVALID_ARGUMENT', 'private key: expected a KeyObject, PEM or PKCS#8 DER');
  } catch (e) {
    fail('INVALID_ARGUMENT', 'private key: not a private key', e);
  }
  if (k.type !== 'private') fail('INVALID_ARGUMENT', 'private key: not a private key');
  kemOf(k);
  return k;
}

/** SHA-256 of a public key's SubjectPublicKeyInfo DER: the envelope's recipient key ID. */
export function recipientKeyId(publicKey: KeyObject): Uint8Array {
  return sha256(spkiOf(publicKey));
}

function spkiOf(k: KeyObject): Uint8Array {
  return new Uint8Array(k.export({ type: 'spki', format: 'der' }));
}

/** Raw public key: 32 bytes for X25519, the 65-byte uncompressed point for P-256. */
function rawPublic(k: KeyObject): Uint8Array {
  const jwk = k.export({ format: 'jwk' });
  const x = Buffer.from(jwk.x ?? '', 'base64url');
  if (jwk.kty === 'OKP') return new Uint8Array(x);
  return concat(new Uint8Array([0x04]), new Uint8Array(x), new Uint8Array(Buffer.from(jwk.y ?? '', 'base64url')));
}

/** Imports an ephemeral public key from the header; undefined when malformed or off the curve. */
function importEphemeral(kem: EnvelopeKem, raw: Uint8Array): KeyObject | undefined {
  try {
    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
    if (kem === EnvelopeKem.ENVELOPE_KEM_X25519_HKDF_SHA256) {
      if (raw.length !== 32) return undefined;
      return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64(raw) }, format: 'jwk' });
    }
    if (raw.length !== 65 || raw[0] !== 0x04) return undefined;
    // OpenSSL refuses points that are not on the curve (invalid-curve attacks)
    return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b64(raw.subarray(1, 33)), y: b64(raw.subarray(33)) }, format: 'jwk' });
  } catch {
    return undefined;
  }
}

/** ECDH + HKDF; undefined when the agreement fails (low-order X25519 point, bad key). */
function deriveKey(privateKey: KeyObject, publicKey: KeyObject, ephemeralRaw: Uint8Array, recipientSpki: Uint8Array): Uint8Array | undefined {
  let z: Uint8Array;
  try {
    z = new Uint8Array(diffieHellman({ privateKey, publicKey }));
  } catch {
    return undefined;
  }
  // RFC 7748 §6.1: an all-zero X25519 output means a low-order point; refuse it
  if (z.every((b) => b === 0)) return undefined;
  const info = pae(ENVELOPE_DOMAIN, concat(ephemeralRaw, recipientSpki));
  return new Uint8Array(hkdfSync('sha256', z, new Uint8Array(0), info, KEY_BYTES));
}

/**
 * Encrypts `plaintext` to the recipient's X25519 or P-256 public key.
 * @example
 * const env = seal(DataPackage.encode(pkg).finish(), readFileSync('bob.pub.pem', 'utf8'), { contentType: PACKAGE_MEDIA_TYPE });
 */
export function seal(plaintext: Uint8Array, recipientPublicKey: KeyInput, opts: { contentType: string; createdAtMs?: number }): EncryptedPackage {
  if (!(plaintext instanceof Uint8Array)) fail('INVALID_ARGUMENT', 'seal: plaintext must be bytes');
  const recipient = loadRecipientPublicKey(recipientPublicKey);
  const kem = kemOf(recipient);
  const eph = kem === EnvelopeKem.ENVELOPE_KEM_X25519_HKDF_SHA256 ? generateKeyPairSync('x25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ephemeralPublicKey = rawPublic(eph.publicKey);
  const spki = spkiOf(recipient);
  const key = deriveKey(eph.privateKey, recipient, ephemeralPublicKey, spki);
  if (!key) fail('INVALID_ARGUMENT', 'seal: key agreement with the recipient key failed');
  const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
  const header = EnvelopeHeader.encode({
    formatVersion: ENVELOPE_FORMAT_VERSION,
    kem,
    ephemeralPublicKey,
    recipientKeyId: sha256(spki),
    nonce,
    contentType: opts.contentType,
    createdAtMs: opts.createdAtMs ?? Date.now(),
  }).finish();
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(header);
  const ciphertext = concat(new Uint8Array(cipher.update(plaintext)), new Uint8Array(cipher.final()), new Uint8Array(cipher.getAuthTag()));
  return { header, ciphertext };
}

/**
 * Decrypts an envelope with the recipient's private key. DECRYPTION_FAILED when it was made for
 * another key, the header does not match `contentType`, or the ciphertext or header was altered.
 */
export function open(envelope: EncryptedPackage, recipientPrivateKey: KeyInput, contentType?: string): Uint8Array {
  const priv = loadRecipientPrivateKey(recipientPrivateKey);
  if (typeof envelope !== 'object' || envelope === null || !(envelope.header instanceof Uint8Array) || !(envelope.ciphertext instanceof Uint8Array)) {
    fail('DECRYPTION_FAILED', 'not an encrypted package');
  }
  let h: EnvelopeHeader;
  try {
    h = EnvelopeHeader.decode(envelope.header);
  } catch (e) {
    fail('DECRYPTION_FAILED', 'envelope header does not decode', e);
  }
  if (h.formatVersion !== ENVELOPE_FORMAT_VERSION) fail('DECRYPTION_FAILED', `unsupported envelope format version ${h.formatVersion}`);
  if (contentType !== undefined && h.contentType !== contentType) fail('DECRYPTION_FAILED', `envelope holds ${h.contentType || 'no content type'}, not ${contentType}`);
  const pub = createPublicKey(priv);
  const spki = spkiOf(pub);
  if (h.kem !== kemOf(priv)) fail('DECRYPTION_FAILED', 'the package was encrypted for another kind of key');
  if (!equalBytes(h.recipientKeyId, sha256(spki))) fail('DECRYPTION_FAILED', 'the package was encrypted for another recipient key');
  if (h.nonce.length !== NONCE_BYTES || envelope.ciphertext.length < TAG_BYTES) fail('DECRYPTION_FAILED', 'malformed envelope');
  const eph = importEphemeral(h.kem, h.ephemeralPublicKey);
  const key = eph && deriveKey(priv, eph, h.ephemeralPublicKey, spki);
  if (!key) fail('DECRYPTION_FAILED', 'malformed ephemeral key');
  const body = envelope.ciphertext.subarray(0, envelope.ciphertext.length - TAG_BYTES);
  const tag = envelope.ciphertext.subarray(envelope.ciphertext.length - TAG_BYTES);
  try {
    const d = createDecipheriv('aes-256-gcm', key, h.nonce, { authTagLength: TAG_BYTES });
    d.setAAD(envelope.header);
    d.setAuthTag(tag);
    return concat(new Uint8Array(d.update(body)), new Uint8Array(d.final()));
  } catch (e) {
    fail('DECRYPTION_FAILED', 'ciphertext or header was altered (authentication tag mismatch)', e);
  }
}
