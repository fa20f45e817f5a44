/**
 * @module wasm-emit
 * A tiny WebAssembly bytecode writer for the kernels generated at start-up (sha256x4.ts, the
 * gateway's record scanner in gateway/src/verify/scan-kernel.ts): LEB128 integers, sections, and an instruction list with
 * the few opcodes they use.
 */

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

export const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
export const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
export const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, 'utf8')];

export const I32 = 0x7f;
export const I64 = 0x7e;
export const V128 = 0x7b;

/**
 * A tiny instruction writer: only the opcodes the kernels need. Blocks, loops and ifs may be
 * named; a branch names its target (the depth is counted here) or gives the depth itself.
 */
export class Code {
  readonly b: number[] = [];
  readonly #labels: (string | undefined)[] = [];
  block(label?: string): void {
    this.b.push(0x02, 0x40);
    this.#labels.push(label);
  }
  loop(label?: string): void {
    this.b.push(0x03, 0x40);
    this.#labels.push(label);
  }
  if(label?: string): void {
    this.b.push(0x04, 0x40);
    this.#labels.push(label);
  }
  /** Closes the innermost block, loop or if (or the function body). */
  end(): void {
    this.b.push(0x0b);
    this.#labels.pop();
  }
  br(to: string | number): void {
    this.b.push(0x0c, ...uleb(this.#depth(to)));
  }
  brIf(to: string | number): void {
    this.b.push(0x0d, ...uleb(this.#depth(to)));
  }
  #depth(to: string | number): number {
    if (typeof to === 'number') return to;
    const i = this.#labels.lastIndexOf(to);
    if (i < 0) throw new Error(`no enclosing block named ${to}`);
    return this.#labels.length - 1 - i;
  }
  get(i: number): void {
    this.b.push(0x20, ...uleb(i));
  }
  set(i: number): void {
    this.b.push(0x21, ...uleb(i));
  }
  tee(i: number): void {
    this.b.push(0x22, ...uleb(i));
  }
  /** `local += v` (i32). */
  addTo(local: number, v: number): void {
    this.get(local);
    this.i32(v);
    this.op(0x6a); // i32.add
    this.set(local);
  }
  i32(v: number): void {
    this.b.push(0x41, ...sleb(v | 0));
  }
  op(...o: number[]): void {
    this.b.push(...o);
  }
  simd(o: number, ...imm: number[]): void {
    this.b.push(0xfd, ...uleb(o), ...imm);
  }
  load8(offset = 0): void {
    this.b.push(0x2d, 0, ...uleb(offset)); // i32.load8_u
  }
  load32(offset = 0): void {
    this.b.push(0x28, 2, ...uleb(offset));
  }
  store32(offset = 0): void {
    this.b.push(0x36, 2, ...uleb(offset));
  }
  store8(offset = 0): void {
    this.b.push(0x3a, 0, ...uleb(offset));
  }
  vload(offset = 0): void {
    this.simd(0x00, 4, ...uleb(offset));
  }
  vstore(offset = 0): void {
    this.simd(0x0b, 4, ...uleb(offset));
  }
  vconst32(v: number): void {
    const bytes = Buffer.alloc(16);
    for (let i = 0; i < 4; i++) bytes.writeInt32LE(v | 0, i * 4);
    this.simd(0x0c, ...bytes);
  }
  shuffle(lanes: number[]): void {
    this.simd(0x0d, ...lanes);
  }
}

