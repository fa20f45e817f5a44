/**
 * @module ue/keystore
 * The UE's trusted environment for keys [REG-2] [GEN-3] [VER-2]: a {@link KeyStore} generates a
 * key pair under an alias, hands out the public key, and signs inside itself; the private key
 * never leaves it. Everything above (registration, record signing, RP-ud authentication) talks
 * only to this interface, so a real secure element replaces the software one without changes.
 *
 * Implementations:
 * - {@link SoftwareKeyStore}: keys in process memory (closures, not reachable from the object),
 *   signing with `@noble/curves`; optionally persisted to a file encrypted at rest (scrypt +
 *   AES-256-GCM, written atomically with mode 0600). For devices without a secure element,
 *   simulators and tests.
 * - `WorkerKeyStore` (worker-keystore.ts): the same store inside a worker thread, reached only by
 *   messages, the way a SIM applet is reached by APDUs; also spreads signing over cores.
 *
 * Where a hardware store plugs in (not shipped; same interface, nothing else changes):
 * - **PKCS#11** (HSM, TPM via tpm2-pkcs11, TEE token): `generate` = `C_GenerateKeyPair` with
 *   `CKM_EC_KEY_PAIR_GEN` (P-256 / secp256k1 `CKA_EC_PARAMS`) or `CKM_EC_EDWARDS_KEY_PAIR_GEN`,
 *   private template `CKA_TOKEN=true, CKA_SENSITIVE=true, CKA_EXTRACTABLE=false, CKA_SIGN=true,
 *   CKA_LABEL=alias`; `publicKey` = read `CKA_EC_POINT` of the public object (unwrap the DER
 *   OCTET STRING, compress to SEC1); `sign` = `C_Sign` with `CKM_ECDSA_SHA256` (or `CKM_ECDSA`
 *   over SHA-256(msg)), whose output is already `r || s` (P1363), or `CKM_EDDSA` for Ed25519;
 *   `has` / `delete` = `C_FindObjects` / `C_DestroyObject` by label. A binding such as
 *   `pkcs11js` or `graphene-pk11` would be the one new dependency.
 * - **GSMA IoT SAFE / SIM applet**: the same four operations as APDUs to the applet over the
 *   modem (`AT+CSIM`): key-pair generation in a key slot, read public key, compute signature.
 * Note that ECDSA over SHA-256 is computed on SHA-256 of the exact bytes the callers pass
 * (the PAE encoding), whichever store signs.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { utf8 } from '../../protocol/src/bytes.ts';
import { assertSuite, generateSecretKey, nobleSign, publicKeyOf, type Signer, type Suite } from '../../protocol/src/suites.ts';
import { SerialQueue, atomicWriteFile, readFileIfExists } from './util.ts';

/** A public key with its suite (the proto `PublicKey`). */
export interface PublicKeyInfo {
  suite: Suite;
  /** Compressed SEC1 point for ECDSA, raw 32 bytes for Ed25519. */
  key: Uint8Array;
}

/**
 * A trusted environment holding UE private keys [REG-2]. Keys are named by alias; the private
 * key is generated inside and never leaves. Every operation is async because real secure
 * elements are reached over a bus or a modem.
 */
export interface KeyStore {
  /** Implementation name for logs ("software", "worker", "pkcs11", ...). */
  readonly kind: string;
  /** Generates a key pair under `alias`; KEY_EXISTS when the alias is taken. */
  generate(alias: string, suite: Suite): Promise<PublicKeyInfo>;
  /** Public key of `alias`; KEY_NOT_FOUND when there is none. */
  publicKey(alias: string): Promise<PublicKeyInfo>;
  /**
   * Signs exactly `msg` with the key of `alias` [VER-2]: ECDSA over SHA-256(msg) as P1363
   * `r || s`, or Ed25519 over msg. Callers pass PAE-encoded bytes.
   */
  sign(alias: string, msg: Uint8Array): Promise<Uint8Array>;
  has(alias: string): Promise<boolean>;
  /** Destroys the key of `alias`; false when there was none. */
  delete(alias: string): Promise<boolean>;
}

