/**
 * @module identity
 * Validation of the identities a UE is bound to (IMEI, IMEISV, ICCID, EID, MSISDN, IMSI).
 * Every failure is a coded error naming the field, so a UE or operator knows what to fix.
 */
import type { UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { fail } from './errors.ts';

const DIGITS = /^[0-9]+$/;

/** Luhn check over a digit string whose last digit is the check digit. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** The Luhn check digit to append to `body`. */
export function luhnCheckDigit(body: string): string {
  for (let c = 0; c <= 9; c++) if (luhnValid(body + c)) return String(c);
  /* c8 ignore next */
  throw new Error('unreachable');
}

export function validateImei(v: string, label = 'imei'): string {
  if (typeof v !== 'string' || v.length !== 15 || !DIGITS.test(v)) fail('INVALID_IMEI', `${label}: IMEI must be 15 digits`);
  if (!luhnValid(v)) fail('INVALID_IMEI', `${label}: IMEI check digit is wrong`);
  return v;
}

export function validateImeisv(v: string, label = 'imeisv'): string {
  if (typeof v !== 'string' || v.length !== 16 || !DIGITS.test(v)) fail('INVALID_IMEISV', `${label}: IMEISV must be 16 digits`);
  return v;
}

export function validateIccid(v: string, label = 'iccid'): string {
  if (typeof v !== 'string' || (v.length !== 19 && v.length !== 20) || !DIGITS.test(v)) {
    fail('INVALID_ICCID', `${label}: ICCID must be 19 or 20 digits`);
  }
  if (!v.startsWith('89')) fail('INVALID_ICCID', `${label}: ICCID must start with the telecom industry prefix 89`);
  if (v.length === 20 && !luhnValid(v)) fail('INVALID_ICCID', `${label}: ICCID check digit is wrong`);
  return v;
}

export function validateEid(v: string, label = 'eid'): string {
  if (typeof v !== 'string' || v.length !== 32 || !DIGITS.test(v)) fail('INVALID_EID', `${label}: EID must be 32 digits`);
  if (BigInt(v) % 97n !== 1n) fail('INVALID_EID', `${label}: EID check digits are wrong (value mod 97 must be 1)`);
  return v;
}

export function validateMsisdn(v: string, label = 'msisdn'): string {
  if (typeof v !== 'string' || !/^\+[1-9][0-9]{4,14}$/.test(v)) {
    fail('INVALID_MSISDN', `${label}: MSISDN must be E.164: '+' then 5 to 15 digits, not starting with 0`);
  }
  return v;
}

export function validateImsi(v: string, label = 'imsi'): string {
  if (typeof v !== 'string' || v.length !== 15 || !DIGITS.test(v)) fail('INVALID_IMSI', `${label}: IMSI must be 15 digits`);
  return v;
}

/** Makes a check-digit-valid EID from 30 leading digits (for simulators and tests). */
export function eidWithCheck(first30: string): string {
  const n = BigInt(first30 + '00');
  const check = 98n - (n % 97n);
  return first30 + check.toString().padStart(2, '0');
}

/**
 * Validates a complete UE identity as registered: IMEI, exactly one of ICCID or EID, MSISDN.
 * Returns a copy with only the known fields.
 */
export function validateUeIdentity(id: UeIdentity | undefined, label = 'identity'): UeIdentity {
  if (!id) fail('IDENTITY_INCOMPLETE', `${label}: missing`);
  if (!id.imei) fail('IDENTITY_INCOMPLETE', `${label}.imei: missing`);
  if (!id.msisdn) fail('IDENTITY_INCOMPLETE', `${label}.msisdn: missing`);
  if (!id.iccid && !id.eid) fail('IDENTITY_INCOMPLETE', `${label}: one of iccid or eid is required`);
  if (id.iccid && id.eid) fail('IDENTITY_INCOMPLETE', `${label}: give iccid or eid, not both`);
  validateImei(id.imei, `${label}.imei`);
  validateMsisdn(id.msisdn, `${label}.msisdn`);
  if (id.iccid) validateIccid(id.iccid, `${label}.iccid`);
  if (id.eid) validateEid(id.eid, `${label}.eid`);
  return { imei: id.imei, iccid: id.iccid, eid: id.eid, msisdn: id.msisdn };
}

/**
 * Validates a lookup identity: at least one of IMEI, ICCID, EID, MSISDN; each present one valid.
 */
export function validateLookupIdentity(id: UeIdentity | undefined, label = 'identity'): UeIdentity {
  if (!id || (!id.imei && !id.iccid && !id.eid && !id.msisdn)) {
    fail('IDENTITY_INCOMPLETE', `${label}: give at least one of imei, iccid, eid, msisdn`);
  }
  if (id.imei) validateImei(id.imei, `${label}.imei`);
  if (id.iccid) validateIccid(id.iccid, `${label}.iccid`);
  if (id.eid) validateEid(id.eid, `${label}.eid`);
  if (id.msisdn) validateMsisdn(id.msisdn, `${label}.msisdn`);
  return { imei: id.imei, iccid: id.iccid, eid: id.eid, msisdn: id.msisdn };
}

/** Whether two complete identities name the same binding. */
export function sameIdentity(a: UeIdentity, b: UeIdentity): boolean {
  return a.imei === b.imei && a.iccid === b.iccid && a.eid === b.eid && a.msisdn === b.msisdn;
}

/** Human-readable form for logs and messages (never used as a key). */
export function describeIdentity(id: UeIdentity): string {
  return [id.imei && `imei:${id.imei}`, id.iccid && `iccid:${id.iccid}`, id.eid && `eid:${id.eid}`, id.msisdn && `msisdn:${id.msisdn}`]
    .filter(Boolean)
    .join(' ');
}
