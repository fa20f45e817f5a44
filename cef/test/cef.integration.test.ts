/**
 * Integration tests of the CEF as a real child process (`node cef/src/main.ts`), driven through
 * the typed client over gRPC: provisioning, status lookups, operator actions and their events,
 * resumable subscriptions (also across kill -9 and restart), device configuration over the air,
 * malformed input and bearer-token authentication.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { StatusEventType, type StatusEvent } from '../../proto/gen/divs/v1/cef.ts';
import { ContractState, type UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { DivsError, type ErrorCode } from '../../protocol/src/errors.ts';
import { spawnService, type ServiceProcess } from '../../test/helpers/proc.ts';
import { CefClient, type OperatorAction } from '../src/client.ts';
import { makeOtaRequest } from '../src/ota.ts';
import { syntheticEid, syntheticIccid, syntheticIdentity, syntheticImei, syntheticMsisdn, syntheticOtaKey, syntheticSubscriber } from '../src/fixtures.ts';

const E = StatusEventType;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'cef-it-'));
  dirs.push(d);
  return d;
}

const cefArgs = (dataDir: string, port = 0) => ['cef/src/main.ts', '--data-dir', dataDir, '--plmn', '00101', '--operator', 'Test Network', '--port', String(port)];

async function codeOf(p: Promise<unknown>): Promise<ErrorCode | undefined> {
  try {
    await p;
  } catch (e) {
    if (e instanceof DivsError) return e.code;
    throw e;
  }
  return undefined;
}

/**
 * Opens a stream and takes up to `n` events, then cancels it (through the abort signal, so the
 * call ends even while it waits). Fails when one event takes longer than `timeoutMs`; with
 * `idleMs`, returns what it has after that long without an event instead.
 */
async function take(open: (signal: AbortSignal) => AsyncIterable<StatusEvent>, n: number, opts: { timeoutMs?: number; idleMs?: number } = {}): Promise<StatusEvent[]> {
  const ac = new AbortController();
  const it = open(ac.signal)[Symbol.asyncIterator]();
  const out: StatusEvent[] = [];
  try {
    while (out.length < n) {
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([
        it.next(),
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), opts.idleMs ?? opts.timeoutMs ?? 10_000);
        }),
      ]);
      clearTimeout(timer);
      if (r === 'timeout') {
        if (opts.idleMs !== undefined) break;
        throw new Error(`timed out after ${out.length} of ${n} events`);
      }
      if (r.done) break;
      out.push(r.value);
    }
  } finally {
    ac.abort();
  }
  return out;
}

/** Drains a stream until it fails; returns what arrived and the error code. */
async function untilError(stream: AsyncIterable<StatusEvent>): Promise<{ events: StatusEvent[]; code: ErrorCode | undefined }> {
  const events: StatusEvent[] = [];
  try {
    for await (const ev of stream) events.push(ev);
  } catch (e) {
    return { events, code: (e as DivsError).code };
  }
  return { events, code: undefined };
}

const byImei = (i: number) => ({ imei: syntheticImei(i) });

