/**
 * `divs consumer …`: the service user's tools.
 * - `verify --records FILE`: online verification of signed records against their endorsements
 *   [VER-3] [FW-SU], with only the consortium trust anchor; every record gets a verdict.
 * - `verify PKG`: OFFLINE verification of a data package (plain or encrypted) [SC1-1] [SC1-2].
 * - `package`: builds a data package from a records file, fetching the proofs from the AS.
 * - `transfer`: passes a package to a new holder with a signed custody transfer [SC1-2].
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { SignedRecord } from '../../proto/gen/divs/v1/common.ts';
import { pemBlocks } from '../../protocol/src/pki.ts';
import { DivsConsumer } from '../../consumer/src/client.ts';
import {
  buildPackage,
  encodePackageFile,
  encryptPackage,
  openPackageFile,
  packageReportJson,
  transferPackage,
  verifyPackage,
  type PackageReport,
} from '../../consumer/src/package.ts';
import { toHex } from '../../protocol/src/bytes.ts';
import { fail } from '../../protocol/src/errors.ts';
import { importPrivateKey, nodeSigner } from '../../protocol/src/suites.ts';
import { parse, str } from './args.ts';

const USAGE = `divs consumer <verify|package|transfer|datasets|job|train> [options]

(\`divs consumer datasets --help\`, \`divs consumer job --help\` and \`divs consumer train --help\`
describe the commands that talk to aggregator gateways.)

divs consumer verify --records FILE --trust ROOT_CA.pem [--token T] [--json]
    Online: fetch each record's endorsement from the AS and verify it (VER-3).
    FILE holds one base64-encoded SignedRecord per line (as written by \`divs demo\`).

divs consumer verify PKG --trust ROOT_CA.pem [--trust ROOT2.pem …] [--key RECIPIENT.pem] [--at ISO_TIME] [--json]
    Offline: verify a data package with only the trust anchors (10.1). --key decrypts an
    encrypted package (X25519 or P-256 private key, PEM).

divs consumer package --records FILE --as-token T --trust ROOT_CA.pem --out PKG
                      [--producer NAME] [--description TEXT] [--encrypt-to PUB.pem]
    Build a data package from a records file, with every proof fetched from the AS.

divs consumer transfer PKG --key SENDER.pem --to NAME --out PKG2 [--cert SENDER_CHAIN.pem]
                       [--to-key RECIPIENT_SIGNING_PUB.pem] [--note TEXT]
                       [--decrypt-key KEY.pem] [--encrypt-to PUB.pem]
    Pass a package to NAME with a custody transfer signed by the current holder's key.

Exit code 1 when anything is invalid.`;

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'verify') return verify(rest);
  if (sub === 'package') return makePackage(rest);
  if (sub === 'transfer') return transfer(rest);
  console.error(USAGE);
  return 2;
}

/** Every certificate of every --trust file. */
function trustRoots(v: unknown): Uint8Array[] {
  const files = Array.isArray(v) ? (v as string[]) : typeof v === 'string' ? [v] : [];
  if (files.length === 0) fail('CONFIG_INVALID', '--trust is required');
  const roots = files.flatMap((f) => pemBlocks(readFileSync(f, 'utf8')));
  if (roots.length === 0) fail('CONFIG_INVALID', '--trust: no certificate in the file');
  return roots;
}

function readRecords(file: string): Array<SignedRecord | undefined> {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((line) => {
      try {
        return SignedRecord.decode(Buffer.from(line.trim(), 'base64'));
      } catch {
        return undefined;
      }
    });
}

