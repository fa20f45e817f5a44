/**
 * @module crypto-worker
 * Worker thread body for {@link CryptoPool}: holds the AS signing key and runs registration
 * checks and endorsement signatures.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createPrivateKey } from 'node:crypto';
import { nodeSign, suiteOfKeyObject } from '../../protocol/src/suites.ts';
import { checkAll, type WorkerReply, type WorkerTask } from './crypto-pool.ts';

const key = createPrivateKey({ key: Buffer.from(workerData.keyDer as Uint8Array), format: 'der', type: 'pkcs8' });
const suite = suiteOfKeyObject(key);

parentPort?.on('message', (t: WorkerTask) => {
  let reply: WorkerReply;
  try {
    if (t.kind === 'check') reply = { id: t.id, check: checkAll(t.regs, t.nowMs, t.policy) };
    else reply = { id: t.id, sigs: t.msgs.map((m) => nodeSign(suite, key, m)) };
  } catch (e) {
    reply = { id: t.id, error: (e as Error).message };
  }
  parentPort?.postMessage(reply);
});
