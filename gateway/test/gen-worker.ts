/**
 * @module gateway/test/gen-worker
 * Worker body of `generateChains` (fixtures.ts): signs records for a slice of UEs with the UE
 * SDK and posts them back packed, buffers transferred.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SignedRecord } from '../../proto/gen/divs/v1/common.ts';
import { fixtureUes, reading, type BulkOptions, type GeneratedChain } from './fixtures.ts';

const o = workerData as BulkOptions & { seed: string; threadIndex: number };
const ues = await fixtureUes(o.uesPerThread, o.seed, { txBase: o.threadIndex * o.uesPerThread });
const out: GeneratedChain[] = [];
const t0 = Date.UTC(2026, 0, 1);
for (const u of ues) {
  const encoded: Uint8Array[] = [];
  for (let i = 0; i < o.recordsPerUe; i += o.batchSize) {
    const n = Math.min(o.batchSize, o.recordsPerUe - i);
    const recs =
      o.batchSize === 1
        ? [await u.signer.sign(reading(i), 'application/json', t0 + i)]
        : await u.signer.signBatch(Array.from({ length: n }, (_, k) => ({ payload: reading(i + k), timestampMs: t0 + i + k })), 'application/json');
    for (const r of recs) encoded.push(SignedRecord.encode(r).finish());
  }
  let total = 0;
  for (const e of encoded) total += e.length;
  const data = new Uint8Array(total);
  const offsets = new Uint32Array(encoded.length + 1);
  let off = 0;
  encoded.forEach((e, k) => {
    offsets[k] = off;
    data.set(e, off);
    off += e.length;
  });
  offsets[encoded.length] = off;
  out.push({ data, offsets, window: u.window });
}
parentPort?.postMessage(out, out.flatMap((c) => [c.data.buffer as ArrayBuffer, c.offsets.buffer as ArrayBuffer]));
