/**
 * The UE key store [REG-2] [GEN-3] [VER-2]: keys generated inside, signatures that OpenSSL
 * verifies, secrets unreachable from the object, encrypted at rest, and coded errors for a
 * wrong passphrase or an altered file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { SignatureSuite } from '../../proto/gen/divs/v1/common.ts';
import { Domain, pae, utf8 } from '../../protocol/src/bytes.ts';
import { generateSecretKey, importPublicKey, nodeVerify, publicKeyOf, type Suite } from '../../protocol/src/suites.ts';
import { expectCodeAsync } from '../../protocol/test/helpers.ts';
import { SoftwareKeyStore, keyStoreSigner, validateAlias } from '../src/keystore.ts';
import { WorkerKeyStore } from '../src/worker-keystore.ts';

const P256 = SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;
const SUITES: Suite[] = [P256, SignatureSuite.SIGNATURE_SUITE_ED25519, SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256];
const FAST = { scryptN: 2 ** 10 };
const PASS = 'correct horse battery staple';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'divs-ue-keystore-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every way a secret could be spelled in some output. */
function spellings(secret: Uint8Array): string[] {
  return [Buffer.from(secret).toString('hex'), Buffer.from(secret).toString('base64'), Array.from(secret).join(', '), Array.from(secret.subarray(0, 8)).join(',')];
}

function verifies(suite: Suite, pk: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  return nodeVerify(suite, importPublicKey(suite, pk), msg, sig);
}

describe('SoftwareKeyStore', () => {
  for (const suite of SUITES) {
    it(`[REG-2] [VER-2] generates inside and signs what OpenSSL verifies (suite ${suite})`, async () => {
      const ks = new SoftwareKeyStore();
      const pk = await ks.generate('ue', suite);
      expect(pk.suite).toBe(suite);
      expect(await ks.publicKey('ue')).toEqual(pk);
      const msg = pae(Domain.record, utf8('meter reading'));
      const sig = await ks.sign('ue', msg);
      expect(verifies(suite, pk.key, msg, sig)).toBe(true);
      expect(verifies(suite, pk.key, pae(Domain.record, utf8('meter readinG')), sig)).toBe(false);
    });
  }

  it('[REG-2] [SEC-2] the private key is not reachable through JSON, util.inspect or property walks', async () => {
    const ks = new SoftwareKeyStore();
    const secret = generateSecretKey(P256);
    await ks.importKey('ue', P256, secret);
    const outputs = [
      JSON.stringify(ks),
      inspect(ks, { showHidden: true, depth: Infinity, getters: true }),
      String(ks),
      JSON.stringify(Object.getOwnPropertyNames(ks)),
      JSON.stringify(Object.entries(ks)),
      inspect(await ks.publicKey('ue'), { depth: Infinity }),
      inspect(await keyStoreSigner(ks, 'ue'), { showHidden: true, depth: Infinity }),
    ];
    for (const out of outputs) for (const s of spellings(secret)) expect(out).not.toContain(s);
    expect(Object.keys(ks)).toEqual([]);
    expect(Object.getOwnPropertySymbols(ks)).toEqual([]);
    // what it does show is harmless
    expect(JSON.parse(JSON.stringify(ks))).toEqual({ kind: 'software', keys: 1 });
    // the store copied the secret: wiping the caller's copy does not break it
    secret.fill(0);
    expect(verifies(P256, (await ks.publicKey('ue')).key, utf8('m'), await ks.sign('ue', utf8('m')))).toBe(true);
  });

  it('[REG-2] coded errors: unknown alias, taken alias, bad alias, bad suite, bad message', async () => {
    const ks = new SoftwareKeyStore();
    await ks.generate('ue', P256);
    await expectCodeAsync(ks.sign('nope', utf8('m')), 'KEY_NOT_FOUND');
    await expectCodeAsync(ks.publicKey('nope'), 'KEY_NOT_FOUND');
    await expectCodeAsync(ks.generate('ue', P256), 'KEY_EXISTS');
    await expectCodeAsync(ks.generate('../etc/passwd', P256), 'INVALID_ARGUMENT');
    await expectCodeAsync(ks.generate('', P256), 'INVALID_ARGUMENT');
    await expectCodeAsync(ks.generate('x', 7 as Suite), 'UNSUPPORTED_SUITE');
    await expectCodeAsync(ks.sign('ue', 'text' as unknown as Uint8Array), 'INVALID_ARGUMENT');
    await expectCodeAsync(ks.importKey('k0', P256, new Uint8Array(32)), 'INVALID_ARGUMENT');
    expect(() => validateAlias('fleet-1a2b/42')).not.toThrow();
  });

  it('[REG-2] delete destroys the key; close wipes the store', async () => {
    const ks = new SoftwareKeyStore();
    await ks.generate('ue', P256);
    expect(await ks.delete('ue')).toBe(true);
    expect(await ks.delete('ue')).toBe(false);
    expect(await ks.has('ue')).toBe(false);
    await expectCodeAsync(ks.sign('ue', utf8('m')), 'KEY_NOT_FOUND');
    await ks.generate('ue2', P256);
    ks.close();
    await expectCodeAsync(ks.sign('ue2', utf8('m')), 'UNAVAILABLE');
    expect(ks.size).toBe(0);
  });
});

