/**
 * @module package
 * Verifiable data packages — consumer-initiated verification, Y.2247 clause 10.1 [SC1-1]
 * [SC1-2]. Format: `proto/divs/v1/package.proto`.
 *
 * A holder (gateway, consumer) exports signed UE records together with every endorsement they
 * need, as the AS proved them (exact ledger tx + inclusion proof + signed checkpoint + latest-
 * version proof): {@link buildPackage}. Any later consumer re-verifies the package OFFLINE with
 * only its trust anchors: {@link verifyPackage} checks every proof and checkpoint, every record
 * (UE signature, identity binding, signing time against the contract and its termination as
 * of the UE's latest version), every UE's record chain (gaps, replays, forks) and the chain of
 * custody, and returns a report with the dataset commitment over the valid records.
 *
 * Ownership passes from holder to holder with signed custody transfers
 * ({@link transferPackage}); packages of several aggregators merge into one while each keeps its
 * exact bytes and custody ({@link combinePackages}); a package can be encrypted to one
 * recipient's X25519 or P-256 key ({@link encryptPackage}, see `crypto-box.ts`).
 *
 * Everything read from a package is hostile: a bad record or proof gets a coded verdict in the
 * report; a package that does not even decode is a MALFORMED_MESSAGE error.
 */
import { KeyObject } from 'node:crypto';
import { Endorsement, LedgerTx, type PublicKey, RecordBody, SignedEndorsement, SignedRecord, type TxRef, type UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { ProvenTx } from '../../proto/gen/divs/v1/consumer_as.ts';
import { CustodyStatement, DataPackage, DataPackageContent, EncryptedPackage, PackageFile, type PackageProducer } from '../../proto/gen/divs/v1/package.ts';
import { equalBytes, pae, sha256, toHex } from '../../protocol/src/bytes.ts';
import { DivsError, fail, type ErrorCode } from '../../protocol/src/errors.ts';
import { describeIdentity } from '../../protocol/src/identity.ts';
import { EMPTY_ROOT, batchRoot, leafHash } from '../../protocol/src/merkle.ts';
import { verifyChain } from '../../protocol/src/pki.ts';
import { GENESIS_PREVIOUS_HASH, recordHash } from '../../protocol/src/records.ts';
import { assertSuite, importPublicKey, nodeVerify, rawPublicKey, suiteOfKeyObject, type Signer } from '../../protocol/src/suites.ts';
import { type KeyInput, open, seal } from './crypto-box.ts';
import { checkRecord, commonName, type TrustAnchors, type VerifiedEndorsement, verifyProvenEndorsement } from './verify.ts';

/** Version of DataPackageContent this code writes and reads. */
export const PACKAGE_FORMAT_VERSION = 1;
/** Media type of DataPackage bytes (the envelope's content type). */
export const PACKAGE_MEDIA_TYPE = 'application/vnd.divs.data-package+protobuf';
/** PAE type of custody transfer signatures. */
export const CUSTODY_DOMAIN = 'divs/package-custody';
/** Largest package (file, content or plaintext) accepted. */
export const MAX_PACKAGE_BYTES = 256 * 1024 * 1024;
/** Deepest nesting of combined packages. */
export const MAX_PART_DEPTH = 8;
/** Longest custody chain. */
export const MAX_CUSTODY_TRANSFERS = 1024;
// holders' clocks differ: a transfer may look this much older than the one before it
const CLOCK_SKEW_MS = 5 * 60_000;
const MAX_NAME_LENGTH = 256;
// AS answers that mean "this record's endorsement is bad", not "the service is unusable"
const FATAL_FETCH_CODES = new Set<ErrorCode>(['UNAVAILABLE', 'TIMEOUT', 'AS_UNAVAILABLE', 'UNAUTHENTICATED', 'PERMISSION_DENIED', 'AUTH_EXPIRED', 'INTERNAL', 'CONFIG_INVALID']);

// ---------------------------------------------------------------- encoding helpers

const asError = (e: unknown): DivsError => (e instanceof DivsError ? e : new DivsError('MALFORMED_MESSAGE', e instanceof Error ? e.message : String(e), { cause: e }));

function checkName(name: unknown, label: string): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH || !name.isWellFormed() || /\p{Cc}/u.test(name)) {
    fail('INVALID_ARGUMENT', `${label}: expected a name of 1 to ${MAX_NAME_LENGTH} printable characters`);
  }
  return name;
}

function decodeBytes<T>(codec: { decode(b: Uint8Array): T }, b: unknown, what: string): T {
  if (!(b instanceof Uint8Array)) fail('MALFORMED_MESSAGE', `${what}: expected bytes`);
  if (b.length > MAX_PACKAGE_BYTES) fail('MESSAGE_TOO_LARGE', `${what}: larger than ${MAX_PACKAGE_BYTES} bytes`);
  try {
    return codec.decode(b);
  } catch (e) {
    // attacker-controlled bytes: any decoder failure is the sender's fault
    fail('MALFORMED_MESSAGE', `${what} does not decode`, e);
  }
}

