/**
 * @module protocol/test/identity
 * UE identity validation: IMEI (Luhn), IMEISV, ICCID, EID (ISO 7064 mod 97-10), MSISDN (E.164),
 * IMSI, and complete/lookup identities. Every bad value asserts its error code.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  describeIdentity,
  eidWithCheck,
  luhnCheckDigit,
  luhnValid,
  sameIdentity,
  validateEid,
  validateIccid,
  validateImei,
  validateImeisv,
  validateImsi,
  validateLookupIdentity,
  validateMsisdn,
  validateUeIdentity,
} from '../src/identity.ts';
import type { UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { expectCode } from './helpers.ts';

// 490154203237518 is the well-known example IMEI (TAC 49015420, serial 323751, check digit 8).
const IMEI = '490154203237518';
const ICCID20 = '8944500102198304826' + luhnCheckDigit('8944500102198304826');
const ICCID19 = '8901260222193581244';
const EID = eidWithCheck('890490320000100000000000000000');
const MSISDN = '+447700900123';

const digits = (n: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: n, maxLength: n });

/** The same string with the digit at `i` replaced by a different digit. */
function changeDigit(s: string, i: number, delta: number): string {
  const d = (Number(s[i]) + 1 + (delta % 9)) % 10;
  return s.slice(0, i) + String(d) + s.slice(i + 1);
}

const NOT_STRINGS = [undefined, null, 490154203237518, {}, [], true] as unknown as string[];

describe('Luhn', () => {
  it('[REG-3] the check digit makes the number valid; any single changed digit is detected', () => {
    expect(luhnValid('79927398713')).toBe(true); // the textbook example
    expect(luhnValid('79927398710')).toBe(false);
    fc.assert(
      fc.property(digits(14), fc.nat(), fc.nat(), (body, pos, delta) => {
        const full = body + luhnCheckDigit(body);
        expect(luhnValid(full)).toBe(true);
        expect(luhnValid(changeDigit(full, pos % full.length, delta))).toBe(false);
      }),
    );
  });
});

describe('IMEI and IMEISV', () => {
  it('[REG-3] accepts a 15-digit IMEI with a correct check digit', () => {
    expect(validateImei(IMEI)).toBe(IMEI);
    fc.assert(fc.property(digits(14), (body) => {
          expect(validateImei(body + luhnCheckDigit(body))).toHaveLength(15);
        }));
  });

  it('[REG-3] rejects wrong check digits, lengths, characters and types with INVALID_IMEI', () => {
    expectCode(() => validateImei('490154203237519'), 'INVALID_IMEI');
    expectCode(() => validateImei('49015420323751'), 'INVALID_IMEI');
    expectCode(() => validateImei('4901542032375180'), 'INVALID_IMEI');
    expectCode(() => validateImei('49015420323751a'), 'INVALID_IMEI');
    expectCode(() => validateImei(' 490154203237518'), 'INVALID_IMEI');
    expectCode(() => validateImei('49-015420-323751-8'), 'INVALID_IMEI');
    expectCode(() => validateImei('４９０１５４２０３２３７５１８'), 'INVALID_IMEI'); // full-width digits
    expectCode(() => validateImei(''), 'INVALID_IMEI');
    for (const v of NOT_STRINGS) expectCode(() => validateImei(v), 'INVALID_IMEI');
  });

  it('[REG-3] IMEISV is 16 digits (no check digit); anything else is INVALID_IMEISV', () => {
    expect(validateImeisv('4901542032375101')).toBe('4901542032375101');
    expectCode(() => validateImeisv('490154203237510'), 'INVALID_IMEISV');
    expectCode(() => validateImeisv('49015420323751012'), 'INVALID_IMEISV');
    expectCode(() => validateImeisv('490154203237510x'), 'INVALID_IMEISV');
    for (const v of NOT_STRINGS) expectCode(() => validateImeisv(v), 'INVALID_IMEISV');
  });
});

describe('ICCID', () => {
  it('[REG-3] accepts 19 digits (no check digit) and 20 digits with a Luhn check digit, both with prefix 89', () => {
    expect(validateIccid(ICCID19)).toBe(ICCID19);
    expect(validateIccid(ICCID20)).toBe(ICCID20);
    fc.assert(fc.property(digits(17), (body) => {
          expect(validateIccid('89' + body + luhnCheckDigit('89' + body))).toHaveLength(20);
        }));
  });

  it('[REG-3] rejects a bad Luhn digit on 20 digits, a wrong prefix, wrong lengths and types with INVALID_ICCID', () => {
    expectCode(() => validateIccid(changeDigit(ICCID20, 19, 0)), 'INVALID_ICCID');
    expectCode(() => validateIccid('98' + ICCID20.slice(2)), 'INVALID_ICCID');
    expectCode(() => validateIccid('1' + ICCID19.slice(1)), 'INVALID_ICCID');
    expectCode(() => validateIccid(ICCID19.slice(0, 18)), 'INVALID_ICCID');
    expectCode(() => validateIccid(ICCID20 + '1'), 'INVALID_ICCID');
    expectCode(() => validateIccid(ICCID19.slice(0, 18) + 'F'), 'INVALID_ICCID');
    for (const v of NOT_STRINGS) expectCode(() => validateIccid(v), 'INVALID_ICCID');
  });
});

