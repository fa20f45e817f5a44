/**
 * @module commands/ledger
 * `divs ledger verify|inspect|proof`: offline tools over an AS node's data directory (the node
 * must be stopped, or use a copy). Opening the ledger re-verifies everything: hash links,
 * Merkle roots, state roots, leaf hashes and the latest checkpoint's signature [GEN-5].
 *
 * Works on both node layouts without the AS private key: the checkpoint signature is checked
 * with the public key of the AS certificate, and the ledger is opened with a signer that
 * refuses to sign (these tools never append).
 * - local node (`divs as-node --data-dir DIR`): `DIR/ledger.db`, certificate `DIR/pki/NAME.pem`,
 *   checkpoints signed under the node name;
 * - consortium node (`divs consortium init --dir C`): `C/data/NAME/ledger.db`, certificate
 *   `C/nodes/NAME.pem`, checkpoints of its copy signed under the key name "consortium".
 * `--config AS.json` (the node's configuration) or `--cert` name the files of any other layout.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { BlockHeader, ContractState, EndorsementReason, RegistrationParams, type UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { fromHex, toBase64, toHex } from '../../protocol/src/bytes.ts';
import { parseCheckpoint } from '../../protocol/src/checkpoint.ts';
import { describeIdentity } from '../../protocol/src/identity.ts';
import { chainFromPem } from '../../protocol/src/pki.ts';
import { rawPublicKey, suiteOfKeyObject, type Signer } from '../../protocol/src/suites.ts';
import { progressBar } from '../../platform/src/progress.ts';
import { LocalLedger } from '../../as-node/src/ledger/local.ts';
import { CONSORTIUM_PROPOSER } from '../../as-node/src/ledger/consortium/block.ts';
import { loadAsConfig } from '../../as-node/src/config.ts';
import { decodeEndorsementTx } from '../../as-node/src/endorse.ts';
import { int, parse, str } from './args.ts';

const USAGE = `divs ledger verify  (--data-dir DIR | --config AS.json) [--cert AS.pem] [--name NODE] [--ledger-id ID] [--json]
divs ledger inspect (--data-dir DIR | --config AS.json) [--from H] [--limit N] [--json]
divs ledger inspect (--data-dir DIR | --config AS.json) --ue [imei:|iccid:|eid:|msisdn:]VALUE | --ue-key HEX [--json]
divs ledger proof   (--data-dir DIR | --config AS.json) --tx N [--json]

DIR is an AS node's data directory (ledger.db), of a local node or of a consortium node; the
node must be stopped (or use a copy). No private key is needed: the latest checkpoint's
signature is checked with the AS certificate, found in DIR/pki/NAME.pem (local node) or
DIR/../../nodes/NAME.pem (\`divs consortium init\` layout), or named by --cert or by the node's
--config. --ue prints every version of a UE (tx ID, version, reason, contract state,
endorsement time), found by its current IMEI, ICCID, EID or MSISDN (any of them without a
prefix); --ue-key by its ledger key (SHA-256 of its public key).

Exit codes: 0 ok, 1 the ledger fails verification (LEDGER_TAMPERED, LEDGER_CORRUPT), 2 usage
error or not an AS data directory.`;

/** Where the ledger and the AS certificate of a data directory are, and under which names. */
interface Layout {
  dir: string;
  ledgerPath: string;
  indexPath: string;
  ledgerId: string;
  /** Key name of the checkpoint signatures: the node name (local) or "consortium". */
  signerName: string;
  certPath: string;
  consortium: boolean;
}

/** What the ledger file says about itself, read before the full (verifying) open. */
function peek(path: string): { ledgerId?: string; keyNames: string[] } {
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    const id = (db.prepare("SELECT value FROM meta WHERE key = 'ledger_id'").pluck().get() as string | undefined) ?? undefined;
    const note = db.prepare('SELECT note FROM checkpoints ORDER BY tree_size DESC LIMIT 1').pluck().get() as string | undefined;
    let keyNames: string[] = [];
    if (typeof note === 'string') {
      try {
        keyNames = parseCheckpoint(note).signatures.map((s) => s.name);
      } catch {
        // an unparsable note: the verifying open names the problem (LEDGER_TAMPERED)
      }
    }
    return { ledgerId: typeof id === 'string' ? id : undefined, keyNames };
  } catch {
    // not readable as a ledger: the verifying open reports it with its own code
    return { keyNames: [] };
  } finally {
    db?.close();
  }
}

