/**
 * Federated training across two real gateway processes [SC2-5], with a real CEF and AS: twelve
 * smart meters (use case I.2) register and send signed readings, six to each gateway; a consumer
 * trains a logistic regression with FedAvg through gateway jobs, compares it with centralized
 * training on the same data, and checks that every round is attested and that only weights and
 * counts left the gateways.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AckStatus } from '../../proto/gen/divs/v1/gateway.ts';
import { toHex } from '../../protocol/src/bytes.ts';
import { startStack, tempDir, type Stack } from '../../test/helpers/divs.ts';
import { spawnService, type ServiceProcess } from '../../test/helpers/proc.ts';
import { buildFleet, fleetSigner, registerFleet, type Fleet } from '../../ue/src/fleet.ts';
import { UeClient } from '../../ue/src/client.ts';
import { smartMeter } from '../../ue/src/usecases.ts';
import { IngestClient } from '../../gateway/src/client.ts';
import { GatewayConsumer } from '../src/report.ts';
import { JobClient, codeHashOf } from '../src/jobs.ts';
import { evaluateLocally, federatedEvaluate, federatedTrain, modelToJson, trainCentralized, verifyProvenance, type FedAvgProgress, type FederatedModel, type FederatedSite } from '../src/fedavg.ts';
import { LOGREG_SOURCE, type LocalData } from '../src/models/logreg.ts';
import { run as cli } from '../../bin/commands/job.ts';

const PLMN = '26202';
const TOKEN = 'trainer-token-0123456789abcdef';
const PER_GATEWAY = 6;
const READINGS = 96;
const FEATURES = ['pvKWh', 'voltageV'];
const LABEL = { column: 'exportKWh', op: 'gt', value: 0 } as const;
const HYPER = { rounds: 8, localEpochs: 1, learningRate: 0.5, batchSize: 32, seed: 7 };

let s: Stack;
let fleet: Fleet;
const gateways: ServiceProcess[] = [];
const sites: FederatedSite[] = [];
/** Every reading's JSON bytes, per gateway. */
const payloads: Uint8Array[][] = [[], []];
let model: FederatedModel;
const progress: FedAvgProgress[] = [];

function pooled(): LocalData {
  const all = [...(payloads[0] as Uint8Array[]), ...(payloads[1] as Uint8Array[])];
  return { rows: all.length, columns: smartMeter.toColumns(all) as unknown as LocalData['columns'] };
}

async function startGateway(dir: string, name: string): Promise<ServiceProcess> {
  mkdirSync(join(dir, name), { recursive: true });
  const cfg = {
    dataDir: join(dir, name),
    name,
    httpPort: null,
    pki: { enroll: { caCert: join(s.asDataDir, 'pki', 'root-ca.pem'), caKey: join(s.asDataDir, 'pki', 'root-ca.key') } },
    as: { tokens: { '*': s.token }, timeoutMs: 2000, attempts: 2, backoffMs: 100, latestTtlMs: 2000 },
    verify: { threads: 1, concurrency: 1 },
    consumers: [{ name: 'trainer', token: TOKEN }],
    datasets: [{ id: 'meters', channel: 'meters', schema: 'urn:divs:usecase:I.2', grants: ['trainer'] }],
    jobs: {
      runners: 1,
      policies: [{ consumer: 'trainer', transport: 'any', minDistinctUes: 3, approval: { allowCodeHashes: [codeHashOf(LOGREG_SOURCE)] } }],
    },
  };
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(cfg));
  return spawnService(['gateway/src/main.ts', '--config', path], {}, { autoStop: false });
}

