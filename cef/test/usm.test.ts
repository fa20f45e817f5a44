/**
 * In-process tests of the CEF domain logic (cef/src/usm.ts) with an injected clock: provisioning
 * rules, computed account states, operator actions, expiry, subscription matching and the
 * gap-free event stream, device configuration and the OTA MAC layout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ContractState, type UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { StatusEventType, type ApplyActionRequest, type StatusEvent } from '../../proto/gen/divs/v1/cef.ts';
import { DivsError, type ErrorCode } from '../../protocol/src/errors.ts';
import { toHex } from '../../protocol/src/bytes.ts';
import { Usm } from '../src/usm.ts';
import { makeOtaRequest, openOtaResponse, otaRequestMac, otaRequestMessage, verifyOtaRequestMac } from '../src/ota.ts';
import { syntheticIccid, syntheticIdentity, syntheticImei, syntheticMsisdn, syntheticOtaKey, syntheticSubscriber, syntheticEid } from '../src/fixtures.ts';

const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAY = 86_400_000;
const E = StatusEventType;
const S = ContractState;

let dirs: string[] = [];
let open: Usm[] = [];
afterEach(() => {
  for (const u of open) u.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  open = [];
  dirs = [];
});

/** A fresh USM with a settable clock. */
function fresh(plmnId = '00101') {
  const dir = mkdtempSync(join(tmpdir(), 'cef-usm-'));
  dirs.push(dir);
  const clock = { now: T0 };
  const usm = Usm.open({ path: join(dir, 'cef.sqlite'), plmnId, operatorName: 'Test Network', now: () => clock.now });
  open.push(usm);
  return { usm, clock, path: join(dir, 'cef.sqlite') };
}

const rec = (i: number, o: Parameters<typeof syntheticSubscriber>[1] = {}) => syntheticSubscriber(i, { startTimeMs: T0 - DAY, endTimeMs: T0 + 30 * DAY, ...o });
const by = (f: keyof UeIdentity, v: string): UeIdentity => ({ imei: '', iccid: '', eid: '', msisdn: '', [f]: v });

function codeOf(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof DivsError) return e.code;
    throw e;
  }
  return undefined;
}

const act = (identity: UeIdentity, action: ApplyActionRequest['action']): ApplyActionRequest => ({ identity, action });

