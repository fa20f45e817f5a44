/**
 * @module protocol/test/suites
 * The three signature suites tested three ways: Wycheproof and RFC 8032 known-answer vectors,
 * fast-check properties (round trip, flipped bits), and hostile wrong-type inputs. Both
 * implementations (noble and node:crypto) must give the same answer on every case.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { z } from 'zod';
import {
  SignatureSuite,
  type Suite,
  type SigEncoding,
  importPublicKey,
  nobleSign,
  nobleVerify,
  nodeSign,
  nodeSigner,
  nodeVerify,
  nodeVerifyAsync,
  nodeVerifyMemo,
  OwnSignatures,
  p1363ToDer,
  derToP1363,
  publicKeyOf,
  rawPublicKey,
  suiteOfKeyObject,
  signDomain,
  verifyDomain,
  generateSecretKey,
  importPrivateKey,
} from '../src/suites.ts';
import { DivsError, type ErrorCode } from '../src/errors.ts';
import { expectCode, flipBit, hex, thrownCode, toHexStr } from './helpers.ts';

const P256 = SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;
const K1 = SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256;
const ED = SignatureSuite.SIGNATURE_SUITE_ED25519;
const SUITES = [
  { suite: P256, name: 'ECDSA P-256', crv: 'P-256', curve: p256 },
  { suite: K1, name: 'ECDSA secp256k1', crv: 'secp256k1', curve: secp256k1 },
  { suite: ED, name: 'Ed25519', crv: 'Ed25519', curve: null },
] as const;

// Property runs are few: ECDSA in pure JS costs milliseconds per operation, and the machine is
// shared. Each run still draws fresh keys and messages.
const RUNS = { numRuns: 12 };

// ---------------------------------------------------------------- Wycheproof

/**
 * Policy for Wycheproof `acceptable` results (also stated in suites.ts's header).
 * - ECDSA: high-S signatures are standard ECDSA and are accepted (our signers emit low-S and no
 *   record identity depends on signature bytes); `acceptable` cases flagged only as signature
 *   malleability are therefore expected to verify.
 * - Ed25519: strict RFC 8032 (canonical S, canonical point encodings): every `acceptable` case
 *   is expected to be rejected.
 * Any other `acceptable` case has no policy yet: the test fails and names it, so that a new
 * vector release forces an explicit decision instead of a silent one.
 */
const ACCEPTABLE_POLICY: Record<'ecdsa' | 'eddsa', { accept: ReadonlySet<string>; otherwise: 'reject' | 'undecided' }> = {
  ecdsa: { accept: new Set(['SignatureMalleability', 'HighS']), otherwise: 'undecided' },
  eddsa: { accept: new Set(), otherwise: 'reject' },
};

function expectedResult(kind: 'ecdsa' | 'eddsa', result: 'valid' | 'invalid' | 'acceptable', flags: string[]): boolean | string {
  if (result === 'valid') return true;
  if (result === 'invalid') return false;
  const policy = ACCEPTABLE_POLICY[kind];
  if (flags.length > 0 && flags.every((f) => policy.accept.has(f))) return true;
  if (policy.otherwise === 'reject') return false;
  return `no policy for acceptable ${kind} case with flags ${flags.join(',')}`;
}

const HexStr = z.string().regex(/^(?:[0-9a-f]{2})*$/);
const WycheproofCase = z.object({
  tcId: z.number().int().positive(),
  comment: z.string(),
  flags: z.array(z.string()),
  msg: HexStr,
  sig: HexStr,
  result: z.enum(['valid', 'invalid', 'acceptable']),
});
const EcdsaFile = z.object({
  algorithm: z.literal('ECDSA'),
  schema: z.enum(['ecdsa_verify_schema_v1.json', 'ecdsa_p1363_verify_schema_v1.json']),
  numberOfTests: z.number().int().positive(),
  testGroups: z
    .array(
      z.object({
        type: z.enum(['EcdsaVerify', 'EcdsaP1363Verify']),
        sha: z.literal('SHA-256'),
        publicKey: z.object({ type: z.literal('EcPublicKey'), curve: z.enum(['secp256r1', 'secp256k1']), uncompressed: HexStr }),
        tests: z.array(WycheproofCase).min(1),
      }),
    )
    .min(1),
});
const EddsaFile = z.object({
  algorithm: z.literal('EDDSA'),
  schema: z.literal('eddsa_verify_schema_v1.json'),
  numberOfTests: z.number().int().positive(),
  testGroups: z
    .array(
      z.object({
        type: z.literal('EddsaVerify'),
        publicKey: z.object({ type: z.literal('EDDSAPublicKey'), curve: z.literal('edwards25519'), pk: HexStr }),
        tests: z.array(WycheproofCase).min(1),
      }),
    )
    .min(1),
});

