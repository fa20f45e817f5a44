/**
 * Fleet simulator [GEN-8] [MTC-1] [REG-1]: valid, unique, reproducible identities and
 * subscriber records; keys and signed registrations made inside key stores; batch registration
 * with retries, per-UE results and progress.
 */
import { describe, expect, it } from 'vitest';
import { RegistrationParams, SignatureSuite, type SignedRegistration } from '../../proto/gen/divs/v1/common.ts';
import { SubscriberRecord } from '../../proto/gen/divs/v1/cef.ts';
import type { RegisterBatchResult } from '../../proto/gen/divs/v1/ue_as.ts';
import { Domain, pae, sha256, utf8 } from '../../protocol/src/bytes.ts';
import { DivsError } from '../../protocol/src/errors.ts';
import { luhnValid, validateImsi, validateUeIdentity } from '../../protocol/src/identity.ts';
import { verifyRecordSignature } from '../../protocol/src/records.ts';
import { importPublicKey, nodeVerify } from '../../protocol/src/suites.ts';
import { expectCode, expectCodeAsync } from '../../protocol/test/helpers.ts';
import { buildFleet, fleetSigner, generateFleetIdentities, registerFleet, type FleetProgress, type SimulatedUe } from '../src/fleet.ts';

const P256 = SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;

describe('fleet identities', () => {
  const ids = generateFleetIdentities({ count: 2000, seed: 'test-fleet', euiccShare: 0.25, plmnId: '310260', tacs: ['35123400', '86000100'] });

  it('[MTC-1] every identity is valid per protocol/src/identity.ts, with the configured TAC, 89 prefix and PLMN', () => {
    for (const u of ids) {
      expect(validateUeIdentity(u.identity)).toEqual(u.identity);
      expect(['35123400', '86000100']).toContain(u.identity.imei.slice(0, 8));
      expect(luhnValid(u.identity.imei)).toBe(true);
      if (u.identity.iccid) {
        expect(u.identity.iccid).toMatch(/^89[0-9]{18}$/);
        expect(luhnValid(u.identity.iccid)).toBe(true);
        expect(u.identity.eid).toBe('');
      } else {
        expect(u.identity.eid).toMatch(/^89[0-9]{30}$/);
      }
      expect(validateImsi(u.imsi)).toBe(u.imsi);
      expect(u.imsi.startsWith('310260')).toBe(true);
      expect(u.identity.msisdn.startsWith('+49170')).toBe(true);
    }
    const euicc = ids.filter((u) => u.identity.eid).length;
    expect(euicc).toBeGreaterThan(350);
    expect(euicc).toBeLessThan(650);
  });

  it('[GEN-8] identifiers are unique within the fleet', () => {
    for (const f of [(u: (typeof ids)[0]) => u.identity.imei, (u: (typeof ids)[0]) => u.identity.msisdn, (u: (typeof ids)[0]) => u.imsi, (u: (typeof ids)[0]) => u.identity.iccid || u.identity.eid, (u: (typeof ids)[0]) => u.alias, (u: (typeof ids)[0]) => u.subscriber.contractId]) {
      expect(new Set(ids.map(f)).size).toBe(ids.length);
    }
  });

  it('[MTC-1] is a pure function of the seed, and slices of a fleet agree with the whole', () => {
    const again = generateFleetIdentities({ count: 2000, seed: 'test-fleet', euiccShare: 0.25, plmnId: '310260', tacs: ['35123400', '86000100'] });
    expect(again).toEqual(ids);
    const other = generateFleetIdentities({ count: 50, seed: 'other-fleet' });
    expect(other[0]?.identity.imei).not.toBe(ids[0]?.identity.imei);
    const whole = generateFleetIdentities({ count: 10, seed: 's' });
    expect(generateFleetIdentities({ count: 5, seed: 's', startIndex: 5 })).toEqual(whole.slice(5));
  });

  it('[MTC-1] subscriber records carry the identity, IMSI, contract and a 32-byte OTA key, and survive the wire', () => {
    const u = ids[7]!;
    const s = u.subscriber;
    expect(s.identity).toEqual(u.identity);
    expect(s.imsi).toBe(u.imsi);
    expect(s.otaKey).toHaveLength(32);
    expect(s.endTimeMs).toBeGreaterThan(s.startTimeMs);
    expect(['smart-meter', 'vehicle', 'camera']).toContain(s.terminalType);
    expect(SubscriberRecord.decode(SubscriberRecord.encode(s).finish())).toEqual(s);
    expect(new Set(ids.map((x) => Buffer.from(x.subscriber.otaKey).toString('hex'))).size).toBe(ids.length);
  });

  it('[MTC-1] bad options get INVALID_ARGUMENT', () => {
    expectCode(() => generateFleetIdentities({ count: 0, seed: 's' }), 'INVALID_ARGUMENT');
    expectCode(() => generateFleetIdentities({ count: 2_000_000, seed: 's' }), 'INVALID_ARGUMENT');
    expectCode(() => generateFleetIdentities({ count: 1, seed: 's', plmnId: '2620' }), 'INVALID_ARGUMENT');
    expectCode(() => generateFleetIdentities({ count: 1, seed: 's', tacs: ['123'] }), 'INVALID_ARGUMENT');
    expectCode(() => generateFleetIdentities({ count: 1, seed: 's', msisdnPrefix: '0049' }), 'INVALID_ARGUMENT');
    expectCode(() => generateFleetIdentities({ count: 1, seed: 's', euiccShare: 2 }), 'INVALID_ARGUMENT');
    expectCode(() => generateFleetIdentities({ count: 1, seed: 's', contractStartMs: 10, contractEndMs: 5 }), 'INVALID_ARGUMENT');
  });
});

