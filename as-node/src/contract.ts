/**
 * @module contract
 * The endorsement contract: the one consistent, smart-contract-shaped API over the ledger
 * [BC-6] — register, endorse, update, get, history, latest — used by every adapter (gRPC, CLI,
 * dashboard) and implemented over any {@link Ledger} backend.
 *
 * Registration pipeline (one code path for Register and RegisterBatch):
 * 1. verify UE self-signatures on the crypto workers [END-1];
 * 2. fetch the account status of every UE from the operator's CEF [END-2];
 * 3. under the commit lock: check conflicts against the index and within the batch,
 *    build the endorsing data, sign it on the workers, append one block [END-3];
 * 4. answer each UE with its tx ID + entry address [END-4].
 */
import type { Logger } from 'pino';
import {
  type AccountStatus,
  type EntryAddress,
  EndorsementReason,
  type SignedRegistration,
  type TxRef,
  type UeIdentity,
} from '../../proto/gen/divs/v1/common.ts';
import { type StatusEvent, StatusEventType } from '../../proto/gen/divs/v1/cef.ts';
import { DivsError, fail, type ErrorCode } from '../../protocol/src/errors.ts';
import { equalBytes, toHex } from '../../protocol/src/bytes.ts';
import { validateLookupIdentity } from '../../protocol/src/identity.ts';
import { silentLogger } from '../../platform/src/log.ts';
import type { Ledger, LedgerEntry } from './ledger/types.ts';
import type { Registry, RegistryLookup, UeRow } from './registry.ts';
import type { CryptoPool } from './crypto-pool.ts';
import {
  checkAccountStatus,
  type CheckedRegistration,
  DEFAULT_FRESHNESS,
  decodeEndorsementTx,
  endorsementFor,
  endorsementSigningInput,
  type FreshnessPolicy,
  ledgerTxFor,
} from './endorse.ts';

/** Where account status comes from: the operator's CEF (RP-edl). */
export interface StatusSource {
  /** One answer per identity, in order: a status, or the coded error for that identity. */
  getStatuses(identities: UeIdentity[]): Promise<Array<AccountStatus | DivsError>>;
}

export type RegisterResult = { ok: true; tx: TxRef; version: number } | { ok: false; code: ErrorCode; message: string };

export interface UpdateNotice {
  tx: TxRef;
  version: number;
  reason: EndorsementReason;
  status: AccountStatus;
}

export interface ContractOptions {
  ledger: Ledger;
  registry: Registry;
  pool: CryptoPool;
  status: StatusSource;
  asId: string;
  certChain: Uint8Array[];
  entryAddress: EntryAddress;
  freshness?: FreshnessPolicy;
  maxBatch?: number;
  clock?: () => number;
  log?: Logger;
}

const REASON_OF_EVENT: Partial<Record<number, EndorsementReason>> = {
  [StatusEventType.STATUS_EVENT_TYPE_CONTRACT_TERMINATED]: EndorsementReason.ENDORSEMENT_REASON_CONTRACT_TERMINATED,
  [StatusEventType.STATUS_EVENT_TYPE_SIM_SWAP]: EndorsementReason.ENDORSEMENT_REASON_SIM_SWAP,
  [StatusEventType.STATUS_EVENT_TYPE_DEVICE_SWAP]: EndorsementReason.ENDORSEMENT_REASON_DEVICE_SWAP,
  [StatusEventType.STATUS_EVENT_TYPE_MSISDN_CHANGE]: EndorsementReason.ENDORSEMENT_REASON_MSISDN_CHANGE,
  [StatusEventType.STATUS_EVENT_TYPE_OWNER_CHANGE]: EndorsementReason.ENDORSEMENT_REASON_OWNER_CHANGE,
  [StatusEventType.STATUS_EVENT_TYPE_GEO_RESTRICTION_CHANGE]: EndorsementReason.ENDORSEMENT_REASON_GEO_RESTRICTION_CHANGE,
  [StatusEventType.STATUS_EVENT_TYPE_SUSPENDED]: EndorsementReason.ENDORSEMENT_REASON_STATUS_CHANGE,
  [StatusEventType.STATUS_EVENT_TYPE_RESUMED]: EndorsementReason.ENDORSEMENT_REASON_STATUS_CHANGE,
};

export const DEFAULT_MAX_BATCH = 10_000;

const sameBinding = (r: UeRow, id: UeIdentity): boolean =>
  r.imei === id.imei && r.iccid === id.iccid && r.eid === id.eid && r.msisdn === id.msisdn;

