import { VerifierCore } from '../gateway/src/verify/core.ts';
import { fixtureUes, encodeRecords, reading } from '../gateway/test/fixtures.ts';
import { packRecords } from '../gateway/src/verify/task.ts';
const ues = await fixtureUes(4);
const recs: Uint8Array[] = [];
const segs: number[] = [];
for (const u of ues) {
  segs.push(recs.length);
  for (let b = 0; b < 16; b++) {
    const batch = await u.signer.signBatch(Array.from({ length: 1024 }, (_, i) => ({ payload: reading(i), timestampMs: Date.UTC(2026, 0, 2) + i })), 'application/json');
    recs.push(...encodeRecords(batch));
  }
}
const core = new VerifierCore();
const packs = Array.from({ length: 12 }, () => packRecords(recs));
for (const p of packs) {
  const c0 = process.cpuUsage(); const t = performance.now();
  core.run({ id: 1, ...p, segments: new Uint32Array(segs), windows: ues.map((u) => u.window) });
  const dt = performance.now() - t; const c = process.cpuUsage(c0);
  console.log('wall rec/s', Math.round(recs.length / (dt / 1000)), 'cpu rec/s', Math.round(recs.length / ((c.user + c.system) / 1e6)));
}