function layoutOf(v: Record<string, unknown>): Layout {
  let dir: string;
  let name = typeof v.name === 'string' ? v.name : undefined;
  let ledgerId = typeof v['ledger-id'] === 'string' ? v['ledger-id'] : undefined;
  let certPath = typeof v.cert === 'string' ? v.cert : undefined;
  let consortium: boolean | undefined;
  if (typeof v.config === 'string') {
    if (v['data-dir'] !== undefined) fail('CONFIG_INVALID', 'give --data-dir or --config, not both');
    if (!existsSync(v.config)) fail('CONFIG_INVALID', `--config ${v.config}: no such file`);
    const cfg = loadAsConfig(v.config, {});
    dir = cfg.dataDir;
    name ??= cfg.nodeName;
    ledgerId ??= cfg.ledger.type === 'consortium' ? undefined : cfg.ledgerId;
    certPath ??= cfg.pki.asCert;
    consortium = cfg.ledger.type === 'consortium';
  } else {
    dir = str(v['data-dir'], 'data-dir');
  }
  dir = resolve(dir);
  let st;
  try {
    st = statSync(dir);
  } catch {
    fail('CONFIG_INVALID', `${dir}: no such directory (give an AS node's data directory)`);
  }
  if (!st.isDirectory()) fail('CONFIG_INVALID', `${dir}: not a directory (give an AS node's data directory)`);
  const ledgerPath = join(dir, 'ledger.db');
  if (!existsSync(ledgerPath)) fail('CONFIG_INVALID', `${dir}: no ledger.db here — not an AS node's data directory`);
  const p = peek(ledgerPath);
  // the ledger ID is recorded in the file; the key names of the latest checkpoint tell the layout
  ledgerId ??= p.ledgerId;
  if (ledgerId === undefined) fail('LEDGER_CORRUPT', `${ledgerPath}: not a DIVS ledger database (no ledger ID)`);
  consortium ??= p.keyNames.includes(CONSORTIUM_PROPOSER);
  const own = p.keyNames.find((k) => k !== CONSORTIUM_PROPOSER);
  // a local node signs under its own name; a consortium node's copy under "consortium", in the
  // data directory named after the node (`divs consortium init` layout)
  name ??= consortium ? basename(dir) : (own ?? 'as-1');
  if (certPath === undefined) {
    const candidates = [join(dir, 'pki', `${name}.pem`), join(dir, '..', '..', 'nodes', `${name}.pem`)];
    certPath = candidates.find((c) => existsSync(c));
    if (certPath === undefined) fail('CONFIG_INVALID', `no AS certificate for ${name} (looked for ${candidates.join(', ')}): give --cert or --config`);
  }
  return { dir, ledgerPath, indexPath: join(dir, 'index.db'), ledgerId, signerName: consortium ? CONSORTIUM_PROPOSER : name, certPath, consortium };
}

/**
 * A signer that knows the AS public key (to check checkpoint signatures at open) but refuses
 * to sign: these tools read and verify only, and must never need the AS private key.
 */
function readOnlySigner(certPem: string, certPath: string): Signer {
  let key;
  try {
    key = new X509Certificate(certPem).publicKey;
  } catch (e) {
    fail('CONFIG_INVALID', `${certPath}: not an X.509 certificate (PEM)`, e);
  }
  return {
    suite: suiteOfKeyObject(key),
    publicKey: rawPublicKey(key),
    sign: () => fail('UNAVAILABLE', 'the ledger is open read-only (divs ledger never signs)'),
  };
}

async function open(l: Layout): Promise<LocalLedger> {
  let pem: string;
  try {
    pem = readFileSync(l.certPath, 'utf8');
  } catch (e) {
    fail('CONFIG_INVALID', `${l.certPath}: cannot read the AS certificate`, e);
  }
  const certChain = chainFromPem(pem);
  if (certChain.length === 0) fail('CONFIG_INVALID', `${l.certPath}: no certificate in the file`);
  return LocalLedger.open({ path: l.ledgerPath, ledgerId: l.ledgerId, signer: readOnlySigner(pem, l.certPath), signerName: l.signerName, certChain });
}

const enumName = (e: Record<string, number>, value: number, prefix: string): string => (Object.entries(e).find(([, x]) => x === value)?.[0] ?? String(value)).replace(prefix, '');
const when = (ms: number): string | null => (ms > 0 ? new Date(ms).toISOString() : null);

/** A --ue value: "field:value", or a bare value matched against every identity field. */
function parseUe(raw: string): { field?: 'imei' | 'iccid' | 'eid' | 'msisdn'; value: string } {
  const m = /^(imei|iccid|eid|msisdn):(.+)$/i.exec(raw.trim());
  const field = m ? (m[1]?.toLowerCase() as 'imei' | 'iccid' | 'eid' | 'msisdn') : undefined;
  // MSISDNs are kept in E.164 form (with "+"): match with or without it
  const value = (m ? (m[2] as string) : raw).trim().replace(/^\+/, '');
  if (!/^[0-9]{6,32}$/.test(value)) fail('CONFIG_INVALID', '--ue: an IMEI, ICCID, EID or MSISDN (digits), optionally prefixed imei:, iccid:, eid: or msisdn:');
  return { field, value };
}

