/**
 * @module ledger.test
 * The local SQLite ledger: proofs a consumer can verify, append-only history [GEN-6], tamper
 * detection at open [GEN-5], atomic appends, persistence, and coded errors.
 */
import { createHash, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlockHeader, LedgerTx, TxType } from '../../proto/gen/divs/v1/common.ts';
import { LocalLedger, type LocalLedgerOptions } from '../src/ledger/local.ts';
import type { AppendItem, Ledger } from '../src/ledger/types.ts';
import { DivsError } from '../../protocol/src/errors.ts';
import { leafHash, verifyConsistency, verifyInclusion } from '../../protocol/src/merkle.ts';
import { assertLatest, verifyLatestProof } from '../../protocol/src/smt.ts';
import { parseCheckpoint, verifyCheckpoint } from '../../protocol/src/checkpoint.ts';
import { nodeSigner, rawPublicKey, SignatureSuite, type Signer } from '../../protocol/src/suites.ts';

const P256 = SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;

function keys(): { signer: Signer; pub: KeyObject } {
  const kp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { signer: nodeSigner(kp.privateKey), pub: kp.publicKey };
}
const AS = keys();
const CERT = new Uint8Array(randomBytes(300));

const ue = (i: number): Uint8Array => new Uint8Array(createHash('sha256').update(`ue-${i}`).digest());
let serial = 0;
const tx = (): Uint8Array => LedgerTx.encode({ type: TxType.TX_TYPE_ENDORSEMENT, payload: randomBytes(40), timestampMs: 1_700_000_000_000 + serial++ }).finish();
const item = (ueIndex?: number): AppendItem => (ueIndex === undefined ? { tx: tx() } : { tx: tx(), ueKey: ue(ueIndex) });
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

let dir: string;
const open: LocalLedger[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'divs-ledger-test-'));
});
afterEach(() => {
  for (const l of open.splice(0)) l.close();
  rmSync(dir, { recursive: true, force: true });
});

function options(over: Partial<LocalLedgerOptions> = {}): LocalLedgerOptions {
  return { path: join(dir, 'ledger.db'), ledgerId: 'divs-test', signer: AS.signer, signerName: 'as-1', certChain: [CERT], now: () => 1_700_000_000_000, ...over };
}

async function openLedger(over: Partial<LocalLedgerOptions> = {}): Promise<LocalLedger> {
  const l = await LocalLedger.open(options(over));
  open.push(l);
  return l;
}

function close(l: LocalLedger): void {
  l.close();
  open.splice(open.indexOf(l), 1);
}

/** A ledger with a few blocks: UE 1 has three versions, UE 2 one, plus a tx without UE. */
async function sample(): Promise<LocalLedger> {
  const l = await openLedger();
  await l.append([item(1), item(2), item()]);
  await l.append([item(3), item(1)]);
  await l.append(Array.from({ length: 10 }, (_, i) => item(10 + i)));
  await l.append([item(1)]);
  return l;
}

