/**
 * The pure parts of the consortium backend, without etcd: state roots from proofs, block
 * validation against a node's store, membership and governance rules, witness policies.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { BlockHeader } from '../../proto/gen/divs/v1/common.ts';
import { DivsError } from '../../protocol/src/errors.ts';
import { MerkleFrontier } from '../../protocol/src/merkle.ts';
import { MemorySmtStore, SparseMerkleTree } from '../../protocol/src/smt.ts';
import { importPrivateKey, nodeSigner } from '../../protocol/src/suites.ts';
import { createRootCa, pemToDer } from '../../protocol/src/pki.ts';
import { addSignature, signCheckpoint } from '../../protocol/src/checkpoint.ts';
import { Domain, sha256, toHex } from '../../protocol/src/bytes.ts';
import { LocalLedger } from '../../as-node/src/ledger/local.ts';
import { nextStateRoot } from '../../as-node/src/ledger/consortium/state-root.ts';
import { CONSORTIUM_PROPOSER, GENESIS_PREV, checkTx, planBlock, validateBlock, type ChainTip } from '../../as-node/src/ledger/consortium/block.ts';
import { prefixEnd } from '../../as-node/src/ledger/consortium/etcd.ts';
import { createLocalConsortium, createLocalOrg, type LocalConsortium, type LocalNode, type LocalOrg } from '../../as-node/src/governance/local-consortium.ts';
import { Membership } from '../../as-node/src/governance/membership.ts';
import { approveConfigUpdate, assembleConfigUpdate, createConfigUpdate, genesisTx, verifyConfigUpdate } from '../../as-node/src/governance/config-update.ts';
import { changedConfig } from '../../as-node/src/governance/cli.ts';
import { verifyCosignatures, witnessFromCertificate } from '../../consumer/src/witness.ts';
import { endorsementTx, endorserOf, newUe, withBrokenSignature, type Endorser } from './fixtures.ts';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof DivsError) return e.code;
    throw e;
  }
  return 'OK';
}

async function acode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof DivsError) return e.code;
    throw e;
  }
  return 'OK';
}

let c: LocalConsortium;
let A: Endorser;
let dir: string;

beforeAll(async () => {
  c = await createLocalConsortium({
    ledgerId: 'divs-units',
    orgs: [
      { id: 'op-a', name: 'Operator A', nodes: ['as-a'] },
      { id: 'op-b', name: 'Operator B', nodes: ['as-b'] },
      { id: 'op-c', name: 'Operator C', nodes: ['as-c'] },
    ],
  });
  A = endorserOf(c.nodes[0] as LocalNode);
  dir = mkdtempSync(join(tmpdir(), 'divs-consortium-units-'));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('state root from latest-version proofs', () => {
  it('[FW-BC] equals the tree\'s own root after any batch of inserts and updates', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.tuple(fc.nat(40), fc.uint8Array({ minLength: 32, maxLength: 32 })), { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 6 }), (rounds) => {
        const tree = new SparseMerkleTree(new MemorySmtStore());
        const keyOf = (i: number): Uint8Array => sha256(new Uint8Array([i]));
        rounds.forEach((round, v) => {
          const updates = new Map<number, Uint8Array>();
          for (const [k, val] of round) updates.set(k, val);
          const list = [...updates].map(([k, val]) => [keyOf(k), val] as [Uint8Array, Uint8Array]);
          const predicted = nextStateRoot(tree.rootHash, list.map(([k]) => tree.prove(k)), list);
          tree.update(list, v + 1);
          expect(toHex(predicted)).toBe(toHex(tree.rootHash));
        });
      }),
      { numRuns: 60 },
    );
  });

  it('[FW-BC] refuses proofs that do not fold to the current root (LEDGER_TAMPERED)', () => {
    const tree = new SparseMerkleTree(new MemorySmtStore());
    const k = randomBytes(32);
    tree.update([[k, randomBytes(32)], [randomBytes(32), randomBytes(32)]], 1);
    const proof = tree.prove(k);
    proof.value = randomBytes(32);
    expect(code(() => nextStateRoot(tree.rootHash, [proof], [[k, randomBytes(32)]]))).toBe('LEDGER_TAMPERED');
    // a key without a proof cannot be placed
    expect(code(() => nextStateRoot(tree.rootHash, [], [[k, randomBytes(32)]]))).toBe('LEDGER_TAMPERED');
  });
});

describe('block validation against a node\'s store', () => {
  it('[FW-BC] [BC-1] accepts exactly the header its content determines; names every other refusal', async () => {
    const signer = nodeSigner(importPrivateKey((c.nodes[0] as LocalNode).keyPem));
    // the store stamps blocks with the time the consortium decided (see ledger.ts)
    const clock = { t: Date.now() - 1000 };
    const store = await LocalLedger.open({ path: join(dir, 'v.db'), ledgerId: 'divs-units', signer, signerName: CONSORTIUM_PROPOSER, certChain: A.certChain, now: () => clock.t });
    try {
      let tip: ChainTip = { height: 0, size: 0, lastHash: GENESIS_PREV, lastTimestamp: 0, stateRoot: store.info().stateRoot, frontier: MerkleFrontier.empty() };
      const at = new Date();
      const ctx = (height: number) => ({ membership: c.genesis, genesis: c.genesis, height, at, verifySignature: true });
      const opts = () => ({ ledgerId: 'divs-units', tip, membership: c.genesis, genesis: c.genesis, state: store, maxTxs: 100 });
      // block 0: the genesis configuration, and nothing else
      const g = planBlock('divs-units', tip, [checkTx(genesisTx(c.genesis), ctx(0))], store, clock.t);
      expect(await acode(validateBlock(g.header, [genesisTx(c.genesis)], opts()))).toBe('OK');
      expect(code(() => checkTx(endorsementTx(A, newUe()), ctx(0)))).toBe('INVALID_BLOCK');
      await store.append([{ tx: genesisTx(c.genesis) }]);
      expect(toHex(store.blocks(0, 1)[0]!.hash)).toBe(toHex(g.hash));
      tip = g.next;

      const ue = newUe();
      const tx = endorsementTx(A, ue);
      clock.t += 500;
      const plan = planBlock('divs-units', tip, [checkTx(tx, ctx(1))], store, clock.t);
      expect(await acode(validateBlock(plan.header, [tx], opts()))).toBe('OK');
      const h = BlockHeader.decode(plan.header);
      const variant = (patch: Partial<BlockHeader>): Uint8Array => BlockHeader.encode({ ...h, ...patch }).finish();
      expect(await acode(validateBlock(variant({ txRoot: randomBytes(32) }), [tx], opts()))).toBe('INVALID_BLOCK');
      expect(await acode(validateBlock(variant({ stateRoot: randomBytes(32) }), [tx], opts()))).toBe('INVALID_BLOCK');
      expect(await acode(validateBlock(variant({ previousBlockHash: randomBytes(32) }), [tx], opts()))).toBe('INVALID_BLOCK');
      expect(await acode(validateBlock(variant({ height: 5 }), [tx], opts()))).toBe('INVALID_BLOCK');
      expect(await acode(validateBlock(variant({ proposer: 'as-a' }), [tx], opts()))).toBe('INVALID_BLOCK');
      expect(await acode(validateBlock(variant({ timestampMs: clock.t - 5000 }), [tx], opts()))).toBe('INVALID_BLOCK');
      // certificates are judged at the block's time: long before they were issued, nobody is a member
      expect(code(() => checkTx(tx, { ...ctx(1), at: new Date(2_000) }))).toBe('NOT_MEMBER');
      expect(await acode(validateBlock(variant({ txCount: 2 }), [tx], opts()))).toBe('INVALID_BLOCK');
      expect(await acode(validateBlock(new Uint8Array([0xff, 0xff]), [tx], opts()))).toBe('INVALID_BLOCK');
      // a tx encoded another way than canonically (an unknown field appended) changes its leaf
      expect(await acode(validateBlock(plan.header, [new Uint8Array([...tx, 0x78, 0x01])], opts()))).toBe('INVALID_BLOCK');
      const badSig = withBrokenSignature(tx);
      expect(code(() => checkTx(badSig, ctx(1)))).toBe('INVALID_SIGNATURE');
      // in a block the signatures are checked apart (on the thread pool): a bad one is refused
      // even when the header is the one the content determines, and before a later tx's
      // structural fault
      const unchecked = (t: Uint8Array) => checkTx(t, { ...ctx(1), verifySignature: false });
      const forged = planBlock('divs-units', tip, [unchecked(badSig)], store, clock.t);
      expect(await acode(validateBlock(forged.header, [badSig], opts()))).toBe('INVALID_SIGNATURE');
      const tx2 = endorsementTx(A, newUe());
      const two = planBlock('divs-units', tip, [checkTx(tx2, ctx(1)), unchecked(badSig)], store, clock.t);
      expect(await acode(validateBlock(two.header, [tx2, badSig], opts()))).toBe('INVALID_SIGNATURE');
      expect(await acode(validateBlock(two.header, [badSig, new Uint8Array([0xff])], opts()))).toBe('INVALID_SIGNATURE');
      expect(await acode(validateBlock(two.header, [tx2, new Uint8Array([0xff])], opts()))).toBe('INVALID_BLOCK');
      // a signature the node made itself is taken as valid (madeHere): the hook gates the check
      expect(code(() => checkTx(badSig, { ...ctx(1), madeHere: () => true }))).toBe('OK');
      expect(code(() => checkTx(badSig, { ...ctx(1), madeHere: () => false }))).toBe('INVALID_SIGNATURE');
      // two versions of one UE key in one block
      expect(code(() => planBlock('divs-units', tip, [checkTx(tx, ctx(1)), checkTx(endorsementTx(A, ue), ctx(1))], store, clock.t))).toBe('INVALID_BLOCK');
      // a configuration update must be alone
      expect(code(() => planBlock('divs-units', tip, [checkTx(tx, ctx(1)), { ...checkTx(genesisTx(c.genesis), ctx(0)), genesis: false }], store, clock.t))).toBe('INVALID_BLOCK');
      // and the accepted block, stored, is the planned one byte for byte
      await store.append([{ tx, ueKey: ue.ueKey }]);
      expect(toHex(store.blocks(1, 1)[0]!.hash)).toBe(toHex(plan.hash));
    } finally {
      store.close();
    }
  });
});

describe('membership and governance', () => {
  it('[BC-1] [SEC-3] identifies member nodes by certificate chain; anyone else is NOT_MEMBER', async () => {
    const m = c.genesis;
    expect(m.identify(A.certChain, new Date()).node).toBe('as-a');
    expect(m.identify(A.certChain, new Date()).orgId).toBe('op-a');
    // an AS of a member organization that is not a listed node
    const extra = await createLocalOrg(c.root, { id: 'op-x', name: 'Operator X', nodes: ['as-x'] });
    expect(code(() => m.identify(extra.nodes[0]!.certChain, new Date()))).toBe('NOT_MEMBER');
    // a chain from another root, even with a member's name
    const rogue = await createLocalOrg(await createRootCa({ name: 'CN=Rogue', validityDays: 3650 }), { id: 'op-a', name: 'Operator A', nodes: ['as-a'] });
    expect(code(() => m.identify(rogue.nodes[0]!.certChain, new Date()))).toBe('NOT_MEMBER');
    expect(code(() => m.identify([randomBytes(100)], new Date()))).toBe('INVALID_CERTIFICATE');
    // validity is judged at the given time (the block's), not now
    expect(code(() => m.identify(A.certChain, new Date(Date.now() + 3650 * 86_400_000)))).toBe('NOT_MEMBER');
  });

  it('[BC-5] refuses malformed configurations with CONFIG_INVALID', () => {
    const j = structuredClone(c.genesisJson);
    expect(code(() => Membership.fromGenesisJson({ ...j, orgs: [...j.orgs, j.orgs[0]] }))).toBe('CONFIG_INVALID');
    expect(code(() => Membership.fromGenesisJson({ ...j, orgs: [] }))).toBe('CONFIG_INVALID');
    expect(code(() => Membership.fromGenesisJson({ ...j, orgs: [{ ...j.orgs[0], nodes: [{ name: 'has space', urls: [] }] }] }))).toBe('CONFIG_INVALID');
    expect(code(() => Membership.fromGenesisJson({ ...j, orgs: [{ ...j.orgs[0], caCerts: j.orgs[0]!.adminCerts }] }))).toBe('CONFIG_INVALID');
    expect(code(() => Membership.fromBytes(randomBytes(64)))).toBe('CONFIG_INVALID');
  });

  it('[BC-5] [SEC-3] a configuration update needs a strict majority of the organizations in force', async () => {
    const cur = c.genesis;
    const next = changedConfig(cur, { removeNode: 'as-c' });
    const update = createConfigUpdate(cur, next, 'as-c retires');
    const approve = (o: LocalOrg) => approveConfigUpdate(update, o.id, pemToDer(o.adminCertPem), nodeSigner(importPrivateKey(o.adminKeyPem)));
    const [oa, ob, oc] = c.orgs as [LocalOrg, LocalOrg, LocalOrg];
    const at = new Date();
    expect(code(() => verifyConfigUpdate(assembleConfigUpdate(update, []), cur, at))).toBe('CONFIG_MAJORITY_MISSING');
    const a1 = await approve(oa);
    expect(code(() => verifyConfigUpdate(assembleConfigUpdate(update, [a1, a1]), cur, at))).toBe('CONFIG_MAJORITY_MISSING'); // one org twice is one vote
    const ok = verifyConfigUpdate(assembleConfigUpdate(update, [a1, await approve(oc)]), cur, at);
    expect(ok.approvedBy).toEqual(['op-a', 'op-c']);
    expect(ok.next.nodes().map((n) => n.name)).toEqual(['as-a', 'as-b']);
    // an update must name the configuration it replaces and the next version
    const stale = createConfigUpdate(ok.next, changedConfig(ok.next, { removeNode: 'as-b' }), 'x');
    const b1 = await approve(ob);
    expect(code(() => verifyConfigUpdate(assembleConfigUpdate(stale, [a1, b1]), cur, at))).toBe('CONFIG_INVALID');
    expect(code(() => createConfigUpdate(cur, cur, 'same version'))).toBe('CONFIG_INVALID');
    expect(code(() => verifyConfigUpdate(randomBytes(50), cur, at))).toBe('MALFORMED_MESSAGE');
  });
});

describe('witness policies', () => {
  it('[RP-DD] [FW-SU] counts cosignature and checkpoint signatures of configured witnesses only', async () => {
    const anchors = { roots: [pemToDer(c.root.certPem)] };
    const keys = c.nodes.map((n) => nodeSigner(importPrivateKey(n.keyPem)));
    const body = { origin: 'divs-units', size: 3, rootHash: randomBytes(32), stateRoot: randomBytes(32) };
    let note = await signCheckpoint(body, 'as-a', keys[0]!);
    note = await addSignature(note, 'as-b', keys[1]!, Domain.cosignature);
    note = await addSignature(note, 'as-x', keys[2]!, Domain.cosignature); // unknown name: ignored
    const witnesses = c.nodes.map((n) => witnessFromCertificate(n.certChain, anchors));
    expect(verifyCosignatures(note, { witnesses, threshold: 2 }).cosigners).toEqual(['as-a', 'as-b']);
    expect(code(() => verifyCosignatures(note, { witnesses, threshold: 3 }))).toBe('COSIGNATURES_MISSING');
    expect(code(() => verifyCosignatures(note, { witnesses, threshold: 0 }))).toBe('INVALID_ARGUMENT');
    expect(code(() => verifyCosignatures(note, { witnesses: [...witnesses, witnesses[0]!], threshold: 1 }))).toBe('INVALID_ARGUMENT');
    expect(code(() => verifyCosignatures('not a note', { witnesses, threshold: 1 }))).toBe('INVALID_CHECKPOINT');
    // a certificate outside the consumer's anchors is no witness
    const rogue = await createLocalOrg(await createRootCa({ name: 'CN=Rogue', validityDays: 3650 }), { id: 'r', name: 'R', nodes: ['as-r'] });
    expect(code(() => witnessFromCertificate(rogue.nodes[0]!.certChain, anchors))).toBe('UNTRUSTED_CERTIFICATE');
  });
});

describe('etcd key ranges', () => {
  it('[FW-BC] prefixEnd is the smallest key after every key with the prefix', () => {
    expect(prefixEnd('/divs/l/blocks/')).toBe('/divs/l/blocks0');
    expect(prefixEnd('a\u00ff')).toBe('b');
  });
});