/** An AS stand-in for the batch call: registers every item except those whose IMEI ends in 7. */
function fakeAs(calls: { n: number }, opts: { failFirst?: DivsError; mangle?: boolean } = {}) {
  let txId = 100;
  return async (regs: SignedRegistration[]): Promise<RegisterBatchResult[]> => {
    calls.n += 1;
    if (opts.failFirst && calls.n === 1) throw opts.failFirst;
    const out = regs.map((r): RegisterBatchResult => {
      const p = RegistrationParams.decode(r.params);
      const key = importPublicKey(p.publicKey!.suite, p.publicKey!.key);
      if (!nodeVerify(p.publicKey!.suite, key, pae(Domain.registration, r.params), r.signature)) {
        return { version: 0, errorCode: 'INVALID_SIGNATURE', errorMessage: 'bad signature' };
      }
      if (p.identity!.imei.endsWith('7')) return { version: 0, errorCode: 'CONTRACT_INACTIVE', errorMessage: 'inactive' };
      const id = txId++;
      return { tx: { txId: id, txHash: sha256(utf8(`tx${id}`)), entryAddress: { ledgerId: 'fleet-ledger', asUrls: ['grpc://127.0.0.1:1'] } }, version: 1, errorCode: '', errorMessage: '' };
    });
    return opts.mangle ? out.slice(1) : out;
  };
}

