/**
 * The consortium ledger with a real 3-member etcd cluster and three AS nodes of three
 * operators (in-process ConsortiumLedgers, each with its own SQLite copy and its RP-dd server
 * on loopback): ordering, validation of every block, proofs from any node, witness
 * cosignatures enforced by the consumer SDK, governance by majority, catch-up from peers after
 * etcd pruned its history, and etcd member failures.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BlockHeader, LedgerTx, SignedEndorsement, TxType, type SignedCheckpoint } from '../../proto/gen/divs/v1/common.ts';
import { ConsortiumServiceService, LedgerSyncServiceService } from '../../proto/gen/divs/v1/as_sync.ts';
import { consortiumHandlers } from '../../as-node/src/ledger/consortium/node.ts';
import { runConsortiumCli } from '../../as-node/src/governance/cli.ts';
import { writeFileSync } from 'node:fs';
import { decodeEndorsementTx } from '../../as-node/src/endorse.ts';
import { DivsError } from '../../protocol/src/errors.ts';
import { Domain, pae, sha256, toHex } from '../../protocol/src/bytes.ts';
import { rootOf } from '../../protocol/src/merkle.ts';
import { importPrivateKey, nodeSigner, OwnSignatures } from '../../protocol/src/suites.ts';
import { createRootCa, pemToDer } from '../../protocol/src/pki.ts';
import { RpcServer } from '../../platform/src/grpc.ts';
import { Authenticator } from '../../as-node/src/auth.ts';
import { syncHandlers } from '../../as-node/src/rpc/sync.ts';
import { ConsortiumLedger } from '../../as-node/src/ledger/consortium/ledger.ts';
import { EtcdClient } from '../../as-node/src/ledger/consortium/etcd.ts';
import { EtcdCluster, freePort } from '../../as-node/src/ledger/consortium/etcd-cluster.ts';
import { CONSORTIUM_PROPOSER, encodeEnvelope } from '../../as-node/src/ledger/consortium/block.ts';
import { nextStateRoot } from '../../as-node/src/ledger/consortium/state-root.ts';
import { createLocalConsortium, createLocalOrg, orgEntry, type LocalConsortium, type LocalNode, type LocalOrg } from '../../as-node/src/governance/local-consortium.ts';
import { Membership } from '../../as-node/src/governance/membership.ts';
import { approveConfigUpdate, assembleConfigUpdate, createConfigUpdate } from '../../as-node/src/governance/config-update.ts';
import { verifyProvenEndorsement } from '../../consumer/src/verify.ts';
import { verifyCosignatures, witnessFromCertificate, type WitnessPolicy } from '../../consumer/src/witness.ts';
import { describeEtcd } from './helpers.ts';
import { endorsementTx, endorserOf, newUe, registrations, withBrokenSignature, type Endorser } from './fixtures.ts';

const LEDGER = 'divs-consortium-test';
const PEER_TOKEN = randomBytes(18).toString('hex');
const ADMIN_TOKEN = randomBytes(18).toString('hex');

interface TestNode {
  name: string;
  local: LocalNode;
  ledger: ConsortiumLedger;
  server: RpcServer;
  port: number;
  path: string;
  /** Signatures this node's AS made (as an AS node's crypto pool notes them). */
  own: OwnSignatures;
}

let etcd: EtcdCluster;
let c: LocalConsortium;
let dir: string;
let ports: Record<string, number>;
const nodes = new Map<string, TestNode>();
let anchors: { roots: Uint8Array[] };
let A: Endorser;
let B: Endorser;
let C: Endorser;
let orgD: LocalOrg | undefined;

const node = (name: string): TestNode => nodes.get(name) as TestNode;
const running = (): TestNode[] => [...nodes.values()];

