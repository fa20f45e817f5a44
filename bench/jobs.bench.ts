/**
 * @module bench/jobs
 * Gateway job benchmark (a plain script, not a test): job overhead submit → result for a
 * trivial job through the gateway API (target p50 < 20 ms), with a real CEF, AS and gateway as
 * separate processes on this machine.
 *
 * One job = SubmitJob, WatchJob until final, GetJobResult, and the client-side checks of the
 * attestation and the verification report — everything a consumer waits for. Inside the
 * gateway: reading the dataset snapshot, verifying it (worker threads + AS latest-version
 * lookups), the policy and output checks, one sandbox run, the attestation signature and the
 * job store commits. Printed beside it, measured in the same run, for comparison: a
 * VerifyDataset of the same dataset (the verification share) and a trivial job straight into
 * an enclave runner pool in this process (the sandbox share).
 *
 * Two gateway settings, one after the other on the same data:
 * - strict: every job verifies the dataset again and asks the AS for every UE's latest
 *   endorsement version (`as.latestTtlMs` 0, `jobs.verificationMaxAgeMs` 0, the defaults);
 * - cached: latest-version answers reused for 5 s and an unchanged dataset's verified snapshot
 *   for 5 s (bounded staleness the aggregator opts into).
 *
 * Run: `node_modules/.bin/node bench/jobs.bench.ts [jobs]` (env BENCH_QUICK=1 for fewer jobs;
 * BENCH_GATEWAY_LOGS=1 shows the gateway's log with per-job phase times).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CefClient } from '../cef/src/client.ts';
import { startService } from '../platform/src/spawn.ts';
import { pemToDer } from '../protocol/src/pki.ts';
import { readFileSync } from 'node:fs';
import { buildFleet, fleetSigner, registerFleet } from '../ue/src/fleet.ts';
import { UeClient } from '../ue/src/client.ts';
import { smartMeter } from '../ue/src/usecases.ts';
import { IngestClient } from '../gateway/src/client.ts';
import { GatewayConsumer } from '../consumer/src/report.ts';
import { JobClient, codeHashOf } from '../consumer/src/jobs.ts';
import { RunnerPool } from '../enclave-runner/src/index.ts';
import { percentile, startCefAndAs } from './common.ts';

const { positionals } = parseArgs({ allowPositionals: true });
const QUICK = process.env.BENCH_QUICK === '1';
const JOBS = Number(positionals[0] ?? (QUICK ? 40 : 200));
const PLMN = '26201';
const UES = 8;
const READINGS = 16;
const TOKEN = 'bench-consumer-token-0123456789';
const TRIVIAL = 'export function run(data) { return { n: data.rows }; }';

const fmt = (n: number, d = 2): string => n.toFixed(d);
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s[s.length - 1] ?? 0 };
};
const line = (name: string, xs: number[]): string => {
  const s = stats(xs);
  return `${name.padEnd(44)} p50 ${fmt(s.p50).padStart(7)} ms   p90 ${fmt(s.p90).padStart(7)} ms   p99 ${fmt(s.p99).padStart(7)} ms   max ${fmt(s.max).padStart(7)} ms`;
};

async function main(): Promise<void> {
  const stack = await startCefAndAs(PLMN);
  const fleet = await buildFleet({ count: UES, seed: 'bench-jobs', plmnId: PLMN, workers: 0 });
  let gateway: Awaited<ReturnType<typeof startService>> | undefined;
  try {
    const cef = new CefClient(`127.0.0.1:${stack.cef.port}`);
    await cef.provisionBatch(fleet.subscribers());
    cef.close();
    const reg = new UeClient({ address: `127.0.0.1:${stack.as.port}` });
    const r = await registerFleet(fleet.ues, (x) => reg.registerBatch(x));
    reg.close();
    if (r.registered !== UES) throw new Error(`only ${r.registered} of ${UES} UEs registered`);

    const dir = join(stack.dir, 'gw');
    mkdirSync(dir, { recursive: true });
    const pki = join(stack.dir, 'as', 'pki');
    const anchors = { roots: [pemToDer(readFileSync(join(pki, 'root-ca.pem'), 'utf8'))] };
    const start = async (latestTtlMs: number, verificationMaxAgeMs: number) => {
      const cfg = {
        dataDir: dir,
        name: 'gw-bench',
        httpPort: null,
        durability: 'full',
        pki: { enroll: { caCert: join(pki, 'root-ca.pem'), caKey: join(pki, 'root-ca.key') } },
        as: { tokens: { '*': stack.token }, latestTtlMs },
        consumers: [{ name: 'bench', token: TOKEN }],
        datasets: [{ id: 'meters', channel: 'meters', grants: ['bench'] }],
        jobs: {
          runners: 1,
          verificationMaxAgeMs,
          policies: [{ consumer: 'bench', transport: 'any', minDistinctUes: 3, maxActiveJobs: 100, approval: { allowCodeHashes: [codeHashOf(TRIVIAL)] } }],
        },
      };
      writeFileSync(join(stack.dir, 'gw.json'), JSON.stringify(cfg));
      gateway = await startService(['gateway/src/main.ts', '--config', join(stack.dir, 'gw.json')], {
        env: { DIVS_LOG_LEVEL: process.env.BENCH_GATEWAY_LOGS === '1' ? 'info' : 'warn' },
        showLogs: process.env.BENCH_GATEWAY_LOGS === '1',
      });
      return `127.0.0.1:${gateway.port}`;
    };

    let address = await start(0, 0);
    const ingest = new IngestClient({ address, channel: 'meters' });
    for (const [i, u] of fleet.ues.entries()) {
      const samples = smartMeter.generate({ seed: 'bench-jobs', deviceId: `meter-${i}`, count: READINGS });
      await ingest.send(await (await fleetSigner(u)).signBatch(samples.map((x) => ({ payload: x.bytes, timestampMs: x.timestampMs })), smartMeter.contentType));
    }
    ingest.close();
    console.log(`gateway job benchmark  (node ${process.versions.node}; ${UES} UEs x ${READINGS} readings; ${JOBS} jobs per setting)\n`);

    const measure = async (title: string): Promise<number> => {
      const client = new JobClient({ address, token: TOKEN, anchors });
      const consumer = new GatewayConsumer({ address, token: TOKEN, anchors });
      // warm-up: runner pool start (first job), JIT, connections, endorsement cache
      for (let i = 0; i < 5; i++) await client.run({ datasetId: 'meters', code: TRIVIAL });
      const jobs: number[] = [];
      const inGateway: number[] = [];
      for (let i = 0; i < JOBS; i++) {
        const t = performance.now();
        const res = await client.run({ datasetId: 'meters', code: TRIVIAL });
        jobs.push(performance.now() - t);
        inGateway.push(res.statement.finishedAtMs - res.statement.submittedAtMs);
        if ((res.document.groups[0]?.value as { n: number }).n !== UES * READINGS) throw new Error('wrong result');
      }
      const verify: number[] = [];
      for (let i = 0; i < Math.min(JOBS, 50); i++) {
        const t = performance.now();
        await consumer.verifyDataset('meters');
        verify.push(performance.now() - t);
      }
      client.close();
      consumer.close();
      console.log(title);
      console.log(line(`  trivial job, submit -> verified result`, jobs));
      console.log(line('    of which in the gateway (statement times)', inGateway));
      console.log(line('  VerifyDataset of the same dataset', verify));
      return stats(jobs).p50;
    };

    const strict = await measure('strict: verify every job, latest versions from the AS every time');
    await gateway?.stop();
    address = await start(5000, 5000);
    const cached = await measure('cached: latest versions and unchanged snapshots reused for 5 s');

    const pool = new RunnerPool({ size: 1 });
    await pool.ready();
    const sandbox: number[] = [];
    for (let i = 0; i < 20; i++) await pool.run({ code: TRIVIAL });
    for (let i = 0; i < Math.min(JOBS, 100); i++) {
      const t = performance.now();
      const x = await pool.run({ code: TRIVIAL });
      if (!x.ok) throw new Error(x.code);
      sandbox.push(performance.now() - t);
    }
    await pool.close();
    console.log(line('trivial job straight into a runner pool (floor)', sandbox));

    console.log(`\njob overhead p50: strict ${fmt(strict)} ms (ratio ${fmt(strict / 20)} of the 20 ms target), cached ${fmt(cached)} ms (ratio ${fmt(cached / 20)})`);
    console.log(`target p50 < 20 ms: ${cached < 20 ? 'MET' : 'MISSED'} with caching, ${strict < 20 ? 'MET' : 'MISSED'} strict; sandbox floor ${fmt(stats(sandbox).p50)} ms`);
  } finally {
    await gateway?.stop();
    await fleet.close();
    await stack.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
