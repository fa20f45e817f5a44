/**
 * Benchmark: registrations endorsed and committed through gRPC RegisterBatch, with a real CEF
 * and AS node as separate processes on this machine; and GetEndorsement/s with proofs.
 * Prints the ratio to the crypto limit measured in the same run:
 * 1 / (t_verify + t_sign) per core × cores (each registration costs one UE-signature verify
 * and one AS signature). Target: ≥ 10,000 registrations/s on 2 cores.
 *
 * Run: `npm run bench:registration` (or `node bench/registration.bench.ts [count] [concurrency] [batch]`).
 */
import { CefClient } from '../cef/src/client.ts';
import { UeRegistrationServiceClient } from '../proto/gen/divs/v1/ue_as.ts';
import { VerificationDataServiceClient, EndorsementView } from '../proto/gen/divs/v1/consumer_as.ts';
import { grpc, makeClient, unary } from '../platform/src/grpc.ts';
import { benchFleet, CORES, cryptoRates, percentile, report, startCefAndAs } from './common.ts';

const COUNT = Number(process.argv[2] ?? 30_000);
const BATCH = Number(process.argv[4] ?? 1000);
/** RegisterBatch calls in flight (fleets registering at the same time). */
const CONCURRENCY = Number(process.argv[3] ?? 3);
const PLMN = '26201';

const limits = cryptoRates();
const perCore = 1 / (1 / limits.verifyPerSec + 1 / limits.signPerSec);
const cryptoLimit = perCore * CORES;
// every registration also brings a new UE key to import (parse + point decompression), which
// the formula leaves out: printed beside it as the tighter bound
const withImport = CORES / (1 / limits.verifyPerSec + 1 / limits.signPerSec + 1 / limits.importPerSec);
console.log(
  `machine: ${CORES} cores; OpenSSL P-256 per core: verify ${Math.round(limits.verifyPerSec)}/s, sign ${Math.round(limits.signPerSec)}/s, import a compressed public key ${Math.round(limits.importPerSec)}/s`,
);

const t0 = performance.now();
const ues = benchFleet(COUNT, 'bench-registration', PLMN);
console.log(`built ${COUNT} UEs in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const stack = await startCefAndAs(PLMN, ['--threads', String(CORES)]);
try {
  const cef = new CefClient(`127.0.0.1:${stack.cef.port}`);
  for (let i = 0; i < ues.length; i += 10_000) await cef.provisionBatch(ues.slice(i, i + 10_000).map((u) => u.subscriber));
  cef.close();
  const address = `127.0.0.1:${stack.as.port}`;
  const client = makeClient(UeRegistrationServiceClient, address);

  // warm-up (JIT, worker start, connections) on the first batch, then the measured run
  const warm = ues.slice(0, BATCH);
  await unary(client, client.registerBatch, { registrations: warm.map((u) => u.registration) });
  const rest = ues.slice(BATCH);
  let next = 0;
  let ok = 0;
  const latencies: number[] = [];
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < rest.length) {
        const batch = rest.slice(next, next + BATCH);
        next += BATCH;
        const t = performance.now();
        const res = await unary(client, client.registerBatch, { registrations: batch.map((u) => u.registration) }, { timeoutMs: 120_000 });
        latencies.push(performance.now() - t);
        ok += res.results.filter((r) => !r.errorCode).length;
        const bad = res.results.find((r) => r.errorCode);
        if (bad) throw new Error(`registration refused: ${bad.errorCode} ${bad.errorMessage}`);
      }
    }),
  );
  const secs = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  report('registrations endorsed+committed', ok / secs, 'reg/s', { limit: cryptoLimit, limitName: `crypto limit (1/(t_verify+t_sign) x ${CORES} cores)`, target: '>= 10,000 reg/s' });
  console.log(`  crypto incl. the UE key import (1/(t_import+t_verify+t_sign) x ${CORES} cores): ${Math.round(withImport).toLocaleString('en-US')} reg/s, ratio ${(ok / secs / withImport).toFixed(2)}`);
  console.log(`  RegisterBatch of ${BATCH}: p50 ${percentile(latencies, 50).toFixed(0)} ms, p99 ${percentile(latencies, 99).toFixed(0)} ms`);
  client.close();

  // GetEndorsement with inclusion proof + latest proof + checkpoint
  const q = makeClient(VerificationDataServiceClient, address);
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${stack.token}`);
  const Q = 20_000;
  let qi = 0;
  const qStart = performance.now();
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (qi < Q) {
        const txId = (qi++ * 7919) % COUNT;
        await unary(q, q.getEndorsement, { txId, ledgerId: 'divs-bench', view: EndorsementView.ENDORSEMENT_VIEW_FULL, withLatestProof: true }, { metadata: md });
      }
    }),
  );
  report('GetEndorsement with proofs', Q / ((performance.now() - qStart) / 1000), 'queries/s');
  q.close();
} finally {
  await stack.stop();
}
