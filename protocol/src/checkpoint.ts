/**
 * @module checkpoint
 * Ledger checkpoints as C2SP signed notes (c2sp.org/signed-note, c2sp.org/tlog-checkpoint).
 *
 * Body (the note text), every line ending in `\n`:
 * ```
 * <origin>                      ledger ID
 * <size>                        number of txs, decimal, no leading zeros
 * <base64 root>                 RFC 9162 root of the txs
 * divs-state <base64 root>      sparse Merkle tree root of latest versions (smt.ts)
 * divs-block <height> <base64>  height and hash of the newest block (absent before block 0)
 * ```
 * then a blank line and one or more signature lines `— <key name> <base64(key ID || sig)>`.
 *
 * Signatures are over `pae("divs/checkpoint", body bytes)` (DSSE-style, like every DIVS
 * signature), not over the raw text, so they are not C2SP Ed25519/ECDSA signatures and use
 * the C2SP escape type 0xff: signature type = `0xff || "divs-pae/" || suite name`, e.g.
 * `0xff || "divs-pae/ecdsa-p256-sha256"` for ECDSA P-256 (IEEE P1363 r||s signature). Key ID =
 * first 4 bytes of SHA-256(key name || 0x0A || signature type || public key), where the public
 * key is the compressed SEC1 point (ECDSA) or the raw 32 bytes (Ed25519).
 *
 * Parsing is strict — every deviation (control characters, overlong lines, non-canonical
 * numbers or base64, unknown or misplaced extension lines, duplicate signers, too many
 * signatures) is INVALID_CHECKPOINT — because a note comes from the network and its text is
 * what gets signed.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { Domain, equalBytes, pae, utf8 } from './bytes.ts';
import { fail } from './errors.ts';
import { importPublicKey, nodeVerifyMemo, rawPublicKey, suiteName, suiteOfKeyObject, type Signer, type Suite } from './suites.ts';

/** Longest note accepted, in UTF-16 code units (≈ bytes for our ASCII notes). */
export const MAX_NOTE_LENGTH = 64 * 1024;
/** Longest line accepted (a post-quantum signature line fits). */
export const MAX_LINE_LENGTH = 4096;
/** Most signature lines accepted (C2SP: verifiers must accept at least 16). */
export const MAX_SIGNATURES = 32;
/** Longest origin or key name. */
export const MAX_NAME_LENGTH = 256;

const STATE_PREFIX = 'divs-state ';
const BLOCK_PREFIX = 'divs-block ';
const SIG_PREFIX = '\u2014 ';

/** The parsed body of a checkpoint. */
export interface CheckpointBody {
  /** Ledger ID. */
  origin: string;
  /** Number of txs (RFC 9162 tree size). */
  size: number;
  /** RFC 9162 root hash (32 bytes). */
  rootHash: Uint8Array;
  /** Sparse Merkle tree root of latest versions (32 bytes). */
  stateRoot: Uint8Array;
  /** The newest block, absent for an empty ledger. */
  block?: { height: number; hash: Uint8Array };
}

/** One signature line. */
export interface NoteSignature {
  name: string;
  /** 4-byte key ID. */
  keyId: Uint8Array;
  signature: Uint8Array;
}

/** A parsed checkpoint: body fields, the exact signed text, and the signature lines. */
export interface ParsedCheckpoint extends CheckpointBody {
  /** The note text the signatures cover (ends in a newline). */
  text: string;
  signatures: NoteSignature[];
}

// ---------------------------------------------------------------- names, numbers, base64

// Unicode White_Space or '+': forbidden in key names (C2SP) and, by our choice, in origins.
const BAD_NAME_CHAR = /[\p{White_Space}+]/u;

function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 && c !== 0x0a) return true;
  }
  return false;
}

/** Whether `name` is a valid note key name (non-empty, no spaces or '+', no control chars). */
export function isValidKeyName(name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && name.length <= MAX_NAME_LENGTH && name.isWellFormed() && !BAD_NAME_CHAR.test(name) && !hasControl(name) && !name.includes('\n');
}

/** Whether `origin` is a valid checkpoint origin (same rules as key names). */
export const isValidOrigin = isValidKeyName;

function parseDecimal(s: string, what: string): number {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(s)) fail('INVALID_CHECKPOINT', `checkpoint: ${what} is not a canonical decimal number`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) fail('INVALID_CHECKPOINT', `checkpoint: ${what} is too large`);
  return n;
}