const ALIAS = /^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$/;

/** Checks an alias: 1-128 characters of `A-Z a-z 0-9 . _ : / @ -`, starting alphanumeric. */
export function validateAlias(alias: unknown): string {
  if (typeof alias !== 'string' || !ALIAS.test(alias)) {
    fail('INVALID_ARGUMENT', 'alias: 1-128 characters of A-Z a-z 0-9 . _ : / @ -, starting with a letter or digit');
  }
  return alias;
}

/** A protocol {@link Signer} over one key of a store (for code written against `Signer`). */
export async function keyStoreSigner(store: KeyStore, alias: string): Promise<Signer> {
  const pk = await store.publicKey(alias);
  return { suite: pk.suite, publicKey: pk.key, sign: (msg) => store.sign(alias, msg) };
}

// ---------------------------------------------------------------- software key store

/**
 * One key: the secret lives only in this closure. The returned object has no property holding
 * it, so neither JSON.stringify, util.inspect nor a debugger walk over the store reaches it.
 */
interface KeyEntry {
  readonly suite: Suite;
  readonly publicKey: Uint8Array;
  sign(msg: Uint8Array): Uint8Array;
  /** Copies the secret into `out` at `offset` (for sealing the store file only). */
  writeSecret(out: Uint8Array, offset: number): void;
  wipe(): void;
}

function makeEntry(suite: Suite, secret: Uint8Array): KeyEntry {
  const sk = new Uint8Array(secret);
  const publicKey = publicKeyOf(suite, sk);
  let wiped = false;
  return Object.freeze({
    suite,
    publicKey,
    sign(msg: Uint8Array): Uint8Array {
      if (wiped) fail('KEY_NOT_FOUND', 'key was deleted');
      return nobleSign(suite, sk, msg);
    },
    writeSecret(out: Uint8Array, offset: number): void {
      out.set(sk, offset);
    },
    wipe(): void {
      sk.fill(0);
      wiped = true;
    },
  });
}

/** scrypt parameters of a store file. */
interface KdfParams {
  n: number;
  r: number;
  p: number;
  salt: Uint8Array;
}

/** Keys derived from the passphrase: AES-256-GCM key and passphrase-check MAC key. */
interface FileKeys {
  enc: Uint8Array;
  mac: Uint8Array;
}

export interface SoftwareKeyStoreOptions {
  /**
   * scrypt cost N for a new file or a passphrase change (power of two, 2^10..2^20; default
   * 2^15: 32 MiB and ~0.1 s here). Lower only for tests.
   */
  scryptN?: number;
  /** Save after every generate/import/delete (default true). Turn off for bulk key creation, then call save(). */
  autosave?: boolean;
  /** Create the file when it does not exist (default true). */
  create?: boolean;
}

const FILE_FORMAT = 'divs-keystore';
const FILE_VERSION = 1;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
const DEFAULT_SCRYPT_N = 2 ** 15;
const MIN_SCRYPT_N = 2 ** 10;
const MAX_SCRYPT_N = 2 ** 20;
const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const PLAINTEXT_MAGIC = utf8('DKS1');
/** Largest store file read (a million keys); bigger is not ours. */
const MAX_FILE_BYTES = 256 * 1024 * 1024;

function b64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

function unb64(v: unknown, label: string, len?: number): Uint8Array {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) fail('KEYSTORE_TAMPERED', `key store file: ${label} is not base64`);
  const out = new Uint8Array(Buffer.from(v, 'base64'));
  if (len !== undefined && out.length !== len) fail('KEYSTORE_TAMPERED', `key store file: ${label} has the wrong length`);
  return out;
}

function passphraseBytes(p: string | Uint8Array): Uint8Array {
  const b = typeof p === 'string' ? utf8(p.normalize('NFC')) : p;
  if (!(b instanceof Uint8Array) || b.length === 0) fail('INVALID_ARGUMENT', 'passphrase: must be non-empty');
  return b;
}

