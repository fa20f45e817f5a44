/**
 * `divs ue fleet`: the fleet simulator [MTC-1] [REG-1] — builds N UEs (keys generated in key
 * stores, signed registrations), provisions them at the operator's CEF and registers them at
 * an AS in batches, with a progress bar.
 */
import { CefClient } from '../../cef/src/client.ts';
import { UeClient } from '../../ue/src/client.ts';
import { buildFleet, registerFleet } from '../../ue/src/fleet.ts';
import { progressBar } from '../../platform/src/progress.ts';
import { int, parse, str } from './args.ts';

const USAGE = `divs ue fleet --cef HOST:PORT --as HOST:PORT --count N [--seed S] [--plmn 26201]
              [--batch 500] [--cef-token T] [--json]

Provisions N simulated smart meters at the CEF and registers them at the AS.`;

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'fleet') {
    console.error(USAGE);
    return 2;
  }
  const { values: v } = parse(
    rest,
    { cef: { type: 'string' }, as: { type: 'string' }, count: { type: 'string' }, seed: { type: 'string' }, plmn: { type: 'string' }, batch: { type: 'string' }, 'cef-token': { type: 'string' }, json: { type: 'boolean' } },
    USAGE,
  );
  const count = int(v.count, 'count', 100, 1, 1_000_000);
  const json = v.json === true;
  const plmnId = str(v.plmn, 'plmn', '26201');
  const cef = new CefClient(str(v.cef, 'cef'), { token: typeof v['cef-token'] === 'string' ? v['cef-token'] : undefined });
  const as = new UeClient({ address: str(v.as, 'as') });
  const build = progressBar('building UEs', count, { silent: json });
  const fleet = await buildFleet({ count, seed: str(v.seed, 'seed', 'divs-fleet'), plmnId, onProgress: (d) => build.update(d) });
  build.finish();
  try {
    const subs = fleet.subscribers();
    const prov = progressBar('provisioning at CEF', count, { silent: json });
    let provisioned = 0;
    for (let i = 0; i < subs.length; i += 10_000) {
      const r = await cef.provisionBatch(subs.slice(i, i + 10_000));
      provisioned += r.provisioned;
      prov.update(Math.min(count, i + 10_000));
    }
    prov.finish(`${provisioned} provisioned`);
    const reg = progressBar('registering at AS', count, { silent: json });
    const report = await registerFleet(fleet.ues, (regs) => as.registerBatch(regs), { batchSize: int(v.batch, 'batch', 500, 1, 10_000), onProgress: (p) => reg.update(p.registered + p.failed) });
    reg.finish(`${report.registered} registered, ${report.failed} failed`);
    if (json) console.log(JSON.stringify({ provisioned, ...report }));
    else if (report.failed > 0) console.log(`failures by code: ${JSON.stringify(report.errors)}`);
    return report.failed > 0 ? 1 : 0;
  } finally {
    await fleet.close();
    cef.close();
    as.close();
  }
}
