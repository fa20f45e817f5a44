/**
 * `divs consumer verify`: service-user verification of signed records [VER-3] [FW-SU] with only
 * the consortium trust anchor; every record gets a verdict with its reason.
 */
import { readFileSync } from 'node:fs';
import { SignedRecord } from '../../proto/gen/divs/v1/common.ts';
import { pemBlocks } from '../../protocol/src/pki.ts';
import { DivsConsumer } from '../../consumer/src/client.ts';
import { fail } from '../../protocol/src/errors.ts';
import { parse, str } from './args.ts';

const USAGE = `divs consumer verify --records FILE --trust ROOT_CA.pem [--token T] [--json]

FILE holds one base64-encoded SignedRecord per line (as written by \`divs demo\`).
Exit code 1 when any record is invalid.`;

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'verify') {
    console.error(USAGE);
    return 2;
  }
  const { values: v } = parse(rest, { records: { type: 'string' }, trust: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  const roots = pemBlocks(readFileSync(str(v.trust, 'trust'), 'utf8'));
  if (roots.length === 0) fail('CONFIG_INVALID', '--trust: no certificate in the file');
  const lines = readFileSync(str(v.records, 'records'), 'utf8').split('\n').filter((l) => l.trim().length > 0);
  const consumer = new DivsConsumer({ anchors: { roots }, tokens: typeof v.token === 'string' ? { '*': v.token } : {} });
  try {
    const out: Array<{ line: number; ok: boolean; code?: string; reason?: string }> = [];
    for (const [i, line] of lines.entries()) {
      let rec: SignedRecord;
      try {
        rec = SignedRecord.decode(Buffer.from(line.trim(), 'base64'));
      } catch {
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