describe('EID', () => {
  it('[REG-3] eidWithCheck makes a 32-digit EID whose value mod 97 is 1', () => {
    expect(EID).toHaveLength(32);
    expect(BigInt(EID) % 97n).toBe(1n);
    expect(validateEid(EID)).toBe(EID);
    fc.assert(
      fc.property(digits(30), (first30) => {
        const eid = eidWithCheck(first30);
        expect(eid.startsWith(first30)).toBe(true);
        expect(validateEid(eid)).toBe(eid);
      }),
    );
  });

  it('[REG-3] any single changed digit breaks the mod-97 check: INVALID_EID', () => {
    fc.assert(
      fc.property(digits(30), fc.nat(), fc.nat(), (first30, pos, delta) => {
        expectCode(() => validateEid(changeDigit(eidWithCheck(first30), pos % 32, delta)), 'INVALID_EID');
      }),
    );
  });

  it('[REG-3] rejects wrong lengths, characters and types with INVALID_EID', () => {
    expectCode(() => validateEid(EID.slice(0, 31)), 'INVALID_EID');
    expectCode(() => validateEid(EID + '0'), 'INVALID_EID');
    expectCode(() => validateEid(EID.slice(0, 31) + 'x'), 'INVALID_EID');
    expectCode(() => validateEid('0x' + EID.slice(2)), 'INVALID_EID');
    for (const v of NOT_STRINGS) expectCode(() => validateEid(v), 'INVALID_EID');
  });
});

describe('MSISDN and IMSI', () => {
  it('[REG-3] MSISDN is E.164: "+", a non-zero first digit, 5 to 15 digits', () => {
    for (const ok of [MSISDN, '+12025550123', '+86139000000000', '+35312', '+123456789012345']) expect(validateMsisdn(ok)).toBe(ok);
    for (const bad of ['447700900123', '+0447700900123', '+1234', '+1234567890123456', '+44 7700 900123', '+44-7700900123', '++447700900123', '+', '']) {
      expectCode(() => validateMsisdn(bad), 'INVALID_MSISDN');
    }
    for (const v of NOT_STRINGS) expectCode(() => validateMsisdn(v), 'INVALID_MSISDN');
  });

  it('[REG-3] IMSI is 15 digits; anything else is INVALID_IMSI', () => {
    expect(validateImsi('234150999999999')).toBe('234150999999999');
    for (const bad of ['23415099999999', '2341509999999999', '23415099999999a', '']) expectCode(() => validateImsi(bad), 'INVALID_IMSI');
    for (const v of NOT_STRINGS) expectCode(() => validateImsi(v), 'INVALID_IMSI');
  });
});

describe('UE identities', () => {
  const withIccid: UeIdentity = { imei: IMEI, iccid: ICCID20, eid: '', msisdn: MSISDN };
  const withEid: UeIdentity = { imei: IMEI, iccid: '', eid: EID, msisdn: MSISDN };

  it('[REG-1] [REG-3] a complete identity (IMEI, ICCID or EID, MSISDN) validates and is copied without extra fields', () => {
    expect(validateUeIdentity(withIccid)).toEqual(withIccid);
    expect(validateUeIdentity(withEid)).toEqual(withEid);
    const extra = { ...withIccid, imsi: '234150999999999' } as UeIdentity;
    expect(Object.keys(validateUeIdentity(extra)).sort()).toEqual(['eid', 'iccid', 'imei', 'msisdn']);
  });

  it('[REG-1] [REG-3] missing parts or both ICCID and EID are IDENTITY_INCOMPLETE', () => {
    expectCode(() => validateUeIdentity(undefined), 'IDENTITY_INCOMPLETE');
    expectCode(() => validateUeIdentity({ ...withIccid, imei: '' }), 'IDENTITY_INCOMPLETE');
    expectCode(() => validateUeIdentity({ ...withIccid, msisdn: '' }), 'IDENTITY_INCOMPLETE');
    expectCode(() => validateUeIdentity({ ...withIccid, iccid: '' }), 'IDENTITY_INCOMPLETE');
    expectCode(() => validateUeIdentity({ ...withIccid, eid: EID }), 'IDENTITY_INCOMPLETE');
  });

  it('[REG-3] an invalid part is reported with that part\'s own code', () => {
    expectCode(() => validateUeIdentity({ ...withIccid, imei: '490154203237519' }), 'INVALID_IMEI');
    expectCode(() => validateUeIdentity({ ...withIccid, iccid: '12' + ICCID20.slice(2) }), 'INVALID_ICCID');
    expectCode(() => validateUeIdentity({ ...withEid, eid: changeDigit(EID, 5, 0) }), 'INVALID_EID');
    expectCode(() => validateUeIdentity({ ...withIccid, msisdn: '447700900123' }), 'INVALID_MSISDN');
  });

  it('[UPD-2] a lookup identity needs at least one valid part', () => {
    expect(validateLookupIdentity({ imei: '', iccid: '', eid: '', msisdn: MSISDN }).msisdn).toBe(MSISDN);
    expect(validateLookupIdentity({ imei: IMEI, iccid: '', eid: '', msisdn: '' }).imei).toBe(IMEI);
    expectCode(() => validateLookupIdentity(undefined), 'IDENTITY_INCOMPLETE');
    expectCode(() => validateLookupIdentity({ imei: '', iccid: '', eid: '', msisdn: '' }), 'IDENTITY_INCOMPLETE');
    expectCode(() => validateLookupIdentity({ imei: '', iccid: ICCID19.slice(1), eid: '', msisdn: '' }), 'INVALID_ICCID');
  });

  it('[REG-3] sameIdentity compares every part; describeIdentity names the present ones', () => {
    expect(sameIdentity(withIccid, { ...withIccid })).toBe(true);
    expect(sameIdentity(withIccid, withEid)).toBe(false);
    expect(sameIdentity(withIccid, { ...withIccid, msisdn: '+447700900124' })).toBe(false);
    expect(describeIdentity(withEid)).toBe(`imei:${IMEI} eid:${EID} msisdn:${MSISDN}`);
  });
});
