import { createHash } from 'node:crypto';
import { SparseMerkleTree, MemorySmtStore, encodeSmtChunks, type SmtStoredNode } from './protocol/src/smt.ts';
const N = 40000;
const keys = Array.from({ length: N }, (_, i) => new Uint8Array(createHash('sha256').update(`ue-${i}`).digest()));
const t = new SparseMerkleTree(new MemorySmtStore({ latestOnly: true }));
const batches: SmtStoredNode[][] = [];
const cu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; }; let c = cu();
for (let b = 0; b < N / 500; b++) { const batch = t.stage(keys.slice(b * 500, b * 500 + 500).map((k) => [k, k] as [Uint8Array, Uint8Array]), b); t.apply(batch); batches.push(batch.nodes); }
console.log('stage+apply', (cu() - c).toFixed(0), 'cpu ms', batches.reduce((n, b) => n + b.length, 0), 'nodes');
c = cu();
let rows = 0;
for (const b of batches) rows += encodeSmtChunks(b).length;
console.log('encode chunks', (cu() - c).toFixed(0), 'cpu ms', rows, 'rows');