/** Decodes and checks a package's content (format version, producer). MALFORMED_MESSAGE when unusable. */
export function readPackageContent(pkg: DataPackage, what = 'package'): DataPackageContent {
  if (typeof pkg !== 'object' || pkg === null || !Array.isArray(pkg.custody)) fail('MALFORMED_MESSAGE', `${what}: not a package`);
  const c = decodeBytes(DataPackageContent, pkg.content, `${what}.content`);
  if (c.formatVersion !== PACKAGE_FORMAT_VERSION) fail('MALFORMED_MESSAGE', `${what}: unsupported format version ${c.formatVersion}`);
  if (!c.producer || c.producer.name.length === 0) fail('MALFORMED_MESSAGE', `${what}: no producer`);
  return c;
}

/** SHA-256 of the exact content bytes: what custody transfers sign. */
export function packageDigest(pkg: DataPackage): Uint8Array {
  return sha256(pkg.content);
}

/** The bytes of a `.divspkg` file for a plain or encrypted package. */
export function encodePackageFile(pkg: DataPackage | EncryptedPackage): Uint8Array {
  const kind: PackageFile['kind'] = 'content' in pkg ? { $case: 'plain', value: pkg } : { $case: 'encrypted', value: pkg };
  return PackageFile.encode({ kind }).finish();
}

/** Decodes a `.divspkg` file. MALFORMED_MESSAGE when it is not one. */
export function decodePackageFile(bytes: Uint8Array): NonNullable<PackageFile['kind']> {
  const f = decodeBytes(PackageFile, bytes, 'package file');
  if (!f.kind) fail('MALFORMED_MESSAGE', 'not a DIVS package file');
  return f.kind;
}

/**
 * The package in a `.divspkg` file, decrypted with `recipientPrivateKey` when it is encrypted.
 * DECRYPTION_FAILED for an encrypted package without (or with the wrong) key.
 */
export function openPackageFile(bytes: Uint8Array, recipientPrivateKey?: KeyInput): DataPackage {
  const kind = decodePackageFile(bytes);
  if (kind.$case === 'plain') return kind.value;
  if (recipientPrivateKey === undefined) fail('DECRYPTION_FAILED', 'the package is encrypted: a recipient private key is needed');
  return decryptPackage(kind.value, recipientPrivateKey);
}

/**
 * Encrypts a package to one recipient's X25519 or P-256 public key (PEM, SPKI DER, KeyObject or
 * an X.509 certificate PEM) [SC1-1]. Format in package.proto (EnvelopeHeader).
 */
export function encryptPackage(pkg: DataPackage | Uint8Array, recipientPublicKey: KeyInput): EncryptedPackage {
  const bytes = pkg instanceof Uint8Array ? pkg : DataPackage.encode(pkg).finish();
  // never encrypt something the recipient could not read
  readPackageContent(decodeBytes(DataPackage, bytes, 'package'));
  return seal(bytes, recipientPublicKey, { contentType: PACKAGE_MEDIA_TYPE });
}

/** Decrypts a package (an EncryptedPackage, or `.divspkg` bytes holding one). DECRYPTION_FAILED on any failure to open. */
export function decryptPackage(envelope: EncryptedPackage | Uint8Array, recipientPrivateKey: KeyInput): DataPackage {
  let env: EncryptedPackage;
  if (envelope instanceof Uint8Array) {
    const kind = decodePackageFile(envelope);
    if (kind.$case !== 'encrypted') fail('DECRYPTION_FAILED', 'the package file is not encrypted');
    env = kind.value;
  } else env = envelope;
  const plain = open(env, recipientPrivateKey, PACKAGE_MEDIA_TYPE);
  const pkg = decodeBytes(DataPackage, plain, 'decrypted package');
  readPackageContent(pkg, 'decrypted package');
  return pkg;
}

// ---------------------------------------------------------------- building

/** Where a package builder gets proven endorsements: a {@link DivsConsumer} or anything alike (a gateway's cache). */
export interface ProvenTxSource {
  /** The endorsement a tx ref names, with inclusion proof, checkpoint and (ideally) latest-version proof. */
  provenEndorsement(ref: TxRef): Promise<{ proven: ProvenTx }>;
  /** The UE's latest endorsement with its latest-version proof. */
  provenLatest(ref: TxRef, ueKey: Uint8Array): Promise<{ proven: ProvenTx }>;
}

export interface BuildPackageOptions {
  producer: { name: string; kind?: string; description?: string };
  description?: string;
  createdAtMs?: number;
  /** AS calls in flight (default 8). */
  concurrency?: number;
  /**
   * Called for a record whose endorsement the AS refuses (unknown tx, untrusted, …) or that names
   * none: the record stays in the package (it will verify as invalid). Outages and refused
   * credentials throw instead: the package would be incomplete for reasons unrelated to the data.
   */
  onProblem?: (p: { index: number; code: ErrorCode; reason: string }) => void;
}

/** The UE key (SHA-256 of its public key) of a proven endorsement, read without verifying. */
function ueKeyOf(p: ProvenTx): Uint8Array {
  const tx = decodeBytes(LedgerTx, p.tx, 'ledger tx');
  const se = decodeBytes(SignedEndorsement, tx.payload, 'signed endorsement');
  const e = decodeBytes(Endorsement, se.endorsement, 'endorsement');
  if (e.ueKey.length !== 32) fail('MALFORMED_MESSAGE', 'endorsement has no UE key');
  return e.ueKey;
}