function checkScryptN(n: unknown, code: 'INVALID_ARGUMENT' | 'KEYSTORE_TAMPERED'): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < MIN_SCRYPT_N || n > MAX_SCRYPT_N || (n & (n - 1)) !== 0) {
    fail(code, `scrypt N must be a power of two from 2^10 to 2^20`);
  }
  return n;
}

function deriveKeys(passphrase: Uint8Array, kdf: KdfParams): Promise<FileKeys> {
  return new Promise((resolve, reject) => {
    // 128 * N * r bytes of memory; allow exactly what the parameters need (bounded above)
    const maxmem = 256 * kdf.n * kdf.r + 1024 * 1024;
    scrypt(passphrase, kdf.salt, 64, { N: kdf.n, r: kdf.r, p: kdf.p, maxmem }, (err, out) => {
      if (err) return reject(err);
      const keys = { enc: new Uint8Array(out.subarray(0, 32)), mac: new Uint8Array(out.subarray(32, 64)) };
      out.fill(0);
      resolve(keys);
    });
  });
}

/** The header every file binds: the MAC check and the AEAD both cover it. */
function headerOf(kdf: KdfParams): Uint8Array {
  return utf8(`${FILE_FORMAT}/v${FILE_VERSION} scrypt n=${kdf.n} r=${kdf.r} p=${kdf.p} salt=${b64(kdf.salt)} aes-256-gcm`);
}

function checkValue(keys: FileKeys, header: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', keys.mac).update('divs/keystore-check').update(header).digest());
}

/**
 * Software key store [REG-2] [GEN-3]. In memory by default; {@link SoftwareKeyStore.open} binds it
 * to a file encrypted at rest.
 *
 * File format (JSON, mode 0600): format/version, scrypt parameters and salt, a passphrase check
 * `HMAC-SHA256(macKey, header)`, and the AES-256-GCM ciphertext (IV, tag, header as AAD) of a
 * length-prefixed list of (alias, suite, secret key). scrypt derives 64 bytes: the AES key and the
 * MAC key. A wrong passphrase fails the check (KEYSTORE_WRONG_PASSPHRASE); with the right one, any
 * changed byte of the ciphertext, IV or tag fails the AEAD (KEYSTORE_TAMPERED); a changed header
 * changes the derived keys, so it reads as a wrong passphrase. Nothing undecrypted is ever used.
 * One process owns a file at a time.
 *
 * `new SoftwareKeyStore()` is an empty in-memory store (nothing persisted).
 *
 * @example
 * const ks = await SoftwareKeyStore.open('/var/lib/divs/ue.keys', process.env.UE_PASSPHRASE!);
 * const pk = await ks.generate('ue', SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256);
 * const sig = await ks.sign('ue', pae(Domain.record, body));
 */
export class SoftwareKeyStore implements KeyStore {
  readonly #keys = new Map<string, KeyEntry>();
  readonly #queue = new SerialQueue();
  #path: string | undefined;
  #kdf: KdfParams | undefined;
  #fileKeys: FileKeys | undefined;
  #autosave = true;
  #scryptN = DEFAULT_SCRYPT_N;
  #closed = false;

  get kind(): string {
    return 'software';
  }