interface VectorGroup {
  publicKey: Uint8Array;
  tests: z.infer<typeof WycheproofCase>[];
}

/** Reads a vector file from the project's own copy and checks its shape before use. */
function loadVectors(file: string, curve: 'secp256r1' | 'secp256k1' | 'edwards25519', encoding: SigEncoding): VectorGroup[] {
  const raw: unknown = JSON.parse(readFileSync(new URL(`../../test/vectors/wycheproof/${file}`, import.meta.url), 'utf8'));
  let groups: VectorGroup[];
  let declared: number;
  if (curve === 'edwards25519') {
    const j = EddsaFile.parse(raw);
    declared = j.numberOfTests;
    groups = j.testGroups.map((g) => ({ publicKey: hex(g.publicKey.pk), tests: g.tests }));
  } else {
    const j = EcdsaFile.parse(raw);
    declared = j.numberOfTests;
    expect(j.schema).toBe(encoding === 'der' ? 'ecdsa_verify_schema_v1.json' : 'ecdsa_p1363_verify_schema_v1.json');
    for (const g of j.testGroups) {
      expect(g.publicKey.curve).toBe(curve);
      expect(g.type).toBe(encoding === 'der' ? 'EcdsaVerify' : 'EcdsaP1363Verify');
    }
    groups = j.testGroups.map((g) => ({ publicKey: hex(g.publicKey.uncompressed), tests: g.tests }));
  }
  const ids = groups.flatMap((g) => g.tests.map((t) => t.tcId));
  expect(ids.length).toBe(declared);
  expect(new Set(ids).size).toBe(ids.length);
  return groups;
}

const VECTOR_FILES = [
  { file: 'ecdsa_secp256r1_sha256_test.json', suite: P256, curve: 'secp256r1', encoding: 'der', kind: 'ecdsa' },
  { file: 'ecdsa_secp256r1_sha256_p1363_test.json', suite: P256, curve: 'secp256r1', encoding: 'p1363', kind: 'ecdsa' },
  { file: 'ecdsa_secp256k1_sha256_test.json', suite: K1, curve: 'secp256k1', encoding: 'der', kind: 'ecdsa' },
  { file: 'ecdsa_secp256k1_sha256_p1363_test.json', suite: K1, curve: 'secp256k1', encoding: 'p1363', kind: 'ecdsa' },
  { file: 'ed25519_test.json', suite: ED, curve: 'edwards25519', encoding: 'p1363', kind: 'eddsa' },
] as const;

describe('Wycheproof vectors, noble and node:crypto', () => {
  for (const v of VECTOR_FILES) {
    it(`[REG-2] [VER-3] [END-1] ${v.file}: valid cases verify, invalid ones do not, both implementations agree`, async () => {
      const groups = loadVectors(v.file, v.curve, v.encoding);
      const problems: string[] = [];
      // node:crypto on the thread pool must answer exactly as inline
      const onPool: Promise<string | undefined>[] = [];
      const counts = { valid: 0, invalid: 0, acceptable: 0, unimportable: 0 };
      for (const g of groups) {
        let key: KeyObject | null = null;
        try {
          key = importPublicKey(v.suite, g.publicKey);
        } catch (e) {
          // the only acceptable failure is the coded one; anything else is a crash
          expect(e).toBeInstanceOf(DivsError);
          expect((e as DivsError).code).toBe('INVALID_PUBLIC_KEY');
          counts.unimportable++;
        }
        for (const t of g.tests) {
          counts[t.result]++;
          const want = expectedResult(v.kind, t.result, t.flags);
          if (typeof want === 'string') {
            problems.push(`tcId ${t.tcId}: ${want}`);
            continue;
          }
          const msg = hex(t.msg);
          const sig = hex(t.sig);
          const byNoble = nobleVerify(v.suite, g.publicKey, msg, sig, v.encoding);
          const byNode = key === null ? false : nodeVerify(v.suite, key, msg, sig, v.encoding);
          if (key === null && t.result !== 'invalid') problems.push(`tcId ${t.tcId}: key not importable but case is ${t.result}`);
          if (byNoble !== byNode) problems.push(`tcId ${t.tcId} (${t.comment}): noble ${byNoble}, node ${byNode}`);
          if (byNoble !== want) problems.push(`tcId ${t.tcId} (${t.comment}) [${t.flags.join(',')}]: noble ${byNoble}, expected ${want}`);
          if (byNode !== want) problems.push(`tcId ${t.tcId} (${t.comment}) [${t.flags.join(',')}]: node ${byNode}, expected ${want}`);
          if (key !== null) onPool.push(nodeVerifyAsync(v.suite, key, msg, sig, v.encoding).then((r) => (r === byNode ? undefined : `tcId ${t.tcId}: node ${byNode}, on the pool ${r}`)));
        }
      }
      for (const p of await Promise.all(onPool)) if (p !== undefined) problems.push(p);
      expect(problems).toEqual([]);
      // a file that silently lost its valid or invalid half would prove little
      expect(counts.valid).toBeGreaterThan(50);
      expect(counts.invalid).toBeGreaterThan(50);
    });
  }
});

