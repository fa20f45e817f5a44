/**
 * @module verify/scan-kernel
 * The one-pass record reader ({@link scanCanonical}) as WebAssembly, for many records per call:
 * `scanMany(offsets, count, base, out)` reads records `i` = 0 … count-1 at
 * `memory[base + offsets[i], base + offsets[i+1])` and writes what scanCanonical would put in
 * its RecordFields, as SCAN_STRIDE bytes per record at `out` (offsets relative to `base`).
 *
 * It answers exactly as scanCanonical for the records it accepts (slot OK = 1); for any other
 * (non-canonical or malformed, or a batch index, batch size or length beyond 2^31) it writes
 * OK = 0 and the caller asks the JavaScript readers, which have the last word. The tests
 * compare both on generated and mutated records.
 */
import { Code, I32, I64, uleb } from '../../../protocol/src/wasm-emit.ts';
import { Sha256Many, type KernelFunction } from '../../../protocol/src/sha256x4.ts';
import type { RecordFields } from './wire.ts';

/** i32 slots of one record's output (the f64 values follow at F64_AT). */
export const SLOT = {
  OK: 0,
  BODY_OFF: 1,
  BODY_LEN: 2,
  SIG_OFF: 3,
  SIG_LEN: 4,
  BATCH: 5,
  BATCH_INDEX: 6,
  BATCH_SIZE: 7,
  ROOT_OFF: 8,
  ROOT_LEN: 9,
  PATH_COUNT: 10,
  PATH_OFF: 11,
  BATCH_OFF: 12,
  BATCH_LEN: 13,
  ID_OFF: 14,
  ID_LEN: 15,
  PREV_OFF: 16,
  PREV_LEN: 17,
  CT_OFF: 18,
  CT_LEN: 19,
  PAYLOAD_OFF: 20,
  PAYLOAD_LEN: 21,
  HAS_TX: 22,
  TXHASH_OFF: 23,
  TXHASH_LEN: 24,
  LEDGER_OFF: 25,
  LEDGER_LEN: 26,
  ENTRY_OFF: 27,
  ENTRY_LEN: 28,
} as const;
const I32_SLOTS = 29;
/** Byte offsets of the f64 values: sequence, timestamp, tx ID. */
const F64_AT = 120;
export const F64 = { SEQUENCE: F64_AT, TIMESTAMP: F64_AT + 8, TX_ID: F64_AT + 16 } as const;
/** Bytes of one record's output. */
export const SCAN_STRIDE = F64_AT + 24;

/** Slots whose "absent" value is -1 (offsets); every other slot starts at 0. */
const OFFSET_SLOTS: number[] = Object.entries(SLOT)
  .filter(([k]) => k.endsWith('_OFF'))
  .map(([, v]) => v);

/** Copies record `i`'s output into `f` (as scanCanonical leaves it). */
export function fieldsFromScan(i32: Int32Array, f64: Float64Array, i: number, f: RecordFields): void {
  const o = (i * SCAN_STRIDE) >> 2;
  const d = (i * SCAN_STRIDE + F64_AT) >> 3;
  f.bodyOff = i32[o + SLOT.BODY_OFF] as number;
  f.bodyLen = i32[o + SLOT.BODY_LEN] as number;
  f.sigOff = i32[o + SLOT.SIG_OFF] as number;
  f.sigLen = i32[o + SLOT.SIG_LEN] as number;
  f.batch = i32[o + SLOT.BATCH] === 1;
  f.batchIndex = i32[o + SLOT.BATCH_INDEX] as number;
  f.batchSize = i32[o + SLOT.BATCH_SIZE] as number;
  f.rootOff = i32[o + SLOT.ROOT_OFF] as number;
  f.rootLen = i32[o + SLOT.ROOT_LEN] as number;
  f.pathCount = i32[o + SLOT.PATH_COUNT] as number;
  f.pathOff = i32[o + SLOT.PATH_OFF] as number;
  f.pathHashes = true;
  f.batchOff = i32[o + SLOT.BATCH_OFF] as number;
  f.batchLen = i32[o + SLOT.BATCH_LEN] as number;
  f.identityOff = i32[o + SLOT.ID_OFF] as number;
  f.identityLen = i32[o + SLOT.ID_LEN] as number;
  f.prevOff = i32[o + SLOT.PREV_OFF] as number;
  f.prevLen = i32[o + SLOT.PREV_LEN] as number;
  f.contentTypeOff = i32[o + SLOT.CT_OFF] as number;
  f.contentTypeLen = i32[o + SLOT.CT_LEN] as number;
  f.payloadOff = i32[o + SLOT.PAYLOAD_OFF] as number;
  f.payloadLen = i32[o + SLOT.PAYLOAD_LEN] as number;
  f.hasTx = i32[o + SLOT.HAS_TX] === 1;
  f.txHashOff = i32[o + SLOT.TXHASH_OFF] as number;
  f.txHashLen = i32[o + SLOT.TXHASH_LEN] as number;
  f.ledgerOff = i32[o + SLOT.LEDGER_OFF] as number;
  f.ledgerLen = i32[o + SLOT.LEDGER_LEN] as number;
  f.entryOff = i32[o + SLOT.ENTRY_OFF] as number;
  f.entryLen = i32[o + SLOT.ENTRY_LEN] as number;
  f.sequence = f64[d] as number;
  f.timestampMs = f64[d + 1] as number;
  f.txId = f64[d + 2] as number;
}

