/**
 * @module sha256x4
 * Many SHA-256 digests per call: a WebAssembly SIMD kernel that hashes four messages at once
 * (one per 32-bit lane of a v128), generated here as bytecode at start-up, with `node:crypto`
 * as the fallback and the reference.
 *
 * Why: batch-signed records are verified "at hash speed" (record hash, RFC 9162 leaf hash and
 * tree nodes per record), and with `node:crypto` each digest of a ~200-byte message costs a
 * JS→C++ call (~1 µs here) for ~0.2 µs of hashing. The kernel takes a whole list of jobs in one
 * call, so the per-digest cost is the compression function itself.
 *
 * The same module also compares byte ranges in bulk (`eqMany`, sixteen bytes per instruction):
 * the verifier compares hashes, signatures and identities of every record, and one call for
 * thousands of comparisons costs less than a JS loop per comparison. A user may compile one
 * function of its own into the same module ({@link KernelFunction}, e.g. the gateway's record
 * reader), working on the same memory. Users: the gateway's verifier and ingest, and the sparse
 * Merkle tree's batched updates (smt.ts).
 *
 * Model: the caller works in one linear memory (the WebAssembly memory, or a plain buffer in the
 * fallback): it writes input bytes there ({@link Sha256Many.write} / {@link Sha256Many.alloc}),
 * queues jobs — digest of `[prefix byte] || memory[src1, +len1) || memory[src2, +len2)` — each
 * with a 32-byte output slot in the same memory, and runs them. Jobs of one run must not read
 * outputs of the same run (hash trees run one level per call). Memory offsets stay valid until
 * {@link Sha256Many.reset}; views must be re-read after allocations (memory may grow).
 *
 * The kernel is checked against `node:crypto` on every length class in the tests, and once
 * more at start-up ({@link Sha256Many.create} falls back if the self-test fails).
 */
import { hash as nodeHash } from 'node:crypto';
import { Code, I32, V128, name, section, uleb, vec } from './wasm-emit.ts';

// ---------------------------------------------------------------- constants

const K = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7,
  0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];
const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/** Bytes of one lane's scratch area: the longest message the kernel hashes is LANE_BYTES - 9. */
const LANE_BYTES = 8192;
/** Longest message (prefix included) hashed by the kernel; longer ones go to node:crypto. */
export const MAX_KERNEL_MESSAGE = LANE_BYTES - 9;
/** Kernel scratch: four lane areas, then the message schedule W[0..63] and K[0..63] (1 KiB each). */
const SCRATCH_BYTES = 4 * LANE_BYTES + 2048;
/** Bytes kept mapped past the arena top: the kernel copies messages in 16-byte chunks. */
const SLACK = 16;
/** One job descriptor: prefix, src1, len1, src2, len2, dst (i32 each). */
const JOB_WORDS = 6;
const PAGE = 65536;

// ---------------------------------------------------------------- WebAssembly emitter

// i32 opcodes
const I32_ADD = 0x6a;
const I32_SUB = 0x6b;
const I32_AND = 0x71;
const I32_OR = 0x72;
const I32_SHL = 0x74;
const I32_SHR_U = 0x76;
const I32_LT_S = 0x48;
const I32_GE_S = 0x4e;
const I32_GT_U = 0x4b;
const SELECT = 0x1b;
// SIMD opcodes (0xfd prefix)
const V_SPLAT32 = 0x11;
const V_REPLACE32 = 0x1c;
const V_GT_S32 = 0x3b;
const V_XOR = 0x51;
const V_OR = 0x50;
const V_BITSELECT = 0x52;
const V_SHL32 = 0xab;
const V_SHRU32 = 0xad;
const V_ADD32 = 0xae;

// 4x4 transpose of 32-bit words with a byte swap in the second step: rows (one per lane, words
// in memory order) become columns (one word of every lane, as big-endian numbers), and back.
const T_LO = [0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23];
const T_HI = [8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31];
const S_LO = [3, 2, 1, 0, 7, 6, 5, 4, 19, 18, 17, 16, 23, 22, 21, 20];
const S_HI = [11, 10, 9, 8, 15, 14, 13, 12, 27, 26, 25, 24, 31, 30, 29, 28];

/**
 * A function compiled into the kernel module after `hashMany` and `eqMany`, on the same
 * memory: `params` i32 parameters, no result; `body` is its code entry (locals and
 * instructions, ending with `end`) as {@link Code} writes it.
 */
export interface KernelFunction {
  /** Export name (not `memory`, `hashMany` or `eqMany`). */
  name: string;
  params: number;
  body: number[];
}

/**
 * Emits `hashMany(jobs, count, scratch)`: for each group of four jobs, pads each message into
 * its lane's scratch area, runs the SHA-256 compression over all lanes at once (lanes with
 * fewer blocks are masked off), and stores each digest at its job's `dst`.
 *
 * Measured on the gateway's 2-core x86-64 machines (V8 emits AVX for it): the kernel is bound
 * by vector instruction throughput, ~1,000 instructions per lane-block. What paid: no calls out
 * of the kernel per job (16-byte copy loops instead of memory.copy/memory.fill, +13% on
 * 209-byte messages) and rounds as a loop of eight (a smaller body than 64 unrolled rounds,
 * +4-7%). What did not (kept out): W + K precomputed in memory with unrolled rounds, reordering
 * the t1 sum for a shorter dependency chain, and two interleaved groups of four lanes.
 */
