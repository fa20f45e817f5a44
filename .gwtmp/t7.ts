import { VerifierPool } from '../gateway/src/verify/pool.ts';
import { fixtureUes, encodeRecords, reading } from '../gateway/test/fixtures.ts';
import { packRecords, type VerifyTask } from '../gateway/src/verify/task.ts';
const ues = await fixtureUes(8);
let t = performance.now();
const perUe: Uint8Array[][] = [];
for (const u of ues) {
  const recs: Uint8Array[] = [];
  for (let b = 0; b < 16; b++) recs.push(...encodeRecords(await u.signer.signBatch(Array.from({ length: 1024 }, (_, i) => ({ payload: reading(i), timestampMs: Date.UTC(2026, 0, 2) + i })), 'application/json')));
  perUe.push(recs);
}
console.log('gen', performance.now() - t);
const pool = new VerifierPool({ threads: 2 });
const windows = ues.map((u) => u.window);
const mk = (): VerifyTask[] => perUe.map((recs, k) => { const p = packRecords(recs); return { id: k, ...p, segments: new Uint32Array([0]), windows }; });
// warm
await Promise.all(mk().slice(0, 2).map((x) => pool.verify(x)));
for (let rep = 0; rep < 4; rep++) {
  const tasks = [...mk(), ...mk()];
  const total = tasks.reduce((a, x) => a + x.offsets.length - 1, 0);
  t = performance.now();
  const rs = await Promise.all(tasks.map((x) => pool.verify(x)));
  const dt = performance.now() - t;
  console.log('records/s', Math.round(total / (dt / 1000)), 'all valid', rs.every((r) => r.status.every((s) => s === 0)), 'worker ms', rs.map((r) => Math.round(r.stats.ms)).join(','));
}
await pool.close();
