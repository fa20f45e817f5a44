/**
 * Benchmark (a): individually P-256-signed records verified per second by the gateway
 * verification engine [VER-3] [GEN-8], printed with the ratio to the raw node:crypto
 * (OpenSSL) verify rate over the same number of worker threads, measured in the same run on
 * the same messages. Target ratio: >= 0.9.
 *
 * The raw rate is `crypto.verify('sha256', PAE(record body), key, DER signature)` in a loop on
 * N threads with keys already imported — nothing but OpenSSL. The engine does all of its work
 * per record (decode, endorsement window, identity, contract period, chain, record hash) plus
 * the same verify. Rounds alternate raw / engine so both see the same machine load; the ratio of
 * the best rounds is printed.
 *
 * Run: `node bench/gateway-verify-single.bench.ts [--records 24000] [--threads 2] [--rounds 3]`
 */
import { verify as osslVerify, createPublicKey, type KeyObject } from 'node:crypto';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Domain, pae } from '../protocol/src/bytes.ts';
import { importPublicKey, p1363ToDer, SignatureSuite } from '../protocol/src/suites.ts';
import { SignedRecord } from '../proto/gen/divs/v1/common.ts';
import { VerifierPool } from '../gateway/src/verify/pool.ts';
import type { VerifyTask } from '../gateway/src/verify/task.ts';
import { generateChains, type GeneratedChain } from '../gateway/test/fixtures.ts';

const TARGET_RATIO = 0.9;

interface RawJob {
  msgs: Uint8Array[];
  sigs: Uint8Array[];
  keys: Uint8Array[];
  keyOf: number[];
}

/** Worker mode: verify every (msg, key, sig) once, report verifies/s. */
function rawWorker(): void {
  parentPort?.on('message', (job: RawJob) => {
    const keys: KeyObject[] = job.keys.map((spki) => createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }));
    const t0 = performance.now();
    let ok = 0;
    for (let i = 0; i < job.msgs.length; i++) if (osslVerify('sha256', job.msgs[i] as Uint8Array, keys[job.keyOf[i] as number] as KeyObject, job.sigs[i] as Uint8Array)) ok++;
    parentPort?.postMessage({ ok, ms: performance.now() - t0 });
  });
}

function rawJobs(chains: GeneratedChain[], threads: number): RawJob[] {
  const jobs: RawJob[] = Array.from({ length: threads }, () => ({ msgs: [], sigs: [], keys: [], keyOf: [] }));
  const spki = chains.map((c) => new Uint8Array(importPublicKey(SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256, c.window.publicKey).export({ format: 'der', type: 'spki' })));
  for (const j of jobs) j.keys = spki;
  let k = 0;
  chains.forEach((c, ci) => {
    for (let i = 0; i + 1 < c.offsets.length; i++) {
      const rec = SignedRecord.decode(c.data.subarray(c.offsets[i] as number, c.offsets[i + 1] as number));
      const j = jobs[k++ % threads] as RawJob;
      j.msgs.push(pae(Domain.record, rec.body));
      j.sigs.push(p1363ToDer(rec.signature) as Uint8Array);
      j.keyOf.push(ci);
    }
  });
  return jobs;
}

async function rawRate(workers: Worker[], jobs: RawJob[]): Promise<number> {
  const t0 = performance.now();
  const res = await Promise.all(
    workers.map(
      (w, i) =>
        new Promise<{ ok: number; ms: number }>((resolve) => {
          w.once('message', resolve);
          w.postMessage(jobs[i]);
        }),
    ),
  );
  const s = (performance.now() - t0) / 1000;
  const n = jobs.reduce((a, j) => a + j.msgs.length, 0);
  if (res.reduce((a, r) => a + r.ok, 0) !== n) throw new Error('raw verification failed');
  return n / s;
}

function tasksOf(chains: GeneratedChain[], perTask: number): VerifyTask[] {
  const windows = chains.map((c) => c.window);
  const tasks: VerifyTask[] = [];
  let id = 0;
  for (const c of chains) {
    const n = c.offsets.length - 1;
    for (let from = 0; from < n; from += perTask) {
      const to = Math.min(n, from + perTask);
      const base = c.offsets[from] as number;
      tasks.push({
        id: ++id,
        data: c.data.slice(base, c.offsets[to] as number),
        offsets: Uint32Array.from(c.offsets.subarray(from, to + 1), (o) => o - base),
        flags: new Uint8Array(to - from),
        segments: new Uint32Array([0]),
        windows,
      });
    }
  }
  return tasks;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { records: { type: 'string' }, threads: { type: 'string' }, rounds: { type: 'string' } } });
  const threads = Number(values.threads ?? 2);
  const rounds = Number(values.rounds ?? 3);
  const ues = 16;
  const perUe = Math.ceil(Number(values.records ?? 24_000) / ues);
  let t = performance.now();
  const chains = await generateChains({ uesPerThread: ues / 2, recordsPerUe: perUe, batchSize: 1, threads: 2 });
  const total = chains.reduce((a, c) => a + c.offsets.length - 1, 0);
  console.log(`generated ${total} single-signed P-256 records (${ues} UEs) in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const jobs = rawJobs(chains, threads);
  const raws = Array.from({ length: threads }, () => new Worker(new URL(import.meta.url), { workerData: { bench: 'raw' } }));
  const pool = new VerifierPool({ threads });
  try {
    // warm-up both paths
    await rawRate(raws, jobs.map((j) => ({ ...j, msgs: j.msgs.slice(0, 200), sigs: j.sigs.slice(0, 200), keyOf: j.keyOf.slice(0, 200) })));
    await Promise.all(tasksOf(chains.slice(0, threads), 200).slice(0, threads).map((x) => pool.verify(x)));
    const rawRates: number[] = [];
    const engineRates: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const raw = await rawRate(raws, jobs);
      rawRates.push(raw);
      // tasks of ~1000 records: enough in flight to keep every worker busy to the end
      const tasks = tasksOf(chains, Math.ceil(total / threads / 12));
      t = performance.now();
      const results = await Promise.all(tasks.map((x) => pool.verify(x)));
      const s = (performance.now() - t) / 1000;
      const valid = results.reduce((a, x) => a + x.status.filter((st) => st === 0).length, 0);
      if (valid !== total) throw new Error(`only ${valid} of ${total} records verified valid`);
      engineRates.push(total / s);
      console.log(`round ${r + 1}: raw node:crypto ${Math.round(raw).toLocaleString('en')} verifies/s, engine ${Math.round(total / s).toLocaleString('en')} records/s, ratio ${(total / s / raw).toFixed(3)}`);
    }
    const raw = Math.max(...rawRates);
    const eng = Math.max(...engineRates);
    const ratio = eng / raw;
    console.log('');
    console.log(`single-signed records verified/s (${threads} workers): ${Math.round(eng).toLocaleString('en')}`);
    console.log(`raw node:crypto P-256 verify/s (${threads} workers, same run): ${Math.round(raw).toLocaleString('en')}`);
    console.log(`ratio: ${ratio.toFixed(3)}   target >= ${TARGET_RATIO}   ${ratio >= TARGET_RATIO ? 'MET' : 'NOT MET'}`);
  } finally {
    await pool.close();
    await Promise.all(raws.map((w) => w.terminate()));
  }
}

if (isMainThread) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
} else if ((workerData as { bench?: string }).bench === 'raw') {
  rawWorker();
}