/** Whether a proven tx carries a latest proof naming itself. */
function provesItselfLatest(p: ProvenTx): boolean {
  return p.latest !== undefined && p.latest.value.length === 32 && equalBytes(p.latest.value, leafHash(p.tx));
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/**
 * Builds a package from signed records [SC1-1]: fetches, for every endorsement the records name,
 * the exact ProvenTx (with latest-version proof) and, when that is not the UE's latest version,
 * the latest one too, so a later consumer can judge termination offline.
 *
 * @example
 * const consumer = new DivsConsumer({ anchors, tokens: { '*': token } });
 * const pkg = await buildPackage(records, consumer, { producer: { name: 'gateway-1', kind: 'gateway' } });
 * writeFileSync('data.divspkg', encodePackageFile(pkg));
 */
export async function buildPackage(records: readonly SignedRecord[], source: ProvenTxSource, opts: BuildPackageOptions): Promise<DataPackage> {
  if (!Array.isArray(records)) fail('INVALID_ARGUMENT', 'records: expected a list of SignedRecords');
  const name = checkName(opts?.producer?.name, 'producer.name');
  const concurrency = opts.concurrency ?? 8;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) fail('INVALID_ARGUMENT', 'concurrency: a positive integer');
  const createdAtMs = opts.createdAtMs ?? Date.now();
  if (!Number.isSafeInteger(createdAtMs) || createdAtMs < 0) fail('INVALID_ARGUMENT', 'createdAtMs: a non-negative integer');

  const problem = (index: number, code: ErrorCode, reason: string) => opts.onProblem?.({ index, code, reason });
  // one fetch per distinct endorsement; the first record naming it speaks for the others
  const refs = new Map<string, { ref: TxRef; index: number }>();
  const kept: SignedRecord[] = records.map((r, i) => {
    if (typeof r !== 'object' || r === null || !(r.body instanceof Uint8Array) || !(r.signature instanceof Uint8Array)) fail('INVALID_ARGUMENT', `records[${i}]: not a SignedRecord`);
    let body: RecordBody;
    try {
      body = RecordBody.decode(r.body);
    } catch {
      problem(i, 'MALFORMED_MESSAGE', 'record body does not decode');
      return r;
    }
    const ref = body.endorsement;
    if (!ref) problem(i, 'MISSING_FIELD', 'record names no endorsement');
    else {
      const key = `${ref.entryAddress?.ledgerId ?? ''}#${ref.txHash.length > 0 ? toHex(ref.txHash) : ref.txId}`;
      if (!refs.has(key)) refs.set(key, { ref, index: i });
    }
    return r;
  });

  const proofs = new Map<string, ProvenTx>();
  const add = (p: ProvenTx) => {
    const k = toHex(sha256(ProvenTx.encode(p).finish()));
    if (!proofs.has(k)) proofs.set(k, p);
  };
  const onFetchError = (e: unknown, index: number) => {
    const err = e instanceof DivsError ? e : new DivsError('INTERNAL', String(e), { cause: e });
    if (FATAL_FETCH_CODES.has(err.code)) throw err;
    problem(index, err.code, err.message);
  };
  // UEs whose latest version is still to fetch: (ledger, UE key) -> a ref to reach its AS
  const latestNeeded = new Map<string, { ref: TxRef; ueKey: Uint8Array; index: number }>();
  const latestKnown = new Set<string>();
  await mapLimit([...refs.values()], concurrency, async ({ ref, index }) => {
    try {
      const { proven } = await source.provenEndorsement(ref);
      add(proven);
      const ueKey = ueKeyOf(proven);
      const k = `${ref.entryAddress?.ledgerId ?? ''}#${toHex(ueKey)}`;
      if (provesItselfLatest(proven)) latestKnown.add(k);
      else if (!latestNeeded.has(k)) latestNeeded.set(k, { ref, ueKey, index });
    } catch (e) {
      onFetchError(e, index);
    }
  });
  const todo = [...latestNeeded.entries()].filter(([k]) => !latestKnown.has(k)).map(([, v]) => v);
  await mapLimit(todo, concurrency, async ({ ref, ueKey, index }) => {
    try {
      add((await source.provenLatest(ref, ueKey)).proven);
    } catch (e) {
      onFetchError(e, index);
    }
  });

  const content = DataPackageContent.encode({
    formatVersion: PACKAGE_FORMAT_VERSION,
    producer: { name, kind: opts.producer.kind ?? '', description: opts.producer.description ?? '' },
    createdAtMs,
    description: opts.description ?? '',
    records: kept,
    endorsements: [...proofs.values()],
    parts: [],
  }).finish();
  return { content, custody: [] };
}

/**
 * Merges packages (e.g. from several aggregators) into one [SC1-2]. Each input is kept exactly,
 * with its custody chain, as a part: its provenance stays verifiable, and every proof is kept.
 * Identical records in several parts count once in the dataset ({@link verifyPackage}).
 * Identical inputs are kept once.
 */
export function combinePackages(pkgs: readonly DataPackage[], opts: { producer: { name: string; kind?: string; description?: string }; description?: string; createdAtMs?: number }): DataPackage {
  if (!Array.isArray(pkgs) || pkgs.length === 0) fail('INVALID_ARGUMENT', 'combinePackages: at least one package');
  const name = checkName(opts?.producer?.name, 'producer.name');
  const parts = new Map<string, DataPackage>();
  pkgs.forEach((p, i) => {
    if (depthOf(p, `packages[${i}]`, 0) + 1 > MAX_PART_DEPTH) fail('INVALID_ARGUMENT', `packages[${i}]: combined packages nest at most ${MAX_PART_DEPTH} deep`);
    const k = toHex(sha256(DataPackage.encode(p).finish()));
    if (!parts.has(k)) parts.set(k, p);
  });
  const content = DataPackageContent.encode({
    formatVersion: PACKAGE_FORMAT_VERSION,
    producer: { name, kind: opts.producer.kind ?? '', description: opts.producer.description ?? '' },
    createdAtMs: opts.createdAtMs ?? Date.now(),
    description: opts.description ?? '',
    records: [],
    endorsements: [],
    parts: [...parts.values()],
  }).finish();
  return { content, custody: [] };
}