// ---------------------------------------------------------------- RFC 8032 known answers

// RFC 8032 section 7.1, typed in as hex: secret key, public key, message, signature.
const RFC8032_TEST_1024_MSG =
  '08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1e355f6c50544e23fb1433ddf73be84d8' +
  '79de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc' +
  '1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e' +
  '06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7' +
  'aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed185ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2' +
  'd17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270' +
  '88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b07' +
  '07e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128bab27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51a' +
  'ddd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7' +
  '51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8' +
  'ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34dff7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08' +
  'd78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4' +
  '88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e' +
  '6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5fb93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b5' +
  '0d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d' +
  'b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0';

const RFC8032 = [
  {
    name: 'TEST 1 (empty message)',
    sk: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    pk: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    msg: '',
    sig: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    name: 'TEST 2 (one byte)',
    sk: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    pk: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    msg: '72',
    sig: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    name: 'TEST 3 (two bytes)',
    sk: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    pk: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    msg: 'af82',
    sig: '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
  {
    name: 'TEST 1024 (1023-byte message)',
    sk: 'f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5',
    pk: '278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e',
    msg: RFC8032_TEST_1024_MSG,
    sig: '0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03',
  },
  {
    name: 'TEST SHA(abc) (message is SHA-512("abc"))',
    sk: '833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42',
    pk: 'ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf',
    msg: 'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f',
    sig: 'dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704',
  },
] as const;

const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url');

/** A node private KeyObject for a raw secret key, built independently of suites.ts. */
function nodePrivateKey(suite: Suite, sk: Uint8Array): KeyObject {
  if (suite === ED) {
    return createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64u(sk), x: b64u(publicKeyOf(ED, sk)) }, format: 'jwk' });
  }
  const curve = suite === P256 ? p256 : secp256k1;
  const pub = curve.getPublicKey(sk, false);
  return createPrivateKey({
    key: { kty: 'EC', crv: suite === P256 ? 'P-256' : 'secp256k1', d: b64u(sk), x: b64u(pub.subarray(1, 33)), y: b64u(pub.subarray(33)) },
    format: 'jwk',
  });
}

describe('RFC 8032 Ed25519 known answers', () => {
  it('[REG-2] [VER-3] the SHA(abc) message is SHA-512 of "abc" and TEST 1024 is 1023 bytes', () => {
    expect(RFC8032[4].msg).toBe(createHash('sha512').update('abc').digest('hex'));
    expect(hex(RFC8032_TEST_1024_MSG).length).toBe(1023);
  });

  for (const v of RFC8032) {
    it(`[REG-2] [VER-3] [END-1] ${v.name}: both implementations derive the key, sign exactly, verify`, () => {
      const sk = hex(v.sk);
      const msg = hex(v.msg);
      const sig = hex(v.sig);
      expect(toHexStr(publicKeyOf(ED, sk))).toBe(v.pk);
      expect(toHexStr(nobleSign(ED, sk, msg))).toBe(v.sig);
      const priv = nodePrivateKey(ED, sk);
      expect(toHexStr(nodeSign(ED, priv, msg))).toBe(v.sig);
      expect(toHexStr(rawPublicKey(priv))).toBe(v.pk);
      const key = importPublicKey(ED, hex(v.pk));
      expect(nobleVerify(ED, hex(v.pk), msg, sig)).toBe(true);
      expect(nodeVerify(ED, key, msg, sig)).toBe(true);
      // one flipped bit in the message or signature and neither accepts
      const badMsg = msg.length > 0 ? flipBit(msg, 3) : new Uint8Array([0]);
      expect(nobleVerify(ED, hex(v.pk), badMsg, sig)).toBe(false);
      expect(nodeVerify(ED, key, badMsg, sig)).toBe(false);
      expect(nobleVerify(ED, hex(v.pk), msg, flipBit(sig, 500))).toBe(false);
      expect(nodeVerify(ED, key, msg, flipBit(sig, 500))).toBe(false);
    });
  }

  it('[VER-3] strict RFC 8032: a non-canonical S (S + L) is rejected by both implementations', () => {
    const v = RFC8032[0];
    const sig = hex(v.sig);
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    const s = BigInt('0x' + Buffer.from(sig.subarray(32)).reverse().toString('hex')) + L;
    const sBytes = hex(s.toString(16).padStart(64, '0')).reverse();
    const malleated = new Uint8Array(64);
    malleated.set(sig.subarray(0, 32));
    malleated.set(sBytes, 32);
    expect(nobleVerify(ED, hex(v.pk), hex(v.msg), malleated)).toBe(false);
    expect(nodeVerify(ED, importPublicKey(ED, hex(v.pk)), hex(v.msg), malleated)).toBe(false);
  });
});

