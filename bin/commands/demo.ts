/**
 * `divs demo` — the scenario `npm start` runs on the embedded default (use case I.2, smart
 * meters and green electricity certificates):
 * 1. start the operator's CEF and a DIVS AS node (local ledger) as separate processes;
 * 2. provision a fleet of smart meters at the CEF in one batch [MTC-1] and push the AS entry
 *    address to them over the air [MTC-2];
 * 3. each meter generates its key in its key store and registers; the AS endorses [END-1..4];
 * 4. meters sign readings with the latest tx ID + entry address [VER-1];
 * 5. the operator terminates one meter's contract mid-way: the AS appends a new endorsed
 *    version and pushes it to the meter [UPD-1..4]; the meter keeps signing;
 * 6. one reading is tampered with in transit;
 * 7. a data consumer (the certificate issuer) verifies every reading with only the
 *    consortium root CA [VER-3] [FW-SU], and a readable summary is printed.
 * Then it keeps serving until Ctrl-C (`--once` exits after the summary).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RecordBody, SignedRecord, type TxRef } from '../../proto/gen/divs/v1/common.ts';
import { CefClient } from '../../cef/src/client.ts';
import { DivsConsumer } from '../../consumer/src/client.ts';
import { pemToDer } from '../../protocol/src/pki.ts';
import { UeClient } from '../../ue/src/client.ts';
import { RecordSigner } from '../../ue/src/records.ts';
import { buildFleet, registerFleet } from '../../ue/src/fleet.ts';
import { startService, type ChildService } from '../../platform/src/spawn.ts';
import { progressBar } from '../../platform/src/progress.ts';
import { int, parse, str } from './args.ts';

const USAGE = `divs demo [--data-dir DIR] [--meters N] [--readings N] [--once] [--json]

Runs the end-to-end DIVS scenario on this machine (CEF + AS node on loopback) and prints a
summary. Data lives in DIR (default ./.divs-data/demo), which is recreated on every run.`;

const PLMN = '26201';
const enc = new TextEncoder();

export async function run(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, { 'data-dir': { type: 'string' }, meters: { type: 'string' }, readings: { type: 'string' }, once: { type: 'boolean' }, json: { type: 'boolean' } }, USAGE);
  const dir = resolve(str(v['data-dir'], 'data-dir', '.divs-data/demo'));
  const meters = int(v.meters, 'meters', 24, 4, 10_000);
  const readings = int(v.readings, 'readings', 6, 2, 1000);
  const json = v.json === true;
  const say = (s: string) => {
    if (!json) console.log(s);
  };
  // the demo's own data: recreated so that every run tells the same story
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });

  const services: ChildService[] = [];
  const stopAll = () => Promise.allSettled(services.map((s) => s.stop()));
  try {
    say('DIVS demo — use case I.2: smart meters and green electricity certificates\n');
    const env = { DIVS_LOG_LEVEL: process.env.DIVS_LOG_LEVEL ?? 'warn' };
    const cefProc = await startService(['cef/src/main.ts', '--data-dir', join(dir, 'cef'), '--plmn', PLMN, '--operator', 'Example Mobile'], { env });
    services.push(cefProc);
    const asProc = await startService(['as-node/src/main.ts', '--data-dir', join(dir, 'as'), '--cef', `127.0.0.1:${cefProc.port}`, '--ledger-id', 'divs-demo'], { env });
    services.push(asProc);
    const asAddr = `127.0.0.1:${asProc.port}`;
    say(`  CEF (operator ${PLMN})   pid ${cefProc.pid}  grpc://127.0.0.1:${cefProc.port}`);
    say(`  DIVS AS node as-1       pid ${asProc.pid}  grpc://${asAddr}  ledger divs-demo (local, SQLite)\n`);

    const cef = new CefClient(`127.0.0.1:${cefProc.port}`);
    const fleet = await buildFleet({ count: meters, seed: 'divs-demo', plmnId: PLMN, terminalTypes: ['smart-meter'], owner: 'Sunny Roofs Cooperative' });
    const prov = await cef.provisionBatch(fleet.subscribers());
    say(`1. provisioned ${prov.provisioned} smart meters at the CEF in one batch [MTC-1]`);
    await cef.setDeviceConfig({ all: true, config: { entryAddress: { ledgerId: 'divs-demo', asUrls: [`grpc://${asAddr}`] }, gatewayUrl: '' } });
    let ota = 0;
    for (const u of fleet.ues) {
      const cfg = await cef.getDeviceConfig(u.identity, u.subscriber.otaKey);
      if (cfg.entryAddress?.asUrls[0] === `grpc://${asAddr}`) ota++;
    }
    say(`2. ${ota} meters received the AS entry address over the air (HMAC-authenticated) [MTC-2]`);

    const ueClient = new UeClient({ address: asAddr });
    const bar = progressBar('3. registering', meters, { silent: json });
    const report = await registerFleet(fleet.ues, (regs) => ueClient.registerBatch(regs), { batchSize: 100, onProgress: (p) => bar.update(p.registered + p.failed) });
    bar.finish(`${report.registered} endorsed`);
    ueClient.close();

    // readings: half before the termination, half after
    const signers = await Promise.all(
      fleet.ues.map(async (u) => {
        const s = await RecordSigner.open({ identity: u.identity, keystore: u.keystore, alias: u.alias });
        await s.updateEndorsement(u.endorsement?.tx as TxRef, u.endorsement?.version ?? 1);
        return s;
      }),
    );
    const records: Array<{ meter: number; rec: SignedRecord }> = [];
    const now = Date.now();
    const sign = async (from: number, to: number) => {
      for (let r = from; r < to; r++) {
        for (const [i, s] of signers.entries()) {
          const reading = { meter: fleet.ues[i]?.identity.imei, kWh: Math.round((2 + Math.sin(i + r) * 1.5) * 1000) / 1000, region: ['north', 'south', 'east', 'west'][i % 4] };
          records.push({ meter: i, rec: await s.sign(enc.encode(JSON.stringify(reading)), 'application/json', now - (readings - r) * 60_000) });
        }
      }
    };
    await sign(0, Math.floor(readings / 2));
    say(`4. meters signed ${records.length} readings, each with its tx ID + entry address [VER-1]`);

    // the operator terminates meter #3's contract; the AS endorses the change and tells the meter
    const victim = fleet.ues[3];
    if (!victim) throw new Error('fleet too small');
    const watcher = new UeClient({ address: asAddr, device: { identity: victim.identity, keystore: victim.keystore, alias: victim.alias } });
    let watch: { stop(): void } | undefined;
    const pushed = new Promise<number>((resolveUpdate) => {
      watch = watcher.watchUpdates(1, async (u) => {
        await signers[3]?.updateEndorsement(u.tx, u.version);
        resolveUpdate(u.version);
      });
    });
    await new Promise((r) => setTimeout(r, 200));
    await cef.applyAction(victim.identity, { $case: 'terminate', value: { terminationTimeMs: now - Math.floor(readings / 2) * 60_000 + 30_000 } });
    const version = await Promise.race([pushed, new Promise<number>((_, rej) => setTimeout(() => rej(new Error('no update pushed within 15 s')), 15_000))]);
    watch?.stop();
    watcher.close();
    say(`5. contract of meter #3 terminated at the operator -> AS endorsed version ${version} and pushed it to the meter [UPD-1..4]`);
    await sign(Math.floor(readings / 2), readings);

    // a reading tampered with in transit
    const tamperedIndex = records.findIndex((r) => r.meter === 1);
    const t = records[tamperedIndex] as { meter: number; rec: SignedRecord };
    const original = RecordBody.decode(t.rec.body);
    const forged = { ...original, payload: enc.encode(new TextDecoder().decode(original.payload).replace(/"kWh":[0-9.]+/, '"kWh":99.9')) };
    t.rec = { ...t.rec, body: RecordBody.encode(forged).finish() };
    say(`6. one reading of meter #1 was altered in transit (kWh raised to 99.9)`);
    writeFileSync(join(dir, 'records.b64'), records.map((r) => Buffer.from(SignedRecord.encode(r.rec).finish()).toString('base64')).join('\n') + '\n');

    const token = readFileSync(join(dir, 'as', 'consumer.token'), 'utf8').trim();
    const rootPem = readFileSync(join(dir, 'as', 'pki', 'root-ca.pem'), 'utf8');
    const consumer = new DivsConsumer({ anchors: { roots: [pemToDer(rootPem)] }, tokens: { '*': token } });
    const byReason: Record<string, number> = {};
    const invalid: string[] = [];
    let valid = 0;
    for (const [k, r] of records.entries()) {
      const verdict = await consumer.verifyRecord(r.rec);
      if (verdict.ok) valid++;
      else {
        byReason[verdict.code] = (byReason[verdict.code] ?? 0) + 1;
        if (invalid.length < 8) invalid.push(`   reading ${k + 1} (meter #${r.meter}): ${verdict.code} — ${verdict.reason}`);
      }
    }
    consumer.close();
    cef.close();
    await fleet.close();

    const summary = { meters, registered: report.registered, readings: records.length, valid, invalid: records.length - valid, byReason, dataDir: dir };
    if (json) console.log(JSON.stringify(summary));
    else {
      say(`7. the certificate issuer verified every reading with only the consortium root CA [VER-3] [FW-SU]\n`);
      say('Summary');
      say(`   meters registered ......... ${report.registered}/${meters}`);
      say(`   readings verified ......... ${records.length}`);
      say(`   valid ..................... ${valid}`);
      say(`   invalid ................... ${records.length - valid}`);
      for (const [code, n] of Object.entries(byReason)) say(`     ${code.padEnd(26)} ${n}`);
      if (invalid.length) say(`\n   details:\n${invalid.join('\n')}`);
      say(`\n   records: ${join(dir, 'records.b64')}  — re-verify with:`);
      say(`   node bin/divs.ts consumer verify --records ${join(dir, 'records.b64')} --trust ${join(dir, 'as', 'pki', 'root-ca.pem')} --token $(cat ${join(dir, 'as', 'consumer.token')})`);
    }
    if (v.once) return 0;
    say(`\nDashboard: http://127.0.0.1:${String(asProc.ready.httpPort)}/  (sign in with the token in ${join(dir, 'as', 'consumer.token')})`);
    say(`Serving (CEF grpc://127.0.0.1:${cefProc.port}, AS grpc://${asAddr}); Ctrl-C to stop.`);
    await new Promise<void>((resolveStop) => {
      process.once('SIGINT', () => resolveStop());
      process.once('SIGTERM', () => resolveStop());
    });
    return 0;
  } finally {
    await stopAll();
  }
}
