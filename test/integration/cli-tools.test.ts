/**
 * The consumer and ledger tools of the `divs` CLI as real processes against a real CEF, AS node
 * and gateway: `divs consumer datasets` (listing and signed verification reports), `divs ledger
 * inspect --ue` after a contract termination, `divs ledger verify|proof` on a stopped AS node's
 * directory and on a consortium node's directory layout (no private key needed), and the exit
 * codes of bad trust roots and bad data directories.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignedRecord } from '../../proto/gen/divs/v1/common.ts';
import { AckStatus } from '../../proto/gen/divs/v1/gateway.ts';
import { VerificationDataServiceClient } from '../../proto/gen/divs/v1/consumer_as.ts';
import { toHex } from '../../protocol/src/bytes.ts';
import { importPrivateKey, nodeSigner } from '../../protocol/src/suites.ts';
import { grpc, makeClient, unary } from '../../platform/src/grpc.ts';
import { GatewayConsumer } from '../../consumer/src/report.ts';
import { decodeEndorsementTx } from '../../as-node/src/endorse.ts';
import { LocalLedger } from '../../as-node/src/ledger/local.ts';
import { CONSORTIUM_PROPOSER } from '../../as-node/src/ledger/consortium/block.ts';
import { createLocalConsortium, writeLocalConsortium, type LocalNode } from '../../as-node/src/governance/local-consortium.ts';
import { buildFleet, fleetSigner, registerFleet, type Fleet, type SimulatedUe } from '../../ue/src/fleet.ts';
import { UeClient } from '../../ue/src/client.ts';
import { IngestClient } from '../../gateway/src/client.ts';
import { reading } from '../../gateway/test/fixtures.ts';
import { tempDir, writeCa } from '../../gateway/test/helpers.ts';
import { endorsementTx, endorserOf, newUe } from '../consortium/fixtures.ts';
import { startStack, type Stack } from '../helpers/divs.ts';
import { REPO_ROOT, spawnService, type ServiceProcess } from '../helpers/proc.ts';

const PLMN = '26201';
const TOKEN = 'carol-token-0123456789abcdef';

/** Runs the CLI to completion. */
const divs = (args: string[]) =>
  spawnSync(process.execPath, [join(REPO_ROOT, 'bin/divs.ts'), ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, DIVS_LOG_LEVEL: 'error' } });
const lastJson = (stdout: string): Record<string, unknown> => JSON.parse(stdout.trim().split('\n').at(-1) as string) as Record<string, unknown>;

let s: Stack;
let fleet: Fleet;
let gw: ServiceProcess;
let rootPem: string;
const ue = (i: number): SimulatedUe => fleet.ues[i] as SimulatedUe;

beforeAll(async () => {
  s = await startStack(PLMN);
  fleet = await buildFleet({ count: 3, seed: 'cli-tools', plmnId: PLMN, workers: 0 });
  expect((await s.cefClient.provisionBatch(fleet.subscribers())).provisioned).toBe(3);
  const reg = new UeClient({ address: s.asAddress });
  expect((await registerFleet(fleet.ues, (regs) => reg.registerBatch(regs))).registered).toBe(3);
  reg.close();
  const dir = tempDir('cli-tools');
  const gwDir = join(dir, 'gw');
  mkdirSync(gwDir, { recursive: true });
  rootPem = join(s.asDataDir, 'pki', 'root-ca.pem');
  const cfg = {
    dataDir: gwDir,
    name: 'gw-cli',
    pki: { enroll: { caCert: rootPem, caKey: join(s.asDataDir, 'pki', 'root-ca.key') } },
    as: { tokens: { '*': s.token }, timeoutMs: 2000, attempts: 2, backoffMs: 100 },
    verify: { threads: 1, concurrency: 1 },
    consumers: [{ name: 'carol', token: TOKEN }],
    datasets: [{ id: 'meters', channel: 'meters', description: 'meter readings', schema: 'urn:divs:meter-reading:v1', grants: ['carol'] }],
  };
  writeFileSync(join(dir, 'gw.json'), JSON.stringify(cfg));
  gw = await spawnService(['gateway/src/main.ts', '--config', join(dir, 'gw.json')], {}, { autoStop: false });
  // 2 UEs x 4 readings, one of them altered after signing: 7 valid, 1 INVALID_SIGNATURE
  const recs: SignedRecord[] = [];
  for (const i of [0, 1]) {
    const sg = await fleetSigner(ue(i));
    for (let k = 0; k < 4; k++) recs.push(await sg.sign(reading(k), 'application/json', Date.now() - 30_000 + k));
  }
  const body = Uint8Array.from(recs[5]?.body ?? []);
  body[body.length - 3] ^= 0x01;
  recs[5] = { ...(recs[5] as SignedRecord), body };
  const ingest = new IngestClient({ address: `127.0.0.1:${gw.port}`, channel: 'meters' });
  try {
    expect((await ingest.send(recs)).every((a) => a.status === AckStatus.ACK_STATUS_STORED)).toBe(true);
  } finally {
    ingest.close();
  }
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  await fleet?.close();
  await s?.stop();
});