// ---------------------------------------------------------------- properties

/** A valid secret key for the suite, drawn by fast-check (ECDSA scalars must be in [1, n)). */
const secretKeyArb = (suite: Suite): fc.Arbitrary<Uint8Array> =>
  fc.uint8Array({ minLength: 32, maxLength: 32 }).filter((sk) => thrownCode(() => publicKeyOf(suite, sk)) === undefined);

const msgArb = fc.uint8Array({ minLength: 0, maxLength: 300 });

function orderOf(suite: Suite): bigint {
  return suite === P256 ? p256.Point.Fn.ORDER : secp256k1.Point.Fn.ORDER;
}

/** Verifies with both implementations and insists they agree; an unimportable key is "no". */
function verifyBoth(suite: Suite, pk: Uint8Array, msg: Uint8Array, sig: Uint8Array, encoding: SigEncoding = 'p1363'): boolean {
  const byNoble = nobleVerify(suite, pk, msg, sig, encoding);
  let byNode = false;
  try {
    byNode = nodeVerify(suite, importPublicKey(suite, pk), msg, sig, encoding);
  } catch (e) {
    expect(e).toBeInstanceOf(DivsError);
    expect((e as DivsError).code).toBe('INVALID_PUBLIC_KEY');
  }
  expect(byNode, 'noble and node:crypto disagree').toBe(byNoble);
  return byNoble;
}

