/**
 * @module bench/ledger
 * Local ledger benchmark (a plain script, not a test): prints figures measured in this run.
 *
 * 1. append throughput: batches of 500 registrations (new UE keys, ~1.5 KiB txs, the size of a
 *    signed endorsement with its certificate), target ≥ 10,000 tx/s;
 * 2. update throughput: batches of 500 new versions of existing UE keys;
 * 3. open time: full re-verification of the ledger (target: 100k txs in a few seconds);
 * 4. proof latency: inclusion, consistency and latest-version proofs.
 *
 * Run: `node_modules/.bin/node bench/ledger.bench.ts` (env BENCH_QUICK=1 for 20k txs,
 * BENCH_TXS=n for another size).
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalLedger } from '../as-node/src/ledger/local.ts';
import { nodeSigner } from '../protocol/src/suites.ts';
import type { AppendItem } from '../as-node/src/ledger/types.ts';

const TOTAL = Number(process.env.BENCH_TXS ?? (process.env.BENCH_QUICK === '1' ? 20_000 : 100_000));
const BATCH = 500;
const TX_BYTES = 1500;

const ueKey = (i: number): Uint8Array => new Uint8Array(createHash('sha256').update(`ue-${i}`).digest());
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'divs-ledger-bench-'));
  const path = join(dir, 'ledger.db');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const opts = { path, ledgerId: 'divs-bench', signer: nodeSigner(privateKey), signerName: 'as-bench', certChain: [randomBytes(600)] };
  try {
    let ledger = await LocalLedger.open(opts);
    const payload = randomBytes(TX_BYTES);
    const batch = (from: number, keyOf: (i: number) => number): AppendItem[] =>
      Array.from({ length: BATCH }, (_, k) => {
        const tx = new Uint8Array(payload);
        new DataView(tx.buffer).setUint32(0, from + k); // distinct txs
        return { tx, ueKey: ueKey(keyOf(from + k)) };
      });

    // Only the append() calls are timed (building the items is the caller's cost); CPU time
    // is reported beside wall time because this machine is shared.
    const cpuMs = (): number => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    const timed = async (items: AppendItem[]): Promise<[number, number]> => {
      const w = performance.now();
      const c = cpuMs();
      await ledger.append(items);
      return [performance.now() - w, cpuMs() - c];
    };

    // 1. registrations
    let wall = 0;
    let cpu = 0;
    let winWall = 0;
    const windows: number[] = [];
    for (let done = 0; done < TOTAL; done += BATCH) {
      const [w, c] = await timed(batch(done, (i) => i));
      wall += w;
      cpu += c;
      winWall += w;
      if ((done + BATCH) % 10_000 === 0) {
        windows.push((10_000 / winWall) * 1000);
        winWall = 0;
      }
    }
    console.log(`append (new UE keys): ${fmt((TOTAL / wall) * 1000)} tx/s wall, ${fmt((TOTAL / cpu) * 1000)} tx per CPU-second, over ${fmt(TOTAL)} txs in batches of ${BATCH} (target ≥ 10,000)`);
    console.log(`  per 10k window (wall): ${windows.map(fmt).join(', ')} tx/s`);

    // 2. updates of existing keys
    const UPD = Math.min(TOTAL, 20_000);
    wall = 0;
    cpu = 0;
    for (let done = 0; done < UPD; done += BATCH) {
      const [w, c] = await timed(batch(TOTAL + done, (i) => (i * 7919) % TOTAL));
      wall += w;
      cpu += c;
    }
    console.log(`append (updates of existing UE keys): ${fmt((UPD / wall) * 1000)} tx/s wall, ${fmt((UPD / cpu) * 1000)} tx per CPU-second, over ${fmt(UPD)} txs`);
    // 4. proofs
    const size = ledger.info().size;
    const N = 2000;
    let t0 = performance.now();
    for (let i = 0; i < N; i++) ledger.inclusionProof((i * 104_729) % size);
    const inc = (performance.now() - t0) / N;
    t0 = performance.now();
    for (let i = 0; i < N; i++) ledger.latestProof(ueKey((i * 15_485_863) % TOTAL));
    const lat = (performance.now() - t0) / N;
    t0 = performance.now();
    for (let i = 1; i <= 200; i++) ledger.consistencyProof(Math.floor((size * i) / 201), size);
    const con = (performance.now() - t0) / 200;
    console.log(`proofs: inclusion ${(inc * 1000).toFixed(0)} µs, latest-version ${(lat * 1000).toFixed(0)} µs, consistency ${(con * 1000).toFixed(0)} µs (mean)`);
    ledger.close();

    // 3. reopen = full re-verification
    t0 = performance.now();
    const c0 = cpuMs();
    ledger = await LocalLedger.open(opts);
    const openSecs = (performance.now() - t0) / 1000;
    const openCpu = (cpuMs() - c0) / 1000;
    const info = ledger.info();
    ledger.close();
    const bytes = statSync(path).size + (statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0);
    console.log(`open with full re-verification: ${openSecs.toFixed(2)} s wall, ${openCpu.toFixed(2)} s CPU, for ${fmt(info.size)} txs in ${fmt(info.height)} blocks`);
    console.log(`(load average during the run: ${loadavg().map((l) => l.toFixed(2)).join(' ')}, ${cpus().length} CPUs)`);
    console.log(`database: ${(bytes / 2 ** 20).toFixed(1)} MiB (${fmt(bytes / info.size)} bytes/tx, tx payload ${TX_BYTES})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
