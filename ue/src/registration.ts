/**
 * @module ue/registration
 * What a UE sends to register [REG-1] [REG-3] and how it proves, later, that it holds the
 * registered key (RP-ud `UeAuth`). Both signatures are made inside the key store over
 * `PAE(domain, exact protobuf bytes)`; the bytes signed are the bytes sent, never a
 * re-serialisation.
 */
import { RegistrationParams, SignedRegistration, type UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { UeChallenge, type UeAuth } from '../../proto/gen/divs/v1/ue_as.ts';
import { Domain, equalBytes, pae } from '../../protocol/src/bytes.ts';
import { fail } from '../../protocol/src/errors.ts';
import { validateUeIdentity } from '../../protocol/src/identity.ts';
import { assertSuite, type Suite } from '../../protocol/src/suites.ts';
import type { KeyStore, PublicKeyInfo } from './keystore.ts';

export interface RegistrationInput {
  /** The UE's identity binding: IMEI, ICCID or EID, MSISDN. */
  identity: UeIdentity;
  /** The public key to register (from `KeyStore.generate` / `publicKey`). */
  publicKey: PublicKeyInfo;
  /** Suites the UE can sign with (default: just the key's); must include the key's suite. */
  suites?: readonly Suite[];
  /** Creation time, ms since the epoch (default now); the AS refuses stale registrations. */
  createdAtMs?: number;
}

/**
 * Builds RegistrationParams [REG-1]: identity (validated), public key, suites, creation time.
 * Coded errors: INVALID_IMEI/ICCID/EID/MSISDN, IDENTITY_INCOMPLETE, UNSUPPORTED_SUITE,
 * SUITE_MISMATCH, INVALID_ARGUMENT.
 */
export function buildRegistrationParams(input: RegistrationInput): RegistrationParams {
  const identity = validateUeIdentity(input.identity, 'identity');
  const pk = input.publicKey;
  if (!pk || !(pk.key instanceof Uint8Array) || pk.key.length === 0) fail('MISSING_FIELD', 'publicKey: missing');
  assertSuite(pk.suite);
  const suites = [...(input.suites ?? [pk.suite])];
  for (const s of suites) assertSuite(s);
  if (!suites.includes(pk.suite)) fail('SUITE_MISMATCH', 'suites must include the public key suite');
  if (new Set(suites).size !== suites.length) fail('INVALID_ARGUMENT', 'suites: duplicates');
  const createdAtMs = input.createdAtMs ?? Date.now();
  if (!Number.isSafeInteger(createdAtMs) || createdAtMs <= 0) fail('INVALID_ARGUMENT', 'createdAtMs: must be a positive integer (ms since the epoch)');
  return RegistrationParams.fromPartial({
    identity,
    publicKey: { suite: pk.suite, key: new Uint8Array(pk.key) },
    suites,
    createdAtMs,
  });
}

/**
 * Signs RegistrationParams inside the key store [REG-3]: the signature covers
 * `PAE("divs/registration", params bytes)` and those exact bytes travel in `params`.
 * SUITE_MISMATCH / INVALID_PUBLIC_KEY when the params name another key than `alias` holds, so a
 * UE can never send a binding its own key did not make.
 */
export async function signRegistration(params: RegistrationParams, keystore: KeyStore, alias: string): Promise<SignedRegistration> {
  const held = await keystore.publicKey(alias);
  const claimed = params.publicKey;
  if (!claimed) fail('MISSING_FIELD', 'params.publicKey: missing');
  if (claimed.suite !== held.suite) fail('SUITE_MISMATCH', `params name suite ${claimed.suite}, key ${alias} is ${held.suite}`);
  if (!equalBytes(claimed.key, held.key)) fail('INVALID_PUBLIC_KEY', `params name another public key than key ${alias}`);
  const bytes = RegistrationParams.encode(params).finish();
  const signature = await keystore.sign(alias, pae(Domain.registration, bytes));
  return SignedRegistration.fromPartial({ params: bytes, signature });
}

/** A signed registration with the params it carries. */
export interface Registration {
  params: RegistrationParams;
  signed: SignedRegistration;
}

/**
 * Builds and signs a registration for the key `alias` [REG-1] [REG-3].
 *
 * @example
 * const { signed } = await createRegistration(identity, keystore, 'ue');
 * await client.registerBatch([signed]);
 */
export async function createRegistration(
  identity: UeIdentity,
  keystore: KeyStore,
  alias: string,
  opts: { suites?: readonly Suite[]; createdAtMs?: number } = {},
): Promise<Registration> {
  const publicKey = await keystore.publicKey(alias);
  const params = buildRegistrationParams({ identity, publicKey, ...opts });
  return { params, signed: await signRegistration(params, keystore, alias) };
}

/** What a UeAuth is for: `watch` (WatchUpdates) or `latest` (GetLatestRef). */
export type UePurpose = 'watch' | 'latest';

/**
 * Proof that the caller holds the registered key, for WatchUpdates and GetLatestRef [FW-ACL]:
 * UeChallenge{identity, purpose, timestamp} bytes and the key store's signature over
 * `PAE("divs/ue-challenge", those bytes)`. Fresh per call: the AS accepts a window of minutes.
 */
export async function buildUeAuth(
  identity: UeIdentity,
  purpose: UePurpose,
  keystore: KeyStore,
  alias: string,
  timestampMs: number = Date.now(),
): Promise<UeAuth> {
  const id = validateUeIdentity(identity, 'identity');
  if (purpose !== 'watch' && purpose !== 'latest') fail('INVALID_ARGUMENT', 'purpose: "watch" or "latest"');
  if (!Number.isSafeInteger(timestampMs) || timestampMs <= 0) fail('INVALID_ARGUMENT', 'timestampMs: must be a positive integer');
  const challenge = UeChallenge.encode({ identity: id, purpose, timestampMs }).finish();
  const signature = await keystore.sign(alias, pae(Domain.ueChallenge, challenge));
  return { challenge, signature };
}