for (const { suite, name } of SUITES) {
  describe(`${name} properties`, () => {
    it(`[REG-2] [VER-3] [END-1] ${name}: sign/verify round trip in both directions between noble and node:crypto`, () => {
      fc.assert(
        fc.property(secretKeyArb(suite), msgArb, (sk, msg) => {
          const pk = publicKeyOf(suite, sk);
          const priv = nodePrivateKey(suite, sk);
          // the raw key node derives is the same key noble derives
          expect(toHexStr(rawPublicKey(priv))).toBe(toHexStr(pk));
          const bySigner = nobleSign(suite, sk, msg);
          const byNode = nodeSign(suite, priv, msg);
          expect(bySigner.length).toBe(64);
          expect(byNode.length).toBe(64);
          expect(verifyBoth(suite, pk, msg, bySigner)).toBe(true);
          expect(verifyBoth(suite, pk, msg, byNode)).toBe(true);
          if (suite === ED) {
            // Ed25519 is deterministic: the two implementations must produce the same bytes
            expect(toHexStr(byNode)).toBe(toHexStr(bySigner));
          } else {
            // noble emits low-S; the DER form of each verifies too
            const s = BigInt('0x' + toHexStr(bySigner.subarray(32)));
            expect(s <= orderOf(suite) / 2n).toBe(true);
            expect(verifyBoth(suite, pk, msg, p1363ToDer(byNode) as Uint8Array, 'der')).toBe(true);
          }
        }),
        RUNS,
      );
    });

    it(`[VER-3] [END-1] ${name}: a flipped bit in the message, signature or public key fails in both`, () => {
      fc.assert(
        fc.property(secretKeyArb(suite), msgArb, fc.nat(), fc.constantFrom('msg', 'sig', 'key'), (sk, msg, bit, where) => {
          const pk = publicKeyOf(suite, sk);
          const sig = nobleSign(suite, sk, msg);
          if (where === 'msg') {
            const m = msg.length === 0 ? new Uint8Array([1]) : flipBit(msg, bit % (msg.length * 8));
            expect(verifyBoth(suite, pk, m, sig)).toBe(false);
          } else if (where === 'sig') {
            expect(verifyBoth(suite, pk, msg, flipBit(sig, bit % 512))).toBe(false);
          } else {
            expect(verifyBoth(suite, flipBit(pk, bit % (pk.length * 8)), msg, sig)).toBe(false);
          }
        }),
        RUNS,
      );
    });

    if (suite !== ED) {
      it(`[VER-3] ${name}: policy: a high-S signature (n - s) is accepted by both implementations`, () => {
        fc.assert(
          fc.property(secretKeyArb(suite), msgArb, (sk, msg) => {
            const pk = publicKeyOf(suite, sk);
            const sig = nobleSign(suite, sk, msg);
            const s = BigInt('0x' + toHexStr(sig.subarray(32)));
            const high = sig.slice();
            high.set(hex((orderOf(suite) - s).toString(16).padStart(64, '0')), 32);
            expect(verifyBoth(suite, pk, msg, high)).toBe(true);
          }),
          { numRuns: 4 },
        );
      });
    }

    it(`[VER-3] [END-1] ${name}: wrong-type inputs give false or a coded error, never a crash`, () => {
      const sk = generateSecretKey(suite);
      const pk = publicKeyOf(suite, sk);
      const msg = new Uint8Array([1, 2, 3]);
      const sig = nobleSign(suite, sk, msg);
      const key = importPublicKey(suite, pk);
      const priv = nodePrivateKey(suite, sk);
      // not bytes at all: where a message belongs, any Uint8Array is a legitimate message
      const notBytes = fc.oneof(
        fc.string({ maxLength: 130 }),
        fc.string({ minLength: 64, maxLength: 64 }),
        fc.constantFrom(undefined, null, 0, 1n, NaN, {}, [], true, new DataView(new ArrayBuffer(64)), new Uint16Array(32)),
        fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 70 }),
      );
      const junk = fc.oneof(notBytes, fc.uint8Array({ maxLength: 31 }));
      fc.assert(
        fc.property(junk, notBytes, (j, nb) => {
          // verifiers: false for junk in any position
          expectFalse(() => nobleVerify(suite, j as Uint8Array, msg, sig));
          // the right bytes as a hex string are still not bytes
          expectFalse(() => nobleVerify(suite, toHexStr(pk) as unknown as Uint8Array, msg, sig));
          expectFalse(() => nobleVerify(suite, pk, msg, toHexStr(sig) as unknown as Uint8Array));
          expectFalse(() => nodeVerify(suite, key, msg, toHexStr(sig) as unknown as Uint8Array));
          expectFalse(() => nobleVerify(suite, pk, nb as Uint8Array, sig));
          expectFalse(() => nobleVerify(suite, pk, msg, j as Uint8Array));
          expectFalse(() => nobleVerify(suite, pk, msg, j as Uint8Array, 'der'));
          expectFalse(() => nobleVerify(j as Suite, pk, msg, sig));
          expectFalse(() => nodeVerify(suite, j as KeyObject, msg, sig));
          expectFalse(() => nodeVerify(suite, key, nb as Uint8Array, sig));
          expectFalse(() => nodeVerify(suite, key, msg, j as Uint8Array));
          expectFalse(() => nodeVerify(suite, key, msg, j as Uint8Array, 'der'));
          expectFalse(() => nodeVerify(j as Suite, key, msg, sig));
          expectFalse(() => verifyDomain(suite, key, 'divs/test', nb as Uint8Array, sig));
          // importers, signers and key helpers: a coded error
          expectCodeIn(() => importPublicKey(suite, j as Uint8Array), ['INVALID_PUBLIC_KEY']);
          expectCodeIn(() => importPublicKey(j as Suite, pk), ['UNSUPPORTED_SUITE']);
          expectCodeIn(() => nobleSign(suite, j as Uint8Array, msg), ['INVALID_ARGUMENT']);
          expectCodeIn(() => nobleSign(suite, sk, nb as Uint8Array), ['INVALID_ARGUMENT']);
          expectCodeIn(() => nobleSign(j as Suite, sk, msg), ['UNSUPPORTED_SUITE']);
          expectCodeIn(() => publicKeyOf(suite, j as Uint8Array), ['INVALID_ARGUMENT']);
          expectCodeIn(() => nodeSign(suite, j as KeyObject, msg), ['INVALID_ARGUMENT']);
          expectCodeIn(() => nodeSign(suite, priv, nb as Uint8Array), ['INVALID_ARGUMENT']);
          expectCodeIn(() => suiteOfKeyObject(j as KeyObject), ['INVALID_ARGUMENT']);
          expectCodeIn(() => rawPublicKey(j as KeyObject), ['INVALID_ARGUMENT']);
          expectCodeIn(() => nodeSigner(j as KeyObject), ['INVALID_ARGUMENT']);
          expectCodeIn(() => importPrivateKey(j as string), ['INVALID_ARGUMENT']);
        }),
        { numRuns: 60 },
      );
    });
  });
}

