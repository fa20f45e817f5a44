/**
 * @module commands/demo
 * `divs demo` — the scenario `npm start` runs on the embedded default (use case I.2, smart
 * meters and green electricity certificates), both service scenarios of Y.2247 in one run:
 * 0. start the operator's CEF, a DIVS AS node (local ledger) and two aggregator gateways
 *    (gw-north, gw-south: record store, verification engine, job runner pool) as separate
 *    processes; each gateway's certificate is issued under the consortium root CA;
 * 1. provision a fleet of smart meters at the CEF in one batch [MTC-1];
 * 2. push the AS entry address and each meter's gateway (by region) over the air [MTC-2];
 * 3. each meter generates its key in its key store and registers; the AS endorses [END-1..4];
 * 4. meters sign readings with the latest tx ID + entry address [VER-1] and stream them to
 *    their gateway over the gRPC ingest stream (one ack per record) [E2E-2]; one reading is
 *    altered in transit;
 * 5. the operator terminates one meter's contract mid-way: the AS appends a new endorsed
 *    version and pushes it to the meter [UPD-1..4];
 * 6. the meters keep signing and streaming;
 * 7. scenario 10.1: the certificate issuer verifies every reading with only the consortium
 *    root CA, directly against the AS [VER-3] [FW-SU];
 * 8. scenario 10.2: the issuer lists the datasets the gateways share (descriptions only) [SC2-1];
 * 9. asks each gateway to verify its dataset and checks the signed report [SC2-2];
 * 10. runs the job "green energy per region" on both gateways and checks the attestations
 *     [SC2-3] [SC2-4];
 * 11. trains a model with FedAvg across both gateways, 3 rounds, every job attested [SC2-5];
 * and prints a readable summary (or `--json`). Then it keeps serving the dashboards until
 * Ctrl-C (`--once` exits after the summary).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RecordBody, SignedRecord, type TxRef } from '../../proto/gen/divs/v1/common.ts';
import { AckStatus } from '../../proto/gen/divs/v1/gateway.ts';
import { CefClient } from '../../cef/src/client.ts';
import { DivsConsumer } from '../../consumer/src/client.ts';
import { codeHashOf, gatewayCredentials, jobStateName } from '../../consumer/src/jobs.ts';
import { LOGREG_SOURCE } from '../../consumer/src/models/logreg.ts';
import { IngestClient } from '../../gateway/src/client.ts';
import { pemToDer } from '../../protocol/src/pki.ts';
import { UeClient } from '../../ue/src/client.ts';
import { RecordSigner } from '../../ue/src/records.ts';
import { buildFleet, registerFleet } from '../../ue/src/fleet.ts';
import { smartMeter, type MeterReading } from '../../ue/src/usecases.ts';
import { startService, type ChildService } from '../../platform/src/spawn.ts';
import { progressBar } from '../../platform/src/progress.ts';
import { int, parse, str } from './args.ts';
import { issueConsumerCertificate, startDemoGateway, type DemoGateway, type GatewaySpec } from './demo/gateways.ts';
import { listDatasets, runGreenEnergyJob, trainAcross, verifyDatasets, type ConsumerSite, type JobFacts, type ReportFacts, type TrainingFacts } from './demo/aggregator.ts';
import { GREEN_ENERGY_SOURCE } from './demo/green-energy.ts';

const USAGE = `divs demo [--data-dir DIR] [--meters N] [--readings N] [--once] [--json]

Runs the whole DIVS scenario on this machine — CEF, AS node (local ledger) and two aggregator
gateways on loopback — and prints a summary. Data lives in DIR (default ./.divs-data/demo),
which is recreated on every run. The N meters (12 to 10000, default 24) are spread over four
regions served by two gateways; each meter signs N readings (2 to 1000, default 6) covering
the last day.`;

const PLMN = '26201';
const CONSUMER = 'green-cert-issuer';
/** The gateways' aggregation threshold: distinct meters behind every released group. */
const MIN_DISTINCT_UES = 3;
const GATEWAYS: GatewaySpec[] = [
  { name: 'gw-north', datasetId: 'meters-north', description: 'Smart-meter readings (use case I.2) of Hamburg and Berlin', regions: ['DE-HH', 'DE-BE'] },
  { name: 'gw-south', datasetId: 'meters-south', description: 'Smart-meter readings (use case I.2) of Bavaria and Baden-Württemberg', regions: ['DE-BY', 'DE-BW'] },
];
/** Meter i is in REGIONS[i % 4]: meters 0, 1 report to gw-north, 2, 3 to gw-south, and so on. */
const REGIONS = ['DE-HH', 'DE-BE', 'DE-BY', 'DE-BW'] as const;
const TAMPERED_METER = 1;
const TERMINATED_METER = 3;
const TRAINING = { features: ['pvKWh', 'voltageV'], label: { column: 'exportKWh', op: 'gt', value: 0 } as const, rounds: 3, localEpochs: 3, learningRate: 0.5, batchSize: 16, seed: 7 };

