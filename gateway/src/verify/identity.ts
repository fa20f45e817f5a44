/**
 * @module verify/identity
 * The key of a UE chain: its complete identity binding (IMEI, ICCID, EID, MSISDN). A UE whose
 * binding changes (SIM swap, new MSISDN) starts a new chain, as the UE SDK does. Also the order
 * of UEs in a dataset commitment (ascending key).
 */
import type { UeIdentity } from '../../../proto/gen/divs/v1/common.ts';

/** Canonical key of a UE chain. */
export function ueKeyOf(id: UeIdentity): string {
  return `${id.imei}|${id.iccid}|${id.eid}|${id.msisdn}`;
}
