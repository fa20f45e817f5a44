/**
 * @module ue/keystore-worker
 * Worker thread body of {@link WorkerKeyStore}: owns one {@link SoftwareKeyStore} and answers
 * requests; key material never crosses the message port, only public keys and signatures.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { DivsError } from '../../protocol/src/errors.ts';
import { SoftwareKeyStore } from './keystore.ts';
import type { KeyStoreReady, KeyStoreReply, KeyStoreRequest, WorkerKeyStoreOptions } from './worker-keystore.ts';

const port = parentPort;
if (!port) throw new Error('keystore-worker must run in a worker thread');

async function openStore(opts: WorkerKeyStoreOptions): Promise<SoftwareKeyStore> {
  if (opts.path === undefined) return new SoftwareKeyStore();
  return SoftwareKeyStore.open(opts.path, opts.passphrase ?? '', {
    ...(opts.scryptN !== undefined ? { scryptN: opts.scryptN } : {}),
    ...(opts.autosave !== undefined ? { autosave: opts.autosave } : {}),
  });
}

async function handle(store: SoftwareKeyStore, r: KeyStoreRequest): Promise<unknown> {
  switch (r.op) {
    case 'generate':
      return store.generate(r.alias, r.suite);
    case 'publicKey':
      return store.publicKey(r.alias);
    case 'sign':
      return store.sign(r.alias, r.msg);
    case 'has':
      return store.has(r.alias);
    case 'delete':
      return store.delete(r.alias);
    case 'save':
      return store.save();
    default:
      throw new DivsError('INVALID_ARGUMENT', `unknown key store operation ${String((r as { op: unknown }).op)}`);
  }
}

try {
  const store = await openStore(workerData as WorkerKeyStoreOptions);
  port.postMessage({ ready: true } satisfies KeyStoreReady);
  port.on('message', (r: KeyStoreRequest) => {
    handle(store, r).then(
      (value) => port.postMessage({ id: r.id, ok: true, value } satisfies KeyStoreReply),
      (e: unknown) => {
        const d = e instanceof DivsError ? e : new DivsError('INTERNAL', 'key store operation failed');
        port.postMessage({ id: r.id, ok: false, code: d.code, message: d.message } satisfies KeyStoreReply);
      },
    );
  });
} catch (e) {
  const d = e instanceof DivsError ? e : new DivsError('INTERNAL', 'key store failed to open');
  port.postMessage({ ready: false, code: d.code, message: d.message } satisfies KeyStoreReady);
}
