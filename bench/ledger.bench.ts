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
import { tmpdir } from 'node:os';
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

    // 1. registrations
    let t0 = performance.now();
    let windowStart = t0;
    const windows: number[] = [];
    for (let done = 0; done < TOTAL; done += BATCH) {
      await ledger.append(batch(done, (i) => i));
      if ((done + BATCH) % 10_000 === 0) {
        const now = performance.now();
        windows.push((10_000 / (now - windowStart)) * 1000);
        windowStart = now;
      }
    }
    const regSecs = (performance.now() - t0) / 1000;
    console.log(`append (new UE keys): ${fmt(TOTAL / regSecs)} tx/s over ${fmt(TOTAL)} txs in batches of ${BATCH} (target ≥ 10,000)`);
    console.log(`  per 10k window: ${windows.map(fmt).join(', ')} tx/s`);

    // 2. updates of existing keys
    const UPD = Math.min(TOTAL, 20_000);
    t0 = performance.now();
    for (let done = 0; done < UPD; done += BATCH) await ledger.append(batch(TOTAL + done, (i) => (i * 7919) % TOTAL));
    console.log(`append (updates of existing UE keys): ${fmt(UPD / ((performance.now() - t0) / 1000))} tx/s over ${fmt(UPD)} txs`);

    // 4. proofs
    const size = ledger.info().size;
    const N = 2000;
    t0 = performance.now();
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
    ledger = await LocalLedger.open(opts);
    const openSecs = (performance.now() - t0) / 1000;
    const info = ledger.info();
    ledger.close();
    const bytes = statSync(path).size + (statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0);
    console.log(`open with full re-verification: ${openSecs.toFixed(2)} s for ${fmt(info.size)} txs in ${fmt(info.height)} blocks (${fmt(info.size / openSecs)} tx/s)`);
    console.log(`database: ${(bytes / 2 ** 20).toFixed(1)} MiB (${fmt(bytes / info.size)} bytes/tx, tx payload ${TX_BYTES})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
