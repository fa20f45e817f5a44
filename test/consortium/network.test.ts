/**
 * Three operators, each with its own CEF and AS node (real processes, `as-node/src/main.ts`
 * with a consortium ledger configuration), on one ledger ordered by a real 3-member etcd
 * cluster: a smart meter that moves from one operator to another (use case I.2), and an AS
 * node killed under load and restarted.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ContractState, type SignedRecord, type TxRef, type UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { EndorsementView, VerificationDataServiceClient } from '../../proto/gen/divs/v1/consumer_as.ts';
import { CefClient } from '../../cef/src/client.ts';
import { syntheticIccid, syntheticSubscriber } from '../../cef/src/fixtures.ts';
import { DivsConsumer } from '../../consumer/src/client.ts';
import { checkRecord } from '../../consumer/src/verify.ts';
import { buildFleet, type Fleet, type SimulatedUe } from '../../ue/src/fleet.ts';
import { UeClient } from '../../ue/src/client.ts';
import { RecordSigner } from '../../ue/src/records.ts';
import { createRegistration } from '../../ue/src/registration.ts';
import { SoftwareKeyStore } from '../../ue/src/keystore.ts';
import { SignatureSuite } from '../../proto/gen/divs/v1/common.ts';
import { grpc, makeClient, unary } from '../../platform/src/grpc.ts';
import { pemToDer } from '../../protocol/src/pki.ts';
import { toHex } from '../../protocol/src/bytes.ts';
import { EtcdCluster, freePort } from '../../as-node/src/ledger/consortium/etcd-cluster.ts';
import { createLocalConsortium, writeLocalConsortium, type LocalConsortium } from '../../as-node/src/governance/local-consortium.ts';
import { spawnService, type ServiceProcess } from '../helpers/proc.ts';
import { describeEtcd } from './helpers.ts';

const LEDGER = 'divs-consortium-it';
const CONSUMER_TOKEN = randomBytes(18).toString('hex');
const PEER_TOKEN = randomBytes(18).toString('hex');

interface Operator {
  id: string;
  name: string;
  plmn: string;
  node: string;
  tac: string;
  msisdnPrefix: string;
  iccidIssuer: string;
  cef?: ServiceProcess;
  cefClient?: CefClient;
  as?: ServiceProcess;
  asPort: number;
  config: string;
  fleet?: Fleet;
}

const ops: Operator[] = [
  { id: 'op-a', name: 'Operator A', plmn: '26201', node: 'as-a', tac: '35999901', msisdnPrefix: '+49170', iccidIssuer: '4999', asPort: 0, config: '' },
  { id: 'op-b', name: 'Operator B', plmn: '26202', node: 'as-b', tac: '35999902', msisdnPrefix: '+49171', iccidIssuer: '4998', asPort: 0, config: '' },
  { id: 'op-c', name: 'Operator C', plmn: '26203', node: 'as-c', tac: '35999903', msisdnPrefix: '+49172', iccidIssuer: '4997', asPort: 0, config: '' },
];
const [opA, opB, opC] = ops as [Operator, Operator, Operator];

let etcd: EtcdCluster;
let dir: string;
let c: LocalConsortium;
const consumers = new Map<string, DivsConsumer>();
const queries = new Map<string, VerificationDataServiceClient>();

const addr = (o: Operator): string => `127.0.0.1:${o.asPort}`;
const startAs = (o: Operator): Promise<ServiceProcess> => spawnService(['as-node/src/main.ts', '--config', o.config], {}, { autoStop: false, readyTimeoutMs: 40_000 });

function md(): grpc.Metadata {
  const m = new grpc.Metadata();
  m.set('authorization', `Bearer ${CONSUMER_TOKEN}`);
  return m;
}

/** A consumer SDK bound to one node (its own cache, so every answer really comes from that node). */
function consumerFor(o: Operator): DivsConsumer {
  let v = consumers.get(o.id);
  if (!v) consumers.set(o.id, (v = new DivsConsumer({ anchors: { roots: [pemToDer(c.root.certPem)] }, tokens: { '*': CONSUMER_TOKEN }, latestTtlMs: 0 })));
  return v;
}

