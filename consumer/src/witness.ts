/**
 * @module witness
 * k-of-n witness cosignatures on checkpoints [RP-DD] [FW-SU], C2SP tlog-witness style: a
 * consumer configures the witnesses it trusts (name + public key, or an AS certificate that
 * chains to its trust anchors) and how many of them must have signed a checkpoint before it
 * believes the tree it describes. In a DIVS consortium every AS node witnesses the others:
 * it cosigns a checkpoint only after verifying and storing every block it covers, so k
 * cosignatures mean k independently operated copies of the ledger agree on it — a single AS
 * that shows a consumer a forked or rewritten ledger cannot gather them.
 *
 * A witness counts when the note carries a line with its name and key ID whose signature
 * verifies over the note text, under the cosignature domain (`divs/cosignature`) or as the
 * node's own checkpoint signature (`divs/checkpoint`: the serving node vouches for its own
 * copy). Lines of unknown keys are ignored, as C2SP requires; a known witness's line that
 * does not verify simply does not count.
 *
 * @example
 * ```ts
 * const policy = { threshold: 2, witnesses: nodes.map((chain) => witnessFromCertificate(chain, anchors)) };
 * const v = verifyProvenEndorsement(proven, anchors, { witnesses: policy }); // COSIGNATURES_MISSING below 2
 * ```
 */
import type { KeyObject } from 'node:crypto';
import { Domain } from '../../protocol/src/bytes.ts';
import { fail } from '../../protocol/src/errors.ts';
import { checkpointSignedBy, isValidKeyName, parseCheckpoint } from '../../protocol/src/checkpoint.ts';
import { importPublicKey, type Suite } from '../../protocol/src/suites.ts';
import { verifyChain } from '../../protocol/src/pki.ts';

/** A witness the consumer trusts. */
export interface Witness {
  /** Key name in signature lines (for AS nodes: the certificate CN). */
  name: string;
  suite: Suite;
  /** Raw public key (SEC1 point or Ed25519 bytes) or an imported key. */
  publicKey: Uint8Array | KeyObject;
}

/** How many of which witnesses must have signed. */
export interface WitnessPolicy {
  witnesses: Witness[];
  /** k: distinct witnesses required (1 ≤ k ≤ n). */
  threshold: number;
}

/** Common name of an RFC 4514 subject. */
function commonName(subject: string): string {
  return /(?:^|,\s*)CN=([^,]+)/.exec(subject)?.[1]?.trim() ?? subject;
}

/**
 * A witness from an AS certificate chain (leaf first) that verifies against the consumer's
 * trust anchors with role `as`; its name is the certificate's common name. Throws
 * UNTRUSTED_CERTIFICATE / INVALID_CERTIFICATE.
 */
export function witnessFromCertificate(certChain: Uint8Array[], anchors: { roots: Uint8Array[] }, at?: Date): Witness {
  const v = verifyChain(certChain, anchors.roots, { role: 'as', ...(at ? { at } : {}) });
  return { name: commonName(v.subject), suite: v.suite, publicKey: v.publicKey };
}

function keyOf(w: Witness): KeyObject {
  return w.publicKey instanceof Uint8Array ? importPublicKey(w.suite, w.publicKey) : w.publicKey;
}

/** Checks a policy's shape; INVALID_ARGUMENT otherwise. */
export function checkWitnessPolicy(p: WitnessPolicy): void {
  if (typeof p !== 'object' || p === null || !Array.isArray(p.witnesses)) fail('INVALID_ARGUMENT', 'witness policy: witnesses must be a list');
  const names = new Set<string>();
  for (const w of p.witnesses) {
    if (!isValidKeyName(w?.name)) fail('INVALID_ARGUMENT', 'witness policy: every witness needs a valid key name');
    if (names.has(w.name)) fail('INVALID_ARGUMENT', `witness policy: ${w.name} is listed twice`);
    names.add(w.name);
  }
  if (!Number.isSafeInteger(p.threshold) || p.threshold < 1 || p.threshold > p.witnesses.length) {
    fail('INVALID_ARGUMENT', `witness policy: threshold must be from 1 to ${p.witnesses.length}`);
  }
}

/**
 * The configured witnesses whose signatures on `note` verify (see the module header). Throws
 * INVALID_CHECKPOINT for a malformed note, COSIGNATURES_MISSING when fewer than
 * `policy.threshold` witnesses signed it.
 */
export function verifyCosignatures(note: string, policy: WitnessPolicy): { cosigners: string[] } {
  checkWitnessPolicy(policy);
  const parsed = parseCheckpoint(note);
  const present = new Set(parsed.signatures.map((s) => s.name));
  const cosigners: string[] = [];
  for (const w of policy.witnesses) {
    if (!present.has(w.name)) continue;
    const key = keyOf(w);
    if (checkpointSignedBy(note, w.name, w.suite, key, Domain.cosignature) || checkpointSignedBy(note, w.name, w.suite, key, Domain.checkpoint)) cosigners.push(w.name);
  }
  if (cosigners.length < policy.threshold) {
    fail('COSIGNATURES_MISSING', `checkpoint (size ${parsed.size}) is signed by ${cosigners.length} of the required ${policy.threshold} witnesses${cosigners.length > 0 ? ` (${cosigners.join(', ')})` : ''}`);
  }
  return { cosigners };
}