const QUARTER_HOUR = 15 * 60_000;
const DAY = 86_400_000;
const enc = new TextEncoder();
const dec = new TextDecoder();

interface Reading {
  payload: MeterReading;
  bytes: Uint8Array;
  /** When the meter signs it: the end of its interval. */
  signAtMs: number;
}

interface IngestTally {
  sent: number;
  stored: number;
  duplicate: number;
  rejected: number;
  rejectedByCode: Record<string, number>;
}

const tally = (): IngestTally => ({ sent: 0, stored: 0, duplicate: 0, rejected: 0, rejectedByCode: {} });
const kwh = (x: number) => `${x.toFixed(1)} kWh`;
const short = (h: string) => `${h.slice(0, 16)}…`;

export async function run(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, { 'data-dir': { type: 'string' }, meters: { type: 'string' }, readings: { type: 'string' }, once: { type: 'boolean' }, json: { type: 'boolean' } }, USAGE);
  const dir = resolve(str(v['data-dir'], 'data-dir', '.divs-data/demo'));
  // two gateways x two regions, each region with at least the aggregation threshold of meters
  const meters = int(v.meters, 'meters', 24, 4 * MIN_DISTINCT_UES, 10_000);
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
    const asUrl = `grpc://${asAddr}`;
    const asToken = readFileSync(join(dir, 'as', 'consumer.token'), 'utf8').trim();
    const rootPemPath = join(dir, 'as', 'pki', 'root-ca.pem');
    const rootPem = readFileSync(rootPemPath, 'utf8');
    const anchors = { roots: [pemToDer(rootPem)] };
    // the consortium CA operator issues the gateway and consumer certificates; no gateway holds the CA key
    const ca = { certPem: rootPem, keyPem: readFileSync(join(dir, 'as', 'pki', 'root-ca.key'), 'utf8') };
    const ingestToken = randomBytes(24).toString('base64url');
    const allowCodeHashes = [codeHashOf(GREEN_ENERGY_SOURCE), codeHashOf(LOGREG_SOURCE)];
    const gateways: DemoGateway[] = [];
    const started = await Promise.allSettled(
      GATEWAYS.map((spec) =>
        startDemoGateway(spec, { dir, ca, rootPemPath, asUrl, asToken, consumer: CONSUMER, ingestToken, contentType: smartMeter.contentType, allowCodeHashes, minDistinctUes: MIN_DISTINCT_UES, env }),
      ),
    );
    // every gateway that did start is stopped in `finally`, even when the other one failed
    for (const s of started) {
      if (s.status !== 'fulfilled') continue;
      gateways.push(s.value);
      services.push(s.value.proc);
    }
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    say(`  CEF (operator ${PLMN})   pid ${cefProc.pid}  grpc://127.0.0.1:${cefProc.port}`);
    say(`  DIVS AS node as-1       pid ${asProc.pid}  ${asUrl}  ledger divs-demo (local, SQLite)`);
    for (const g of gateways) say(`  gateway ${g.name.padEnd(15)} pid ${g.proc.pid}  ${g.url}  dataset ${g.datasetId} (${g.regions.join(', ')}), runner pool`);
    say('');

    const cef = new CefClient(`127.0.0.1:${cefProc.port}`);
    const fleet = await buildFleet({ count: meters, seed: 'divs-demo', plmnId: PLMN, terminalTypes: ['smart-meter'], owner: 'Sunny Roofs Cooperative' });
    const prov = await cef.provisionBatch(fleet.subscribers());
    say(`1. provisioned ${prov.provisioned} smart meters at the CEF in one batch [MTC-1]`);
    const entryAddress = { ledgerId: 'divs-demo', asUrls: [asUrl] };
    for (const [g, gw] of gateways.entries()) {
      const identities = fleet.ues.filter((_, i) => gatewayOf(i) === g).map((u) => u.identity);
      await cef.setDeviceConfig({ identities, config: { entryAddress, gatewayUrl: gw.url } });
    }
    // each meter learns its AS and its gateway from the signed over-the-air configuration
    const meterGateway: number[] = [];
    for (const u of fleet.ues) {
      const cfg = await cef.getDeviceConfig(u.identity, u.subscriber.otaKey);
      const g = gateways.findIndex((x) => x.url === cfg.gatewayUrl);
      if (cfg.entryAddress?.asUrls[0] === asUrl && g >= 0) meterGateway.push(g);
    }
    if (meterGateway.length !== meters) throw new Error(`only ${meterGateway.length} of ${meters} meters received their configuration over the air`);
    say(`2. ${meterGateway.length} meters received the AS entry address and their region's gateway over the air (HMAC-authenticated) [MTC-2]`);

    const ueClient = new UeClient({ address: asAddr });
    const bar = progressBar('3. registering', meters, { silent: json });
    const report = await registerFleet(fleet.ues, (regs) => ueClient.registerBatch(regs), { batchSize: 100, onProgress: (p) => bar.update(p.registered + p.failed) });
    bar.finish(`${report.registered} endorsed`);
    ueClient.close();

    // each meter's readings cover the last day: intervals of 24 h / readings, signed at their end
    const now = Date.now();
    const intervalMs = Math.max(QUARTER_HOUR, Math.floor(DAY / readings / QUARTER_HOUR) * QUARTER_HOUR);
    const t0 = Math.floor((now - readings * intervalMs - 2 * 3_600_000) / QUARTER_HOUR) * QUARTER_HOUR;
    const series: Reading[][] = fleet.ues.map((_, i) =>
      smartMeter.generate({ seed: 'divs-demo', deviceId: meterId(i), count: readings, startMs: t0 + (i % 8) * QUARTER_HOUR, intervalMs }).map((s) => {
        const payload = { ...s.payload, region: REGIONS[i % REGIONS.length] as string };
        return { payload, bytes: enc.encode(JSON.stringify(payload)), signAtMs: s.timestampMs + intervalMs };
      }),
    );
    const signers = await Promise.all(
      fleet.ues.map(async (u) => {
        const s = await RecordSigner.open({ identity: u.identity, keystore: u.keystore, alias: u.alias });
        await s.updateEndorsement(u.endorsement?.tx as TxRef, u.endorsement?.version ?? 1);
        return s;
      }),
    );
    const records: Array<{ meter: number; rec: SignedRecord }> = [];
    const sign = async (from: number, to: number): Promise<Array<{ meter: number; rec: SignedRecord }>> => {
      const out: Array<{ meter: number; rec: SignedRecord }> = [];
      for (let r = from; r < to; r++) {
        for (const [i, s] of signers.entries()) {
          const x = series[i]?.[r] as Reading;
          out.push({ meter: i, rec: await s.sign(x.bytes, smartMeter.contentType, x.signAtMs) });
        }
      }
      records.push(...out);
      return out;
    };

    // one ingest stream per gateway, over TLS, with the meters' ingest token
    const ingest = gateways.map((g) => new IngestClient({ address: g.address, channel: 'meters', token: ingestToken, credentials: gatewayCredentials({ rootsPem: rootPem, gatewayName: g.name }) }));
    const ingestTally = gateways.map(tally);
    const stream = async (batch: Array<{ meter: number; rec: SignedRecord }>): Promise<string> => {
      const parts = await Promise.all(
        gateways.map(async (g, k) => {
          const mine = batch.filter((r) => meterGateway[r.meter] === k);
          const acks = await (ingest[k] as IngestClient).send(mine.map((r) => r.rec));
          const t = ingestTally[k] as IngestTally;
          let stored = 0;
          t.sent += mine.length;
          for (const a of acks) {
            if (a.status === AckStatus.ACK_STATUS_STORED) {
              t.stored++;
              stored++;
            } else if (a.status === AckStatus.ACK_STATUS_DUPLICATE) {
              t.duplicate++;
            } else {
              const code = a.errorCode || 'UNKNOWN';
              t.rejected++;
              t.rejectedByCode[code] = (t.rejectedByCode[code] ?? 0) + 1;
            }
          }
          return `${g.name} ${stored}/${mine.length} stored`;
        }),
      );
      return parts.join(', ');
    };

    const half = Math.floor(readings / 2);
    const first = await sign(0, half);
    // a reading tampered with in transit: meter #1's first one claims far more solar production
    const tamperedIndex = records.findIndex((r) => r.meter === TAMPERED_METER);
    const t = records[tamperedIndex] as { meter: number; rec: SignedRecord };
    const original = RecordBody.decode(t.rec.body);
    const claimed = { ...(JSON.parse(dec.decode(original.payload)) as MeterReading), pvKWh: 99.9 };
    t.rec = { ...t.rec, body: RecordBody.encode({ ...original, payload: enc.encode(JSON.stringify(claimed)) }).finish() };
    say(`4. meters signed ${first.length} readings (${intervalMs / 60_000}-minute intervals), each with its tx ID + entry address [VER-1]`);
    say(`   one reading of meter #${TAMPERED_METER} was altered in transit (solar production raised to 99.9 kWh)`);
    say(`   streamed to the gateways over gRPC ingest, one ack per record: ${await stream(first)}`);
    say(`   (the gateway stores the altered reading: signatures are checked when data is verified, not at ingest)`);

    // the operator terminates one meter's contract; the AS endorses the change and tells the meter
    const victim = fleet.ues[TERMINATED_METER];
    if (!victim) throw new Error('fleet too small');
    const watcher = new UeClient({ address: asAddr, device: { identity: victim.identity, keystore: victim.keystore, alias: victim.alias } });
    let watch: { stop(): void } | undefined;
    const pushed = new Promise<number>((resolveUpdate) => {
      watch = watcher.watchUpdates(1, async (u) => {
        await signers[TERMINATED_METER]?.updateEndorsement(u.tx, u.version);
        resolveUpdate(u.version);
      });
    });
    await new Promise((r) => setTimeout(r, 200));
    // the contract ends between the meter's last reading before and its first reading after
    const terminationTimeMs = (series[TERMINATED_METER]?.[half - 1]?.signAtMs ?? now) + Math.floor(intervalMs / 2);
    await cef.applyAction(victim.identity, { $case: 'terminate', value: { terminationTimeMs } });
    const version = await Promise.race([pushed, new Promise<number>((_, rej) => setTimeout(() => rej(new Error('no update pushed within 15 s')), 15_000))]);
    watch?.stop();
    watcher.close();
    say(`5. contract of meter #${TERMINATED_METER} terminated at the operator -> AS endorsed version ${version} and pushed it to the meter [UPD-1..4]`);
    const second = await sign(half, readings);
    say(`6. the meters kept signing: ${second.length} more readings streamed: ${await stream(second)}`);
    for (const c of ingest) c.close();
    writeFileSync(join(dir, 'records.b64'), records.map((r) => Buffer.from(SignedRecord.encode(r.rec).finish()).toString('base64')).join('\n') + '\n');

    // scenario 10.1: the consumer holds the records and asks the AS
    const consumer = new DivsConsumer({ anchors, tokens: { '*': asToken } });
    const byReason: Record<string, number> = {};
    const invalid: string[] = [];
    let valid = 0;
    for (const [k, r] of records.entries()) {
      const verdict = await consumer.verifyRecord(r.rec);
      if (verdict.ok) valid++;
      else {
        byReason[verdict.code] = (byReason[verdict.code] ?? 0) + 1;
        if (invalid.length < 8) invalid.push(`     reading ${k + 1} (meter #${r.meter}): ${verdict.code} — ${verdict.reason}`);
      }
    }
    consumer.close();
    cef.close();
    await fleet.close();
    say(`7. scenario 10.1: the certificate issuer verified all ${records.length} readings against the AS with only the consortium root CA [VER-3] [FW-SU]`);

    // scenario 10.2: the consumer sees descriptions only and asks the aggregators
    const client = await issueConsumerCertificate(dir, ca, CONSUMER);
    const sites: ConsumerSite[] = gateways.map((g) => ({
      gateway: g.name,
      datasetId: g.datasetId,
      address: g.address,
      credentials: gatewayCredentials({ rootsPem: rootPem, clientCertPem: client.certPem, clientKeyPem: client.keyPem, gatewayName: g.name }),
    }));
    const datasets = await listDatasets(sites, anchors);
    say(`8. scenario 10.2: the issuer (mTLS, client certificate ${CONSUMER}) listed the shared datasets — descriptions only, never raw data [SC2-1]`);
    for (const d of datasets) say(`     ${d.gateway}: ${d.datasetId} — ${d.records} readings of ${d.ues} meters, ${iso(d.firstTimestampMs)} .. ${iso(d.lastTimestampMs)}`);
    const reports = await verifyDatasets(sites, anchors);
    say(`9. each gateway verified its dataset against the AS; the signed reports check out with the root CA [SC2-2]`);
    for (const r of reports) say(`     ${r.gateway}: ${r.valid}/${r.records} valid${reasons(r.byReason)}; report signed by ${r.signedBy}: ok`);

    say(`10. job "green energy per region" (code ${short(codeHashOf(GREEN_ENERGY_SOURCE))}) on both gateways, over verified readings only [SC2-3] [SC2-4]`);
    const job = await runGreenEnergyJob(sites, anchors, (gw, st) => {
      const state = jobStateName(st.state).toLowerCase();
      say(`     ${gw}: ${state}${st.detail && st.detail !== state ? ` — ${st.detail}` : ''}`);
    });

    say(`11. federated training across ${gateways.length} gateways: ${TRAINING.rounds} FedAvg rounds of logistic regression (${TRAINING.label.column} > 0 from ${TRAINING.features.join(', ')}) [SC2-5]`);
    const training = await trainAcross(sites, anchors, {
      ...TRAINING,
      onRound: (p) => say(`     ${p.phase === 'stats' ? 'round 0 (feature statistics)' : `round ${p.round}/${p.rounds}`}: ${p.sitesDone}/${p.sites} gateways done, results attested`),
    });

    const summary = {
      meters,
      registered: report.registered,
      readings: records.length,
      valid,
      invalid: records.length - valid,
      byReason,
      dataDir: dir,
      tampered: { meter: TAMPERED_METER, reading: tamperedIndex + 1 },
      terminated: { meter: TERMINATED_METER, terminationTimeMs, readingsAfter: readings - half },
      gateways: gateways.map((g, k) => ({
        name: g.name,
        pid: g.proc.pid,
        address: g.address,
        httpPort: g.httpPort,
        config: g.configPath,
        datasetId: g.datasetId,
        regions: g.regions,
        meters: meterGateway.filter((x) => x === k).length,
        ingest: ingestTally[k],
      })),
      datasets,
      reports,
      job,
      training,
    };
    const ok = job.state === 'SUCCEEDED' && training.errorCode === undefined && training.allAttestationsVerified;
    if (json) console.log(JSON.stringify(summary));
    else printSummary({ ...summary, details: invalid, ok, records: join(dir, 'records.b64') });

    if (v.once) return ok ? 0 : 1;
    say(`\nDashboards:`);
    say(`   AS node   http://127.0.0.1:${String(asProc.ready.httpPort)}/  (sign in with the token in ${join(dir, 'as', 'consumer.token')})`);
    for (const g of gateways) if (g.httpPort !== null) say(`   ${g.name.padEnd(9)} http://127.0.0.1:${g.httpPort}/`);
    say(`Serving (CEF grpc://127.0.0.1:${cefProc.port}, AS ${asUrl}, ${gateways.map((g) => `${g.name} ${g.url}`).join(', ')}); Ctrl-C to stop.`);
    await new Promise<void>((resolveStop) => {
      process.once('SIGINT', () => resolveStop());
      process.once('SIGTERM', () => resolveStop());
    });
    return ok ? 0 : 1;
  } finally {
    await stopAll();
  }
}