const bare = (x: string): string => x.replace(/^\+/, '');
const matches = (id: UeIdentity | undefined, q: { field?: 'imei' | 'iccid' | 'eid' | 'msisdn'; value: string }): boolean =>
  id !== undefined && (q.field ? bare(id[q.field]) === q.value : [id.imei, id.iccid, id.eid, id.msisdn].some((x) => bare(x) === q.value));

/**
 * UE keys whose identity matches: from the node's index (index.db: current bindings), then the
 * ledger txs the index has not seen yet (it lags after a crash) — or the whole ledger, with a
 * progress bar, when there is no index.
 */
function ueKeysFor(ledger: LocalLedger, indexPath: string, q: { field?: 'imei' | 'iccid' | 'eid' | 'msisdn'; value: string }, silent: boolean): Uint8Array[] {
  const keys = new Map<string, Uint8Array>();
  let from = 0;
  if (existsSync(indexPath)) {
    let db: Database.Database | undefined;
    try {
      db = new Database(indexPath, { readonly: true, fileMustExist: true });
      const cols = q.field ? [q.field] : (['imei', 'iccid', 'eid', 'msisdn'] as const);
      for (const c of cols) for (const k of db.prepare(`SELECT ue_key FROM ues WHERE ${c} IN (?, ?)`).pluck().all(q.value, `+${q.value}`) as Buffer[]) keys.set(k.toString('hex'), new Uint8Array(k));
      from = (db.prepare("SELECT value FROM meta WHERE key = 'indexed_through'").pluck().get() as number | undefined) ?? 0;
    } catch {
      // an unreadable index is only a shortcut: scan the ledger instead
      keys.clear();
      from = 0;
    } finally {
      db?.close();
    }
  }
  const size = ledger.info().size;
  if (from < size) {
    const bar = progressBar('scanning ledger', size - from, { silent: silent || size - from < 10_000 });
    for (let id = from; id < size; id++) {
      const e = ledger.get(id);
      if (e === undefined) break;
      try {
        const d = decodeEndorsementTx(e.tx).endorsement;
        const params = RegistrationParams.decode(d.registration?.params ?? new Uint8Array(0));
        if (matches(params.identity, q) || matches(d.accountStatus?.identity, q)) keys.set(toHex(d.ueKey), d.ueKey);
      } catch {
        // a configuration tx (consortium) or another tx type: not a UE version
      }
      if ((id - from) % 1000 === 0) bar.update(id - from);
    }
    bar.finish();
  }
  return [...keys.values()];
}

/** Every version of one UE key, oldest first. */
function versionsOf(ledger: LocalLedger, ueKey: Uint8Array): Record<string, unknown> {
  const versions = ledger.history(ueKey).map((e) => {
    const d = decodeEndorsementTx(e.tx).endorsement;
    const s = d.accountStatus;
    let identity: UeIdentity | undefined;
    try {
      identity = RegistrationParams.decode(d.registration?.params ?? new Uint8Array(0)).identity;
    } catch {
      identity = undefined;
    }
    return {
      txId: e.txId,
      txHash: toHex(e.leafHash),
      block: e.blockHeight,
      version: d.version,
      reason: enumName(EndorsementReason, d.reason, 'ENDORSEMENT_REASON_'),
      contractState: enumName(ContractState, s?.state ?? 0, 'CONTRACT_STATE_'),
      contractId: s?.contractId ?? '',
      terminationTime: when(s?.terminationTimeMs ?? 0),
      endorsedAt: when(d.endorsedAtMs),
      endorsedBy: d.asId,
      identity: identity ? describeIdentity(identity) : '',
    };
  });
  return { ueKey: toHex(ueKey), versions };
}

type UeQuery = ReturnType<typeof parseUe>;

