/**
 * End-to-end tests of the AS node's operator dashboard: a real CEF + AS node (processes on
 * loopback), a few registered UEs and one contract terminated at the CEF; then
 * - the JSON API checked against the gRPC API (same versions, same bytes decoded), with its
 *   access control and coded errors;
 * - headless Chromium (playwright-core, Debian's /usr/bin/chromium) signs in, clicks from the
 *   overview to a block, to a transaction, to the UE's history and back through its versions,
 *   and checks what it shows against the ledger. One screenshot is taken (kept in
 *   $DIVS_SCREENSHOT_DIR when set).
 *
 * Without Chromium or playwright-core the browser part is skipped with a loud warning; with
 * CI=true it fails instead.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/divs.ts';
import { probeBrowser, requireBrowserInCi, screenshot, signIn, signOut, textOf as text, useChromium, waitForHeading as heading, watchProblems } from '../helpers/browser.ts';
import { expectCodedErrors, expectDashboardServed, getJson, type JsonAnswer } from '../helpers/http.ts';
import { buildFleet, registerFleet, type Fleet, type SimulatedUe } from '../../ue/src/fleet.ts';
import { UeClient } from '../../ue/src/client.ts';
import { VerificationDataServiceClient, EndorsementView } from '../../proto/gen/divs/v1/consumer_as.ts';
import { LedgerSyncServiceClient } from '../../proto/gen/divs/v1/as_sync.ts';
import { RegistrationParams } from '../../proto/gen/divs/v1/common.ts';
import { grpc, makeClient, unary } from '../../platform/src/grpc.ts';
import { toHex } from '../../protocol/src/bytes.ts';
import { leafHash } from '../../protocol/src/merkle.ts';
import { decodeEndorsementTx } from '../../as-node/src/endorse.ts';

const PLMN = '26203';
// playwright-core and Chromium are optional on a developer's machine, required in CI
const browser = await probeBrowser('dashboard');
const missing = browser.missing;

let s: Stack;
let fleet: Fleet;
let base: string;
let query: VerificationDataServiceClient;
let victim: SimulatedUe;
/** The victim's versions as the gRPC API reports them, oldest first. */
let history: Array<{ txId: number; version: number }>;

const auth = (): { metadata: grpc.Metadata } => {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${s.token}`);
  return { metadata: md };
};

const api = (path: string, token: string = s.token): Promise<JsonAnswer> => getJson(`${base}${path}`, token);

beforeAll(async () => {
  s = await startStack(PLMN);
  base = `http://127.0.0.1:${s.as.ready.httpPort as number}`;
  fleet = await buildFleet({ count: 4, seed: 'dashboard-e2e', plmnId: PLMN, workers: 0 });
  await s.cefClient.provisionBatch(fleet.subscribers());
  const ueClient = new UeClient({ address: s.asAddress });
  const report = await registerFleet(fleet.ues, (regs) => ueClient.registerBatch(regs));
  ueClient.close();
  expect(report.registered).toBe(4);
  query = makeClient(VerificationDataServiceClient, s.asAddress);
  victim = fleet.ues[1] as SimulatedUe;
  // wait for the AS's CEF subscription, then terminate one contract at the operator [UPD-1]
  const deadline = Date.now() + 15_000;
  while ((await fetch(`${base}/readyz`)).status !== 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await s.cefClient.applyAction(victim.identity, { $case: 'terminate', value: { terminationTimeMs: 0 } });
  const id = { imei: victim.identity.imei, iccid: '', eid: '', msisdn: '' };
  do {
    const h = await unary(query, query.getHistory, { identity: id }, auth());
    history = h.versions.map((v) => ({ txId: v.txId, version: decodeEndorsementTx(v.tx).endorsement.version }));
    if (history.length >= 2) break;
    await new Promise((r) => setTimeout(r, 100));
  } while (Date.now() < deadline);
  expect(history.map((v) => v.version)).toEqual([1, 2]);
}, 120_000);

afterAll(async () => {
  query?.close();
  await fleet?.close();
  await s?.stop();
});