describe('provisioning [MTC-1]', () => {
  it('[MTC-1] validates each record, inserts the valid ones and reports a code for every bad one', () => {
    const { usm } = fresh();
    const bad = (i: number, patch: object) => ({ ...rec(i), ...patch });
    const res = usm.provisionBatch([
      rec(1),
      bad(2, { identity: { ...syntheticIdentity(2), imei: '350000000000021' } }), // wrong Luhn digit
      bad(3, { identity: { ...syntheticIdentity(3), iccid: '12345' } }),
      bad(4, { identity: { ...syntheticIdentity(4), msisdn: '' } }),
      bad(5, { identity: { ...syntheticIdentity(5), eid: syntheticEid(5) } }), // ICCID and EID
      bad(6, { imsi: '262010000000006' }), // another operator's IMSI
      bad(7, { endTimeMs: T0 - 2 * DAY }), // ends before it starts
      bad(8, { otaKey: new Uint8Array(16) }),
      bad(9, { otaKey: new Uint8Array(0) }),
      bad(10, { geoRestrictions: ['de'] }),
      bad(11, { owner: '' }),
      bad(12, { identity: { ...syntheticIdentity(12), eid: '', iccid: '', } }),
      bad(13, { identity: { ...syntheticIdentity(13), msisdn: syntheticMsisdn(1) } }), // MSISDN of record 0
      rec(14, { euicc: true }),
      bad(15, { startTimeMs: T0 - 3 * DAY, endTimeMs: T0 - DAY }), // already over
    ]);
    expect(res.results.map((r) => r.errorCode)).toEqual([
      '',
      'INVALID_IMEI',
      'INVALID_ICCID',
      'IDENTITY_INCOMPLETE',
      'IDENTITY_INCOMPLETE',
      'INVALID_IMSI',
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
      'MISSING_FIELD',
      'INVALID_ARGUMENT',
      'MISSING_FIELD',
      'IDENTITY_INCOMPLETE',
      'SUBSCRIBER_EXISTS',
      '',
      'INVALID_ARGUMENT',
    ]);
    expect(res.provisioned).toBe(2);
    expect(res.results[0]?.status).toMatchObject({ state: S.CONTRACT_STATE_ACTIVE, plmnId: '00101', operatorName: 'Test Network', revision: 1, identity: syntheticIdentity(1) });
    expect(res.results[13]?.status?.identity?.eid).toBe(syntheticEid(14));
    // one PROVISIONED event per provisioned subscriber, nothing for the rejected ones
    const sub = usm.createSubscription({ subscriber: 'as', identities: [], all: true });
    expect(usm.eventsPage(sub.subscriptionId, 0).map((e) => [e.type, e.status?.identity?.imei])).toEqual([
      [E.STATUS_EVENT_TYPE_PROVISIONED, syntheticImei(1)],
      [E.STATUS_EVENT_TYPE_PROVISIONED, syntheticImei(14)],
    ]);
  });

  it('[MTC-1] rejects a record whose IMEI, ICCID, EID, MSISDN or IMSI is already used, also within the batch', () => {
    const { usm } = fresh();
    usm.provisionBatch([rec(1), rec(2, { euicc: true })]);
    const clash = (patch: object) => ({ ...rec(50), ...patch });
    const id50 = syntheticIdentity(50);
    const res = usm.provisionBatch([
      clash({ identity: { ...id50, imei: syntheticImei(1) } }),
      clash({ identity: { ...id50, iccid: syntheticIccid(1) } }),
      clash({ identity: { ...id50, iccid: '', eid: syntheticEid(2) } }),
      clash({ identity: { ...id50, msisdn: syntheticMsisdn(2) } }),
      clash({ imsi: rec(1).imsi }),
      rec(60),
      rec(60), // duplicate inside the batch
    ]);
    expect(res.results.map((r) => r.errorCode)).toEqual(['SUBSCRIBER_EXISTS', 'SUBSCRIBER_EXISTS', 'SUBSCRIBER_EXISTS', 'SUBSCRIBER_EXISTS', 'SUBSCRIBER_EXISTS', '', 'SUBSCRIBER_EXISTS']);
    expect(res.provisioned).toBe(1);
  });

  it('[MTC-1] provisions 10 000 records in one call and refuses larger batches', () => {
    const { usm } = fresh();
    const batch = Array.from({ length: 10_000 }, (_, i) => rec(1000 + i, { euicc: i % 3 === 0 }));
    const t = performance.now();
    const res = usm.provisionBatch(batch);
    console.log(`provisioned 10 000 subscribers in ${(performance.now() - t).toFixed(0)} ms`);
    expect(res.provisioned).toBe(10_000);
    expect(usm.latestSequence()).toBe(10_000);
    expect(usm.getAccountStatus(by('msisdn', syntheticMsisdn(10_999))).identity?.imei).toBe(syntheticImei(10_999));
    expect(codeOf(() => usm.provisionBatch(Array.from({ length: 10_001 }, (_, i) => rec(i))))).toBe('BATCH_TOO_LARGE');
  });
});