/** The gateway (index into GATEWAYS) that serves meter i's region. */
function gatewayOf(i: number): number {
  const region = REGIONS[i % REGIONS.length] as string;
  return GATEWAYS.findIndex((g) => g.regions.includes(region));
}

function meterId(i: number): string {
  return `SM-${String(i).padStart(5, '0')}`;
}

function iso(ms: number): string {
  return ms > 0 ? new Date(ms).toISOString().slice(0, 16).replace('T', ' ') : '-';
}

function reasons(by: Record<string, number>): string {
  const e = Object.entries(by);
  return e.length === 0 ? '' : `, invalid: ${e.map(([c, n]) => `${n} ${c}`).join(', ')}`;
}

const CHAIN_WORDS: Record<string, string> = { gaps: 'gap(s)', missingRecords: 'reading(s) missing from the chain', forks: 'fork(s)', replays: 'replay(s)', reordered: 'reordered' };

interface PrintableSummary {
  meters: number;
  registered: number;
  readings: number;
  valid: number;
  invalid: number;
  byReason: Record<string, number>;
  details: string[];
  records: string;
  dataDir: string;
  reports: ReportFacts[];
  job: JobFacts;
  training: TrainingFacts;
  ok: boolean;
}

function printSummary(s: PrintableSummary): void {
  const out = (x: string) => console.log(x);
  out('\nSummary');
  out('  Consumer-initiated verification (10.1): every reading checked against the AS');
  out(`   meters registered ......... ${s.registered}/${s.meters}`);
  out(`   readings verified ......... ${s.readings}`);
  out(`   valid ..................... ${s.valid}`);
  out(`   invalid ................... ${s.invalid}`);
  for (const [code, n] of Object.entries(s.byReason)) out(`     ${code.padEnd(26)} ${n}`);
  if (s.details.length) out(`   why:\n${s.details.join('\n')}`);

  out('\n  Aggregator-initiated verification (10.2): signed reports of the gateways');
  for (const r of s.reports) {
    out(`   ${r.gateway} / ${r.datasetId}: ${r.valid} of ${r.records} readings valid (${r.ues} meters)${reasons(r.byReason)}`);
    const chain = Object.entries(r.chain).filter(([, n]) => n > 0);
    if (chain.length) out(`     chain findings: ${chain.map(([k, n]) => `${n} ${CHAIN_WORDS[k] ?? k}`).join(', ')}`);
    out(`     report signature ok (${r.signedBy}, under the consortium root), commitment ${short(r.datasetCommitment)} over ${r.commitmentSize} readings`);
  }

  out(`\n  Job "${s.job.name}": ${s.job.state}  (aggregation threshold ${s.job.minDistinctUes} meters per region)`);
  for (const [region, g] of Object.entries(s.job.regions)) {
    out(`   ${region}  ${String(g.meters).padStart(3)} meters ${String(g.readings).padStart(5)} readings   solar ${kwh(g.solarKWh).padStart(11)}   fed into the grid ${kwh(g.exportedKWh).padStart(11)}   (${g.gateway})`);
  }
  if (s.job.suppressedGroups > 0) out(`   ${s.job.suppressedGroups} region(s) below the threshold were suppressed by the gateways`);
  for (const r of s.job.runs) {
    const a = r.attestation;
    if (!a) {
      out(`   ${r.gateway}: ${r.state} — ${r.errorCode ?? ''}: ${r.errorMessage ?? ''}`);
      continue;
    }
    out(`   attestation of ${r.gateway}: job ${a.jobId}`);
    out(`     code ${short(a.codeHash)}  runner ${a.runnerVersion} ${short(a.runnerDigest)}  approval ${a.approval}`);
    out(`     dataset commitment ${short(a.datasetCommitment)} (${a.commitmentSize} verified readings, ${a.inputRecords} read from ${a.inputUes} meters)  result ${short(a.resultHash)}`);
    out(`     signature ok: signed by ${a.gateway} under the consortium root; binds this code, runner, report and result`);
  }

  const tr = s.training;
  out(`\n  Federated training (${tr.model}, ${tr.label} from ${tr.features.join(', ')}) across ${tr.gateways.join(' + ')}`);
  if (tr.errorCode) out(`   failed — ${tr.errorCode}: ${tr.errorMessage ?? ''}`);
  for (const r of tr.rounds) {
    out(`   round ${r.round}: loss ${r.loss.toFixed(4)}  accuracy ${(100 * r.accuracy).toFixed(1)} %  on ${r.samples} verified readings  attestations ${r.attestationsVerified}/${r.gateways} verified`);
  }
  if (!tr.errorCode) out(`   ${tr.attestedJobs} attested jobs (statistics, training, evaluation) re-verified offline: ${tr.allAttestationsVerified ? 'all ok' : 'NOT all verified'}; code ${short(tr.codeHash)}`);

  out(`\n  ${s.ok ? 'Every result above is backed by a signature that chains to the consortium root CA.' : 'Some steps failed: see above.'}`);
  out(`\n   records: ${s.records}  — re-verify with:`);
  out(`   node bin/divs.ts consumer verify --records ${s.records} --trust ${join(s.dataDir, 'as', 'pki', 'root-ca.pem')} --token $(cat ${join(s.dataDir, 'as', 'consumer.token')})`);
}
