/**
 * @module protocol/test/bytes
 * The pre-authentication encoding every signature covers must be injective (no two signed
 * objects share bytes); hex/base64 decoders must reject garbage with coded errors.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { abytes, concat, Domain, equalBytes, fromBase64, fromHex, pae, sha256, toBase64, toHex, u64be, utf8 } from '../src/bytes.ts';
import { expectCode, toHexStr } from './helpers.ts';

/** A decoder written for the test: if it recovers (type, payload) from every encoding, pae is injective. */
function unpae(b: Uint8Array): { type: string; payload: Uint8Array } {
  const magic = new TextDecoder().decode(b.subarray(0, 6));
  expect(magic).toBe('DIVSv1');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const tlen = dv.getUint16(6);
  const type = new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(8, 8 + tlen));
  const plen = Number(dv.getBigUint64(8 + tlen));
  const payload = b.subarray(16 + tlen);
  expect(payload.length).toBe(plen);
  return { type, payload };
}

// Domain types are well-formed Unicode (pae encodes them as UTF-8).
const typeArb = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 });
const payloadArb = fc.uint8Array({ maxLength: 200 });

describe('pae', () => {
  it('[REG-3] [END-3] pae is injective: every encoding decodes back to its own (type, payload)', () => {
    fc.assert(
      fc.property(typeArb, payloadArb, (type, payload) => {
        const d = unpae(pae(type, payload));
        expect(d.type).toBe(type);
        expect(toHexStr(d.payload)).toBe(toHexStr(payload));
      }),
      { numRuns: 300 },
    );
  });

  it('[REG-3] [END-3] different (type, payload) pairs give different encodings, also when bytes move across the boundary', () => {
    // independent pairs
    fc.assert(
      fc.property(typeArb, payloadArb, typeArb, payloadArb, (t1, p1, t2, p2) => {
        fc.pre(t1 !== t2 || toHexStr(p1) !== toHexStr(p2));
        expect(toHexStr(pae(t1, p1))).not.toBe(toHexStr(pae(t2, p2)));
      }),
      { numRuns: 300 },
    );
    // adversarial pairs: the same concatenated bytes split at another place
    const ascii = fc.string({ unit: fc.constantFrom(...'abcdefghij/-'), minLength: 2, maxLength: 30 });
    fc.assert(
      fc.property(ascii, payloadArb, fc.nat(), (s, tail, cut) => {
        const k = 1 + (cut % (s.length - 1));
        const a = pae(s, tail);
        const b = pae(s.slice(0, k), concat(utf8(s.slice(k)), tail));
        expect(toHexStr(a)).not.toBe(toHexStr(b));
      }),
      { numRuns: 300 },
    );
  });

  it('[END-3] the layout is "DIVSv1" || u16be(len type) || type || u64be(len payload) || payload', () => {
    expect(toHexStr(pae('t', new Uint8Array([0xaa, 0xbb])))).toBe('444956537631' + '0001' + '74' + '0000000000000002' + 'aabb');
    expect(toHexStr(pae('t', new Uint8Array(0)))).toBe('444956537631000174' + '0000000000000000');
    // a length past 16 bits, and the same type twice (its head is then reused)
    for (let i = 0; i < 2; i++) expect(toHexStr(pae('t', new Uint8Array(70_000)).subarray(0, 17))).toBe('444956537631000174' + '0000000000011170');
  });

  it('[END-3] an empty or over-long type is INVALID_ARGUMENT', () => {
    expectCode(() => pae('', new Uint8Array(1)), 'INVALID_ARGUMENT');
    expectCode(() => pae('x'.repeat(0x10000), new Uint8Array(1)), 'INVALID_ARGUMENT');
    // a lone surrogate would encode as U+FFFD, like another type name
    expectCode(() => pae('divs/\uD800', new Uint8Array(1)), 'INVALID_ARGUMENT');
    expectCode(() => pae(7 as unknown as string, new Uint8Array(1)), 'INVALID_ARGUMENT');
    expect(pae('x'.repeat(0xffff), new Uint8Array(0)).length).toBe(6 + 2 + 0xffff + 8);
  });

  it('[END-3] every signature domain is distinct', () => {
    const values = Object.values(Domain);
    expect(new Set(values).size).toBe(values.length);
  });
});

describe('hex and base64', () => {
  it('[REG-3] hex round-trips any bytes and accepts either case', () => {
    fc.assert(fc.property(payloadArb, (b) => {
        expect(toHexStr(fromHex(toHex(b)))).toBe(toHexStr(b));
      }));
    expect(toHexStr(fromHex('ABcd'))).toBe('abcd');
    expect(fromHex('').length).toBe(0);
  });

  it('[REG-3] hex garbage is INVALID_ARGUMENT: odd length, non-hex characters, prefixes, whitespace', () => {
    for (const bad of ['a', 'abc', 'zz', '0x00', ' 00', '00 ', '0g', 'ab\n', 'éé', '+1', '-1']) expectCode(() => fromHex(bad), 'INVALID_ARGUMENT');
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 20 }), (s) => {
        fc.pre(!/^(?:[0-9a-fA-F]{2})*$/.test(s));
        expectCode(() => fromHex(s), 'INVALID_ARGUMENT');
      }),
    );
  });

  it('[REG-3] base64 round-trips any bytes', () => {
    fc.assert(fc.property(payloadArb, (b) => {
        expect(toHexStr(fromBase64(toBase64(b)))).toBe(toHexStr(b));
      }));
    expect(toHexStr(fromBase64('3q2+7w=='))).toBe('deadbeef');
  });

  it('[REG-3] base64 garbage is INVALID_ARGUMENT: bad length or padding, url alphabet, whitespace', () => {
    for (const bad of ['A', 'AB', 'ABC', 'AB=C', '=AAA', 'AAA===', 'A===', '3q2-7w==', '3q2_7w==', '3q2+ 7w==', '3q2+7w==\n', '3q2+7w', '****']) {
      expectCode(() => fromBase64(bad), 'INVALID_ARGUMENT');
    }
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 20 }), (s) => {
        fc.pre(!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0);
        expectCode(() => fromBase64(s), 'INVALID_ARGUMENT');
      }),
    );
  });
});

describe('byte helpers', () => {
  it('[VER-3] sha256 known answer, over concatenated parts', () => {
    expect(toHexStr(sha256(utf8('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(toHexStr(sha256(utf8('a'), utf8('bc')))).toBe(toHexStr(sha256(utf8('abc'))));
  });

  it('[VER-3] equalBytes compares length and content', () => {
    expect(equalBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2]))).toBe(true);
    expect(equalBytes(new Uint8Array([1, 2]), new Uint8Array([1, 3]))).toBe(false);
    expect(equalBytes(new Uint8Array([1]), new Uint8Array([1, 0]))).toBe(false);
    expect(equalBytes(new Uint8Array(0), new Uint8Array(0))).toBe(true);
  });

  it('[REG-3] u64be and abytes', () => {
    expect(toHexStr(u64be(0x0102030405n))).toBe('0000000102030405');
    expect(toHexStr(u64be(Number.MAX_SAFE_INTEGER))).toBe('001fffffffffffff');
    expect(abytes(new Uint8Array(3), 'x', 3).length).toBe(3);
    expectCode(() => abytes(new Uint8Array(3), 'x', 32, 33), 'INVALID_ARGUMENT');
    expectCode(() => abytes('abc', 'x'), 'INVALID_ARGUMENT');
    expectCode(() => abytes(undefined, 'x'), 'INVALID_ARGUMENT');
  });
});