describe('account status [NET-1]', () => {
  it('[NET-1] finds a subscriber by IMEI, ICCID, EID or MSISDN and by consistent combinations', () => {
    const { usm } = fresh();
    usm.provisionBatch([rec(1), rec(2, { euicc: true })]);
    const a = syntheticIdentity(1);
    const b = syntheticIdentity(2, true);
    for (const q of [by('imei', a.imei), by('iccid', a.iccid), by('msisdn', a.msisdn), a]) expect(usm.getAccountStatus(q).identity).toEqual(a);
    for (const q of [by('imei', b.imei), by('eid', b.eid), by('msisdn', b.msisdn), b]) expect(usm.getAccountStatus(q).identity).toEqual(b);
    expect(codeOf(() => usm.getAccountStatus({ ...a, msisdn: b.msisdn }))).toBe('IDENTITY_MISMATCH');
    expect(codeOf(() => usm.getAccountStatus({ ...a, msisdn: syntheticMsisdn(99) }))).toBe('IDENTITY_MISMATCH');
    expect(codeOf(() => usm.getAccountStatus(by('imei', syntheticImei(99))))).toBe('UNKNOWN_IDENTITY');
    expect(codeOf(() => usm.getAccountStatus(by('imei', '12345')))).toBe('INVALID_IMEI');
    expect(codeOf(() => usm.getAccountStatus(undefined))).toBe('IDENTITY_INCOMPLETE');
  });

  it('[NET-1] computes the state at call time: not yet started, active, suspended, expired', () => {
    const { usm, clock } = fresh();
    usm.provisionBatch([rec(1, { startTimeMs: T0 + DAY, endTimeMs: T0 + 2 * DAY })]);
    const q = by('imei', syntheticImei(1));
    expect(usm.getAccountStatus(q).state).toBe(S.CONTRACT_STATE_SUSPENDED); // not in service yet
    clock.now = T0 + DAY + 1;
    expect(usm.getAccountStatus(q)).toMatchObject({ state: S.CONTRACT_STATE_ACTIVE, terminationTimeMs: 0 });
    usm.applyAction(act(q, { $case: 'suspend', value: {} }));
    expect(usm.getAccountStatus(q).state).toBe(S.CONTRACT_STATE_SUSPENDED);
    clock.now = T0 + 2 * DAY + 1;
    expect(usm.getAccountStatus(q)).toMatchObject({ state: S.CONTRACT_STATE_TERMINATED, terminationTimeMs: T0 + 2 * DAY });
  });
});

