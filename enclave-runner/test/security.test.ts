/**
 * Attacks on the sandbox. Each must fail safely — no host object reached, nothing run in the
 * host, the child not crashed — and the pool must serve a normal job right after.
 * A probe that reached the host would see `process` as an object (or kill the child via
 * process.exit, which shows up as a crash in the pool's counters).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PoolStats } from '../src/pool.ts';
import { expectCode, expectHealthy, f64, okOutput, usePool } from './helpers.ts';

const CPU = { cpuMs: 300, wallMs: 8_000 };
const WALL = { cpuMs: 5_000, wallMs: 400 };
const data = { columns: { x: f64(1, 2, 3) }, meta: { source: 'test' } };

describe('enclave runner: sandbox escapes and abuse', () => {
  const { pool, run } = usePool();
  let before: PoolStats;

  beforeEach(() => {
    before = pool().stats();
  });
  afterEach(async () => {
    // The attack did not take a child down (no crash, no watchdog kill), and the pool serves.
    const after = pool().stats();
    expect(after.crashes).toBe(before.crashes);
    expect(after.watchdogKills).toBe(before.watchdogKills);
    await expectHealthy(pool());
  });

  it('[SEC-1][SC2-4] constructor chains reach only the sandbox Function, never the host', async () => {
    const code = `
      export async function run(data, params) {
        const out = {};
        const probe = async (name, f) => { try { out[name] = String(await f()) } catch (e) { out[name] = 'threw ' + e.name } };
        const P = 'return typeof process + typeof require + typeof module + typeof Buffer';
        await probe('this', () => this.constructor.constructor(P)());
        await probe('global', () => globalThis.constructor.constructor(P)());
        await probe('data', () => data.constructor.constructor(P)());
        await probe('params', () => params.constructor.constructor(P)());
        await probe('column', () => data.columns.x.constructor.constructor(P)());
        await probe('buffer', () => data.columns.x.buffer.constructor.constructor(P)());
        await probe('promise', () => Promise.resolve().constructor.constructor(P)());
        await probe('error', () => new Error('e').constructor.constructor(P)());
        await probe('async', () => (async () => {}).constructor(P)());
        await probe('generator', () => (function* () {}).constructor(P)().next().value);
        await probe('asyncGenerator', async () => (await (async function* () {}).constructor(P)().next()).value);
        await probe('caller', () => Function('return (function f() { return String(f.caller) })()')());
        await probe('callee', () => Function('return String(arguments.callee.caller)')());
        await probe('proto', () => ({}).__proto__.constructor.constructor(P)());
        await probe('eval', () => (0, eval)(P.replace('return ', '')));
        return out;
      }`;
    const out = okOutput(await run({ code, params: { p: 1 }, data })) as Record<string, string>;
    const none = 'undefined'.repeat(4);
    expect(out).toMatchObject({
      global: none, data: none, params: none, column: none, buffer: none, promise: none, error: none,
      async: none, generator: none, asyncGenerator: none, proto: none, eval: none, callee: 'null',
    });
    expect(out.this).toBe('threw TypeError'); // `this` is undefined in run()
    expect(out.caller).not.toMatch(/drive|\[native code\]/);
  });

  it('[SEC-1][SC2-4] the global object holds only ECMAScript intrinsics and no isolated-vm object', async () => {
    const code = `
      export function run() {
        const names = Object.getOwnPropertyNames(globalThis);
        const suspicious = [];
        for (const n of names) {
          const v = globalThis[n];
          const ctor = v && typeof v === 'object' ? Object.getPrototypeOf(v)?.constructor?.name : undefined;
          if (/Reference|ExternalCopy|Isolate|Context|Callback|Module/.test(String(ctor)) || /ivm|isolated/i.test(n)) suspicious.push(n);
        }
        return { names, suspicious, symbols: Object.getOwnPropertySymbols(globalThis).map(String), meta: Object.keys(import.meta) };
      }`;
    const out = okOutput(await run({ code })) as { names: string[]; suspicious: string[]; symbols: string[]; meta: string[] };
    expect(out.suspicious).toEqual([]);
    expect(out.meta).toEqual([]);
    for (const banned of [
      'process', 'require', 'module', 'exports', 'Buffer', 'global', 'fetch', 'setTimeout', 'setInterval', 'setImmediate',
      'queueMicrotask', 'structuredClone', 'performance', 'WebAssembly', 'SharedArrayBuffer', 'Atomics', 'WeakRef',
      'FinalizationRegistry', 'Temporal', '_ivm', 'ivm',
    ]) {
      expect(out.names, banned).not.toContain(banned);
    }
  });

  it('[SEC-1][SC2-4] Error.prepareStackTrace and CallSite.getThis/getFunction expose no host frame', async () => {
    const code = `
      export function run() {
        Error.prepareStackTrace = (e, frames) => frames.map((f) => ({
          file: String(f.getFileName()), fn: String(f.getFunctionName()), self: typeof f.getThis(), callee: typeof f.getFunction(),
          escape: (() => { try { return f.getFunction()?.constructor('return typeof process')() ?? 'none' } catch (e) { return 'threw' } })(),
        }));
        return new Error('probe').stack;
      }`;
    const frames = okOutput(await run({ code })) as Array<Record<string, string>>;
    expect(frames.length).toBeGreaterThan(0);
    for (const f of frames) {
      expect(['file:///job.js', 'divs:prelude']).toContain(f.file);
      expect(f.self).toBe('undefined');
      expect(f.callee).toBe('undefined');
      expect(f.escape).toBe('none');
    }
  });

  it('[SEC-1][SC2-4] a hostile prepareStackTrace on a thrown error runs in the sandbox only', async () => {
    // isolated-vm reads the stack of an error thrown by top-level code: an endless hook there
    // is stopped by the CPU limit.
    const endless = await run({ code: 'Error.prepareStackTrace = () => { for (;;) {} }; throw new Error("x")', limits: CPU });
    expectCode(endless, 'JOB_CPU_LIMIT');
    const escaping = await run({
      code: `Error.prepareStackTrace = (e, f) => f.map((c) => typeof c.getThis()).join() + typeof process;
             export function run() { throw new Error('x') }`,
    });
    expect(expectCode(escaping, 'JOB_CODE_ERROR').message).toBe('Error: x');
  });

  it('[SEC-1][SC2-4] Proxy traps that throw fail the job with a coded error, never the runner', async () => {
    const thrower = "new Proxy({}, { get() { throw new Error('trap') }, ownKeys() { throw new Error('trap') }, getPrototypeOf() { throw new Error('trap') }, has() { throw new Error('trap') }, getOwnPropertyDescriptor() { throw new Error('trap') } })";
    // Returned directly, the proxy's `then` lookup throws while run()'s result is resolved.
    expectCode(await run({ code: `export function run() { return ${thrower} }` }), 'JOB_CODE_ERROR');
    // Nested, its traps throw inside JSON.stringify.
    expectCode(await run({ code: `export function run() { return { p: ${thrower} } }` }), 'JOB_INVALID_OUTPUT');
    expectCode(await run({ code: `export function run() { throw ${thrower} }` }), 'JOB_CODE_ERROR');
    expectCode(await run({ code: `throw ${thrower}` }), 'JOB_CODE_ERROR');
    expectCode(await run({ code: `export const run = new Proxy(function () {}, { apply() { throw ${thrower} } })` }), 'JOB_CODE_ERROR');
    expectCode(await run({ code: `export function run() { return Promise.reject(${thrower}) }` }), 'JOB_CODE_ERROR');
    // A throwing proxy as the global's prototype does not disturb the driver.
    const r = await run({
      code: `Object.setPrototypeOf(globalThis, ${thrower}); export function run(d) { return { ok: d.columns.x[0] } }`,
      data,
    });
    expect(okOutput(r)).toEqual({ ok: 1 });
  });

  it('[SEC-1][SC2-4] replaced intrinsics and Symbol.species on Array do not subvert the driver', async () => {
    const code = `
      Object.defineProperty(Array, Symbol.species, { get() { throw new Error('species') } });
      Array.prototype.map = Array.prototype[Symbol.iterator] = () => { throw new Error('array') };
      JSON.stringify = () => '"forged"'; JSON.parse = () => { throw new Error('parse') };
      Reflect.apply = () => { throw new Error('apply') }; Reflect.construct = () => { throw new Error('construct') };
      Function.prototype.call = Function.prototype.apply = Function.prototype.bind = () => { throw new Error('fn') };
      Object.defineProperty = () => { throw new Error('dp') };
      String = () => { throw new Error('String') }; Float64Array = function () { throw new Error('ta') };
      export function run(d, p) { return { x: d.columns.x[2], p } }`;
    expect(okOutput(await run({ code, params: [7], data }))).toEqual({ x: 3, p: [7] });
    const species = await run({
      code: 'export function run() { Object.defineProperty(Array, Symbol.species, { get() { throw new Error("species") } }); return [1, 2].map((v) => v) }',
    });
    expect(expectCode(species, 'JOB_CODE_ERROR').message).toBe('Error: species');
  });

  it('[SEC-1][SC2-4] Symbol.species and a replaced then() on Promise only affect the job itself', async () => {
    const species = `
      Object.defineProperty(Promise, Symbol.species, { get() { throw new Error('species') } });
      Promise.prototype.constructor = class Evil extends Promise { constructor() { throw new Error('evil') } };
      export async function run() { await null; return { ok: 1 } }`;
    // The driver awaits run()'s promise, whose then() consults the job's own species.
    expect(expectCode(await run({ code: species }), 'JOB_CODE_ERROR').message).toBe('Error: species');
    // A sync run() never touches the job's Promise machinery.
    expect(okOutput(await run({ code: species.replace('export async function run() { await null;', 'export function run() {') }))).toEqual({ ok: 1 });
    // Resolving run()'s promise goes through the job's own then(): its failure is the job's.
    const then = `Promise.prototype.constructor = function () {}; Promise.prototype.then = function () { throw new Error('then') };
      export async function run() { return 1 }`;
    expect(expectCode(await run({ code: then }), 'JOB_CODE_ERROR').message).toBe('Error: then');
    const hang = `Promise.prototype.constructor = function () {}; Promise.prototype.then = function () {};
      export async function run() { return 1 }`;
    expectCode(await run({ code: hang, limits: WALL }), 'JOB_TIMEOUT');
  });

  it('[SEC-1][SC2-4] nodejs.util.inspect.custom and coercion hooks are never called in the host', async () => {
    const hooks = `{
      [Symbol.for('nodejs.util.inspect.custom')]() { return this.constructor.constructor('return process')().exit(99) },
      [Symbol.toPrimitive]() { return this.constructor.constructor('return process')().exit(98) },
      toString() { return typeof process },
      get message() { return 'typeof process = ' + typeof process },
      get stack() { return 'stack' },
    }`;
    expect(okOutput(await run({ code: `export function run() { return { a: 1, h: ${hooks} } }` }))).toEqual({
      a: 1,
      h: { message: 'typeof process = undefined', stack: 'stack' },
    });
    expect(expectCode(await run({ code: `export function run() { throw ${hooks} }` }), 'JOB_CODE_ERROR').message).toBe(
      'typeof process = undefined',
    );
    expectCode(await run({ code: `throw ${hooks}` }), 'JOB_CODE_ERROR');
  });

  it('[SEC-1][SC2-4] WebAssembly is not available', async () => {
    const r = await run({
      code: 'export async function run() { return await WebAssembly.instantiate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])) }',
    });
    expect(expectCode(r, 'JOB_CODE_ERROR').message).toMatch(/WebAssembly is not defined/);
  });

  it('[SEC-1][SC2-4] dynamic import() and import declarations are refused', async () => {
    expectCode(await run({ code: 'export async function run() { return typeof (await import("node:fs")) }' }), 'JOB_CODE_ERROR');
    expectCode(await run({ code: 'export async function run() { return typeof (await import("data:text/javascript,export default 1")) }' }), 'JOB_CODE_ERROR');
    expect(expectCode(await run({ code: 'import fs from "node:fs"; export function run() { return 1 }' }), 'JOB_CODE_ERROR').message).toMatch(
      /import declarations/,
    );
    expectCode(await run({ code: 'export * from "node:child_process"; export function run() {}' }), 'JOB_CODE_ERROR');
    expectCode(await run({ code: 'import("node:fs"); export function run() { return 1 }' }), 'JOB_CODE_ERROR', 'JOB_INVALID_OUTPUT');
  });

  it('[SEC-1][SC2-4] SharedArrayBuffer and Atomics cannot be used as timers', async () => {
    const r = await run({
      code: 'export function run() { const sab = new SharedArrayBuffer(4); Atomics.wait(new Int32Array(sab), 0, 0, 10000); return 1 }',
    });
    expect(expectCode(r, 'JOB_CODE_ERROR').message).toMatch(/SharedArrayBuffer is not defined/);
    expect(expectCode(await run({ code: 'export function run() { return Atomics.wait }' }), 'JOB_CODE_ERROR').message).toMatch(
      /Atomics is not defined/,
    );
  });

  it('[SEC-1][SC2-4] while(true), never-settling promises and microtask loops are stopped', async () => {
    expectCode(await run({ code: 'export function run() { while (true) {} }', limits: CPU }), 'JOB_CPU_LIMIT');
    expectCode(await run({ code: 'export async function run() { await new Promise(() => {}) }', limits: WALL }), 'JOB_TIMEOUT');
    expectCode(await run({ code: 'export async function run() { while (true) await undefined }', limits: CPU }), 'JOB_CPU_LIMIT');
  });

  it('[SEC-1][SC2-4] catastrophic regular expressions are stopped by the CPU limit', async () => {
    const r = await run({ code: 'export function run() { return /^(a+)+$/.test("a".repeat(40) + "!") }', limits: CPU });
    expectCode(r, 'JOB_CPU_LIMIT');
  });

  it('[SEC-1][SC2-4] memory and ArrayBuffer bombs are stopped by the memory limit', async () => {
    const limits = { memoryMb: 16, cpuMs: 10_000, wallMs: 20_000 };
    expectCode(await run({ code: 'export function run() { let s = []; for (;;) s.push("x".repeat(64) + s.length) }', limits }), 'JOB_MEMORY_LIMIT');
    expectCode(await run({ code: 'export function run() { const k = []; for (;;) k.push(new Uint8Array(4 << 20)) }', limits }), 'JOB_MEMORY_LIMIT');
    expectCode(await run({ code: 'export function run() { return new ArrayBuffer(2 ** 32).byteLength }', limits }), 'JOB_MEMORY_LIMIT');
  });

  it('[SEC-1][SC2-4] huge, cyclic and non-JSON outputs are refused', async () => {
    expectCode(await run({ code: 'export const run = () => "y".repeat(3 << 20)' }), 'JOB_OUTPUT_LIMIT');
    expectCode(await run({ code: 'export function run() { const o = {}; o.self = o; return o }' }), 'JOB_INVALID_OUTPUT');
    expectCode(await run({ code: 'export function run() { const a = []; a.push(a); return [a] }' }), 'JOB_INVALID_OUTPUT');
    expectCode(await run({ code: 'export const run = () => 10n' }), 'JOB_INVALID_OUTPUT');
    expectCode(await run({ code: 'export const run = () => undefined' }), 'JOB_INVALID_OUTPUT');
    expectCode(await run({ code: 'export const run = () => Symbol("s")' }), 'JOB_INVALID_OUTPUT');
    expectCode(await run({ code: 'export const run = () => () => 1' }), 'JOB_INVALID_OUTPUT');
    // Deep nesting makes JSON.stringify overflow the stack: caught in the sandbox.
    expectCode(await run({ code: 'export function run() { let o = {}; for (let i = 0; i < 1e6; i++) o = { o }; return o }' }), 'JOB_INVALID_OUTPUT');
  });

  it('[SEC-1][SC2-4] getters, toJSON and thenables in outputs run inside the sandbox only', async () => {
    expect(okOutput(await run({ code: 'export const run = () => ({ get x() { return typeof process } })' }))).toEqual({ x: 'undefined' });
    expect(okOutput(await run({ code: 'export const run = () => ({ toJSON() { return { seen: typeof require } } })' }))).toEqual({
      seen: 'undefined',
    });
    expect(okOutput(await run({ code: 'export const run = () => ({ then(resolve) { resolve({ seen: typeof process }) } })' }))).toEqual({
      seen: 'undefined',
    });
    // A thenable nested in the output is just an object whose function property JSON drops.
    expect(okOutput(await run({ code: 'export const run = () => ({ a: { then() { throw new Error("ran") } } })' }))).toEqual({ a: {} });
    expectCode(await run({ code: 'export const run = () => ({ then() {} })', limits: WALL }), 'JOB_TIMEOUT');
    expectCode(await run({ code: 'export const run = () => ({ get x() { for (;;) {} } })', limits: CPU }), 'JOB_CPU_LIMIT');
    expectCode(await run({ code: 'export const run = () => ({ get x() { throw new Error("getter") } })' }), 'JOB_INVALID_OUTPUT');
  });

  it('[SEC-1][SC2-4] a job cannot leave state for the next one, however it ends', async () => {
    // Pollute everything reachable, then end the job in each possible way.
    const polluter = (end: string): string => `
      globalThis.leak = 'l'; Object.prototype.leak = 'l'; Array.prototype.leak = 'l';
      Math.random = () => 0; Date.now = () => 0; globalThis.console = { log() {} };
      export function run(d) { d.columns.x[0] = -1; ${end} }`;
    await run({ code: polluter('return 1'), data });
    await run({ code: polluter('throw new Error("x")'), data });
    await run({ code: polluter('while (true) {}'), data, limits: CPU });
    await run({ code: polluter('return new Promise(() => {})'), data, limits: WALL });
    for (let i = 0; i < 2; i++) {
      const r = await run({
        code: 'export function run(d) { return [typeof globalThis.leak, ({}).leak, [].leak, Math.random() === 0, Date.now(), d.columns.x[0]] }',
        data,
        startTimeMs: 7,
      });
      expect(okOutput(r)).toEqual(['undefined', undefined, undefined, false, 7, 1].map((v) => (v === undefined ? null : v)));
    }
  });
});
