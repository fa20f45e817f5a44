/**
 * @module protocol/test/helpers
 * Assertions shared by the protocol tests: errors are asserted on their DIVS code, never on
 * their message.
 */
import { expect } from 'vitest';
import { DivsError, type ErrorCode } from '../src/errors.ts';

/** The DIVS code `fn` throws, or `undefined` when it returns; rethrows anything uncoded. */
export function thrownCode(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof DivsError) return e.code;
    throw e;
  }
}

/** Asserts that `fn` throws a DivsError with `code`. */
export function expectCode(fn: () => unknown, code: ErrorCode): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}, but nothing was thrown`).toBeInstanceOf(DivsError);
  expect((err as DivsError).code).toBe(code);
}

/** Asserts that the promise rejects with a DivsError with `code`. */
export async function expectCodeAsync(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}, but the promise resolved`).toBeInstanceOf(DivsError);
  expect((err as DivsError).code).toBe(code);
}

export const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
export const toHexStr = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A copy of `b` with bit `bit` (0 = most significant bit of byte 0) flipped. */
export function flipBit(b: Uint8Array, bit: number): Uint8Array {
  const out = b.slice();
  const i = Math.floor(bit / 8) % out.length;
  out[i] = (out[i] as number) ^ (0x80 >> bit % 8);
  return out;
}
