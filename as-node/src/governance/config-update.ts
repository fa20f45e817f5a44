/**
 * @module governance/config-update
 * Off-line governance of a consortium ledger [BC-5] [SEC-3]: adding or removing an
 * organization or a node is a configuration update that a majority of the existing member
 * organizations approve, each through one of its admins, before anyone submits it.
 *
 * The flow, all with files (see governance/cli.ts):
 * 1. someone writes the complete next configuration and {@link createConfigUpdate} wraps it
 *    with the hash of the configuration it replaces (so an approval cannot be replayed
 *    against another version, nor two updates raced);
 * 2. each organization's admin checks it and {@link approveConfigUpdate} signs
 *    `PAE("divs/config-update", update bytes)` with the admin key (an approval file);
 * 3. the approvals are gathered ({@link assembleConfigUpdate}) and submitted to any AS node,
 *    which appends it as a TX_TYPE_CONFIG transaction alone in its block;
 * 4. every node checks it again with {@link verifyConfigUpdate} before it applies the block:
 *    a proposal short of a strict majority of the current organizations is
 *    CONFIG_MAJORITY_MISSING, and the configuration stays as it was.
 */
import { ConfigUpdate, SignedConfigUpdate, type ConfigApproval } from '../../../proto/gen/divs/v1/as_sync.ts';
import { LedgerTx, TxType } from '../../../proto/gen/divs/v1/common.ts';
import { equalBytes, pae } from '../../../protocol/src/bytes.ts';
import { DivsError, fail } from '../../../protocol/src/errors.ts';
import { nodeVerify, type Signer } from '../../../protocol/src/suites.ts';
import { verifyChain } from '../../../protocol/src/pki.ts';
import { Membership } from './membership.ts';

export { ConfigUpdate, SignedConfigUpdate };
export type { ConfigApproval };

/** Signature domain of admin approvals. */
export const CONFIG_UPDATE_DOMAIN = 'divs/config-update';

/** Exact ConfigUpdate bytes replacing `current` with `next` (whose version must be current + 1). */
export function createConfigUpdate(current: Membership, next: Membership, description: string, nowMs: number = Date.now()): Uint8Array {
  if (next.ledgerId !== current.ledgerId) fail('CONFIG_INVALID', `the new configuration is for ledger ${next.ledgerId}, not ${current.ledgerId}`);
  if (next.version !== current.version + 1) fail('CONFIG_INVALID', `the new configuration must be version ${current.version + 1}, not ${next.version}`);
  return ConfigUpdate.encode({ ledgerId: current.ledgerId, previousConfigHash: current.hash, config: next.bytes, description, createdAtMs: Math.trunc(nowMs) }).finish();
}

/** An admin's approval of exact ConfigUpdate bytes. */
export async function approveConfigUpdate(update: Uint8Array, orgId: string, adminCert: Uint8Array, signer: Signer): Promise<ConfigApproval> {
  const signature = await signer.sign(pae(CONFIG_UPDATE_DOMAIN, update));
  return { orgId, adminCert: new Uint8Array(adminCert), signature };
}

/** Exact SignedConfigUpdate bytes: the update with the approvals collected. */
export function assembleConfigUpdate(update: Uint8Array, approvals: ConfigApproval[]): Uint8Array {
  return SignedConfigUpdate.encode({ update, approvals }).finish();
}

/** The LedgerTx carrying a signed configuration update. */
export function configTx(signedUpdate: Uint8Array, nowMs: number): Uint8Array {
  return LedgerTx.encode({ type: TxType.TX_TYPE_CONFIG, payload: signedUpdate, timestampMs: Math.trunc(nowMs) }).finish();
}

/**
 * The first transaction of every consortium ledger: the genesis configuration, unsigned (it
 * is the root of trust every node is given out of band). Deterministic, so every node can
 * compare block 0 byte for byte with its own genesis.
 */
export function genesisTx(genesis: Membership): Uint8Array {
  const update = ConfigUpdate.encode({ ledgerId: genesis.ledgerId, previousConfigHash: new Uint8Array(0), config: genesis.bytes, description: 'genesis', createdAtMs: 0 }).finish();
  return configTx(assembleConfigUpdate(update, []), 0);
}