/** `fn` returns exactly `false` and throws nothing. */
function expectFalse(fn: () => unknown): void {
  expect(fn()).toBe(false);
}

/** `fn` throws a DivsError whose code is one of `codes` (never returns, never an uncoded error). */
function expectCodeIn(fn: () => unknown, codes: ErrorCode[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, `expected one of ${codes.join(', ')}`).toBeInstanceOf(DivsError);
  expect(codes).toContain((err as DivsError).code);
}

describe('suite and key confusion', () => {
  const msg = new Uint8Array([9, 9, 9]);

  it('[VER-3] [END-1] a key of another suite never verifies, even with a signature valid for that key', () => {
    const p = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const e = generateKeyPairSync('ed25519');
    const sigP = nodeSign(P256, p.privateKey, msg);
    expect(nodeVerify(P256, p.publicKey, msg, sigP)).toBe(true);
    expect(nodeVerify(K1, p.publicKey, msg, sigP)).toBe(false);
    // an EC key under the Ed25519 suite would be verified with OpenSSL's default digest
    expect(nodeVerify(ED, p.publicKey, msg, p1363ToDer(sigP) as Uint8Array)).toBe(false);
    const sigE = nodeSign(ED, e.privateKey, msg);
    expect(nodeVerify(ED, e.publicKey, msg, sigE)).toBe(true);
    expect(nodeVerify(P256, e.publicKey, msg, sigE)).toBe(false);
  });

  it('[REG-2] nodeSign refuses a key of another suite (SUITE_MISMATCH) and a public key (INVALID_ARGUMENT)', () => {
    const p = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expectCode(() => nodeSign(ED, p.privateKey, msg), 'SUITE_MISMATCH');
    expectCode(() => nodeSign(K1, p.privateKey, msg), 'SUITE_MISMATCH');
    expectCode(() => nodeSign(P256, p.publicKey, msg), 'INVALID_ARGUMENT');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expectCode(() => nodeSign(P256, rsa.privateKey, msg), 'SUITE_MISMATCH');
    expectCode(() => suiteOfKeyObject(rsa.publicKey), 'UNSUPPORTED_SUITE');
    expectCode(() => nodeSigner(rsa.privateKey), 'UNSUPPORTED_SUITE');
  });

  it('[REG-2] out-of-range ECDSA secret keys (0 and n) are INVALID_ARGUMENT', () => {
    expectCode(() => nobleSign(P256, new Uint8Array(32), msg), 'INVALID_ARGUMENT');
    expectCode(() => publicKeyOf(K1, hex(secp256k1.Point.Fn.ORDER.toString(16).padStart(64, '0'))), 'INVALID_ARGUMENT');
  });

  it('[VER-3] importPublicKey: the identity, an off-curve point and hybrid encodings are INVALID_PUBLIC_KEY', () => {
    const pk = p256.getPublicKey(p256.utils.randomSecretKey(), false);
    expectCode(() => importPublicKey(P256, new Uint8Array([0])), 'INVALID_PUBLIC_KEY');
    const off = pk.slice();
    off[64] = (off[64] as number) ^ 1;
    expectCode(() => importPublicKey(P256, off), 'INVALID_PUBLIC_KEY');
    const hybrid = pk.slice();
    hybrid[0] = 0x06 | ((pk[64] as number) & 1);
    expectCode(() => importPublicKey(P256, hybrid), 'INVALID_PUBLIC_KEY');
    expect(nobleVerify(P256, hybrid, msg, new Uint8Array(64))).toBe(false);
    expectCode(() => importPublicKey(ED, new Uint8Array(33)), 'INVALID_PUBLIC_KEY');
  });

  it('[REG-2] [END-1] nodeSigner and signDomain/verifyDomain bind the domain type', async () => {
    for (const { suite } of SUITES) {
      const priv = nodePrivateKey(suite, generateSecretKey(suite));
      const signer = nodeSigner(priv);
      expect(signer.suite).toBe(suite);
      const key = importPublicKey(suite, signer.publicKey);
      const sig = await signDomain(signer, 'divs/a', msg);
      expect(verifyDomain(suite, key, 'divs/a', msg, sig)).toBe(true);
      expect(verifyDomain(suite, key, 'divs/b', msg, sig)).toBe(false);
    }
  });
});

