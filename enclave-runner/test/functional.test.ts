/**
 * Functional behaviour of the enclave runner: jobs over columnar data, the job module shapes,
 * params and metadata, reproducibility, input validation, queueing and the result fields.
 */
import { describe, expect, it } from 'vitest';
import { sha256, toHex, utf8 } from '../../protocol/src/bytes.ts';
import { DivsError } from '../../protocol/src/errors.ts';
import { RunnerPool } from '../src/pool.ts';
import { expectCode, expectHealthy, f64, okOutput, usePool } from './helpers.ts';

const SUM = 'export function run(data) { let s = 0; for (const v of data.columns.x) s += v; return { sum: s, rows: data.rows }; }';

describe('enclave runner: running jobs', () => {
  const { pool, run } = usePool();

  it('[SC2-4] sums a Float64Array column inside the sandbox and returns only the result', async () => {
    const values = Float64Array.from({ length: 10_000 }, (_, i) => i * 0.5);
    const r = await run({ code: SUM, data: { columns: { x: { type: 'f64', buffer: values } } } });
    expect(okOutput(r)).toEqual({ sum: (9999 * 10_000) / 4, rows: 10_000 });
    if (!r.ok) return;
    expect(r.codeHash).toBe(toHex(sha256(utf8(SUM))));
    expect(r.outputBytes).toBe(Buffer.byteLength(r.output));
    expect(r.cpuMs).toBeGreaterThan(0);
    expect(r.wallMs).toBeGreaterThanOrEqual(0);
    // The caller's data was copied over IPC, never detached or changed.
    expect(values.length).toBe(10_000);
    expect(values[3]).toBe(1.5);
  });

  it('[SC2-4] supports async run, params, metadata and every column type', async () => {
    const code = `
      export async function run(data, params) {
        await null;
        const c = data.columns;
        let big = 0n;
        for (const v of c.i64) big += v;
        return {
          types: Object.keys(c).map((k) => c[k].constructor.name),
          big: String(big), u64: String(c.u64[0]),
          f32: c.f32[0], i32: c.i32[1], u8: c.u8[2], i8: c.i8[0], u16: c.u16[1], i16: c.i16[2], u32: c.u32[0],
          params, meta: data.meta, rows: data.rows,
        };
      }`;
    const r = await run({
      code,
      params: { threshold: 2.5, names: ['a', 'b'], nested: { ok: true } },
      data: {
        columns: {
          f64: f64(1, 2, 3),
          f32: { type: 'f32', buffer: new Float32Array([0.5, 1, 2]) },
          i32: { type: 'i32', buffer: new Int32Array([1, -7, 3]) },
          u32: { type: 'u32', buffer: new Uint32Array([4294967295, 0, 1]) },
          i16: { type: 'i16', buffer: new Int16Array([1, 2, -300]) },
          u16: { type: 'u16', buffer: new Uint16Array([1, 65535, 3]) },
          i8: { type: 'i8', buffer: new Int8Array([-128, 0, 1]) },
          u8: { type: 'u8', buffer: new Uint8Array([1, 2, 255]) },
          i64: { type: 'i64', buffer: new BigInt64Array([2n ** 60n, 1n, -1n]) },
          u64: { type: 'u64', buffer: new BigUint64Array([2n ** 64n - 1n, 0n, 0n]) },
        },
        meta: { dataset: 'meters-2024', verified: 3, ueIds: ['a', 'b', 'c'] },
      },
    });
    expect(okOutput(r)).toEqual({
      types: ['Float64Array', 'Float32Array', 'Int32Array', 'Uint32Array', 'Int16Array', 'Uint16Array', 'Int8Array', 'Uint8Array', 'BigInt64Array', 'BigUint64Array'],
      big: String(2n ** 60n),
      u64: String(2n ** 64n - 1n),
      f32: 0.5, i32: -7, u8: 255, i8: -128, u16: 65535, i16: -300, u32: 4294967295,
      params: { threshold: 2.5, names: ['a', 'b'], nested: { ok: true } },
      meta: { dataset: 'meters-2024', verified: 3, ueIds: ['a', 'b', 'c'] },
      rows: 3,
    });
  });

  it('[SC2-4] accepts views into larger buffers and an empty dataset', async () => {
    const backing = new Float64Array([100, 1, 2, 3, 100]);
    const view = new Float64Array(backing.buffer, 8, 3);
    expect(okOutput(await run({ code: SUM, data: { columns: { x: { type: 'f64', buffer: view } } } }))).toEqual({ sum: 6, rows: 3 });
    expect(okOutput(await run({ code: 'export const run = (d) => ({ rows: d.rows, cols: Object.keys(d.columns), meta: d.meta })' }))).toEqual({
      rows: 0,
      cols: [],
      meta: null,
    });
  });

  it('[SC2-4] accepts `function run`, `export default` and `export { x as run }` shapes', async () => {
    const data = { columns: { x: f64(2, 3) } };
    expect(okOutput(await run({ code: 'function run(d) { return d.columns.x[0] * d.columns.x[1] }', data }))).toBe(6);
    expect(okOutput(await run({ code: 'export default function (d) { return d.rows }', data }))).toBe(2);
    expect(okOutput(await run({ code: 'const f = async () => "aliased"; export { f as run };', data }))).toBe('aliased');
    expect(okOutput(await run({ code: 'const x = await Promise.resolve(5); export function run() { return x }', data }))).toBe(5);
  });

  it('[SC2-4] reports code errors with JOB_CODE_ERROR and the message', async () => {
    expect(expectCode(await run({ code: 'export function run() { throw new TypeError("bad input") }' }), 'JOB_CODE_ERROR').message).toBe(
      'TypeError: bad input',
    );
    expect(expectCode(await run({ code: 'export async function run() { throw "plain" }' }), 'JOB_CODE_ERROR').message).toBe('plain');
    expect(expectCode(await run({ code: 'export function run( {' }), 'JOB_CODE_ERROR').message).toMatch(/Unexpected/);
    expect(expectCode(await run({ code: 'export function other() {}' }), 'JOB_CODE_ERROR').message).toMatch(/run\(data, params\)/);
    expect(expectCode(await run({ code: 'export const run = 42' }), 'JOB_CODE_ERROR').message).toMatch(/run\(data, params\)/);
    expect(expectCode(await run({ code: 'throw new RangeError("top")' }), 'JOB_CODE_ERROR').message).toMatch(/top/);
    expect(expectCode(await run({ code: 'export function run() { return missing + 1 }' }), 'JOB_CODE_ERROR').message).toMatch(
      /missing is not defined/,
    );
  });

  it('[SC2-4] makes Math.random and the clock reproducible from seed and start time', async () => {
    const code = `export function run() {
      const r = []; for (let i = 0; i < 5; i++) r.push(Math.random());
      let mean = 0; for (let i = 0; i < 20000; i++) mean += Math.random() / 20000;
      return { r, mean, now: Date.now(), date: new Date().toISOString(), str: Date(), later: Date.now(),
        fmt: new Intl.DateTimeFormat('en-US', { timeZone: 'UTC', dateStyle: 'medium', timeStyle: 'medium' }).format(),
        parts: new Intl.DateTimeFormat('en-US', { timeZone: 'UTC', year: 'numeric' }).formatToParts()[0].value,
        explicit: new Date(0).toISOString(), ctor: new Date().constructor === Date, inst: new Date() instanceof Date };
    }`;
    const startTimeMs = Date.UTC(2024, 4, 17, 8, 30, 0);
    const a = okOutput(await run({ code, seed: 1234, startTimeMs })) as Record<string, unknown>;
    const b = okOutput(await run({ code, seed: 1234, startTimeMs })) as Record<string, unknown>;
    const c = okOutput(await run({ code, seed: 1235, startTimeMs })) as Record<string, unknown>;
    expect(a).toEqual(b);
    expect(c.r).not.toEqual(a.r);
    expect(a.now).toBe(startTimeMs);
    expect(a.later).toBe(startTimeMs);
    expect(a.date).toBe('2024-05-17T08:30:00.000Z');
    expect(a.str).toMatch(/^Fri May 17 2024 08:30:00 GMT\+0000/);
    expect(a.fmt).toBe('May 17, 2024, 8:30:00 AM');
    expect(a.parts).toBe('2024');
    expect(a.explicit).toBe('1970-01-01T00:00:00.000Z');
    expect(a.ctor).toBe(true);
    expect(a.inst).toBe(true);
    for (const x of a.r as number[]) expect(x >= 0 && x < 1).toBe(true);
    expect(Math.abs((a.mean as number) - 0.5)).toBeLessThan(0.02);
  });

  it('[SC2-4] defaults the clock to submission time and reports seed and start time', async () => {
    const before = Date.now();
    const r = await run({ code: 'export const run = () => Date.now()' });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.seed).toBe(0);
    expect(r.startTimeMs).toBeGreaterThanOrEqual(before);
    expect(JSON.parse(r.output)).toBe(r.startTimeMs);
    expect(r.limits).toEqual({ memoryMb: 64, cpuMs: 5000, wallMs: 10000, outputBytes: 1 << 20 });
  });

  it('[SC2-4] queues more jobs than children and answers each with its own result', async () => {
    const jobs = Array.from({ length: 7 }, (_, i) =>
      run({ jobId: `q-${i}`, code: 'export async function run(d, p) { await null; return p.i * d.columns.x[0] }', params: { i }, data: { columns: { x: f64(3) } } }),
    );
    const results = await Promise.all(jobs);
    results.forEach((r, i) => {
      expect(r.jobId).toBe(`q-${i}`);
      expect(okOutput(r)).toBe(i * 3);
    });
    expect(pool().stats().queued).toBe(0);
  });

  it('[SC2-4] rejects bad job input with INVALID_ARGUMENT before it reaches a child', async () => {
    const bad = [
      { code: '' },
      { code: SUM, data: { columns: { x: { type: 'f128', buffer: new ArrayBuffer(8) } } } },
      { code: SUM, data: { columns: { x: { type: 'f64', buffer: new ArrayBuffer(12) } } } },
      { code: SUM, data: { columns: { x: f64(1, 2), y: f64(1) } } },
      { code: SUM, data: { columns: { x: { type: 'f64', buffer: [1, 2] } } } },
      { code: SUM, data: { columns: { '': f64(1) } } },
      { code: SUM, limits: { memoryMb: 1 } },
      { code: SUM, limits: { wallMs: 0 } },
      { code: SUM, limits: { cpuMs: 1.5 } },
      { code: SUM, seed: -1 },
      { code: SUM, seed: 2 ** 60 },
      { code: SUM, startTimeMs: Number.NaN },
      { code: SUM, params: { n: 1n } },
      { code: SUM, data: { meta: (() => { const o: Record<string, unknown> = {}; o.self = o; return o; })() } },
      { code: SUM, jobId: 'has space' },
      { code: 'x'.repeat((1 << 20) + 1) },
    ];
    for (const job of bad) {
      expectCode(await pool().run(job as never), 'INVALID_ARGUMENT');
    }
    expect(pool().stats().crashes).toBe(0);
    await expectHealthy(pool());
  });

  it('[SC2-4] refuses a second job with an ID that is still running', async () => {
    const first = run({ jobId: 'dup', code: 'export async function run() { for (let i = 0; i < 3e6; i++); return 1 }' });
    expectCode(await run({ jobId: 'dup', code: SUM }), 'INVALID_ARGUMENT');
    expect(okOutput(await first)).toBe(1);
  });

  it('[SC2-4] runOrThrow turns a failure into a DivsError with the job code', async () => {
    await expect(pool().runOrThrow({ code: 'export function run() { throw new Error("x") }' })).rejects.toSatisfy(
      (e: unknown) => e instanceof DivsError && e.code === 'JOB_CODE_ERROR',
    );
    const ok = await pool().runOrThrow({ code: 'export const run = () => [1, "two", null]' });
    expect(JSON.parse(ok.output)).toEqual([1, 'two', null]);
  });

  it('[SC2-4] exposes the runner measurement the children were checked against', () => {
    const m = pool().measurement;
    expect(m.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(m.files.map((f) => f.name)).toEqual(['protocol.ts', 'prelude.ts', 'child.ts', 'pool.ts', 'measurement.ts']);
    expect(m.runtime.execArgv).toEqual(['--no-node-snapshot']);
  });
});