beforeAll(async () => {
  s = await startStack(PLMN);
  fleet = await buildFleet({ count: 2 * PER_GATEWAY, seed: 'fedavg', plmnId: PLMN, workers: 0 });
  expect((await s.cefClient.provisionBatch(fleet.subscribers())).provisioned).toBe(2 * PER_GATEWAY);
  const reg = new UeClient({ address: s.asAddress });
  expect((await registerFleet(fleet.ues, (r) => reg.registerBatch(r))).registered).toBe(2 * PER_GATEWAY);
  reg.close();
  const dir = tempDir('fedavg');
  gateways.push(...(await Promise.all([startGateway(dir, 'gw-north'), startGateway(dir, 'gw-south')])));
  for (const [i, u] of fleet.ues.entries()) {
    const g = i < PER_GATEWAY ? 0 : 1;
    const samples = smartMeter.generate({ seed: 'fedavg', deviceId: `meter-${i}`, count: READINGS });
    (payloads[g] as Uint8Array[]).push(...samples.map((x) => x.bytes));
    const records = await (await fleetSigner(u)).signBatch(
      samples.map((x) => ({ payload: x.bytes, timestampMs: x.timestampMs })),
      smartMeter.contentType,
    );
    const ingest = new IngestClient({ address: `127.0.0.1:${(gateways[g] as ServiceProcess).port}`, channel: 'meters' });
    expect((await ingest.send(records)).every((a) => a.status === AckStatus.ACK_STATUS_STORED)).toBe(true);
    ingest.close();
  }
  for (const [g, name] of ['gw-north', 'gw-south'].entries()) {
    sites.push({ name, datasetId: 'meters', client: new JobClient({ address: `127.0.0.1:${(gateways[g] as ServiceProcess).port}`, token: TOKEN, anchors: { roots: [s.rootDer] } }) });
  }
}, 120_000);

afterAll(async () => {
  for (const site of sites) site.client.close();
  await Promise.allSettled(gateways.map((g) => g.stop()));
  await fleet?.close();
  await s?.stop();
});

