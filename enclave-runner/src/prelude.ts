/**
 * @module enclave-runner/prelude
 * The code that runs inside each job's fresh isolate before the consumer's module: it trims the
 * global object to a deterministic, capability-free set and returns the *driver*, the sandbox-
 * side function the child calls to run the job.
 *
 * {@link sandboxPrelude} is a real, type-checked function that the child turns into source with
 * `Function.prototype.toString()` (Node's type stripping leaves plain JavaScript) and evaluates
 * in the isolate. It must therefore be self-contained: no imports, no outer variables.
 *
 * Why the driver does so much inside the sandbox: everything that can run consumer code —
 * awaiting a thenable, JSON.stringify calling getters and toJSON, reading `message` of a thrown
 * value — happens here, under the isolate's limits. What leaves the isolate is one primitive
 * string, re-validated by the child. The consumer may tamper with the sandbox's globals and
 * prototypes after the prelude ran; the driver holds its own references to the intrinsics it
 * needs, so such tampering can at most change the job's own result — which the job controls
 * anyway — never what the host receives (a string) or how the host reads it.
 *
 * Driver reply: one tag character and a payload.
 * - `O<json>`  success, JSON text of run()'s result
 * - `C<text>`  the code failed (no run(), threw, rejected)
 * - `M<text>`  an allocation failed (memory limit reached inside the sandbox)
 * - `I<text>`  the result is not JSON-serialisable
 * - `L<text>`  the output is longer than the limit
 */

/** Module namespace of the wrapper module (`export default` = the job's namespace). */
export interface WrapperNamespace {
  readonly default?: unknown;
}

/** Sandbox-side entry point; see the module comment for the reply format. */
export type SandboxDriver = (
  wrapper: WrapperNamespace,
  specJson: string,
  paramsJson: string,
  outputLimit: number,
  ...buffers: ArrayBuffer[]
) => Promise<string>;

/** Export name the child appends to the job source to reach a non-exported `function run`. */
export const RUN_ALIAS = '__divs_run__';

/**
 * Installs the deterministic global and returns the driver. Runs INSIDE the isolate.
 * @param seedHi high 21 bits of the Math.random seed
 * @param seedLo low 32 bits of the Math.random seed
 * @param startTimeMs what Date.now() and `new Date()` return for the whole job
 */
