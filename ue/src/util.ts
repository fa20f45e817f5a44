/**
 * @module ue/util
 * Small helpers of the UE SDK: crash-safe file writes and a serial queue for state that must
 * change one operation at a time.
 */
import { open, readFile, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { DivsError, fail } from '../../protocol/src/errors.ts';

/**
 * Writes `data` to `path` atomically: a temporary file in the same directory (created with
 * `mode`, flushed to disk), then a rename over the target. A crash leaves either the old file or
 * the new one, never a partial write. STORAGE_FAILED when the file system refuses.
 */
export async function atomicWriteFile(path: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(tmp, 'wx', mode);
    // the umask may have cleared bits of `mode`; make the mode exact
    await fh.chmod(mode);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    fail('STORAGE_FAILED', `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
  }
  // make the rename itself durable; some file systems refuse to fsync a directory, which only
  // weakens durability after a power loss, so that failure is not an error
  try {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    /* best effort */
  }
}

/** Reads a file, or returns undefined when it does not exist; STORAGE_FAILED otherwise. */
export async function readFileIfExists(path: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    fail('STORAGE_FAILED', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
  }
}

/**
 * Runs async operations one at a time, in call order. A failed operation rejects its own
 * promise only; the queue keeps going.
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(op: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(op, op);
    // the tail must never reject, or every later operation would see the old failure
    this.#tail = next.catch(() => undefined);
    return next;
  }
}

/** Wraps anything thrown into a DivsError (INTERNAL unless it already has a code). */
export function asDivsError(e: unknown, message = 'internal error'): DivsError {
  return e instanceof DivsError ? e : new DivsError('INTERNAL', message, { cause: e });
}
