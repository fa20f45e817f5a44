/**
 * @module writer-worker
 * Worker thread body of the {@link StoreWriter}: owns the writable record store, appends each
 * group in one transaction and answers with the outcomes once it committed.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { DivsError } from '../../protocol/src/errors.ts';
import { RecordStore, type StoreOptions } from './store.ts';
import { unpackItems, type WriterReply, type WriterRequest } from './writer.ts';

const STATUS = { stored: 0, duplicate: 1, fork: 2 } as const;

let store: RecordStore;
try {
  store = RecordStore.open(workerData as StoreOptions);
  parentPort?.postMessage({ id: 0, kind: 'ready' } satisfies WriterReply);
} catch (e) {
  const err = e instanceof DivsError ? e : new DivsError('STORAGE_FAILED', String(e));
  parentPort?.postMessage({ id: 0, kind: 'error', code: err.code, message: err.message } satisfies WriterReply);
  process.exit(1);
}

parentPort?.on('message', (req: WriterRequest) => {
  let reply: WriterReply;
  let transfer: ArrayBuffer[] = [];
  try {
    if (req.kind === 'close') {
      store.close();
      reply = { id: req.id, kind: 'closed' };
    } else {
      const outcomes = store.append(unpackItems(req.items), req.receivedMs);
      const statuses = new Uint8Array(outcomes.length);
      const forks: Uint8Array[] = [];
      outcomes.forEach((o, i) => {
        statuses[i] = STATUS[o.status];
        if (o.status === 'fork') forks.push(o.existingHash);
      });
      const forkHashes = new Uint8Array(32 * forks.length);
      forks.forEach((h, i) => forkHashes.set(h, 32 * i));
      reply = { id: req.id, kind: 'append', statuses, forkHashes };
      transfer = [statuses.buffer as ArrayBuffer, forkHashes.buffer as ArrayBuffer];
    }
  } catch (e) {
    const err = e instanceof DivsError ? e : new DivsError('STORAGE_FAILED', String(e));
    reply = { id: req.id, kind: 'error', code: err.code, message: err.message };
  }
  parentPort?.postMessage(reply, transfer);
});
