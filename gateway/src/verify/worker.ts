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

/** `ArrayBuffer.prototype.transfer` (ES2024; Node 24 has it). */
type Transferable = ArrayBuffer & { readonly detached?: boolean; transfer?: (length: number) => ArrayBuffer };

/**
 * Frees a task's packed records as soon as the task is judged. They are this thread's own
 * (moved or copied here with the task) and nothing refers to them any more (results never
 * alias them), but as external memory they would wait for a full garbage collection, and
 * megabytes arriving with every task had V8 run a mark-compact every task or two (a five times
 * higher rate than with this, and 10-20% fewer records/s on two busy cores, where the
 * collector's helper threads compete with the other worker). `transfer(0)` hands the bytes
 * back to the allocator at once.
 */
function release(view: ArrayBufferView): void {
  const b = view.buffer as Transferable;
  // only a buffer the view owns whole: never a shared slab (e.g. Node's Buffer pool)
  if (!(b instanceof ArrayBuffer) || view.byteOffset !== 0 || view.byteLength !== b.byteLength) return;
  if (b.detached !== true && typeof b.transfer === 'function') b.transfer(0);
}

parentPort?.on('message', (req: WorkerRequest) => {
  if (req.kind === 'forget') {
    core.forgetCaches();
    return;
  }
  let reply: WorkerReply;
  let transfer: ArrayBuffer[] = [];
  try {
    if (req.kind === 'verify') {
      const result: TaskResult = core.run(req.task);
      release(req.task.data);
      reply = { id: req.id, kind: 'verify', result };
      transfer = resultTransferList(result);
    } else if (req.kind === 'verify-store') {
      const task = readStoreTask(req.spec);
      const result = core.run(task.task);
      release(task.task.data);
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