describe('operator actions [NET-2]', () => {
  it('[NET-2] every action updates the record, bumps the revision and returns its event with the previous identity', () => {
    const { usm, clock } = fresh();
    usm.provisionBatch([rec(1)]);
    const id0 = syntheticIdentity(1);
    const newIccid = syntheticIccid(500);
    const newEid = syntheticEid(501);
    const newImei = syntheticImei(502);
    const newMsisdn = syntheticMsisdn(503);
    const steps: [ApplyActionRequest['action'], StatusEventType, (id: UeIdentity) => UeIdentity][] = [
      [{ $case: 'swapSim', value: { newIccid, newEid: '' } }, E.STATUS_EVENT_TYPE_SIM_SWAP, (id) => ({ ...id, iccid: newIccid })],
      [{ $case: 'swapSim', value: { newIccid: '', newEid } }, E.STATUS_EVENT_TYPE_SIM_SWAP, (id) => ({ ...id, iccid: '', eid: newEid })],
      [{ $case: 'swapDevice', value: { newImei } }, E.STATUS_EVENT_TYPE_DEVICE_SWAP, (id) => ({ ...id, imei: newImei })],
      [{ $case: 'changeMsisdn', value: { newMsisdn } }, E.STATUS_EVENT_TYPE_MSISDN_CHANGE, (id) => ({ ...id, msisdn: newMsisdn })],
      [{ $case: 'changeOwner', value: { newOwner: 'Fleet Leasing AG' } }, E.STATUS_EVENT_TYPE_OWNER_CHANGE, (id) => id],
      [{ $case: 'changeGeo', value: { geoRestrictions: ['DE', 'AT', 'FR-IDF'] } }, E.STATUS_EVENT_TYPE_GEO_RESTRICTION_CHANGE, (id) => id],
      [{ $case: 'suspend', value: {} }, E.STATUS_EVENT_TYPE_SUSPENDED, (id) => id],
      [{ $case: 'resume', value: {} }, E.STATUS_EVENT_TYPE_RESUMED, (id) => id],
      [{ $case: 'terminate', value: { terminationTimeMs: 0 } }, E.STATUS_EVENT_TYPE_CONTRACT_TERMINATED, (id) => id],
    ];
    let id = id0;
    let revision = 1;
    for (const [action, type, next] of steps) {
      clock.now += 1000;
      // locate by MSISDN: the subscriber is found by its current binding after every change
      const ev = usm.applyAction(act(by('msisdn', id.msisdn), action));
      const after = next(id);
      expect(ev).toMatchObject({ type, previousIdentity: id, occurredAtMs: clock.now });
      expect(ev.status?.identity).toEqual(after);
      expect(ev.status?.revision).toBe(++revision);
      expect(usm.getAccountStatus(by('imei', after.imei))).toEqual(ev.status);
      id = after;
    }
    const final = usm.getAccountStatus(by('imei', newImei));
    expect(final).toMatchObject({ state: S.CONTRACT_STATE_TERMINATED, terminationTimeMs: clock.now, owner: 'Fleet Leasing AG', geoRestrictions: ['DE', 'AT', 'FR-IDF'] });
    // the released identities are free again, the old ones no longer resolve
    expect(codeOf(() => usm.getAccountStatus(by('imei', id0.imei)))).toBe('UNKNOWN_IDENTITY');
  });

  it('[NET-2] rejects invalid actions and changes nothing', () => {
    const { usm, clock } = fresh();
    usm.provisionBatch([rec(1), rec(2)]);
    const q = by('imei', syntheticImei(1));
    const other = syntheticIdentity(2);
    const before = usm.getAccountStatus(q);
    const seq = usm.latestSequence();
    const cases: [ApplyActionRequest['action'], ErrorCode][] = [
      [{ $case: 'resume', value: {} }, 'INVALID_ACTION'],
      [{ $case: 'swapDevice', value: { newImei: other.imei } }, 'SUBSCRIBER_EXISTS'],
      [{ $case: 'swapSim', value: { newIccid: other.iccid, newEid: '' } }, 'SUBSCRIBER_EXISTS'],
      [{ $case: 'changeMsisdn', value: { newMsisdn: other.msisdn } }, 'SUBSCRIBER_EXISTS'],
      [{ $case: 'swapDevice', value: { newImei: syntheticImei(1) } }, 'INVALID_ACTION'],
      [{ $case: 'swapSim', value: { newIccid: '', newEid: '' } }, 'MISSING_FIELD'],
      [{ $case: 'swapSim', value: { newIccid: syntheticIccid(7), newEid: syntheticEid(7) } }, 'INVALID_ARGUMENT'],
      [{ $case: 'swapDevice', value: { newImei: '123' } }, 'INVALID_IMEI'],
      [{ $case: 'changeOwner', value: { newOwner: before.owner } }, 'INVALID_ACTION'],
      [{ $case: 'changeGeo', value: { geoRestrictions: ['DE'] } }, 'INVALID_ACTION'],
      [{ $case: 'changeGeo', value: { geoRestrictions: ['Germany'] } }, 'INVALID_ARGUMENT'],
      [{ $case: 'terminate', value: { terminationTimeMs: T0 + DAY } }, 'INVALID_ARGUMENT'],
      [undefined, 'MISSING_FIELD'],
    ];
    for (const [action, code] of cases) expect([action?.$case, codeOf(() => usm.applyAction(act(q, action)))]).toEqual([action?.$case, code]);
    expect(codeOf(() => usm.applyAction(act(by('imei', syntheticImei(77)), { $case: 'suspend', value: {} })))).toBe('UNKNOWN_IDENTITY');
    usm.applyAction(act(q, { $case: 'suspend', value: {} }));
    expect(codeOf(() => usm.applyAction(act(q, { $case: 'suspend', value: {} })))).toBe('INVALID_ACTION');
    // a back-dated termination keeps its time; after it nothing applies any more
    usm.applyAction(act(q, { $case: 'terminate', value: { terminationTimeMs: T0 - 1000 } }));
    expect(usm.getAccountStatus(q)).toMatchObject({ state: S.CONTRACT_STATE_TERMINATED, terminationTimeMs: T0 - 1000, revision: before.revision + 2 });
    clock.now += 1;
    const terminatedSeq = usm.latestSequence();
    for (const action of [{ $case: 'terminate', value: { terminationTimeMs: 0 } }, { $case: 'resume', value: {} }, { $case: 'changeOwner', value: { newOwner: 'X' } }] as const) {
      expect(codeOf(() => usm.applyAction(act(q, action)))).toBe('INVALID_ACTION');
    }
    expect(usm.latestSequence()).toBe(terminatedSeq);
    expect(terminatedSeq).toBe(seq + 2);
  });

  it('[NET-2] records expired contracts as terminated once, with one event each', () => {
    const { usm, clock } = fresh();
    usm.provisionBatch([rec(1, { endTimeMs: T0 + DAY }), rec(2, { endTimeMs: T0 + 2 * DAY }), rec(3, { endTimeMs: T0 + DAY })]);
    expect(usm.sweepExpired()).toEqual([]);
    usm.applyAction(act(by('imei', syntheticImei(3)), { $case: 'terminate', value: { terminationTimeMs: 0 } }));
    clock.now = T0 + DAY + 5;
    const events = usm.sweepExpired();
    expect(events.map((e) => [e.type, e.status?.identity?.imei, e.status?.terminationTimeMs, e.status?.state])).toEqual([
      [E.STATUS_EVENT_TYPE_CONTRACT_TERMINATED, syntheticImei(1), T0 + DAY, S.CONTRACT_STATE_TERMINATED],
    ]);
    expect(usm.sweepExpired()).toEqual([]);
  });
});