describe('SoftwareKeyStore encrypted at rest', () => {
  it('[GEN-3] [SEC-2] persists keys encrypted (mode 0600, no secret bytes in the file) and reopens them', async () => {
    const path = join(dir, 'ue.keys');
    const ks = await SoftwareKeyStore.open(path, PASS, FAST);
    const secret = generateSecretKey(P256);
    const pk = await ks.importKey('ue', P256, secret);
    await ks.generate('ue-ed', SignatureSuite.SIGNATURE_SUITE_ED25519);

    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const file = await readFile(path);
    for (const s of spellings(secret)) expect(file.toString('latin1')).not.toContain(s);
    expect(file.includes(Buffer.from(secret))).toBe(false);
    // atomic writes leave no temporary files behind
    expect((await readdir(dir)).filter((f) => f.includes('.tmp'))).toEqual([]);

    const again = await SoftwareKeyStore.open(path, PASS);
    expect(again.aliases().sort()).toEqual(['ue', 'ue-ed']);
    expect(await again.publicKey('ue')).toEqual(pk);
    expect(pk.key).toEqual(publicKeyOf(P256, secret));
    const msg = utf8('after restart');
    expect(verifies(P256, pk.key, msg, await again.sign('ue', msg))).toBe(true);
  });

  it('[GEN-3] a wrong passphrase gives KEYSTORE_WRONG_PASSPHRASE and no keys', async () => {
    const path = join(dir, 'wrong.keys');
    const ks = await SoftwareKeyStore.open(path, PASS, FAST);
    await ks.generate('ue', P256);
    await expectCodeAsync(SoftwareKeyStore.open(path, 'Correct horse battery staple'), 'KEYSTORE_WRONG_PASSPHRASE');
    await expectCodeAsync(SoftwareKeyStore.open(path, ''), 'INVALID_ARGUMENT');
  });

  it('[GEN-3] a tampered file gives KEYSTORE_TAMPERED (ciphertext, tag, IV, structure) or WRONG_PASSPHRASE (KDF header), never garbage', async () => {
    const path = join(dir, 'tamper.keys');
    const ks = await SoftwareKeyStore.open(path, PASS, FAST);
    await ks.generate('ue', P256);
    const good = JSON.parse(await readFile(path, 'utf8')) as Record<string, any>;
    const flipB64 = (s: string, i = 0): string => {
      const b = Buffer.from(s, 'base64');
      b[i % b.length] ^= 0x01;
      return b.toString('base64');
    };
    const cases: Array<[string, (f: Record<string, any>) => unknown, string]> = [
      ['ciphertext byte', (f) => (f.data = flipB64(f.data, 10)), 'KEYSTORE_TAMPERED'],
      ['ciphertext truncated', (f) => (f.data = Buffer.from(f.data, 'base64').subarray(0, 20).toString('base64')), 'KEYSTORE_TAMPERED'],
      ['auth tag', (f) => (f.cipher.tag = flipB64(f.cipher.tag)), 'KEYSTORE_TAMPERED'],
      ['iv', (f) => (f.cipher.iv = flipB64(f.cipher.iv)), 'KEYSTORE_TAMPERED'],
      ['format', (f) => (f.format = 'other'), 'KEYSTORE_TAMPERED'],
      ['version', (f) => (f.version = 2), 'KEYSTORE_TAMPERED'],
      ['cipher name', (f) => (f.cipher.name = 'aes-128-cbc'), 'KEYSTORE_TAMPERED'],
      ['oversized scrypt cost', (f) => (f.kdf.n = 2 ** 30), 'KEYSTORE_TAMPERED'],
      ['scrypt r', (f) => (f.kdf.r = 1024), 'KEYSTORE_TAMPERED'],
      ['salt not base64', (f) => (f.kdf.salt = '!!!!'), 'KEYSTORE_TAMPERED'],
      ['salt changed', (f) => (f.kdf.salt = flipB64(f.kdf.salt)), 'KEYSTORE_WRONG_PASSPHRASE'],
      ['check changed', (f) => (f.check = flipB64(f.check)), 'KEYSTORE_WRONG_PASSPHRASE'],
    ];
    for (const [, mutate, code] of cases) {
      const f = structuredClone(good);
      mutate(f);
      await writeFile(path, JSON.stringify(f));
      await expectCodeAsync(SoftwareKeyStore.open(path, PASS), code as never);
    }
    for (const raw of ['', 'not json', '{"format":"divs-keystore"', 'null', '[]']) {
      await writeFile(path, raw);
      await expectCodeAsync(SoftwareKeyStore.open(path, PASS), 'KEYSTORE_TAMPERED');
    }
  });

  it('[GEN-3] changing the passphrase re-encrypts; deletes persist', async () => {
    const path = join(dir, 'change.keys');
    const ks = await SoftwareKeyStore.open(path, PASS, FAST);
    await ks.generate('a', P256);
    await ks.generate('b', P256);
    await ks.changePassphrase('new passphrase');
    expect(await ks.delete('a')).toBe(true);
    await expectCodeAsync(SoftwareKeyStore.open(path, PASS), 'KEYSTORE_WRONG_PASSPHRASE');
    const again = await SoftwareKeyStore.open(path, 'new passphrase');
    expect(again.aliases()).toEqual(['b']);
  });

  it('[GEN-3] a failed write gives STORAGE_FAILED and keeps no key that is not on disk', async () => {
    const path = join(dir, 'vanishing', 'ue.keys');
    await expectCodeAsync(SoftwareKeyStore.open(path, PASS, FAST), 'STORAGE_FAILED');
    const okPath = join(dir, 'fail.keys');
    const ks = await SoftwareKeyStore.open(okPath, PASS, FAST);
    await rm(okPath);
    // make the target a directory: the rename over it fails
    await import('node:fs/promises').then((fs) => fs.mkdir(okPath));
    await expectCodeAsync(ks.generate('ue', P256), 'STORAGE_FAILED');
    expect(await ks.has('ue')).toBe(false);
    await rm(okPath, { recursive: true });
    await expectCodeAsync(SoftwareKeyStore.open(okPath, PASS, { create: false }), 'STORAGE_FAILED');
  });

  it('[GEN-3] bulk creation with autosave off writes once on save()', async () => {
    const path = join(dir, 'bulk.keys');
    const ks = await SoftwareKeyStore.open(path, PASS, { ...FAST, autosave: false });
    for (let i = 0; i < 20; i++) await ks.generate(`ue-${i}`, P256);
    expect((await SoftwareKeyStore.open(path, PASS)).size).toBe(0);
    await ks.save();
    expect((await SoftwareKeyStore.open(path, PASS)).size).toBe(20);
  });
});

