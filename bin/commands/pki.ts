/**
 * `divs pki init|issue`: the consortium PKI [SEC-3] — a root CA per deployment and AS,
 * gateway and client certificates under it. Keys are written with mode 0600.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRootCa, issueCertificate } from '../../protocol/src/pki.ts';
import { fail } from '../../protocol/src/errors.ts';
import { int, parse, str } from './args.ts';

const USAGE = `divs pki init  --out DIR [--name "DIVS consortium root CA"] [--days 3650]
divs pki issue --ca DIR --name NAME --role as|gateway|client --out DIR [--days 825]

init writes DIR/root-ca.pem and DIR/root-ca.key; issue writes DIR/NAME.pem and DIR/NAME.key.`;

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'init') {
    const { values: v } = parse(rest, { out: { type: 'string' }, name: { type: 'string' }, days: { type: 'string' } }, USAGE);
    const out = str(v.out, 'out');
    mkdirSync(out, { recursive: true, mode: 0o700 });
    const ca = await createRootCa({ name: str(v.name, 'name', 'DIVS consortium root CA'), validityDays: int(v.days, 'days', 3650, 1) });
    writeFileSync(join(out, 'root-ca.pem'), ca.certPem);
    writeFileSync(join(out, 'root-ca.key'), ca.keyPem, { mode: 0o600, flag: 'wx' });
    console.log(`root CA written to ${join(out, 'root-ca.pem')} (key: root-ca.key — keep it offline)`);
    return 0;
  }
  if (sub === 'issue') {
    const { values: v } = parse(rest, { ca: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' }, out: { type: 'string' }, days: { type: 'string' } }, USAGE);
    const caDir = str(v.ca, 'ca');
    const role = str(v.role, 'role');
    if (role !== 'as' && role !== 'gateway' && role !== 'client') fail('CONFIG_INVALID', '--role must be as, gateway or client');
    const name = str(v.name, 'name');
    const out = str(v.out, 'out');
    const ca = { certPem: readFileSync(join(caDir, 'root-ca.pem'), 'utf8'), keyPem: readFileSync(join(caDir, 'root-ca.key'), 'utf8') };
    const leaf = await issueCertificate({ ca, subjectName: name, role, validityDays: int(v.days, 'days', 825, 1) });
    mkdirSync(out, { recursive: true, mode: 0o700 });
    writeFileSync(join(out, `${name}.pem`), leaf.certPem);
    writeFileSync(join(out, `${name}.key`), leaf.keyPem, { mode: 0o600, flag: 'wx' });
    console.log(`${role} certificate for ${name} written to ${join(out, `${name}.pem`)}`);
    return 0;
  }
  console.error(USAGE);
  return 2;
}