  /**
   * Opens (or creates) a store file encrypted with `passphrase`. KEYSTORE_WRONG_PASSPHRASE when
   * the passphrase does not match, KEYSTORE_TAMPERED when the file was altered or is not a key
   * store, STORAGE_FAILED when it cannot be read or written.
   */
  static async open(path: string, passphrase: string | Uint8Array, opts: SoftwareKeyStoreOptions = {}): Promise<SoftwareKeyStore> {
    if (typeof path !== 'string' || path.length === 0) fail('INVALID_ARGUMENT', 'path: required');
    const pass = passphraseBytes(passphrase);
    const store = new SoftwareKeyStore();
    store.#path = path;
    store.#autosave = opts.autosave ?? true;
    store.#scryptN = checkScryptN(opts.scryptN ?? DEFAULT_SCRYPT_N, 'INVALID_ARGUMENT');
    const raw = await readFileIfExists(path);
    if (raw === undefined) {
      if (opts.create === false) fail('STORAGE_FAILED', `no key store at ${path}`);
      await store.#rekey(pass);
      await store.#save();
      return store;
    }
    await store.#load(raw, pass);
    // without an explicit cost, a passphrase change keeps the file's
    if (opts.scryptN === undefined && store.#kdf) store.#scryptN = store.#kdf.n;
    return store;
  }

  /** The backing file, when there is one. */
  get path(): string | undefined {
    return this.#path;
  }

  /** Number of keys held. */
  get size(): number {
    return this.#keys.size;
  }

  /** Aliases of the keys held (not secret). */
  aliases(): string[] {
    return [...this.#keys.keys()];
  }

  async generate(alias: string, suite: Suite): Promise<PublicKeyInfo> {
    validateAlias(alias);
    assertSuite(suite);
    return this.#queue.run(async () => {
      this.#open();
      if (this.#keys.has(alias)) fail('KEY_EXISTS', `a key named ${alias} exists`);
      const sk = generateSecretKey(suite);
      try {
        return await this.#add(alias, makeEntry(suite, sk));
      } finally {
        sk.fill(0);
      }
    });
  }

  /**
   * Installs an existing secret key (factory provisioning, migration from another store). The
   * store keeps its own copy: the caller should wipe `secretKey` afterwards.
   */
  async importKey(alias: string, suite: Suite, secretKey: Uint8Array): Promise<PublicKeyInfo> {
    validateAlias(alias);
    assertSuite(suite);
    return this.#queue.run(async () => {
      this.#open();
      if (this.#keys.has(alias)) fail('KEY_EXISTS', `a key named ${alias} exists`);
      return this.#add(alias, makeEntry(suite, secretKey));
    });
  }

  async publicKey(alias: string): Promise<PublicKeyInfo> {
    const e = this.#entry(alias);
    return { suite: e.suite, key: new Uint8Array(e.publicKey) };
  }

  async sign(alias: string, msg: Uint8Array): Promise<Uint8Array> {
    if (!(msg instanceof Uint8Array)) fail('INVALID_ARGUMENT', 'msg: expected bytes');
    return this.#entry(alias).sign(msg);
  }

  async has(alias: string): Promise<boolean> {
    return typeof alias === 'string' && this.#keys.has(alias);
  }

