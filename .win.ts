import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { rmSync, mkdirSync } from 'node:fs';
import { LocalLedger } from './as-node/src/ledger/local.ts';
import { nodeSigner } from './protocol/src/suites.ts';
const dir = '/tmp/ledgerbench/win'; rmSync(dir, { recursive: true, force: true }); mkdirSync(dir);
const signer = nodeSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
const l = await LocalLedger.open({ path: `${dir}/l.db`, ledgerId: 'b', signer, signerName: 'as', certChain: [new Uint8Array(5)] });
const payload = randomBytes(1500); const G = globalThis as any;
const N = Number(process.argv[2] ?? 100000);
let w = performance.now();
for (let d = 0; d < N; d += 500) {
  await l.append(Array.from({ length: 500 }, (_, k) => { const tx = new Uint8Array(payload); new DataView(tx.buffer).setUint32(0, d + k); return { tx, ueKey: new Uint8Array(createHash('sha256').update(`ue-${d + k}`).digest()) }; }));
  if ((d + 500) % 20000 === 0) {
    const dt = performance.now() - w; w = performance.now();
    console.log(`${d + 500}: ${(20000 / dt * 1000).toFixed(0)} tx/s  pre ${G.T_pre | 0} stage ${G.T_stage | 0} js ${G.T_js | 0} sign ${G.T_sign | 0} ins ${G.T_ins1 | 0} smtput ${(G.T_smtput - G.T_ins1) | 0} commit ${G.T_commit | 0} post ${G.T_post | 0} enc ${G.T_enc | 0} nodes ${G.N_nodes} rows ${G.N_rows} bytes ${G.N_bytes} total ${dt | 0}`); G.T_enc = 0; G.N_nodes = 0; G.N_rows = 0; G.N_bytes = 0;
    for (const k of ['T_pre', 'T_stage', 'T_js', 'T_sign', 'T_ins1', 'T_smtput', 'T_commit', 'T_ins', 'T_post']) G[k] = 0;
  }
}
l.close();