function depthOf(pkg: DataPackage, what: string, depth: number): number {
  if (depth > MAX_PART_DEPTH) fail('MALFORMED_MESSAGE', `${what}: parts nest deeper than ${MAX_PART_DEPTH}`);
  const c = readPackageContent(pkg, what);
  let d = 0;
  c.parts.forEach((p, i) => {
    d = Math.max(d, 1 + depthOf(p, `${what}.parts[${i}]`, depth + 1));
  });
  return d;
}

// ---------------------------------------------------------------- custody

function publicKeyOf(k: KeyObject | PublicKey, label: string): PublicKey {
  if (k instanceof KeyObject) return { suite: suiteOfKeyObject(k), key: rawPublicKey(k) };
  if (typeof k !== 'object' || k === null || !(k.key instanceof Uint8Array)) fail('INVALID_ARGUMENT', `${label}: expected a KeyObject or { suite, key }`);
  assertSuite(k.suite);
  importPublicKey(k.suite, k.key);
  return { suite: k.suite, key: new Uint8Array(k.key) };
}

/** The same key, whatever its point encoding. */
function sameKey(a: PublicKey, b: PublicKey): boolean {
  if (a.suite !== b.suite) return false;
  if (equalBytes(a.key, b.key)) return true;
  try {
    return equalBytes(rawPublicKey(importPublicKey(a.suite, a.key)), rawPublicKey(importPublicKey(b.suite, b.key)));
  } catch {
    return false;
  }
}

/** Who holds a package now: the last recipient, or the producer. */
export function currentHolder(pkg: DataPackage): string {
  const c = readPackageContent(pkg);
  const last = pkg.custody.at(-1);
  return last ? decodeBytes(CustodyStatement, last.statement, 'custody statement').to : (c.producer?.name ?? '');
}

export interface TransferOptions {
  /** Sender name; default the current holder (it must be the current holder). */
  fromName?: string;
  /** The recipient's signing key: the next transfer must then be signed by it. */
  toKey?: KeyObject | PublicKey;
  /** X.509 chain (DER, leaf first) certifying the sender key; its CN must be the sender name. */
  certChain?: Uint8Array[];
  timeMs?: number;
  note?: string;
}

/**
 * Appends a custody transfer to `toName`, signed by the current holder [SC1-2]. CUSTODY_BROKEN
 * when `from` is not the current holder or not the key the previous transfer named;
 * INVALID_SIGNATURE when the signer's signature does not verify with its own public key.
 */
export async function transferPackage(pkg: DataPackage, from: Signer, toName: string, opts: TransferOptions = {}): Promise<DataPackage> {
  const content = readPackageContent(pkg);
  if (pkg.custody.length >= MAX_CUSTODY_TRANSFERS) fail('INVALID_ARGUMENT', `a custody chain holds at most ${MAX_CUSTODY_TRANSFERS} transfers`);
  const to = checkName(toName, 'toName');
  if (typeof from !== 'object' || from === null || typeof from.sign !== 'function') fail('INVALID_ARGUMENT', 'from: expected a Signer');
  const fromKey = publicKeyOf({ suite: from.suite, key: from.publicKey }, 'from.publicKey');
  const prevT = pkg.custody.at(-1);
  const prev = prevT ? decodeBytes(CustodyStatement, prevT.statement, 'custody statement') : undefined;
  const holder = prev ? prev.to : (content.producer?.name ?? '');
  const fromName = opts.fromName === undefined ? holder : checkName(opts.fromName, 'fromName');
  if (fromName !== holder) fail('CUSTODY_BROKEN', `${fromName} cannot transfer a package held by ${holder}`);
  if (prev?.toKey && !sameKey(prev.toKey, fromKey)) fail('CUSTODY_BROKEN', `the package was handed to ${holder} for another key than the signer's`);
  const prevTime = prev?.timeMs ?? content.createdAtMs;
  const timeMs = opts.timeMs ?? Math.max(Date.now(), prevTime);
  if (!Number.isSafeInteger(timeMs) || timeMs < prevTime) fail('INVALID_ARGUMENT', 'timeMs: a transfer cannot precede the previous one');
  const statement = CustodyStatement.encode({
    packageDigest: packageDigest(pkg),
    index: pkg.custody.length,
    previousStatementHash: prevT ? sha256(prevT.statement) : new Uint8Array(0),
    from: fromName,
    to,
    timeMs,
    fromKey,
    toKey: opts.toKey === undefined ? undefined : publicKeyOf(opts.toKey, 'toKey'),
    note: opts.note ?? '',
  }).finish();
  const signature = await from.sign(pae(CUSTODY_DOMAIN, statement));
  if (!nodeVerify(fromKey.suite, importPublicKey(fromKey.suite, fromKey.key), pae(CUSTODY_DOMAIN, statement), signature)) {
    fail('INVALID_SIGNATURE', 'the sender signature does not verify with its own public key');
  }
  const certChain = opts.certChain ?? [];
  return { content: pkg.content, custody: [...pkg.custody, { statement, signature, certChain }] };
}

