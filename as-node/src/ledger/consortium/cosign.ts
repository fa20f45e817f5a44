/**
 * @module ledger/consortium/cosign
 * Checkpoint cosignatures between consortium nodes [RP-DD], in the style of C2SP
 * tlog-witness: a node cosigns a checkpoint only after it has verified and stored every block
 * the checkpoint covers, so a cosignature says "my copy of the ledger has exactly this tree
 * and state at this size". Cosignatures are signature lines over the same note text under
 * their own signature domain (`divs/cosignature`), so a witness statement can never be taken
 * for a node's own checkpoint signature or the other way round.
 *
 * Each node publishes its newest cosigned checkpoint (with its certificate chain); every node
 * collects the others' lines in a {@link CosignatureBook} and serves its own checkpoint with
 * them attached, so a consumer can require k of n (consumer/src/witness.ts).
 */
import { SignedCheckpoint } from '../../../../proto/gen/divs/v1/common.ts';
import { Domain, concat, toBase64 } from '../../../../protocol/src/bytes.ts';
import { fail } from '../../../../protocol/src/errors.ts';
import { MAX_SIGNATURES, checkpointSigningInput, noteKeyId, parseCheckpoint, verifyCheckpoint } from '../../../../protocol/src/checkpoint.ts';
import type { Signer } from '../../../../protocol/src/suites.ts';
import type { Membership } from '../../governance/membership.ts';

/** How many recent tree sizes keep their cosignatures. */
const KEEP_SIZES = 512;

/**
 * This node's cosignature line over a checkpoint text (`— <name> <base64(key ID || sig)>`),
 * signed under the cosignature domain, and the note it publishes for the others (the text
 * with that one line, plus its certificate chain).
 */
export async function cosign(text: string, name: string, signer: Signer, certChain: Uint8Array[]): Promise<{ line: string; bytes: Uint8Array }> {
  const keyId = noteKeyId(name, signer.suite, signer.publicKey);
  const sig = await signer.sign(checkpointSigningInput(text, Domain.cosignature));
  const line = `\u2014 ${name} ${toBase64(concat(keyId, sig))}\n`;
  return { line, bytes: SignedCheckpoint.encode({ note: `${text}\n${line}`, certChain }).finish() };
}

/** A verified cosignature from a peer. */
export interface Cosignature {
  name: string;
  size: number;
  text: string;
  line: string;
}

/**
 * Verifies a peer's published cosignature: the chain is a member node's (at `at`), the key
 * name in the line is that node, and the line verifies over the note text under the
 * cosignature domain. Throws a coded error otherwise.
 */
export function verifyCosignature(bytes: Uint8Array, membership: Membership, at: Date): Cosignature {
  let sc: SignedCheckpoint;
  try {
    sc = SignedCheckpoint.decode(bytes);
  } catch (e) {
    fail('INVALID_CHECKPOINT', 'cosignature does not decode', e);
  }
  const signer = membership.identify(sc.certChain, at, 'as');
  const parsed = verifyCheckpoint(sc.note, signer.node, signer.chain.suite, signer.chain.publicKey, Domain.cosignature);
  if (parsed.origin !== membership.ledgerId) fail('INVALID_CHECKPOINT', `cosignature is for ledger ${parsed.origin}`);
  // exactly one line, the one just verified: nothing else rides along into served notes
  if (parsed.signatures.length !== 1) fail('INVALID_CHECKPOINT', 'a published cosignature carries exactly one signature line');
  const line = sc.note.slice(parsed.text.length + 1);
  return { name: signer.node, size: parsed.size, text: parsed.text, line };
}

/** Cosignature lines of the other nodes, by tree size. */
export class CosignatureBook {
  readonly #bySize = new Map<number, Map<string, Cosignature>>();
  readonly #latest = new Map<string, number>();

  add(c: Cosignature): void {
    let m = this.#bySize.get(c.size);
    if (!m) this.#bySize.set(c.size, (m = new Map()));
    m.set(c.name, c);
    if ((this.#latest.get(c.name) ?? -1) < c.size) this.#latest.set(c.name, c.size);
    if (this.#bySize.size > KEEP_SIZES) {
      const sizes = [...this.#bySize.keys()].sort((a, b) => a - b);
      for (const s of sizes.slice(0, sizes.length - KEEP_SIZES)) this.#bySize.delete(s);
    }
  }

  /** Lines of other nodes that cosigned exactly `text` (at most MAX_SIGNATURES − 1). */
  linesFor(text: string, size: number, except: string): string[] {
    const m = this.#bySize.get(size);
    if (!m) return [];
    const out: string[] = [];
    for (const c of m.values()) if (c.name !== except && c.text === text && out.length < MAX_SIGNATURES - 1) out.push(c.line);
    return out;
  }

  /** Tree size of a node's newest cosignature (-1: none seen). */
  latestSize(name: string): number {
    return this.#latest.get(name) ?? -1;
  }

  /** Nodes whose newest cosignature covers a tree of at least `size`. */
  cosignersAtLeast(size: number): string[] {
    return [...this.#latest.entries()].filter(([, s]) => s >= size).map(([n]) => n);
  }

  /** Drops a node's entries (it left the consortium). */
  forget(name: string): void {
    this.#latest.delete(name);
    for (const m of this.#bySize.values()) m.delete(name);
  }
}

/** Appends cosignature lines to a signed note. */
export function withCosignatures(note: string, lines: string[]): string {
  if (lines.length === 0) return note;
  const out = note + lines.join('');
  // never serve a note a strict parser would refuse
  parseCheckpoint(out);
  return out;
}