async function verify(argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(
    argv,
    { records: { type: 'string' }, trust: { type: 'string', multiple: true }, token: { type: 'string' }, key: { type: 'string' }, at: { type: 'string' }, json: { type: 'boolean' } },
    USAGE,
    true,
  );
  if (positionals.length > 1) fail('CONFIG_INVALID', `one package file at a time\n\n${USAGE}`);
  const roots = trustRoots(v.trust);
  if (positionals.length === 1) {
    if (v.records !== undefined) fail('CONFIG_INVALID', 'give a package file or --records, not both');
    return verifyPackageFile(positionals[0] as string, roots, v);
  }
  const records = readRecords(str(v.records, 'records'));
  const consumer = new DivsConsumer({ anchors: { roots }, tokens: typeof v.token === 'string' ? { '*': v.token } : {} });
  try {
    const out: Array<{ line: number; ok: boolean; code?: string; reason?: string }> = [];
    for (const [i, rec] of records.entries()) {
      if (!rec) {
        out.push({ line: i + 1, ok: false, code: 'MALFORMED_MESSAGE', reason: 'not a SignedRecord' });
        continue;
      }
      const verdict = await consumer.verifyRecord(rec);
      out.push(verdict.ok ? { line: i + 1, ok: true } : { line: i + 1, ok: false, code: verdict.code, reason: verdict.reason });
    }
    const bad = out.filter((o) => !o.ok);
    if (v.json) console.log(JSON.stringify({ total: out.length, valid: out.length - bad.length, invalid: bad }));
    else {
      for (const b of bad) console.log(`record ${b.line}: INVALID ${b.code}: ${b.reason}`);
      console.log(`${out.length - bad.length} of ${out.length} records valid`);
    }
    return bad.length > 0 ? 1 : 0;
  } finally {
    consumer.close();
  }
}

function verifyPackageFile(file: string, roots: Uint8Array[], v: Record<string, unknown>): number {
  let at: Date | undefined;
  if (v.at !== undefined) {
    at = new Date(String(v.at));
    if (!Number.isFinite(at.getTime())) fail('CONFIG_INVALID', '--at: not a date/time');
  }
  const key = typeof v.key === 'string' ? readFileSync(v.key, 'utf8') : undefined;
  const pkg = openPackageFile(new Uint8Array(readFileSync(file)), key);
  const report = verifyPackage(pkg, { roots }, { at });
  if (v.json) console.log(JSON.stringify(packageReportJson(report)));
  else printReport(report);
  return report.ok ? 0 : 1;
}

const when = (ms: number) => new Date(ms).toISOString();

