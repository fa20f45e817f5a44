/**
 * @module ue/records
 * Signing application data on the UE [VER-1] [VER-2] [FW-UE]. A {@link RecordSigner} keeps one
 * UE's chain state (last sequence number, hash of the last RecordBody) and the newest
 * endorsement reference it has heard of (tx ID + entry address), and turns payloads into
 * SignedRecords: one signature per record, or one per batch over an RFC 9162 root.
 *
 * Crash safety: the new chain state is written (atomically) before a signed record is returned,
 * so a restarted UE never signs two different records with one sequence number. A crash between
 * writing and sending leaves a gap (detectable, never a fork).
 */
import { RecordBody, TxRef, type SignedRecord, type UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { Domain, equalBytes, fromHex, pae, toHex, utf8 } from '../../protocol/src/bytes.ts';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { sameIdentity, validateUeIdentity } from '../../protocol/src/identity.ts';
import { HASH_LENGTH } from '../../protocol/src/merkle.ts';
import { GENESIS_PREVIOUS_HASH, batchStatement, buildBatch, recordHash } from '../../protocol/src/records.ts';
import { assertSuite, type Suite } from '../../protocol/src/suites.ts';
import type { KeyStore } from './keystore.ts';
import { SerialQueue, atomicWriteFile, readFileIfExists } from './util.ts';

/** The newest endorsement a UE knows: what it attaches to records [VER-1]. */
export interface EndorsementRef {
  tx: TxRef;
  version: number;
}

/** One record to sign in a batch. */
export interface RecordInput {
  payload: Uint8Array;
  /** Media type; the batch default when omitted. */
  contentType?: string;
  /** Signature time, ms since the epoch; now when omitted. */
  timestampMs?: number;
}

export interface RecordSignerOptions {
  identity: UeIdentity;
  keystore: KeyStore;
  alias: string;
  /** JSON file keeping the chain state across restarts (written atomically, mode 0600). */
  statePath?: string;
  /** Refuse to sign before an endorsement is known (default true): such records cannot be verified. */
  requireEndorsement?: boolean;
  /** Largest payload (default 1 MiB). */
  maxPayloadBytes?: number;
  /** Largest batch (default 4096 records). */
  maxBatchSize?: number;
  /** Clock for default timestamps (tests). */
  now?: () => number;
}

/** A snapshot of the chain state. */
export interface ChainState {
  /** Sequence number of the last signed record; 0 before the first. */
  sequence: number;
  /** Hash of the last signed RecordBody; 32 zero bytes before the first. */
  previousHash: Uint8Array;
  endorsement: EndorsementRef | undefined;
}

const STATE_FORMAT = 'divs-ue-chain';
const STATE_VERSION = 1;
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
const DEFAULT_MAX_BATCH = 4096;
const MAX_STATE_BYTES = 1024 * 1024;
const CONTENT_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;.*)?$/;

/** Validates and deep-copies a TxRef handed to the UE (it came from the network). */
export function checkTxRef(tx: TxRef | undefined, label = 'tx'): TxRef {
  if (!tx) fail('MISSING_FIELD', `${label}: missing`);
  if (!Number.isSafeInteger(tx.txId) || tx.txId < 0) fail('INVALID_ARGUMENT', `${label}.tx_id: must be a non-negative integer`);
  if (!(tx.txHash instanceof Uint8Array) || tx.txHash.length !== HASH_LENGTH) fail('INVALID_ARGUMENT', `${label}.tx_hash: must be ${HASH_LENGTH} bytes`);
  const ea = tx.entryAddress;
  if (!ea || typeof ea.ledgerId !== 'string' || ea.ledgerId.length === 0) fail('MISSING_FIELD', `${label}.entry_address.ledger_id: missing`);
  if (!Array.isArray(ea.asUrls) || ea.asUrls.some((u) => typeof u !== 'string' || u.length === 0)) {
    fail('INVALID_ARGUMENT', `${label}.entry_address.as_urls: must be non-empty strings`);
  }
  return TxRef.fromPartial({ txId: tx.txId, txHash: new Uint8Array(tx.txHash), entryAddress: { ledgerId: ea.ledgerId, asUrls: [...ea.asUrls] } });
}

function checkVersion(version: unknown): number {
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1 || version > 0xffffffff) {
    fail('INVALID_ARGUMENT', 'version: must be an integer from 1 to 2^32-1');
  }
  return version;
}