function query(o: Operator): VerificationDataServiceClient {
  let q = queries.get(o.id);
  if (!q) queries.set(o.id, (q = makeClient(VerificationDataServiceClient, addr(o))));
  return q;
}

/** The checkpoint note text (without signatures) and size a node serves. */
async function checkpointOf(o: Operator): Promise<{ text: string; size: number }> {
  const r = await unary(query(o), query(o).getCheckpoint, {}, { metadata: md(), timeoutMs: 5000 });
  const note = r.checkpoint?.note ?? '';
  return { text: note.slice(0, note.indexOf('\n\n')), size: Number(note.split('\n')[1]) };
}

/** Waits until every node serves the same checkpoint text; returns it. */
async function converged(timeoutMs = 30_000): Promise<{ text: string; size: number }> {
  const deadline = Date.now() + timeoutMs;
  let last: string[] = [];
  for (;;) {
    const cps = await Promise.all(ops.map((o) => checkpointOf(o).catch(() => ({ text: `down ${o.node}`, size: -1 }))));
    last = cps.map((x) => `${x.size}`);
    if (cps.every((x) => x.text === cps[0]?.text) && (cps[0]?.size ?? -1) >= 0) return cps[0] as { text: string; size: number };
    if (Date.now() > deadline) throw new Error(`nodes did not converge: sizes ${last.join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describeEtcd('three operators on one consortium ledger (AS, CEF and etcd processes)', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'divs-consortium-net-'));
    const [cluster] = await Promise.all([
      EtcdCluster.start(),
      ...ops.map(async (o) => {
        o.asPort = await freePort();
        o.cef = await spawnService(['cef/src/main.ts', '--data-dir', join(dir, `cef-${o.id}`), '--plmn', o.plmn, '--operator', o.name, '--port', '0'], {}, { autoStop: false });
        o.cefClient = new CefClient(`127.0.0.1:${o.cef.port}`);
      }),
    ]);
    etcd = cluster;
    c = await createLocalConsortium({
      ledgerId: LEDGER,
      orgs: ops.map((o) => ({ id: o.id, name: o.name, nodes: [o.node] })),
      nodeUrls: Object.fromEntries(ops.map((o) => [o.node, [addr(o)]])),
    });
    writeLocalConsortium(c, join(dir, 'consortium'));
    for (const o of ops) {
      o.config = join(dir, `${o.node}.json`);
      writeFileSync(
        o.config,
        JSON.stringify({
          dataDir: join(dir, o.node),
          nodeName: o.node,
          ledgerId: LEDGER,
          port: o.asPort,
          httpPort: -1,
          threads: 0,
          cef: { address: `127.0.0.1:${o.cef?.port}` },
          tokens: [
            { token: CONSUMER_TOKEN, name: 'consumer', roles: ['consumer', 'admin'] },
            { token: PEER_TOKEN, name: 'consortium-peers', roles: ['peer'] },
          ],
          pki: { rootCaCert: join(dir, 'consortium', 'root-ca.pem'), asCert: join(dir, 'consortium', 'nodes', `${o.node}.pem`), asKey: join(dir, 'consortium', 'nodes', `${o.node}.key`), autoPki: false },
          ledger: { type: 'consortium', genesis: join(dir, 'consortium', 'genesis.json'), etcd: { endpoints: etcd.endpoints, requestTimeoutMs: 3000 }, peerToken: PEER_TOKEN },
        }),
      );
    }
    await Promise.all(
      ops.map(async (o) => {
        o.as = await startAs(o);
        o.fleet = await buildFleet({ count: 40, seed: `consortium-${o.id}`, plmnId: o.plmn, tacs: [o.tac], msisdnPrefix: o.msisdnPrefix, iccidIssuer: o.iccidIssuer, workers: 0 });
        const prov = await o.cefClient?.provisionBatch(o.fleet.subscribers());
        expect(prov?.provisioned).toBe(40);
      }),
    );
  }, 120_000);

  afterAll(async () => {
    for (const v of consumers.values()) v.close();
    for (const q of queries.values()) q.close();
    await Promise.allSettled(ops.flatMap((o) => [o.as?.stop(), o.cef?.stop(), o.fleet?.close()]));
    for (const o of ops) o.cefClient?.close();
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('[GEN-7] [E2E-1] [E2E-3] [BC-2] [BC-6] use case I.2: a meter that moves to another operator is endorsed by the new AS; its old data stays verifiable through any AS', async () => {
    const u = opA.fleet?.ues[0] as SimulatedUe;
    const ua = new UeClient({ address: addr(opA) });
    const [r1] = await ua.registerBatch([u.registration]);
    expect(r1?.errorCode).toBe('');
    const oldTx = r1?.tx as TxRef;
    const oldSigner = await RecordSigner.open({ identity: u.identity, keystore: u.keystore, alias: u.alias });
    await oldSigner.updateEndorsement(oldTx, 1);
    const before = await oldSigner.sign(new TextEncoder().encode('{"kWh":12.5}'), 'application/json', Date.now() - 1000);
    await new Promise((r) => setTimeout(r, 50));

    // the contract with operator A ends: AS-A endorses the end (version 2) from its CEF's event
    await opA.cefClient?.applyAction(u.identity, { $case: 'terminate', value: { terminationTimeMs: 0 } });
    const deadline = Date.now() + 15_000;
    let v2: TxRef | undefined;
    while (!v2 && Date.now() < deadline) {
      const r = await unary(query(opC), query(opC).getLatest, { identity: { imei: u.identity.imei, iccid: '', eid: '', msisdn: '' }, ueKey: new Uint8Array() }, { metadata: md() }).catch(() => undefined);
      // read through operator C's node: the end is on the shared ledger
      if (r?.latest && r.latest.txId !== oldTx.txId) v2 = { txId: r.latest.txId, txHash: new Uint8Array(), entryAddress: { ledgerId: LEDGER, asUrls: [addr(opC)] } };
      else await new Promise((res) => setTimeout(res, 100));
    }
    expect(v2, 'AS-A recorded the end of the old endorsement').toBeDefined();
    const after = await oldSigner.sign(new TextEncoder().encode('{"kWh":13.0}'), 'application/json', Date.now() + 1000);

    // operator B takes the meter: same device (IMEI), ported MSISDN, B's SIM and a new key in it
    const identityB: UeIdentity = { imei: u.identity.imei, iccid: syntheticIccid(900_123), eid: '', msisdn: u.identity.msisdn };
    const subB = { ...syntheticSubscriber(900_123, { plmnId: opB.plmn }), identity: identityB };
    const prov = await opB.cefClient?.provisionBatch([subB]);
    expect(prov?.provisioned, JSON.stringify(prov?.results)).toBe(1);
    await converged();
    const ks = new SoftwareKeyStore();
    await ks.generate('sim-b', SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256);
    const reg = await createRegistration(identityB, ks, 'sim-b');
    const [rb] = await new UeClient({ address: addr(opB) }).registerBatch([reg.signed]);
    expect(rb?.errorCode, rb?.errorMessage).toBe('');
    expect(rb?.version).toBe(1);
    const newSigner = await RecordSigner.open({ identity: identityB, keystore: ks, alias: 'sim-b' });
    await newSigner.updateEndorsement(rb?.tx as TxRef, 1);
    const withB = await newSigner.sign(new TextEncoder().encode('{"kWh":14.0}'), 'application/json', Date.now());
    await converged();

    // any node of the consortium verifies any of it, with only the consortium root CA
    const through = (o: Operator, ref: TxRef): TxRef => ({ ...ref, entryAddress: { ledgerId: LEDGER, asUrls: [addr(o)] } });
    const judge = async (rec: SignedRecord, ref: TxRef, o: Operator) => {
      const claimed = await consumerFor(o).endorsement(through(o, ref));
      const latest = await consumerFor(o).latestFor(through(o, ref), claimed.ueKey);
      return { verdict: checkRecord(rec, claimed, latest), claimed, latest };
    };
    for (const o of ops) {
      const a = await judge(before, oldTx, o);
      expect(a.verdict.ok, `${o.node}: signed before the switch`).toBe(true);
      expect(a.claimed.asSubject).toBe('as-a');
      expect(a.latest.endorsement.accountStatus?.state).toBe(ContractState.CONTRACT_STATE_TERMINATED);
      const b = await judge(after, oldTx, o);
      expect(!b.verdict.ok && b.verdict.code).toBe('SIGNED_AFTER_TERMINATION');
      const n = await judge(withB, rb?.tx as TxRef, o);
      expect(n.verdict.ok, `${o.node}: signed with operator B's endorsement`).toBe(true);
      expect(n.claimed.asSubject).toBe('as-b');
      expect(n.claimed.endorsement.accountStatus?.plmnId).toBe(opB.plmn);
    }
    // the device's whole history, both operators, from operator C's node
    const h = await unary(query(opC), query(opC).getHistory, { identity: { imei: u.identity.imei, iccid: '', eid: '', msisdn: '' } }, { metadata: md() });
    expect(h.versions).toHaveLength(3);
    ua.close();
  });

  it('[FW-BC] [RP-DD] [E2E-3] an AS node killed under load and restarted catches up and reaches the same checkpoint root; nothing acknowledged is lost', async () => {
    const acked: TxRef[] = [];
    const next = new Map(ops.map((o) => [o.id, 1]));
    const load = async (o: Operator, rounds: number): Promise<void> => {
      const client = new UeClient({ address: addr(o), timeoutMs: 10_000 });
      try {
        for (let i = 0; i < rounds; i++) {
          const start = next.get(o.id) as number;
          next.set(o.id, start + 3);
          const regs = (o.fleet?.ues.slice(start, start + 3) ?? []).map((x) => x.registration);
          const res = await client.registerBatch(regs).catch(() => []);
          for (const r of res) if (r.tx && r.errorCode === '') acked.push(r.tx);
        }
      } finally {
        client.close();
      }
    };
    // load on all three; B is killed mid-way, A and C go on
    const la = load(opA, 6);
    const lc = load(opC, 6);
    const lb = load(opB, 6);
    await new Promise((r) => setTimeout(r, 300));
    await opB.as?.kill('SIGKILL');
    await Promise.all([la, lc, lb]);
    const sizeWithoutB = (await checkpointOf(opA)).size;
    opB.as = await startAs(opB);
    queries.get(opB.id)?.close();
    queries.delete(opB.id);
    const cp = await converged();
    expect(cp.size).toBeGreaterThanOrEqual(sizeWithoutB);
    expect(acked.length).toBeGreaterThan(10);
    // every acknowledged endorsement is on every node, byte for byte
    for (const o of ops) {
      consumers.get(o.id)?.close();
      consumers.delete(o.id);
      for (const ref of acked) {
        const r = await unary(query(o), query(o).getEndorsement, { txId: ref.txId, ledgerId: LEDGER, view: EndorsementView.ENDORSEMENT_VIEW_FULL, withLatestProof: false }, { metadata: md() });
        const v = await consumerFor(o).endorsement({ ...ref, entryAddress: { ledgerId: LEDGER, asUrls: [addr(o)] } });
        expect(toHex(v.leafHash)).toBe(toHex(ref.txHash));
        expect(r.proven?.txId).toBe(ref.txId);
      }
    }
    // and the restarted node takes load again
    await load(opB, 1);
    await converged();
  }, 90_000);
});
