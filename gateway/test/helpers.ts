/**
 * @module gateway/test/helpers
 * Small helpers for gateway tests: a consortium root CA on disk (the gateway enrolls under it),
 * temporary directories removed after the file's tests, and error-code assertions.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect } from 'vitest';
import { createRootCa, pemToDer, type CertificateAuthority } from '../../protocol/src/pki.ts';
import { DivsError, type ErrorCode } from '../../protocol/src/errors.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fresh temporary directory, removed after this test file. */
export function tempDir(prefix = 'gw'): string {
  const d = mkdtempSync(join(tmpdir(), `divs-${prefix}-`));
  dirs.push(d);
  return d;
}

export interface TestCa {
  ca: CertificateAuthority;
  certPath: string;
  keyPath: string;
  der: Uint8Array;
}

/** A root CA written to `dir` (ca.pem, ca.key). */
export async function writeCa(dir: string, name = 'DIVS test consortium root'): Promise<TestCa> {
  const ca = await createRootCa({ name, validityDays: 30 });
  const certPath = join(dir, 'ca.pem');
  const keyPath = join(dir, 'ca.key');
  writeFileSync(certPath, ca.certPem);
  writeFileSync(keyPath, ca.keyPem, { mode: 0o600 });
  return { ca, certPath, keyPath, der: pemToDer(ca.certPem) };
}

/** Awaits `p` and asserts it fails with a DivsError of `code`. */
export async function expectCode(p: Promise<unknown> | (() => unknown), code: ErrorCode): Promise<DivsError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(DivsError);
  expect((err as DivsError).code).toBe(code);
  return err as DivsError;
}