async function startNode(local: LocalNode, genesis: Membership = c.genesis, o: { turnTimeoutMs?: number } = {}): Promise<TestNode> {
  const path = join(dir, `${local.name}.db`);
  const own = new OwnSignatures();
  const ledger = await ConsortiumLedger.open({
    path,
    genesis,
    nodeName: local.name,
    signer: nodeSigner(importPrivateKey(local.keyPem), own),
    ownSignatures: own,
    certChain: local.certChain,
    etcd: { endpoints: etcd.endpoints, requestTimeoutMs: 2500, attemptTimeoutMs: 1200 },
    peerToken: PEER_TOKEN,
    retainBlocks: 6,
    compactEvery: 4,
    pollIntervalMs: 300,
    ...o,
  });
  const auth = new Authenticator([
    { token: PEER_TOKEN, name: 'peers', roles: ['peer'] },
    { token: ADMIN_TOKEN, name: 'admins', roles: ['admin'] },
  ]);
  const server = new RpcServer().add(LedgerSyncServiceService, syncHandlers(ledger, auth)).add(ConsortiumServiceService, consortiumHandlers(ledger, auth));
  const port = await server.listen('127.0.0.1', ports[local.name] ?? 0);
  const n = { name: local.name, local, ledger, server, port, path, own };
  nodes.set(local.name, n);
  return n;
}

async function stopNode(name: string): Promise<void> {
  const n = node(name);
  nodes.delete(name);
  n.ledger.close();
  await n.server.close(200);
}