describe('CEF process', () => {
  let cef: ServiceProcess;
  let client: CefClient;

  beforeAll(async () => {
    cef = await spawnService(cefArgs(tempDir()), {}, { autoStop: false });
    client = new CefClient(`127.0.0.1:${cef.port}`);
  });
  afterAll(async () => {
    client?.close();
    await cef?.stop();
  });

  it('[MTC-1] provisions 10 000 subscribers in one call and reports a code for each bad record', async () => {
    const good = Array.from({ length: 10_000 }, (_, i) => syntheticSubscriber(100_000 + i, { euicc: i % 2 === 0 }));
    const res = await client.provisionBatch(good);
    expect(res.provisioned).toBe(10_000);
    expect(res.results.every((r) => r.errorCode === '' && r.status?.state === ContractState.CONTRACT_STATE_ACTIVE)).toBe(true);

    const bad = await client.provisionBatch([
      syntheticSubscriber(100_000), // already provisioned
      { ...syntheticSubscriber(200_001), identity: { ...syntheticIdentity(200_001), imei: '490154203237519' } },
      { ...syntheticSubscriber(200_002), imsi: '99999' },
      { ...syntheticSubscriber(200_003), otaKey: new Uint8Array(31) },
      { ...syntheticSubscriber(200_004), identity: undefined },
      syntheticSubscriber(200_005),
    ]);
    expect(bad.results.map((r) => r.errorCode)).toEqual(['SUBSCRIBER_EXISTS', 'INVALID_IMEI', 'INVALID_IMSI', 'INVALID_ARGUMENT', 'IDENTITY_INCOMPLETE', '']);
    expect(bad.results[1]?.errorMessage).toContain('imei');
    expect(bad.provisioned).toBe(1);
  });

  it('[NET-1] returns the account status by IMEI, ICCID, EID or MSISDN, with coded errors otherwise', async () => {
    await client.provisionBatch([syntheticSubscriber(1), syntheticSubscriber(2, { euicc: true, owner: 'Acme Logistics', terminalType: 'vehicle', geoRestrictions: ['DE', 'NL'] })]);
    const a = syntheticIdentity(1);
    const b = syntheticIdentity(2, true);
    for (const q of [{ imei: a.imei }, { iccid: a.iccid }, { msisdn: a.msisdn }]) {
      expect((await client.getAccountStatus(q)).identity).toEqual(a);
    }
    for (const q of [{ imei: b.imei }, { eid: b.eid }, { msisdn: b.msisdn }, b]) {
      expect(await client.getAccountStatus(q)).toMatchObject({
        plmnId: '00101',
        operatorName: 'Test Network',
        state: ContractState.CONTRACT_STATE_ACTIVE,
        owner: 'Acme Logistics',
        terminalType: 'vehicle',
        geoRestrictions: ['DE', 'NL'],
        identity: b,
        revision: 1,
      });
    }
    expect(await codeOf(client.getAccountStatus({ imei: syntheticImei(3) }))).toBe('UNKNOWN_IDENTITY');
    expect(await codeOf(client.getAccountStatus({ imei: a.imei, msisdn: b.msisdn }))).toBe('IDENTITY_MISMATCH');
    expect(await codeOf(client.getAccountStatus({ imei: '123' }))).toBe('INVALID_IMEI');
    expect(await codeOf(client.getAccountStatus({}))).toBe('IDENTITY_INCOMPLETE');
  });

  it('[NET-2] every operator action reaches a live subscription as the right event; the subscription follows the UE across swaps', async () => {
    await client.provisionBatch([syntheticSubscriber(10), syntheticSubscriber(11)]);
    const sub = await client.createSubscription({ subscriber: 'as-test', identities: [byImei(10)] });
    const received = take((signal) => client.subscribe(sub.subscriptionId, sub.currentSequence, signal), 9);
    const id0 = syntheticIdentity(10);
    const newIccid = syntheticIccid(1010);
    const newEid = syntheticEid(1011);
    const newImei = syntheticImei(1012);
    const newMsisdn = syntheticMsisdn(1013);
    const plan: [OperatorAction, StatusEventType, Partial<UeIdentity>][] = [
      [{ $case: 'swapSim', value: { newIccid, newEid: '' } }, E.STATUS_EVENT_TYPE_SIM_SWAP, { iccid: newIccid }],
      [{ $case: 'swapSim', value: { newIccid: '', newEid } }, E.STATUS_EVENT_TYPE_SIM_SWAP, { iccid: '', eid: newEid }],
      [{ $case: 'swapDevice', value: { newImei } }, E.STATUS_EVENT_TYPE_DEVICE_SWAP, { imei: newImei }],
      [{ $case: 'changeMsisdn', value: { newMsisdn } }, E.STATUS_EVENT_TYPE_MSISDN_CHANGE, { msisdn: newMsisdn }],
      [{ $case: 'changeOwner', value: { newOwner: 'New Owner Ltd' } }, E.STATUS_EVENT_TYPE_OWNER_CHANGE, {}],
      [{ $case: 'changeGeo', value: { geoRestrictions: ['FR'] } }, E.STATUS_EVENT_TYPE_GEO_RESTRICTION_CHANGE, {}],
      [{ $case: 'suspend', value: {} }, E.STATUS_EVENT_TYPE_SUSPENDED, {}],
      [{ $case: 'resume', value: {} }, E.STATUS_EVENT_TYPE_RESUMED, {}],
      [{ $case: 'terminate', value: { terminationTimeMs: 0 } }, E.STATUS_EVENT_TYPE_CONTRACT_TERMINATED, {}],
    ];
    let id = id0;
    const returned: StatusEvent[] = [];
    for (const [action, , change] of plan) {
      returned.push(await client.applyAction({ msisdn: id.msisdn }, action));
      id = { ...id, ...change };
      // interleave events of a UE this subscription does not follow
      await client.applyAction(byImei(11), { $case: 'changeOwner', value: { newOwner: `other-${returned.length}` } });
    }
    const events = await received;
    expect(events).toEqual(returned);
    let prev = id0;
    for (const [i, [, type, change]] of plan.entries()) {
      const ev = events[i] as StatusEvent;
      expect(ev.type).toBe(type);
      expect(ev.previousIdentity).toEqual(prev);
      prev = { ...prev, ...change };
      expect(ev.status?.identity).toEqual(prev);
    }
    expect(events.at(-1)?.status?.state).toBe(ContractState.CONTRACT_STATE_TERMINATED);
    expect(await codeOf(client.applyAction({ imei: newImei }, { $case: 'terminate', value: { terminationTimeMs: 0 } }))).toBe('INVALID_ACTION');
    expect(await codeOf(client.applyAction(byImei(11), { $case: 'swapDevice', value: { newImei: syntheticImei(100_001) } }))).toBe('SUBSCRIBER_EXISTS');
  });

  it('[NET-2] [RP-EDL] resuming after disconnects while events are appended concurrently loses and duplicates nothing', async () => {
    const ues = [20, 21, 22, 23, 24];
    await client.provisionBatch(ues.map((i) => syntheticSubscriber(i)));
    const sub = await client.createSubscription({ subscriber: 'as-test', all: true });
    const start = sub.currentSequence;
    let producing = true;
    const produced: number[] = [];
    // 5 concurrent writers, 30 owner changes each
    const producer = Promise.all(
      ues.map(async (ue) => {
        for (let n = 0; n < 30; n++) {
          const ev = await client.applyAction(byImei(ue), { $case: 'changeOwner', value: { newOwner: `owner-${ue}-${n}` } });
          produced.push(ev.sequence);
        }
      }),
    ).finally(() => (producing = false));
    // the consumer hangs up after every few events and resumes after the last one it saw
    const got: number[] = [];
    let last = start;
    let reconnects = 0;
    while (producing || last < Math.max(...produced)) {
      const chunk = await take((signal) => client.subscribe(sub.subscriptionId, last, signal), 7 + (reconnects % 5), { idleMs: 500 });
      for (const ev of chunk) got.push(ev.sequence);
      if (chunk.length > 0) last = chunk.at(-1)!.sequence;
      reconnects++;
    }
    await producer;
    expect(reconnects).toBeGreaterThan(5);
    // an all-UE subscription sees every sequence: contiguous, increasing, no duplicates
    const end = Math.max(...produced);
    expect(got).toEqual(Array.from({ length: end - start }, (_, i) => start + 1 + i));
    expect(produced.every((s) => got.includes(s))).toBe(true);
  });

  it('[RP-EDL] modify adds and removes UEs on a live stream; unsubscribe ends it with UNKNOWN_SUBSCRIPTION', async () => {
    await client.provisionBatch([syntheticSubscriber(30), syntheticSubscriber(31)]);
    const sub = await client.createSubscription({ subscriber: 'as-test', identities: [byImei(30)] });
    const live = untilError(client.subscribe(sub.subscriptionId, sub.currentSequence));
    expect(await client.modifySubscription({ subscriptionId: sub.subscriptionId, add: [{ msisdn: syntheticMsisdn(31) }], remove: [byImei(30)] })).toEqual({ followed: 1, all: false });
    await client.applyAction(byImei(30), { $case: 'suspend', value: {} });
    const wanted = await client.applyAction(byImei(31), { $case: 'suspend', value: {} });
    // wait until the wanted event has been streamed, then unsubscribe
    const probe = await take((signal) => client.subscribe(sub.subscriptionId, sub.currentSequence, signal), 1);
    expect(probe).toEqual([wanted]);
    await client.unsubscribe(sub.subscriptionId);
    expect(await live).toEqual({ events: [wanted], code: 'UNKNOWN_SUBSCRIPTION' });
    expect((await untilError(client.subscribe(sub.subscriptionId, 0))).code).toBe('UNKNOWN_SUBSCRIPTION');
    // follow() retries outages but not a deleted subscription
    expect((await untilError(client.follow(sub.subscriptionId, 0, { onRetry: () => expect.fail('retried') }))).code).toBe('UNKNOWN_SUBSCRIPTION');
    expect(await codeOf(client.unsubscribe(sub.subscriptionId))).toBe('UNKNOWN_SUBSCRIPTION');
    expect(await codeOf(client.modifySubscription({ subscriptionId: sub.subscriptionId, all: true }))).toBe('UNKNOWN_SUBSCRIPTION');
    expect(await codeOf(client.createSubscription({ subscriber: 'as-test', identities: [byImei(39)] }))).toBe('UNKNOWN_IDENTITY');
  });

  it('[MTC-2] a UE fetches its device configuration with its OTA key; bad MACs and stale timestamps are refused', async () => {
    await client.provisionBatch([syntheticSubscriber(40), syntheticSubscriber(41, { euicc: true })]);
    const cfg = (v: string) => ({ entryAddress: { ledgerId: 'divs-main', asUrls: [`grpc://as-${v}.operator.example:7443`] }, gatewayUrl: 'https://gateway.example/ingest' });
    expect(await client.setDeviceConfig({ all: true, config: cfg('a') })).toBeGreaterThanOrEqual(2);
    const a = await client.getDeviceConfig(syntheticIdentity(40), syntheticOtaKey(40));
    expect(a).toMatchObject(cfg('a'));
    expect(await client.setDeviceConfig({ identities: [{ eid: syntheticEid(41) }], config: cfg('b') })).toBe(1);
    const b = await client.getDeviceConfig(syntheticIdentity(41, true), syntheticOtaKey(41));
    expect(b).toMatchObject(cfg('b'));
    expect(b.configVersion).toBeGreaterThan(a.configVersion);
    expect((await client.getDeviceConfig(syntheticIdentity(40), syntheticOtaKey(40))).configVersion).toBe(a.configVersion);

    const req = makeOtaRequest(syntheticIdentity(40), syntheticOtaKey(40));
    const flipped = new Uint8Array(req.mac);
    flipped[0]! ^= 1;
    expect(await codeOf(client.getDeviceConfigRaw({ ...req, mac: flipped }))).toBe('OTA_AUTH_FAILED');
    expect(await codeOf(client.getDeviceConfig(syntheticIdentity(40), syntheticOtaKey(41)))).toBe('OTA_AUTH_FAILED');
    expect(await codeOf(client.getDeviceConfigRaw(makeOtaRequest(syntheticIdentity(40), syntheticOtaKey(40), Date.now() - 6 * 60_000)))).toBe('OTA_AUTH_FAILED');
    expect(await codeOf(client.getDeviceConfig(syntheticIdentity(49), syntheticOtaKey(49)))).toBe('OTA_AUTH_FAILED');
  });

  it('rejects undecodable request bytes with INVALID_ARGUMENT / MALFORMED_MESSAGE', async () => {
    const raw = new grpc.Client(`127.0.0.1:${cef.port}`, grpc.credentials.createInsecure());
    const send = (path: string) =>
      new Promise<grpc.ServiceError>((resolve, reject) => {
        raw.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), (err) => (err ? resolve(err) : reject(new Error('accepted garbage'))));
      });
    try {
      for (const path of ['/divs.v1.SubscriberManagementService/ProvisionBatch', '/divs.v1.CapabilityExposureService/GetAccountStatus', '/divs.v1.DeviceManagementService/GetDeviceConfig']) {
        const err = await send(path);
        expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
        expect(err.metadata.get('divs-error-code')).toEqual(['MALFORMED_MESSAGE']);
      }
    } finally {
      raw.close();
    }
    // the server is still healthy afterwards
    expect((await client.getAccountStatus(byImei(1))).identity?.imei).toBe(syntheticImei(1));
  });
});

