import { fixtureUes, encodeRecords, reading } from '../gateway/test/fixtures.ts';
import { packRecords } from '../gateway/src/verify/task.ts';
import { RecordFields, scanBody, scanSignedRecord } from '../gateway/src/verify/wire.ts';
const ues = await fixtureUes(1);
const recs: Uint8Array[] = [];
for (let b = 0; b < 32; b++) recs.push(...encodeRecords(await ues[0]!.signer.signBatch(Array.from({ length: 1024 }, (_, i) => ({ payload: reading(i), timestampMs: Date.UTC(2026, 0, 2) + i })), 'application/json')));
const p = packRecords(recs);
const f = new RecordFields();
const n = recs.length;
for (let rep = 0; rep < 10; rep++) {
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) { scanSignedRecord(p.data, p.offsets[i]!, p.offsets[i + 1]! - p.offsets[i]!, f); }
  const c1 = process.cpuUsage(c0);
  const c2 = process.cpuUsage();
  for (let i = 0; i < n; i++) { scanBody(p.data, 10 + (p.offsets[i]!) + 2, 216, f); }
  const c3 = process.cpuUsage(c2);
  console.log('ns/rec outer', ((c1.user + c1.system) * 1000 / n).toFixed(0), 'body', ((c3.user + c3.system) * 1000 / n).toFixed(0));
}