function b64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

/** Decodes canonical standard base64 (padding present, unused bits zero) or throws. */
function parseBase64(s: string, what: string, len?: number): Uint8Array {
  if (s.length === 0 || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(s)) fail('INVALID_CHECKPOINT', `checkpoint: ${what} is not base64`);
  const out = new Uint8Array(Buffer.from(s, 'base64'));
  if (b64(out) !== s) fail('INVALID_CHECKPOINT', `checkpoint: ${what} is not canonical base64`);
  if (len !== undefined && out.length !== len) fail('INVALID_CHECKPOINT', `checkpoint: ${what} must be ${len} bytes`);
  return out;
}

// ---------------------------------------------------------------- keys

/** The C2SP signature type bytes of a suite: 0xff || "divs-pae/" || suite name. */
export function signatureType(suite: Suite): Uint8Array {
  const name = suiteName(suite);
  if (name.startsWith('unknown')) fail('UNSUPPORTED_SUITE', `unsupported signature suite ${String(suite)}`);
  const id = utf8(`divs-pae/${name}`);
  const out = new Uint8Array(1 + id.length);
  out[0] = 0xff;
  out.set(id, 1);
  return out;
}

/** Key ID: SHA-256(name || 0x0A || signature type || public key)[:4]; the key may be compressed or not. */
export function noteKeyId(name: string, suite: Suite, publicKey: Uint8Array): Uint8Array {
  // Normalise to the compressed SEC1 point (ECDSA) so both encodings of a key get one ID.
  return keyIdOfRaw(name, suite, rawPublicKey(importPublicKey(suite, publicKey)));
}

function keyIdOfRaw(name: string, suite: Suite, raw: Uint8Array): Uint8Array {
  const d = createHash('sha256').update(utf8(name)).update(new Uint8Array([0x0a])).update(signatureType(suite)).update(raw).digest();
  return new Uint8Array(d.subarray(0, 4));
}

// key IDs per key object and name: every checkpoint an AS signs, and every one a verifier
// checks, needs the same few IDs
const keyIds = new WeakMap<KeyObject, Map<string, Uint8Array>>();

function keyIdOfKeyObject(name: string, suite: Suite, key: KeyObject): Uint8Array {
  if (key.type !== 'public' && key.type !== 'private') fail('INVALID_PUBLIC_KEY', 'checkpoint: not an asymmetric key');
  if (suiteOfKeyObject(key) !== suite) fail('INVALID_PUBLIC_KEY', `checkpoint: key is not a ${suiteName(suite)} key`);
  let byName = keyIds.get(key);
  if (byName === undefined) keyIds.set(key, (byName = new Map()));
  let id = byName.get(`${suite}:${name}`);
  if (id === undefined) {
    // rawPublicKey already gives the normalised (compressed) encoding
    id = keyIdOfRaw(name, suite, rawPublicKey(key));
    byName.set(`${suite}:${name}`, id);
  }
  return id.slice();
}

// ---------------------------------------------------------------- format and sign

/** Formats a checkpoint body (the note text). Throws INVALID_ARGUMENT on bad fields. */
export function formatCheckpoint(body: CheckpointBody): string {
  if (!isValidOrigin(body.origin)) fail('INVALID_ARGUMENT', 'checkpoint: invalid origin');
  if (!Number.isSafeInteger(body.size) || body.size < 0) fail('INVALID_ARGUMENT', 'checkpoint: invalid size');
  if (!(body.rootHash instanceof Uint8Array) || body.rootHash.length !== 32) fail('INVALID_ARGUMENT', 'checkpoint: root hash must be 32 bytes');
  if (!(body.stateRoot instanceof Uint8Array) || body.stateRoot.length !== 32) fail('INVALID_ARGUMENT', 'checkpoint: state root must be 32 bytes');
  let text = `${body.origin}\n${body.size}\n${b64(body.rootHash)}\n${STATE_PREFIX}${b64(body.stateRoot)}\n`;
  if (body.block !== undefined) {
    const { height, hash } = body.block;
    if (!Number.isSafeInteger(height) || height < 0) fail('INVALID_ARGUMENT', 'checkpoint: invalid block height');
    if (!(hash instanceof Uint8Array) || hash.length !== 32) fail('INVALID_ARGUMENT', 'checkpoint: block hash must be 32 bytes');
    text += `${BLOCK_PREFIX}${height} ${b64(hash)}\n`;
  }
  return text;
}