// ---------------------------------------------------------------- p1363ToDer

/** Minimal strict DER reader for `SEQUENCE { INTEGER r, INTEGER s }`, written for the test. */
function parseDerSig(der: Uint8Array): { r: bigint; s: bigint } {
  expect(der[0]).toBe(0x30);
  expect(der[1]).toBe(der.length - 2);
  const ints: bigint[] = [];
  let o = 2;
  for (let k = 0; k < 2; k++) {
    expect(der[o]).toBe(0x02);
    const len = der[o + 1] as number;
    const v = der.subarray(o + 2, o + 2 + len);
    expect(v.length).toBe(len);
    expect((v[0] as number) & 0x80).toBe(0); // non-negative
    if (len > 1) expect(v[0] === 0 && ((v[1] as number) & 0x80) === 0).toBe(false); // minimal
    ints.push(BigInt('0x' + (toHexStr(v) || '0')));
    o += 2 + len;
  }
  expect(o).toBe(der.length);
  return { r: ints[0] as bigint, s: ints[1] as bigint };
}

describe('derToP1363', () => {
  it('inverts p1363ToDer for any r and s (leading zero bytes, high bits)', () => {
    const scalar = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => {
      const x = b.slice();
      // r, s are in [1, n): never all zero
      if (x.every((v) => v === 0)) x[31] = 1;
      return x;
    });
    const zeroes = fc.nat(31);
    fc.assert(
      fc.property(scalar, scalar, zeroes, zeroes, (r, s, zr, zs) => {
        r.fill(0, 0, zr);
        s.fill(0, 0, zs);
        if (r.every((v) => v === 0)) r[31] = 1;
        if (s.every((v) => v === 0)) s[31] = 1;
        const sig = new Uint8Array([...r, ...s]);
        return toHexStr(derToP1363(p1363ToDer(sig) as Uint8Array)) === toHexStr(sig);
      }),
      { numRuns: 300 },
    );
  });

  it('nodeSign output (DER converted here) verifies with noble, many times', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = rawPublicKey(privateKey);
    for (let i = 0; i < 200; i++) {
      const msg = new TextEncoder().encode(`message ${i}`);
      const sig = nodeSign(SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256, privateKey, msg);
      expect(sig.length).toBe(64);
      expect(nobleVerify(SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256, pub, msg, sig)).toBe(true);
    }
  });

  it('refuses what OpenSSL never produces', () => {
    expect(() => derToP1363(new Uint8Array([0x30, 0x02, 0x02, 0x00]))).toThrow(DivsError);
    expect(() => derToP1363(new Uint8Array(70))).toThrow(DivsError);
  });
});

