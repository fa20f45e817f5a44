/**
 * Benchmark of the consortium ledger (a plain script, not a test): 3 AS nodes of 3 operators
 * (one process each, a ConsortiumLedger with its own SQLite copy) + 3 etcd members, all on
 * this machine. Each node appends pre-signed endorsements (real AS signatures, ~1.2 KiB txs
 * with the AS certificate chain) in batches, several appends in flight; every node validates
 * and stores every block. As in an AS node, the signatures a node made are noted
 * (OwnSignatures): it does not verify its own before proposing them, the two others do.
 *
 * Prints:
 * - endorsements/s committed on ALL nodes (first submission → last node stored the last
 *   block), target ≥ 3,000/s;
 * - commit latency p50/p99: submission → the block is stored on all three nodes (and on the
 *   submitting node alone), measured in a second phase, an open loop at the target rate of
 *   3,000/s (both targets at once) — or at half the measured throughput when that is below the
 *   target (at saturation latency is only queueing) — target p99 ≤ 500 ms;
 * - limits measured in the same run, with ratios: a single local SQLite ledger appending the
 *   same txs (each consortium node must store every tx too, plus validate it), and OpenSSL
 *   P-256 verifications per core (every node verifies every endorsement's AS signature once).
 *
 * Run: `node_modules/.bin/node bench/consortium.bench.ts` (env BENCH_TXS = txs per node,
 * default 6000; BENCH_BATCH, default 200; BENCH_INFLIGHT appends in flight per node, default 4;
 * BENCH_OFFER tx/s offered in phase 2 instead of the rule above;
 * BENCH_WARMUP endorsements per node appended before phase 1 and not measured, default 1500 —
 * a server runs for days, so the figure is for code V8 has compiled; BENCH_MARK_PHASES=1
 * prints `phase 1: go` on stderr when phase 1 starts, for an outside profiler).
 * Needs /usr/bin/etcd (Debian's etcd-server).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { RegistrationParams, SignatureSuite } from '../proto/gen/divs/v1/common.ts';
import { importPrivateKey, nodeSigner, OwnSignatures } from '../protocol/src/suites.ts';
import { endorsementFor, endorsementSigningInput, ledgerTxFor } from '../as-node/src/endorse.ts';
import { EtcdCluster, etcdInstalled } from '../as-node/src/ledger/consortium/etcd-cluster.ts';
import { ConsortiumLedger } from '../as-node/src/ledger/consortium/ledger.ts';
import { CONSORTIUM_PROPOSER } from '../as-node/src/ledger/consortium/block.ts';
import { LocalLedger } from '../as-node/src/ledger/local.ts';
import { Membership } from '../as-node/src/governance/membership.ts';
import { createLocalConsortium, writeLocalConsortium, type LocalNode } from '../as-node/src/governance/local-consortium.ts';
import { genesisTx } from '../as-node/src/governance/config-update.ts';
import { syntheticIdentity } from '../cef/src/fixtures.ts';
import { ContractState, EndorsementReason } from '../proto/gen/divs/v1/common.ts';
import { cryptoRates, percentile, report, CORES } from './common.ts';
import { chainFromPem } from '../protocol/src/pki.ts';
import { createLogger } from '../platform/src/log.ts';

const TXS = Number(process.env.BENCH_TXS ?? 6000);
const BATCH = Number(process.env.BENCH_BATCH ?? 200);
const INFLIGHT = Number(process.env.BENCH_INFLIGHT ?? 4);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 1500);
/** The throughput target; phase 2 measures latency at this rate when phase 1 reached it. */
const TARGET_RATE = 3000;
const LEDGER = 'divs-bench-consortium';
const NODES = ['as-a', 'as-b', 'as-c'];

const now = (): number => performance.timeOrigin + performance.now();

/**
 * `n` endorsement txs signed by the node's AS key, with distinct UE keys (index range `base`…);
 * with `own`, the signatures are noted there, as the AS node's crypto pool notes those of the
 * endorsements it signs.
 */
