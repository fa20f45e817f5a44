/**
 * Every per-job limit (CPU, wall clock, memory, output), the external watchdog, crash recovery,
 * cancellation and shutdown. After each failure the pool must serve the next job normally.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { RunnerPool } from '../src/pool.ts';
import { alive, expectCode, expectHealthy, okOutput, usePool, waitFor } from './helpers.ts';

// Short limits keep the suite fast; CPU limits are CPU time, so a loaded machine only slows
// them down, and wall limits are far from the CPU ones so the two never race.
const CPU = { cpuMs: 300, wallMs: 8_000 };
const WALL = { cpuMs: 5_000, wallMs: 400 };
const MEM = { memoryMb: 16, cpuMs: 10_000, wallMs: 20_000 };

describe('enclave runner: limits', () => {
  const { pool, run } = usePool();

  it('[SC2-4] stops a synchronous endless loop at the CPU limit (JOB_CPU_LIMIT)', async () => {
    const r = expectCode(await run({ code: 'export function run() { while (true) {} }', limits: CPU }), 'JOB_CPU_LIMIT');
    expect(r.cpuMs).toBeGreaterThanOrEqual(300);
    expect(r.cpuMs).toBeLessThan(2_000);
    await expectHealthy(pool());
  });

  it('[SC2-4] stops an endless loop in top-level module code (JOB_CPU_LIMIT)', async () => {
    expectCode(await run({ code: 'for (;;) {} export function run() {}', limits: CPU }), 'JOB_CPU_LIMIT');
    await expectHealthy(pool());
  });

  it('[SC2-4] stops a microtask loop that isolated-vm timeouts do not cover (JOB_CPU_LIMIT)', async () => {
    expectCode(await run({ code: 'export async function run() { for (;;) await null }', limits: CPU }), 'JOB_CPU_LIMIT');
    expectCode(
      await run({ code: 'export function run() { const spin = () => Promise.resolve().then(spin); spin(); return new Promise(() => {}) }', limits: CPU }),
      'JOB_CPU_LIMIT',
    );
    await expectHealthy(pool());
  });

  it('[SC2-4] stops a promise that never settles at the wall-clock limit (JOB_TIMEOUT)', async () => {
    const r = expectCode(await run({ code: 'export function run() { return new Promise(() => {}) }', limits: WALL }), 'JOB_TIMEOUT');
    expect(r.wallMs).toBeGreaterThanOrEqual(400);
    expect(r.cpuMs).toBeLessThan(300);
    await expectHealthy(pool());
  });

  it('[SC2-4] stops a top-level await that never settles (JOB_CODE_ERROR, no hang)', async () => {
    // Without timers or I/O nothing can ever settle it, so the runner says so at once.
    const r = expectCode(await run({ code: 'await new Promise(() => {}); export function run() { return 1 }', limits: WALL }), 'JOB_CODE_ERROR');
    expect(r.message).toMatch(/never settles/);
    await expectHealthy(pool());
  });

  it('[SC2-4] stops a heap bomb at the memory limit (JOB_MEMORY_LIMIT)', async () => {
    expectCode(await run({ code: 'export function run() { const a = []; for (;;) a.push({ v: [1, 2, 3] }) }', limits: MEM }), 'JOB_MEMORY_LIMIT');
    await expectHealthy(pool());
  });

  it('[SC2-4] stops ArrayBuffer and typed-array bombs (JOB_MEMORY_LIMIT)', async () => {
    expectCode(await run({ code: 'export function run() { const a = []; for (;;) a.push(new ArrayBuffer(1 << 20)) }', limits: MEM }), 'JOB_MEMORY_LIMIT');
    expectCode(await run({ code: 'export function run() { return new Float64Array(2 ** 30).length }', limits: MEM }), 'JOB_MEMORY_LIMIT');
    await expectHealthy(pool());
  });

  it('[SC2-4] stops a giant array fill that V8 lets run past its soft limit (JOB_MEMORY_LIMIT, child replaced)', async () => {
    const before = pool().stats();
    expectCode(await run({ code: 'export function run() { return new Array(2 ** 26).fill(1.5).length }', limits: MEM }), 'JOB_MEMORY_LIMIT');
    const after = pool().stats();
    expect(after.crashes).toBe(before.crashes);
    expect(after.watchdogKills).toBe(before.watchdogKills);
    await expectHealthy(pool());
  });

  it('[SC2-4] gives the job its memory budget on top of its input data', async () => {
    // 24 MiB of input with a 16 MiB budget must still run.
    const big = new Float64Array(3 << 20).fill(2);
    const r = await run({
      code: 'export function run(d) { let s = 0; const x = d.columns.x; for (let i = 0; i < x.length; i++) s += x[i]; return s }',
      data: { columns: { x: { type: 'f64', buffer: big } } },
      limits: MEM,
    });
    expect(okOutput(r)).toBe(2 * (3 << 20));
  });

  it('[SC2-4] enforces the output limit in UTF-8 bytes (JOB_OUTPUT_LIMIT)', async () => {
    const limits = { outputBytes: 10 };
    expect(okOutput(await run({ code: 'export const run = () => "12345678"', limits }))).toBe('12345678');
    expectCode(await run({ code: 'export const run = () => "123456789"', limits }), 'JOB_OUTPUT_LIMIT');
    // 7 UTF-16 units but 12 UTF-8 bytes: only the host-side byte count catches it.
    expectCode(await run({ code: 'export const run = () => "ééééé"', limits }), 'JOB_OUTPUT_LIMIT');
    expectCode(await run({ code: 'export const run = () => "x".repeat(1 << 21)' }), 'JOB_OUTPUT_LIMIT');
    expectCode(await run({ code: 'export const run = () => Array.from({ length: 2e5 }, (_, i) => ({ i }))' }), 'JOB_OUTPUT_LIMIT');
    await expectHealthy(pool());
  });

  it('[SC2-4] never restarted a child for any limit above except the soft-limit fill', () => {
    const s = pool().stats();
    expect(s.crashes).toBe(0);
    expect(s.watchdogKills).toBe(0);
    expect(s.recycled).toBeLessThanOrEqual(1);
  });
});

describe('enclave runner: crashes, watchdog, cancel, close', () => {
  const { pool, run } = usePool({ graceMs: 500 });

  /** PID of the child running `jobId`, once the child has confirmed it started the job. */
  const runningPid = async (jobId: string): Promise<number> => {
    let pid = -1;
    await waitFor(() => {
      pid = pool().stats().children.find((c) => c.jobId === jobId && c.started === true)?.pid ?? -1;
      return pid > 0;
    }, 10_000, `job ${jobId} to start`);
    return pid;
  };

  // A failed test must not leave a replacement starting behind the next one's counters.
  beforeEach(async () => {
    await pool().ready();
  });

  it('[SC2-4] fails a job whose child dies mid-job with JOB_RUNNER_CRASHED and replaces the child', async () => {
    const before = pool().stats();
    const pending = run({ jobId: 'crash', code: 'export function run() { return new Promise(() => {}) }', limits: { wallMs: 20_000 } });
    const pid = await runningPid('crash');
    process.kill(pid, 'SIGKILL');
    const r = expectCode(await pending, 'JOB_RUNNER_CRASHED');
    expect(r.message).toMatch(/SIGKILL/);
    await pool().ready();
    const after = pool().stats();
    expect(after.crashes).toBe(before.crashes + 1);
    expect(after.restarts).toBe(before.restarts + 1);
    expect(after.children.map((c) => c.pid)).not.toContain(pid);
    await expectHealthy(pool());
  });

  it('[SC2-4] kills a child that stops answering (external watchdog, JOB_TIMEOUT)', async () => {
    const before = pool().stats();
    const pending = run({ jobId: 'stop', code: 'export function run() { return new Promise(() => {}) }', limits: { wallMs: 600 } });
    const pid = await runningPid('stop');
    // A stopped process cannot run its own watchdog; only the pool's can end the job.
    process.kill(pid, 'SIGSTOP');
    const r = expectCode(await pending, 'JOB_TIMEOUT');
    expect(r.message).toMatch(/killed/);
    await waitFor(() => !alive(pid), 5_000, 'the stopped child to die');
    await pool().ready();
    expect(pool().stats().watchdogKills).toBe(before.watchdogKills + 1);
    await expectHealthy(pool());
  });

  it('[SC2-4] cancels a running job (JOB_CANCELLED) and reuses its child', async () => {
    const before = pool().stats();
    const pending = run({ jobId: 'to-cancel', code: 'export function run() { while (true) {} }', limits: { cpuMs: 20_000, wallMs: 20_000 } });
    await runningPid('to-cancel');
    expect(pool().cancel('to-cancel')).toBe(true);
    expectCode(await pending, 'JOB_CANCELLED');
    expect(pool().cancel('to-cancel')).toBe(false);
    await expectHealthy(pool());
    const after = pool().stats();
    expect(after.crashes).toBe(before.crashes);
    expect(after.restarts).toBe(before.restarts);
    expect(after.cancelled).toBe(before.cancelled + 1);
  });

  it('[SC2-4] cancels a queued job before it starts', async () => {
    // a child that drained a cancelled job a moment ago may not be idle yet: start from two idle ones
    await waitFor(() => pool().stats().idle === 2, 10_000, 'both children idle');
    const blockers = [0, 1].map(() => run({ code: 'export function run() { return new Promise(() => {}) }', limits: { wallMs: 1_500 } }));
    await waitFor(() => pool().stats().busy === 2, 10_000, 'both children busy');
    const queued = run({ jobId: 'queued', code: 'export const run = () => 1' });
    expect(pool().stats().queued).toBe(1);
    expect(pool().cancel('queued')).toBe(true);
    expect(expectCode(await queued, 'JOB_CANCELLED').message).toMatch(/before it started/);
    for (const b of blockers) expectCode(await b, 'JOB_TIMEOUT');
    await expectHealthy(pool());
  });

  it('[SC2-4] close() fails running and queued jobs, kills every child and refuses new jobs', async () => {
    const local = new RunnerPool({ size: 1 });
    await local.ready();
    const pids = local.stats().children.map((c) => c.pid);
    const running = local.run({ code: 'export function run() { return new Promise(() => {}) }' });
    const queued = local.run({ code: 'export const run = () => 1' });
    await waitFor(() => local.stats().busy === 1, 10_000, 'the child busy');
    await local.close();
    expectCode(await running, 'JOB_CANCELLED');
    expectCode(await queued, 'POOL_UNAVAILABLE');
    expectCode(await local.run({ code: 'export const run = () => 1' }), 'POOL_UNAVAILABLE');
    for (const pid of pids) expect(alive(pid)).toBe(false);
    await expect(local.ready()).rejects.toMatchObject({ code: 'POOL_UNAVAILABLE' });
  });

  it('[SC2-4] reports POOL_UNAVAILABLE when no child can start', async () => {
    const broken = new RunnerPool({ size: 1, execPath: '/bin/false' });
    try {
      await expect(broken.ready()).rejects.toMatchObject({ code: 'POOL_UNAVAILABLE' });
      expectCode(await broken.run({ code: 'export const run = () => 1' }), 'POOL_UNAVAILABLE');
      expect(broken.stats().crashes).toBeGreaterThanOrEqual(3);
    } finally {
      await broken.close();
    }
  });

  it('[SC2-4] refuses jobs beyond the queue bound with POOL_UNAVAILABLE', async () => {
    const local = new RunnerPool({ size: 1, maxQueue: 1 });
    try {
      await local.ready();
      const a = local.run({ code: 'export function run() { for (let i = 0; i < 1e6; i++); return "a" }' });
      const b = local.run({ code: 'export const run = () => "b"' });
      expectCode(await local.run({ code: 'export const run = () => "c"' }), 'POOL_UNAVAILABLE');
      expect(okOutput(await a)).toBe('a');
      expect(okOutput(await b)).toBe('b');
    } finally {
      await local.close();
    }
  });
});