describe('p1363ToDer', () => {
  const sig = (r: string, s: string): Uint8Array => hex(r.padStart(64, '0') + s.padStart(64, '0'));

  it('[VER-3] returns null unless given exactly 64 bytes', () => {
    for (const bad of [new Uint8Array(0), new Uint8Array(63), new Uint8Array(65), 'a'.repeat(64), undefined, null, [...new Uint8Array(64)]]) {
      expect(p1363ToDer(bad as Uint8Array)).toBeNull();
    }
  });

  it('[VER-3] zero, one, high-bit and all-ones integers get minimal DER with sign padding', () => {
    expect(toHexStr(p1363ToDer(sig('0', '0')) as Uint8Array)).toBe('3006020100020100');
    expect(toHexStr(p1363ToDer(sig('1', '7f')) as Uint8Array)).toBe('300602010102017f');
    expect(toHexStr(p1363ToDer(sig('80', '0100')) as Uint8Array)).toBe('30080202008002020100');
    const ff = 'ff'.repeat(32);
    const der = p1363ToDer(sig(ff, ff)) as Uint8Array;
    expect(der.length).toBe(72);
    expect(toHexStr(der)).toBe(`3046022100${ff}022100${ff}`);
    // 0x00 0x80 ... keeps exactly one padding zero; 0x00 0x7f ... loses its leading zero
    const r = '0080' + '11'.repeat(30);
    expect(toHexStr(p1363ToDer(sig(r, '01')) as Uint8Array).slice(4, 12)).toBe('02200080');
    const r2 = '007f' + '11'.repeat(30);
    expect(toHexStr(p1363ToDer(sig(r2, '01')) as Uint8Array).slice(4, 10)).toBe('021f7f');
  });

  it('[VER-3] equals noble DER for any r, s and OpenSSL accepts what it produces', () => {
    const scalar = fc.bigInt({ min: 1n, max: p256.Point.Fn.ORDER - 1n });
    fc.assert(
      fc.property(scalar, scalar, (r, s) => {
        const p = sig(r.toString(16), s.toString(16));
        const der = p1363ToDer(p) as Uint8Array;
        expect(parseDerSig(der)).toEqual({ r, s });
        expect(toHexStr(der)).toBe(toHexStr(p256.Signature.fromBytes(p, 'compact').toBytes('der')));
      }),
      { numRuns: 200 },
    );
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    fc.assert(
      fc.property(msgArb, (m) => {
        const s = nodeSign(P256, privateKey, m);
        expect(nodeVerify(P256, publicKey, m, p1363ToDer(s) as Uint8Array, 'der')).toBe(true);
      }),
      { numRuns: 30 },
    );
  });

  it('[VER-3] arbitrary 64-byte strings always give parseable DER', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), (p) => {
        const { r, s } = parseDerSig(p1363ToDer(p) as Uint8Array);
        expect(r).toBe(BigInt('0x' + toHexStr(p.subarray(0, 32))));
        expect(s).toBe(BigInt('0x' + toHexStr(p.subarray(32))));
      }),
      { numRuns: 200 },
    );
  });
});

describe('nodeVerifyMemo', () => {
  it('[VER-3] remembers only signatures that verified: any changed byte of message or signature still fails', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const suite = SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;
    const msg = new TextEncoder().encode('checkpoint text that repeats in every answer');
    const sig = nodeSign(suite, privateKey, msg);
    expect(nodeVerifyMemo(suite, publicKey, msg, sig)).toBe(true);
    expect(nodeVerifyMemo(suite, publicKey, msg, sig)).toBe(true); // from memory
    fc.assert(
      fc.property(fc.nat(), fc.boolean(), (at, inSig) => {
        const bad = inSig ? flipBit(sig, at % (sig.length * 8)) : flipBit(msg, at % (msg.length * 8));
        return inSig ? !nodeVerifyMemo(suite, publicKey, msg, bad) : !nodeVerifyMemo(suite, publicKey, bad, sig);
      }),
      { numRuns: 64 },
    );
    // another key never borrows the first key's memory
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    expect(nodeVerifyMemo(suite, other, msg, sig)).toBe(false);
    // the wrong suite for the key is refused even for a remembered triple
    expect(nodeVerifyMemo(SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256, publicKey, msg, sig)).toBe(false);
  });
});

describe('OwnSignatures', () => {
  it('[END-3] knows exactly the (message, signature) pairs its signer made, within its bound', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const own = new OwnSignatures(4);
    const signer = nodeSigner(privateKey, own);
    const msgs = Array.from({ length: 5 }, (_, i) => new TextEncoder().encode(`endorsement ${i}`));
    const sigs = await Promise.all(msgs.map((m) => signer.sign(m)));
    // the oldest fell out of the bound (it would only be verified again)
    expect(msgs.map((m, i) => own.made(m, sigs[i] as Uint8Array))).toEqual([false, true, true, true, true]);
    // a signature it made, over another message; another signature over the same message
    expect(own.made(msgs[1] as Uint8Array, sigs[2] as Uint8Array)).toBe(false);
    expect(own.made(msgs[4] as Uint8Array, nodeSign(SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256, privateKey, msgs[4] as Uint8Array))).toBe(false);
    expect(own.made(flipBit(msgs[4] as Uint8Array, 3), sigs[4] as Uint8Array)).toBe(false);
    // a signer without one notes nothing anywhere
    const plain = nodeSigner(privateKey);
    const m = new TextEncoder().encode('not noted');
    expect(own.made(m, await plain.sign(m))).toBe(false);
  });
});
