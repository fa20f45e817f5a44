import { fixtureUes, encodeRecords, reading } from '../gateway/test/fixtures.ts';
import { packRecords } from '../gateway/src/verify/task.ts';
import { RecordFields, scanBody, scanSignedRecord } from '../gateway/src/verify/wire.ts';
import { Sha256Many } from '../gateway/src/verify/sha256x4.ts';
const ues = await fixtureUes(1);
const recs: Uint8Array[] = [];
for (let b = 0; b < 32; b++) recs.push(...encodeRecords(await ues[0]!.signer.signBatch(Array.from({ length: 1024 }, (_, i) => ({ payload: reading(i), timestampMs: Date.UTC(2026, 0, 2) + i })), 'application/json')));
const p = packRecords(recs);
const f = new RecordFields();
const n = recs.length;
for (let rep = 0; rep < 5; rep++) {
  let t = performance.now();
  for (let i = 0; i < n; i++) { scanSignedRecord(p.data, p.offsets[i]!, p.offsets[i + 1]! - p.offsets[i]!, f); scanBody(p.data, f.bodyOff, f.bodyLen, f); }
  const scan = (performance.now() - t) * 1e6 / n;
  const h = Sha256Many.create();
  t = performance.now();
  const base = h.write(p.data);
  const w = (performance.now() - t) * 1e6 / n;
  t = performance.now();
  const at = h.alloc(32 * n), lv = h.alloc(32 * n);
  for (let i = 0; i < n; i++) { scanSignedRecord(p.data, p.offsets[i]!, p.offsets[i + 1]! - p.offsets[i]!, f); h.jobInto(at + 32 * i, -1, base + f.bodyOff, f.bodyLen); h.jobInto(lv + 32 * i, 0, base + f.bodyOff, f.bodyLen); }
  const q = (performance.now() - t) * 1e6 / n;
  t = performance.now();
  h.run();
  const hr = (performance.now() - t) * 1e6 / n;
  console.log('ns/rec scan', scan.toFixed(0), 'write', w.toFixed(0), 'queue', q.toFixed(0), 'hash2', hr.toFixed(0), 'bodylen', f.bodyLen);
}