describe('enclave runner: no state between jobs', () => {
  // One child, so consecutive jobs certainly share a process.
  const { pool, run } = usePool({ size: 1 });

  it('[SC2-4] gives every job a fresh isolate: globals, prototypes and intrinsics do not carry over', async () => {
    const pid = pool().stats().children[0]?.pid;
    const polluter = `
      globalThis.leak = 'secret from job 1';
      Object.prototype.polluted = 'yes';
      Array.prototype.push = function () { return 'hijacked' };
      Math.random = () => 0.5;
      JSON.stringify = () => '"forged"';
      Date.now = () => 1;
      export function run(d) { d.columns.x[0] = 999; return 'done' }`;
    // Our own JSON.stringify is used for the output, so even this job's output is honest.
    expect(okOutput(await run({ code: polluter, data: { columns: { x: f64(1) } } }))).toBe('done');
    const probe = `export function run(d) {
      const a = []; a.push(1);
      return { leak: typeof globalThis.leak, polluted: ({}).polluted === undefined, push: a.length,
        random: Math.random() !== 0.5, now: Date.now(), x: d.columns.x[0] };
    }`;
    const r = await run({ code: probe, data: { columns: { x: f64(1) } }, startTimeMs: 42 });
    expect(okOutput(r)).toEqual({ leak: 'undefined', polluted: true, push: 1, random: true, now: 42, x: 1 });
    expect(pool().stats().children[0]?.pid).toBe(pid);
    await expectHealthy(pool());
  });
});

describe('enclave runner: pool life cycle', () => {
  it('[SC2-4] replaces a child after maxJobsPerChild jobs', async () => {
    const pool = new RunnerPool({ size: 1, maxJobsPerChild: 2 });
    try {
      await pool.ready();
      const first = pool.stats().children[0]?.pid;
      for (let i = 0; i < 3; i++) expect(okOutput(await pool.run({ code: `export const run = () => ${i}` }))).toBe(i);
      const s = pool.stats();
      expect(s.recycled).toBe(1);
      expect(s.crashes).toBe(0);
      expect(s.children.map((c) => c.pid)).not.toContain(first);
    } finally {
      await pool.close();
    }
  });

  it('[SC2-4] refuses to be configured with invalid options', () => {
    expect(() => new RunnerPool({ size: 0 })).toThrowError(DivsError);
    expect(() => new RunnerPool({ defaults: { memoryMb: 2 } })).toThrowError(/memoryMb/);
  });
});
