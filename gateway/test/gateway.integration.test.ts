/**
 * Integration tests of the gateway as a real process with a real CEF and AS node (all on
 * loopback): UEs are provisioned at the CEF, registered at the AS, sign records with the UE SDK
 * and send them over gRPC; consumers list datasets and get signed verification reports. Each
 * verification failure class gets its own channel/dataset, so every report is exact. Also: a
 * rogue AS outside the consortium, the AS going down and coming back, and a SIGKILLed gateway
 * that loses no acknowledged record.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignedRecord, type TxRef } from '../../proto/gen/divs/v1/common.ts';
import { AckStatus, type VerificationReport } from '../../proto/gen/divs/v1/gateway.ts';
import { Domain, pae, toHex } from '../../protocol/src/bytes.ts';
import { batchRoot } from '../../protocol/src/merkle.ts';
import { recordHash } from '../../protocol/src/records.ts';
import { nobleSign, generateSecretKey, SignatureSuite } from '../../protocol/src/suites.ts';
import { startStack, startAs, type Stack } from '../../test/helpers/divs.ts';
import { spawnService, type ServiceProcess } from '../../test/helpers/proc.ts';
import { buildFleet, fleetSigner, registerFleet, type Fleet, type SimulatedUe } from '../../ue/src/fleet.ts';
import { UeClient } from '../../ue/src/client.ts';
import { RecordSigner } from '../../ue/src/records.ts';
import { GatewayConsumer, verifyReport } from '../../consumer/src/report.ts';
import { IngestClient } from '../src/client.ts';
import { ueKeyOf } from '../src/store.ts';
import { expectCode, tempDir } from './helpers.ts';
import { fixtureUes, reading } from './fixtures.ts';

const PLMN = '26201';
const CONSUMER_TOKEN = 'alice-token-0123456789abcdef';
const OTHER_TOKEN = 'bob-token-0123456789abcdef01';
const CHANNELS = ['good', 'tamper', 'wrongkey', 'term', 'chain', 'unknown', 'rogue'] as const;

let s: Stack;
let fleet: Fleet;
let gw: ServiceProcess;
let gwDir: string;
let ingest: IngestClient;
let alice: GatewayConsumer;
let rogue: ServiceProcess | undefined;
/** Records of the "good" dataset per fleet index, in sequence order. */
const good = new Map<number, SignedRecord[]>();

const ue = (i: number): SimulatedUe => fleet.ues[i] as SimulatedUe;
const ts = (offsetMs: number): number => Date.now() + offsetMs;