describe('dashboard JSON API', () => {
  it('[FW-ACL] [SEC-1] refuses the explorer API without a consumer/admin token; health needs none', async () => {
    expect((await api('/api/ledger', '')).status).toBe(401);
    expect((await api('/api/ledger', '')).body).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    const wrong = await api('/api/ledger', 'not-a-token-of-this-as-node');
    expect(wrong.status).toBe(403);
    expect(wrong.body).toMatchObject({ error: { code: 'PERMISSION_DENIED' } });
    expect((await api('/api/ledger')).status).toBe(200);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    // the page and the shared kit hold no data, and forbid inline script and framing
    await expectDashboardServed(base);
  });

  it('[VER-4] [GEN-6] [END-3] shows every version of a UE exactly as the ledger holds it', async () => {
    const ue = await api(`/api/ue?msisdn=${encodeURIComponent(victim.identity.msisdn)}`);
    expect(ue.status).toBe(200);
    const ues = ue.body.ues as Array<{ versions: Array<{ txId: number; version: number; previousTxId: number | null; state: string }> }>;
    expect(ues).toHaveLength(1);
    expect(ues[0]?.versions.map((v) => ({ txId: v.txId, version: v.version }))).toEqual(history);
    for (const v of history) {
      const rpc = await unary(query, query.getEndorsement, { txId: v.txId, ledgerId: '', view: EndorsementView.ENDORSEMENT_VIEW_FULL, withLatestProof: false }, auth());
      const { endorsement: en, signed } = decodeEndorsementTx(rpc.proven?.tx ?? new Uint8Array());
      const params = RegistrationParams.decode(en.registration?.params ?? new Uint8Array());
      const { status, body } = await api(`/api/tx/${v.txId}`);
      expect(status).toBe(200);
      const e = body.endorsement as Record<string, unknown> & { registration: Record<string, unknown>; accountStatus: Record<string, unknown>; previous: { txId: number } | null };
      expect(e.version).toBe(en.version);
      expect(e.previous?.txId ?? null).toBe(en.version > 1 ? en.previousTxId : null);
      expect(e.registration.publicKey).toBe(toHex(params.publicKey?.key ?? new Uint8Array()));
      expect(e.registration.identity).toEqual({ ...params.identity });
      expect(e.asSignature).toBe(toHex(signed.signature));
      expect(e.asSignatureValid).toBe(true);
      expect(e.registration.signatureValid).toBe(true);
      expect(e.accountStatus.state).toBe(en.version === 1 ? 'ACTIVE' : 'TERMINATED');
      expect(e.isLatest).toBe(v.version === 2);
      expect((body.inclusion as { verified: boolean; treeSize: number }).verified).toBe(true);
      expect(body.leafHash).toBe(toHex(leafHash(rpc.proven?.tx ?? new Uint8Array())));
    }
    const blocks = await api('/api/blocks');
    const list = blocks.body.blocks as Array<{ height: number; txCount: number; registrations: number; updates: number }>;
    expect(list.reduce((n, b) => n + b.txCount, 0)).toBe(5);
    expect(list.reduce((n, b) => n + b.registrations, 0)).toBe(4);
    expect(list.reduce((n, b) => n + b.updates, 0)).toBe(1);
  });

  it('answers bad input with coded errors and the matching HTTP status', async () => {
    const cases: Array<[string, number, string]> = [
      ['/api/tx/abc', 400, 'INVALID_ARGUMENT'],
      ['/api/tx/999999', 404, 'UNKNOWN_TX'],
      ['/api/blocks/999', 404, 'UNKNOWN_BLOCK'],
      ['/api/blocks?limit=100000', 400, 'INVALID_ARGUMENT'],
      ['/api/blocks?from=-1', 400, 'INVALID_ARGUMENT'],
      ['/api/blocks?from=99', 400, 'INVALID_RANGE'],
      ['/api/ue', 400, 'IDENTITY_INCOMPLETE'],
      ['/api/ue?imei=123', 400, 'INVALID_IMEI'],
      ['/api/ue?imei=490154203237518', 404, 'NOT_REGISTERED'],
      ['/api/nothing-here', 404, 'NOT_FOUND'],
    ];
    await expectCodedErrors(api, cases);
  });
});

