/**
 * @module checkpoint.test
 * C2SP signed-note checkpoints: round trips for every suite, key IDs, cosignatures, domain
 * separation, and strict rejection of malformed notes.
 */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  MAX_SIGNATURES,
  addSignature,
  checkpointSignedBy,
  formatCheckpoint,
  noteKeyId,
  parseCheckpoint,
  parseCheckpointText,
  signCheckpoint,
  signatureType,
  verifyCheckpoint,
  type CheckpointBody,
} from '../src/checkpoint.ts';
import { Domain, pae, utf8 } from '../src/bytes.ts';
import { SignatureSuite, nodeSign, nodeSigner, rawPublicKey, type Signer, type Suite } from '../src/suites.ts';
import { p256 } from '@noble/curves/nist.js';

const h32 = (n: number): Uint8Array => new Uint8Array(createHash('sha256').update(String(n)).digest());
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

function keyPair(suite: Suite): { signer: Signer; pub: KeyObject; priv: KeyObject } {
  const kp =
    suite === SignatureSuite.SIGNATURE_SUITE_ED25519
      ? generateKeyPairSync('ed25519')
      : generateKeyPairSync('ec', { namedCurve: suite === SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256 ? 'P-256' : 'secp256k1' });
  return { signer: nodeSigner(kp.privateKey), pub: kp.publicKey, priv: kp.privateKey };
}

const P256 = SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;
const AS = keyPair(P256);
const BODY: CheckpointBody = { origin: 'divs-local', size: 12345, rootHash: h32(1), stateRoot: h32(2), block: { height: 41, hash: h32(3) } };

