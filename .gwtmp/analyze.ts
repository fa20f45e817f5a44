import { readFileSync, readdirSync } from 'node:fs';
const dir = process.argv[2]!;
const f = readdirSync(dir).filter((x) => x.endsWith('.cpuprofile')).sort().pop()!;
const p = JSON.parse(readFileSync(dir + '/' + f, 'utf8'));
const self = new Map<string, number>();
const dt = p.timeDeltas as number[]; const samples = p.samples as number[];
const byId = new Map<number, any>(p.nodes.map((n: any) => [n.id, n]));
const counts = new Map<number, number>();
for (let i = 0; i < samples.length; i++) counts.set(samples[i]!, (counts.get(samples[i]!) ?? 0) + (dt[i] ?? 0));
for (const [id, t] of counts) { const n = byId.get(id); const k = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber}`; self.set(k, (self.get(k) ?? 0) + t); }
const tot = [...self.values()].reduce((a, b) => a + b, 0);
for (const [k, v] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log((v / tot * 100).toFixed(1).padStart(5), k);
