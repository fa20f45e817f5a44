/**
 * The RP-ud client [RP-UD] [FW-UE] [UPD-4] against an in-process stand-in that follows the
 * ue_as.proto contract (verifies registrations and UeAuth signatures, streams updates, drops the
 * stream once). The real AS node is tested against this client in test/ integration tests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EndorsementReason, RecordBody, RegistrationParams, SignatureSuite, type TxRef, type UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { UeChallenge, UeRegistrationServiceService, type UeAuth, type WatchUpdatesRequest } from '../../proto/gen/divs/v1/ue_as.ts';
import { Domain, pae, sha256, utf8 } from '../../protocol/src/bytes.ts';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { importPublicKey, nodeVerify } from '../../protocol/src/suites.ts';
import { RpcServer } from '../../platform/src/grpc.ts';
import { expectCodeAsync } from '../../protocol/test/helpers.ts';
import { SoftwareKeyStore } from '../src/keystore.ts';
import { RecordSigner } from '../src/records.ts';
import { UeClient, backoffDelay, type EndorsementUpdate } from '../src/client.ts';
import { createRegistration } from '../src/registration.ts';

const P256 = SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;
const identity: UeIdentity = { imei: '490154203237518', iccid: '89490200001234567892', eid: '', msisdn: '+491701234567' };
const txRef = (txId: number): TxRef => ({ txId, txHash: sha256(utf8(`tx ${txId}`)), entryAddress: { ledgerId: 'rp-ud-test', asUrls: ['grpc://as.test:1'] } });

/** What the stand-in AS knows and how it behaves. */
const as = {
  key: undefined as Uint8Array | undefined,
  latestVersion: 1,
  watchRequests: [] as WatchUpdatesRequest[],
  watchMode: 'normal' as 'normal' | 'deny',
  batchMangle: false,
};

function checkAuth(auth: UeAuth | undefined, purpose: string): void {
  if (!auth || !as.key) fail('UNAUTHENTICATED', 'no auth');
  const ch = UeChallenge.decode(auth.challenge);
  if (ch.purpose !== purpose) fail('UNAUTHENTICATED', 'wrong purpose');
  if (Math.abs(ch.timestampMs - Date.now()) > 60_000) fail('AUTH_EXPIRED', 'stale');
  if (!nodeVerify(P256, importPublicKey(P256, as.key), pae(Domain.ueChallenge, auth.challenge), auth.signature)) fail('UNAUTHENTICATED', 'bad signature');
}

const server = new RpcServer();
server.add(UeRegistrationServiceService, {
  register: async (req) => {
    const reg = req.registration ?? fail('MISSING_FIELD', 'registration');
    const p = RegistrationParams.decode(reg.params);
    const pk = p.publicKey ?? fail('MISSING_FIELD', 'public key');
    if (!nodeVerify(pk.suite, importPublicKey(pk.suite, pk.key), pae(Domain.registration, reg.params), reg.signature)) fail('INVALID_SIGNATURE', 'bad');
    as.key = pk.key;
    return { tx: txRef(1), version: 1 };
  },
  registerBatch: async (req) => ({
    results: req.registrations.slice(as.batchMangle ? 1 : 0).map(() => ({ tx: txRef(2), version: 1, errorCode: '', errorMessage: '' })),
  }),
  getLatestRef: async (req) => {
    checkAuth(req.auth, 'latest');
    return { tx: txRef(as.latestVersion * 10), version: as.latestVersion };
  },
  watchUpdates: async (req, send, ctx) => {
    if (as.watchMode === 'deny') fail('NOT_REGISTERED', 'unknown UE');
    checkAuth(req.auth, 'watch');
    as.watchRequests.push(req);
    const update = (v: number) => ({ tx: txRef(v * 10), version: v, reason: EndorsementReason.ENDORSEMENT_REASON_OWNER_CHANGE, accountStatus: undefined });
    if (as.watchRequests.length === 1) {
      // first connection: two updates, then the AS drops the stream
      for (let v = req.knownVersion + 1; v <= 3; v++) await send(update(v));
      throw new DivsError('UNAVAILABLE', 'AS restarting');
    }
    // later connections: replay one old version (a resumed stream may repeat), then a new one
    await send(update(3));
    await send(update(4));
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
  },
});

let address = '';
beforeAll(async () => {
  address = `127.0.0.1:${await server.listen('127.0.0.1', 0)}`;
});
afterAll(async () => {
  await server.close(500);
});

async function device() {
  const keystore = new SoftwareKeyStore();
  await keystore.generate('ue', P256);
  const signer = await RecordSigner.open({ identity, keystore, alias: 'ue' });
  return { identity, keystore, alias: 'ue', signer };
}