describe('CEF restarts', () => {
  it('[NET-2] [RP-EDL] a follower resumes across kill -9 and a restart on the same data directory without loss or duplicates', async () => {
    const dir = tempDir();
    const first = await spawnService(cefArgs(dir));
    const port = first.port;
    // the AS side follows with its own long-lived client; operator tools connect per session
    const as = new CefClient(`127.0.0.1:${port}`);
    const ops = new CefClient(`127.0.0.1:${port}`);
    let ops2: CefClient | undefined;
    const ac = new AbortController();
    try {
      await ops.provisionBatch([0, 1, 2, 3, 4].map((i) => syntheticSubscriber(i)));
      const sub = await as.createSubscription({ subscriber: 'as-restart', all: true });
      expect(sub.currentSequence).toBe(5);
      let retries = 0;
      const got: number[] = [];
      const waiters: { n: number; resolve: () => void }[] = [];
      const follower = (async () => {
        for await (const ev of as.follow(sub.subscriptionId, 0, { signal: ac.signal, initialDelayMs: 50, maxDelayMs: 500, onRetry: () => retries++ })) {
          got.push(ev.sequence);
          for (const w of waiters.filter((w) => got.length >= w.n)) w.resolve();
        }
      })();
      const seen = (n: number) => (got.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })));

      for (let n = 0; n < 10; n++) await ops.applyAction(byImei(n % 5), { $case: 'changeOwner', value: { newOwner: `before-${n}` } });
      await seen(15);
      expect(await first.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });

      // same data directory and port: the subscription and every acknowledged event survived
      const second = await spawnService(cefArgs(dir, port));
      expect(second.port).toBe(port);
      ops2 = new CefClient(`127.0.0.1:${port}`);
      await ops2.waitForReady(10_000);
      for (let n = 0; n < 10; n++) await ops2.applyAction(byImei(n % 5), { $case: 'changeGeo', value: { geoRestrictions: [`X${String.fromCharCode(65 + n)}`] } });
      await seen(25);
      expect(got).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
      expect(retries).toBeGreaterThanOrEqual(1);
      ac.abort();
      await follower;

      // a graceful stop ends live streams with UNAVAILABLE and exits 0
      const live = untilError(ops2.subscribe(sub.subscriptionId, 25));
      await new Promise((r) => setTimeout(r, 100));
      expect(await second.stop()).toEqual({ code: 0, signal: null });
      expect(await live).toEqual({ events: [], code: 'UNAVAILABLE' });
    } finally {
      ac.abort();
      for (const c of [as, ops, ops2]) c?.close();
    }
  });
});

