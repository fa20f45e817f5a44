/**
 * @module bytes
 * Byte helpers, SHA-256, and the pre-authentication encoding every DIVS signature covers.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { fail } from './errors.ts';

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest().buffer.slice(0)) as Uint8Array;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && (a.length === 0 || timingSafeEqual(a, b));
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function fromHex(s: string, label = 'hex'): Uint8Array {
  if (typeof s !== 'string') fail('INVALID_ARGUMENT', `${label}: expected a hex string`);
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) fail('INVALID_ARGUMENT', `${label}: not a hex string`);
  return new Uint8Array(Buffer.from(s, 'hex'));
}

export function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

export function fromBase64(s: string, label = 'base64'): Uint8Array {
  if (typeof s !== 'string') fail('INVALID_ARGUMENT', `${label}: expected a base64 string`);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) fail('INVALID_ARGUMENT', `${label}: not base64`);
  return new Uint8Array(Buffer.from(s, 'base64'));
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

export function u64be(n: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

/** Writes `v` (a non-negative safe integer) as 8 big-endian bytes at `out[at]`, without BigInt. */
export function writeU64be(out: Uint8Array, at: number, v: number): void {
  const hi = Math.floor(v / 2 ** 32);
  const lo = v >>> 0;
  out[at] = hi >>> 24;
  out[at + 1] = (hi >>> 16) & 0xff;
  out[at + 2] = (hi >>> 8) & 0xff;
  out[at + 3] = hi & 0xff;
  out[at + 4] = lo >>> 24;
  out[at + 5] = (lo >>> 16) & 0xff;
  out[at + 6] = (lo >>> 8) & 0xff;
  out[at + 7] = lo & 0xff;
}

/** Checks that a value is a Uint8Array of an expected length, with a labelled coded error. */
export function abytes(value: unknown, label: string, ...lengths: number[]): Uint8Array {
  if (!(value instanceof Uint8Array)) fail('INVALID_ARGUMENT', `${label}: expected bytes`);
  if (lengths.length > 0 && !lengths.includes(value.length)) {
    fail('INVALID_ARGUMENT', `${label}: expected ${lengths.join(' or ')} bytes, got ${value.length}`);
  }
  return value;
}

const MAGIC = utf8('DIVSv1');

/**
 * Pre-authentication encoding (DSSE style) over exact bytes:
 * `"DIVSv1" || u16be(len(type)) || type || u64be(len(payload)) || payload`.
 * `type` names what is signed (e.g. "divs/registration"), so a signature over one kind of
 * object can never be replayed as another.
 */
export function pae(type: string, payload: Uint8Array): Uint8Array {
  const head = paeHead(type);
  // one allocation, no BigInt: every endorsement a node validates goes through here
  const out = new Uint8Array(head.length + 8 + payload.length);
  out.set(head, 0);
  writeU64be(out, head.length, payload.length);
  out.set(payload, head.length + 8);
  return out;
}

// `"DIVSv1" || u16be(len(type)) || type` per type name: a handful of domains, each encoded once
const paeHeads = new Map<string, Uint8Array>();

/**
 * The part of {@link pae} before the payload length: `"DIVSv1" || u16be(len(type)) || type`
 * (shared, do not modify) — for a caller that builds PAE encodings in a buffer of its own.
 */
export function paeHead(type: string): Uint8Array {
  const known = paeHeads.get(type);
  if (known !== undefined) return known;
  // a lone surrogate would encode as U+FFFD and collide with another type name
  if (typeof type !== 'string' || !type.isWellFormed()) fail('INVALID_ARGUMENT', 'pae: type must be well-formed text');
  const t = utf8(type);
  if (t.length === 0 || t.length > 0xffff) fail('INVALID_ARGUMENT', 'pae: bad type');
  const head = concat(MAGIC, Uint8Array.of(t.length >> 8, t.length & 0xff), t);
  // only the fixed domains are hot; a caller's ad-hoc names are not kept without bound
  if (paeHeads.size < 64) paeHeads.set(type, head);
  return head;
}

/** Signature domains: one per signed object type. */
export const Domain = {
  registration: 'divs/registration',
  endorsement: 'divs/endorsement',
  endorsementSummary: 'divs/endorsement-summary',
  checkpoint: 'divs/checkpoint',
  ueChallenge: 'divs/ue-challenge',
  record: 'divs/record',
  recordBatch: 'divs/record-batch',
  report: 'divs/verification-report',
  attestation: 'divs/attestation',
  cosignature: 'divs/cosignature',
} as const;
