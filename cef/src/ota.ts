/**
 * @module ota
 * The over-the-air device-management MACs (MTC-2), shared by the CEF (server side) and the UE
 * SDK (terminal side). Transport-free: the UE SDK imports this file without grpc.
 *
 * Both directions use HMAC-SHA256 keyed with the subscriber's 32-byte OTA key (the key the
 * operator personalised into the SIM, like an SCP80 KID), over DIVS pre-authentication
 * encodings (`pae` from protocol/src/bytes.ts) so a request MAC can never be replayed as a
 * response MAC or as any other DIVS object:
 *
 * ```text
 * identityBytes = lv(imei) || lv(iccid) || lv(eid) || lv(msisdn)     lv(s) = u16be(len(utf8 s)) || utf8 s
 * request  MAC  = HMAC(key, pae("divs/ota-request",  identityBytes || i64be(timestamp_ms)))
 * response MAC  = HMAC(key, pae("divs/ota-response", identityBytes || i64be(timestamp_ms) || configBytes))
 * ```
 *
 * `identity` and `timestamp_ms` are exactly those of the request, so a response is bound to
 * the request it answers: an old response replayed to a newer request fails verification.
 * `configBytes` are the exact DeviceConfig bytes carried in the response (never re-encoded).
 * The identity uses a fixed length-value layout rather than protobuf so that a SIM applet can
 * compute it without a protobuf encoder.
 */
import { createHmac } from 'node:crypto';
import type { UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { DeviceConfig, type GetDeviceConfigRequest, type GetDeviceConfigResponse } from '../../proto/gen/divs/v1/cef.ts';
import { concat, equalBytes, pae, utf8 } from '../../protocol/src/bytes.ts';
import { DivsError, fail } from '../../protocol/src/errors.ts';

/** Domain of the UE's request MAC. */
export const OTA_REQUEST_DOMAIN = 'divs/ota-request';
/** Domain of the CEF's response MAC. */
export const OTA_RESPONSE_DOMAIN = 'divs/ota-response';
/** Length of an OTA key. */
export const OTA_KEY_BYTES = 32;
/** Largest accepted difference between the request timestamp and the CEF clock. */
export const OTA_MAX_SKEW_MS = 5 * 60_000;

function lv(s: string): Uint8Array {
  const b = utf8(s);
  if (b.length > 0xffff) fail('INVALID_ARGUMENT', 'ota: identity field too long');
  const len = new Uint8Array(2);
  new DataView(len.buffer).setUint16(0, b.length);
  return concat(len, b);
}

function i64be(n: number): Uint8Array {
  if (!Number.isSafeInteger(n)) fail('INVALID_ARGUMENT', 'ota: timestamp must be a safe integer');
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigInt64(0, BigInt(n));
  return out;
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== OTA_KEY_BYTES) fail('INVALID_ARGUMENT', `ota: key must be ${OTA_KEY_BYTES} bytes`);
}

function hmac(key: Uint8Array, msg: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', key).update(msg).digest());
}

/** The fixed length-value encoding of an identity covered by both MACs. */
export function otaIdentityBytes(id: UeIdentity): Uint8Array {
  // absent fields (callers building identities by hand) encode like empty ones
  return concat(lv(id.imei ?? ''), lv(id.iccid ?? ''), lv(id.eid ?? ''), lv(id.msisdn ?? ''));
}

/** Exact bytes the request MAC covers. */
export function otaRequestMessage(id: UeIdentity, timestampMs: number): Uint8Array {
  return pae(OTA_REQUEST_DOMAIN, concat(otaIdentityBytes(id), i64be(timestampMs)));
}

/** Exact bytes the response MAC covers. */
export function otaResponseMessage(id: UeIdentity, timestampMs: number, configBytes: Uint8Array): Uint8Array {
  return pae(OTA_RESPONSE_DOMAIN, concat(otaIdentityBytes(id), i64be(timestampMs), configBytes));
}

/** HMAC-SHA256 of a device-config request. */
export function otaRequestMac(key: Uint8Array, id: UeIdentity, timestampMs: number): Uint8Array {
  checkKey(key);
  return hmac(key, otaRequestMessage(id, timestampMs));
}

/** HMAC-SHA256 of a device-config response. */
export function otaResponseMac(key: Uint8Array, id: UeIdentity, timestampMs: number, configBytes: Uint8Array): Uint8Array {
  checkKey(key);
  return hmac(key, otaResponseMessage(id, timestampMs, configBytes));
}

/** Constant-time check of a request MAC (false for a MAC of the wrong length). */
export function verifyOtaRequestMac(key: Uint8Array, id: UeIdentity, timestampMs: number, mac: Uint8Array): boolean {
  return equalBytes(otaRequestMac(key, id, timestampMs), mac);
}

/**
 * Builds an authenticated GetDeviceConfig request (UE side).
 * @example
 * const req = makeOtaRequest(identity, otaKey);
 */
export function makeOtaRequest(identity: UeIdentity, otaKey: Uint8Array, nowMs: number = Date.now()): GetDeviceConfigRequest {
  const id: UeIdentity = { imei: identity.imei ?? '', iccid: identity.iccid ?? '', eid: identity.eid ?? '', msisdn: identity.msisdn ?? '' };
  return { identity: id, timestampMs: nowMs, mac: otaRequestMac(otaKey, id, nowMs) };
}

/**
 * Verifies a GetDeviceConfig response against the request it answers and decodes the config
 * (UE side). Throws OTA_AUTH_FAILED when the MAC is wrong, MALFORMED_MESSAGE when the
 * authenticated bytes do not decode.
 */
export function openOtaResponse(request: GetDeviceConfigRequest, otaKey: Uint8Array, response: GetDeviceConfigResponse): DeviceConfig {
  const id = request.identity ?? { imei: '', iccid: '', eid: '', msisdn: '' };
  const expected = otaResponseMac(otaKey, id, request.timestampMs, response.config);
  if (!equalBytes(expected, response.mac)) fail('OTA_AUTH_FAILED', 'device config response MAC does not verify');
  try {
    return DeviceConfig.decode(response.config);
  } catch (e) {
    // authenticated but undecodable: a CEF bug or a key shared with something else
    throw new DivsError('MALFORMED_MESSAGE', 'device config does not decode', { cause: e });
  }
}

/** Anything that can carry a GetDeviceConfig call (the CEF client implements it). */
export interface OtaTransport {
  getDeviceConfigRaw(request: GetDeviceConfigRequest): Promise<GetDeviceConfigResponse>;
}

/**
 * Fetches and verifies this UE's device configuration over the air (UE side, MTC-2).
 * @example
 * const cfg = await fetchDeviceConfig(cefClient, identity, otaKey);
 * console.log(cfg.entryAddress?.asUrls, cfg.configVersion);
 */
export async function fetchDeviceConfig(transport: OtaTransport, identity: UeIdentity, otaKey: Uint8Array, nowMs: number = Date.now()): Promise<DeviceConfig> {
  const req = makeOtaRequest(identity, otaKey, nowMs);
  const res = await transport.getDeviceConfigRaw(req);
  return openOtaResponse(req, otaKey, res);
}