function makeTxs(node: { name: string; keyPem: string; certChain: Uint8Array[] }, n: number, base: number, own?: OwnSignatures): { tx: Uint8Array; ueKey: Uint8Array }[] {
  const signer = nodeSigner(importPrivateKey(node.keyPem), own);
  const t = Date.now();
  return Array.from({ length: n }, (_, i) => {
    // the ledger does not re-check UE self-signatures (the endorsing AS did): a random
    // 65-byte point and signature give txs of the real size without 1000s of key pairs
    const pk = new Uint8Array(65);
    pk.set(randomBytes(64), 1);
    pk[0] = 4;
    const params = RegistrationParams.encode({
      identity: syntheticIdentity(base + i),
      publicKey: { suite: SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256, key: pk },
      suites: [SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256],
      createdAtMs: t,
    }).finish();
    const ueKey = new Uint8Array(createHash('sha256').update(pk).digest());
    const body = endorsementFor({
      registration: { params, signature: randomBytes(64) },
      status: {
        plmnId: '26201',
        operatorName: node.name,
        contractId: `C-${base + i}`,
        state: ContractState.CONTRACT_STATE_ACTIVE,
        startTimeMs: t - 3_600_000,
        endTimeMs: t + 365 * 86_400_000,
        terminationTimeMs: 0,
        owner: 'Bench Utility',
        geoRestrictions: ['DE'],
        terminalType: 'smart-meter',
        identity: syntheticIdentity(base + i),
        revision: 1,
      },
      version: 1,
      reason: EndorsementReason.ENDORSEMENT_REASON_REGISTRATION,
      asId: node.name,
      ueKey,
      nowMs: t,
    });
    return { tx: ledgerTxFor(body, signer.sign(endorsementSigningInput(body)) as Uint8Array, node.certChain, t), ueKey };
  });
}

// ---------------------------------------------------------------- child: one AS node

interface Sample {
  submitted: number;
  local: number;
  height: number;
  n: number;
}

/** Parent → child messages; `finish` with count 0 also stops the height tracker. */
type Msg = { cmd: string; height?: number; count?: number; intervalMs?: number; batch?: number };

