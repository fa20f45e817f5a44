import { VerifierCore } from '../gateway/src/verify/core.ts';
import { fixtureUes, encodeRecords, reading } from '../gateway/test/fixtures.ts';
import { packRecords, OUTCOMES } from '../gateway/src/verify/task.ts';
import { FINDING_NAMES } from '../gateway/src/verify/chain.ts';
const ues = await fixtureUes(3);
const single = await Promise.all(Array.from({ length: 5 }, (_, i) => ues[0]!.signer.sign(reading(i), 'application/json', Date.UTC(2026, 0, 1) + i)));
const batch = await ues[1]!.signer.signBatch(Array.from({ length: 37 }, (_, i) => ({ payload: reading(i), timestampMs: Date.UTC(2026, 0, 2) + i })), 'application/json');
const all = [...single, ...batch];
const enc = encodeRecords(all);
// tamper record 2 of single, record 5 of batch
enc[2] = enc[2]!.slice(); enc[2]![20] ^= 1;
const bb = enc[5 + 5]!.slice(); bb[30] ^= 1; enc[5 + 5] = bb;
const p = packRecords(enc);
const core = new VerifierCore();
const r = core.run({ id: 1, ...p, segments: new Uint32Array([0, 5]), windows: ues.map((u) => u.window) });
console.log([...r.status].map((s) => OUTCOMES[s]).join(' '));
console.log([...r.finding].map((s) => FINDING_NAMES[s as 0]).join(' '));
console.log(r.stats, [...r.headIndex], [...r.tailIndex]);
