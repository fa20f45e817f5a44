/**
 * @module bench/enclave
 * Enclave runner benchmark (a plain script, not a test): prints figures and ratios against the
 * targets, all measured in this run on this machine.
 *
 * 1. job overhead: submit → result for a trivial job (target p50 < 20 ms);
 * 2. compute: mean + variance over 1M float64 records inside the sandbox vs the same source in
 *    plain Node (target sandbox ≥ 0.9× native speed);
 * 3. data feed: MB/s from the gateway process into the isolate (IPC copy + transfer);
 * 4. throughput: trivial jobs per second with every child busy.
 *
 * Run: `node_modules/.bin/node bench/enclave.bench.ts` (env BENCH_QUICK=1 for fewer rounds).
 */
import { RunnerPool, type RunnerJob } from '../enclave-runner/src/pool.ts';
import type { JobSuccess } from '../enclave-runner/src/protocol.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const MIB = 1 << 20;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

function median(xs: number[]): number {
  return percentile([...xs].sort((a, b) => a - b), 50);
}

const fmt = (n: number, digits = 2): string => n.toFixed(digits);

async function timed(pool: RunnerPool, job: RunnerJob): Promise<{ ms: number; r: JobSuccess }> {
  const t = performance.now();
  const r = await pool.run(job);
  const ms = performance.now() - t;
  if (!r.ok) throw new Error(`benchmark job failed: ${r.code}: ${r.message}`);
  return { ms, r };
}

// One algorithm, one source text, run in both places: two-pass mean and variance, `reps` times.
const ALGO = `function stats(x, reps) {
  let mean = 0, variance = 0;
  for (let r = 0; r < reps; r++) {
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i];
    mean = s / x.length;
    let q = 0;
    for (let i = 0; i < x.length; i++) { const d = x[i] - mean; q += d * d; }
    variance = q / (x.length - 1);
  }
  return { mean, variance };
}`;