/** One verified custody transfer. */
export interface CustodyStep {
  index: number;
  from: string;
  to: string;
  timeMs: number;
  /** First 16 hex digits of SHA-256 over the sender's raw public key. */
  senderKey: string;
  /** How the sender key is bound to the sender: its certificate, the previous transfer, or not at all. */
  senderBinding: 'certificate' | 'previous-transfer' | 'self-asserted';
  note: string;
}

export interface CustodyReport {
  ok: boolean;
  /** Who holds the package: the last verified recipient (the producer without transfers). */
  holder: string;
  transfers: CustodyStep[];
  /** The first broken transfer; nothing after it is trusted. */
  error?: { index: number; code: ErrorCode; reason: string };
}

/** Verifies a custody chain over a package digest [SC1-2]. Never throws: failures land in the report. */
export function verifyCustody(pkg: DataPackage, producer: string, createdAtMs: number, anchors: TrustAnchors, at: Date): CustodyReport {
  const digest = packageDigest(pkg);
  const report: CustodyReport = { ok: true, holder: producer, transfers: [] };
  if (pkg.custody.length > MAX_CUSTODY_TRANSFERS) {
    return { ...report, ok: false, error: { index: MAX_CUSTODY_TRANSFERS, code: 'CUSTODY_BROKEN', reason: `more than ${MAX_CUSTODY_TRANSFERS} transfers` } };
  }
  let prevHash: Uint8Array = new Uint8Array(0);
  let prevTime = createdAtMs;
  let bound: PublicKey | undefined;
  for (const [i, t] of pkg.custody.entries()) {
    try {
      const st = decodeBytes(CustodyStatement, t.statement, `custody[${i}].statement`);
      // an explicitly typed `never` function, so the compiler narrows after calls to it
      const broken: (why: string) => never = (why) => fail('CUSTODY_BROKEN', `custody[${i}]: ${why}`);
      if (!equalBytes(st.packageDigest, digest)) broken('signed for another package (digest mismatch)');
      if (st.index !== i) broken(`says it is transfer ${st.index}`);
      if (!equalBytes(st.previousStatementHash, prevHash)) broken('does not follow the previous transfer');
      if (st.from !== report.holder) broken(`comes from ${st.from}, but ${report.holder} held the package`);
      if (st.to.length === 0) broken('names no recipient');
      if (st.timeMs < prevTime - CLOCK_SKEW_MS) broken('is dated before the previous transfer');
      // against the real clock: `at` may lie in the past to judge certificates as of then
      if (st.timeMs > Date.now() + CLOCK_SKEW_MS) broken('is dated in the future');
      if (!st.fromKey) broken('names no sender key');
      let key: KeyObject;
      try {
        assertSuite(st.fromKey.suite);
        key = importPublicKey(st.fromKey.suite, st.fromKey.key);
      } catch (e) {
        broken(`sender key is unusable (${asError(e).message})`);
      }
      let binding: CustodyStep['senderBinding'] = 'self-asserted';
      if (bound) {
        if (!sameKey(bound, st.fromKey)) broken(`signed by another key than the one transfer ${i - 1} handed the package to`);
        binding = 'previous-transfer';
      }
      if (t.certChain.length > 0) {
        const chain = verifyChain(t.certChain, anchors.roots, { at });
        if (commonName(chain.subject) !== st.from) broken(`certificate is for ${chain.subject}, not ${st.from}`);
        if (!equalBytes(rawPublicKey(chain.publicKey), rawPublicKey(key))) broken('certificate is for another key than the sender key');
        binding = 'certificate';
      }
      if (!nodeVerify(st.fromKey.suite, key, pae(CUSTODY_DOMAIN, t.statement), t.signature)) fail('INVALID_SIGNATURE', `custody[${i}]: the sender signature does not verify`);
      if (st.toKey) {
        try {
          assertSuite(st.toKey.suite);
          importPublicKey(st.toKey.suite, st.toKey.key);
        } catch (e) {
          broken(`recipient key is unusable (${asError(e).message})`);
        }
      }
      report.transfers.push({ index: i, from: st.from, to: st.to, timeMs: st.timeMs, senderKey: toHex(sha256(rawPublicKey(key))).slice(0, 16), senderBinding: binding, note: st.note });
      report.holder = st.to;
      prevHash = sha256(t.statement);
      prevTime = st.timeMs;
      bound = st.toKey;
    } catch (e) {
      const err = asError(e);
      return { ...report, ok: false, error: { index: i, code: err.code, reason: err.message } };
    }
  }
  return report;
}

// ---------------------------------------------------------------- verification

/** A record the report calls invalid. */
export interface InvalidRecord {
  /** Where in the package, e.g. `records[3]` or `parts[1].records[0]`. */
  where: string;
  recordHash: Uint8Array;
  ue?: string;
  sequence?: number;
  code: ErrorCode;
  reason: string;
}

/** A finding on a UE's record chain. */
export interface ChainFinding {
  code: 'CHAIN_GAP' | 'RECORD_FORK' | 'RECORD_REPLAYED';
  ue: string;
  ueKey: Uint8Array;
  sequence: number;
  where: string;
  detail: string;
}

export interface ChainSummary {
  ue: string;
  ueKey: Uint8Array;
  ledgerId: string;
  records: number;
  firstSequence: number;
  lastSequence: number;
}