describe.skipIf(missing !== undefined)('dashboard in headless Chromium', () => {
  const chromium = useChromium(browser);

  it('[VER-4] [FW-DM] [GEN-6] [UPD-3] signs in, then clicks block -> tx -> UE history -> previous version, showing what the ledger holds', async () => {
    const page = await chromium().ctx.newPage();
    const problems = watchProblems(page);
    const sync = makeClient(LedgerSyncServiceClient, s.asAddress);
    const info = await unary(sync, sync.getLedgerInfo, {}, auth());
    sync.close();

    // a wrong token is refused and not kept
    await signIn(page, `${base}/`, { refused: 'certainly-not-the-token', token: s.token, heading: 'Ledger overview' });
    expect(await text(page, '[data-testid=stat-height] .value')).toBe(String(info.height));
    expect(await text(page, '[data-testid=stat-size] .value')).toBe(String(info.txCount));
    expect(await text(page, '[data-testid=stat-ues] .value')).toBe('4');
    expect(await page.locator('[data-testid=chart-endorsements] rect').count()).toBeGreaterThanOrEqual(2);

    await screenshot(page, 'overview.png');

    // newest block: the one with the update endorsing the termination
    const v1 = history[0] as { txId: number };
    const v2 = history[1] as { txId: number };
    const newest = info.height - 1;
    await page.click(`[data-testid=recent-blocks] tr[data-height="${newest}"] a`);
    await heading(page, `Block #${newest}`);
    expect(await page.locator('[data-testid=tx-row]').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-tx'))))).toEqual([v2.txId]);

    await page.click(`[data-testid=tx-row][data-tx="${v2.txId}"] a[data-tx-link]`);
    await heading(page, `Transaction #${v2.txId}`);
    expect(await text(page, '[data-field=version]')).toBe('2');
    expect(await text(page, '[data-field=reason]')).toBe('CONTRACT_TERMINATED');
    expect(await text(page, '[data-field=state]')).toBe('TERMINATED');
    expect(await text(page, '[data-field=imei]')).toBe(victim.identity.imei);
    expect(await text(page, '[data-field=msisdn]')).toBe(victim.identity.msisdn);
    expect(await text(page, '[data-field=public-key]')).toBe(toHex(victim.publicKey.key));
    expect(await text(page, '[data-field=as-signature]')).toMatch(/^✓ valid/);
    expect(await text(page, '[data-field=ue-signature]')).toMatch(/^✓ valid/);
    expect(await text(page, '[data-field=inclusion]')).toMatch(/verified/);
    expect(await page.locator('[data-testid=previous-version]').getAttribute('href')).toBe(`#/tx/${v1.txId}`);

    await page.click('[data-testid=ue-history-link]');
    await heading(page, 'UE history');
    const rows = await page.locator('[data-testid=version-row]').evaluateAll((els) => els.map((r) => ({ txId: Number(r.getAttribute('data-tx')), version: Number(r.getAttribute('data-version')) })));
    expect(rows).toEqual([...history].reverse());

    await page.click('[data-testid=version-row][data-version="1"] a[data-tx-link]');
    await heading(page, `Transaction #${v1.txId}`);
    expect(await text(page, '[data-field=version]')).toBe('1');
    expect(await text(page, '[data-field=reason]')).toBe('REGISTRATION');
    expect(await text(page, '[data-field=state]')).toBe('ACTIVE');
    expect(await text(page, '[data-field=previous]')).toMatch(/first version/);
    await page.click('[data-testid=next-version]');
    await heading(page, `Transaction #${v2.txId}`);

    // the search box finds the UE by MSISDN too
    await page.fill('#search-input', victim.identity.msisdn);
    await page.press('#search-input', 'Enter');
    await heading(page, 'UE history');
    expect(await page.locator('[data-testid=version-row]').count()).toBe(2);

    await page.click('[data-nav=checkpoints]');
    await heading(page, 'Checkpoints');
    expect(await text(page, '[data-field=checkpoint-size]')).toBe(String(info.txCount));
    expect(await text(page, '[data-testid=signature-row]')).toMatch(/verified/);

    await signOut(page);
    expect(problems).toEqual([]);
    await page.close();
  });
});

requireBrowserInCi(browser, 'dashboard');