/** What a verified update changes. */
export interface VerifiedConfigUpdate {
  next: Membership;
  /** Organizations whose admins approved it. */
  approvedBy: string[];
  description: string;
}

function decode<T>(codec: { decode(b: Uint8Array): T; encode(m: T): { finish(): Uint8Array } }, bytes: Uint8Array, what: string): T {
  let m: T;
  try {
    m = codec.decode(bytes);
  } catch (e) {
    fail('MALFORMED_MESSAGE', `${what} does not decode`, e);
  }
  // signatures cover exact bytes; a second encoding of the same content is refused
  if (!equalBytes(codec.encode(m).finish(), bytes)) fail('MALFORMED_MESSAGE', `${what} is not canonically encoded`);
  return m;
}

/**
 * Verifies a signed configuration update against the configuration in force, at time `at`
 * (the block's time when applying): it must replace exactly `current`, carry a valid next
 * version, and be approved by admins of a strict majority of `current`'s organizations.
 * Throws MALFORMED_MESSAGE, CONFIG_INVALID, NOT_MEMBER, UNTRUSTED_CERTIFICATE,
 * INVALID_SIGNATURE or CONFIG_MAJORITY_MISSING.
 */
export function verifyConfigUpdate(signedBytes: Uint8Array, current: Membership, at: Date): VerifiedConfigUpdate {
  const signed = decode(SignedConfigUpdate, signedBytes, 'signed config update');
  const update = decode(ConfigUpdate, signed.update, 'config update');
  if (update.ledgerId !== current.ledgerId) fail('CONFIG_INVALID', `config update is for ledger ${update.ledgerId}, not ${current.ledgerId}`);
  if (!equalBytes(update.previousConfigHash, current.hash)) fail('CONFIG_INVALID', `config update does not replace the configuration in force (version ${current.version})`);
  const next = Membership.fromBytes(update.config, current.ledgerId, at);
  if (next.version !== current.version + 1) fail('CONFIG_INVALID', `config update must carry version ${current.version + 1}, not ${next.version}`);

  const msg = pae(CONFIG_UPDATE_DOMAIN, signed.update);
  const approvedBy = new Set<string>();
  for (const [i, a] of signed.approvals.entries()) {
    const org = current.org(a.orgId);
    if (!org) fail('NOT_MEMBER', `approval ${i}: ${a.orgId} is not a member organization`);
    if (!org.adminCerts.some((c) => equalBytes(c, a.adminCert))) fail('NOT_MEMBER', `approval ${i}: the certificate is not an admin of ${a.orgId}`);
    let key;
    try {
      key = verifyChain([a.adminCert], org.caCerts, { at, role: 'client' });
    } catch (e) {
      throw e instanceof DivsError ? e : new DivsError('INVALID_CERTIFICATE', `approval ${i}: admin certificate does not parse`, { cause: e });
    }
    // a forged or altered approval is an error, never just "one signature fewer"
    if (!nodeVerify(key.suite, key.publicKey, msg, a.signature)) fail('INVALID_SIGNATURE', `approval ${i}: the signature of ${a.orgId}'s admin does not verify`);
    approvedBy.add(a.orgId);
  }
  const need = Math.floor(current.orgs.length / 2) + 1;
  if (approvedBy.size < need) {
    fail('CONFIG_MAJORITY_MISSING', `config update approved by ${approvedBy.size} of ${current.orgs.length} organizations; a majority needs ${need}`);
  }
  return { next, approvedBy: [...approvedBy].sort(), description: update.description };
}

/**
 * Reads the configuration out of a TX_TYPE_CONFIG transaction without judging approvals —
 * for the genesis transaction, which is compared with the node's own genesis instead.
 */
export function configOfTx(tx: LedgerTx): { update: ConfigUpdate; signed: SignedConfigUpdate } {
  if (tx.type !== TxType.TX_TYPE_CONFIG) fail('INVALID_ARGUMENT', 'not a configuration transaction');
  const signed = decode(SignedConfigUpdate, tx.payload, 'signed config update');
  return { signed, update: decode(ConfigUpdate, signed.update, 'config update') };
}