describe('subscriptions and event streams [NET-2] [RP-EDL]', () => {
  it('[NET-2] a subscription follows its UEs across identity changes and only sees their events', () => {
    const { usm } = fresh();
    usm.provisionBatch([rec(1), rec(2), rec(3)]);
    const sub = usm.createSubscription({ subscriber: 'as-1', identities: [by('msisdn', syntheticMsisdn(1)), by('iccid', syntheticIccid(3))], all: false });
    expect(sub.currentSequence).toBe(3);
    usm.applyAction(act(by('imei', syntheticImei(1)), { $case: 'swapDevice', value: { newImei: syntheticImei(100) } }));
    usm.applyAction(act(by('imei', syntheticImei(2)), { $case: 'suspend', value: {} }));
    usm.applyAction(act(by('imei', syntheticImei(100)), { $case: 'changeMsisdn', value: { newMsisdn: syntheticMsisdn(100) } }));
    const evs = usm.eventsPage(sub.subscriptionId, sub.currentSequence);
    expect(evs.map((e) => [e.sequence, e.type])).toEqual([
      [4, E.STATUS_EVENT_TYPE_DEVICE_SWAP],
      [6, E.STATUS_EVENT_TYPE_MSISDN_CHANGE],
    ]);
    expect(codeOf(() => usm.createSubscription({ subscriber: 'as-1', identities: [by('imei', syntheticImei(9))], all: false }))).toBe('UNKNOWN_IDENTITY');
    expect(codeOf(() => usm.createSubscription({ subscriber: '', identities: [], all: true }))).toBe('MISSING_FIELD');
  });

  it('[RP-EDL] modify adds and removes UEs and toggles all; unsubscribe deletes', () => {
    const { usm } = fresh();
    usm.provisionBatch([rec(1), rec(2), rec(3)]);
    const { subscriptionId: id } = usm.createSubscription({ subscriber: 'as-1', identities: [by('imei', syntheticImei(1))], all: false });
    expect(usm.modifySubscription({ subscriptionId: id, add: [by('imei', syntheticImei(2)), by('imei', syntheticImei(2))], remove: [by('imei', syntheticImei(1))] })).toEqual({ followed: 1, all: false });
    expect(usm.eventsPage(id, 0).map((e) => e.sequence)).toEqual([2]);
    expect(usm.modifySubscription({ subscriptionId: id, add: [], remove: [], all: true })).toEqual({ followed: 1, all: true });
    expect(usm.eventsPage(id, 0).map((e) => e.sequence)).toEqual([1, 2, 3]);
    expect(usm.modifySubscription({ subscriptionId: id, add: [], remove: [], all: false })).toEqual({ followed: 1, all: false });
    expect(codeOf(() => usm.modifySubscription({ subscriptionId: id, add: [by('imei', syntheticImei(42))], remove: [] }))).toBe('UNKNOWN_IDENTITY');
    expect(usm.modifySubscription({ subscriptionId: id, add: [], remove: [] }).followed).toBe(1); // the failed call changed nothing
    usm.unsubscribe(id);
    expect(codeOf(() => usm.unsubscribe(id))).toBe('UNKNOWN_SUBSCRIPTION');
    expect(codeOf(() => usm.modifySubscription({ subscriptionId: id, add: [], remove: [] }))).toBe('UNKNOWN_SUBSCRIPTION');
    expect(codeOf(() => usm.eventsPage(id, 0))).toBe('UNKNOWN_SUBSCRIPTION');
  });

  it('[RP-EDL] a stream delivers backlog then live events in order, exactly once, while events are appended concurrently', async () => {
    const { usm, clock } = fresh();
    usm.provisionBatch(Array.from({ length: 20 }, (_, i) => rec(i)));
    const { subscriptionId } = usm.createSubscription({ subscriber: 'as-1', identities: [], all: true });
    const total = 20 + 300;
    // producer: 300 owner changes in bursts from timers while the consumer reads slowly
    const producer = (async () => {
      for (let n = 0; n < 300; n++) {
        clock.now++;
        usm.applyAction(act(by('imei', syntheticImei(n % 20)), { $case: 'changeOwner', value: { newOwner: `owner-${n}` } }));
        if (n % 37 === 0) await new Promise((r) => setTimeout(r, 1));
      }
    })();
    const got: number[] = [];
    const ac = new AbortController();
    for await (const ev of usm.events(subscriptionId, 0, ac.signal)) {
      got.push(ev.sequence);
      if (got.length % 50 === 0) await new Promise((r) => setImmediate(r));
      if (got.length === total) break;
    }
    await producer;
    expect(got).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  });

  it('[RP-EDL] a live stream ends with UNKNOWN_SUBSCRIPTION on unsubscribe, UNAVAILABLE on stop; bad resume points are refused', async () => {
    const { usm } = fresh();
    usm.provisionBatch([rec(1)]);
    const { subscriptionId } = usm.createSubscription({ subscriber: 'as-1', identities: [], all: true });
    const read = async (it: AsyncIterable<StatusEvent>) => {
      const seqs: number[] = [];
      try {
        for await (const ev of it) seqs.push(ev.sequence);
      } catch (e) {
        return { seqs, code: (e as DivsError).code };
      }
      return { seqs, code: undefined };
    };
    const r1 = read(usm.events(subscriptionId, 0));
    await new Promise((r) => setTimeout(r, 10));
    usm.unsubscribe(subscriptionId);
    expect(await r1).toEqual({ seqs: [1], code: 'UNKNOWN_SUBSCRIPTION' });

    const { subscriptionId: s2 } = usm.createSubscription({ subscriber: 'as-1', identities: [], all: true });
    expect(await read(usm.events(s2, 5))).toEqual({ seqs: [], code: 'INVALID_RANGE' });
    expect(await read(usm.events('nope', 0))).toEqual({ seqs: [], code: 'UNKNOWN_SUBSCRIPTION' });
    const ac = new AbortController();
    const r2 = read(usm.events(s2, 1, ac.signal));
    await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    expect(await r2).toEqual({ seqs: [], code: 'UNAVAILABLE' });
    const r3 = read(usm.events(s2, 0));
    await new Promise((r) => setTimeout(r, 10));
    usm.stopStreams();
    expect(await r3).toEqual({ seqs: [1], code: 'UNAVAILABLE' });
  });

  it('[RP-EDL] subscriptions and events persist across a reopen; the data directory is locked to one process and one PLMN', () => {
    const { usm, path } = fresh();
    usm.provisionBatch([rec(1)]);
    const { subscriptionId } = usm.createSubscription({ subscriber: 'as-1', identities: [by('imei', syntheticImei(1))], all: false });
    expect(codeOf(() => Usm.open({ path, plmnId: '00101', operatorName: 'x' }))).toBe('CONFIG_INVALID');
    usm.close();
    expect(codeOf(() => Usm.open({ path, plmnId: '00102', operatorName: 'x' }))).toBe('CONFIG_INVALID');
    const again = Usm.open({ path, plmnId: '00101', operatorName: 'Test Network', now: () => T0 });
    open.push(again);
    expect(again.eventsPage(subscriptionId, 0).map((e) => e.type)).toEqual([E.STATUS_EVENT_TYPE_PROVISIONED]);
    const ev = again.applyAction(act(by('imei', syntheticImei(1)), { $case: 'suspend', value: {} }));
    expect(ev.sequence).toBe(2);
  });
});