async function main(): Promise<void> {
  const pool = new RunnerPool({ size: 2, maxQueue: 1000, defaults: { memoryMb: 128, cpuMs: 60_000, wallMs: 120_000, outputBytes: 1 << 20 } });
  try {
    const t0 = performance.now();
    await pool.ready();
    console.log(`enclave runner benchmark  (node ${process.versions.node}, runner ${pool.measurement.digest.slice(0, 16)}…)`);
    console.log(`pool of 2 ready in ${fmt(performance.now() - t0, 0)} ms\n`);

    // 1. Overhead of a trivial job, sequential (one child at a time).
    const trivial: RunnerJob = { code: 'export function run(d, p) { return p }', params: { n: 1 } };
    for (let i = 0; i < 20; i++) await timed(pool, trivial);
    const rounds = QUICK ? 100 : 300;
    const lat: number[] = [];
    const childWall: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const { ms, r } = await timed(pool, trivial);
      lat.push(ms);
      childWall.push(r.wallMs);
    }
    lat.sort((a, b) => a - b);
    const p50 = percentile(lat, 50);
    console.log(`1. trivial job overhead (submit -> result, ${rounds} jobs)`);
    console.log(`   p50 ${fmt(p50)} ms   p95 ${fmt(percentile(lat, 95))} ms   p99 ${fmt(percentile(lat, 99))} ms   max ${fmt(lat[lat.length - 1] ?? 0)} ms`);
    console.log(`   of which inside the child (fresh isolate, compile, run): p50 ${fmt(median(childWall))} ms`);
    console.log(`   target p50 < 20 ms: ${p50 < 20 ? 'MET' : 'MISSED'} (${fmt(20 / p50, 1)}x headroom)\n`);

    // 2. Compute over 1M float64 records.
    const n = 1_000_000;
    const x = new Float64Array(n);
    for (let i = 0; i < n; i++) x[i] = Math.sin(i) * 100 + 50;
    const reps = QUICK ? 10 : 30;
    const job = (r: number): RunnerJob => ({
      code: `${ALGO}\nexport function run(d, p) { return stats(d.columns.x, p.reps) }`,
      params: { reps: r },
      data: { columns: { x: { type: 'f64', buffer: x } } },
    });
    const native = new Function(`${ALGO}\nreturn stats;`)() as (x: Float64Array, reps: number) => { mean: number; variance: number };
    const expected = native(x, 1);
    const nativeMs: number[] = [];
    const sandboxCpu: number[] = [];
    const baseCpu: number[] = [];
    const samples = QUICK ? 3 : 5;
    for (let s = 0; s < samples; s++) {
      // let the children settle first (a child disposes the last isolate and prepares the next
      // one right after answering), so the native pass does not share the cores with them
      await new Promise((r) => setTimeout(r, 100));
      const t = performance.now();
      native(x, reps);
      nativeMs.push(performance.now() - t);
      const full = await timed(pool, job(reps));
      const out = JSON.parse(full.r.output) as { mean: number; variance: number };
      if (Math.abs(out.mean - expected.mean) > 1e-9 || Math.abs(out.variance - expected.variance) > 1e-6) {
        throw new Error('sandbox and native results differ');
      }
      sandboxCpu.push(full.r.cpuMs);
      baseCpu.push((await timed(pool, job(0))).r.cpuMs);
    }
    const nat = median(nativeMs) / reps;
    const sbx = (median(sandboxCpu) - median(baseCpu)) / reps;
    const sbxAll = median(sandboxCpu) / reps;
    console.log(`2. mean + variance over 1M float64 records (${reps} passes per job, median of ${samples})`);
    console.log(`   plain Node          ${fmt(nat, 3)} ms/pass  (${fmt((n * 8) / MIB / (nat / 1000), 0)} MB/s)`);
    console.log(`   sandbox (compute)   ${fmt(sbx, 3)} ms/pass   isolate CPU minus a reps=0 job`);
    console.log(`   sandbox (all-in)    ${fmt(sbxAll, 3)} ms/pass   incl. isolate set-up and compile`);
    console.log(`   speed vs native: ${fmt(nat / sbx)}x compute, ${fmt(nat / sbxAll)}x all-in; target >= 0.9x: ${nat / sbx >= 0.9 ? 'MET' : 'MISSED'}\n`);

    // 3. Data feed into the isolate.
    console.log('3. data feed, gateway process -> child (IPC copy) -> isolate (transfer)');
    for (const mb of QUICK ? [8, 64] : [1, 8, 64, 128]) {
      const buf = new Float64Array((mb * MIB) / 8).fill(1);
      const feed: RunnerJob = { code: 'export function run(d) { return d.rows }', data: { columns: { x: { type: 'f64', buffer: buf } } } };
      const times: number[] = [];
      const inChild: number[] = [];
      for (let i = 0; i < (QUICK ? 2 : 4); i++) {
        const { ms, r } = await timed(pool, feed);
        times.push(ms);
        inChild.push(r.wallMs);
      }
      const ms = median(times);
      const fed = Math.max(0.001, ms - p50);
      console.log(
        `   ${String(mb).padStart(4)} MiB: ${fmt(ms, 1).padStart(8)} ms end-to-end  -> ${fmt(mb / (ms / 1000), 0).padStart(5)} MB/s ` +
          `(${fmt(mb / (fed / 1000), 0)} MB/s net of job overhead); in the child ${fmt(median(inChild), 1)} ms`,
      );
    }
    console.log('');

    // 4. Throughput with both children busy.
    const count = QUICK ? 100 : 300;
    const t4 = performance.now();
    const all = await Promise.all(Array.from({ length: count }, () => pool.run(trivial)));
    const secs = (performance.now() - t4) / 1000;
    const failed = all.filter((r) => !r.ok).length;
    console.log(`4. throughput: ${count} trivial jobs on 2 children in ${fmt(secs, 2)} s = ${fmt(count / secs, 0)} jobs/s (${failed} failed)`);
    const s = pool.stats();
    console.log(`   pool: completed ${s.completed}, failed ${s.failed}, crashes ${s.crashes}, children recycled (maxJobsPerChild) ${s.recycled}`);
  } finally {
    await pool.close();
  }
}

await main();