describe('divs consumer datasets', () => {
  const conn = () => ['--gateway', `127.0.0.1:${gw.port}`, '--trust', rootPem, '--token', TOKEN];

  it('[SC2-1] lists the granted datasets as descriptions (counts, time range, schema), never raw data', () => {
    const r = divs(['consumer', 'datasets', ...conn(), '--ues', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const out = lastJson(r.stdout) as { datasets: { datasetId: string; ueCount: number; recordCount: number; schema: string; firstTimestamp: string; ues: unknown[] }[] };
    expect(out.datasets.map((d) => [d.datasetId, d.ueCount, d.recordCount, d.schema])).toEqual([['meters', 2, 8, 'urn:divs:meter-reading:v1']]);
    expect(out.datasets[0]?.ues).toHaveLength(2);
    expect(Number.isFinite(Date.parse(out.datasets[0]?.firstTimestamp ?? ''))).toBe(true);
    expect(r.stdout).not.toMatch(/kWh|payload|body/);
    const text = divs(['consumer', 'datasets', ...conn()]);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/meters: 2 UEs, 8 records/);
  });

  it('[SC2-2] --verify prints the signed report after checking its signature; counts match the gateway answer; --fail-on-invalid gives exit 1', async () => {
    const r = divs(['consumer', 'datasets', ...conn(), '--verify', 'meters', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const out = lastJson(r.stdout);
    const sdk = new GatewayConsumer({ address: `127.0.0.1:${gw.port}`, token: TOKEN, anchors: { roots: [s.rootDer] } });
    const direct = await sdk.verifyDataset('meters').finally(() => sdk.close());
    expect(out).toMatchObject({
      signatureVerified: true,
      gateway: direct.gateway,
      datasetId: 'meters',
      recordCount: direct.report.recordCount,
      validCount: direct.report.validCount,
      invalid: { INVALID_SIGNATURE: 1 },
      commitmentSize: direct.report.commitmentSize,
      datasetCommitment: toHex(direct.report.datasetCommitment),
    });
    expect([out.recordCount, out.validCount]).toEqual([8, 7]);
    const used = out.endorsements as { version: number; outcome: string; checkpoint: { origin: string } }[];
    expect(used).toHaveLength(2);
    expect(used.every((e) => e.version === 1 && e.outcome === 'OK' && e.checkpoint.origin === 'divs-test')).toBe(true);
    expect((out.checkpoints as unknown[]).length).toBeGreaterThan(0);
    const strict = divs(['consumer', 'datasets', ...conn(), '--verify', 'meters', '--fail-on-invalid']);
    expect(strict.status).toBe(1);
    expect(strict.stdout).toMatch(/7 of 8 records valid/);
    expect(strict.stdout).toMatch(/INVALID_SIGNATURE\s+1/);
  });

  it('[SC2-2] [FW-SU] a report that does not chain to --trust fails with exit 1 and a coded message; usage errors exit 2', async () => {
    const other = await writeCa(tempDir('cli-other-ca'), 'Some other root');
    const r = divs(['consumer', 'datasets', '--gateway', `127.0.0.1:${gw.port}`, '--trust', other.certPath, '--token', TOKEN, '--verify', 'meters']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/UNTRUSTED_CERTIFICATE: report verification FAILED/);
    expect(r.stdout).not.toMatch(/records valid/);
    const noTrust = divs(['consumer', 'datasets', '--gateway', `127.0.0.1:${gw.port}`, '--verify', 'meters']);
    expect(noTrust.status).toBe(2);
    expect(noTrust.stderr).toMatch(/CONFIG_INVALID: --trust is required/);
    const help = divs(['consumer', 'datasets', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/--verify DATASET/);
  });
});

describe('divs ledger', () => {
  it('[UPD-3] [VER-4] [GEN-5] inspect --ue shows every version after a contract termination; verify and proof work on the stopped node directory', async () => {
    const u = ue(2);
    await s.cefClient.applyAction(u.identity, { $case: 'terminate', value: { terminationTimeMs: 0 } });
    // the AS appends version 2 when the CEF event reaches it
    const c = makeClient(VerificationDataServiceClient, s.asAddress);
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${s.token}`);
    try {
      for (let i = 0; ; i++) {
        const res = await unary(c, c.getLatest, { identity: u.identity, ueKey: new Uint8Array(0) }, { metadata: md });
        if (decodeEndorsementTx(res.latest?.tx ?? new Uint8Array(0)).endorsement.version === 2) break;
        if (i > 100) throw new Error('the AS did not record the termination');
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      c.close();
    }
    await s.as.stop();

    const r = divs(['ledger', 'inspect', '--data-dir', s.asDataDir, '--ue', `msisdn:${u.identity.msisdn}`, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const out = lastJson(r.stdout) as { ues: { versions: { txId: number; version: number; reason: string; contractState: string; endorsedAt: string; terminationTime: string | null }[] }[] };
    expect(out.ues).toHaveLength(1);
    const versions = out.ues[0]?.versions ?? [];
    expect(versions.map((x) => [x.version, x.reason, x.contractState])).toEqual([
      [1, 'REGISTRATION', 'ACTIVE'],
      [2, 'CONTRACT_TERMINATED', 'TERMINATED'],
    ]);
    expect(versions[1]?.txId).toBeGreaterThan(versions[0]?.txId ?? Infinity);
    expect(versions[1]?.terminationTime).not.toBeNull();
    // the bare IMEI finds it too, and the text output names the versions
    const text = divs(['ledger', 'inspect', '--data-dir', s.asDataDir, '--ue', u.identity.imei]);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/v2\s+tx \d+\s+CONTRACT_TERMINATED/);
    const none = divs(['ledger', 'inspect', '--data-dir', s.asDataDir, '--ue', '490154203237518']);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/UNKNOWN_IDENTITY/);

    const v = divs(['ledger', 'verify', '--data-dir', s.asDataDir, '--json']);
    expect(v.status, v.stderr).toBe(0);
    expect(lastJson(v.stdout)).toMatchObject({ ok: true, ledgerId: 'divs-test', backend: 'local', transactions: 4 });
    const p = divs(['ledger', 'proof', '--data-dir', s.asDataDir, '--tx', String(versions[1]?.txId), '--json']);
    expect(p.status, p.stderr).toBe(0);
    expect(lastJson(p.stdout)).toMatchObject({ txId: versions[1]?.txId, treeSize: 4 });
  });

  it('[GEN-5] [BC-1] verifies a consortium node directory (data/NODE/ledger.db, nodes/NODE.pem) without its private key; a wrong certificate fails with exit 1', async () => {
    const dir = tempDir('cli-consortium');
    const c = await createLocalConsortium({
      ledgerId: 'divs-cli-c',
      orgs: [
        { id: 'op-a', name: 'Operator A', nodes: ['as-a'] },
        { id: 'op-b', name: 'Operator B', nodes: ['as-b'] },
      ],
    });
    writeLocalConsortium(c, dir);
    const node = c.nodes[0] as LocalNode;
    const dataDir = join(dir, 'data', node.name);
    mkdirSync(dataDir, { recursive: true });
    // this node's copy, as ConsortiumLedger stores it: checkpoints under the key name "consortium"
    const ledger = await LocalLedger.open({ path: join(dataDir, 'ledger.db'), ledgerId: c.ledgerId, signer: nodeSigner(importPrivateKey(node.keyPem)), signerName: CONSORTIUM_PROPOSER, certChain: node.certChain });
    const as = endorserOf(node);
    const t = newUe();
    const t2 = newUe();
    const [first] = await ledger.append([{ tx: endorsementTx(as, t), ueKey: t.ueKey }, { tx: endorsementTx(as, t2), ueKey: t2.ueKey }]);
    await ledger.append([{ tx: endorsementTx(as, t, { version: 2, previous: { txId: first?.txId ?? 0, leafHash: first?.leafHash ?? new Uint8Array(32) } }), ueKey: t.ueKey }]);
    ledger.close();
    rmSync(join(dir, 'nodes', `${node.name}.key`));

    const v = divs(['ledger', 'verify', '--data-dir', dataDir, '--json']);
    expect(v.status, v.stderr).toBe(0);
    expect(lastJson(v.stdout)).toMatchObject({ ok: true, ledgerId: 'divs-cli-c', backend: 'consortium', transactions: 3, blocks: 2 });
    const h = divs(['ledger', 'inspect', '--data-dir', dataDir, '--ue-key', toHex(t.ueKey), '--json']);
    expect(h.status, h.stderr).toBe(0);
    expect((lastJson(h.stdout) as { ues: { versions: { version: number }[] }[] }).ues[0]?.versions.map((x) => x.version)).toEqual([1, 2]);
    // another node's certificate: the checkpoint signature does not verify
    const wrong = divs(['ledger', 'verify', '--data-dir', dataDir, '--cert', join(dir, 'nodes', 'as-b.pem')]);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/LEDGER_TAMPERED: ledger verification FAILED/);
  });

  it('[GEN-5] a missing or wrong data directory is a coded usage error (exit 2), not a stack trace', () => {
    const empty = tempDir('cli-empty');
    for (const args of [
      ['ledger', 'verify', '--data-dir', join(empty, 'nope')],
      ['ledger', 'inspect', '--data-dir', empty],
      ['ledger', 'proof', '--data-dir', empty, '--tx', '0'],
      ['ledger', 'verify'],
      ['ledger', 'inspect', '--data-dir', s.asDataDir, '--ue', 'not-a-number'],
    ]) {
      const r = divs(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/divs: CONFIG_INVALID: /);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(divs(['ledger', 'frobnicate']).status).toBe(2);
  });
});