/** Waits until every running node has the same height (at least `min`) as the highest one, and returns it. */
async function converge(min = 0, timeoutMs = 15_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hs = running().map((n) => n.ledger.info().height);
    const max = Math.max(...hs);
    if (max >= min && hs.every((h) => h === max)) return max;
    if (Date.now() > deadline) throw new Error(`nodes did not converge: ${running().map((n) => `${n.name}=${n.ledger.info().height}`).join(', ')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function expectSameLedger(): void {
  const [first, ...rest] = running();
  const ref = first!.ledger.info();
  for (const n of rest) {
    const i = n.ledger.info();
    expect(i.height, n.name).toBe(ref.height);
    expect(toHex(i.rootHash), n.name).toBe(toHex(ref.rootHash));
    expect(toHex(i.stateRoot), n.name).toBe(toHex(ref.stateRoot));
  }
}

async function expectCode(p: Promise<unknown>, code: string): Promise<DivsError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(DivsError);
  expect((err as DivsError).code, (err as Error).message).toBe(code);
  return err as DivsError;
}

const witnessesOf = (names: string[]): WitnessPolicy['witnesses'] => names.map((n) => witnessFromCertificate((c.nodes.find((x) => x.name === n) as LocalNode).certChain, anchors));

describeEtcd('consortium ledger over a real etcd cluster', () => {
  beforeAll(async () => {
    etcd = await EtcdCluster.start();
    dir = mkdtempSync(join(tmpdir(), 'divs-consortium-'));
    ports = { 'as-a': await freePort(), 'as-b': await freePort(), 'as-c': await freePort(), 'as-d': await freePort() };
    const urls = Object.fromEntries(Object.entries(ports).map(([k, p]) => [k, [`127.0.0.1:${p}`]]));
    c = await createLocalConsortium({
      ledgerId: LEDGER,
      orgs: [
        { id: 'op-a', name: 'Operator A', nodes: ['as-a'] },
        { id: 'op-b', name: 'Operator B', nodes: ['as-b'] },
        { id: 'op-c', name: 'Operator C', nodes: ['as-c'] },
      ],
      nodeUrls: urls,
    });
    anchors = { roots: [pemToDer(c.root.certPem)] };
    [A, B, C] = c.nodes.map(endorserOf) as [Endorser, Endorser, Endorser];
    await Promise.all(c.nodes.map((n) => startNode(n)));
  }, 60_000);

  afterAll(async () => {
    for (const n of running()) await stopNode(n.name).catch(() => undefined);
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('[FW-BC] [BC-1] [RP-DD] [E2E-3] three operators append to one ledger ordered by etcd; every node stores the same blocks', async () => {
    // concurrent appends from all three nodes, twice
    for (let round = 0; round < 2; round++) {
      const results = await Promise.all([node('as-a').ledger.append(registrations(A, 20)), node('as-b').ledger.append(registrations(B, 15)), node('as-c').ledger.append(registrations(C, 10))]);
      for (const r of results) {
        // an append is atomic: its entries are consecutive, in one block
        expect(new Set(r.map((e) => e.blockHeight)).size).toBe(1);
        expect(r.map((e) => e.txId)).toEqual(r.map((_, i) => (r[0]?.txId ?? 0) + i));
      }
    }
    const height = await converge();
    expect(height).toBe(7); // genesis + 6 blocks
    expectSameLedger();
    const ref = node('as-a').ledger.blocks(0, 100);
    for (const n of running()) {
      const bs = n.ledger.blocks(0, 100);
      expect(bs.map((b) => toHex(b.hash))).toEqual(ref.map((b) => toHex(b.hash)));
      expect(bs.map((b) => b.txs.map(toHex))).toEqual(ref.map((b) => b.txs.map(toHex)));
    }
    // block 0 is the genesis configuration; headers name the consortium as proposer and link up
    const g = LedgerTx.decode(ref[0]?.txs[0] as Uint8Array);
    expect(g.type).toBe(TxType.TX_TYPE_CONFIG);
    for (const [i, b] of ref.entries()) {
      const h = BlockHeader.decode(b.header);
      expect(h.proposer).toBe(CONSORTIUM_PROPOSER);
      if (i > 0) expect(toHex(h.previousBlockHash)).toBe(toHex(ref[i - 1]?.hash as Uint8Array));
    }
    expect(running().flatMap((n) => n.ledger.refusals())).toEqual([]);
  });

  it('[E2E-3] [RP-DD] [FW-SU] any node answers for any transaction, with proofs against a checkpoint all nodes cosigned', async () => {
    const [e] = await node('as-a').ledger.append(registrations(A, 1));
    await converge();
    await Promise.all(running().map((n) => n.ledger.waitFor({ cosigners: 2 })));
    const texts = new Set<string>();
    for (const n of running()) {
      const l = n.ledger;
      const got = l.get(e!.txId);
      expect(toHex(got!.tx)).toBe(toHex(e!.tx));
      const cp = l.checkpoint();
      texts.add(cp.note.slice(0, cp.note.indexOf('\n\n')));
      const { endorsement } = decodeEndorsementTx(got!.tx);
      const v = verifyProvenEndorsement(
        { txId: e!.txId, tx: got!.tx, inclusion: l.inclusionProof(e!.txId), checkpoint: cp, latest: l.latestProof(endorsement.ueKey) },
        anchors,
        { ledgerId: LEDGER, witnesses: { witnesses: witnessesOf(['as-a', 'as-b', 'as-c']), threshold: 3 } },
      );
      expect(v.asSubject).toBe('as-a');
      expect(v.isLatest).toBe(true);
      expect(v.checkpoint.signer).toBe(n.name);
      expect(v.checkpoint.cosigners?.sort()).toEqual(['as-a', 'as-b', 'as-c']);
    }
    // every node signed the same tree at the same size
    expect(texts.size).toBe(1);
  });

  it('[RP-DD] [FW-SU] the consumer SDK enforces k-of-n witness cosignatures', async () => {
    await Promise.all(running().map((n) => n.ledger.waitFor({ cosigners: 2 })));
    const cp: SignedCheckpoint = node('as-b').ledger.checkpoint();
    const all = witnessesOf(['as-a', 'as-b', 'as-c']);
    expect(verifyCosignatures(cp.note, { witnesses: all, threshold: 3 }).cosigners.sort()).toEqual(['as-a', 'as-b', 'as-c']);
    // only the serving node's own signature left: 1 of 2 required
    const bare = cp.note.split('\n').filter((l) => !l.startsWith('\u2014 as-a') && !l.startsWith('\u2014 as-c')).join('\n');
    await expectCode(Promise.resolve().then(() => verifyCosignatures(bare, { witnesses: all, threshold: 2 })), 'COSIGNATURES_MISSING');
    // a witness configured with another key does not count, whatever its name
    const impostor = { ...witnessesOf(['as-c'])[0]!, publicKey: witnessesOf(['as-a'])[0]!.publicKey };
    await expectCode(Promise.resolve().then(() => verifyCosignatures(cp.note, { witnesses: [...witnessesOf(['as-a', 'as-b']), { ...impostor, name: 'as-c' }], threshold: 3 })), 'COSIGNATURES_MISSING');
    // a tampered cosignature line does not count either
    const tampered = cp.note.replace(/(\u2014 as-a [A-Za-z0-9+/]{10})([A-Za-z0-9+/])/, (_, a: string, ch: string) => a + (ch === 'A' ? 'B' : 'A'));
    expect(verifyCosignatures(tampered, { witnesses: all, threshold: 2 }).cosigners).not.toContain('as-a');
    await expectCode(Promise.resolve().then(() => verifyCosignatures(cp.note, { witnesses: all, threshold: 4 })), 'INVALID_ARGUMENT');
  });

  it('[FW-BC] [GEN-5] a forged or malformed block is refused by every node, reported, and never reaches a store', async () => {
    const height = await converge();
    const client = new EtcdClient({ endpoints: etcd.endpoints });
    const key = `/divs/${LEDGER}/blocks/${String(height).padStart(16, '0')}`;
    const ref = node('as-a').ledger;
    const info = ref.info();
    const last = ref.blocks(height - 1, 1)[0]!;
    const lastTs = BlockHeader.decode(last.header).timestampMs;
    const leaves = Array.from({ length: info.size }, (_, i) => ref.get(i)!.leafHash);

    /** A block on the current tip, right in every respect unless `tamper` says otherwise. */
    const build = (as: Endorser, tamper: { sig?: boolean; txRoot?: boolean; prev?: boolean; stateRoot?: boolean } = {}): Uint8Array => {
      const ue = newUe();
      const tx = tamper.sig ? withBrokenSignature(endorsementTx(as, ue)) : endorsementTx(as, ue);
      const leaf = sha256(new Uint8Array([0]), tx);
      const txRoot = rootOf([...leaves, leaf]);
      const stateRoot = nextStateRoot(info.stateRoot, [ref.latestProof(ue.ueKey)], [[ue.ueKey, leaf]]);
      const header = BlockHeader.encode({
        ledgerId: LEDGER,
        height,
        previousBlockHash: tamper.prev ? randomBytes(32) : last.hash,
        firstTxId: info.size,
        txCount: 1,
        txRoot: tamper.txRoot ? randomBytes(32) : txRoot,
        stateRoot: tamper.stateRoot ? randomBytes(32) : stateRoot,
        timestampMs: Math.max(lastTs, Date.now()),
        proposer: CONSORTIUM_PROPOSER,
      }).finish();
      return encodeEnvelope(header, [tx]);
    };
    const outsider = await (async () => {
      const root = await createRootCa({ name: 'CN=Rogue root', validityDays: 3650 });
      const rogue = await createLocalOrg(root, { id: 'rogue', name: 'Rogue', nodes: ['as-a'] }); // even reusing a member's name
      return endorserOf(rogue.nodes[0] as LocalNode);
    })();

    const forgeries: [string, Uint8Array, string][] = [
      ['garbage bytes', randomBytes(300), 'INVALID_BLOCK'],
      ['a broken AS signature', build(A, { sig: true }), 'INVALID_SIGNATURE'],
      ['a wrong tx_root', build(B, { txRoot: true }), 'INVALID_BLOCK'],
      ['a wrong state_root', build(B, { stateRoot: true }), 'INVALID_BLOCK'],
      ['a broken hash link', build(C, { prev: true }), 'INVALID_BLOCK'],
      ['an endorsement by an AS outside the consortium', build(outsider), 'NOT_MEMBER'],
    ];
    for (const [what, bytes, code] of forgeries) {
      const before = running().map((n) => n.ledger.refusals().length);
      const put = await client.putIfAbsent(key, bytes);
      expect(put.created, what).toBe(true);
      const deadline = Date.now() + 10_000;
      while (running().some((n, i) => n.ledger.refusals().length === before[i]) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const n of running()) {
        const r = n.ledger.refusals().at(-1);
        expect(r?.height, `${n.name}: ${what}`).toBe(height);
        expect(r?.code, `${n.name}: ${what}: ${r?.message}`).toBe(code);
        expect(n.ledger.info().height, `${n.name}: ${what}`).toBe(height);
      }
      // the refused block is deleted from etcd, freeing the height
      for (let i = 0; i < 100 && (await client.range(key)).kvs.length > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect((await client.range(key)).kvs, what).toHaveLength(0);
    }
    // a block built by hand with the right roots is accepted by every node (validation is exact)
    const good = build(A);
    expect((await client.putIfAbsent(key, good)).created).toBe(true);
    expect(await converge(height + 1)).toBe(height + 1);
    expectSameLedger();
    client.close();
    // and the nodes go on appending
    await node('as-b').ledger.append(registrations(B, 3));
    await converge();
    expectSameLedger();
  });

  it('[FW-BC] [END-3] a node does not verify again the endorsements its own AS signed before proposing them; a broken or another AS\'s signature it always checks', async () => {
    const a = node('as-a');
    const refused = running().map((n) => n.ledger.refusals().length);
    const entries = await a.ledger.append(registrations(A, 5, a.own));
    const height = await converge(entries[0]!.blockHeight + 1);
    expectSameLedger();
    // the other nodes verified those signatures: nothing was refused
    expect(running().map((n) => n.ledger.refusals().length)).toEqual(refused);
    // not noted: verified, and refused at the append
    await expectCode(a.ledger.append([{ tx: withBrokenSignature(endorsementTx(A, newUe())) }]), 'INVALID_SIGNATURE');
    // another AS's endorsement is verified even when its bytes were noted here
    const foreign = withBrokenSignature(endorsementTx(B, newUe()));
    const se = SignedEndorsement.decode(LedgerTx.decode(foreign).payload);
    a.own.note(pae(Domain.endorsement, se.endorsement), se.signature);
    await expectCode(a.ledger.append([{ tx: foreign }]), 'INVALID_SIGNATURE');
    expect(a.ledger.info().height).toBe(height);
  });

  it('[FW-BC] [GEN-6] a version that does not extend the UE\'s latest one is refused with NOT_LATEST', async () => {
    const ue = newUe();
    const [v1] = await node('as-a').ledger.append([{ tx: endorsementTx(A, ue), ueKey: ue.ueKey }]);
    await converge();
    // a second "version 1" of the same key, at another operator's node
    await expectCode(node('as-b').ledger.append([{ tx: endorsementTx(B, ue) }]), 'NOT_LATEST');
    // a version 2 naming something other than the latest
    await expectCode(node('as-b').ledger.append([{ tx: endorsementTx(B, ue, { version: 2, previous: { txId: 1, leafHash: v1!.leafHash } }) }]), 'NOT_LATEST');
    // the right version 2 is accepted, and the state root on every node says it is the latest
    const [v2] = await node('as-b').ledger.append([{ tx: endorsementTx(B, ue, { version: 2, previous: { txId: v1!.txId, leafHash: v1!.leafHash } }) }]);
    await converge();
    for (const n of running()) expect(n.ledger.latest(ue.ueKey)?.txId).toBe(v2!.txId);
    // an endorsement whose as_id is not its signer's name
    await expectCode(node('as-c').ledger.append([{ tx: endorsementTx(C, newUe(), { asId: 'as-a' }) }]), 'NOT_MEMBER');
  });

  it('[RP-DD] [E2E-3] a node that was down while etcd pruned and compacted its history catches up from its peers', async () => {
    await stopNode('as-b');
    const before = node('as-a').ledger.info().height;
    for (let i = 0; i < 10; i++) await node(i % 2 === 0 ? 'as-a' : 'as-c').ledger.append(registrations(i % 2 === 0 ? A : C, 5));
    await converge();
    const client = new EtcdClient({ endpoints: etcd.endpoints });
    const r = await client.range(`/divs/${LEDGER}/blocks/`, { rangeEnd: `/divs/${LEDGER}/blocks0`, keysOnly: true });
    client.close();
    const first = Number(r.kvs[0]?.key.split('/').at(-1));
    // etcd no longer holds the blocks as-b lacks
    expect(first).toBeGreaterThan(before);
    await startNode(c.nodes[1] as LocalNode);
    await converge();
    expectSameLedger();
    expect(node('as-b').ledger.refusals()).toEqual([]);
    // and it takes part again
    await node('as-b').ledger.append(registrations(B, 2));
    await converge();
    expectSameLedger();
  });

  it('[FW-BC] a turn passes at once when its owner has nothing to append', async () => {
    // turn timeouts far beyond this test's time limit: a node that waited for an idle owner
    // (as-b, as-c) instead of taking the turn it passed would make the test time out
    const names = c.nodes.map((n) => n.name);
    for (const n of names) await stopNode(n);
    for (const n of c.nodes) await startNode(n, c.genesis, { turnTimeoutMs: 60_000 });
    const from = await converge();
    for (let i = 0; i < 6; i++) await node('as-a').ledger.append(registrations(A, 2));
    expect(await converge(from + 6)).toBe(from + 6);
    expectSameLedger();
    for (const n of names) await stopNode(n);
    for (const n of c.nodes) await startNode(n);
    await converge();
  }, 30_000);

  it('[BC-5] [SEC-3] an organization joins by a config update approved off-line by a majority; a minority proposal is refused', async () => {
    const current = node('as-a').ledger.membership();
    const d = await createLocalOrg(c.root, { id: 'op-d', name: 'Operator D', nodes: ['as-d'] });
    orgD = d.org;
    const D = endorserOf(d.nodes[0] as LocalNode);
    // before: as-d is nobody
    await expectCode(node('as-a').ledger.append([{ tx: endorsementTx(D, newUe()) }]), 'NOT_MEMBER');

    const next = Membership.fromConfig({ ...current.config, version: current.version + 1, orgs: [...current.config.orgs, orgEntryBytes(d.org, d.nodes)] });
    const update = createConfigUpdate(current, next, 'admit Operator D');
    const approve = (org: LocalOrg) => approveConfigUpdate(update, org.id, pemToDer(org.adminCertPem), nodeSigner(importPrivateKey(org.adminKeyPem)));
    const [oa, ob, oc] = c.orgs as [LocalOrg, LocalOrg, LocalOrg];
    const height = await converge();
    // one of three: short of a majority, refused, nothing appended
    await expectCode(node('as-c').ledger.submitConfigUpdate(assembleConfigUpdate(update, [await approve(oa)])), 'CONFIG_MAJORITY_MISSING');
    // an approval whose signature was altered is an error, not a missing vote
    const forged = await approve(ob);
    forged.signature[3] = (forged.signature[3] as number) ^ 1;
    await expectCode(node('as-c').ledger.submitConfigUpdate(assembleConfigUpdate(update, [await approve(oa), forged])), 'INVALID_SIGNATURE');
    // an approval by someone who is not an admin of the organization it names
    const notAdmin = { ...(await approve(oc)), orgId: 'op-b' };
    await expectCode(node('as-c').ledger.submitConfigUpdate(assembleConfigUpdate(update, [await approve(oa), notAdmin])), 'NOT_MEMBER');
    expect(await converge()).toBe(height);
    for (const n of running()) expect(n.ledger.membership().version).toBe(current.version);

    // two of three: accepted, and every node applies the new configuration
    const { membership } = await node('as-c').ledger.submitConfigUpdate(assembleConfigUpdate(update, [await approve(oa), await approve(ob)]));
    expect(membership.version).toBe(current.version + 1);
    await converge();
    for (const n of running()) expect(n.ledger.membership().orgs.map((o) => o.id)).toEqual(['op-a', 'op-b', 'op-c', 'op-d']);
    // the approved update cannot be replayed (it names the configuration it replaced)
    await expectCode(node('as-a').ledger.submitConfigUpdate(assembleConfigUpdate(update, [await approve(oa), await approve(ob)])), 'CONFIG_INVALID');

    // as-d joins with only the genesis file: it replays the history (from peers: etcd pruned it)
    c.nodes.push(d.nodes[0] as LocalNode);
    await startNode(d.nodes[0] as LocalNode);
    await converge();
    expectSameLedger();
    expect(node('as-d').ledger.membership().version).toBe(current.version + 1);
    await node('as-d').ledger.append(registrations(D, 3));
    await converge();
    expectSameLedger();

    // removing op-c needs 3 of the 4 organizations now
    const now = node('as-a').ledger.membership();
    const without = Membership.fromConfig({ ...now.config, version: now.version + 1, orgs: now.config.orgs.filter((o) => o.id !== 'op-c') });
    const upd2 = createConfigUpdate(now, without, 'Operator C leaves');
    const approve2 = (org: LocalOrg) => approveConfigUpdate(upd2, org.id, pemToDer(org.adminCertPem), nodeSigner(importPrivateKey(org.adminKeyPem)));
    await expectCode(node('as-a').ledger.submitConfigUpdate(assembleConfigUpdate(upd2, [await approve2(oa), await approve2(d.org)])), 'CONFIG_MAJORITY_MISSING');
    await node('as-a').ledger.submitConfigUpdate(assembleConfigUpdate(upd2, [await approve2(oa), await approve2(d.org), await approve2(ob)]));
    await converge();
    for (const n of running()) expect(n.ledger.membership().orgs.map((o) => o.id)).toEqual(['op-a', 'op-b', 'op-d']);
    // as-c still follows the ledger, but its endorsements are no longer accepted
    await expectCode(node('as-c').ledger.append(registrations(C, 1)), 'NOT_MEMBER');
    await node('as-b').ledger.append(registrations(B, 2));
    await converge();
    expectSameLedger();
  });

  it('[BC-5] [SEC-3] the off-line flow with files: propose, one approval file per admin, submit over gRPC; short of a majority is refused', async () => {
    const f = (name: string): string => join(dir, name);
    const files = (org: LocalOrg): [string, string] => {
      writeFileSync(f(`${org.id}-admin.pem`), org.adminCertPem);
      writeFileSync(f(`${org.id}-admin.key`), org.adminKeyPem, { mode: 0o600 });
      return [f(`${org.id}-admin.pem`), f(`${org.id}-admin.key`)];
    };
    const at = `127.0.0.1:${node('as-a').port}`;
    const before = node('as-a').ledger.membership();
    const quiet = console.log;
    console.log = () => undefined;
    try {
      expect(await runConsortiumCli(['propose', '--node', at, `--token=${ADMIN_TOKEN}`, '--add-node', 'op-a:as-a2=127.0.0.1:1', '--out', f('update.json')])).toBe(0);
      const approve = async (org: LocalOrg) => {
        const [cert, key] = files(org);
        expect(await runConsortiumCli(['approve', '--update', f('update.json'), '--org', org.id, '--admin-cert', cert, '--admin-key', key, '--out', f(`approval-${org.id}.json`)])).toBe(0);
        return f(`approval-${org.id}.json`);
      };
      const [oa, ob] = c.orgs as [LocalOrg, LocalOrg];
      const one = await approve(oa);
      // 1 of the 3 organizations in force: refused, over gRPC, with its code
      await expectCode(runConsortiumCli(['submit', '--update', f('update.json'), '--approval', one, '--node', at, `--token=${ADMIN_TOKEN}`]), 'CONFIG_MAJORITY_MISSING');
      // submitting needs the admin role
      await expectCode(runConsortiumCli(['submit', '--update', f('update.json'), '--approval', one, '--node', at, `--token=${PEER_TOKEN}`]), 'PERMISSION_DENIED');
      const two = await approve(ob);
      const three = await approve(orgD as LocalOrg);
      expect(await runConsortiumCli(['submit', '--update', f('update.json'), '--approval', one, '--approval', two, '--approval', three, '--node', `127.0.0.1:${node('as-b').port}`, `--token=${ADMIN_TOKEN}`])).toBe(0);
    } finally {
      console.log = quiet;
    }
    await converge();
    for (const n of running()) {
      expect(n.ledger.membership().version).toBe(before.version + 1);
      expect(n.ledger.membership().orgOfNode('as-a2')?.id).toBe('op-a');
    }
  });

  it('[BC-1] a node given another consortium\'s genesis refuses the etcd prefix and never touches its blocks', async () => {
    const other = await createLocalConsortium({ ledgerId: LEDGER, orgs: [{ id: 'op-z', name: 'Operator Z', nodes: ['as-z'] }] });
    const z = other.nodes[0] as LocalNode;
    const height = await converge();
    const ledger = await ConsortiumLedger.open({
      path: join(dir, 'as-z.db'),
      genesis: other.genesis,
      nodeName: 'as-z',
      signer: nodeSigner(importPrivateKey(z.keyPem)),
      certChain: z.certChain,
      etcd: { endpoints: etcd.endpoints },
    });
    try {
      expect(ledger.halted?.code).toBe('WRONG_LEDGER');
      expect(ledger.info().height).toBe(0);
      await expectCode(ledger.append(registrations(endorserOf(z), 1)), 'WRONG_LEDGER');
      expect(await converge()).toBe(height);
      expect(running().flatMap((n) => n.ledger.refusals()).filter((r) => r.height === 0)).toEqual([]);
    } finally {
      ledger.close();
    }
  });

  it('[FW-BC] etcd member faults: 1 of 3 down, writes go on; 2 down, ORDERING_UNAVAILABLE and no partial block; restarted, writes resume with nothing acknowledged lost', async () => {
    const acked: { txId: number; leaf: string }[] = [];
    const ack = (es: { txId: number; leafHash: Uint8Array }[]) => acked.push(...es.map((e) => ({ txId: e.txId, leaf: toHex(e.leafHash) })));
    await etcd.stopMember(0);
    ack(await node('as-a').ledger.append(registrations(A, 4)));
    ack(await node('as-b').ledger.append(registrations(B, 4)));
    const height = await converge();

    await etcd.stopMember(1);
    const lost = registrations(A, 4);
    await expectCode(node('as-a').ledger.append(lost), 'ORDERING_UNAVAILABLE');
    for (const n of running()) expect(n.ledger.info().height).toBe(height);

    await etcd.startMember(0);
    await etcd.startMember(1);
    await etcd.waitHealthy();
    // writes resume (the first may still meet the election)
    for (let i = 0; ; i++) {
      try {
        ack(await node('as-b').ledger.append(registrations(B, 4)));
        break;
      } catch (e) {
        if (i >= 10 || (e as DivsError).code !== 'ORDERING_UNAVAILABLE') throw e;
      }
    }
    ack(await node('as-a').ledger.append(registrations(A, 4)));
    await converge();
    expectSameLedger();
    // nothing acknowledged is lost, on any node
    for (const n of running()) for (const a of acked) expect(toHex(n.ledger.get(a.txId)!.leafHash), n.name).toBe(a.leaf);
    // the failed append is whole or absent, never partial
    const present = lost.filter((it) => node('as-c').ledger.latest(it.ueKey) !== undefined).length;
    expect([0, lost.length]).toContain(present);
  }, 60_000);
});

/** The genesis-entry of an organization as ConsortiumConfig org fields (DER). */
function orgEntryBytes(org: LocalOrg, ns: LocalNode[]) {
  const e = orgEntry(org, ns, { 'as-d': [`127.0.0.1:${ports['as-d']}`] });
  return { id: e.id, name: e.name, caCerts: [pemToDer(e.caCerts)], adminCerts: [pemToDer(e.adminCerts)], nodes: e.nodes };
}