function buildModule(extra?: KernelFunction): Uint8Array {
  // locals: params 0..2; i32 locals; v128 locals
  const P_JOBS = 0;
  const P_COUNT = 1;
  const P_SCRATCH = 2;
  let n = 3;
  const G = n++;
  const JP = n++;
  const PFX = n++;
  const LEN1 = n++;
  const LEN2 = n++;
  const TOTAL = n++;
  const PTR = n++;
  const END = n++;
  const BITS = n++;
  const BLK = n++;
  const MAXNB = n++;
  const NB = [n++, n++, n++, n++];
  const DST = [n++, n++, n++, n++];
  const LB = [n++, n++, n++, n++];
  const WB = n++;
  const WP = n++;
  const SRC = n++;
  const CK = n++;
  const I32_LOCALS = n - 3;
  const V0 = n;
  const ST = Array.from({ length: 8 }, (_, i) => V0 + i); // a..h
  const W = Array.from({ length: 16 }, (_, i) => V0 + 8 + i);
  const SAVED = Array.from({ length: 8 }, (_, i) => V0 + 24 + i);
  const T1 = V0 + 32;
  const T2 = V0 + 33;
  const NBV = V0 + 34;
  const MASK = V0 + 35;
  const R = [V0 + 36, V0 + 37, V0 + 38, V0 + 39];
  const V128_LOCALS = 40;

  const c = new Code();
  // CK += 16, back to the top of the chunk loop; closes that loop and its exit block
  const nextChunk = () => {
    c.addTo(CK, 16);
    c.br(0);
    c.end();
    c.end();
  };

  // dst = the lanes `pattern` picks from a and b
  const shuffleInto = (a: number, b: number, pattern: number[], dst: number) => {
    c.get(a);
    c.get(b);
    c.shuffle(pattern);
    c.set(dst);
  };
  // transpose R[0..3] (rows) into out[0..3] (columns, byte-swapped)
  const transpose = (out: number[]) => {
    const [r0, r1, r2, r3] = R as [number, number, number, number];
    // first step into T1, T2 and (overwriting rows already consumed) R[0], R[1]
    shuffleInto(r0, r1, T_LO, T1);
    shuffleInto(r0, r1, T_HI, T2);
    shuffleInto(r2, r3, T_LO, r0); // t2
    shuffleInto(r2, r3, T_HI, r1); // t3
    shuffleInto(T1, r0, S_LO, out[0] as number);
    shuffleInto(T1, r0, S_HI, out[1] as number);
    shuffleInto(T2, r1, S_LO, out[2] as number);
    shuffleInto(T2, r1, S_HI, out[3] as number);
  };

  const rotr = (x: number, k: number) => {
    c.get(x);
    c.i32(k);
    c.simd(V_SHRU32);
    c.get(x);
    c.i32(32 - k);
    c.simd(V_SHL32);
    c.simd(V_OR);
  };
  const shr = (x: number, k: number) => {
    c.get(x);
    c.i32(k);
    c.simd(V_SHRU32);
  };

  // copies LEN bytes from SRC to PTR in 16-byte chunks and advances PTR by LEN
  const copyChunks = (lenLocal: number) => {
    c.i32(0);
    c.set(CK);
    c.block();
    c.loop();
    c.get(CK);
    c.get(lenLocal);
    c.op(I32_GE_S);
    c.brIf(1);
    c.get(PTR);
    c.get(CK);
    c.op(I32_ADD);
    c.get(SRC);
    c.get(CK);
    c.op(I32_ADD);
    c.vload(0);
    c.vstore(0);
    nextChunk();
    c.get(PTR);
    c.get(lenLocal);
    c.op(I32_ADD);
    c.set(PTR);
  };

  // lane base pointers
  for (let l = 0; l < 4; l++) {
    c.get(P_SCRATCH);
    c.i32(l * LANE_BYTES);
    c.op(I32_ADD);
    c.set(LB[l] as number);
  }
  // message schedule area after the lanes: W[0..63], then K[0..63] (each splatted to 4 lanes)
  c.get(P_SCRATCH);
  c.i32(4 * LANE_BYTES);
  c.op(I32_ADD);
  c.set(WB);
  c.i32(0);
  c.set(G);
  c.block(); // exit of the group loop
  c.loop();
  c.get(G);
  c.get(P_COUNT);
  c.op(I32_GE_S);
  c.brIf(1); // br_if exit

  // ---- pad each lane's message into its scratch area
  for (let l = 0; l < 4; l++) {
    const nb = NB[l] as number;
    const lb = LB[l] as number;
    c.i32(0);
    c.set(nb);
    c.get(G);
    c.i32(l);
    c.op(I32_ADD);
    c.get(P_COUNT);
    c.op(I32_LT_S);
    c.if();
    // jp = jobs + (g + l) * 24
    c.get(G);
    c.i32(l);
    c.op(I32_ADD);
    c.i32(JOB_WORDS * 4);
    c.op(0x6c); // i32.mul
    c.get(P_JOBS);
    c.op(I32_ADD);
    c.set(JP);
    c.get(JP);
    c.load32(0);
    c.set(PFX);
    c.get(JP);
    c.load32(8);
    c.set(LEN1);
    c.get(JP);
    c.load32(16);
    c.set(LEN2);
    c.get(JP);
    c.load32(20);
    c.set(DST[l] as number);
    c.get(LEN1);
    c.get(LEN2);
    c.op(I32_ADD);
    c.set(TOTAL);
    c.get(lb);
    c.set(PTR);
    // optional prefix byte
    c.get(PFX);
    c.i32(0);
    c.op(I32_GE_S);
    c.if();
    c.get(PTR);
    c.get(PFX);
    c.store8(0);
    c.addTo(PTR, 1);
    c.addTo(TOTAL, 1);
    c.end();
    // the message parts, sixteen bytes at a time: memory.copy of a variable length is a call
    // out of the kernel per part, which cost as much as a compression block. A part's last
    // chunk may read up to 15 bytes past it (the arena keeps that much slack at its top) and
    // write past it: the next part, the terminator and the zero fill overwrite those bytes.
    c.get(JP);
    c.load32(4);
    c.set(SRC);
    copyChunks(LEN1);
    c.get(JP);
    c.load32(12);
    c.set(SRC);
    copyChunks(LEN2);
    // 0x80 terminator
    c.get(PTR);
    c.i32(0x80);
    c.store8(0);
    c.addTo(PTR, 1);
    // nb = (total + 9 + 63) >> 6 ; end = lb + nb * 64
    c.get(TOTAL);
    c.i32(72);
    c.op(I32_ADD);
    c.i32(6);
    c.op(I32_SHR_U);
    c.tee(nb);
    c.i32(6);
    c.op(I32_SHL);
    c.get(lb);
    c.op(I32_ADD);
    c.set(END);
    // zero-fill [ptr, end), sixteen bytes at a time (up to 15 bytes past the lane's last block:
    // into the next lane, padded after this one, or the schedule area, written before use);
    // the length goes into the last 4 bytes next, the high 32 bits of it stay zero
    c.get(PTR);
    c.set(CK);
    c.block();
    c.loop();
    c.get(CK);
    c.get(END);
    c.op(I32_GE_S);
    c.brIf(1);
    c.get(CK);
    c.vconst32(0);
    c.vstore(0);
    nextChunk();
    // big-endian bit length in the last 4 bytes
    c.get(TOTAL);
    c.i32(3);
    c.op(I32_SHL);
    c.set(BITS);
    c.get(END);
    c.i32(4);
    c.op(I32_SUB);
    c.get(BITS);
    c.i32(24);
    c.op(I32_SHR_U);
    c.get(BITS);
    c.i32(8);
    c.op(I32_SHR_U);
    c.i32(0xff00);
    c.op(I32_AND);
    c.op(I32_OR);
    c.get(BITS);
    c.i32(8);
    c.op(I32_SHL);
    c.i32(0xff0000);
    c.op(I32_AND);
    c.op(I32_OR);
    c.get(BITS);
    c.i32(24);
    c.op(I32_SHL);
    c.op(I32_OR);
    c.store32(0);
    c.end();
  }

  // ---- max blocks and the lane block-count vector
  c.get(NB[0] as number);
  c.set(MAXNB);
  for (let l = 1; l < 4; l++) {
    c.get(NB[l] as number);
    c.get(MAXNB);
    c.get(NB[l] as number);
    c.get(MAXNB);
    c.op(I32_GT_U);
    c.op(SELECT);
    c.set(MAXNB);
  }
  c.get(NB[0] as number);
  c.simd(V_SPLAT32);
  for (let l = 1; l < 4; l++) {
    c.get(NB[l] as number);
    c.simd(V_REPLACE32, l);
  }
  c.set(NBV);
  for (let i = 0; i < 8; i++) {
    c.vconst32(IV[i] as number);
    c.set(ST[i] as number);
  }

  // ---- blocks
  c.i32(0);
  c.set(BLK);
  c.block();
  c.loop();
  c.get(BLK);
  c.get(MAXNB);
  c.op(I32_GE_S);
  c.brIf(1);
  for (let i = 0; i < 8; i++) {
    c.get(ST[i] as number);
    c.set(SAVED[i] as number);
  }
  // message words 0..15: four rows of four words per lane, transposed
  for (let q = 0; q < 4; q++) {
    for (let l = 0; l < 4; l++) {
      c.get(LB[l] as number);
      c.get(BLK);
      c.i32(6);
      c.op(I32_SHL);
      c.op(I32_ADD);
      c.vload(q * 16);
      c.set(R[l] as number);
    }
    transpose([W[q * 4] as number, W[q * 4 + 1] as number, W[q * 4 + 2] as number, W[q * 4 + 3] as number]);
  }
  // The block is compressed by loops over memory, not 64 unrolled rounds: fully unrolled, the
  // block body is ~4,500 instructions, beyond the CPU's decoded-op cache, and the kernel was
  // bound by instruction decoding; eight rounds (the register names a..h come back after
  // eight) fit easily. W[0..15] go to memory, W[16..63] are expanded there, eight per turn.
  for (let t = 0; t < 16; t++) {
    c.get(WB);
    c.get(W[t] as number);
    c.vstore(16 * t);
  }
  // WP walks W[t - 16] for t = 16, 24, .., 56
  c.get(WB);
  c.set(WP);
  c.block();
  c.loop();
  for (let u = 0; u < 8; u++) {
    // W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16], t = 16 + u relative to WP
    const at = (k: number) => 16 * (u + k);
    c.get(WP);
    c.vload(at(1));
    c.set(T1);
    rotr(T1, 7);
    rotr(T1, 18);
    c.simd(V_XOR);
    shr(T1, 3);
    c.simd(V_XOR);
    c.get(WP);
    c.vload(at(14));
    c.set(T2);
    rotr(T2, 17);
    rotr(T2, 19);
    c.simd(V_XOR);
    shr(T2, 10);
    c.simd(V_XOR);
    c.simd(V_ADD32);
    c.get(WP);
    c.vload(at(9));
    c.simd(V_ADD32);
    c.get(WP);
    c.vload(at(0));
    c.simd(V_ADD32);
    c.set(T1);
    c.get(WP);
    c.get(T1);
    c.vstore(at(16));
  }
  c.get(WP);
  c.i32(128);
  c.op(I32_ADD);
  c.tee(WP);
  c.get(WB);
  c.i32(16 * 48);
  c.op(I32_ADD);
  c.op(I32_LT_S);
  c.brIf(0); // br_if loop
  c.end();
  c.end();
  // rounds: WP walks W[8j] (and K[8j], 1 KiB further), j = 0..7
  c.get(WB);
  c.set(WP);
  c.block();
  c.loop();
  for (let r = 0; r < 8; r++) {
    const reg = (k: number) => ST[(((k - r) % 8) + 8) % 8] as number;
    const a = reg(0);
    const b = reg(1);
    const cc = reg(2);
    const d = reg(3);
    const e = reg(4);
    const f = reg(5);
    const g = reg(6);
    const h = reg(7);
    // t1 = h + K[r] + W[r] + Ch(e, f, g) + Σ1(e)
    c.get(h);
    c.get(WP);
    c.vload(1024 + 16 * r);
    c.simd(V_ADD32);
    c.get(WP);
    c.vload(16 * r);
    c.simd(V_ADD32);
    c.get(f);
    c.get(g);
    c.get(e);
    c.simd(V_BITSELECT);
    c.simd(V_ADD32);
    rotr(e, 6);
    rotr(e, 11);
    c.simd(V_XOR);
    rotr(e, 25);
    c.simd(V_XOR);
    c.simd(V_ADD32);
    c.set(T1);
    // t2 = Σ0(a) + Maj(a, b, c); Maj = bitselect(c, b, a ^ b)
    rotr(a, 2);
    rotr(a, 13);
    c.simd(V_XOR);
    rotr(a, 22);
    c.simd(V_XOR);
    c.get(cc);
    c.get(b);
    c.get(a);
    c.get(b);
    c.simd(V_XOR);
    c.simd(V_BITSELECT);
    c.simd(V_ADD32);
    c.set(T2);
    // d += t1; h = t1 + t2; the names of a..h rotate instead of the values
    c.get(d);
    c.get(T1);
    c.simd(V_ADD32);
    c.set(d);
    c.get(T1);
    c.get(T2);
    c.simd(V_ADD32);
    c.set(h);
  }
  c.get(WP);
  c.i32(128);
  c.op(I32_ADD);
  c.tee(WP);
  c.get(WB);
  c.i32(1024);
  c.op(I32_ADD);
  c.op(I32_LT_S);
  c.brIf(0); // br_if loop
  c.end();
  c.end();
  // lanes still inside their message take the new state, finished lanes keep theirs
  c.get(NBV);
  c.get(BLK);
  c.simd(V_SPLAT32);
  c.simd(V_GT_S32);
  c.set(MASK);
  for (let i = 0; i < 8; i++) {
    c.get(ST[i] as number);
    c.get(SAVED[i] as number);
    c.simd(V_ADD32);
    c.get(SAVED[i] as number);
    c.get(MASK);
    c.simd(V_BITSELECT);
    c.set(ST[i] as number);
  }
  c.addTo(BLK, 1);
  c.br(0); // br loop
  c.end();
  c.end();

  // ---- digests: transpose the state back, byte-swapped, one 32-byte store per lane
  for (let half = 0; half < 2; half++) {
    for (let i = 0; i < 4; i++) {
      c.get(ST[half * 4 + i] as number);
      c.set(R[i] as number);
    }
    // reuse W[0..3] as the four lane rows
    transpose([W[0] as number, W[1] as number, W[2] as number, W[3] as number]);
    for (let l = 0; l < 4; l++) {
      c.get(G);
      c.i32(l);
      c.op(I32_ADD);
      c.get(P_COUNT);
      c.op(I32_LT_S);
      c.if();
      c.get(DST[l] as number);
      c.get(W[l] as number);
      c.vstore(half * 16);
      c.end();
    }
  }

  c.addTo(G, 4);
  c.br(0);
  c.end();
  c.end();
  c.end(); // function

  const body = [...vec([[...uleb(I32_LOCALS), I32], [...uleb(V128_LOCALS), V128]]), ...c.b];
  const eq = buildEqMany();
  const types = [[0x60, ...vec([[I32], [I32], [I32]]), 0x00]];
  const funcs = [[0x00], [0x00]];
  const exports = [[...name('memory'), 0x02, 0x00], [...name('hashMany'), 0x00, 0x00], [...name('eqMany'), 0x00, 0x01]];
  const code = [[...uleb(body.length), ...body], [...uleb(eq.length), ...eq]];
  if (extra !== undefined) {
    types.push([0x60, ...vec(Array.from({ length: extra.params }, () => [I32])), 0x00]);
    funcs.push([0x01]);
    exports.push([...name(extra.name), 0x00, 0x02]);
    code.push([...uleb(extra.body.length), ...extra.body]);
  }
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(3, vec(funcs)),
    ...section(5, vec([[0x00, ...uleb(32)]])),
    ...section(7, vec(exports)),
    ...section(10, vec(code)),
  ]);
}