function gatewayConfig(dataDir: string, extra: Record<string, unknown> = {}): string {
  const cfg = {
    dataDir,
    name: 'gw-test',
    pki: { enroll: { caCert: join(s.asDataDir, 'pki', 'root-ca.pem'), caKey: join(s.asDataDir, 'pki', 'root-ca.key') } },
    as: { tokens: { '*': s.token }, timeoutMs: 2000, attempts: 2, backoffMs: 100 },
    verify: { threads: 1, concurrency: 1 },
    consumers: [
      { name: 'alice', token: CONSUMER_TOKEN },
      { name: 'bob', token: OTHER_TOKEN },
    ],
    datasets: [
      ...CHANNELS.map((c) => ({ id: c, channel: c, description: `${c} records`, schema: 'urn:divs:meter-reading:v1', grants: ['alice'] })),
      { id: 'cams', channel: 'cams', grants: ['bob'] },
    ],
    ...extra,
  };
  const path = join(dataDir, '..', `${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify(cfg));
  return path;
}

async function send(channel: string, records: SignedRecord[]): Promise<number[]> {
  const c = new IngestClient({ address: `127.0.0.1:${gw.port}`, channel, frameSize: 16 });
  try {
    return (await c.send(records)).map((a) => a.status);
  } finally {
    c.close();
  }
}

const counts = (list: { reason: string; count: number }[]): Record<string, number> => Object.fromEntries(list.map((r) => [r.reason, r.count]));

async function report(dataset: string): Promise<VerificationReport> {
  return (await alice.verifyDataset(dataset)).report;
}

beforeAll(async () => {
  s = await startStack(PLMN);
  fleet = await buildFleet({ count: 9, seed: 'gateway-it', plmnId: PLMN, workers: 0 });
  const prov = await s.cefClient.provisionBatch(fleet.subscribers());
  expect(prov.provisioned).toBe(9);
  const reg = new UeClient({ address: s.asAddress });
  const r = await registerFleet(fleet.ues.slice(0, 8), (regs) => reg.registerBatch(regs));
  reg.close();
  expect(r.registered).toBe(8);
  const dir = tempDir('gw-it');
  gwDir = join(dir, 'gw');
  mkdirSync(gwDir, { recursive: true });
  gw = await spawnService(['gateway/src/main.ts', '--config', gatewayConfig(gwDir)], {}, { autoStop: false });
  ingest = new IngestClient({ address: `127.0.0.1:${gw.port}`, channel: 'good' });
  alice = new GatewayConsumer({ address: `127.0.0.1:${gw.port}`, token: CONSUMER_TOKEN, anchors: { roots: [s.rootDer] } });
}, 120_000);

afterAll(async () => {
  ingest?.close();
  alice?.close();
  await rogue?.stop();
  await gw?.stop();
  await fleet?.close();
  await s?.stop();
});

describe('gateway with a real CEF and AS', () => {
  it('[E2E-2] [VER-1] ingests single and batch-signed records over gRPC with an ack per record; a resend is idempotent', async () => {
    const a = await fleetSigner(ue(0));
    const single = [];
    for (let i = 0; i < 12; i++) single.push(await a.sign(reading(i), 'application/json', ts(-60_000 + i)));
    const b = await fleetSigner(ue(1));
    const batch = await b.signBatch(Array.from({ length: 40 }, (_, i) => ({ payload: reading(i), timestampMs: ts(-50_000 + i) })), 'application/json');
    const acks = await ingest.send([...single, ...batch]);
    expect(acks).toHaveLength(52);
    expect(acks.every((x) => x.status === AckStatus.ACK_STATUS_STORED)).toBe(true);
    expect(toHex(acks[0]?.recordHash ?? new Uint8Array())).toBe(toHex(recordHash(single[0]?.body ?? new Uint8Array())));
    const again = await ingest.send(single.slice(0, 3));
    expect(again.map((x) => x.status)).toEqual([AckStatus.ACK_STATUS_DUPLICATE, AckStatus.ACK_STATUS_DUPLICATE, AckStatus.ACK_STATUS_DUPLICATE]);
    // HTTP for constrained devices: JSON body, same store
    const more = await a.sign(reading(99), 'application/json', ts(-40_000));
    good.set(0, [...single, more]);
    good.set(1, batch);
    const res = await fetch(`http://127.0.0.1:${gw.ready.httpPort as number}/v1/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'good', records: [{ record: Buffer.from(SignedRecord.encode(more).finish()).toString('base64') }] }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { acks: { status: string }[] }).acks[0]?.status).toBe('STORED');
  });

  it('[SC2-1] [FW-ACL] lists only granted datasets, as descriptions without raw data', async () => {
    const list = await alice.listDatasets();
    expect(list.map((d) => d.datasetId).sort()).toEqual([...CHANNELS].sort());
    const good = list.find((d) => d.datasetId === 'good');
    expect(good?.recordCount).toBe(53);
    expect(good?.ueCount).toBe(2);
    expect(good?.ues.map((u) => u.identity?.imei).sort()).toEqual([ue(0).identity.imei, ue(1).identity.imei].sort());
    expect(good?.ues.find((u) => u.identity?.imei === ue(0).identity.imei)?.recordCount).toBe(13);
    expect(good?.schema).toBe('urn:divs:meter-reading:v1');
    expect(good?.firstTimestampMs).toBeGreaterThan(0);
    expect(good?.lastTimestampMs).toBeGreaterThanOrEqual(good?.firstTimestampMs ?? 0);
    // a description carries no payload bytes: nothing of the records' JSON appears in it
    expect(JSON.stringify(list)).not.toContain('kWh');
    const bob = new GatewayConsumer({ address: `127.0.0.1:${gw.port}`, token: OTHER_TOKEN, anchors: { roots: [s.rootDer] } });
    expect((await bob.listDatasets()).map((d) => d.datasetId)).toEqual(['cams']);
    await expectCode(bob.verifyDataset('good'), 'UNKNOWN_DATASET');
    bob.close();
    const anon = new GatewayConsumer({ address: `127.0.0.1:${gw.port}`, anchors: { roots: [s.rootDer] } });
    await expectCode(anon.listDatasets(), 'UNAUTHENTICATED');
    anon.close();
    const wrong = new GatewayConsumer({ address: `127.0.0.1:${gw.port}`, token: 'not-a-known-token-at-all', anchors: { roots: [s.rootDer] } });
    await expectCode(wrong.listDatasets(), 'PERMISSION_DENIED');
    wrong.close();
  });

  it('[VER-3] [SC2-2] [RP-DS] verifies a dataset in the gateway and returns a report signed by the gateway', async () => {
    const { report: r, gateway, signed } = await alice.verifyDataset('good');
    expect(gateway).toBe('gw-test');
    expect(r.recordCount).toBe(53);
    expect(r.validCount).toBe(53);
    expect(r.invalid).toEqual([]);
    expect(r.unverified).toEqual([]);
    expect(r.complete).toBe(true);
    expect(r.chain).toMatchObject({ gaps: 0, forks: 0, replays: 0, reordered: 0, forksRejectedAtIngest: 0 });
    expect(r.endorsements.map((e) => e.txId).sort()).toEqual([ue(0).endorsement?.tx.txId, ue(1).endorsement?.tx.txId].sort());
    expect(r.endorsements.every((e) => e.outcome === 'OK' && e.version === 1 && e.latestVersion === 1)).toBe(true);
    expect(r.checkpoints.length).toBeGreaterThanOrEqual(1);
    expect(r.checkpoints[0]?.origin).toBe('divs-test');
    // the commitment is reproducible from the records: RFC 9162 root over the record hashes,
    // UEs in identity-key order, records in sequence order
    const order = [0, 1].sort((x, y) => (ueKeyOf(ue(x).identity) < ueKeyOf(ue(y).identity) ? -1 : 1));
    const hashes = order.flatMap((i) => (good.get(i) ?? []).map((rec) => recordHash(rec.body)));
    expect(r.commitmentSize).toBe(53);
    expect(toHex(r.datasetCommitment)).toBe(toHex(batchRoot(hashes)));
    // a byte changed anywhere in the report breaks the gateway signature
    const forged = { ...signed, report: Uint8Array.from(signed.report, (b, i) => (i === 10 ? b ^ 1 : b)) };
    expect(() => verifyReport(forged, { roots: [s.rootDer] })).toThrowError(expect.objectContaining({ code: 'INVALID_SIGNATURE' }));
  });

  it('[VER-3] [GEN-2] a tampered payload is invalid (INVALID_SIGNATURE) and leaves a gap in the chain', async () => {
    const sg = await fleetSigner(ue(2));
    const recs = [];
    for (let i = 0; i < 5; i++) recs.push(await sg.sign(reading(i), 'application/json', ts(-30_000 + i)));
    const body = Uint8Array.from(recs[2]?.body ?? []);
    body[body.length - 3] ^= 0x01; // inside the JSON payload
    recs[2] = { ...(recs[2] as SignedRecord), body };
    expect(await send('tamper', recs)).toEqual(Array(5).fill(AckStatus.ACK_STATUS_STORED));
    const r = await report('tamper');
    expect(r.validCount).toBe(4);
    expect(counts(r.invalid)).toEqual({ INVALID_SIGNATURE: 1 });
    expect(r.chain).toMatchObject({ gaps: 1, missingRecords: 1 });
  });

  it('[VER-3] a record signed with a key other than the endorsed one is invalid (INVALID_SIGNATURE)', async () => {
    const sg = await fleetSigner(ue(3));
    const good = await sg.sign(reading(1), 'application/json', ts(-20_000));
    const sk = generateSecretKey(SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256);
    const next = await sg.sign(reading(2), 'application/json', ts(-19_000));
    const forged = { ...next, signature: nobleSign(SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256, sk, pae(Domain.record, next.body)) };
    await send('wrongkey', [good, forged]);
    const r = await report('wrongkey');
    expect(r.validCount).toBe(1);
    expect(counts(r.invalid)).toEqual({ INVALID_SIGNATURE: 1 });
  });

  it('[VER-3] [UPD-1] signed after the contract termination: invalid; signed before it and checked after: still valid', async () => {
    const u = ue(4);
    const sg = await fleetSigner(u);
    const before = [];
    for (let i = 0; i < 3; i++) before.push(await sg.sign(reading(i), 'application/json', ts(-10_000 + i)));
    await send('term', before);
    // verified once while the contract runs: the next run judges speculatively against this
    // version-1 window while it asks the AS, and must discard that judgement
    const first = await report('term');
    expect(first.validCount).toBe(3);
    expect(first.endorsements[0]?.latestVersion).toBe(1);
    await s.cefClient.applyAction(u.identity, { $case: 'terminate', value: { terminationTimeMs: 0 } });
    // wait until the AS has endorsed version 2 (terminated) on the ledger
    const deadline = Date.now() + 15_000;
    for (;;) {
      const latest = await s.consumer.latestFor(u.endorsement?.tx as TxRef, (await s.consumer.endorsement(u.endorsement?.tx as TxRef)).ueKey);
      if (latest.endorsement.version === 2) break;
      if (Date.now() > deadline) throw new Error('no version 2');
      await new Promise((r) => setTimeout(r, 100));
    }
    const after = [await sg.sign(reading(3), 'application/json', ts(5_000)), await sg.sign(reading(4), 'application/json', ts(6_000))];
    await send('term', after);
    const r = await report('term');
    expect(r.recordCount).toBe(5);
    expect(r.validCount).toBe(3);
    expect(counts(r.invalid)).toEqual({ SIGNED_AFTER_TERMINATION: 2 });
    const e = r.endorsements[0];
    expect(e?.version).toBe(1);
    expect(e?.latestVersion).toBe(2);
    // unchanged since: the speculative judgement stands, with the same outcome
    const again = await report('term');
    expect(again.validCount).toBe(3);
    expect(counts(again.invalid)).toEqual({ SIGNED_AFTER_TERMINATION: 2 });
    expect(again.endorsements[0]?.latestVersion).toBe(2);
  });

  it('[VER-3] [GEN-2] names gaps, reordering and forks in the per-UE chain; a conflicting record is refused at ingest (RECORD_FORK)', async () => {
    const u = ue(5);
    const a = await fleetSigner(u);
    const r1 = [];
    for (let i = 0; i < 7; i++) r1.push(await a.sign(reading(i), 'application/json', ts(-9_000 + i)));
    // send 1,2 then 4 (3 never arrives), then 6 before 5, then 7
    const st = await send('chain', [r1[0], r1[1], r1[3], r1[5], r1[4], r1[6]] as SignedRecord[]);
    expect(st).toEqual(Array(6).fill(AckStatus.ACK_STATUS_STORED));
    // a second signer with the same key but no chain state: its sequence 1 is another record
    const b = await RecordSigner.open({ identity: u.identity, keystore: u.keystore, alias: u.alias });
    await b.updateEndorsement(u.endorsement?.tx as TxRef, 1);
    const fork = await b.sign(reading(100), 'application/json', ts(-8_000));
    const c = new IngestClient({ address: `127.0.0.1:${gw.port}`, channel: 'chain' });
    const [ack] = await c.send([fork]);
    c.close();
    expect(ack?.status).toBe(AckStatus.ACK_STATUS_REJECTED);
    expect(ack?.errorCode).toBe('RECORD_FORK');
    // the other history continues at 8, linking to its own 7: a fork in the stored chain
    for (let i = 0; i < 6; i++) await b.sign(reading(200 + i), 'application/json', ts(-7_000 + i));
    const forkedNext = await b.sign(reading(300), 'application/json', ts(-6_000));
    await send('chain', [forkedNext]);
    const r = await report('chain');
    expect(r.recordCount).toBe(7);
    expect(r.chain).toMatchObject({ gaps: 1, missingRecords: 1, reordered: 1, forks: 1, forksRejectedAtIngest: 1 });
    expect(counts(r.invalid)).toEqual({ RECORD_FORK: 1 });
    expect(r.validCount).toBe(6);
  });

  it('[VER-3] [VER-4] a record naming an unknown tx ID is invalid (UNKNOWN_TX)', async () => {
    const u = ue(6);
    const sg = await RecordSigner.open({ identity: u.identity, keystore: u.keystore, alias: u.alias });
    const tx = u.endorsement?.tx as TxRef;
    await sg.updateEndorsement({ ...tx, txId: 99_999, txHash: new Uint8Array(32) }, 1);
    await send('unknown', [await sg.sign(reading(1), 'application/json', ts(-5_000))]);
    const r = await report('unknown');
    expect(counts(r.invalid)).toEqual({ UNKNOWN_TX: 1 });
    expect(r.endorsements[0]?.outcome).toBe('UNKNOWN_TX');
  });

  it('[FW-SU] [VER-3] an endorsement from an AS outside the consortium (forged, other root CA) is refused', async () => {
    const dir = tempDir('rogue-as');
    // the rogue AS accepts the gateway's token: only its PKI differs (its own root CA)
    mkdirSync(join(dir, 'as'), { recursive: true });
    writeFileSync(join(dir, 'as', 'consumer.token'), s.token);
    rogue = await startAs(join(dir, 'as'), s.cef.port, ['--name', 'rogue-as', '--ledger-id', 'rogue-ledger']);
    const u = ue(8);
    const reg = new UeClient({ address: `127.0.0.1:${rogue.port}` });
    const out = await registerFleet([u], (regs) => reg.registerBatch(regs));
    reg.close();
    expect(out.registered).toBe(1);
    const sg = await fleetSigner(u);
    await send('rogue', [await sg.sign(reading(1), 'application/json', ts(-4_000))]);
    const r = await report('rogue');
    expect(r.validCount).toBe(0);
    expect(counts(r.invalid)).toEqual({ UNTRUSTED_CERTIFICATE: 1 });
  });

  it('[VER-3] with the AS down records are "unverified: AS unavailable", never valid; verification retries once it is back', async () => {
    await s.as.stop();
    const down = await report('good');
    expect(down.validCount).toBe(0);
    expect(counts(down.unverified)).toEqual({ AS_UNAVAILABLE: 53 });
    expect(down.invalid).toEqual([]);
    expect(down.complete).toBe(false);
    await s.startAs();
    const back = await report('good');
    expect(back.validCount).toBe(53);
    expect(back.complete).toBe(true);
  });
});

