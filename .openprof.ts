import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, writeFileSync, readFileSync } from 'node:fs';
import { LocalLedger } from './as-node/src/ledger/local.ts';
import { nodeSigner, importPrivateKey } from './protocol/src/suites.ts';
const dir = '/tmp/ledgerbench/openprof';
const keyFile = `${dir}/key.pem`;
const build = process.argv[2] === 'build';
if (build) { (await import('node:fs')).rmSync(dir, { recursive: true, force: true }); (await import('node:fs')).mkdirSync(dir); writeFileSync(keyFile, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' })); }
const signer = nodeSigner(importPrivateKey(readFileSync(keyFile, 'utf8')));
const opts = { path: `${dir}/l.db`, ledgerId: 'divs-bench', signer, signerName: 'as', certChain: [new Uint8Array(5)] };
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
if (build) {
  const l = await LocalLedger.open(opts); const payload = randomBytes(1500);
  const N = Number(process.argv[3] ?? 40000);
  const c = cpu(); const w = performance.now();
  for (let d = 0; d < N; d += 500) await l.append(Array.from({ length: 500 }, (_, k) => { const tx = new Uint8Array(payload); new DataView(tx.buffer).setUint32(0, d + k); return { tx, ueKey: new Uint8Array(createHash('sha256').update(`ue-${d + k}`).digest()) }; }));
  const G = globalThis as any; console.log('js', G.T_js|0, 'sign', G.T_sign|0, 'ins txs+tree', G.T_ins1|0, 'ins(all)', G.T_ins|0, 'smtput(cum)', G.T_smtput|0, 'commit', G.T_commit|0, 'post', G.T_post|0);
  console.log('append', N, 'cpu ms', (cpu() - c).toFixed(0), 'wall ms', (performance.now() - w).toFixed(0), '=>', (N / (cpu() - c) * 1000).toFixed(0), 'tx per cpu-s', (N / (performance.now() - w) * 1000).toFixed(0), 'tx/s wall');
  l.close();
} else {
  const c = cpu(); const w = performance.now();
  const l = await LocalLedger.open(opts);
  console.log((globalThis as any).T_read, (globalThis as any).T_stage, (globalThis as any).T_cmp, (globalThis as any).T_apply); console.log('open', l.info().size, 'cpu ms', (cpu() - c).toFixed(0), 'wall ms', (performance.now() - w).toFixed(0));
  l.close();
}
