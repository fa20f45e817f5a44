/**
 * The `divs` CLI and the `npm start` scenario, run as real processes.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, spawnService } from '../helpers/proc.ts';
import { tempDir } from '../helpers/divs.ts';

const divs = (args: string[], timeout = 120_000) =>
  spawnSync(process.execPath, [join(REPO_ROOT, 'bin/divs.ts'), ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout, env: { ...process.env, DIVS_LOG_LEVEL: 'error' } });

/** The facts `divs demo --json` prints that the test checks. */
interface DemoSummary {
  registered: number;
  readings: number;
  valid: number;
  invalid: number;
  byReason: Record<string, number>;
  gateways: { name: string; meters: number; ingest: { stored: number; rejected: number } }[];
  datasets: { datasetId: string; records: number; ues: number }[];
  reports: { gateway: string; datasetCommitment: string }[];
  job: {
    state: string;
    codeHash: string;
    minDistinctUes: number;
    regions: Record<string, { meters: number; readings: number; solarKWh: number }>;
    runs: { gateway: string; state: string; attestation?: { datasetCommitment: string; runnerDigest: string; resultHash: string } }[];
  };
  training: { errorCode?: string; rounds: { round: number; samples: number; loss: number; accuracy: number; attestationsVerified: number }[]; attestedJobs: number; allAttestationsVerified: boolean };
}

describe('divs CLI', () => {
  it('starts a service (divs cef) that keeps serving until SIGTERM, then exits 0; --help prints usage', async () => {
    const dir = tempDir('cli-cef');
    try {
      const cef = await spawnService(['bin/divs.ts', 'cef', '--data-dir', dir, '--plmn', '26201'], { DIVS_LOG_LEVEL: 'error' }, { autoStop: false });
      // still there a while after its ready line (the CLI must not exit once start-up resolves)
      const early = await Promise.race([cef.exited.then(() => 'exited'), new Promise((r) => setTimeout(() => r('serving'), 1500))]);
      expect(early).toBe('serving');
      const exit = await cef.stop();
      expect(exit.code).toBe(0);
      for (const svc of ['cef', 'as-node', 'gateway']) {
        const help = divs([svc, '--help']);
        expect(help.status, svc).toBe(0);
        expect(help.stdout, svc).toMatch(new RegExp(`divs ${svc}`));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints help, and refuses unknown commands and bad flags with exit code 2', () => {
    const help = divs(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/divs <command>/);
    expect(divs(['frobnicate']).status).toBe(2);
    const bad = divs(['ue', 'fleet', '--count', 'many', '--cef', 'x', '--as', 'y']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/CONFIG_INVALID: --count/);
  });

  it('[GEN-2] [VER-3] [MTC-2] [UPD-4] [SC2-1] [SC2-2] [SC2-4] [SC2-5] runs the whole scenario: readings caught by the AS and by the gateways, an attested job and an attested 3-round training', () => {
    const dir = tempDir('demo');
    try {
      // 12 meters: two gateways x two regions x the aggregation threshold of 3 meters
      const r = divs(['demo', '--once', '--json', '--data-dir', dir, '--meters', '12', '--readings', '4'], 90_000);
      expect(r.status, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as DemoSummary;
      expect(summary.registered).toBe(12);
      expect(summary.readings).toBe(48);
      // scenario 10.1: meter #1's altered reading fails its signature; meter #3's contract ends
      // between its 2nd and 3rd reading, so its last 2 readings are refused
      expect(summary.byReason).toEqual({ INVALID_SIGNATURE: 1, SIGNED_AFTER_TERMINATION: 2 });
      expect(summary.valid).toBe(45);
      expect(summary.invalid).toBe(3);

      // every reading reached its region's gateway over gRPC ingest, the altered one included
      expect(summary.gateways.map((g) => [g.name, g.meters, g.ingest.stored, g.ingest.rejected])).toEqual([
        ['gw-north', 6, 24, 0],
        ['gw-south', 6, 24, 0],
      ]);
      expect(summary.datasets.map((d) => [d.datasetId, d.records, d.ues])).toEqual([
        ['meters-north', 24, 6],
        ['meters-south', 24, 6],
      ]);
      // scenario 10.2: each gateway's signed report verified, with the same reasons as the AS found
      const [north, south] = summary.reports;
      expect(north).toMatchObject({ gateway: 'gw-north', signatureVerified: true, signedBy: 'gw-north', records: 24, valid: 23, byReason: { INVALID_SIGNATURE: 1 }, commitmentSize: 23 });
      expect(south).toMatchObject({ gateway: 'gw-south', signatureVerified: true, signedBy: 'gw-south', records: 24, valid: 22, byReason: { SIGNED_AFTER_TERMINATION: 2 }, commitmentSize: 22 });

      // the job ran on both gateways over verified readings only, one value per region, attested
      expect(summary.job.state).toBe('SUCCEEDED');
      expect(summary.job.minDistinctUes).toBe(3);
      expect(Object.keys(summary.job.regions)).toEqual(['DE-BE', 'DE-BW', 'DE-BY', 'DE-HH']);
      for (const g of Object.values(summary.job.regions)) {
        expect(g.meters).toBe(3);
        expect(g.solarKWh).toBeGreaterThanOrEqual(0);
      }
      // DE-BE (meters 1, 5, 9) lost the altered reading, DE-BW (meters 3, 7, 11) the 2 after termination
      expect(Object.values(summary.job.regions).map((g) => g.readings)).toEqual([11, 10, 12, 12]);
      for (const run of summary.job.runs) {
        expect(run.state).toBe('SUCCEEDED');
        expect(run.attestation).toMatchObject({ signatureVerified: true, gateway: run.gateway, consumer: 'green-cert-issuer', codeHash: summary.job.codeHash, approval: 'allow-list' });
        expect(run.attestation?.runnerDigest).toMatch(/^[0-9a-f]{64}$/);
        expect(run.attestation?.resultHash).toMatch(/^[0-9a-f]{64}$/);
      }
      expect(summary.job.runs.map((x) => x.attestation?.datasetCommitment)).toEqual([north?.datasetCommitment, south?.datasetCommitment]);

      // 3 FedAvg rounds over the 45 verified readings, every round attested by both gateways
      expect(summary.training.errorCode).toBeUndefined();
      expect(summary.training.rounds.map((x) => [x.round, x.samples, x.attestationsVerified])).toEqual([
        [1, 45, 2],
        [2, 45, 2],
        [3, 45, 2],
      ]);
      for (const x of summary.training.rounds) {
        expect(x.accuracy).toBeGreaterThan(0.5);
        expect(Number.isFinite(x.loss)).toBe(true);
      }
      // statistics + 3 training + 3 evaluation rounds on two gateways, all re-verified offline
      expect(summary.training.attestedJobs).toBe(14);
      expect(summary.training.allAttestationsVerified).toBe(true);

      // the ledger it left behind re-verifies offline: 12 endorsements + 1 update
      const lv = divs(['ledger', 'verify', '--data-dir', join(dir, 'as'), '--json']);
      expect(lv.status, lv.stderr).toBe(0);
      expect(JSON.parse(lv.stdout).transactions).toBe(13);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