export class EndorsementContract {
  readonly ledger: Ledger;
  readonly registry: Registry;
  readonly entryAddress: EntryAddress;
  readonly #o: ContractOptions;
  readonly #clock: () => number;
  readonly #log: Logger;
  readonly #watchers = new Map<string, Set<(n: UpdateNotice) => void>>();
  #lock: Promise<unknown> = Promise.resolve();

  constructor(o: ContractOptions) {
    this.#o = o;
    this.ledger = o.ledger;
    this.registry = o.registry;
    this.entryAddress = o.entryAddress;
    this.#clock = o.clock ?? Date.now;
    this.#log = o.log ?? silentLogger;
  }

  /** Runs `fn` after every earlier commit finished (serializes conflict checks + appends). */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  txRef(e: LedgerEntry): TxRef {
    return { txId: e.txId, txHash: e.leafHash, entryAddress: this.entryAddress };
  }

  /** Registers one UE [REG-1] [END-1..4]; throws the coded error of a refused registration. */
  async register(reg: SignedRegistration | undefined): Promise<{ tx: TxRef; version: number }> {
    if (!reg) fail('MISSING_FIELD', 'registration: missing');
    const [r] = await this.registerBatch([reg]);
    if (!r) fail('INTERNAL', 'no result');
    if (!r.ok) throw new DivsError(r.code, r.message);
    return { tx: r.tx, version: r.version };
  }

  /** Registers many UEs; one result per item, in order; all accepted ones land in one block [MTC-1]. */
  async registerBatch(regs: SignedRegistration[]): Promise<RegisterResult[]> {
    const max = this.#o.maxBatch ?? DEFAULT_MAX_BATCH;
    if (regs.length === 0) fail('MISSING_FIELD', 'registrations: empty batch');
    if (regs.length > max) fail('BATCH_TOO_LARGE', `at most ${max} registrations per batch`);
    const now = this.#clock();
    const checked = await this.#o.pool.check(regs, now, this.#o.freshness ?? DEFAULT_FRESHNESS);
    const results: RegisterResult[] = checked.map((c) => (c.ok ? { ok: false, code: 'INTERNAL', message: 'pending' } : c));
    const valid: Array<{ i: number; c: CheckedRegistration }> = [];
    checked.forEach((c, i) => c.ok && valid.push({ i, c: c.value }));
    if (valid.length === 0) return results;

    let statuses: Array<AccountStatus | DivsError>;
    try {
      statuses = await this.#o.status.getStatuses(valid.map((v) => v.c.identity));
    } catch (e) {
      const err = e instanceof DivsError ? e : new DivsError('CEF_UNAVAILABLE', 'the CEF did not answer', { cause: e });
      const code = err.code === 'UNAVAILABLE' || err.code === 'TIMEOUT' ? 'CEF_UNAVAILABLE' : err.code;
      for (const v of valid) results[v.i] = { ok: false, code, message: `account status: ${err.message}` };
      return results;
    }

    // account status checks, then the endorsing data and AS signatures, all outside the commit
    // lock: a first endorsement depends on no ledger state, so batches sign in parallel while
    // another batch commits; only conflict checks and the append are serialized
    const candidates: Array<{ i: number; c: CheckedRegistration; status: AccountStatus; tx?: Uint8Array }> = [];
    valid.forEach((v, k) => {
      const st = statuses[k];
      try {
        if (st === undefined) fail('CEF_UNAVAILABLE', 'no account status');
        if (st instanceof DivsError) throw st.code === 'UNAVAILABLE' ? new DivsError('CEF_UNAVAILABLE', st.message) : st;
        checkAccountStatus(v.c.identity, st, now);
        candidates.push({ i: v.i, c: v.c, status: st });
      } catch (e) {
        results[v.i] = this.#refusal(e);
      }
    });
    if (candidates.length === 0) return results;
    const bodies = candidates.map((a) =>
      endorsementFor({
        registration: a.c.registration,
        status: a.status,
        version: 1,
        reason: EndorsementReason.ENDORSEMENT_REASON_REGISTRATION,
        asId: this.#o.asId,
        ueKey: a.c.ueKey,
        nowMs: now,
      }),
    );
    const sigs = await this.#o.pool.sign(bodies.map(endorsementSigningInput));
    candidates.forEach((a, k) => (a.tx = ledgerTxFor(bodies[k] as Uint8Array, sigs[k] as Uint8Array, this.#o.certChain, now)));

    return this.#exclusive(async () => {
      const accepted: typeof candidates = [];
      const seenKeys = new Set<string>();
      const seenIds = new Set<string>();
      const known = this.registry.lookupMany(
        candidates.map((a) => a.c.ueKey),
        candidates.map((a) => a.c.identity),
      );
      for (const a of candidates) {
        try {
          this.#checkConflicts(a.c, known, seenKeys, seenIds);
          accepted.push(a);
        } catch (e) {
          results[a.i] = this.#refusal(e);
        }
      }
      if (accepted.length === 0) return results;
      const entries = await this.ledger.append(accepted.map((a) => ({ tx: a.tx as Uint8Array, ueKey: a.c.ueKey })));
      this.registry.put(
        entries.map((e, k) => {
          const a = accepted[k] as (typeof accepted)[number];
          const id = a.status.identity as UeIdentity;
          return { ueKey: a.c.ueKey, imei: id.imei, iccid: id.iccid, eid: id.eid, msisdn: id.msisdn, suite: a.c.suite, publicKey: a.c.publicKey, latestTxId: e.txId, version: 1, statusRevision: a.status.revision, contractState: a.status.state };
        }),
        (entries.at(-1) as LedgerEntry).txId,
      );
      entries.forEach((e, k) => {
        results[(accepted[k] as { i: number }).i] = { ok: true, tx: this.txRef(e), version: 1 };
      });
      this.#log.debug({ accepted: entries.length, refused: regs.length - entries.length }, 'registration batch committed');
      return results;
    });
  }

  #refusal(e: unknown): RegisterResult {
    if (!(e instanceof DivsError)) this.#log.error({ err: e }, 'registration failed unexpectedly');
    const err = e instanceof DivsError ? e : new DivsError('INTERNAL', 'registration failed', { cause: e });
    return { ok: false, code: err.code, message: err.message };
  }

