/**
 * @module enclave-runner/test/helpers
 * Shared fixtures for the enclave runner tests: a pool per test file (started once, closed
 * after), column builders and result assertions.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { RunnerPool, type ColumnInput, type RunnerJob, type RunnerPoolOptions } from '../src/pool.ts';
import type { JobErrorCode, JobResult, JobSuccess } from '../src/protocol.ts';

/** A Float64 column from numbers. */
export function f64(...values: number[]): ColumnInput {
  return { type: 'f64', buffer: new Float64Array(values) };
}

/** Asserts success and returns the parsed output. */
export function okOutput(r: JobResult): unknown {
  if (!r.ok) throw new Error(`expected success, got ${r.code}: ${r.message}`);
  return JSON.parse(r.output);
}

/** Asserts a failure with the given code (or one of several) and returns it. */
export function expectCode(r: JobResult, ...codes: JobErrorCode[]): Extract<JobResult, { ok: false }> {
  if (r.ok) throw new Error(`expected ${codes.join('|')}, got success: ${r.output.slice(0, 200)}`);
  expect(codes, `${r.code}: ${r.message}`).toContain(r.code);
  return r;
}

/** The job every "pool still healthy" check runs: a sum over a column, with params. */
export async function expectHealthy(pool: RunnerPool): Promise<void> {
  const r = await pool.run({
    code: 'export function run(d, p) { let s = 0; for (const v of d.columns.x) s += v; return { s, k: p.k, g: typeof globalThis.leak } }',
    params: { k: 'ok' },
    data: { columns: { x: f64(1, 2, 3) } },
  });
  expect(okOutput(r)).toEqual({ s: 6, k: 'ok', g: 'undefined' });
}

/** A pool started before the file's tests and closed (children killed by PID) after them. */
export function usePool(options: RunnerPoolOptions = {}): { pool: () => RunnerPool; run: (job: RunnerJob) => Promise<JobResult> } {
  let pool: RunnerPool | undefined;
  beforeAll(async () => {
    pool = new RunnerPool({ size: 2, ...options });
    await pool.ready();
  });
  afterAll(async () => {
    await pool?.close();
  });
  const get = (): RunnerPool => {
    if (pool === undefined) throw new Error('pool not started');
    return pool;
  };
  return { pool: get, run: (job) => get().run(job) };
}

/** True while a process with this PID exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls until `cond` holds (or fails the test after `ms`). */
export async function waitFor(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export type { JobSuccess };