async function inspectUe(ledger: LocalLedger, l: Layout, v: Record<string, unknown>, q: UeQuery | undefined): Promise<number> {
  const json = v.json === true;
  const keys = q === undefined ? [fromHex(str(v['ue-key'], 'ue-key'))] : ueKeysFor(ledger, l.indexPath, q, json);
  const ues = keys.map((k) => versionsOf(ledger, k)).filter((u) => (u.versions as unknown[]).length > 0);
  if (ues.length === 0) {
    if (json) console.log(JSON.stringify({ ledgerId: ledger.ledgerId, ues: [] }));
    console.error(`divs: UNKNOWN_IDENTITY: no UE with ${String(v.ue ?? v['ue-key'])} on ledger ${ledger.ledgerId}`);
    return 1;
  }
  if (json) {
    console.log(JSON.stringify({ ledgerId: ledger.ledgerId, ues }));
    return 0;
  }
  for (const u of ues) {
    console.log(`UE ${String(u.ueKey)} on ledger ${ledger.ledgerId}:`);
    for (const x of u.versions as Record<string, unknown>[]) {
      const term = x.terminationTime ? `, terminated ${String(x.terminationTime)}` : '';
      console.log(`  v${String(x.version)}  tx ${String(x.txId)}  ${String(x.reason).padEnd(20)} contract ${String(x.contractState)}${term}  endorsed ${String(x.endorsedAt)} by ${String(x.endorsedBy)}  ${String(x.identity)}`);
    }
  }
  return 0;
}

/** Entry point of `divs ledger …`. */
export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const opts = {
    'data-dir': { type: 'string' },
    config: { type: 'string' },
    cert: { type: 'string' },
    name: { type: 'string' },
    'ledger-id': { type: 'string' },
    json: { type: 'boolean' },
    from: { type: 'string' },
    limit: { type: 'string' },
    tx: { type: 'string' },
    ue: { type: 'string' },
    'ue-key': { type: 'string' },
  } as const;
  if (sub === '--help' || sub === '-h') {
    console.log(USAGE);
    return 0;
  }
  if (sub !== 'verify' && sub !== 'inspect' && sub !== 'proof') {
    console.error(USAGE);
    return 2;
  }
  const { values: v } = parse(rest, opts, USAGE);
  if ((v.ue !== undefined || v['ue-key'] !== undefined) && sub !== 'inspect') fail('CONFIG_INVALID', '--ue and --ue-key go with inspect');
  if (v.ue !== undefined && v['ue-key'] !== undefined) fail('CONFIG_INVALID', 'give --ue or --ue-key, not both');
  // bad values are usage errors before any file is touched
  const ueQuery = v.ue !== undefined ? parseUe(str(v.ue, 'ue')) : undefined;
  if (typeof v['ue-key'] === 'string' && !/^[0-9a-fA-F]{64}$/.test(v['ue-key'])) fail('CONFIG_INVALID', '--ue-key: 64 hex digits (SHA-256 of the UE public key)');
  if (sub === 'proof') int(str(v.tx, 'tx'), 'tx', 0, 0);
  const layout = layoutOf(v);
  let ledger: LocalLedger;
  try {
    ledger = await open(layout);
  } catch (e) {
    if (e instanceof DivsError && (e.code === 'LEDGER_TAMPERED' || e.code === 'LEDGER_CORRUPT')) {
      if (v.json) console.log(JSON.stringify({ ok: false, code: e.code, message: e.message }));
      console.error(`divs: ${e.code}: ledger verification FAILED: ${e.message}`);
      return 1;
    }
    throw e;
  }
  try {
    const info = ledger.info();
    if (sub === 'verify') {
      const out = {
        ok: true,
        ledgerId: info.ledgerId,
        backend: layout.consortium ? 'consortium' : 'local',
        blocks: info.height,
        transactions: info.size,
        root: toHex(info.rootHash),
        stateRoot: toHex(info.stateRoot),
        certificate: layout.certPath,
      };
      console.log(v.json ? JSON.stringify(out) : `ledger ${info.ledgerId} (${out.backend}) verified: ${info.height} blocks, ${info.size} transactions, root ${out.root}`);
      return 0;
    }
    if (sub === 'inspect') {
      if (ueQuery !== undefined || v['ue-key'] !== undefined) return await inspectUe(ledger, layout, v, ueQuery);
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
              return enumName(EndorsementReason, decodeEndorsementTx(t).endorsement.reason, 'ENDORSEMENT_REASON_');
            } catch {
              return 'CONFIG';
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
    const txId = int(str(v.tx, 'tx'), 'tx', 0, 0);
    const e = ledger.get(txId);
    if (!e) throw new DivsError('UNKNOWN_TX', `no transaction ${txId} (the ledger has ${info.size})`);
    const proof = ledger.inclusionProof(txId);
    const out = { txId, leafHash: toHex(e.leafHash), treeSize: proof.treeSize, hashes: proof.hashes.map(toBase64), checkpoint: ledger.checkpoint().note };
    console.log(v.json ? JSON.stringify(out) : `tx ${txId} leaf ${out.leafHash}\ninclusion proof in tree of size ${out.treeSize}:\n${out.hashes.map((h) => `  ${h}`).join('\n')}\n\ncheckpoint:\n${out.checkpoint}`);
    return 0;
  } finally {
    ledger.close();
  }
}