/**
 * Emits `eqMany(pairs, count, out)`: for each (a, b, len) triple of i32, out[i] = 1 when
 * memory[a, a+len) equals memory[b, b+len), else 0 — sixteen bytes per compare. The verifier
 * compares hashes, signatures and identities of every record: one call for thousands of them.
 */
function buildEqMany(): number[] {
  // params 0..2 (pairs, count, out); i32 locals: i, a, b, len, k, eq
  const [P_PAIRS, P_COUNT, P_OUT, I, A, B, LEN, K, EQ] = [0, 1, 2, 3, 4, 5, 6, 7, 8] as const;
  const c = new Code();
  // eq = 0 for this pair, then (with a depth) out to $done
  const differ = (toDone?: number) => {
    c.i32(0);
    c.set(EQ);
    if (toDone !== undefined) c.br(toDone);
  };
  c.i32(0);
  c.set(I);
  c.block(); // $exit
  c.loop(); // $pairs
  c.get(I);
  c.get(P_COUNT);
  c.op(I32_GE_S);
  c.brIf(1); // -> $exit
  c.get(I);
  c.i32(12);
  c.op(0x6c);
  c.get(P_PAIRS);
  c.op(I32_ADD);
  c.tee(K);
  c.load32(0);
  c.set(A);
  c.get(K);
  c.load32(4);
  c.set(B);
  c.get(K);
  c.load32(8);
  c.set(LEN);
  c.i32(1);
  c.set(EQ);
  c.i32(0);
  c.set(K);
  c.block(); // $done
  c.block(); // $tail
  c.loop(); // $chunks
  c.get(K);
  c.i32(16);
  c.op(I32_ADD);
  c.get(LEN);
  c.op(0x4a); // k + 16 > len
  c.brIf(1); // -> $tail
  c.get(A);
  c.get(K);
  c.op(I32_ADD);
  c.vload(0);
  c.get(B);
  c.get(K);
  c.op(I32_ADD);
  c.vload(0);
  c.simd(0x23); // i8x16.eq
  c.simd(0x63); // i8x16.all_true
  c.op(0x45); // i32.eqz
  c.if(); // if not all equal
  differ(3); // -> $done (if, $chunks, $tail, $done)
  c.end();
  c.addTo(K, 16);
  c.br(0); // -> $chunks
  c.end(); // $chunks
  c.end(); // $tail
  // a tail of 1..15 bytes after at least one chunk: compare the last sixteen bytes instead
  // (overlapping the chunks already compared) rather than byte by byte
  c.get(K);
  c.get(LEN);
  c.op(I32_LT_S);
  c.get(LEN);
  c.i32(16);
  c.op(I32_GE_S);
  c.op(I32_AND);
  c.if(); // if
  c.get(A);
  c.get(LEN);
  c.op(I32_ADD);
  c.i32(16);
  c.op(I32_SUB);
  c.vload(0);
  c.get(B);
  c.get(LEN);
  c.op(I32_ADD);
  c.i32(16);
  c.op(I32_SUB);
  c.vload(0);
  c.simd(0x23); // i8x16.eq
  c.simd(0x63); // i8x16.all_true
  c.op(0x45); // i32.eqz
  c.if();
  differ();
  c.end();
  c.br(1); // -> $done (if, $done)
  c.end();
  c.loop(); // $bytes
  c.get(K);
  c.get(LEN);
  c.op(I32_GE_S);
  c.brIf(1); // -> $done
  c.get(A);
  c.get(K);
  c.op(I32_ADD);
  c.op(0x2d, 0, 0); // i32.load8_u
  c.get(B);
  c.get(K);
  c.op(I32_ADD);
  c.op(0x2d, 0, 0);
  c.op(0x47); // i32.ne
  c.if();
  differ(2); // -> $done (if, $bytes, $done)
  c.end();
  c.addTo(K, 1);
  c.br(0);
  c.end(); // $bytes
  c.end(); // $done
  c.get(P_OUT);
  c.get(I);
  c.op(I32_ADD);
  c.get(EQ);
  c.store8(0);
  c.addTo(I, 1);
  c.br(0); // -> $pairs
  c.end(); // $pairs
  c.end(); // $exit
  c.end(); // function
  return [...vec([[...uleb(6), I32]]), ...c.b];
}