export function sandboxPrelude(seedHi: number, seedLo: number, startTimeMs: number): SandboxDriver {
  'use strict';
  const g = globalThis as unknown as Record<string, unknown>;

  // Intrinsics captured before any consumer code runs (see module comment).
  const jsonStringify = JSON.stringify;
  const jsonParse = JSON.parse;
  const reflectApply = Reflect.apply;
  const reflectConstruct = Reflect.construct;
  const defineProperty = Object.defineProperty;
  const getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
  const freeze = Object.freeze;
  const StringCtor = String;
  const stringSlice = String.prototype.slice;
  const RealDate = Date;
  const dateToString = Date.prototype.toString;
  const ProxyCtor = Proxy;
  const arrays = Object.create(null) as Record<string, new (buffer: ArrayBuffer) => unknown>;
  arrays.f64 = Float64Array;
  arrays.f32 = Float32Array;
  arrays.i32 = Int32Array;
  arrays.u32 = Uint32Array;
  arrays.i16 = Int16Array;
  arrays.u16 = Uint16Array;
  arrays.i8 = Int8Array;
  arrays.u8 = Uint8Array;
  arrays.i64 = BigInt64Array;
  arrays.u64 = BigUint64Array;

  const hidden = (value: unknown): PropertyDescriptor => ({ value, writable: true, enumerable: false, configurable: true });

  // 1. No capabilities beyond plain ECMAScript. WebAssembly compiles native code and can make
  //    shared memory; SharedArrayBuffer + Atomics.wait make a sleep/timer; WeakRef and
  //    FinalizationRegistry expose GC timing (non-determinism and a callback after run()).
  //    There never were require/process/import/fetch/setTimeout in a bare isolate.
  const removed = ['WebAssembly', 'SharedArrayBuffer', 'Atomics', 'WeakRef', 'FinalizationRegistry', 'Temporal'];
  for (let i = 0; i < removed.length; i++) delete g[removed[i] as string];

  // V8's own console prints nowhere without an inspector; a frozen no-op one keeps debugging
  // statements in consumer code harmless and makes the behaviour explicit.
  const noop = function (): undefined {
    return undefined;
  };
  const consoleMethods = ['log', 'info', 'warn', 'error', 'debug', 'trace', 'dir', 'table', 'assert', 'count',
    'countReset', 'group', 'groupCollapsed', 'groupEnd', 'time', 'timeEnd', 'timeLog'];
  const quietConsole = Object.create(null) as Record<string, unknown>;
  for (let i = 0; i < consoleMethods.length; i++) quietConsole[consoleMethods[i] as string] = noop;
  defineProperty(g, 'console', hidden(freeze(quietConsole)));

  // 2. Math.random: sfc32 seeded from the job seed; 53-bit doubles like V8's own.
  let a = seedLo >>> 0;
  let b = seedHi >>> 0;
  let c = 0x9e3779b9;
  let d = 0x243f6a88;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 16; i++) next(); // mix the seed in before the first output
  const random = {
    random(): number {
      return ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
    },
  }.random;
  defineProperty(Math, 'random', hidden(random));

  // 3. The clock stands still at the job's start time: Date.now(), new Date(), Date() and
  //    Intl.DateTimeFormat's default date all read it, so a rerun sees the same time.
  const now = {
    now(): number {
      return startTimeMs;
    },
  }.now;
  defineProperty(RealDate, 'now', hidden(now));
  const FixedDate = new ProxyCtor(RealDate, {
    apply(): string {
      return reflectApply(dateToString, new RealDate(startTimeMs), []) as string;
    },
    construct(target, args, newTarget): object {
      return reflectConstruct(target, args.length === 0 ? [startTimeMs] : args, newTarget) as object;
    },
  });
  defineProperty(RealDate.prototype, 'constructor', hidden(FixedDate));
  defineProperty(g, 'Date', hidden(FixedDate));
  const intl = g.Intl as { DateTimeFormat?: { prototype: object } } | undefined;
  if (intl !== undefined && intl.DateTimeFormat !== undefined) {
    const dtf = intl.DateTimeFormat.prototype;
    const formatGetter = getOwnPropertyDescriptor(dtf, 'format')?.get;
    if (formatGetter !== undefined) {
      defineProperty(dtf, 'format', {
        configurable: true,
        enumerable: false,
        get(this: object) {
          const bound = reflectApply(formatGetter, this, []) as (date?: unknown) => string;
          return (date?: unknown): string => bound(date === undefined ? startTimeMs : date);
        },
      });
    }
    const formatToParts = (dtf as { formatToParts?: (date?: unknown) => unknown }).formatToParts;
    if (typeof formatToParts === 'function') {
      const wrapped = {
        formatToParts(this: object, date?: unknown): unknown {
          return reflectApply(formatToParts, this, [date === undefined ? startTimeMs : date]);
        },
      }.formatToParts;
      defineProperty(dtf, 'formatToParts', hidden(wrapped));
    }
  }

  // Describes a thrown value without trusting it: reading `name`/`message` may run consumer
  // getters (fine: we are in the sandbox), and anything that throws again yields a constant.
  const MAX = 2000;
  const describe = (e: unknown): string => {
    try {
      let text: string;
      if (e !== null && (typeof e === 'object' || typeof e === 'function')) {
        const o = e as { name?: unknown; message?: unknown };
        const name = StringCtor(o.name);
        const message = StringCtor(o.message);
        text = name === 'undefined' ? message : name + ': ' + message;
      } else {
        text = StringCtor(e);
      }
      return text.length > MAX ? (reflectApply(stringSlice, text, [0, MAX]) as string) + '...' : text;
    } catch {
      return 'a value that cannot be described was thrown';
    }
  };
  const ALLOC_FAILED = 'RangeError: Array buffer allocation failed';

  const drive = async function drive(
    wrapper: WrapperNamespace,
    specJson: string,
    paramsJson: string,
    outputLimit: number,
    ...buffers: ArrayBuffer[]
  ): Promise<string> {
    try {
      let ns: Record<string, unknown>;
      try {
        // The wrapper's `default` binding is initialised only once the job module (including
        // any top-level await) finished; a bare isolate has no timers or I/O, so a module still
        // pending now is waiting for a promise that can never settle.
        ns = wrapper.default as Record<string, unknown>;
      } catch {
        return 'Cthe module did not finish evaluating (top-level await on a promise that never settles)';
      }
      let run = ns.__divs_run__;
      if (typeof run !== 'function') run = ns.run;
      if (typeof run !== 'function') run = ns.default;
      if (typeof run !== 'function') return 'Cthe job must define or export a function run(data, params)';

      const spec = jsonParse(specJson) as { rows: number; meta: unknown; columns: [string, string][] };
      const columns = {};
      for (let i = 0; i < spec.columns.length; i++) {
        const col = spec.columns[i] as [string, string];
        const Ctor = arrays[col[1]] as new (buffer: ArrayBuffer) => unknown;
        defineProperty(columns, col[0], { value: new Ctor(buffers[i] as ArrayBuffer), writable: true, enumerable: true, configurable: true });
      }
      const data = { rows: spec.rows, columns, meta: spec.meta };
      const params: unknown = jsonParse(paramsJson);

      let result: unknown;
      try {
        result = await reflectApply(run as (...args: unknown[]) => unknown, undefined, [data, params]);
      } catch (e) {
        const text = describe(e);
        return (text === ALLOC_FAILED ? 'M' : 'C') + text;
      }
      let text: unknown;
      try {
        text = jsonStringify(result);
      } catch (e) {
        const why = describe(e);
        if (why === 'RangeError: Invalid string length') return 'Lthe output is larger than the largest possible string';
        if (why === ALLOC_FAILED) return 'M' + why;
        return 'Ithe result cannot be serialised as JSON: ' + why;
      }
      if (typeof text !== 'string') return 'Irun() must return a JSON value, not undefined, a function or a symbol';
      if (text.length > outputLimit) return 'Lthe output has at least ' + text.length + ' bytes';
      return 'O' + text;
    } catch (e) {
      return 'C' + describe(e);
    }
  };
  return drive;
}
