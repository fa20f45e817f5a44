/**
 * Registration and UE authentication [REG-1] [REG-3] [FW-ACL]: the UE binds its public key to
 * its identity and signs the exact params bytes inside the key store; OpenSSL verifies the
 * signature, and it fails when any byte changes.
 */
import { describe, expect, it } from 'vitest';
import { RegistrationParams, SignatureSuite, type UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { UeChallenge } from '../../proto/gen/divs/v1/ue_as.ts';
import { Domain, pae } from '../../protocol/src/bytes.ts';
import { importPublicKey, nodeVerify, type Suite } from '../../protocol/src/suites.ts';
import { expectCode, expectCodeAsync, flipBit } from '../../protocol/test/helpers.ts';
import { SoftwareKeyStore } from '../src/keystore.ts';
import { buildRegistrationParams, buildUeAuth, createRegistration, signRegistration } from '../src/registration.ts';

const P256 = SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;
const ED = SignatureSuite.SIGNATURE_SUITE_ED25519;
const K1 = SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256;
const identity: UeIdentity = { imei: '490154203237518', iccid: '89490200001234567892', eid: '', msisdn: '+491701234567' };

describe('registration', () => {
  for (const suite of [P256, ED, K1] as Suite[]) {
    it(`[REG-1] [REG-3] binds identity + public key + suites, signed over the exact params bytes (suite ${suite})`, async () => {
      const ks = new SoftwareKeyStore();
      const pk = await ks.generate('ue', suite);
      const { params, signed } = await createRegistration(identity, ks, 'ue', { createdAtMs: 1_760_000_000_000 });
      expect(params.identity).toEqual(identity);
      expect(params.publicKey).toEqual({ suite, key: pk.key });
      expect(params.suites).toEqual([suite]);
      expect(RegistrationParams.decode(signed.params)).toEqual(params);
      const key = importPublicKey(suite, pk.key);
      expect(nodeVerify(suite, key, pae(Domain.registration, signed.params), signed.signature)).toBe(true);
      // the same signature under another domain is worthless
      expect(nodeVerify(suite, key, pae(Domain.ueChallenge, signed.params), signed.signature)).toBe(false);
    });
  }

  it('[REG-3] the signature fails when any byte of the params or signature changes', async () => {
    const ks = new SoftwareKeyStore();
    const pk = await ks.generate('ue', P256);
    const { signed } = await createRegistration(identity, ks, 'ue');
    const key = importPublicKey(P256, pk.key);
    const ok = (params: Uint8Array, sig: Uint8Array) => nodeVerify(P256, key, pae(Domain.registration, params), sig);
    expect(ok(signed.params, signed.signature)).toBe(true);
    for (let i = 0; i < signed.params.length; i++) expect(ok(flipBit(signed.params, i * 8 + (i % 8)), signed.signature)).toBe(false);
    for (let i = 0; i < signed.signature.length; i++) expect(ok(signed.params, flipBit(signed.signature, i * 8 + 3))).toBe(false);
  });

  it('[REG-1] lists further suites the UE can sign with', async () => {
    const ks = new SoftwareKeyStore();
    const pk = await ks.generate('ue', ED);
    expect(buildRegistrationParams({ identity, publicKey: pk, suites: [P256, ED] }).suites).toEqual([P256, ED]);
    expectCode(() => buildRegistrationParams({ identity, publicKey: pk, suites: [P256] }), 'SUITE_MISMATCH');
    expectCode(() => buildRegistrationParams({ identity, publicKey: pk, suites: [ED, ED] }), 'INVALID_ARGUMENT');
    expectCode(() => buildRegistrationParams({ identity, publicKey: pk, suites: [ED, 9 as Suite] }), 'UNSUPPORTED_SUITE');
  });

  it('[REG-1] refuses invalid identities and parameters with coded errors', async () => {
    const ks = new SoftwareKeyStore();
    const pk = await ks.generate('ue', P256);
    const bad = (id: Partial<UeIdentity>) => () => buildRegistrationParams({ identity: { ...identity, ...id }, publicKey: pk });
    expectCode(bad({ imei: '490154203237519' }), 'INVALID_IMEI');
    expectCode(bad({ iccid: '89490200001234567893' }), 'INVALID_ICCID');
    expectCode(bad({ msisdn: '0170 1234567' }), 'INVALID_MSISDN');
    expectCode(bad({ iccid: '' }), 'IDENTITY_INCOMPLETE');
    expectCode(() => buildRegistrationParams({ identity, publicKey: { suite: P256, key: new Uint8Array() } }), 'MISSING_FIELD');
    expectCode(() => buildRegistrationParams({ identity, publicKey: pk, createdAtMs: -1 }), 'INVALID_ARGUMENT');
  });

  it('[REG-3] the key store never signs a binding of another key', async () => {
    const ks = new SoftwareKeyStore();
    await ks.generate('ue', P256);
    const other = await ks.generate('other', P256);
    const otherEd = await ks.generate('other-ed', ED);
    await expectCodeAsync(signRegistration(buildRegistrationParams({ identity, publicKey: other }), ks, 'ue'), 'INVALID_PUBLIC_KEY');
    await expectCodeAsync(signRegistration(buildRegistrationParams({ identity, publicKey: otherEd }), ks, 'ue'), 'SUITE_MISMATCH');
    await expectCodeAsync(createRegistration(identity, ks, 'missing'), 'KEY_NOT_FOUND');
  });
});

describe('UE authentication (RP-ud)', () => {
  it('[FW-ACL] [RP-UD] UeAuth signs the exact UeChallenge bytes under the ue-challenge domain', async () => {
    const ks = new SoftwareKeyStore();
    const pk = await ks.generate('ue', P256);
    const auth = await buildUeAuth(identity, 'watch', ks, 'ue', 1_760_000_000_123);
    expect(UeChallenge.decode(auth.challenge)).toEqual({ identity, purpose: 'watch', timestampMs: 1_760_000_000_123 });
    const key = importPublicKey(P256, pk.key);
    expect(nodeVerify(P256, key, pae(Domain.ueChallenge, auth.challenge), auth.signature)).toBe(true);
    expect(nodeVerify(P256, key, pae(Domain.registration, auth.challenge), auth.signature)).toBe(false);
    const latest = await buildUeAuth(identity, 'latest', ks, 'ue');
    expect(UeChallenge.decode(latest.challenge).purpose).toBe('latest');
  });

  it('[FW-ACL] refuses unknown purposes and bad identities', async () => {
    const ks = new SoftwareKeyStore();
    await ks.generate('ue', P256);
    await expectCodeAsync(buildUeAuth(identity, 'admin' as never, ks, 'ue'), 'INVALID_ARGUMENT');
    await expectCodeAsync(buildUeAuth({ ...identity, imei: '1' }, 'watch', ks, 'ue'), 'INVALID_IMEI');
    await expectCodeAsync(buildUeAuth(identity, 'watch', ks, 'ue', 0), 'INVALID_ARGUMENT');
  });
});