async function child(): Promise<void> {
  const [, , , index, dir, endpoints] = process.argv;
  const name = NODES[Number(index)] as string;
  const send = (m: unknown): void => void process.send?.(m);
  const genesis = Membership.fromGenesisFile(join(dir as string, 'consortium', 'genesis.json'));
  const certPem = readFileSync(join(dir as string, 'consortium', 'nodes', `${name}.pem`), 'utf8');
  const keyPem = readFileSync(join(dir as string, 'consortium', 'nodes', `${name}.key`), 'utf8');
  const certChain = chainFromPem(certPem);
  const own = new OwnSignatures();
  const ledger = await ConsortiumLedger.open({
    ownSignatures: own,
    path: join(dir as string, `${name}.db`),
    genesis,
    nodeName: name,
    signer: nodeSigner(importPrivateKey(keyPem)),
    certChain,
    etcd: { endpoints: (endpoints as string).split(',') },
    ...(process.env.BENCH_DEBUG === '1' ? { log: createLogger(name, 'debug') } : {}),
  });
  const base = 1_000_000 * (Number(index) + 1);
  let txs = makeTxs({ name, keyPem, certChain }, TXS, base, own);
  let warm = makeTxs({ name, keyPem, certChain }, WARMUP, base + 500_000, own);
  /** Appends `list` in batches with INFLIGHT appends always waiting; the samples of each. */
  const closedLoop = async (list: { tx: Uint8Array; ueKey: Uint8Array }[]): Promise<Sample[]> => {
    const samples: Sample[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < list.length) {
        const batch = list.slice(next, next + BATCH);
        next += BATCH;
        const submitted = now();
        const entries = await ledger.append(batch);
        samples.push({ submitted, local: now(), height: entries[0]?.blockHeight ?? -1, n: batch.length });
      }
    };
    await Promise.all(Array.from({ length: INFLIGHT }, worker));
    return samples;
  };
  // when each height was stored here (wall clock, comparable across processes on one machine)
  const times = new Map<number, number>();
  let tracking = true;
  const track = async (): Promise<void> => {
    for (let h = ledger.info().height + 1; tracking; h++) {
      await ledger.waitFor({ height: h }, 600_000).catch(() => undefined);
      const t = now();
      for (let k = h; k <= ledger.info().height; k++) if (!times.has(k - 1)) times.set(k - 1, t);
      h = Math.max(h, ledger.info().height);
    }
  };
  const fail = (e: unknown): void => send({ cmd: 'error', error: String(e) });
  process.on('message', (m: Msg) => {
    if (m.cmd === 'warm') {
      // unmeasured: the same appends, so that phase 1 sees compiled code and a grown tree
      void closedLoop(warm).then(() => {
        warm = [];
        send({ cmd: 'warmed', height: ledger.info().height });
      }, fail);
    } else if (m.cmd === 'settle') {
      void ledger.waitFor({ height: m.height as number }, 120_000).then(() => send({ cmd: 'settled' }), fail);
    } else if (m.cmd === 'go') {
      // phase 1, throughput: a closed loop, INFLIGHT appends always waiting
      const cpu0 = process.cpuUsage();
      void track();
      void closedLoop(txs).then((samples) => {
        const cpu = process.cpuUsage(cpu0);
        send({ cmd: 'done', samples, height: ledger.info().height, cpuMs: (cpu.user + cpu.system) / 1000 });
      }, fail);
    } else if (m.cmd === 'prepare') {
      txs = makeTxs({ name, keyPem, certChain }, m.count as number, base + TXS, own);
      send({ cmd: 'prepared' });
    } else if (m.cmd === 'go2') {
      // phase 2, latency: an open loop at a fixed rate below capacity
      const samples: Sample[] = [];
      const pending: Promise<void>[] = [];
      let next = 0;
      const timer = setInterval(() => {
        if (next >= txs.length) {
          clearInterval(timer);
          void Promise.all(pending).then(() => send({ cmd: 'done2', samples, height: ledger.info().height }), fail);
          return;
        }
        const batch = txs.slice(next, next + (m.batch as number));
        next += batch.length;
        const submitted = now();
        pending.push(ledger.append(batch).then((entries) => void samples.push({ submitted, local: now(), height: entries[0]?.blockHeight ?? -1, n: batch.length })));
      }, m.intervalMs);
    } else if (m.cmd === 'finish') {
      void ledger.waitFor({ height: m.height as number }, 120_000).then(async () => {
        // let the tracker record the last heights; any it missed count as stored now (later
        // than they were: the figures err low)
        await new Promise((r) => setImmediate(r));
        const t = now();
        for (let k = 0; k < ledger.info().height; k++) if (!times.has(k) && k >= Math.min(...times.keys())) times.set(k, t);
        if (m.count === 0) tracking = false;
        send({ cmd: 'times', times: [...times], info: { height: ledger.info().height, size: ledger.info().size, root: Buffer.from(ledger.info().rootHash).toString('hex') }, refusals: ledger.refusals().length });
      }, fail);
    } else if (m.cmd === 'exit') {
      ledger.close();
      process.exit(0);
    }
  });
  await ledger.waitFor({ height: 1 }, 30_000);
  send({ cmd: 'ready' });
}

// ---------------------------------------------------------------- parent