function printReport(r: PackageReport): void {
  const p = r.producer;
  console.log(`package ${toHex(r.digest)}`);
  console.log(`  produced by ${p.name}${p.kind ? ` (${p.kind})` : ''} at ${when(r.createdAtMs)}${r.description ? ` — ${r.description}` : ''}`);
  const n = r.records;
  console.log(`records: ${n.listed} listed, ${n.unique} unique${n.duplicates ? ` (${n.duplicates} duplicates across parts)` : ''}: ${n.valid} valid, ${n.invalid} invalid`);
  for (const [code, count] of Object.entries(r.verdicts).sort((a, b) => b[1] - a[1])) console.log(`  ${code.padEnd(26)} ${count}`);
  for (const i of r.invalid.slice(0, 20)) console.log(`  INVALID ${i.where}${i.ue ? ` ${i.ue}` : ''}${i.sequence ? ` #${i.sequence}` : ''}: ${i.code}: ${i.reason}`);
  if (r.invalid.length > 20) console.log(`  … ${r.invalid.length - 20} more`);
  console.log(`chains: ${r.chains.length} UE(s)${r.findings.length ? `, ${r.findings.length} finding(s)` : ', intact'}`);
  for (const f of r.findings.slice(0, 20)) console.log(`  ${f.code} ${f.ue} #${f.sequence} (${f.where}): ${f.detail}`);
  const e = r.endorsements;
  console.log(`endorsements: ${e.valid} of ${e.total} proofs valid`);
  for (const c of e.checks.filter((x) => !x.ok)) console.log(`  INVALID ${c.where} tx ${c.txId}: ${c.code}: ${c.reason}`);
  const custody = (c: PackageReport['custody'], producer: string, indent: string) => {
    const path = c.transfers.map((t) => `${t.to} (${when(t.timeMs)}, ${t.senderBinding})`);
    console.log(`${indent}custody: ${[producer, ...path].join(' -> ')}; holder ${c.holder}${c.ok ? '' : ` — BROKEN at transfer ${c.error?.index}: ${c.error?.code}: ${c.error?.reason}`}`);
  };
  custody(r.custody, p.name, '');
  for (const part of r.parts) {
    console.log(`part ${part.where}: ${toHex(part.digest).slice(0, 16)}… by ${part.producer.name}, ${part.records} records`);
    custody(part.custody, part.producer.name, '  ');
  }
  console.log(`dataset commitment: ${toHex(r.datasetCommitment)} (${r.records.valid} valid records)`);
  console.log(r.ok ? 'RESULT: VALID' : 'RESULT: INVALID');
}

async function makePackage(argv: string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    {
      records: { type: 'string' },
      'as-token': { type: 'string' },
      trust: { type: 'string', multiple: true },
      out: { type: 'string' },
      producer: { type: 'string' },
      description: { type: 'string' },
      'encrypt-to': { type: 'string' },
      json: { type: 'boolean' },
    },
    USAGE,
  );
  const roots = trustRoots(v.trust);
  const out = str(v.out, 'out');
  const records = readRecords(str(v.records, 'records'));
  const bad = records.findIndex((r) => r === undefined);
  if (bad >= 0) fail('INVALID_ARGUMENT', `--records: line ${bad + 1} is not a base64 SignedRecord`);
  const recipient = typeof v['encrypt-to'] === 'string' ? readFileSync(v['encrypt-to'], 'utf8') : undefined;
  const consumer = new DivsConsumer({ anchors: { roots }, tokens: { '*': str(v['as-token'], 'as-token') } });
  const problems: Array<{ index: number; code: string; reason: string }> = [];
  try {
    const pkg = await buildPackage(records as SignedRecord[], consumer, {
      producer: { name: str(v.producer, 'producer', 'consumer'), kind: 'consumer' },
      description: typeof v.description === 'string' ? v.description : '',
      onProblem: (p) => problems.push(p),
    });
    const bytes = encodePackageFile(recipient === undefined ? pkg : encryptPackage(pkg, recipient));
    writeFileSync(out, bytes);
    if (v.json) console.log(JSON.stringify({ out, records: records.length, bytes: bytes.length, encrypted: recipient !== undefined, problems }));
    else {
      for (const p of problems) console.log(`record ${p.index + 1}: ${p.code}: ${p.reason}`);
      console.log(`wrote ${out}: ${records.length} records, ${bytes.length} bytes${recipient !== undefined ? ', encrypted' : ''}`);
    }
    return 0;
  } finally {
    consumer.close();
  }
}

async function transfer(argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(
    argv,
    {
      key: { type: 'string' },
      to: { type: 'string' },
      out: { type: 'string' },
      cert: { type: 'string' },
      'to-key': { type: 'string' },
      note: { type: 'string' },
      'decrypt-key': { type: 'string' },
      'encrypt-to': { type: 'string' },
    },
    USAGE,
    true,
  );
  if (positionals.length !== 1) fail('CONFIG_INVALID', `give one package file\n\n${USAGE}`);
  const decryptKey = typeof v['decrypt-key'] === 'string' ? readFileSync(v['decrypt-key'], 'utf8') : undefined;
  const pkg = openPackageFile(new Uint8Array(readFileSync(positionals[0] as string)), decryptKey);
  const signer = nodeSigner(importPrivateKey(readFileSync(str(v.key, 'key'), 'utf8')));
  let toKey: KeyObject | undefined;
  if (typeof v['to-key'] === 'string') {
    try {
      toKey = createPublicKey(readFileSync(v['to-key'], 'utf8'));
    } catch (e) {
      fail('CONFIG_INVALID', '--to-key: not a public key (PEM)', e);
    }
  }
  const next = await transferPackage(pkg, signer, str(v.to, 'to'), {
    toKey,
    certChain: typeof v.cert === 'string' ? pemBlocks(readFileSync(v.cert, 'utf8')) : undefined,
    note: typeof v.note === 'string' ? v.note : undefined,
  });
  const recipient = typeof v['encrypt-to'] === 'string' ? readFileSync(v['encrypt-to'], 'utf8') : undefined;
  const out = str(v.out, 'out');
  writeFileSync(out, encodePackageFile(recipient === undefined ? next : encryptPackage(next, recipient)));
  console.log(`wrote ${out}: transfer ${next.custody.length} to ${String(v.to)}${recipient !== undefined ? ', encrypted' : ''}`);
  return 0;
}