/** The bytes a checkpoint signature covers: PAE(domain, text). */
export function checkpointSigningInput(text: string, domain: string = Domain.checkpoint): Uint8Array {
  return pae(domain, utf8(text));
}

async function signatureLine(text: string, name: string, signer: Signer, domain: string): Promise<string> {
  if (!isValidKeyName(name)) fail('INVALID_ARGUMENT', 'checkpoint: invalid key name');
  const keyId = noteKeyId(name, signer.suite, signer.publicKey);
  const sig = await signer.sign(checkpointSigningInput(text, domain));
  const blob = new Uint8Array(4 + sig.length);
  blob.set(keyId, 0);
  blob.set(sig, 4);
  return `${SIG_PREFIX}${name} ${b64(blob)}\n`;
}

/**
 * Signs a checkpoint body and returns the complete note (text, blank line, one signature line).
 *
 * @example
 * ```ts
 * const note = await signCheckpoint({ origin: 'divs-local', size, rootHash, stateRoot }, 'as-1', signer);
 * verifyCheckpoint(note, 'as-1', signer.suite, publicKeyObject).size === size;
 * ```
 */
export async function signCheckpoint(body: CheckpointBody | string, name: string, signer: Signer): Promise<string> {
  let text: string;
  if (typeof body === 'string') {
    parseCheckpointText(body);
    text = body;
  } else text = formatCheckpoint(body);
  return `${text}\n${await signatureLine(text, name, signer, Domain.checkpoint)}`;
}

/**
 * Adds one more signature line (a cosigner, or the same AS with a rotated key) over the same
 * text. `domain` lets witnesses sign under their own PAE type (e.g. Domain.cosignature).
 * Throws INVALID_CHECKPOINT if the note is malformed or `name` with this key already signed.
 */
export async function addSignature(note: string, name: string, signer: Signer, domain: string = Domain.checkpoint): Promise<string> {
  const parsed = parseCheckpoint(note);
  const keyId = noteKeyId(name, signer.suite, signer.publicKey);
  if (parsed.signatures.some((s) => s.name === name && equalBytes(s.keyId, keyId))) fail('INVALID_CHECKPOINT', `checkpoint: ${name} already signed it`);
  if (parsed.signatures.length >= MAX_SIGNATURES) fail('INVALID_CHECKPOINT', 'checkpoint: too many signatures');
  return `${note}${await signatureLine(parsed.text, name, signer, domain)}`;
}

// ---------------------------------------------------------------- parse and verify

function checkText(s: string, what: string): void {
  if (typeof s !== 'string') fail('INVALID_CHECKPOINT', `checkpoint: ${what} is not a string`);
  if (s.length > MAX_NOTE_LENGTH) fail('INVALID_CHECKPOINT', `checkpoint: ${what} too long`);
  if (!s.isWellFormed()) fail('INVALID_CHECKPOINT', `checkpoint: ${what} is not valid Unicode`);
  if (hasControl(s)) fail('INVALID_CHECKPOINT', `checkpoint: control characters in ${what}`);
  if (!s.endsWith('\n')) fail('INVALID_CHECKPOINT', `checkpoint: ${what} must end with a newline`);
  for (const line of s.split('\n')) if (line.length > MAX_LINE_LENGTH) fail('INVALID_CHECKPOINT', `checkpoint: line too long in ${what}`);
}

/** Parses a checkpoint body (note text without signatures) strictly; throws INVALID_CHECKPOINT. */
export function parseCheckpointText(text: string): CheckpointBody {
  checkText(text, 'text');
  return parseBody(text);
}