  async delete(alias: string): Promise<boolean> {
    validateAlias(alias);
    return this.#queue.run(async () => {
      this.#open();
      const e = this.#keys.get(alias);
      if (!e) return false;
      this.#keys.delete(alias);
      try {
        if (this.#autosave) await this.#save();
      } catch (err) {
        // the file still holds the key: keep it in memory too, so memory and file agree
        this.#keys.set(alias, e);
        throw err;
      }
      e.wipe();
      return true;
    });
  }

  /** Writes the file now (after bulk changes with autosave off). No-op for an in-memory store. */
  async save(): Promise<void> {
    return this.#queue.run(async () => {
      this.#open();
      await this.#save();
    });
  }

  /** Re-encrypts the file under a new passphrase (new salt, current scrypt cost). */
  async changePassphrase(passphrase: string | Uint8Array): Promise<void> {
    const pass = passphraseBytes(passphrase);
    return this.#queue.run(async () => {
      this.#open();
      if (this.#path === undefined) fail('INVALID_ARGUMENT', 'an in-memory key store has no passphrase');
      const old = { kdf: this.#kdf, keys: this.#fileKeys };
      await this.#rekey(pass);
      try {
        await this.#save();
      } catch (e) {
        this.#kdf = old.kdf;
        this.#fileKeys = old.keys;
        throw e;
      }
    });
  }

  /** Wipes every secret and derived file key from memory; the store is unusable afterwards. */
  close(): void {
    for (const e of this.#keys.values()) e.wipe();
    this.#keys.clear();
    this.#fileKeys?.enc.fill(0);
    this.#fileKeys?.mac.fill(0);
    this.#fileKeys = undefined;
    this.#closed = true;
  }

  /** What JSON.stringify shows: never key material. */
  toJSON(): { kind: string; keys: number; path?: string } {
    return { kind: this.kind, keys: this.#keys.size, ...(this.#path ? { path: this.#path } : {}) };
  }

  /** What util.inspect / console.log show: never key material. */
  [inspect.custom](): string {
    return `SoftwareKeyStore { keys: ${this.#keys.size}${this.#path ? `, path: ${JSON.stringify(this.#path)}` : ''} }`;
  }

  // ---------------------------------------------------------------- internals

  #open(): void {
    if (this.#closed) fail('UNAVAILABLE', 'key store is closed');
  }

  #entry(alias: string): KeyEntry {
    this.#open();
    const e = typeof alias === 'string' ? this.#keys.get(alias) : undefined;
    if (!e) fail('KEY_NOT_FOUND', `no key named ${String(alias)}`);
    return e;
  }

  async #add(alias: string, entry: KeyEntry): Promise<PublicKeyInfo> {
    this.#keys.set(alias, entry);
    try {
      if (this.#autosave) await this.#save();
    } catch (e) {
      // a key that is not on disk must not be handed out: it would be lost on restart
      this.#keys.delete(alias);
      entry.wipe();
      throw e;
    }
    return { suite: entry.suite, key: new Uint8Array(entry.publicKey) };
  }

  async #rekey(pass: Uint8Array): Promise<void> {
    const kdf = { n: this.#scryptN, r: SCRYPT_R, p: SCRYPT_P, salt: new Uint8Array(randomBytes(SALT_BYTES)) };
    this.#fileKeys = await deriveKeys(pass, kdf);
    this.#kdf = kdf;
  }

  /** Serialises the secrets into a plaintext buffer the caller must wipe. */
  #plaintext(): Uint8Array {
    const entries = [...this.#keys.entries()].map(([alias, e]) => ({ alias: utf8(alias), e }));
    let n = PLAINTEXT_MAGIC.length + 4;
    for (const { alias } of entries) n += 2 + alias.length + 1 + 1 + 32;
    const out = new Uint8Array(n);
    const dv = new DataView(out.buffer);
    out.set(PLAINTEXT_MAGIC, 0);
    let o = PLAINTEXT_MAGIC.length;
    dv.setUint32(o, entries.length);
    o += 4;
    for (const { alias, e } of entries) {
      dv.setUint16(o, alias.length);
      out.set(alias, o + 2);
      o += 2 + alias.length;
      out[o++] = e.suite;
      out[o++] = 32;
      e.writeSecret(out, o);
      o += 32;
    }
    return out;
  }

  async #save(): Promise<void> {
    if (this.#path === undefined) return;
    const kdf = this.#kdf as KdfParams;
    const keys = this.#fileKeys as FileKeys;
    const header = headerOf(kdf);
    const iv = new Uint8Array(randomBytes(IV_BYTES));
    const plain = this.#plaintext();
    let data: Buffer;
    let tag: Buffer;
    try {
      const c = createCipheriv('aes-256-gcm', keys.enc, iv);
      c.setAAD(header);
      data = Buffer.concat([c.update(plain), c.final()]);
      tag = c.getAuthTag();
    } finally {
      plain.fill(0);
    }
    const file = {
      format: FILE_FORMAT,
      version: FILE_VERSION,
      kdf: { name: 'scrypt', n: kdf.n, r: kdf.r, p: kdf.p, salt: b64(kdf.salt) },
      check: b64(checkValue(keys, header)),
      cipher: { name: 'aes-256-gcm', iv: b64(iv), tag: b64(tag) },
      data: data.toString('base64'),
    };
    await atomicWriteFile(this.#path, utf8(JSON.stringify(file)), 0o600);
  }

  async #load(raw: Uint8Array, pass: Uint8Array): Promise<void> {
    if (raw.length > MAX_FILE_BYTES) fail('KEYSTORE_TAMPERED', 'key store file is too large');
    let f: Record<string, unknown>;
    try {
      f = JSON.parse(Buffer.from(raw).toString('utf8')) as Record<string, unknown>;
    } catch (e) {
      fail('KEYSTORE_TAMPERED', 'key store file is not valid JSON', e);
    }
    if (typeof f !== 'object' || f === null || f.format !== FILE_FORMAT) fail('KEYSTORE_TAMPERED', 'not a DIVS key store file');
    if (f.version !== FILE_VERSION) fail('KEYSTORE_TAMPERED', `unsupported key store version ${String(f.version)}`);
    const k = f.kdf as Record<string, unknown> | null;
    const c = f.cipher as Record<string, unknown> | null;
    if (typeof k !== 'object' || k === null || k.name !== 'scrypt') fail('KEYSTORE_TAMPERED', 'key store file: kdf must be scrypt');
    if (typeof c !== 'object' || c === null || c.name !== 'aes-256-gcm') fail('KEYSTORE_TAMPERED', 'key store file: cipher must be aes-256-gcm');
    // bounded KDF parameters: a planted file must not make us allocate gigabytes
    if (k.r !== SCRYPT_R || k.p !== SCRYPT_P) fail('KEYSTORE_TAMPERED', 'key store file: unsupported scrypt r/p');
    const kdf: KdfParams = { n: checkScryptN(k.n, 'KEYSTORE_TAMPERED'), r: SCRYPT_R, p: SCRYPT_P, salt: unb64(k.salt, 'kdf.salt', SALT_BYTES) };
    const check = unb64(f.check, 'check', 32);
    const iv = unb64(c.iv, 'cipher.iv', IV_BYTES);
    const tag = unb64(c.tag, 'cipher.tag', TAG_BYTES);
    const data = unb64(f.data, 'data');

    const keys = await deriveKeys(pass, kdf).catch((e: unknown) => fail('STORAGE_FAILED', 'key derivation failed', e));
    const header = headerOf(kdf);
    if (!timingSafeEqual(checkValue(keys, header), check)) {
      fail('KEYSTORE_WRONG_PASSPHRASE', 'wrong passphrase for the key store (or its key-derivation header was altered)');
    }
    let plain: Uint8Array;
    try {
      const d = createDecipheriv('aes-256-gcm', keys.enc, iv, { authTagLength: TAG_BYTES });
      d.setAAD(header);
      d.setAuthTag(tag);
      plain = new Uint8Array(Buffer.concat([d.update(data), d.final()]));
    } catch (e) {
      fail('KEYSTORE_TAMPERED', 'key store file was altered: authentication failed', e);
    }
    try {
      this.#parse(plain);
    } finally {
      plain.fill(0);
    }
    this.#kdf = kdf;
    this.#fileKeys = keys;
  }

  #parse(p: Uint8Array): void {
    const bad = (why: string): never => fail('KEYSTORE_TAMPERED', `key store contents are malformed: ${why}`);
    const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
    if (p.length < PLAINTEXT_MAGIC.length + 4 || !PLAINTEXT_MAGIC.every((b, i) => p[i] === b)) bad('magic');
    let o = PLAINTEXT_MAGIC.length;
    const count = dv.getUint32(o);
    o += 4;
    const parsed = new Map<string, KeyEntry>();
    try {
      for (let i = 0; i < count; i++) {
        if (o + 2 > p.length) bad('truncated');
        const alen = dv.getUint16(o);
        o += 2;
        if (o + alen + 2 > p.length) bad('truncated');
        const alias = new TextDecoder('utf-8', { fatal: true }).decode(p.subarray(o, o + alen));
        o += alen;
        const suite = p[o++] as Suite;
        const len = p[o++] as number;
        if (len !== 32 || o + len > p.length) bad('key length');
        validateAlias(alias);
        assertSuite(suite);
        if (parsed.has(alias)) bad(`duplicate alias ${alias}`);
        parsed.set(alias, makeEntry(suite, p.subarray(o, o + len)));
        o += len;
      }
      if (o !== p.length) bad('trailing bytes');
    } catch (e) {
      for (const en of parsed.values()) en.wipe();
      if (e instanceof DivsError && e.code === 'KEYSTORE_TAMPERED') throw e;
      fail('KEYSTORE_TAMPERED', 'key store contents are malformed', e);
    }
    for (const [a, en] of parsed) this.#keys.set(a, en);
  }
}