// ---------------------------------------------------------------- the hasher

type HashManyFn = (jobs: number, count: number, scratch: number) => void;
type EqManyFn = (pairs: number, count: number, out: number) => void;

// The few WebAssembly JS API members used here (the project's lib settings carry no DOM types).
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmModule {
  readonly __wasmModule?: never;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: Record<string, unknown> };
}
const WA = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

// per extra function (by object: each user defines its own once), '' for none
const compiled = new Map<KernelFunction | '', WasmModule | null>();

/** Compiles the kernel once per thread (and extra function); null when this runtime lacks WebAssembly SIMD. */
function kernelModule(extra?: KernelFunction): WasmModule | null {
  const key = extra ?? '';
  const known = compiled.get(key);
  if (known !== undefined) return known;
  let mod: WasmModule | null;
  try {
    if (!WA) throw new Error('no WebAssembly');
    mod = new WA.Module(buildModule(extra));
  } catch {
    // no WebAssembly, or no SIMD / bulk memory: the node:crypto path does the same work
    mod = null;
  }
  compiled.set(key, mod);
  return mod;
}

/** Which implementation a hasher uses. */
export type HasherKind = 'wasm-simd' | 'node-crypto';

export interface Sha256ManyOptions {
  /** Force an implementation (tests, benchmarks); default: the kernel when it works. */
  kind?: HasherKind;
  /** A function of the caller's to compile into the module (see {@link Sha256Many.extra}). */
  extra?: KernelFunction;
}