export interface EndorsementCheck {
  where: string;
  txId: number;
  ledgerId: string;
  ok: boolean;
  version?: number;
  isLatest?: boolean;
  checkpointSize?: number;
  code?: ErrorCode;
  reason?: string;
}

export interface PartReport {
  where: string;
  digest: Uint8Array;
  producer: PackageProducer;
  createdAtMs: number;
  records: number;
  custody: CustodyReport;
}

/** What {@link verifyPackage} found. */
export interface PackageReport {
  /** Every record valid, every chain intact, every proof and custody transfer valid. */
  ok: boolean;
  digest: Uint8Array;
  formatVersion: number;
  producer: PackageProducer;
  createdAtMs: number;
  description: string;
  records: {
    /** Records listed in the package and its parts. */
    listed: number;
    /** Listed minus copies of a record already seen in another part. */
    unique: number;
    duplicates: number;
    valid: number;
    invalid: number;
  };
  /** Per unique record: "OK" or its error code. */
  verdicts: Record<string, number>;
  invalid: InvalidRecord[];
  /** Chain findings; CHAIN_GAP leaves the records valid (data is missing), forks and replays do not. */
  findings: ChainFinding[];
  chains: ChainSummary[];
  endorsements: { total: number; valid: number; checks: EndorsementCheck[] };
  custody: CustodyReport;
  parts: PartReport[];
  /** Record hashes (SHA-256 of the body) of the valid records, in package order. */
  validRecordHashes: Uint8Array[];
  /** RFC 9162 root over the valid record hashes (each one leaf; `batchRoot`), EMPTY_ROOT for none. */
  datasetCommitment: Uint8Array;
}

export interface VerifyPackageOptions {
  /** Time at which certificates must be valid (default now). */
  at?: Date;
}

interface Occurrence {
  where: string;
  /** Index of the content listing it: the same record twice in one content is a replay. */
  scope: number;
  record: SignedRecord;
  hash: Uint8Array;
  hashHex: string;
  body?: RecordBody;
  ue?: { group: string; ueKey: Uint8Array; ledgerId: string; label: string };
  verdict: { ok: true } | { ok: false; code: ErrorCode; reason: string };
  duplicate: boolean;
}

interface ProofEntry {
  where: string;
  proven: ProvenTx;
  leafHex: string;
  v?: VerifiedEndorsement;
  error?: { code: ErrorCode; reason: string };
}

/**
 * Verifies a package OFFLINE with only the trust anchors [SC1-1] [SC1-2] [VER-3] [FW-SU]:
 * every proven endorsement (AS chain and signature, inclusion proof, checkpoint signature,
 * latest-version proof), every record against the endorsement it names and the UE's latest
 * version (checkRecord: signature, identity, time vs contract and termination), each UE's
 * record chain across all parts (gaps, replays, forks), and the custody chain of the package
 * and of each part. Throws only for a package that does not decode (MALFORMED_MESSAGE,
 * MESSAGE_TOO_LARGE); everything else is in the report.
 */