function parseBody(text: string): CheckpointBody {
  const lines = text.split('\n');
  lines.pop(); // text ends with '\n'
  if (lines.length < 4 || lines.length > 5) fail('INVALID_CHECKPOINT', 'checkpoint: expected 4 or 5 body lines');
  const [origin, sizeLine, rootLine, stateLine, blockLine] = lines as [string, string, string, string, string | undefined];
  if (!isValidOrigin(origin)) fail('INVALID_CHECKPOINT', 'checkpoint: invalid origin');
  const size = parseDecimal(sizeLine, 'size');
  const rootHash = parseBase64(rootLine, 'root hash', 32);
  if (!stateLine.startsWith(STATE_PREFIX)) fail('INVALID_CHECKPOINT', 'checkpoint: 4th line must be the divs-state extension');
  const stateRoot = parseBase64(stateLine.slice(STATE_PREFIX.length), 'state root', 32);
  const body: CheckpointBody = { origin, size, rootHash, stateRoot };
  if (blockLine !== undefined) {
    if (!blockLine.startsWith(BLOCK_PREFIX)) fail('INVALID_CHECKPOINT', 'checkpoint: 5th line must be the divs-block extension');
    const parts = blockLine.slice(BLOCK_PREFIX.length).split(' ');
    if (parts.length !== 2) fail('INVALID_CHECKPOINT', 'checkpoint: malformed divs-block line');
    body.block = { height: parseDecimal(parts[0] as string, 'block height'), hash: parseBase64(parts[1] as string, 'block hash', 32) };
  }
  return body;
}

/** Parses a signed checkpoint note strictly; throws INVALID_CHECKPOINT on anything malformed. */
export function parseCheckpoint(note: string): ParsedCheckpoint {
  checkText(note, 'note');
  const sep = note.lastIndexOf('\n\n');
  if (sep < 0) fail('INVALID_CHECKPOINT', 'checkpoint: no signatures');
  const text = note.slice(0, sep + 1);
  const body = parseBody(text);
  const sigLines = note.slice(sep + 2).split('\n');
  sigLines.pop();
  if (sigLines.length === 0) fail('INVALID_CHECKPOINT', 'checkpoint: no signatures');
  if (sigLines.length > MAX_SIGNATURES) fail('INVALID_CHECKPOINT', 'checkpoint: too many signatures');
  const signatures: NoteSignature[] = [];
  const seen = new Set<string>();
  for (const line of sigLines) {
    if (!line.startsWith(SIG_PREFIX)) fail('INVALID_CHECKPOINT', 'checkpoint: malformed signature line');
    const parts = line.slice(SIG_PREFIX.length).split(' ');
    if (parts.length !== 2) fail('INVALID_CHECKPOINT', 'checkpoint: malformed signature line');
    const [name, sig64] = parts as [string, string];
    if (!isValidKeyName(name)) fail('INVALID_CHECKPOINT', 'checkpoint: invalid key name in a signature line');
    const blob = parseBase64(sig64, 'signature');
    if (blob.length < 5) fail('INVALID_CHECKPOINT', 'checkpoint: signature too short');
    const keyId = blob.subarray(0, 4);
    const id = `${name} ${b64(keyId)}`;
    if (seen.has(id)) fail('INVALID_CHECKPOINT', `checkpoint: duplicate signature by ${name}`);
    seen.add(id);
    signatures.push({ name, keyId, signature: blob.subarray(4) });
  }
  return { ...body, text, signatures };
}

/**
 * Parses a note and verifies the signature of key `name` (its `suite` public key): throws
 * INVALID_CHECKPOINT when the note is malformed or carries no signature of that key,
 * INVALID_SIGNATURE when that signature does not verify. Signatures of other keys
 * (cosigners) are ignored, as C2SP requires.
 */
export function verifyCheckpoint(note: string, name: string, suite: Suite, key: KeyObject, domain: string = Domain.checkpoint): ParsedCheckpoint {
  const parsed = parseCheckpoint(note);
  const keyId = keyIdOfKeyObject(name, suite, key);
  const mine = parsed.signatures.find((s) => s.name === name && equalBytes(s.keyId, keyId));
  if (mine === undefined) fail('INVALID_CHECKPOINT', `checkpoint: not signed by ${name}`);
  // memoized: the same signed note comes with every answer until the ledger grows
  if (!nodeVerifyMemo(suite, key, checkpointSigningInput(parsed.text, domain), mine.signature)) fail('INVALID_SIGNATURE', `checkpoint: signature of ${name} does not verify`);
  return parsed;
}

/** Same as {@link verifyCheckpoint} but answers false instead of throwing. */
export function checkpointSignedBy(note: string, name: string, suite: Suite, key: KeyObject, domain: string = Domain.checkpoint): boolean {
  try {
    verifyCheckpoint(note, name, suite, key, domain);
    return true;
  } catch {
    return false;
  }
}
