/**
 * Benchmark (c): records ingested per second over the gRPC `Ingest` stream [E2E-2] [GEN-8].
 * Target: >= 50,000 records/s.
 *
 * A real gateway process (own data dir, fsync on every commit by default) receives records
 * signed by the UE SDK from this process over gRPC bidirectional streams (frames of records,
 * a window of frames in flight, one ack per record). Timed from the first frame to the last
 * ack: a record counts only once the gateway acknowledged it as durably stored. Records are
 * signed and encoded before timing. Both processes share this machine.
 *
 * Run: `node bench/gateway-ingest.bench.ts [--records 200000] [--streams 2] [--frame 512]
 *   [--window 16] [--durability full|normal]`
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AckStatus } from '../proto/gen/divs/v1/gateway.ts';
import { createRootCa } from '../protocol/src/pki.ts';
import { startService } from '../platform/src/spawn.ts';
import { IngestClient } from '../gateway/src/client.ts';
import { generateChains } from '../gateway/test/fixtures.ts';

const TARGET = 50_000;

/** CPU seconds (user + system) a process has used, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { records: { type: 'string' }, streams: { type: 'string' }, frame: { type: 'string' }, window: { type: 'string' }, durability: { type: 'string' } },
  });
  const wanted = Number(values.records ?? 200_000);
  const streams = Number(values.streams ?? 2);
  const frame = Number(values.frame ?? 512);
  const window = Number(values.window ?? 16);
  const durability = values.durability === 'normal' ? 'normal' : 'full';
  const cpus = availableParallelism();

  const dir = mkdtempSync(join(tmpdir(), 'divs-bench-ingest-'));
  try {
    const ca = await createRootCa({ name: 'bench root', validityDays: 10 });
    writeFileSync(join(dir, 'ca.pem'), ca.certPem);
    writeFileSync(join(dir, 'ca.key'), ca.keyPem);
    writeFileSync(
      join(dir, 'gw.json'),
      JSON.stringify({ dataDir: join(dir, 'gw'), pki: { enroll: { caCert: join(dir, 'ca.pem'), caKey: join(dir, 'ca.key') } }, durability, verify: { threads: 0 }, httpPort: null }),
    );
    let t = performance.now();
    const ues = 32;
    const chains = await generateChains({ uesPerThread: ues / 2, recordsPerUe: Math.ceil(wanted / ues), batchSize: 256, threads: 2 });
    // each stream sends the records of its own UEs, in sequence order
    const perStream: Uint8Array[][] = Array.from({ length: streams }, () => []);
    chains.forEach((c, i) => {
      for (let k = 0; k + 1 < c.offsets.length; k++) (perStream[i % streams] as Uint8Array[]).push(c.data.subarray(c.offsets[k] as number, c.offsets[k + 1] as number));
    });
    const total = perStream.reduce((a, s) => a + s.length, 0);
    console.log(`generated ${total} records (${ues} UEs) in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    const gw = await startService(['gateway/src/main.ts', '--config', join(dir, 'gw.json')]);
    try {
      const clients = perStream.map(() => new IngestClient({ address: `127.0.0.1:${gw.port}`, channel: 'bench', frameSize: frame, window }));
      // warm-up: one small frame per stream (connections, JIT)
      await Promise.all(clients.map((c, i) => c.send((perStream[i] as Uint8Array[]).splice(0, 64))));
      const timed = perStream.reduce((a, s) => a + s.length, 0);
      const server0 = cpuSeconds(gw.pid);
      const client0 = process.cpuUsage();
      t = performance.now();
      const acks = await Promise.all(clients.map((c, i) => c.send(perStream[i] as Uint8Array[])));
      const s = (performance.now() - t) / 1000;
      const clientCpu = process.cpuUsage(client0);
      const serverCpu = cpuSeconds(gw.pid) - server0;
      const stored = acks.flat().filter((a) => a.status === AckStatus.ACK_STATUS_STORED).length;
      if (stored !== timed) throw new Error(`${timed - stored} records not stored`);
      for (const c of clients) c.close();
      const rate = timed / s;
      console.log(`${timed} records in ${s.toFixed(2)} s over ${streams} streams (frames of ${frame}, window ${window}, durability ${durability})`);
      console.log(`CPU per record: gateway ${((serverCpu * 1e6) / timed).toFixed(1)} µs, sender ${((clientCpu.user + clientCpu.system) / timed).toFixed(1)} µs (${cpus} cores shared by both, load average ${loadavg()[0]?.toFixed(1)})`);
      console.log('');
      console.log(`ingest records/s over gRPC (acknowledged = durably stored): ${Math.round(rate).toLocaleString('en')}   target >= ${TARGET.toLocaleString('en')}   ${rate >= TARGET ? 'MET' : 'NOT MET'}`);
    } finally {
      await gw.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
