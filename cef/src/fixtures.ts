/**
 * @module fixtures
 * Deterministic synthetic subscriber records for tests, demos and fleet simulators: valid
 * identities (IMEI with Luhn digit, 20-digit ICCID with Luhn digit or EID with mod-97 check,
 * E.164 MSISDN, IMSI under the operator's PLMN) derived from an index, so record `i` always
 * names the same UE. OTA keys are derived from a seed: fine for simulations, never for a
 * real SIM.
 */
import { createHash } from 'node:crypto';
import type { SubscriberRecord } from '../../proto/gen/divs/v1/cef.ts';
import type { UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { eidWithCheck, luhnCheckDigit } from '../../protocol/src/identity.ts';

const pad = (n: number, width: number): string => {
  const s = String(n);
  if (s.length > width) throw new RangeError(`index ${n} does not fit in ${width} digits`);
  return s.padStart(width, '0');
};

export interface SyntheticOptions {
  /** PLMN of the operator (IMSI prefix); default "00101" (the test network). */
  plmnId?: string;
  /** eUICC (EID) instead of a plain UICC (ICCID). */
  euicc?: boolean;
  /** Seed of the derived OTA key; default "divs-test". */
  seed?: string;
  /** Contract start; default one hour ago. */
  startTimeMs?: number;
  /** Contract end; default one year after start. */
  endTimeMs?: number;
  owner?: string;
  terminalType?: string;
  contractId?: string;
  geoRestrictions?: string[];
}

/** IMEI number `i` (TAC 35xxxxxx range, Luhn check digit). */
export function syntheticImei(i: number): string {
  const body = `35${pad(i, 12)}`;
  return body + luhnCheckDigit(body);
}

/** 20-digit ICCID number `i` (prefix 8949, Luhn check digit). */
export function syntheticIccid(i: number): string {
  const body = `8949${pad(i, 15)}`;
  return body + luhnCheckDigit(body);
}

/** EID number `i` (mod-97 check digits). */
export function syntheticEid(i: number): string {
  return eidWithCheck(`89049032${pad(i, 22)}`);
}

/** MSISDN number `i` (+4917 range). */
export function syntheticMsisdn(i: number): string {
  return `+4917${pad(i, 9)}`;
}

/** IMSI number `i` under `plmnId`. */
export function syntheticImsi(i: number, plmnId = '00101'): string {
  return plmnId + pad(i, 15 - plmnId.length);
}

/** Identity of UE `i`. */
export function syntheticIdentity(i: number, euicc = false): UeIdentity {
  return { imei: syntheticImei(i), iccid: euicc ? '' : syntheticIccid(i), eid: euicc ? syntheticEid(i) : '', msisdn: syntheticMsisdn(i) };
}

/** OTA key of UE `i` derived from `seed` (SHA-256; simulation only). */
export function syntheticOtaKey(i: number, seed = 'divs-test'): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`${seed}/ota/${i}`).digest());
}

/**
 * A complete, valid provisioning record for UE `i`.
 * @example
 * const batch = Array.from({ length: 1000 }, (_, i) => syntheticSubscriber(i, { plmnId: '00101' }));
 */
export function syntheticSubscriber(i: number, opts: SyntheticOptions = {}): SubscriberRecord {
  const start = opts.startTimeMs ?? Date.now() - 3_600_000;
  return {
    identity: syntheticIdentity(i, opts.euicc),
    imsi: syntheticImsi(i, opts.plmnId),
    contractId: opts.contractId ?? `C-${pad(i, 8)}`,
    terminalType: opts.terminalType ?? 'smart-meter',
    startTimeMs: start,
    endTimeMs: opts.endTimeMs ?? start + 365 * 24 * 3_600_000,
    owner: opts.owner ?? 'Example Utility GmbH',
    geoRestrictions: opts.geoRestrictions ?? ['DE'],
    otaKey: syntheticOtaKey(i, opts.seed),
  };
}