  #checkConflicts(c: CheckedRegistration, known: RegistryLookup, seenKeys: Set<string>, seenIds: Set<string>): void {
    const keyHex = toHex(c.ueKey);
    const existing = known.byKey(c.ueKey);
    if (existing) {
      if (sameBinding(existing, c.identity)) fail('REGISTRATION_REPLAYED', 'this UE key is already registered for this identity; use GetLatestRef');
      fail('REGISTRATION_CONFLICT', 'this public key is already registered for another identity');
    }
    for (const row of known.byIdentity(c.identity)) {
      if (row.contractState !== 3 /* TERMINATED */) {
        fail('REGISTRATION_CONFLICT', 'the identity is already registered with another public key');
      }
    }
    const ids = [`imei:${c.identity.imei}`, `msisdn:${c.identity.msisdn}`, c.identity.iccid ? `iccid:${c.identity.iccid}` : `eid:${c.identity.eid}`];
    if (seenKeys.has(keyHex) || ids.some((x) => seenIds.has(x))) fail('REGISTRATION_CONFLICT', 'the batch registers the same key or identity twice');
    seenKeys.add(keyHex);
    for (const x of ids) seenIds.add(x);
  }

  /**
   * Applies a CEF status event [UPD-1] [UPD-2] [UPD-3]: finds the registered UE by the
   * identity it had before the change (MSISDN, ICCID/EID or IMEI), and appends a new endorsed
   * version naming the previous one. Idempotent: an event whose subscriber revision is not newer
   * than the UE's latest endorsed status is skipped, so a replay after restart applies nothing twice.
   */
  async applyStatusEvent(ev: StatusEvent): Promise<LedgerEntry[]> {
    const st = ev.status;
    if (!st) return [];
    // a newly provisioned subscriber (revision 1, identity fields unique at the CEF) cannot be
    // bound to an endorsement yet: nothing to look up, and a provisioning run sends thousands
    if (ev.type === StatusEventType.STATUS_EVENT_TYPE_PROVISIONED) return [];
    return this.#exclusive(async () => {
      // look the UE up by any of MSISDN, ICCID/EID, IMEI of the binding before the change, then
      // keep only UEs whose whole binding is that one (or the new one, if already applied):
      // a field reused by another, terminated UE must not pull that UE into the update
      const ids: UeIdentity[] = [ev.previousIdentity, st.identity].filter((x): x is UeIdentity => !!x);
      const rows = new Map<string, UeRow>();
      for (const id of ids) {
        for (const r of this.registry.byIdentity(id)) {
          if (ids.some((x) => sameBinding(r, x))) rows.set(toHex(r.ueKey), r);
        }
      }
      const targets = [...rows.values()].filter((r) => r.statusRevision < st.revision);
      if (targets.length === 0) return [];
      const now = this.#clock();
      const bodies: Uint8Array[] = [];
      for (const r of targets) {
        const prev = this.ledger.get(r.latestTxId);
        if (!prev) fail('LEDGER_CORRUPT', `latest tx ${r.latestTxId} missing`);
        const { endorsement } = decodeEndorsementTx(prev.tx);
        bodies.push(
          endorsementFor({
            registration: endorsement.registration as SignedRegistration,
            status: st,
            version: r.version + 1,
            previous: { txId: prev.txId, leafHash: prev.leafHash },
            reason: REASON_OF_EVENT[ev.type] ?? EndorsementReason.ENDORSEMENT_REASON_STATUS_CHANGE,
            asId: this.#o.asId,
            ueKey: r.ueKey,
            nowMs: now,
            statusEventSequence: ev.sequence,
          }),
        );
      }
      const sigs = await this.#o.pool.sign(bodies.map(endorsementSigningInput));
      const entries = await this.ledger.append(
        bodies.map((b, k) => ({ tx: ledgerTxFor(b, sigs[k] as Uint8Array, this.#o.certChain, now), ueKey: (targets[k] as UeRow).ueKey })),
      );
      this.registry.index(entries);
      entries.forEach((e, k) => this.#notify((targets[k] as UeRow).ueKey, { tx: this.txRef(e), version: (targets[k] as UeRow).version + 1, reason: REASON_OF_EVENT[ev.type] ?? EndorsementReason.ENDORSEMENT_REASON_STATUS_CHANGE, status: st }));
      this.#log.info({ sequence: ev.sequence, type: ev.type, versions: entries.length }, 'status update endorsed');
      return entries;
    });
  }

  /** Highest CEF event sequence already reflected on the ledger (resume point). */
  cefCursor(): number {
    return this.registry.meta('cef_sequence');
  }

  // ---------------------------------------------------------------- queries [VER-4]

  get(txId: number): LedgerEntry {
    if (!Number.isSafeInteger(txId) || txId < 0) fail('INVALID_ARGUMENT', 'tx_id: not a valid serial number');
    const e = this.ledger.get(txId);
    if (!e) fail('UNKNOWN_TX', `no transaction ${txId} on ledger ${this.ledger.ledgerId}`);
    return e;
  }

  /** UEs currently bound to any of the identity's fields. */
  ues(identity: UeIdentity | undefined): UeRow[] {
    const id = validateLookupIdentity(identity);
    const rows = this.registry.byIdentity(id);
    if (rows.length === 0) fail('NOT_REGISTERED', 'no registered UE has this identity');
    return rows;
  }

  /** Every version of the UE(s) with this identity, oldest first. */
  history(identity: UeIdentity | undefined): LedgerEntry[] {
    return this.ues(identity).flatMap((r) => this.ledger.history(r.ueKey));
  }

  /** The latest version of the (single) UE with this identity. */
  latest(identity: UeIdentity | undefined): { row: UeRow; entry: LedgerEntry } {
    const rows = this.ues(identity);
    // several UEs can share a field only when older ones were terminated: prefer the newest
    const row = rows.reduce((a, b) => (b.latestTxId > a.latestTxId ? b : a));
    const entry = this.ledger.latest(row.ueKey);
    if (!entry) fail('LEDGER_CORRUPT', 'indexed UE has no ledger entry');
    return { row, entry };
  }

  /** UE row for a registered public key, for UE-authenticated calls. */
  ueForKey(ueKey: Uint8Array): UeRow {
    const row = this.registry.byKey(ueKey);
    if (!row) fail('NOT_REGISTERED', 'this UE key is not registered');
    return row;
  }

  /** Row by identity whose key matches (UE authentication). */
  ueByIdentityAndKey(identity: UeIdentity, publicKey: Uint8Array): UeRow | undefined {
    return this.registry.byIdentity(identity).find((r) => equalBytes(r.publicKey, publicKey));
  }

  // ---------------------------------------------------------------- UE notifications [UPD-4]

  watch(ueKey: Uint8Array, fn: (n: UpdateNotice) => void): () => void {
    const k = toHex(ueKey);
    let set = this.#watchers.get(k);
    if (!set) this.#watchers.set(k, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.#watchers.delete(k);
    };
  }

  #notify(ueKey: Uint8Array, n: UpdateNotice): void {
    for (const fn of this.#watchers.get(toHex(ueKey)) ?? []) {
      try {
        fn(n);
      } catch (e) {
        this.#log.warn({ err: e }, 'update watcher failed');
      }
    }
  }
}