/**
 * A reusable arena plus a job queue for many SHA-256 digests. Not thread-safe; one per worker.
 *
 * @example
 * const h = Sha256Many.create();
 * const body = h.write(bytes);
 * const leaf = h.job(0x00, body, bytes.length);   // RFC 9162 leaf hash
 * const rec = h.job(-1, body, bytes.length);      // plain SHA-256
 * h.run();
 * h.digest(leaf); // Uint8Array(32)
 */
export class Sha256Many {
  readonly kind: HasherKind;
  #memory: WasmMemory | null;
  #buffer: ArrayBuffer;
  #view: Uint8Array;
  #hashMany: HashManyFn | null;
  #eqMany: EqManyFn | null;
  #extra: { name: string; fn: (...args: number[]) => void } | null = null;
  #pairs = new Int32Array(3 * 1024);
  #pairCount = 0;
  /** First arena byte (after the lane scratch areas). */
  readonly #arenaStart: number;
  #top: number;
  #jobs = new Int32Array(6 * 1024);
  #jobCount = 0;
  /** SHA-256 compression blocks of the jobs run since the last {@link reset} (work accounting). */
  blocks = 0;

  private constructor(kind: HasherKind, memory: WasmMemory | null, hashMany: HashManyFn | null, eqMany: EqManyFn | null) {
    this.kind = kind;
    this.#memory = memory;
    this.#hashMany = hashMany;
    this.#eqMany = eqMany;
    this.#buffer = memory ? memory.buffer : new ArrayBuffer(1 << 20);
    this.#view = new Uint8Array(this.#buffer);
    this.#arenaStart = memory ? SCRATCH_BYTES : 0;
    if (memory) {
      // the round constants, each in all four lanes, where the kernel reads them
      const k = new Uint32Array(this.#buffer, 4 * LANE_BYTES + 1024, 256);
      for (let i = 0; i < 256; i++) k[i] = K[i >> 2] as number;
    }
    this.#top = this.#arenaStart;
  }

  /** A hasher using the SIMD kernel when this runtime has it, node:crypto otherwise. */
  static create(opts: Sha256ManyOptions = {}): Sha256Many {
    if (opts.kind !== 'node-crypto') {
      const mod = kernelModule(opts.extra);
      if (mod) {
        const instance = new (WA as WasmApi).Instance(mod, {});
        const memory = instance.exports.memory as WasmMemory;
        const h = new Sha256Many('wasm-simd', memory, instance.exports.hashMany as HashManyFn, instance.exports.eqMany as EqManyFn);
        if (opts.extra !== undefined) h.#extra = { name: opts.extra.name, fn: instance.exports[opts.extra.name] as (...args: number[]) => void };
        if (h.#selfTest()) return h;
      }
      if (opts.kind === 'wasm-simd') throw new Error('the WebAssembly SIMD SHA-256 kernel is not available here');
    }
    return new Sha256Many('node-crypto', null, null, null);
  }

  /** The whole memory; re-read it after {@link alloc}, {@link write} or {@link job} (it may grow). */
  get bytes(): Uint8Array {
    return this.#view;
  }

  /** Forgets every allocation, queued job and comparison (offsets handed out before become invalid). */
  reset(): void {
    this.#top = this.#arenaStart;
    this.#jobCount = 0;
    this.#pairCount = 0;
    this.blocks = 0;
  }

  /**
   * Queues a byte comparison of `mem[a, a+len)` with `mem[b, b+len)`; returns its index in the
   * result of {@link compareAll}.
   */
  compare(a: number, b: number, len: number): number {
    if (this.#pairCount * 3 === this.#pairs.length) {
      const bigger = new Int32Array(this.#pairs.length * 2);
      bigger.set(this.#pairs);
      this.#pairs = bigger;
    }
    const o = this.#pairCount * 3;
    this.#pairs[o] = a;
    this.#pairs[o + 1] = b;
    this.#pairs[o + 2] = len;
    return this.#pairCount++;
  }

  /** Runs the queued comparisons: result[i] is 1 when comparison i found equal bytes. */
  compareAll(): Uint8Array {
    const count = this.#pairCount;
    this.#pairCount = 0;
    if (count === 0) return new Uint8Array(0);
    const pairs = this.#pairs.subarray(0, 3 * count);
    if (this.#eqMany === null) {
      const v = this.#view;
      const out = new Uint8Array(count);
      for (let i = 0; i < count; i++) {
        const a = pairs[3 * i] as number;
        const b = pairs[3 * i + 1] as number;
        const len = pairs[3 * i + 2] as number;
        let eq = 1;
        for (let k = 0; k < len; k++) {
          if (v[a + k] !== v[b + k]) {
            eq = 0;
            break;
          }
        }
        out[i] = eq;
      }
      return out;
    }
    const top = this.#top;
    const at = this.alloc(12 * count + count);
    new Int32Array(this.#buffer, at, 3 * count).set(pairs);
    this.#eqMany(at, count, at + 12 * count);
    const out = this.#view.slice(at + 12 * count, at + 12 * count + count);
    this.#top = top;
    return out;
  }

  /**
   * The extra function `name` compiled into this hasher's module ({@link Sha256ManyOptions.extra}),
   * working on {@link bytes}; null on the node:crypto path or when the module has no such function.
   */
  extra(name: string): ((...args: number[]) => void) | null {
    return this.#extra?.name === name ? this.#extra.fn : null;
  }

  /** The arena's top now: {@link release} with it frees what is allocated after (scratch space of one step). */
  mark(): number {
    return this.#top;
  }

  /** Frees everything allocated since {@link mark} returned `top`. */
  release(top: number): void {
    if (top < this.#arenaStart || top > this.#top) throw new RangeError('release: not an earlier top');
    this.#top = top;
  }

  /** Reserves `n` bytes (8-byte aligned) and returns their offset. */
  alloc(n: number): number {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('alloc: bad size');
    const at = this.#top;
    const top = at + ((n + 7) & ~7);
    if (top > 0x7fff_0000) throw new RangeError('hasher arena exhausted (2 GiB)');
    // SLACK bytes stay mapped past the top: the kernel reads whole 16-byte chunks
    if (top + SLACK > this.#buffer.byteLength) this.#grow(top + SLACK);
    this.#top = top;
    return at;
  }

  /** Copies bytes into the arena; returns their offset. */
  write(data: Uint8Array): number {
    const at = this.alloc(data.length);
    this.#view.set(data, at);
    return at;
  }

  /**
   * Queues SHA-256 over `[prefix] || mem[src1, src1+len1) || mem[src2, src2+len2)` (prefix -1:
   * none) and returns the offset of its 32-byte output slot.
   */
  job(prefix: number, src1: number, len1: number, src2 = 0, len2 = 0): number {
    const dst = this.alloc(32);
    this.jobInto(dst, prefix, src1, len1, src2, len2);
    return dst;
  }

  /** Like {@link job}, writing the digest at `dst` (32 bytes the caller allocated). */
  jobInto(dst: number, prefix: number, src1: number, len1: number, src2 = 0, len2 = 0): void {
    if (this.#jobCount * JOB_WORDS === this.#jobs.length) {
      const bigger = new Int32Array(this.#jobs.length * 2);
      bigger.set(this.#jobs);
      this.#jobs = bigger;
    }
    const j = this.#jobs;
    const o = this.#jobCount * JOB_WORDS;
    j[o] = prefix;
    j[o + 1] = src1;
    j[o + 2] = len1;
    j[o + 3] = src2;
    j[o + 4] = len2;
    j[o + 5] = dst;
    this.#jobCount++;
  }

  /** Number of queued jobs. */
  get pending(): number {
    return this.#jobCount;
  }

  /** Runs every queued job; afterwards their output slots hold the digests. */
  run(): void {
    const count = this.#jobCount;
    if (count === 0) return;
    const jobs = this.#jobs;
    let blocks = 0;
    if (this.#hashMany === null) {
      for (let i = 0; i < count; i++) {
        const o = i * JOB_WORDS;
        blocks += (((jobs[o] as number) >= 0 ? 73 : 72) + (jobs[o + 2] as number) + (jobs[o + 4] as number)) >>> 6;
        this.#nodeJob(jobs, o);
      }
      this.blocks += blocks;
      this.#jobCount = 0;
      return;
    }
    // messages longer than a lane go to OpenSSL (rare: large payloads), the rest to the kernel
    let kernelJobs = 0;
    for (let i = 0; i < count; i++) {
      const o = i * JOB_WORDS;
      const total = (jobs[o] as number) >= 0 ? 1 + (jobs[o + 2] as number) + (jobs[o + 4] as number) : (jobs[o + 2] as number) + (jobs[o + 4] as number);
      // padding: 0x80 and the 8-byte length, rounded up to whole 64-byte blocks
      blocks += (total + 72) >>> 6;
      if (total > MAX_KERNEL_MESSAGE) {
        this.#nodeJob(jobs, o);
        continue;
      }
      if (kernelJobs !== i) jobs.copyWithin(kernelJobs * JOB_WORDS, o, o + JOB_WORDS);
      kernelJobs++;
    }
    this.#jobCount = 0;
    this.blocks += blocks;
    if (kernelJobs === 0) return;
    const at = this.alloc(kernelJobs * JOB_WORDS * 4);
    new Int32Array(this.#buffer, at, kernelJobs * JOB_WORDS).set(jobs.subarray(0, kernelJobs * JOB_WORDS));
    this.#hashMany(at, kernelJobs, 0);
    // the descriptor area is scratch: give it back
    this.#top = at;
  }

  /** The 32-byte digest (or any bytes) at an offset, copied out. */
  digest(at: number, n = 32): Uint8Array {
    return this.#view.slice(at, at + n);
  }

  #nodeJob(jobs: Int32Array, o: number): void {
    const prefix = jobs[o] as number;
    const v = this.#view;
    const p1 = v.subarray(jobs[o + 1] as number, (jobs[o + 1] as number) + (jobs[o + 2] as number));
    const p2 = v.subarray(jobs[o + 3] as number, (jobs[o + 3] as number) + (jobs[o + 4] as number));
    const parts: Uint8Array[] = [];
    if (prefix >= 0) parts.push(new Uint8Array([prefix]));
    parts.push(p1, p2);
    const d = nodeHash('sha256', Buffer.concat(parts), 'buffer');
    v.set(d, jobs[o + 5] as number);
  }

  #grow(top: number): void {
    if (this.#memory) {
      const need = Math.ceil((top - this.#buffer.byteLength) / PAGE);
      // grow geometrically so a task that builds its arena step by step grows O(log n) times
      const pages = Math.max(need, Math.ceil(this.#buffer.byteLength / PAGE / 2));
      this.#memory.grow(pages);
      this.#buffer = this.#memory.buffer;
    } else {
      const bigger = new ArrayBuffer(Math.max(top, this.#buffer.byteLength * 2));
      new Uint8Array(bigger).set(this.#view);
      this.#buffer = bigger;
    }
    this.#view = new Uint8Array(this.#buffer);
  }

  /** Compares the kernel with node:crypto on every lane-length class once. */
  #selfTest(): boolean {
    try {
      const lens = [0, 1, 31, 55, 56, 63, 64, 65, 119, 120, 200, 1000, 4096];
      const inputs = lens.map((n, i) => Uint8Array.from({ length: n }, (_, k) => (k * 31 + i * 7) & 0xff));
      const slots = inputs.map((m, i) => {
        const at = this.write(m);
        return this.job(i % 2 === 0 ? -1 : 0x01, at, m.length);
      });
      this.run();
      const ok = inputs.every((m, i) => {
        const expect = nodeHash('sha256', i % 2 === 0 ? m : Buffer.concat([Buffer.from([0x01]), m]), 'buffer');
        return Buffer.compare(expect, this.digest(slots[i] as number)) === 0;
      });
      // comparisons: equal and unequal at every position of a 35-byte span
      const x = this.write(Uint8Array.from({ length: 35 }, (_, k) => k));
      const y = this.write(Uint8Array.from({ length: 35 }, (_, k) => k));
      const z = this.write(Uint8Array.from({ length: 35 }, (_, k) => (k === 33 ? 0 : k)));
      const e = [this.compare(x, y, 35), this.compare(x, z, 35), this.compare(x, z, 33), this.compare(x, z, 0)];
      const r = this.compareAll();
      const cmpOk = r[e[0] as number] === 1 && r[e[1] as number] === 0 && r[e[2] as number] === 1 && r[e[3] as number] === 1;
      this.reset();
      return ok && cmpOk;
    } catch {
      return false;
    }
  }
}