describe('gateway durability', () => {
  it('[E2E-2] loses no acknowledged record when killed with SIGKILL in the middle of a stream', async () => {
    const dir = tempDir('gw-kill');
    const data = join(dir, 'gw');
    mkdirSync(data, { recursive: true });
    const cfg = gatewayConfig(data, { verify: { threads: 0 }, datasets: [] });
    let p = await spawnService(['gateway/src/main.ts', '--config', cfg], {}, { autoStop: false });
    const ues = await fixtureUes(4, 'kill-test');
    const records: SignedRecord[] = [];
    for (const f of ues) records.push(...(await f.signer.signBatch(Array.from({ length: 500 }, (_, i) => ({ payload: reading(i) })), 'application/json')));
    const acked: SignedRecord[] = [];
    const c = new IngestClient({ address: `127.0.0.1:${p.port}`, channel: 'kill', frameSize: 20, window: 4 });
    const sending = (async () => {
      for (let i = 0; i < records.length; i += 20) {
        const part = records.slice(i, i + 20);
        const acks = await c.send(part);
        acks.forEach((a, k) => {
          if (a.status === AckStatus.ACK_STATUS_STORED) acked.push(part[k] as SignedRecord);
        });
      }
    })().catch(() => undefined); // the kill fails the stream: expected
    while (acked.length < 300) await new Promise((r) => setTimeout(r, 5));
    await p.kill('SIGKILL');
    await sending;
    c.close();
    expect(acked.length).toBeGreaterThanOrEqual(300);
    expect(acked.length).toBeLessThan(records.length);
    p = await spawnService(['gateway/src/main.ts', '--config', cfg], {}, { autoStop: false });
    try {
      const again = new IngestClient({ address: `127.0.0.1:${p.port}`, channel: 'kill', frameSize: 200 });
      const acks = await again.send(acked);
      again.close();
      // every acknowledged record is there: resending it changes nothing
      expect(acks.filter((a) => a.status !== AckStatus.ACK_STATUS_DUPLICATE)).toEqual([]);
    } finally {
      await p.stop();
    }
  });
});
