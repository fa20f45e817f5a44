/**
 * @module verify/worker
 * Worker thread body of the {@link VerifierPool}: one {@link VerifierCore} (hasher, UE key cache,
 * batch-signature cache) per thread. Messages are tasks of three kinds — judge packed records,
 * judge records read from the gateway store, compute a dataset commitment — and every reply
 * transfers its typed arrays back instead of copying them.
 */
import { parentPort } from 'node:worker_threads';
import { VerifierCore } from './core.ts';
import { commitmentRoot } from './commitment.ts';
import { resultTransferList, type TaskResult } from './task.ts';
import type { WorkerReply, WorkerRequest } from './pool.ts';
import { readStoreTask } from './store-source.ts';

const core = new VerifierCore();

parentPort?.on('message', (req: WorkerRequest) => {
  let reply: WorkerReply;
  let transfer: ArrayBuffer[] = [];
  try {
    if (req.kind === 'verify') {
      const result: TaskResult = core.run(req.task);
      reply = { id: req.id, kind: 'verify', result };
      transfer = resultTransferList(result);
    } else if (req.kind === 'verify-store') {
      const task = readStoreTask(req.spec);
      const result = core.run(task.task);
      reply = { id: req.id, kind: 'verify-store', result, flags: task.task.flags, segmentUes: task.segmentUes };
      transfer = [...resultTransferList(result), task.task.flags.buffer as ArrayBuffer];
    } else {
      const root = commitmentRoot(req.leaves, core.hasher);
      reply = { id: req.id, kind: 'commit', root };
    }
  } catch (e) {
    reply = { id: req.id, kind: 'error', message: e instanceof Error ? e.message : String(e) };
  }
  parentPort?.postMessage(reply, transfer);
});
