import { VerifierCore } from '../gateway/src/verify/core.ts';
import { fixtureUes, encodeRecords, reading } from '../gateway/test/fixtures.ts';
import { packRecords } from '../gateway/src/verify/task.ts';
const ues = await fixtureUes(4);
let t = performance.now();
const recs: Uint8Array[] = [];
const segs: number[] = [];
for (const u of ues) {
  segs.push(recs.length);
  for (let b = 0; b < 16; b++) {
    const batch = await u.signer.signBatch(Array.from({ length: 1024 }, (_, i) => ({ payload: reading(i), timestampMs: Date.UTC(2026, 0, 2) + i })), 'application/json');
    recs.push(...encodeRecords(batch));
  }
}
console.log('gen ms', performance.now() - t, recs.length, 'avg bytes', recs.reduce((a, r) => a + r.length, 0) / recs.length);
const core = new VerifierCore();
for (let rep = 0; rep < 15; rep++) {
  const p = packRecords(recs);
  t = performance.now();
  const r = core.run({ id: 1, ...p, segments: new Uint32Array(segs), windows: ues.map((u) => u.window) });
  const dt = performance.now() - t;
  console.log('records/s', recs.length / (dt / 1000), r.stats.digests / recs.length, 'digests/rec', r.status.every((s) => s === 0));
}