function copyRef(r: EndorsementRef): EndorsementRef {
  return { tx: checkTxRef(r.tx), version: r.version };
}

/**
 * Signs one UE's records and keeps its chain [VER-1] [FW-UE]. Operations run one at a time, in
 * call order, so concurrent callers never share a sequence number.
 *
 * @example
 * const signer = await RecordSigner.open({ identity, keystore, alias: 'ue', statePath: 'ue.chain.json' });
 * await signer.updateEndorsement(reply.tx, reply.version);
 * const rec = await signer.sign(utf8(JSON.stringify(reading)), 'application/json');
 */
export class RecordSigner {
  readonly #identity: UeIdentity;
  readonly #keystore: KeyStore;
  readonly #alias: string;
  readonly #suite: Suite;
  readonly #publicKey: Uint8Array;
  readonly #statePath: string | undefined;
  readonly #requireEndorsement: boolean;
  readonly #maxPayload: number;
  readonly #maxBatch: number;
  readonly #now: () => number;
  readonly #queue = new SerialQueue();
  #sequence = 0;
  #previousHash: Uint8Array = GENESIS_PREVIOUS_HASH;
  #endorsement: EndorsementRef | undefined;

  private constructor(opts: RecordSignerOptions, suite: Suite, publicKey: Uint8Array) {
    this.#identity = validateUeIdentity(opts.identity, 'identity');
    this.#keystore = opts.keystore;
    this.#alias = opts.alias;
    this.#suite = suite;
    this.#publicKey = publicKey;
    this.#statePath = opts.statePath;
    this.#requireEndorsement = opts.requireEndorsement ?? true;
    this.#maxPayload = opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD;
    this.#maxBatch = opts.maxBatchSize ?? DEFAULT_MAX_BATCH;
    this.#now = opts.now ?? Date.now;
    if (!Number.isSafeInteger(this.#maxPayload) || this.#maxPayload < 1) fail('CONFIG_INVALID', 'maxPayloadBytes: must be a positive integer');
    if (!Number.isSafeInteger(this.#maxBatch) || this.#maxBatch < 1) fail('CONFIG_INVALID', 'maxBatchSize: must be a positive integer');
  }

  /**
   * Creates a signer for the key `alias`, restoring the chain state from `statePath` when the
   * file exists. STATE_CORRUPT when the file is malformed or belongs to another key,
   * IDENTITY_MISMATCH when it belongs to another identity, KEY_NOT_FOUND without the key.
   */
  static async open(opts: RecordSignerOptions): Promise<RecordSigner> {
    const pk = await opts.keystore.publicKey(opts.alias);
    const signer = new RecordSigner(opts, pk.suite, pk.key);
    if (opts.statePath !== undefined) {
      const raw = await readFileIfExists(opts.statePath);
      if (raw !== undefined) signer.#restore(raw);
    }
    return signer;
  }

  get identity(): UeIdentity {
    return { ...this.#identity };
  }

  get suite(): Suite {
    return this.#suite;
  }

  get publicKey(): Uint8Array {
    return new Uint8Array(this.#publicKey);
  }

  /** Sequence number the next record gets. */
  get nextSequence(): number {
    return this.#sequence + 1;
  }

  /** The newest endorsement known, or undefined before registration. */
  get endorsement(): EndorsementRef | undefined {
    return this.#endorsement ? copyRef(this.#endorsement) : undefined;
  }

  /** A copy of the chain state. */
  get state(): ChainState {
    return { sequence: this.#sequence, previousHash: new Uint8Array(this.#previousHash), endorsement: this.endorsement };
  }

  /**
   * Takes an endorsement reference from the AS (registration reply, update stream, latest query)
   * and keeps it only when it is newer than the one held [FW-UE] [UPD-4]: older or repeated
   * versions are ignored (updates can arrive twice or out of order after reconnects).
   * Returns whether it was taken. INVALID_ARGUMENT / MISSING_FIELD on a malformed reference.
   */
  async updateEndorsement(tx: TxRef, version: number): Promise<boolean> {
    const ref: EndorsementRef = { tx: checkTxRef(tx), version: checkVersion(version) };
    return this.#queue.run(async () => {
      const cur = this.#endorsement;
      if (cur && ref.version <= cur.version) return false;
      this.#endorsement = ref;
      try {
        await this.#persist();
      } catch (e) {
        this.#endorsement = cur;
        throw e;
      }
      return true;
    });
  }

  /**
   * Signs one record [VER-1]: RecordBody{identity, next sequence, previous hash, timestamp,
   * payload, content type, latest tx ref}, signature over `PAE("divs/record", body)` made in the
   * key store [VER-2]. NOT_REGISTERED before an endorsement is known (unless allowed).
   */
  async sign(payload: Uint8Array, contentType: string, timestampMs?: number): Promise<SignedRecord> {
    this.#checkInput({ payload, contentType, timestampMs }, 'record', contentType);
    return this.#queue.run(async () => {
      const endorsement = this.#endorsementForSigning();
      const sequence = this.#sequence + 1;
      const body = this.#body(sequence, this.#previousHash, { payload, contentType, timestampMs }, contentType, endorsement);
      const signature = await this.#keystore.sign(this.#alias, pae(Domain.record, body));
      await this.#commit(sequence, recordHash(body));
      return { body, signature, batch: undefined };
    });
  }

  /**
   * Signs many records with one signature (batch mode): consecutive sequence numbers, each body
   * chained to the one before, one RFC 9162 tree over the record hashes (leaves `SHA-256(0x00 || SHA-256(body))`), one
   * signature over `PAE("divs/record-batch", root || u64be(size))`, and each record's
   * BatchProof. Elements are payload bytes (with `contentType`) or {@link RecordInput}s.
   */
  async signBatch(items: readonly (Uint8Array | RecordInput)[], contentType = 'application/octet-stream'): Promise<SignedRecord[]> {
    if (!Array.isArray(items) || items.length === 0) fail('INVALID_ARGUMENT', 'batch: at least one record is required');
    if (items.length > this.#maxBatch) fail('BATCH_TOO_LARGE', `batch: at most ${this.#maxBatch} records`);
    const inputs = items.map((it, i) => {
      const input: RecordInput = it instanceof Uint8Array ? { payload: it } : it;
      this.#checkInput(input, `batch[${i}]`, contentType);
      return input;
    });
    return this.#queue.run(async () => {
      const endorsement = this.#endorsementForSigning();
      const bodies: Uint8Array[] = [];
      let prev = this.#previousHash;
      let sequence = this.#sequence;
      for (const input of inputs) {
        sequence += 1;
        const body = this.#body(sequence, prev, input, contentType, endorsement);
        bodies.push(body);
        prev = recordHash(body);
      }
      const batch = buildBatch(bodies);
      const signature = await this.#keystore.sign(this.#alias, pae(Domain.recordBatch, batchStatement(batch.root, batch.size)));
      await this.#commit(sequence, prev);
      return bodies.map((body, index) => ({
        body,
        signature,
        batch: { index, size: batch.size, path: batch.paths[index] as Uint8Array[], root: batch.root },
      }));
    });
  }

  // ---------------------------------------------------------------- internals

  #checkInput(input: RecordInput, label: string, defaultContentType: string): void {
    if (typeof input !== 'object' || input === null || !(input.payload instanceof Uint8Array)) fail('INVALID_ARGUMENT', `${label}.payload: expected bytes`);
    if (input.payload.length > this.#maxPayload) fail('MESSAGE_TOO_LARGE', `${label}.payload: ${input.payload.length} bytes exceeds ${this.#maxPayload}`);
    const ct = input.contentType ?? defaultContentType;
    if (typeof ct !== 'string' || ct.length > 255 || !CONTENT_TYPE.test(ct)) fail('INVALID_ARGUMENT', `${label}.contentType: not a media type`);
    const ts = input.timestampMs;
    if (ts !== undefined && (!Number.isSafeInteger(ts) || ts < 0)) fail('INVALID_ARGUMENT', `${label}.timestampMs: must be a non-negative integer`);
  }

  #endorsementForSigning(): TxRef | undefined {
    if (this.#endorsement) return this.#endorsement.tx;
    if (this.#requireEndorsement) fail('NOT_REGISTERED', 'no endorsement known yet: register (or fetch the latest reference) before signing data');
    return undefined;
  }

  #body(sequence: number, previousHash: Uint8Array, input: RecordInput, defaultContentType: string, endorsement: TxRef | undefined): Uint8Array {
    if (!Number.isSafeInteger(sequence)) fail('INVALID_RANGE', 'sequence number space exhausted');
    return RecordBody.encode({
      identity: this.#identity,
      sequence,
      previousHash,
      timestampMs: input.timestampMs ?? this.#now(),
      payload: input.payload,
      contentType: input.contentType ?? defaultContentType,
      endorsement,
    }).finish();
  }

  /** Advances the chain; the state is on disk before any record of it leaves this object. */
  async #commit(sequence: number, hash: Uint8Array): Promise<void> {
    const old = { sequence: this.#sequence, hash: this.#previousHash };
    this.#sequence = sequence;
    this.#previousHash = hash;
    try {
      await this.#persist();
    } catch (e) {
      this.#sequence = old.sequence;
      this.#previousHash = old.hash;
      throw e;
    }
  }

  async #persist(): Promise<void> {
    if (this.#statePath === undefined) return;
    const e = this.#endorsement;
    const state = {
      format: STATE_FORMAT,
      version: STATE_VERSION,
      alias: this.#alias,
      suite: this.#suite,
      publicKey: toHex(this.#publicKey),
      identity: this.#identity,
      sequence: this.#sequence,
      previousHash: toHex(this.#previousHash),
      endorsement: e
        ? {
            version: e.version,
            txId: e.tx.txId,
            txHash: toHex(e.tx.txHash),
            ledgerId: e.tx.entryAddress?.ledgerId ?? '',
            asUrls: e.tx.entryAddress?.asUrls ?? [],
          }
        : null,
    };
    await atomicWriteFile(this.#statePath, utf8(JSON.stringify(state, null, 2)), 0o600);
  }

  #restore(raw: Uint8Array): void {
    // an explicitly typed `never` function, so the compiler narrows after calls to it
    const bad: (why: string, cause?: unknown) => never = (why, cause) => fail('STATE_CORRUPT', `chain state ${this.#statePath}: ${why}`, cause);
    if (raw.length > MAX_STATE_BYTES) bad('too large');
    let s: Record<string, unknown>;
    try {
      s = JSON.parse(Buffer.from(raw).toString('utf8')) as Record<string, unknown>;
    } catch (e) {
      bad('not valid JSON', e);
    }
    if (typeof s !== 'object' || s === null || s.format !== STATE_FORMAT || s.version !== STATE_VERSION) bad('not a DIVS chain state file');
    try {
      assertSuite(s.suite);
      if (s.suite !== this.#suite || typeof s.publicKey !== 'string' || !equalBytes(fromHex(s.publicKey), this.#publicKey)) {
        bad('it belongs to another key');
      }
      const id = validateUeIdentity(s.identity as UeIdentity, 'state.identity');
      if (!sameIdentity(id, this.#identity)) fail('IDENTITY_MISMATCH', `chain state ${this.#statePath} belongs to another identity`);
      if (typeof s.sequence !== 'number' || !Number.isSafeInteger(s.sequence) || s.sequence < 0) bad('sequence');
      const prev = typeof s.previousHash === 'string' ? fromHex(s.previousHash) : bad('previousHash');
      if (prev.length !== HASH_LENGTH) bad('previousHash length');
      if (s.sequence === 0 && !equalBytes(prev, GENESIS_PREVIOUS_HASH)) bad('previousHash of an empty chain must be zero');
      let endorsement: EndorsementRef | undefined;
      if (s.endorsement !== null && s.endorsement !== undefined) {
        const e = s.endorsement as Record<string, unknown>;
        const txHash = typeof e.txHash === 'string' ? fromHex(e.txHash) : bad('endorsement.txHash');
        const tx = checkTxRef(
          { txId: e.txId as number, txHash, entryAddress: { ledgerId: e.ledgerId as string, asUrls: e.asUrls as string[] } },
          'state.endorsement',
        );
        endorsement = { tx, version: checkVersion(e.version) };
      }
      this.#sequence = s.sequence;
      this.#previousHash = prev;
      this.#endorsement = endorsement;
    } catch (e) {
      if (e instanceof DivsError && (e.code === 'STATE_CORRUPT' || e.code === 'IDENTITY_MISMATCH')) throw e;
      bad(e instanceof Error ? e.message : 'malformed', e);
    }
  }
}