describe('WorkerKeyStore', () => {
  it('[REG-2] [VER-2] keys live in a worker thread; signatures verify; errors keep their codes', async () => {
    const ks = await WorkerKeyStore.start();
    try {
      const pk = await ks.generate('ue', P256);
      const msg = utf8('from the worker');
      expect(verifies(P256, pk.key, msg, await ks.sign('ue', msg))).toBe(true);
      expect(await ks.has('ue')).toBe(true);
      await expectCodeAsync(ks.sign('other', msg), 'KEY_NOT_FOUND');
      await expectCodeAsync(ks.generate('ue', P256), 'KEY_EXISTS');
      expect(JSON.stringify(ks)).toBe('{"kind":"worker"}');
    } finally {
      await ks.close();
    }
    await expectCodeAsync(ks.sign('ue', utf8('x')), 'UNAVAILABLE');
  });

  it('[GEN-3] a worker store opens an encrypted file and refuses a wrong passphrase', async () => {
    const path = join(dir, 'worker.keys');
    const ks = await WorkerKeyStore.start({ path, passphrase: PASS, ...FAST });
    const pk = await ks.generate('ue', P256);
    await ks.close();
    await expectCodeAsync(WorkerKeyStore.start({ path, passphrase: 'nope' }), 'KEYSTORE_WRONG_PASSPHRASE');
    const again = await SoftwareKeyStore.open(path, PASS);
    expect(await again.publicKey('ue')).toEqual(pk);
  });
});