describe('device configuration over the air [MTC-2]', () => {
  const entry = (v: string) => ({ entryAddress: { ledgerId: `ledger-${v}`, asUrls: [`grpc://as-${v}.example:443`] }, gatewayUrl: 'https://gw.example', configVersion: 0 });

  it('[MTC-2] serves the latest config for all or some subscribers with increasing versions', () => {
    const { usm } = fresh();
    usm.provisionBatch([rec(1), rec(2, { euicc: true })]);
    const fetch = (i: number, euicc = false) => {
      const req = makeOtaRequest(syntheticIdentity(i, euicc), syntheticOtaKey(i), T0);
      return openOtaResponse(req, syntheticOtaKey(i), usm.getDeviceConfig(req));
    };
    expect(codeOf(() => fetch(1))).toBe('NO_DEVICE_CONFIG');
    expect(usm.setDeviceConfig({ identities: [], all: true, config: entry('a') })).toBe(2);
    expect(fetch(1)).toEqual({ ...entry('a'), configVersion: 1 });
    expect(usm.setDeviceConfig({ identities: [by('imei', syntheticImei(2))], all: false, config: entry('b') })).toBe(1);
    expect(fetch(1).configVersion).toBe(1);
    expect(fetch(2, true)).toEqual({ ...entry('b'), configVersion: 2 });
    usm.setDeviceConfig({ identities: [], all: true, config: entry('c') });
    expect(fetch(2, true)).toEqual({ ...entry('c'), configVersion: 3 });
    // a UE may authenticate with part of its identity, e.g. IMEI only
    const req = makeOtaRequest(by('imei', syntheticImei(1)), syntheticOtaKey(1), T0);
    expect(openOtaResponse(req, syntheticOtaKey(1), usm.getDeviceConfig(req)).configVersion).toBe(3);
    // bad configs are refused
    const bad = (cfg: object) => codeOf(() => usm.setDeviceConfig({ identities: [], all: true, config: { ...entry('d'), ...cfg } }));
    expect(bad({ entryAddress: undefined })).toBe('MISSING_FIELD');
    expect(bad({ entryAddress: { ledgerId: 'l', asUrls: [] } })).toBe('MISSING_FIELD');
    expect(bad({ entryAddress: { ledgerId: 'l', asUrls: ['not a url'] } })).toBe('INVALID_ARGUMENT');
    expect(bad({ gatewayUrl: 'ftp://x' })).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => usm.setDeviceConfig({ identities: [by('imei', syntheticImei(9))], all: false, config: entry('e') }))).toBe('UNKNOWN_IDENTITY');
    expect(codeOf(() => usm.setDeviceConfig({ identities: [], all: false, config: entry('e') }))).toBe('MISSING_FIELD');
  });

  it('[MTC-2] refuses wrong MACs, stale timestamps, unknown UEs (indistinguishably) and terminated contracts', () => {
    const { usm, clock } = fresh();
    usm.provisionBatch([rec(1)]);
    usm.setDeviceConfig({ identities: [], all: true, config: entry('a') });
    const id = syntheticIdentity(1);
    const key = syntheticOtaKey(1);
    expect(codeOf(() => usm.getDeviceConfig(makeOtaRequest(id, syntheticOtaKey(2), T0)))).toBe('OTA_AUTH_FAILED');
    expect(codeOf(() => usm.getDeviceConfig({ ...makeOtaRequest(id, key, T0), mac: new Uint8Array(0) }))).toBe('OTA_AUTH_FAILED');
    expect(codeOf(() => usm.getDeviceConfig(makeOtaRequest(id, key, T0 - 5 * 60_000 - 1)))).toBe('OTA_AUTH_FAILED');
    expect(codeOf(() => usm.getDeviceConfig(makeOtaRequest(id, key, T0 + 5 * 60_000 + 1)))).toBe('OTA_AUTH_FAILED');
    expect(codeOf(() => usm.getDeviceConfig(makeOtaRequest(id, key, T0 + 5 * 60_000)))).toBeUndefined();
    expect(codeOf(() => usm.getDeviceConfig(makeOtaRequest(syntheticIdentity(7), syntheticOtaKey(7), T0)))).toBe('OTA_AUTH_FAILED');
    // a MAC over other fields than those sent fails
    const req = makeOtaRequest(id, key, T0);
    expect(codeOf(() => usm.getDeviceConfig({ ...req, timestampMs: T0 + 1 }))).toBe('OTA_AUTH_FAILED');
    // the response is bound to its request: replayed against another request it fails
    const res = usm.getDeviceConfig(req);
    expect(codeOf(() => openOtaResponse(makeOtaRequest(id, key, T0 + 1), key, res))).toBe('OTA_AUTH_FAILED');
    expect(codeOf(() => openOtaResponse(req, key, { ...res, config: new Uint8Array([...res.config, 0]) }))).toBe('OTA_AUTH_FAILED');
    usm.applyAction(act(by('imei', id.imei), { $case: 'terminate', value: { terminationTimeMs: 0 } }));
    clock.now += 1;
    expect(codeOf(() => usm.getDeviceConfig(makeOtaRequest(id, key, clock.now)))).toBe('CONTRACT_INACTIVE');
  });

  it('[MTC-2] pins the OTA request byte layout (known answer) and any flipped bit breaks the MAC', () => {
    const id: UeIdentity = { imei: '356938035643809', iccid: '89490200001234567899', eid: '', msisdn: '+491701234567' };
    const key = new Uint8Array(32).map((_, i) => i + 1);
    const ts = 1_767_225_600_000;
    // "DIVSv1" || u16 len || "divs/ota-request" || u64 len || lv(imei) lv(iccid) lv(eid) lv(msisdn) || i64 ts;
    // the MAC was computed independently (Python hmac) over these bytes
    expect(toHex(otaRequestMessage(id, ts))).toBe(
      '444956537631' + '0010' + toHex(new TextEncoder().encode('divs/ota-request')) + '0000000000000040' +
        '000f' + toHex(new TextEncoder().encode(id.imei)) + '0014' + toHex(new TextEncoder().encode(id.iccid)) + '0000' +
        '000d' + toHex(new TextEncoder().encode(id.msisdn)) + '0000019b76daa800',
    );
    expect(toHex(otaRequestMac(key, id, ts))).toBe('8faba21747050602cb1cda6b88f2d5eb52bea2e829ee47190f0c043b280520f4');
    const mac = otaRequestMac(key, id, ts);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: mac.length * 8 - 1 }), (bit) => {
        const m = new Uint8Array(mac);
        m[bit >> 3]! ^= 1 << (bit & 7);
        return !verifyOtaRequestMac(key, id, ts, m);
      }),
    );
  });
});