describe('CEF bearer tokens', () => {
  it('[RP-EDL] requires the exposure token from AS nodes and the management token from operator tools', async () => {
    const proc = await spawnService(cefArgs(tempDir()), { DIVS_CEF_TOKENS: 'as-secret-token-0001', DIVS_CEF_MANAGEMENT_TOKENS: 'ops-secret-token-0001' });
    const addr = `127.0.0.1:${proc.port}`;
    const anon = new CefClient(addr);
    const as = new CefClient(addr, { token: 'as-secret-token-0001' });
    const ops = new CefClient(addr, { token: 'ops-secret-token-0001' });
    const wrong = new CefClient(addr, { token: 'guess' });
    try {
      expect(await codeOf(anon.provisionBatch([syntheticSubscriber(1)]))).toBe('UNAUTHENTICATED');
      expect(await codeOf(wrong.provisionBatch([syntheticSubscriber(1)]))).toBe('PERMISSION_DENIED');
      expect(await codeOf(as.provisionBatch([syntheticSubscriber(1)]))).toBe('PERMISSION_DENIED');
      expect((await ops.provisionBatch([syntheticSubscriber(1)])).provisioned).toBe(1);

      expect(await codeOf(anon.getAccountStatus(byImei(1)))).toBe('UNAUTHENTICATED');
      expect(await codeOf(wrong.getAccountStatus(byImei(1)))).toBe('PERMISSION_DENIED');
      expect(await codeOf(ops.getAccountStatus(byImei(1)))).toBe('PERMISSION_DENIED');
      expect((await as.getAccountStatus(byImei(1))).identity?.imei).toBe(syntheticImei(1));
      const sub = await as.createSubscription({ subscriber: 'as-1', all: true });
      expect((await untilError(anon.subscribe(sub.subscriptionId, 0))).code).toBe('UNAUTHENTICATED');
      expect(await take((signal) => as.subscribe(sub.subscriptionId, 0, signal), 1)).toHaveLength(1);

      // the OTA channel is authenticated by the SIM's key, not by bearer tokens
      await ops.setDeviceConfig({ all: true, config: { entryAddress: { ledgerId: 'l', asUrls: ['grpc://as.example:1'] }, gatewayUrl: '' } });
      expect((await anon.getDeviceConfig(syntheticIdentity(1), syntheticOtaKey(1))).entryAddress?.ledgerId).toBe('l');
    } finally {
      for (const c of [anon, as, ops, wrong]) c.close();
    }
  });
});