describe('UeClient over RP-ud', () => {
  it('[RP-UD] [REG-1] [END-4] registers and hands tx ID + entry address to the record signer', async () => {
    const d = await device();
    const client = new UeClient({ address, device: d });
    try {
      const ref = await client.register();
      expect(ref).toEqual({ tx: txRef(1), version: 1 });
      expect(d.signer.endorsement).toEqual({ tx: txRef(1), version: 1 });
      const rec = await d.signer.sign(utf8('x'), 'text/plain');
      expect(RecordBody.decode(rec.body).endorsement).toEqual(txRef(1));

      as.latestVersion = 2;
      expect((await client.getLatestRef()).version).toBe(2);
      expect(d.signer.endorsement?.version).toBe(2);
      // an older answer does not roll the UE back [FW-UE]
      as.latestVersion = 1;
      await client.getLatestRef();
      expect(d.signer.endorsement?.version).toBe(2);
    } finally {
      client.close();
    }
  });

  it('[MTC-1] registerBatch returns one result per registration; a short answer is MALFORMED_MESSAGE', async () => {
    const d = await device();
    const client = new UeClient({ address });
    try {
      const { signed } = await createRegistration(identity, d.keystore, 'ue');
      expect(await client.registerBatch([signed, signed])).toHaveLength(2);
      as.batchMangle = true;
      await expectCodeAsync(client.registerBatch([signed, signed]), 'MALFORMED_MESSAGE');
      await expectCodeAsync(client.registerBatch([]), 'INVALID_ARGUMENT');
      await expectCodeAsync(client.register(), 'CONFIG_INVALID');
    } finally {
      as.batchMangle = false;
      client.close();
    }
  });

  it('[UPD-4] [FW-UE] watchUpdates reconnects after a dropped stream, resumes from the newest version, never delivers twice', async () => {
    const d = await device();
    const client = new UeClient({ address, device: d });
    await client.register();
    as.watchRequests = [];
    const got: EndorsementUpdate[] = [];
    const errors: Array<[string, number | undefined]> = [];
    let reached4: () => void = () => undefined;
    const four = new Promise<void>((r) => (reached4 = r));
    const watch = client.watchUpdates(
      1,
      (u) => {
        got.push(u);
        if (u.version === 4) reached4();
      },
      { backoff: { initialMs: 20, maxMs: 50 }, onError: (e, retry) => errors.push([e.code, retry]) },
    );
    await four;
    expect(got.map((u) => u.version)).toEqual([2, 3, 4]);
    expect(got[0]?.tx).toEqual(txRef(20));
    expect(got[0]?.reason).toBe(EndorsementReason.ENDORSEMENT_REASON_OWNER_CHANGE);
    expect(as.watchRequests.map((r) => r.knownVersion)).toEqual([1, 3]);
    expect(errors[0]?.[0]).toBe('UNAVAILABLE');
    expect(errors[0]?.[1]).toBeGreaterThanOrEqual(0);
    expect(watch.knownVersion).toBe(4);
    // the signer attaches the newest reference
    expect(d.signer.endorsement).toEqual({ tx: txRef(40), version: 4 });
    watch.stop();
    await watch.done;
    client.close();
  });

  it('[FW-ACL] a non-retryable error ends the watch with its code', async () => {
    const d = await device();
    const client = new UeClient({ address, device: d });
    as.watchMode = 'deny';
    const errors: Array<[string, number | undefined]> = [];
    try {
      const watch = client.watchUpdates(0, () => undefined, { onError: (e, r) => errors.push([e.code, r]) });
      await expectCodeAsync(watch.done, 'NOT_REGISTERED');
      expect(errors).toEqual([['NOT_REGISTERED', undefined]]);
    } finally {
      as.watchMode = 'normal';
      client.close();
    }
  });

  it('[FW-UE] an unreachable AS is retried with backoff until stopped; abort signals stop it', async () => {
    const d = await device();
    const client = new UeClient({ address: '127.0.0.1:1', device: d });
    const errors: string[] = [];
    const ac = new AbortController();
    const watch = client.watchUpdates(0, () => undefined, { backoff: { initialMs: 5, maxMs: 10 }, signal: ac.signal, onError: (e) => errors.push(e.code) });
    while (errors.length < 2) await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    await watch.done;
    expect(errors.every((c) => c === 'UNAVAILABLE')).toBe(true);
    client.close();
  });

  it('[FW-UE] backoff grows exponentially, is capped, and jitters within bounds', () => {
    expect(backoffDelay(0, { initialMs: 100, jitter: 0 })).toBe(100);
    expect(backoffDelay(3, { initialMs: 100, jitter: 0 })).toBe(800);
    expect(backoffDelay(50, { initialMs: 100, maxMs: 5000, jitter: 0 })).toBe(5000);
    expect(backoffDelay(1, { initialMs: 100, jitter: 0.5 }, () => 0)).toBe(100);
    expect(backoffDelay(1, { initialMs: 100, jitter: 0.5 }, () => 0.999999)).toBe(300);
  });
});