describe('federated training across aggregators', () => {
  it('[SC2-5] FedAvg over two gateways comes within 2 points of centralized training on the same data', async () => {
    model = await federatedTrain({ sites, features: FEATURES, label: LABEL, ...HYPER, onProgress: (p) => progress.push(p) });
    const data = pooled();
    const central = trainCentralized(data, { features: FEATURES, label: LABEL, ...HYPER });
    const fed = evaluateLocally(model, data);
    const base = evaluateLocally(central, data);
    expect(base.accuracy).toBeGreaterThan(0.9);
    expect(Math.abs(fed.accuracy - base.accuracy)).toBeLessThanOrEqual(0.02);
    // the same evaluation as jobs on the gateways: counts only, summed by the consumer
    const remote = await federatedEvaluate(model, { sites });
    expect(remote.n).toBe(2 * PER_GATEWAY * READINGS);
    expect(remote.accuracy).toBeCloseTo(fed.accuracy, 12);
    // every gateway trained on all of its (verified) rows in every round
    for (const r of model.rounds.filter((x) => x.phase === 'train')) {
      expect(r.samples).toBe(2 * PER_GATEWAY * READINGS);
      expect(r.sites.map((x) => x.samples)).toEqual([PER_GATEWAY * READINGS, PER_GATEWAY * READINGS]);
    }
    // a progress report per gateway and round, ending with both gateways done
    for (let round = 0; round <= HYPER.rounds; round++) {
      const events = progress.filter((p) => p.round === round);
      expect(new Set(events.map((p) => p.site))).toEqual(new Set(['gw-north', 'gw-south']));
      expect(Math.max(...events.map((p) => p.sitesDone))).toBe(2);
    }
  });

  it('[SC2-5] keeps every round\'s attestation: the consumer can show that only DIVS-verified data, and which, was used', async () => {
    // stats + training rounds + evaluation, two gateways each
    expect(model.rounds).toHaveLength(HYPER.rounds + 2);
    const entries = verifyProvenance(JSON.parse(JSON.stringify(modelToJson(model))), { roots: [s.rootDer] });
    expect(entries).toHaveLength(2 * (HYPER.rounds + 2));
    expect(new Set(entries.map((e) => e.gateway))).toEqual(new Set(['gw-north', 'gw-south']));
    expect(new Set(entries.map((e) => e.codeHash))).toEqual(new Set([codeHashOf(LOGREG_SOURCE)]));
    for (const e of entries) {
      expect(e.validRecords).toBe(PER_GATEWAY * READINGS);
      expect(e.totalRecords).toBe(PER_GATEWAY * READINGS);
      expect(e.inputRecords).toBe(PER_GATEWAY * READINGS);
    }
    // the commitments are those a VerifyDataset of each gateway reports
    for (const [g, site] of sites.entries()) {
      const gc = new GatewayConsumer({ address: `127.0.0.1:${(gateways[g] as ServiceProcess).port}`, token: TOKEN, anchors: { roots: [s.rootDer] } });
      const { report } = await gc.verifyDataset('meters');
      gc.close();
      expect(new Set(entries.filter((e) => e.site === site.name).map((e) => e.datasetCommitment))).toEqual(new Set([toHex(report.datasetCommitment)]));
    }
    // a kept result changed afterwards no longer verifies
    const json = modelToJson(model) as { rounds: { sites: { result: string }[] }[] };
    const kept = json.rounds[3]?.sites[1] as { result: string };
    const bytes = Buffer.from(kept.result, 'base64');
    bytes[bytes.length - 3] ^= 0x01;
    kept.result = bytes.toString('base64');
    expect(() => verifyProvenance(json, { roots: [s.rootDer] })).toThrowError(expect.objectContaining({ code: 'ATTESTATION_MISMATCH' }));
  });

  it('[SC2-5] [SC2-4] only weights and counts leave a gateway', () => {
    const allowed: Record<string, string[]> = { stats: ['n', 'positives', 'sum', 'sumSq'], train: ['loss', 'n', 'weights'], evaluate: ['fn', 'fp', 'loss', 'n', 'tn', 'tp'] };
    const numbersOnly = (v: unknown): boolean => (typeof v === 'number' ? Number.isFinite(v) : Array.isArray(v) && v.every((x) => typeof x === 'number'));
    for (const r of model.rounds) {
      for (const site of r.sites) {
        const doc = JSON.parse(new TextDecoder().decode(site.result)) as { groups: { key: object; ues: number; records: number; value: Record<string, unknown> }[]; groupBy: string[] };
        expect(doc.groupBy).toEqual([]);
        expect(doc.groups).toHaveLength(1);
        const g = doc.groups[0] as (typeof doc.groups)[number];
        expect(Object.keys(g.value).sort()).toEqual(allowed[r.phase]);
        expect(Object.values(g.value).every(numbersOnly)).toBe(true);
        expect(g.ues).toBe(PER_GATEWAY);
        // a few dozen numbers for hundreds of records, and nothing of the records' text
        expect(site.result.length).toBeLessThan(1000);
        const text = new TextDecoder().decode(site.result);
        expect(text).not.toMatch(/meter-|DE-[A-Z]{2}|importKWh/);
      }
    }
  });

  it('[SC2-5] `divs consumer train` trains across the gateways and saves a model whose attestations verify offline', async () => {
    const out: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
    const file = join(tempDir('train-cli'), 'model.json');
    const trust = join(s.asDataDir, 'pki', 'root-ca.pem');
    try {
      const gws = gateways.flatMap((g) => ['--gateway', `127.0.0.1:${g.port}=meters`]);
      expect(await cli(['train', ...gws, '--trust', trust, '--token', TOKEN, '--features', FEATURES.join(','), '--label', 'exportKWh>0', '--rounds', '2', '--lr', '0.5', '--json', '--out', file])).toBe(0);
      const summary = JSON.parse(out.pop() as string) as { accuracy: number; samples: number; attestedJobs: number; rounds: unknown[] };
      expect(summary.samples).toBe(2 * PER_GATEWAY * READINGS);
      expect(summary.rounds).toHaveLength(2);
      expect(summary.attestedJobs).toBe(2 * 4);
      expect(summary.accuracy).toBeGreaterThan(0.85);
      expect(await cli(['job', 'verify', '--bundle', file, '--trust', trust, '--json'])).toBe(0);
      expect((JSON.parse(out.pop() as string) as { jobs: unknown[] }).jobs).toHaveLength(8);
    } finally {
      log.mockRestore();
    }
  });
});