describe('fleet build and registration', () => {
  it('[REG-2] [REG-3] builds keys inside the key store and signed registrations that verify', async () => {
    const progress: number[] = [];
    const fleet = await buildFleet({ count: 24, seed: 'build', workers: 0, createdAtMs: 1_760_000_000_000, onProgress: (d) => progress.push(d) });
    try {
      expect(fleet.ues).toHaveLength(24);
      expect(progress.at(-1)).toBe(24);
      expect(fleet.subscribers()).toHaveLength(24);
      for (const u of fleet.ues) {
        const p = RegistrationParams.decode(u.registration.params);
        expect(p.identity).toEqual(u.identity);
        expect(p.publicKey).toEqual({ suite: P256, key: u.publicKey.key });
        expect(p.createdAtMs).toBe(1_760_000_000_000);
        expect(nodeVerify(P256, importPublicKey(P256, u.publicKey.key), pae(Domain.registration, u.registration.params), u.registration.signature)).toBe(true);
        expect(await u.keystore.has(u.alias)).toBe(true);
      }
    } finally {
      await fleet.close();
    }
  });

  it('[GEN-8] spreads keys over worker-thread key stores', async () => {
    const fleet = await buildFleet({ count: 6, seed: 'workers', workers: 2 });
    try {
      expect(fleet.keystores).toHaveLength(2);
      expect(fleet.keystores.every((k) => k.kind === 'worker')).toBe(true);
      const u = fleet.ues[5]!;
      expect(nodeVerify(P256, importPublicKey(P256, u.publicKey.key), pae(Domain.registration, u.registration.params), u.registration.signature)).toBe(true);
    } finally {
      await fleet.close();
    }
  });

  it('[MTC-1] [REG-1] registers in batches, records per-UE results and reports progress', async () => {
    const fleet = await buildFleet({ count: 40, seed: 'register', workers: 0 });
    const calls = { n: 0 };
    const seen: FleetProgress[] = [];
    const report = await registerFleet(fleet.ues, fakeAs(calls), { batchSize: 15, concurrency: 2, onProgress: (p) => seen.push({ ...p }) });
    const inactive = fleet.ues.filter((u) => u.identity.imei.endsWith('7')).length;
    expect(calls.n).toBe(3);
    expect(report).toEqual({ total: 40, done: 40, registered: 40 - inactive, failed: inactive, errors: inactive ? { CONTRACT_INACTIVE: inactive } : {} });
    expect(seen.map((p) => p.done)).toEqual([...seen.map((p) => p.done)].sort((a, b) => a - b));
    expect(seen.at(-1)?.done).toBe(40);
    for (const u of fleet.ues) {
      if (u.identity.imei.endsWith('7')) expect(u.registrationError?.code).toBe('CONTRACT_INACTIVE');
      else expect(u.endorsement?.version).toBe(1);
    }
    // a registered UE signs at once with its tx ref attached
    const ue = fleet.ues.find((u) => u.endorsement) as SimulatedUe;
    const signer = await fleetSigner(ue);
    const rec = await signer.sign(utf8('{"v":1}'), 'application/json');
    expect(verifyRecordSignature(rec, P256, importPublicKey(P256, ue.publicKey.key))).toBe(true);
    const failed = fleet.ues.find((u) => u.registrationError);
    if (failed) await expectCodeAsync(fleetSigner(failed), 'NOT_REGISTERED');
    await fleet.close();
  });

  it('[MTC-1] retries a batch after a retryable failure; fails the batch on a fatal or malformed answer', async () => {
    const fleet = await buildFleet({ count: 10, seed: 'retry', workers: 0 });
    const fast = { backoff: { initialMs: 1, maxMs: 2 } };
    const c1 = { n: 0 };
    const r1 = await registerFleet(fleet.ues, fakeAs(c1, { failFirst: new DivsError('UNAVAILABLE', 'down') }), { batchSize: 10, ...fast });
    expect(c1.n).toBe(2);
    expect(r1.registered + r1.failed).toBe(10);
    expect(r1.errors.UNAVAILABLE).toBeUndefined();

    const c2 = { n: 0 };
    const r2 = await registerFleet(fleet.ues, fakeAs(c2, { failFirst: new DivsError('PERMISSION_DENIED', 'no') }), { batchSize: 10, ...fast });
    expect(c2.n).toBe(1);
    expect(r2).toMatchObject({ registered: 0, failed: 10, errors: { PERMISSION_DENIED: 10 } });
    expect(fleet.ues[0]?.endorsement).toBeUndefined();

    const r3 = await registerFleet(fleet.ues, fakeAs({ n: 0 }, { mangle: true }), { batchSize: 10 });
    expect(r3).toMatchObject({ failed: 10, errors: { MALFORMED_MESSAGE: 10 } });

    const c4 = { n: 0 };
    const down = async () => {
      c4.n += 1;
      throw new DivsError('UNAVAILABLE', 'still down');
    };
    const r4 = await registerFleet(fleet.ues, down, { batchSize: 5, retries: 2, ...fast });
    expect(c4.n).toBe(6);
    expect(r4.errors).toEqual({ UNAVAILABLE: 10 });
    await expectCodeAsync(registerFleet(fleet.ues, down, { batchSize: 0 }), 'INVALID_ARGUMENT');
    await fleet.close();
  });
});