export function verifyPackage(pkg: DataPackage, anchors: TrustAnchors, opts: VerifyPackageOptions = {}): PackageReport {
  const at = opts.at ?? new Date();
  if (!(at instanceof Date) || !Number.isFinite(at.getTime())) fail('INVALID_ARGUMENT', 'at: a valid Date');
  if (!anchors || !Array.isArray(anchors.roots)) fail('INVALID_ARGUMENT', 'anchors: expected { roots: DER certificates }');

  const occurrences: Occurrence[] = [];
  const proofs: ProofEntry[] = [];
  const parts: PartReport[] = [];
  let scopes = 0;
  const walk = (p: DataPackage, prefix: string, depth: number): { content: DataPackageContent; custody: CustodyReport } => {
    if (depth > MAX_PART_DEPTH) fail('MALFORMED_MESSAGE', `${prefix}: parts nest deeper than ${MAX_PART_DEPTH}`);
    const what = prefix === '' ? 'package' : prefix.slice(0, -1);
    const content = readPackageContent(p, what);
    const producer = content.producer as PackageProducer;
    const custody = verifyCustody(p, producer.name, content.createdAtMs, anchors, at);
    if (depth > 0) parts.push({ where: what, digest: packageDigest(p), producer, createdAtMs: content.createdAtMs, records: content.records.length, custody });
    const scope = scopes++;
    content.endorsements.forEach((proven, i) => proofs.push({ where: `${prefix}endorsements[${i}]`, proven, leafHex: toHex(leafHash(proven.tx)) }));
    content.records.forEach((record, i) => {
      const hash = recordHash(record.body);
      occurrences.push({ where: `${prefix}records[${i}]`, scope, record, hash, hashHex: toHex(hash), verdict: { ok: true }, duplicate: false });
    });
    content.parts.forEach((part, i) => walk(part, `${prefix}parts[${i}].`, depth + 1));
    return { content, custody };
  };
  const top = walk(pkg, '', 0);

  // ---- endorsements: each distinct ProvenTx once
  const seen = new Map<string, ProofEntry>();
  const checks: EndorsementCheck[] = [];
  const byLeaf = new Map<string, ProofEntry[]>();
  for (const e of proofs) {
    const k = toHex(sha256(ProvenTx.encode(e.proven).finish()));
    if (seen.has(k)) continue;
    seen.set(k, e);
    try {
      e.v = verifyProvenEndorsement(e.proven, anchors, { at });
      checks.push({ where: e.where, txId: e.v.txId, ledgerId: e.v.checkpoint.origin, ok: true, version: e.v.endorsement.version, isLatest: e.v.isLatest, checkpointSize: e.v.checkpoint.size });
    } catch (err) {
      const d = asError(err);
      e.error = { code: d.code, reason: d.message };
      checks.push({ where: e.where, txId: e.proven.txId, ledgerId: '', ok: false, code: d.code, reason: d.message });
    }
    const list = byLeaf.get(e.leafHex) ?? [];
    list.push(e);
    byLeaf.set(e.leafHex, list);
  }
  const groups = new Map<string, ProofEntry[]>();
  for (const e of seen.values()) {
    if (!e.v) continue;
    const g = `${e.v.checkpoint.origin}#${toHex(e.v.ueKey)}`;
    const list = groups.get(g) ?? [];
    list.push(e);
    groups.set(g, list);
  }

  // ---- the latest version of each UE, as of the newest checkpoint the package carries
  const latestMemo = new Map<string, { v: VerifiedEndorsement } | { code: ErrorCode; reason: string }>();
  const latestOf = (group: string) => {
    let r = latestMemo.get(group);
    if (r) return r;
    const withProof = (groups.get(group) ?? []).filter((e) => e.v?.isLatest !== undefined);
    if (withProof.length === 0) r = { code: 'NOT_LATEST', reason: 'the package carries no latest-version proof for this UE' };
    else {
      // the freshest state wins; at one size, a proof naming its own tx is as good as any
      withProof.sort((a, b) => (b.v?.checkpoint.size ?? 0) - (a.v?.checkpoint.size ?? 0) || Number(b.v?.isLatest === true) - Number(a.v?.isLatest === true));
      const newest = withProof[0] as ProofEntry;
      const value = newest.proven.latest?.value ?? new Uint8Array(0);
      const named = value.length === 32 ? (byLeaf.get(toHex(value)) ?? []) : [];
      const target = named.find((e) => e.v && `${e.v.checkpoint.origin}#${toHex(e.v.ueKey)}` === group);
      const broken = named.find((e) => e.error);
      r = target?.v
        ? { v: target.v }
        : broken?.error
          ? { code: broken.error.code, reason: `the UE's latest endorsement does not verify: ${broken.error.reason}` }
          : { code: 'NOT_LATEST', reason: `checkpoint ${newest.v?.checkpoint.size} of ledger ${newest.v?.checkpoint.origin} proves a newer version of this UE's endorsement that the package does not carry` };
    }
    latestMemo.set(group, r);
    return r;
  };

  // ---- each record against its endorsement and the UE's latest version
  const bad = (o: Occurrence, code: ErrorCode, reason: string) => {
    o.verdict = { ok: false, code, reason };
  };
  for (const o of occurrences) {
    let body: RecordBody;
    try {
      body = RecordBody.decode(o.record.body);
    } catch {
      bad(o, 'MALFORMED_MESSAGE', 'record body does not decode');
      continue;
    }
    o.body = body;
    const ref = body.endorsement;
    if (!ref) {
      bad(o, 'MISSING_FIELD', 'record names no endorsement (tx ID + entry address)');
      continue;
    }
    const ledgerId = ref.entryAddress?.ledgerId ?? '';
    const candidates = ref.txHash.length > 0 ? (byLeaf.get(toHex(ref.txHash)) ?? []) : [...seen.values()].filter((e) => e.v?.txId === ref.txId && e.v.checkpoint.origin === ledgerId);
    if (candidates.length === 0) {
      bad(o, 'UNKNOWN_TX', `the package carries no proof of endorsement tx ${ref.txId} of ledger ${ledgerId}`);
      continue;
    }
    const good = candidates.filter((e) => e.v);
    if (good.length === 0) {
      const err = candidates[0]?.error ?? { code: 'INVALID_ENDORSEMENT' as ErrorCode, reason: 'endorsement does not verify' };
      bad(o, err.code, `endorsement tx ${ref.txId}: ${err.reason}`);
      continue;
    }
    const claimed = good.find((e) => e.v?.txId === ref.txId && e.v.checkpoint.origin === ledgerId)?.v;
    if (!claimed) {
      const v = (good[0] as ProofEntry).v as VerifiedEndorsement;
      if (v.txId !== ref.txId) bad(o, 'INVALID_ENDORSEMENT', `record names tx ${ref.txId}, but its tx hash is that of tx ${v.txId}`);
      else bad(o, 'INVALID_CHECKPOINT', `record names ledger ${ledgerId}, but the endorsement is proven on ledger ${v.checkpoint.origin}`);
      continue;
    }
    const group = `${claimed.checkpoint.origin}#${toHex(claimed.ueKey)}`;
    o.ue = { group, ueKey: claimed.ueKey, ledgerId: claimed.checkpoint.origin, label: body.identity ? describeIdentity(body.identity as UeIdentity) : toHex(claimed.ueKey).slice(0, 16) };
    const latest = latestOf(group);
    if (!('v' in latest)) {
      bad(o, latest.code, latest.reason);
      continue;
    }
    const verdict = checkRecord(o.record, claimed, latest.v);
    if (!verdict.ok) bad(o, verdict.code, verdict.reason);
  }

  // ---- identical records: a copy in the same content is a replay, in another part a duplicate
  const findings: ChainFinding[] = [];
  const scopesOf = new Map<string, Set<number>>();
  for (const o of occurrences) {
    if (!o.verdict.ok) continue;
    const s = scopesOf.get(o.hashHex) ?? new Set<number>();
    if (s.has(o.scope)) {
      bad(o, 'RECORD_REPLAYED', 'the same record appears earlier in this package');
      const ue = o.ue as NonNullable<Occurrence['ue']>;
      findings.push({ code: 'RECORD_REPLAYED', ue: ue.label, ueKey: ue.ueKey, sequence: o.body?.sequence ?? 0, where: o.where, detail: 'record listed again' });
    } else if (s.size > 0) o.duplicate = true;
    s.add(o.scope);
    scopesOf.set(o.hashHex, s);
  }

  // ---- per-UE chains over the unique valid records
  const chains: ChainSummary[] = [];
  const byUe = new Map<string, Occurrence[]>();
  for (const o of occurrences) {
    if (!o.verdict.ok || o.duplicate || !o.ue) continue;
    const list = byUe.get(o.ue.group) ?? [];
    list.push(o);
    byUe.set(o.ue.group, list);
  }
  for (const list of byUe.values()) {
    const ue = (list[0] as Occurrence).ue as NonNullable<Occurrence['ue']>;
    const bySeq = new Map<number, Occurrence[]>();
    for (const o of list) {
      const seq = (o.body as RecordBody).sequence;
      bySeq.set(seq, [...(bySeq.get(seq) ?? []), o]);
    }
    const seqs = [...bySeq.keys()].sort((a, b) => a - b);
    const finding = (o: Occurrence, code: ChainFinding['code'], detail: string) =>
      findings.push({ code, ue: ue.label, ueKey: ue.ueKey, sequence: (o.body as RecordBody).sequence, where: o.where, detail });
    let prevSeq: number | undefined;
    let prevHashes: Uint8Array[] = [];
    for (const seq of seqs) {
      const same = bySeq.get(seq) as Occurrence[];
      if (same.length > 1) {
        // two validly signed records with one sequence number: the UE's history forked
        for (const o of same) {
          bad(o, 'RECORD_FORK', `another record with sequence ${seq} exists`);
          finding(o, 'RECORD_FORK', `${same.length} different records with sequence ${seq}`);
        }
      } else {
        const o = same[0] as Occurrence;
        const prevHash = (o.body as RecordBody).previousHash;
        if (prevSeq === undefined) {
          if (seq === 1 && !equalBytes(prevHash, GENESIS_PREVIOUS_HASH)) {
            bad(o, 'RECORD_FORK', 'the first record of the chain links to a previous record');
            finding(o, 'RECORD_FORK', 'sequence 1 with a non-zero previous hash');
          }
        } else if (seq === prevSeq + 1) {
          if (!prevHashes.some((h) => equalBytes(h, prevHash))) {
            bad(o, 'RECORD_FORK', `does not link to record ${prevSeq}`);
            finding(o, 'RECORD_FORK', `previous hash is not the hash of record ${prevSeq}`);
          }
        } else {
          finding(o, 'CHAIN_GAP', `${seq - prevSeq - 1} record(s) missing after sequence ${prevSeq}`);
        }
      }
      prevSeq = seq;
      prevHashes = same.map((o) => o.hash);
    }
    chains.push({ ue: ue.label, ueKey: ue.ueKey, ledgerId: ue.ledgerId, records: list.length, firstSequence: seqs[0] ?? 0, lastSequence: seqs.at(-1) ?? 0 });
  }

  // ---- totals
  const verdicts: Record<string, number> = {};
  const invalid: InvalidRecord[] = [];
  const validRecordHashes: Uint8Array[] = [];
  let duplicates = 0;
  for (const o of occurrences) {
    if (o.duplicate) {
      duplicates++;
      continue;
    }
    const code = o.verdict.ok ? 'OK' : o.verdict.code;
    verdicts[code] = (verdicts[code] ?? 0) + 1;
    if (o.verdict.ok) validRecordHashes.push(o.hash);
    else invalid.push({ where: o.where, recordHash: o.hash, ue: o.ue?.label, sequence: o.body?.sequence, code: o.verdict.code, reason: o.verdict.reason });
  }
  const validEndorsements = checks.filter((c) => c.ok).length;
  const producer = top.content.producer as PackageProducer;
  return {
    ok: invalid.length === 0 && findings.length === 0 && validEndorsements === checks.length && top.custody.ok && parts.every((p) => p.custody.ok),
    digest: packageDigest(pkg),
    formatVersion: top.content.formatVersion,
    producer,
    createdAtMs: top.content.createdAtMs,
    description: top.content.description,
    records: { listed: occurrences.length, unique: occurrences.length - duplicates, duplicates, valid: validRecordHashes.length, invalid: invalid.length },
    verdicts,
    invalid,
    findings,
    chains,
    endorsements: { total: checks.length, valid: validEndorsements, checks },
    custody: top.custody,
    parts,
    validRecordHashes,
    datasetCommitment: validRecordHashes.length === 0 ? EMPTY_ROOT.slice() : batchRoot(validRecordHashes),
  };
}

/** The report as plain JSON (bytes as hex), for `--json` output and logs. */
export function packageReportJson(report: PackageReport): unknown {
  return JSON.parse(JSON.stringify(report, (_k, v: unknown) => (v instanceof Uint8Array ? toHex(v) : v)));
}
