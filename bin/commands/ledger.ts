/**
 * `divs ledger verify|inspect|proof`: offline tools over an AS node's data directory (the node
 * must be stopped, or use a copy). Opening the ledger re-verifies everything: hash links,
 * Merkle roots, state roots, leaf hashes and the latest checkpoint's signature [GEN-5].
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BlockHeader } from '../../proto/gen/divs/v1/common.ts';
import { DivsError } from '../../protocol/src/errors.ts';
import { toBase64, toHex } from '../../protocol/src/bytes.ts';
import { importPrivateKey, nodeSigner } from '../../protocol/src/suites.ts';
import { pemToDer } from '../../protocol/src/pki.ts';
import { LocalLedger } from '../../as-node/src/ledger/local.ts';
import { decodeEndorsementTx } from '../../as-node/src/endorse.ts';
import { int, parse, str } from './args.ts';

const USAGE = `divs ledger verify  --data-dir DIR [--name as-1] [--ledger-id divs-local] [--json]
divs ledger inspect --data-dir DIR [--from H] [--limit N] [--json]
divs ledger proof   --data-dir DIR --tx N [--json]

DIR is an AS node's data directory (ledger.db and pki/). Exit code 1 when the ledger fails
verification (LEDGER_TAMPERED).`;

async function open(v: Record<string, unknown>): Promise<LocalLedger> {
  const dir = str(v['data-dir'], 'data-dir');
  const name = str(v.name, 'name', 'as-1');
  const path = join(dir, 'ledger.db');
  if (!existsSync(path)) throw new DivsError('CONFIG_INVALID', `${path}: no ledger here`);
  const key = importPrivateKey(readFileSync(join(dir, 'pki', `${name}.key`), 'utf8'));
  const certChain = [pemToDer(readFileSync(join(dir, 'pki', `${name}.pem`), 'utf8'))];
  return LocalLedger.open({ path, ledgerId: str(v['ledger-id'], 'ledger-id', 'divs-local'), signer: nodeSigner(key), signerName: name, certChain });
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const opts = {
    'data-dir': { type: 'string' },
    name: { type: 'string' },
    'ledger-id': { type: 'string' },
    json: { type: 'boolean' },
    from: { type: 'string' },
    limit: { type: 'string' },
    tx: { type: 'string' },
  } as const;
  if (sub !== 'verify' && sub !== 'inspect' && sub !== 'proof') {
    console.error(USAGE);
    return 2;
  }
  const { values: v } = parse(rest, opts, USAGE);
  // the ledger ID is recorded in the file; read it from the checkpoint origin when not given
  if (!v['ledger-id']) {
    try {
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(join(str(v['data-dir'], 'data-dir'), 'ledger.db'), { readonly: true, fileMustExist: true });
      const note = (db.prepare('SELECT note FROM checkpoints ORDER BY tree_size DESC LIMIT 1').get() as { note: string } | undefined)?.note;
      db.close();
      if (note) v['ledger-id'] = note.split('\n')[0];
    } catch {
      // fall through: open() reports a missing or unreadable ledger with its own code
    }
  }
  let ledger: LocalLedger;
  try {
    ledger = await open(v);
  } catch (e) {
    if (e instanceof DivsError && (e.code === 'LEDGER_TAMPERED' || e.code === 'LEDGER_CORRUPT')) {
      console.error(`ledger verification FAILED: ${e.code}: ${e.message}`);
      return 1;
    }
    throw e;
  }
  try {
    const info = ledger.info();
    if (sub === 'verify') {
      const out = { ok: true, ledgerId: info.ledgerId, blocks: info.height, transactions: info.size, root: toHex(info.rootHash), stateRoot: toHex(info.stateRoot) };
      console.log(v.json ? JSON.stringify(out) : `ledger ${info.ledgerId} verified: ${info.height} blocks, ${info.size} transactions, root ${out.root}`);
      return 0;
    }
    if (sub === 'inspect') {
      const blocks = ledger.blocks(int(v.from, 'from', Math.max(0, info.height - 10)), int(v.limit, 'limit', 10, 1, 1000)).map((b) => {
        const h = BlockHeader.decode(b.header);
        return {
          height: h.height,
          hash: toHex(b.hash),
          previous: toHex(h.previousBlockHash),
          txs: b.txs.length,
          firstTx: h.firstTxId,
          time: new Date(h.timestampMs).toISOString(),
          reasons: b.txs.map((t) => {
            try {
              return decodeEndorsementTx(t).endorsement.reason;
            } catch {
              return 'config';
            }
          }),
        };
      });
      if (v.json) console.log(JSON.stringify({ ledgerId: info.ledgerId, height: info.height, size: info.size, checkpoint: ledger.checkpoint().note, blocks }));
      else {
        console.log(`ledger ${info.ledgerId}: ${info.height} blocks, ${info.size} transactions\n\n${ledger.checkpoint().note}`);
        for (const b of blocks) console.log(`block ${b.height}  ${b.hash.slice(0, 16)}…  ${b.txs} tx from #${b.firstTx}  ${b.time}`);
      }
      return 0;
    }
    const txId = int(v.tx, 'tx', -1, 0);
    const e = ledger.get(txId);
    if (!e) throw new DivsError('UNKNOWN_TX', `no transaction ${txId}`);
    const proof = ledger.inclusionProof(txId);
    const out = { txId, leafHash: toHex(e.leafHash), treeSize: proof.treeSize, hashes: proof.hashes.map(toBase64), checkpoint: ledger.checkpoint().note };
    console.log(v.json ? JSON.stringify(out) : `tx ${txId} leaf ${out.leafHash}\ninclusion proof in tree of size ${out.treeSize}:\n${out.hashes.map((h) => `  ${h}`).join('\n')}\n\ncheckpoint:\n${out.checkpoint}`);
    return 0;
  } finally {
    ledger.close();
  }
}
