/**
 * End-to-end test of the gateway's operator dashboard: a real CEF, AS node and gateway (three
 * processes on loopback). Four smart meters register and send readings (one altered after
 * signing, one record that does not decode); a consumer runs a job and asks for VerifyDataset
 * over gRPC. Then headless Chromium (playwright-core, Debian's /usr/bin/chromium) signs in as an
 * operator, looks at the overview's charts, clicks from the datasets to a dataset and its latest
 * report and checks the counts per reason against the VerifyDataset answer, then from the jobs
 * to the job and checks its attestation against GetJobResult. A screenshot of the overview is
 * taken (kept in $DIVS_SCREENSHOT_DIR when set, with the dataset, report and job pages too).
 *
 * Without Chromium or playwright-core the browser part is skipped with a loud warning; with
 * CI=true it fails instead.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { SignedRecord } from '../../proto/gen/divs/v1/common.ts';
import { AckStatus, type VerificationReport } from '../../proto/gen/divs/v1/gateway.ts';
import { toHex } from '../../protocol/src/bytes.ts';
import { GatewayConsumer } from '../../consumer/src/report.ts';
import { JobClient, codeHashOf, type VerifiedJobResult } from '../../consumer/src/jobs.ts';
import { IngestClient } from '../../gateway/src/client.ts';
import { buildFleet, fleetSigner, registerFleet, type Fleet } from '../../ue/src/fleet.ts';
import { UeClient } from '../../ue/src/client.ts';
import { smartMeter } from '../../ue/src/usecases.ts';
import { startStack, type Stack } from '../helpers/divs.ts';
import { spawnService, type ServiceProcess } from '../helpers/proc.ts';
import { probeBrowser, requireBrowserInCi, screenshot, signIn, signOut, textOf as text, useChromium, waitForHeading as heading, watchProblems } from '../helpers/browser.ts';
import { expectDashboardServed, promSample } from '../helpers/http.ts';

const PLMN = '26206';
const UES = 4;
const READINGS = 6;
const ALICE = 'alice-token-dash-0123456789';
const OPERATOR = 'operator-token-dash-0123456789';
const CODE = `export function run(data) {
  const x = data.columns.importKWh;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return { readings: data.rows, importKWh: s };
}`;

const browser = await probeBrowser('gateway dashboard');

let s: Stack;
let fleet: Fleet;
let gw: ServiceProcess;
let base: string;
let report: VerificationReport;
let job: VerifiedJobResult;

beforeAll(async () => {
  s = await startStack(PLMN);
  fleet = await buildFleet({ count: UES, seed: 'gw-dashboard-e2e', plmnId: PLMN, workers: 0 });
  expect((await s.cefClient.provisionBatch(fleet.subscribers())).provisioned).toBe(UES);
  const reg = new UeClient({ address: s.asAddress });
  expect((await registerFleet(fleet.ues, (r) => reg.registerBatch(r))).registered).toBe(UES);
  reg.close();

  const dataDir = join(s.dir, 'gw');
  mkdirSync(dataDir, { recursive: true });
  const cfg = {
    dataDir,
    name: 'gw-dash',
    pki: { enroll: { caCert: join(s.asDataDir, 'pki', 'root-ca.pem'), caKey: join(s.asDataDir, 'pki', 'root-ca.key') } },
    as: { tokens: { '*': s.token }, timeoutMs: 2000, attempts: 2, backoffMs: 100 },
    verify: { threads: 1, concurrency: 1 },
    consumers: [{ name: 'alice', token: ALICE }],
    datasets: [
      { id: 'meters', channel: 'meters', description: 'Smart meter readings (use case I.2)', schema: 'urn:divs:usecase:I.2', grants: ['alice'] },
      { id: 'cameras', channel: 'cameras', description: 'Industrial camera frames', grants: ['alice'] },
    ],
    jobs: {
      runners: 1,
      policies: [{ consumer: 'alice', datasets: ['meters'], minDistinctUes: 2, transport: 'any', approval: { allowCodeHashes: [codeHashOf(CODE)] } }],
      admins: [{ name: 'op', token: OPERATOR }],
    },
  };
  const cfgPath = join(s.dir, 'gateway.json');
  writeFileSync(cfgPath, JSON.stringify(cfg));
  gw = await spawnService(['gateway/src/main.ts', '--config', cfgPath], {}, { autoStop: false });
  base = `http://127.0.0.1:${gw.ready.httpPort as number}`;

  // every meter sends READINGS readings signed one by one; the last one of meter 3 is altered in transit
  const records: SignedRecord[] = [];
  for (const [i, u] of fleet.ues.entries()) {
    const sg = await fleetSigner(u);
    for (const x of smartMeter.generate({ seed: 'gw-dashboard-e2e', deviceId: `meter-${i}`, count: READINGS })) records.push(await sg.sign(x.bytes, x.contentType, x.timestampMs));
  }
  const last = records[records.length - 1] as SignedRecord;
  const body = Uint8Array.from(last.body);
  body[body.length - 60] ^= 0x01;
  records[records.length - 1] = { ...last, body };
  const ingest = new IngestClient({ address: `127.0.0.1:${gw.port}`, channel: 'meters' });
  const acks = await ingest.send([...records, new Uint8Array([0xff, 0x01])]);
  ingest.close();
  expect(acks.filter((a) => a.status === AckStatus.ACK_STATUS_STORED)).toHaveLength(UES * READINGS);
  expect(acks[acks.length - 1]?.status).toBe(AckStatus.ACK_STATUS_REJECTED);

  // a job first, then VerifyDataset: the dataset's latest report is the VerifyDataset answer
  const jobs = new JobClient({ address: `127.0.0.1:${gw.port}`, token: ALICE, anchors: { roots: [s.rootDer] } });
  const submitted = await jobs.submit({ datasetId: 'meters', code: CODE });
  job = await jobs.result(submitted.jobId, {}, { waitMs: 30_000 });
  jobs.close();
  const alice = new GatewayConsumer({ address: `127.0.0.1:${gw.port}`, token: ALICE, anchors: { roots: [s.rootDer] } });
  report = (await alice.verifyDataset('meters')).report;
  alice.close();
  expect(report.recordCount).toBe(UES * READINGS);
  expect(report.validCount).toBe(UES * READINGS - 1);
  expect(report.invalid.reduce((n, r) => n + r.count, 0)).toBe(1);
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  await fleet?.close();
  await s?.stop();
});

describe('gateway dashboard API (real processes)', () => {
  it('[FW-ACL] [SEC-1] refuses the API without an operator token and serves health, metrics and the dashboard files', async () => {
    const anon = await fetch(`${base}/api/datasets`);
    expect(anon.status).toBe(401);
    expect(await anon.json()).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    const consumer = await fetch(`${base}/api/datasets`, { headers: { authorization: `Bearer ${ALICE}` } });
    expect(consumer.status).toBe(403);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(promSample(metrics, 'divs_gateway_records_ingested_total', { outcome: 'stored', service: 'gateway' })).toBe(24);
    expect(promSample(metrics, 'divs_jobs_finished_total', { state: 'SUCCEEDED', service: 'gateway' })).toBe(1);
    // the dashboard and the shared kit, served with a strict CSP
    await expectDashboardServed(base);
  });
});

describe.skipIf(browser.missing !== undefined)('gateway dashboard in headless Chromium', () => {
  const chromium = useChromium(browser);
  const reasonCounts = (page: Page, table: string) =>
    page.locator(`[data-testid=${table}] [data-testid=reason-row]`).evaluateAll((rows) => Object.fromEntries(rows.map((r) => [r.getAttribute('data-reason'), Number(r.getAttribute('data-count'))])));

  it('[SC2-1] [SC2-2] [VER-3] [SC2-4] signs in, then datasets -> dataset -> report and jobs -> job, showing what the gRPC API answered', async () => {
    const page = await chromium().ctx.newPage();
    const problems = watchProblems(page);
    const expected = { VALID: report.validCount, ...Object.fromEntries(report.invalid.map((r) => [r.reason, r.count])), ...Object.fromEntries(report.unverified.map((r) => [r.reason, r.count])) };

    // a consumer's token is no operator token: refused, not kept
    await signIn(page, `${base}/`, { refused: ALICE, token: OPERATOR, heading: 'Gateway overview' });
    expect(await text(page, '[data-testid=stat-records] .value')).toBe(String(UES * READINGS));
    expect(await text(page, '[data-testid=stat-ues] .value')).toBe(String(UES));
    expect(await text(page, '[data-testid=stat-datasets] .value')).toBe('2');
    // charts: every acknowledged record in the ingest chart, outcomes of the latest report, the job's bar
    expect(Number(await page.locator('[data-testid=chart-ingest]').getAttribute('data-total'))).toBe(UES * READINGS + 1);
    expect(await page.locator('[data-testid=chart-ingest] rect').count()).toBeGreaterThan(0);
    const bars = await page.locator('[data-testid=chart-outcomes] g[data-reason]').evaluateAll((gs) => Object.fromEntries(gs.map((g) => [g.getAttribute('data-reason'), Number(g.getAttribute('data-count'))])));
    expect(bars).toEqual(expected);
    expect(await page.locator(`[data-testid=chart-jobs] g[data-job="${job.jobId}"] rect`).count()).toBe(2);
    await screenshot(page, 'gateway-overview.png');

    await page.click('[data-nav=datasets]');
    await heading(page, 'Datasets');
    expect(await page.locator('[data-testid=dataset-row]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-dataset')))).toEqual(['meters', 'cameras']);
    await page.click('[data-testid=dataset-row][data-dataset=meters] a[data-dataset-link]');
    await heading(page, 'Dataset meters');
    expect(await text(page, '[data-field=record-count]')).toBe(String(UES * READINGS));
    expect(await text(page, '[data-field=ue-count]')).toBe(String(UES));
    expect(await page.locator('[data-testid=ue-row]').count()).toBe(UES);
    expect(await reasonCounts(page, 'latest-reasons')).toEqual(expected);
    // the description is what consumers see: no reading leaves the gateway
    expect(await page.locator('main').textContent()).not.toContain('importKWh');
    if (process.env.DIVS_SCREENSHOT_DIR) await screenshot(page, 'gateway-dataset.png');

    await page.click('[data-testid=latest-report-link]');
    await heading(page, 'Verification report #');
    expect(await reasonCounts(page, 'reasons')).toEqual(expected);
    expect(await text(page, '[data-field=records]')).toBe(String(report.recordCount));
    expect(await text(page, '[data-field=commitment]')).toBe(toHex(report.datasetCommitment));
    expect(await text(page, '[data-field=commitment-size]')).toBe(String(report.commitmentSize));
    expect(await text(page, '[data-field=signature-check]')).toMatch(/^✓ verified/);
    expect(await page.locator('[data-testid=checkpoint-row]').count()).toBe(report.checkpoints.length);
    expect(await page.locator('[data-testid=endorsement-row]').count()).toBe(report.endorsements.length);
    if (process.env.DIVS_SCREENSHOT_DIR) await screenshot(page, 'gateway-report.png');

    await page.click('[data-nav=jobs]');
    await heading(page, 'Jobs');
    expect(await page.locator('[data-testid=job-row]').evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-job'), r.getAttribute('data-state')]))).toEqual([[job.jobId, 'SUCCEEDED']]);
    await page.click(`[data-testid=job-row][data-job="${job.jobId}"] a[data-job-link]`);
    await heading(page, `Job ${job.jobId}`);
    expect(await text(page, '[data-field=state]')).toBe('SUCCEEDED');
    expect(await text(page, '[data-field=consumer]')).toBe('alice');
    expect(await text(page, '[data-field=result-hash]')).toBe(toHex(job.statement.resultHash));
    expect(await text(page, '[data-field=code-hash]')).toBe(toHex(job.statement.codeHash));
    expect(await text(page, '[data-field=code-hash]')).toBe(codeHashOf(CODE));
    expect(await text(page, '[data-field=dataset-commitment]')).toContain(toHex(job.statement.datasetCommitment));
    expect(await text(page, '[data-field=attestation-check]')).toMatch(/^✓ verified/);
    expect(await text(page, '[data-testid=job-code]')).toBe(CODE);
    if (process.env.DIVS_SCREENSHOT_DIR) await screenshot(page, 'gateway-job.png');

    await signOut(page);
    expect(problems).toEqual([]);
    await page.close();
  });
});

requireBrowserInCi(browser, 'gateway dashboard');