/** CPU time (user + system, ms) the etcd members used so far, from /proc. */
function etcdCpuMs(etcd: EtcdCluster): number {
  let ms = 0;
  for (const m of etcd.members) {
    try {
      const f = readFileSync(`/proc/${m.proc?.pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      ms += ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, in clock ticks (100/s)
    } catch {
      // not Linux, or the member is gone: no figure
    }
  }
  return ms;
}

function once<T>(c: ChildProcess, cmd: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const on = (m: { cmd: string; error?: string }): void => {
      if (m.cmd === 'error') reject(new Error(m.error));
      if (m.cmd !== cmd) return;
      c.off('message', on);
      resolve(m as T);
    };
    c.on('message', on);
    c.once('exit', (code) => reject(new Error(`child exited (${code}) before ${cmd}`)));
  });
}

async function localLimit(dir: string, node: LocalNode): Promise<number> {
  const txs = makeTxs(node, TXS, 9_000_000);
  const clock = { t: Date.now() };
  const store = await LocalLedger.open({ path: join(dir, 'local.db'), ledgerId: LEDGER, signer: nodeSigner(importPrivateKey(node.keyPem)), signerName: CONSORTIUM_PROPOSER, certChain: node.certChain, now: () => clock.t });
  try {
    await store.append([{ tx: genesisTx(Membership.fromGenesisFile(join(dir, 'consortium', 'genesis.json'))) }]);
    const t0 = performance.now();
    for (let i = 0; i < txs.length; i += BATCH) await store.append(txs.slice(i, i + BATCH));
    return (txs.length * 1000) / (performance.now() - t0);
  } finally {
    store.close();
  }
}

const ms = (v: number): string => `${v.toFixed(0)} ms`;

async function parent(): Promise<void> {
  if (!etcdInstalled()) {
    console.error('bench/consortium: /usr/bin/etcd not found (apt-get install etcd-server)');
    process.exit(2);
  }
  const dir = mkdtempSync(join(tmpdir(), 'divs-bench-consortium-'));
  const etcd = await EtcdCluster.start();
  const children: ChildProcess[] = [];
  try {
    const c = await createLocalConsortium({ ledgerId: LEDGER, orgs: NODES.map((n, i) => ({ id: `op-${'abc'[i]}`, name: `Operator ${'ABC'[i]}`, nodes: [n] })) });
    writeLocalConsortium(c, join(dir, 'consortium'));
    const limits = cryptoRates();
    const local = await localLimit(dir, c.nodes[0] as LocalNode);
    console.log(`machine: ${CORES} cores; OpenSSL P-256 verify ${Math.round(limits.verifyPerSec).toLocaleString('en-US')}/s per core; one local SQLite ledger appends ${Math.round(local).toLocaleString('en-US')} tx/s (batches of ${BATCH})`);
    console.log(`phase 1 (throughput): 3 nodes × ${TXS.toLocaleString('en-US')} endorsements, batches of ${BATCH}, ${INFLIGHT} appends in flight per node; 3 etcd members; after ${(3 * WARMUP).toLocaleString('en-US')} warm-up endorsements`);

    for (let i = 0; i < NODES.length; i++) {
      const ch = fork(new URL(import.meta.url).pathname, ['--child', String(i), dir, etcd.endpoints.join(',')], { execPath: process.execPath, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(ch);
    }
    await Promise.all(children.map((ch) => once(ch, 'ready')));
    // the height phase 1 starts at: 1 (genesis) or after the warm-up blocks
    let h0 = 1;
    // warm-up (not measured): a server runs for days, so phase 1 measures compiled code, not
    // V8 compiling it; every node then stores every warm-up block before phase 1 starts
    if (WARMUP > 0) {
      for (const ch of children) ch.send({ cmd: 'warm' });
      const warmed = await Promise.all(children.map((ch) => once<{ height: number }>(ch, 'warmed')));
      h0 = Math.max(...warmed.map((w) => w.height));
      for (const ch of children) ch.send({ cmd: 'settle', height: h0 });
      await Promise.all(children.map((ch) => once(ch, 'settled')));
    }
    const etcdCpu0 = etcdCpuMs(etcd);
    const start = now();
    for (const ch of children) ch.send({ cmd: 'go' });
    // a mark for an outside profiler (perf record -a) to start on
    if (process.env.BENCH_MARK_PHASES === '1') console.error('phase 1: go');
    const done = await Promise.all(children.map((ch) => once<{ samples: Sample[]; height: number; cpuMs: number }>(ch, 'done')));
    const h1 = Math.max(...done.map((d) => d.height));
    const etcdCpu = etcdCpuMs(etcd) - etcdCpu0;

    // phase 2: an open loop at the target rate (half the measured rate if that is below it), small batches
    const txs1 = done.reduce((s, d) => s + d.samples.reduce((a, x) => a + x.n, 0), 0);
    for (const ch of children) ch.send({ cmd: 'finish', height: h1 });
    const mid = await Promise.all(children.map((ch) => once<{ times: [number, number][] }>(ch, 'times')));
    const end1 = Math.max(...mid.map((f) => new Map(f.times).get(h1 - 1) ?? Infinity));
    const rate = (txs1 * 1000) / (end1 - start);
    const offered = Number(process.env.BENCH_OFFER ?? 0) || (rate >= TARGET_RATE ? TARGET_RATE : Math.max(30, Math.round(rate / 2)));
    const offeredAs = process.env.BENCH_OFFER ? 'BENCH_OFFER' : offered === TARGET_RATE ? 'the target rate' : 'half the measured rate';
    const batch2 = 20;
    const perNode = offered / 3;
    const count2 = Math.max(batch2 * 10, Math.round(perNode * 6)); // ~6 s
    for (const ch of children) ch.send({ cmd: 'prepare', count: count2 });
    await Promise.all(children.map((ch) => once(ch, 'prepared')));
    for (const ch of children) ch.send({ cmd: 'go2', intervalMs: Math.max(1, Math.round((batch2 * 1000) / perNode)), batch: batch2 });
    const done2 = await Promise.all(children.map((ch) => once<{ samples: Sample[]; height: number }>(ch, 'done2')));
    const h2 = Math.max(...done2.map((d) => d.height));
    for (const ch of children) ch.send({ cmd: 'finish', height: h2, count: 0 });
    const finished = await Promise.all(children.map((ch) => once<{ times: [number, number][]; info: { height: number; size: number; root: string }; refusals: number }>(ch, 'times')));
    const perNodeTimes = finished.map((f) => new Map(f.times));
    const allAt = (h: number): number => Math.max(...perNodeTimes.map((m) => m.get(h) ?? Infinity));
    const roots = new Set(finished.map((f) => f.info.root));
    const lat = (ds: { samples: Sample[] }[]) => ds.flatMap((d) => d.samples.map((x) => allAt(x.height) - x.submitted)).sort((a, b) => a - b);
    const latLocal = (ds: { samples: Sample[] }[]) => ds.flatMap((d) => d.samples.map((x) => x.local - x.submitted)).sort((a, b) => a - b);

    console.log(`all nodes at height ${finished[0]?.info.height}, ${finished[0]?.info.size.toLocaleString('en-US')} txs, same root: ${roots.size === 1}, refused blocks: ${finished.reduce((s, f) => s + f.refusals, 0)}`);
    report('endorsements committed on all 3 nodes', rate, 'tx/s', { limit: local / 3, limitName: 'one local ledger ÷ 3 (every node stores every tx)', target: '≥ 3,000 tx/s' });
    report('  same, against verification', rate, 'tx/s', { limit: (limits.verifyPerSec * CORES) / 3, limitName: 'P-256 verify × cores ÷ 3 (every node verifies every tx)' });
    const l1 = lat(done);
    console.log(`  phase 1 latency (saturated, ${INFLIGHT * BATCH * 3} txs queued): p50 ${ms(percentile(l1, 50))}, p99 ${ms(percentile(l1, 99))}; ${h1 - h0} blocks, ${(txs1 / Math.max(1, h1 - h0)).toFixed(0)} txs per block`);
    const nodeCpu = done.reduce((a, d) => a + d.cpuMs, 0);
    const wall = end1 - start;
    console.log(`  CPU in phase 1 over ${(wall / 1000).toFixed(1)} s: AS nodes ${(nodeCpu / 1000).toFixed(1)} s (${((nodeCpu * 1000) / txs1).toFixed(0)} µs per tx, all three), etcd ${(etcdCpu / 1000).toFixed(1)} s; ${(((nodeCpu + etcdCpu) / wall / CORES) * 100).toFixed(0)}% of ${CORES} cores`);
    const l2 = lat(done2);
    const l2local = latLocal(done2);
    const txs2 = done2.reduce((s, d) => s + d.samples.reduce((a, x) => a + x.n, 0), 0);
    console.log(`phase 2 (latency): ${offered.toLocaleString('en-US')} tx/s offered (${offeredAs}), batches of ${batch2}, ${txs2.toLocaleString('en-US')} txs in ${h2 - h1} blocks`);
    console.log(`  commit latency, submission → stored on all 3 nodes: p50 ${ms(percentile(l2, 50))}, p99 ${ms(percentile(l2, 99))} (target p99 ≤ 500 ms)`);
    console.log(`  commit latency, submission → stored on the submitting node: p50 ${ms(percentile(l2local, 50))}, p99 ${ms(percentile(l2local, 99))}`);
    if (roots.size !== 1) process.exitCode = 1;
  } finally {
    for (const ch of children) ch.send({ cmd: 'exit' });
    await Promise.all(children.map((ch) => (ch.exitCode === null ? new Promise((r) => ch.once('exit', r)) : undefined)));
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') await child();
else await parent();