describe('checkpoint notes', () => {
  it('[FW-BC] formats the documented body and parses it back', () => {
    const text = formatCheckpoint(BODY);
    expect(text).toBe(`divs-local\n12345\n${b64(h32(1))}\ndivs-state ${b64(h32(2))}\ndivs-block 41 ${b64(h32(3))}\n`);
    const p = parseCheckpointText(text);
    expect(p).toEqual({ origin: 'divs-local', size: 12345, rootHash: h32(1), stateRoot: h32(2), block: { height: 41, hash: h32(3) } });
    const empty = formatCheckpoint({ origin: 'o', size: 0, rootHash: h32(0), stateRoot: new Uint8Array(32) });
    expect(parseCheckpointText(empty).block).toBeUndefined();
    expect(() => formatCheckpoint({ ...BODY, origin: 'has space' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => formatCheckpoint({ ...BODY, size: -1 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => formatCheckpoint({ ...BODY, rootHash: new Uint8Array(31) })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('[GEN-5] signs and verifies with every suite; the parsed fields come back', async () => {
    for (const suite of [P256, SignatureSuite.SIGNATURE_SUITE_ED25519, SignatureSuite.SIGNATURE_SUITE_ECDSA_SECP256K1_SHA256]) {
      const k = keyPair(suite);
      const note = await signCheckpoint(BODY, 'as-1', k.signer);
      const p = verifyCheckpoint(note, 'as-1', suite, k.pub);
      expect(p.size).toBe(12345);
      expect(p.origin).toBe('divs-local');
      expect(p.stateRoot).toEqual(h32(2));
      expect(p.signatures.length).toBe(1);
      expect(note.split('\n\n')[1]?.startsWith('\u2014 as-1 ')).toBe(true);
      // signing an already formatted body gives the same text
      const again = await signCheckpoint(formatCheckpoint(BODY), 'as-1', k.signer);
      expect(verifyCheckpoint(again, 'as-1', suite, k.pub).text).toBe(p.text);
    }
  });

  it('[GEN-5] key ID = SHA-256(name || 0x0A || 0xff "divs-pae/<suite>" || compressed key)[:4]', async () => {
    const raw = rawPublicKey(AS.pub);
    expect(raw.length).toBe(33);
    const type = signatureType(P256);
    expect(Buffer.from(type).toString('latin1')).toBe('\xffdivs-pae/ecdsa-p256-sha256');
    const want = createHash('sha256').update('as-1\n').update(type).update(raw).digest().subarray(0, 4);
    expect(Buffer.from(noteKeyId('as-1', P256, raw))).toEqual(want);
    // an uncompressed key names the same key
    const uncompressed = p256.Point.fromBytes(raw).toBytes(false);
    expect(Buffer.from(noteKeyId('as-1', P256, uncompressed))).toEqual(want);
    const note = await signCheckpoint(BODY, 'as-1', AS.signer);
    expect(Buffer.from(parseCheckpoint(note).signatures[0]?.keyId as Uint8Array)).toEqual(want);
  });

  it('[GEN-5] a changed body or signature fails; a note of another key or name is refused', async () => {
    const note = await signCheckpoint(BODY, 'as-1', AS.signer);
    const changed = note.replace('\n12345\n', '\n12346\n');
    expect(() => verifyCheckpoint(changed, 'as-1', P256, AS.pub)).toThrow(expect.objectContaining({ code: 'INVALID_SIGNATURE' }));
    const sigLine = note.split('\n\n')[1] as string;
    const blob = Buffer.from(sigLine.trim().split(' ')[2] as string, 'base64');
    blob[10] = (blob[10] as number) ^ 1;
    const badSig = `${note.split('\n\n')[0]}\n\n\u2014 as-1 ${blob.toString('base64')}\n`;
    expect(() => verifyCheckpoint(badSig, 'as-1', P256, AS.pub)).toThrow(expect.objectContaining({ code: 'INVALID_SIGNATURE' }));
    const other = keyPair(P256);
    expect(() => verifyCheckpoint(note, 'as-1', P256, other.pub)).toThrow(expect.objectContaining({ code: 'INVALID_CHECKPOINT' }));
    expect(() => verifyCheckpoint(note, 'as-2', P256, AS.pub)).toThrow(expect.objectContaining({ code: 'INVALID_CHECKPOINT' }));
    expect(() => verifyCheckpoint(note, 'as-1', SignatureSuite.SIGNATURE_SUITE_ED25519, AS.pub)).toThrow(expect.objectContaining({ code: 'INVALID_PUBLIC_KEY' }));
    expect(checkpointSignedBy(note, 'as-1', P256, AS.pub)).toBe(true);
    expect(checkpointSignedBy(changed, 'as-1', P256, AS.pub)).toBe(false);
  });

  it('[GEN-5] signatures are domain-separated: one over the raw text, or under another domain, does not verify', async () => {
    const text = formatCheckpoint(BODY);
    const keyId = noteKeyId('as-1', P256, AS.signer.publicKey);
    const line = (sig: Uint8Array): string => `${text}\n\u2014 as-1 ${b64(new Uint8Array([...keyId, ...sig]))}\n`;
    const raw = nodeSign(P256, AS.priv, utf8(text));
    expect(() => verifyCheckpoint(line(raw), 'as-1', P256, AS.pub)).toThrow(expect.objectContaining({ code: 'INVALID_SIGNATURE' }));
    const otherDomain = nodeSign(P256, AS.priv, pae(Domain.endorsement, utf8(text)));
    expect(() => verifyCheckpoint(line(otherDomain), 'as-1', P256, AS.pub)).toThrow(expect.objectContaining({ code: 'INVALID_SIGNATURE' }));
    const right = nodeSign(P256, AS.priv, pae(Domain.checkpoint, utf8(text)));
    expect(verifyCheckpoint(line(right), 'as-1', P256, AS.pub).size).toBe(12345);
  });

  it('[FW-BC] cosignatures: more signature lines, each verifiable alone, unknown ones ignored', async () => {
    const w = keyPair(SignatureSuite.SIGNATURE_SUITE_ED25519);
    const note = await signCheckpoint(BODY, 'as-1', AS.signer);
    const cosigned = await addSignature(note, 'witness.example/w1', w.signer, Domain.cosignature);
    const p = parseCheckpoint(cosigned);
    expect(p.signatures.map((s) => s.name)).toEqual(['as-1', 'witness.example/w1']);
    expect(verifyCheckpoint(cosigned, 'as-1', P256, AS.pub).size).toBe(12345);
    expect(verifyCheckpoint(cosigned, 'witness.example/w1', SignatureSuite.SIGNATURE_SUITE_ED25519, w.pub, Domain.cosignature).size).toBe(12345);
    // the witness signed under its own domain: it is not a checkpoint signature of that key
    expect(() => verifyCheckpoint(cosigned, 'witness.example/w1', SignatureSuite.SIGNATURE_SUITE_ED25519, w.pub)).toThrow(expect.objectContaining({ code: 'INVALID_SIGNATURE' }));
    await expect(addSignature(cosigned, 'as-1', AS.signer)).rejects.toMatchObject({ code: 'INVALID_CHECKPOINT' });
  });

  it('[GEN-5] strict parsing: every malformed note is INVALID_CHECKPOINT', async () => {
    const note = await signCheckpoint(BODY, 'as-1', AS.signer);
    const [text, sigs] = note.split('\n\n') as [string, string];
    const lines = text.split('\n');
    const withLine = (i: number, s: string): string => `${lines.map((l, j) => (j === i ? s : l)).join('\n')}\n\n${sigs}`;
    const sigLine = sigs.trimEnd();
    const noncanonical = (() => {
      // base64 of 32 bytes ends in one '=' with 2 unused bits: set them
      const s = b64(h32(1));
      const last = s.at(-2) as string;
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
      return `${s.slice(0, -2)}${alphabet[alphabet.indexOf(last) | 1]}=`;
    })();
    const bad: [string, unknown][] = [
      ['not a string', 42],
      ['no final newline', note.slice(0, -1)],
      ['CRLF', note.replace(/\n/g, '\r\n')],
      ['control character', note.replace('divs-local', 'divs\u0001local')],
      ['lone surrogate', note.replace('divs-local', 'divs\ud800')],
      ['no signature block', `${text}\n`],
      ['blank line but no signatures', `${text}\n\n`],
      ['origin with a space', withLine(0, 'divs local')],
      ['empty origin', withLine(0, '')],
      ['size with leading zero', withLine(1, '012345')],
      ['size with sign', withLine(1, '+12345')],
      ['size not a number', withLine(1, '12e3')],
      ['size beyond 2^53', withLine(1, '9007199254740993')],
      ['root not base64', withLine(2, '!!!!')],
      ['root without padding', withLine(2, b64(h32(1)).replace('=', ''))],
      ['root non-canonical base64', withLine(2, noncanonical)],
      ['root 31 bytes', withLine(2, b64(h32(1).subarray(1)))],
      ['state line missing', `${lines.slice(0, 3).join('\n')}\n\n${sigs}`],
      ['unknown extension', withLine(3, `divs-other ${b64(h32(2))}`)],
      ['extensions swapped', `${[...lines.slice(0, 3), lines[4], lines[3]].join('\n')}\n\n${sigs}`],
      ['extra line', `${text}\nmore\n\n${sigs}`],
      ['block height leading zero', withLine(4, `divs-block 041 ${b64(h32(3))}`)],
      ['block line with extra field', withLine(4, `divs-block 41 ${b64(h32(3))} x`)],
      ['signature line with a hyphen', `${text}\n\n- as-1 ${sigLine.split(' ')[2]}\n`],
      ['signature line without key', `${text}\n\n\u2014 as-1\n`],
      ['signature line, two spaces', `${text}\n\n\u2014 as-1  ${sigLine.split(' ')[2]}\n`],
      ['key name with plus', `${text}\n\n\u2014 as+1 ${sigLine.split(' ')[2]}\n`],
      ['signature of 4 bytes', `${text}\n\n\u2014 as-1 ${b64(new Uint8Array(4))}\n`],
      ['duplicate signer', `${note}${sigLine}\n`],
      ['too many signatures', `${text}\n\n${Array.from({ length: MAX_SIGNATURES + 1 }, (_, i) => `\u2014 w${i} ${b64(new Uint8Array(68))}\n`).join('')}`],
      ['overlong line', withLine(0, 'a'.repeat(5000))],
      ['overlong note', `${note}${'\u2014 x '.repeat(20000)}\n`],
    ];
    for (const [what, n] of bad) {
      expect(() => parseCheckpoint(n as string), what).toThrow(expect.objectContaining({ code: 'INVALID_CHECKPOINT' }));
    }
    expect(parseCheckpoint(note).size).toBe(12345);
  });
});