const I32_ADD = 0x6a;
const I32_SUB = 0x6b;
const I32_MUL = 0x6c;
const I32_EQ = 0x46;
const I32_NE = 0x47;
const I32_LT_S = 0x48;
const I32_GT_S = 0x4a;
const I32_GE_S = 0x4e;
const I32_AND = 0x71;
const I64_OR = 0x84;
const I64_SHL = 0x86;
const I64_GT_U = 0x56;
const I64_EXTEND_U = 0xad;
const I32_WRAP = 0xa7;
const F64_FROM_U64 = 0xba;

// params 0..3 (offsets, count, base, out), then the i32 locals, then V, the one i64 local
const [OFFS, COUNT, BASE, OUT, I, O, P, END, BODY, BODY_END, E1, E2, E3, N, CNT, RUN, Q, C, SH, V] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19] as const;
const I32_LOCALS = 15;

/** The `scanMany` function body (locals and code). */
function buildScanMany(): number[] {
  const c = new Code();
  const i32 = (v: number) => c.i32(v);
  const store = (slot: number, push: () => void) => {
    c.get(O);
    push();
    c.store32(slot * 4);
  };
  const storeRel = (slot: number, local: number) =>
    store(slot, () => {
      c.get(local);
      c.get(BASE);
      c.op(I32_SUB);
    });
  const storeF64 = (at: number) => {
    c.get(O);
    c.get(V);
    c.op(F64_FROM_U64);
    c.op(0x39, 3, ...uleb(at)); // f64.store
  };
  /** if (P < bound && mem[P] === tag) { body } */
  const field = (bound: number, tag: number, body: () => void) => {
    c.get(P);
    c.get(bound);
    c.op(I32_LT_S);
    c.if();
    c.get(P);
    c.load8();
    i32(tag);
    c.op(I32_EQ);
    c.if();
    body();
    c.end();
    c.end();
  };
  /** The varint after the tag at P, bytes in [P+1, bound) and at most 7 of them, into V; P moves past it. */
  const varint = (bound: number) => {
    c.get(P);
    i32(1);
    c.op(I32_ADD);
    c.set(Q);
    c.op(0x42, 0); // i64.const 0
    c.set(V);
    i32(0);
    c.set(SH);
    c.block('vdone');
    c.loop('vnext');
    // Q < bound and Q < P + 8
    c.get(Q);
    c.get(bound);
    c.op(I32_GE_S);
    c.brIf('fail');
    c.get(Q);
    c.get(P);
    i32(8);
    c.op(I32_ADD);
    c.op(I32_GE_S);
    c.brIf('fail');
    c.get(Q);
    c.load8();
    c.set(C);
    c.get(V);
    c.get(C);
    i32(0x7f);
    c.op(I32_AND);
    c.op(I64_EXTEND_U);
    c.get(SH);
    c.op(I64_EXTEND_U);
    c.op(I64_SHL);
    c.op(I64_OR);
    c.set(V);
    c.get(SH);
    i32(7);
    c.op(I32_ADD);
    c.set(SH);
    c.get(Q);
    i32(1);
    c.op(I32_ADD);
    c.set(Q);
    c.get(C);
    i32(0x80);
    c.op(I32_LT_S);
    c.brIf('vdone');
    c.br('vnext');
    c.end();
    c.end();
    c.get(Q);
    c.set(P);
  };
  /** V must fit the bytes left before `bound`: N = V, else fail. */
  const lengthWithin = (bound: number) => {
    c.get(V);
    c.get(bound);
    c.get(P);
    c.op(I32_SUB);
    c.op(I64_EXTEND_U);
    c.op(I64_GT_U);
    c.brIf('fail');
    c.get(V);
    c.op(I32_WRAP);
    c.set(N);
  };
  /** V below 2^31 (an i32 slot), else hand the record to JavaScript. */
  const small = () => {
    c.get(V);
    c.op(0x42, ...[0xff, 0xff, 0xff, 0xff, 0x07]); // i64.const 0x7fffffff
    c.op(I64_GT_U);
    c.brIf('fail');
  };
  /** A length-delimited field at P within `bound`: offset and length into the slots; P past it. */
  const bytesField = (bound: number, offSlot: number, lenSlot: number) => {
    varint(bound);
    lengthWithin(bound);
    storeRel(offSlot, P);
    store(lenSlot, () => c.get(N));
    c.get(P);
    c.get(N);
    c.op(I32_ADD);
    c.set(P);
  };
  const require = (a: number, cmp: number, b: number) => {
    // fail unless (a cmp b)
    c.get(a);
    c.get(b);
    c.op(cmp);
    c.op(0x45); // i32.eqz
    c.brIf('fail');
  };

  i32(0);
  c.set(I);
  c.block('done');
  c.loop('records');
  c.get(I);
  c.get(COUNT);
  c.op(I32_GE_S);
  c.brIf('done');
  // O = out + I * STRIDE; P = base + offsets[I]; END = base + offsets[I + 1]
  c.get(OUT);
  c.get(I);
  i32(SCAN_STRIDE);
  c.op(I32_MUL);
  c.op(I32_ADD);
  c.set(O);
  c.get(BASE);
  c.get(OFFS);
  c.get(I);
  i32(4);
  c.op(I32_MUL);
  c.op(I32_ADD);
  c.tee(Q);
  c.load32(0);
  c.op(I32_ADD);
  c.set(P);
  c.get(BASE);
  c.get(Q);
  c.load32(4);
  c.op(I32_ADD);
  c.set(END);
  // defaults (RecordFields' reset values)
  for (let s = 0; s < I32_SLOTS; s++) store(s, () => i32(OFFSET_SLOTS.includes(s) ? -1 : 0));
  c.op(0x42, 0);
  c.set(V);
  for (const at of [F64.SEQUENCE, F64.TIMESTAMP, F64.TX_ID]) storeF64(at);

  c.block('next');
  c.block('fail');
  // a non-empty record
  require(P, I32_LT_S, END);
  // SignedRecord.body (1): required, non-empty
  c.get(P);
  c.load8();
  i32(10);
  c.op(I32_NE);
  c.brIf('fail');
  varint(END);
  lengthWithin(END);
  c.get(N);
  c.op(0x45);
  c.brIf('fail');
  c.get(P);
  c.set(BODY);
  c.get(P);
  c.get(N);
  c.op(I32_ADD);
  c.tee(BODY_END);
  c.set(P);
  storeRel(SLOT.BODY_OFF, BODY);
  store(SLOT.BODY_LEN, () => c.get(N));
  // signature (2)
  field(END, 18, () => bytesField(END, SLOT.SIG_OFF, SLOT.SIG_LEN));
  // batch (3): index (1), size (2), path (3) as 32-byte hashes, root (4)
  field(END, 26, () => {
    varint(END);
    lengthWithin(END);
    c.get(P);
    c.get(N);
    c.op(I32_ADD);
    c.set(E1);
    store(SLOT.BATCH, () => i32(1));
    storeRel(SLOT.BATCH_OFF, P);
    store(SLOT.BATCH_LEN, () => c.get(N));
    field(E1, 8, () => {
      varint(E1);
      small();
      store(SLOT.BATCH_INDEX, () => {
        c.get(V);
        c.op(I32_WRAP);
      });
    });
    field(E1, 16, () => {
      varint(E1);
      small();
      store(SLOT.BATCH_SIZE, () => {
        c.get(V);
        c.op(I32_WRAP);
      });
    });
    i32(0);
    c.set(CNT);
    c.get(P);
    c.set(RUN);
    c.block('pathEnd');
    c.loop('path');
    c.get(P);
    i32(34);
    c.op(I32_ADD);
    c.get(E1);
    c.op(I32_GT_S);
    c.brIf('pathEnd');
    c.get(P);
    c.load8();
    i32(26);
    c.op(I32_NE);
    c.brIf('pathEnd');
    c.get(P);
    i32(1);
    c.op(I32_ADD);
    c.load8();
    i32(32);
    c.op(I32_NE);
    c.brIf('pathEnd');
    c.get(P);
    i32(34);
    c.op(I32_ADD);
    c.set(P);
    c.get(CNT);
    i32(1);
    c.op(I32_ADD);
    c.set(CNT);
    c.br('path');
    c.end();
    c.end();
    store(SLOT.PATH_COUNT, () => c.get(CNT));
    c.get(CNT);
    c.if();
    store(SLOT.PATH_OFF, () => {
      c.get(RUN);
      i32(2);
      c.op(I32_ADD);
      c.get(BASE);
      c.op(I32_SUB);
    });
    c.end();
    field(E1, 34, () => bytesField(E1, SLOT.ROOT_OFF, SLOT.ROOT_LEN));
    require(P, I32_EQ, E1);
  });
  require(P, I32_EQ, END);

  // RecordBody
  c.get(BODY);
  c.set(P);
  field(BODY_END, 10, () => bytesField(BODY_END, SLOT.ID_OFF, SLOT.ID_LEN));
  field(BODY_END, 16, () => {
    varint(BODY_END);
    storeF64(F64.SEQUENCE);
  });
  field(BODY_END, 26, () => bytesField(BODY_END, SLOT.PREV_OFF, SLOT.PREV_LEN));
  field(BODY_END, 32, () => {
    varint(BODY_END);
    storeF64(F64.TIMESTAMP);
  });
  field(BODY_END, 42, () => bytesField(BODY_END, SLOT.PAYLOAD_OFF, SLOT.PAYLOAD_LEN));
  field(BODY_END, 50, () => bytesField(BODY_END, SLOT.CT_OFF, SLOT.CT_LEN));
  field(BODY_END, 58, () => {
    // TxRef: tx_id (1), tx_hash (2), entry_address (3) = EntryAddress { ledger_id (1), as_urls (2)* }
    varint(BODY_END);
    lengthWithin(BODY_END);
    c.get(P);
    c.get(N);
    c.op(I32_ADD);
    c.set(E2);
    store(SLOT.HAS_TX, () => i32(1));
    field(E2, 8, () => {
      varint(E2);
      storeF64(F64.TX_ID);
    });
    field(E2, 18, () => bytesField(E2, SLOT.TXHASH_OFF, SLOT.TXHASH_LEN));
    field(E2, 26, () => {
      varint(E2);
      lengthWithin(E2);
      c.get(P);
      c.get(N);
      c.op(I32_ADD);
      c.set(E3);
      storeRel(SLOT.ENTRY_OFF, P);
      store(SLOT.ENTRY_LEN, () => c.get(N));
      field(E3, 10, () => bytesField(E3, SLOT.LEDGER_OFF, SLOT.LEDGER_LEN));
      c.block('urlsEnd');
      c.loop('urls');
      c.get(P);
      c.get(E3);
      c.op(I32_GE_S);
      c.brIf('urlsEnd');
      c.get(P);
      c.load8();
      i32(18);
      c.op(I32_NE);
      c.brIf('urlsEnd');
      varint(E3);
      lengthWithin(E3);
      c.get(P);
      c.get(N);
      c.op(I32_ADD);
      c.set(P);
      c.br('urls');
      c.end();
      c.end();
      require(P, I32_EQ, E3);
    });
    require(P, I32_EQ, E2);
  });
  require(P, I32_EQ, BODY_END);
  store(SLOT.OK, () => i32(1));
  c.br('next');
  c.end(); // fail: OK stays 0
  c.end(); // next
  c.get(I);
  i32(1);
  c.op(I32_ADD);
  c.set(I);
  c.br('records');
  c.end();
  c.end();
  c.end(); // function
  return [...uleb(2), ...uleb(I32_LOCALS), I32, 1, I64, ...c.b];
}

/** `scanMany` as the extra function of a {@link Sha256Many} module (same memory as its arena). */
export const SCAN_KERNEL: KernelFunction = { name: 'scanMany', params: 4, body: buildScanMany() };

/** A hasher whose module also holds the record reader: what the verifier uses. */
export function verifierHasher(): Sha256Many {
  return Sha256Many.create({ extra: SCAN_KERNEL });
}

/**
 * Reads `count` records with the WebAssembly record reader: record i is
 * `memory[base + offsets[i], base + offsets[i + 1])`, the offsets being u32 at `offsetsAt` of the
 * hasher's memory; SCAN_STRIDE bytes per record are written at `outAt`. False (nothing written)
 * when the hasher has no reader (node:crypto path, or made without {@link SCAN_KERNEL}): the
 * caller reads the records itself.
 */
export function scanRecords(h: Sha256Many, offsetsAt: number, count: number, base: number, outAt: number): boolean {
  const scan = h.extra(SCAN_KERNEL.name);
  if (scan === null) return false;
  scan(offsetsAt, count, base, outAt);
  return true;
}