/** Raw access to the file, as an attacker (or a disk fault) would have: triggers dropped. */
function tamper(fn: (db: Database.Database) => void): void {
  const db = new Database(join(dir, 'ledger.db'));
  try {
    for (const { name } of db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").all() as { name: string }[]) db.exec(`DROP TRIGGER ${name}`);
    fn(db);
  } finally {
    db.close();
  }
}

/** Flips one byte of a BLOB cell in JS (SQL string functions would turn it into TEXT). */
function flipByte(db: Database.Database, table: string, column: string, where: string, at: number): void {
  const b = Buffer.from((db.prepare(`SELECT ${column} AS v FROM ${table} WHERE ${where}`).get() as { v: Uint8Array }).v);
  b[at] = (b[at] as number) ^ 0x01;
  db.prepare(`UPDATE ${table} SET ${column} = ? WHERE ${where}`).run(b);
}

async function expectTampered(match: RegExp): Promise<void> {
  const err = await LocalLedger.open(options()).then(
    (l) => {
      l.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DivsError);
  expect((err as DivsError).code).toBe('LEDGER_TAMPERED');
  expect((err as DivsError).message).toMatch(match);
}

function verifiedCheckpoint(l: Ledger): ReturnType<typeof verifyCheckpoint> {
  const cp = l.checkpoint();
  expect(cp.certChain.map(hex)).toEqual([hex(CERT)]);
  return verifyCheckpoint(cp.note, 'as-1', P256, AS.pub);
}

describe('local ledger: proofs', () => {
  it('[FW-BC] [FW-DM] a new ledger has a signed empty checkpoint; appends return tx IDs and a fresh signed checkpoint', async () => {
    const l = await openLedger();
    const cp0 = verifiedCheckpoint(l);
    expect(cp0.size).toBe(0);
    expect(cp0.origin).toBe('divs-test');
    expect(cp0.block).toBeUndefined();
    const entries = await l.append([item(1), item(2), item()]);
    expect(entries.map((e) => e.txId)).toEqual([0, 1, 2]);
    expect(entries.every((e) => e.blockHeight === 0)).toBe(true);
    for (const e of entries) expect(hex(e.leafHash)).toBe(hex(leafHash(e.tx)));
    const cp = verifiedCheckpoint(l);
    expect(cp.size).toBe(3);
    const info = l.info();
    expect(info).toMatchObject({ ledgerId: 'divs-test', height: 1, size: 3 });
    expect(hex(cp.rootHash)).toBe(hex(info.rootHash));
    expect(hex(cp.stateRoot)).toBe(hex(info.stateRoot));
    const [block] = l.blocks(0, 10);
    expect(cp.block?.height).toBe(0);
    expect(hex(cp.block?.hash as Uint8Array)).toBe(hex(block?.hash as Uint8Array));
    expect(hex(l.get(1)?.tx as Uint8Array)).toBe(hex(entries[1]?.tx as Uint8Array));
  });

  it('[FW-BC] every tx has an inclusion proof against the current and every older checkpoint; checkpoints are consistent', async () => {
    const l = await openLedger();
    const cps: ReturnType<typeof verifyCheckpoint>[] = [verifiedCheckpoint(l)];
    for (const n of [1, 3, 2, 7, 1, 5]) {
      await l.append(Array.from({ length: n }, (_, i) => item(100 + cps.length * 10 + i)));
      cps.push(verifiedCheckpoint(l));
    }
    const size = l.info().size;
    for (const cp of cps) {
      for (let id = 0; id < cp.size; id++) {
        const p = l.inclusionProof(id, cp.size);
        expect(p.treeSize).toBe(cp.size);
        expect(verifyInclusion(l.get(id)?.leafHash as Uint8Array, id, cp.size, p.hashes, cp.rootHash), `${id}/${cp.size}`).toBe(true);
      }
    }
    expect(l.inclusionProof(3).treeSize).toBe(size);
    for (const a of cps) {
      for (const b of cps) {
        if (a.size > b.size) continue;
        const p = l.consistencyProof(a.size, b.size);
        expect(verifyConsistency(a.size, b.size, a.rootHash, b.rootHash, p.hashes), `${a.size}->${b.size}`).toBe(true);
      }
    }
  });

  it('[FW-BC] blocks are hash-linked, carry exact header and tx bytes, and page by height', async () => {
    const l = await sample();
    const blocks = l.blocks(0, 100);
    expect(blocks.map((b) => b.height)).toEqual([0, 1, 2, 3]);
    let prev: Uint8Array = new Uint8Array(32);
    let first = 0;
    for (const b of blocks) {
      expect(hex(b.hash)).toBe(createHash('sha256').update(b.header).digest('hex'));
      const h = BlockHeader.decode(b.header);
      expect(hex(h.previousBlockHash)).toBe(hex(prev));
      expect(h.firstTxId).toBe(first);
      expect(h.txCount).toBe(b.txs.length);
      expect(h.proposer).toBe('as-1');
      b.txs.forEach((t, i) => expect(hex(t)).toBe(hex(l.get(first + i)?.tx as Uint8Array)));
      prev = b.hash;
      first += b.txs.length;
    }
    expect(l.blocks(1, 2).map((b) => b.height)).toEqual([1, 2]);
    expect(l.blocks(4, 10)).toEqual([]);
    expect(l.blocks(0, 0)).toEqual([]);
  });
});

describe('local ledger: append-only history [GEN-6]', () => {
  it('[GEN-6] history keeps every version of a UE, oldest first; latest and its proof name the newest', async () => {
    const l = await sample();
    const h = l.history(ue(1));
    expect(h.map((e) => e.txId)).toEqual([0, 4, 15]);
    expect(l.latest(ue(1))?.txId).toBe(15);
    expect(l.history(ue(2)).map((e) => e.txId)).toEqual([1]);
    const cp = verifiedCheckpoint(l);
    const p = l.latestProof(ue(1));
    expect(verifyLatestProof(p, cp.stateRoot)).toBe(true);
    expect(() => assertLatest(p, cp.stateRoot, ue(1), h[2]?.leafHash as Uint8Array)).not.toThrow();
    expect(() => assertLatest(p, cp.stateRoot, ue(1), h[0]?.leafHash as Uint8Array)).toThrow(expect.objectContaining({ code: 'NOT_LATEST' }));
    // a UE never registered: no history, no latest, a verifiable proof of absence
    expect(l.history(ue(999))).toEqual([]);
    expect(l.latest(ue(999))).toBeUndefined();
    const absent = l.latestProof(ue(999));
    expect(absent.value.length).toBe(0);
    expect(verifyLatestProof(absent, cp.stateRoot)).toBe(true);
  });

  it('[GEN-6] two versions of one UE in one append land in consecutive blocks, in order', async () => {
    const l = await openLedger();
    const entries = await l.append([item(1), item(2), item(1), item(1), item(3)]);
    expect(entries.map((e) => e.blockHeight)).toEqual([0, 0, 1, 2, 2]);
    expect(l.info().height).toBe(3);
    expect(l.history(ue(1)).map((e) => e.txId)).toEqual([0, 2, 3]);
    expect(verifiedCheckpoint(l).block?.height).toBe(2);
  });

  it('[GEN-6] [BC-1] a staged state root is the root the append reaches, and only exactly that update on exactly that state is reused', async () => {
    // the same appends on two ledgers: one staged before each append, one not
    const a = await openLedger();
    const b = await openLedger({ path: join(dir, 'other.db') });
    for (const batch of [[item(1), item(2), item()], [item(3), item(1)], Array.from({ length: 10 }, (_, i) => item(10 + i))]) {
      await a.append(batch);
      await b.append(batch);
    }
    expect(hex(b.info().stateRoot)).toBe(hex(a.info().stateRoot));
    const stateRoot = (l: LocalLedger): Uint8Array => l.info().stateRoot;
    const updatesOf = (l: LocalLedger, items: AppendItem[]) =>
      items.flatMap((it, i) => (it.ueKey ? [[it.ueKey, leafHash(it.tx), l.info().size + i] as const] : []));

    // 1. staged, then appended as staged: the root the stage promised
    const next = [item(2), item(), item(40)];
    const promised = a.stageStateRoot(updatesOf(a, next), stateRoot(a));
    await a.append(next);
    await b.append(next);
    expect(hex(stateRoot(a))).toBe(hex(promised));
    expect(hex(stateRoot(a))).toBe(hex(stateRoot(b)));

    // 2. staged one update, appended another: computed afresh, the same as never staged
    a.stageStateRoot(updatesOf(a, [item(41)]), stateRoot(a));
    const other = [item(42), item(1)];
    await a.append(other);
    await b.append(other);
    expect(hex(stateRoot(a))).toBe(hex(stateRoot(b)));

    // 3. staged on a state another append has replaced since: not reused
    a.stageStateRoot(updatesOf(a, [item(43)]), stateRoot(a));
    const between = [item(44)];
    await a.append(between);
    await b.append(between);
    expect(hex(stateRoot(a))).toBe(hex(stateRoot(b)));
    for (const key of [ue(1), ue(2), ue(40), ue(42), ue(44)]) expect(verifyLatestProof(a.latestProof(key), stateRoot(a))).toBe(true);

    // 4. built on another root than the store's: refused
    expect(() => a.stageStateRoot(updatesOf(a, [item(45)]), new Uint8Array(32).fill(7))).toThrow(expect.objectContaining({ code: 'LEDGER_DIVERGED' }));
  });

  it('[FW-BC] [GEN-5] a leaf hash the caller computed is used as given; a wrong one is never served and fails the next open', async () => {
    const l = await openLedger();
    const a = item(1);
    const b = item(2);
    const [ea, eb] = await l.append([{ ...a, leafHash: leafHash(a.tx) }, b]);
    expect(hex(ea?.leafHash as Uint8Array)).toBe(hex(leafHash(a.tx)));
    expect(hex(eb?.leafHash as Uint8Array)).toBe(hex(leafHash(b.tx)));
    expect(verifyInclusion(ea?.leafHash as Uint8Array, 0, 2, l.inclusionProof(0, 2).hashes, l.info().rootHash)).toBe(true);
    // a caller bug (a leaf hash of other bytes): the row is refused on read, and at open
    const c = item(3);
    await l.append([{ ...c, leafHash: leafHash(tx()) }]);
    expect(() => l.get(2)).toThrow(expect.objectContaining({ code: 'LEDGER_TAMPERED' }));
    close(l);
    await expectTampered(/tx 2: bytes do not match the leaf hash/);
  });

  it('[GEN-6] no API rewrites: there is no mutator, returned and passed-in bytes are copies, SQL UPDATE/DELETE are refused', async () => {
    const l = await sample();
    const methods = Object.getOwnPropertyNames(LocalLedger.prototype).sort();
    // stageStateRoot computes without writing (see its own test)
    expect(methods).toEqual(['append', 'blocks', 'checkpoint', 'close', 'consistencyProof', 'constructor', 'get', 'history', 'inclusionProof', 'info', 'latest', 'latestProof', 'stageStateRoot'].sort());
    const mine = item(50);
    const [e] = await l.append([mine]);
    const want = hex(l.get(e?.txId as number)?.tx as Uint8Array);
    mine.tx.fill(0);
    e?.tx.fill(0);
    e?.leafHash.fill(0);
    (l.get(e?.txId as number)?.tx as Uint8Array).fill(0);
    l.blocks(0, 1)[0]?.header.fill(0);
    expect(hex(l.get(e?.txId as number)?.tx as Uint8Array)).toBe(want);
    expect(verifyInclusion(leafHash(l.get(16)?.tx as Uint8Array), 16, 17, l.inclusionProof(16).hashes, l.info().rootHash)).toBe(true);
    close(l);
    const db = new Database(join(dir, 'ledger.db'));
    try {
      for (const sql of ['UPDATE txs SET tx = x\'00\' WHERE tx_id = 0', 'DELETE FROM txs WHERE tx_id = 16', 'DELETE FROM blocks', 'UPDATE checkpoints SET note = \'x\'', 'DELETE FROM tree_nodes', 'DELETE FROM smt_nodes', 'UPDATE meta SET value = \'x\'']) {
        expect(() => db.exec(sql), sql).toThrow(/append-only/);
      }
    } finally {
      db.close();
    }
    const again = await openLedger();
    expect(again.info().size).toBe(17);
  });
});

describe('local ledger: persistence and atomicity', () => {
  it('[GEN-5] survives close and reopen: same state, same proofs, appends continue', async () => {
    const l = await sample();
    const info = l.info();
    const note = l.checkpoint().note;
    const proof = l.inclusionProof(7);
    const latest = l.latestProof(ue(1));
    close(l);
    const r = await openLedger();
    expect(r.info()).toEqual(info);
    expect(r.checkpoint().note).toBe(note);
    expect(r.inclusionProof(7).hashes.map(hex)).toEqual(proof.hashes.map(hex));
    expect(hex(r.latestProof(ue(1)).value)).toBe(hex(latest.value));
    expect(r.history(ue(1)).map((e) => e.txId)).toEqual([0, 4, 15]);
    const [e] = await r.append([item(1)]);
    expect(e?.txId).toBe(info.size);
    expect(e?.blockHeight).toBe(info.height);
    expect(r.history(ue(1)).map((x) => x.txId)).toEqual([0, 4, 15, 16]);
    const cp = verifiedCheckpoint(r);
    expect(verifyConsistency(info.size, cp.size, info.rootHash, cp.rootHash, r.consistencyProof(info.size, cp.size).hashes)).toBe(true);
    close(r);
    const again = await openLedger();
    expect(again.info().size).toBe(info.size + 1);
  });

  it('[GEN-5] a failed append (signer failure, or a database failure mid-transaction) changes nothing', async () => {
    let failSign = false;
    const flaky: Signer = {
      suite: AS.signer.suite,
      publicKey: AS.signer.publicKey,
      sign: (m) => {
        if (failSign) throw new Error('HSM unavailable');
        return AS.signer.sign(m);
      },
    };
    const l = await openLedger({ signer: flaky });
    await l.append([item(1), item(2)]);
    const before = { info: l.info(), note: l.checkpoint().note };
    failSign = true;
    await expect(l.append([item(1), item(3)])).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(l.info()).toEqual(before.info);
    expect(l.checkpoint().note).toBe(before.note);
    expect(l.history(ue(1)).length).toBe(1);
    failSign = false;
    close(l);

    // the database refuses the block row, after the txs, tree and SMT rows were written
    const db = new Database(join(dir, 'ledger.db'));
    db.exec("CREATE TRIGGER fail_block BEFORE INSERT ON blocks WHEN NEW.height = 1 BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
    db.close();
    const r = await openLedger({ signer: flaky });
    await expect(r.append([item(1), item(3), item()])).rejects.toBeInstanceOf(DivsError);
    expect(r.info()).toEqual(before.info);
    expect(r.checkpoint().note).toBe(before.note);
    expect(r.get(2)).toBeUndefined();
    expect(r.latest(ue(3))).toBeUndefined();
    expect(verifyLatestProof(r.latestProof(ue(1)), before.info.stateRoot)).toBe(true);
    close(r);
    tamper((raw) => {
      expect((raw.prepare('SELECT count(*) AS n FROM txs').get() as { n: number }).n).toBe(2);
    });
    // without the fault, the same append succeeds and the file verifies
    const ok = await openLedger();
    const entries = await ok.append([item(1), item(3), item()]);
    expect(entries.map((e) => e.txId)).toEqual([2, 3, 4]);
    close(ok);
    expect((await openLedger()).info().size).toBe(5);
  });

  it('[FW-BC] with a tiny state-tree cache every node comes back from SQLite, and all proofs still verify', async () => {
    const l = await openLedger({ smtCacheNodes: 4 });
    for (let b = 0; b < 6; b++) await l.append(Array.from({ length: 30 }, (_, i) => item((b * 17 + i * 5) % 90)));
    const cp = verifiedCheckpoint(l);
    for (let k = 0; k < 95; k++) {
      const p = l.latestProof(ue(k));
      expect(verifyLatestProof(p, cp.stateRoot), `ue ${k}`).toBe(true);
      const latest = l.latest(ue(k));
      expect(p.value.length === 0 ? undefined : hex(p.value)).toBe(latest ? hex(latest.leafHash) : undefined);
    }
    close(l);
    const r = await openLedger({ smtCacheNodes: 4 });
    expect(hex(r.info().stateRoot)).toBe(hex(cp.stateRoot));
    await r.append([item(3), item(300)]);
    expect(verifyLatestProof(r.latestProof(ue(300)), r.info().stateRoot)).toBe(true);
  });

  it('[FW-BC] concurrent appends are serialized: contiguous tx IDs, every proof verifies', async () => {
    const l = await openLedger();
    const results = await Promise.all(Array.from({ length: 12 }, (_, k) => l.append(Array.from({ length: 5 }, (_, i) => item(k * 5 + i)))));
    const ids = results.flat().map((e) => e.txId);
    expect(ids).toEqual(Array.from({ length: 60 }, (_, i) => i));
    expect(l.info().height).toBe(12);
    const cp = verifiedCheckpoint(l);
    for (let i = 0; i < 60; i += 7) expect(verifyInclusion(l.get(i)?.leafHash as Uint8Array, i, 60, l.inclusionProof(i).hashes, cp.rootHash)).toBe(true);
    for (let k = 0; k < 60; k += 9) expect(verifyLatestProof(l.latestProof(ue(k)), cp.stateRoot)).toBe(true);
  });
});

describe('local ledger: tamper detection at open [GEN-5]', () => {
  async function built(): Promise<void> {
    const l = await sample();
    close(l);
  }
  /** A fresh sample ledger in a fresh directory, for the next case of a test. */
  async function rebuilt(): Promise<void> {
    rmSync(dir, { recursive: true, force: true });
    dir = mkdtempSync(join(tmpdir(), 'divs-ledger-test-'));
    await built();
  }

  it('[GEN-5] one byte changed in a tx', async () => {
    await built();
    tamper((db) => flipByte(db, 'txs', 'tx', 'tx_id = 6', 5));
    await expectTampered(/tx 6: bytes do not match the leaf hash/);
  });

  it('[GEN-5] a tx changed together with its stored leaf hash', async () => {
    await built();
    const forged = tx();
    tamper((db) => db.prepare('UPDATE txs SET tx = ?, leaf_hash = ? WHERE tx_id = 6').run(forged, leafHash(forged)));
    // caught at the first stored subtree that covers tx 6 (before the block's tx_root)
    await expectTampered(/tree node \(level 1, index 3\) was altered/);
  });

  it('[GEN-5] one byte changed in a block header (with or without fixing its hash)', async () => {
    await built();
    tamper((db) => flipByte(db, 'blocks', 'header', 'height = 1', 9));
    await expectTampered(/block 1: hash does not match the header/);
    await rebuilt();
    tamper((db) => {
      const h = BlockHeader.decode((db.prepare('SELECT header FROM blocks WHERE height = 1').get() as { header: Uint8Array }).header);
      const header = BlockHeader.encode({ ...h, timestampMs: h.timestampMs + 1 }).finish();
      db.prepare('UPDATE blocks SET header = ?, hash = ? WHERE height = 1').run(header, createHash('sha256').update(header).digest());
    });
    // a re-hashed header breaks the signed checkpoint made after it (and the next block's link)
    await expectTampered(/checkpoint at size 5 does not match the ledger/);
    // a block with no checkpoint right after it (one append cut into two blocks): the link
    rmSync(dir, { recursive: true, force: true });
    dir = mkdtempSync(join(tmpdir(), 'divs-ledger-test-'));
    const l = await openLedger();
    await l.append([item(1), item(1)]);
    close(l);
    tamper((db) => {
      const h = BlockHeader.decode((db.prepare('SELECT header FROM blocks WHERE height = 0').get() as { header: Uint8Array }).header);
      const header = BlockHeader.encode({ ...h, timestampMs: h.timestampMs + 1 }).finish();
      db.prepare('UPDATE blocks SET header = ?, hash = ? WHERE height = 0').run(header, createHash('sha256').update(header).digest());
    });
    await expectTampered(/block 1: previous block hash does not link to block 0/);
  });

  it('[GEN-5] one byte changed in a Merkle tree node', async () => {
    await built();
    tamper((db) => flipByte(db, 'tree_nodes', 'hash', 'level = 2 AND last_leaf = 7', 0));
    await expectTampered(/tree node \(level 2, index 1\) was altered/);
  });

  it('[GEN-5] a deleted row: tx, tree node, block, checkpoint', async () => {
    await built();
    tamper((db) => db.exec('DELETE FROM txs WHERE tx_id = 9'));
    await expectTampered(/tx 9 of block 2 is missing/);
    await rebuilt();
    tamper((db) => db.exec('DELETE FROM tree_nodes WHERE level = 1 AND last_leaf = 3'));
    await expectTampered(/tree node \(level 1, index 1\) is missing/);
    await rebuilt();
    tamper((db) => db.exec('DELETE FROM blocks WHERE height = 2'));
    await expectTampered(/block 2 is missing/);
    await rebuilt();
    tamper((db) => db.exec('DELETE FROM checkpoints WHERE tree_size = (SELECT max(tree_size) FROM checkpoints)'));
    await expectTampered(/the latest checkpoint is for size 15, the ledger has 16/);
  });

  it('[GEN-5] the last block cut off (block, txs, nodes and its checkpoint row kept or dropped)', async () => {
    await built();
    tamper((db) => {
      db.exec('DELETE FROM txs WHERE block_height = 3');
      db.exec('DELETE FROM blocks WHERE height = 3');
    });
    await expectTampered(/checkpoint at size 16 is beyond the ledger|tree node .* is not part of the tree/);
  });

  it('[GEN-5] reordered txs (rows swapped, with their leaf hashes)', async () => {
    await built();
    tamper((db) => {
      const a = db.prepare('SELECT tx, leaf_hash FROM txs WHERE tx_id = 5').get() as { tx: Uint8Array; leaf_hash: Uint8Array };
      const b = db.prepare('SELECT tx, leaf_hash FROM txs WHERE tx_id = 6').get() as { tx: Uint8Array; leaf_hash: Uint8Array };
      db.prepare('UPDATE txs SET tx = ?, leaf_hash = ? WHERE tx_id = 5').run(b.tx, b.leaf_hash);
      db.prepare('UPDATE txs SET tx = ?, leaf_hash = ? WHERE tx_id = 6').run(a.tx, a.leaf_hash);
    });
    await expectTampered(/tree node \(level 1, index 2\) was altered/);
    await rebuilt();
    // two whole blocks' rows exchanged is caught by the chain itself
    tamper((db) => {
      db.exec('UPDATE blocks SET height = -1 WHERE height = 1');
      db.exec('UPDATE blocks SET height = 1 WHERE height = 2');
      db.exec('UPDATE blocks SET height = 2 WHERE height = -1');
    });
    await expectTampered(/block 1: header says height 2/);
  });

  it('[GEN-5] [GEN-6] a tx moved to another UE, or a version dropped from a UE history', async () => {
    await built();
    // tx 1 is the first version of UE 2: re-attributed to another UE
    tamper((db) => db.prepare('UPDATE txs SET ue_key = ? WHERE tx_id = 1').run(ue(77)));
    await expectTampered(/block 0: state_root does not match/);
    await rebuilt();
    tamper((db) => db.exec('UPDATE txs SET ue_key = NULL, prev_tx_id = NULL WHERE tx_id = 4'));
    await expectTampered(/block 1: state_root does not match/);
    await rebuilt();
    tamper((db) => db.exec('UPDATE txs SET prev_tx_id = 0 WHERE tx_id = 15'));
    await expectTampered(/tx 15: previous-version pointer was altered/);
  });

  it('[GEN-5] an altered checkpoint, and a consistent rewrite without the AS key', async () => {
    await built();
    tamper((db) => db.exec("UPDATE checkpoints SET note = replace(note, 'divs-test', 'divs-tesT')"));
    await expectTampered(/checkpoint at size \d+ does not match the ledger/);
    rmSync(dir, { recursive: true, force: true });
    dir = mkdtempSync(join(tmpdir(), 'divs-ledger-test-'));
    // someone rebuilds the ledger file from scratch with other content and their own key
    const mallory = keys();
    const forged = await openLedger({ signer: mallory.signer });
    await forged.append([item(666)]);
    close(forged);
    await expectTampered(/latest checkpoint \(size 1\) has no valid signature of a trusted key/);
  });

  it('[GEN-5] AS key rotation: the old key is accepted for the stored checkpoint when trusted, and re-signed', async () => {
    await built();
    const next = keys();
    await expect(LocalLedger.open(options({ signer: next.signer }))).rejects.toMatchObject({ code: 'LEDGER_TAMPERED' });
    const l = await openLedger({ signer: next.signer, trustedKeys: [{ name: 'as-1', suite: P256, publicKey: rawPublicKey(AS.pub) }] });
    expect(verifyCheckpoint(l.checkpoint().note, 'as-1', P256, next.pub).size).toBe(16);
    await l.append([item(1)]);
    close(l);
    expect((await openLedger({ signer: next.signer })).info().size).toBe(17);
  });

  it('[GEN-5] an altered state-tree node is refused when read, never served', async () => {
    await built();
    // the top chunk of the newest version: every path goes through it
    tamper((db) => db.exec("UPDATE smt_nodes SET nodes = substr(nodes, 1, 20) || x'5a' || substr(nodes, 22) WHERE version = 3 AND path = x'0000'"));
    const l = await openLedger();
    expect(() => l.latestProof(ue(1))).toThrow(expect.objectContaining({ code: 'LEDGER_TAMPERED' }));
    expect(() => l.latest(ue(1))).toThrow(expect.objectContaining({ code: 'LEDGER_TAMPERED' }));
    await expect(l.append([item(1)])).rejects.toMatchObject({ code: 'LEDGER_TAMPERED' });
    expect(l.info().size).toBe(16);
  });

  it('[GEN-5] while open, the ledger file is locked: no other connection can read or write it', async () => {
    const l = await sample();
    const db = new Database(join(dir, 'ledger.db'), { timeout: 0 });
    // the open ledger holds an exclusive lock: no other connection can even read
    expect(() => db.prepare('SELECT count(*) FROM txs').get()).toThrow(/locked/);
    db.close();
    expect(l.get(3)?.txId).toBe(3);
  });
});

describe('local ledger: errors', () => {
  it('[FW-BC] bad options, a foreign or non-ledger file, a second opener', async () => {
    await expect(LocalLedger.open(options({ ledgerId: 'has space' }))).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(LocalLedger.open(options({ signerName: 'a+b' }))).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(LocalLedger.open(options({ certChain: 'x' as unknown as Uint8Array[] }))).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(LocalLedger.open(options({ path: join(dir, 'missing', 'dir', 'l.db') }))).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    const l = await openLedger();
    await expect(LocalLedger.open(options())).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    close(l);
    await expect(LocalLedger.open(options({ ledgerId: 'other-ledger' }))).rejects.toMatchObject({ code: 'WRONG_LEDGER' });
    writeFileSync(join(dir, 'junk.db'), randomBytes(8192));
    await expect(LocalLedger.open(options({ path: join(dir, 'junk.db') }))).rejects.toMatchObject({ code: 'LEDGER_CORRUPT' });
    const other = new Database(join(dir, 'other.db'));
    other.exec('CREATE TABLE t (x)');
    other.close();
    await expect(LocalLedger.open(options({ path: join(dir, 'other.db') }))).rejects.toMatchObject({ code: 'LEDGER_CORRUPT' });
  });

  it('[FW-BC] bad appends and queries get coded errors and write nothing', async () => {
    const l = await openLedger({ maxItems: 4, maxTxBytes: 1000 });
    await l.append([item(1)]);
    const cases: [unknown, string][] = [
      [[], 'INVALID_ARGUMENT'],
      ['x', 'INVALID_ARGUMENT'],
      [[null], 'INVALID_ARGUMENT'],
      [[{ tx: new Uint8Array(0) }], 'INVALID_ARGUMENT'],
      [[{ tx: 'abc' }], 'INVALID_ARGUMENT'],
      [[{ tx: new Uint8Array(1001) }], 'MESSAGE_TOO_LARGE'],
      [[{ tx: tx(), ueKey: new Uint8Array(31) }], 'INVALID_ARGUMENT'],
      [Array.from({ length: 5 }, () => item()), 'BATCH_TOO_LARGE'],
      [[item(2), { tx: tx(), ueKey: 'k' }], 'INVALID_ARGUMENT'],
      [[{ tx: tx(), leafHash: new Uint8Array(31) }], 'INVALID_ARGUMENT'],
    ];
    for (const [items, code] of cases) await expect(l.append(items as AppendItem[]), code).rejects.toMatchObject({ code });
    expect(l.info().size).toBe(1);
    expect(() => l.get(-1)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => l.get(1.5)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(l.get(1)).toBeUndefined();
    expect(() => l.inclusionProof(1)).toThrow(expect.objectContaining({ code: 'UNKNOWN_TX' }));
    expect(() => l.inclusionProof(0, 2)).toThrow(expect.objectContaining({ code: 'INVALID_RANGE' }));
    expect(() => l.inclusionProof(0, 0)).toThrow(expect.objectContaining({ code: 'INVALID_RANGE' }));
    expect(() => l.consistencyProof(1, 0)).toThrow(expect.objectContaining({ code: 'INVALID_RANGE' }));
    expect(() => l.consistencyProof(0, 2)).toThrow(expect.objectContaining({ code: 'INVALID_RANGE' }));
    expect(() => l.history(new Uint8Array(3))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => l.latestProof('x' as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => l.blocks(-1, 1)).toThrow(expect.objectContaining({ code: 'INVALID_RANGE' }));
    close(l);
    expect(() => l.info()).not.toThrow();
    expect(() => l.get(0)).toThrow(expect.objectContaining({ code: 'UNAVAILABLE' }));
    await expect(l.append([item()])).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(() => l.close()).not.toThrow();
  });

  it('[FW-BC] an append in flight when the ledger closes fails with UNAVAILABLE and writes nothing', async () => {
    let gated = false;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slow: Signer = {
      suite: AS.signer.suite,
      publicKey: AS.signer.publicKey,
      sign: async (m) => {
        if (gated) await gate;
        return AS.signer.sign(m);
      },
    };
    const l = await openLedger({ signer: slow });
    gated = true;
    const pending = l.append([item(1)]);
    await new Promise((r) => setTimeout(r, 10));
    close(l);
    release();
    await expect(pending).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    const again = await openLedger();
    expect(again.info().size).toBe(0);
    expect(parseCheckpoint(again.checkpoint().note).size).toBe(0);
  });
});
