/**
 * @module registry
 * The AS node's index of registered UEs: UE key -> current identity binding, public key,
 * latest version. It is derived state: everything in it can be rebuilt from the ledger, and on
 * open it replays ledger transactions it has not indexed yet, so a crash between a ledger
 * append and an index update loses nothing.
 */
import Database from 'better-sqlite3';
import type { UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import type { Ledger, LedgerEntry } from './ledger/types.ts';
import { decodeEndorsementTx } from './endorse.ts';
import { RegistrationParams } from '../../proto/gen/divs/v1/common.ts';

export interface UeRow {
  ueKey: Uint8Array;
  imei: string;
  iccid: string;
  eid: string;
  msisdn: string;
  suite: number;
  publicKey: Uint8Array;
  latestTxId: number;
  version: number;
  /** CEF subscriber record revision of the latest version's account status. */
  statusRevision: number;
  contractState: number;
}

/** Rows fetched for a batch, answering the same questions as {@link Registry.byKey} / {@link Registry.byIdentity}. */
export interface RegistryLookup {
  byKey(ueKey: Uint8Array): UeRow | undefined;
  byIdentity(id: UeIdentity): UeRow[];
}

type Raw = {
  ue_key: Buffer;
  imei: string;
  iccid: string;
  eid: string;
  msisdn: string;
  suite: number;
  public_key: Buffer;
  latest_tx_id: number;
  version: number;
  status_revision: number;
  contract_state: number;
};

const toRow = (r: Raw): UeRow => ({
  ueKey: new Uint8Array(r.ue_key),
  imei: r.imei,
  iccid: r.iccid,
  eid: r.eid,
  msisdn: r.msisdn,
  suite: r.suite,
  publicKey: new Uint8Array(r.public_key),
  latestTxId: r.latest_tx_id,
  version: r.version,
  statusRevision: r.status_revision,
  contractState: r.contract_state,
});

/** CEF events handled between two writes of the resume cursor. */
const CURSOR_EVERY = 256;

export class Registry {
  readonly #db: Database.Database;
  readonly #byKey: Database.Statement<[Buffer], Raw>;
  readonly #byField: Record<'imei' | 'iccid' | 'eid' | 'msisdn', Database.Statement<[string], Raw>>;
  readonly #upsert: Database.Statement;
  readonly #byKeys: Database.Statement<[string], Raw>;
  readonly #byFields: Record<'imei' | 'iccid' | 'eid' | 'msisdn', Database.Statement<[string], Raw>>;
  readonly #setMeta: Database.Statement<[string, number]>;
  readonly #getMeta: Database.Statement<[string], { value: number }>;
  /** Highest CEF event sequence handled, and how many were handled since it was last written. */
  #cefCursor = 0;
  #cursorPending = 0;

  constructor(path: string) {
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS ues (
        ue_key BLOB PRIMARY KEY, imei TEXT NOT NULL, iccid TEXT NOT NULL, eid TEXT NOT NULL,
        msisdn TEXT NOT NULL, suite INTEGER NOT NULL, public_key BLOB NOT NULL,
        latest_tx_id INTEGER NOT NULL, version INTEGER NOT NULL, status_revision INTEGER NOT NULL,
        contract_state INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS ues_imei ON ues(imei);
      CREATE INDEX IF NOT EXISTS ues_iccid ON ues(iccid);
      CREATE INDEX IF NOT EXISTS ues_eid ON ues(eid);
      CREATE INDEX IF NOT EXISTS ues_msisdn ON ues(msisdn);
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    `);
    this.#byKey = this.#db.prepare('SELECT * FROM ues WHERE ue_key = ?');
    // one indexed lookup per given field (an OR/UNION over parameters defeats the indexes)
    this.#byField = {
      imei: this.#db.prepare('SELECT * FROM ues WHERE imei = ?'),
      iccid: this.#db.prepare('SELECT * FROM ues WHERE iccid = ?'),
      eid: this.#db.prepare('SELECT * FROM ues WHERE eid = ?'),
      msisdn: this.#db.prepare('SELECT * FROM ues WHERE msisdn = ?'),
    };
    // batch lookups: the values come as one JSON array parameter
    this.#byKeys = this.#db.prepare('SELECT * FROM ues WHERE ue_key IN (SELECT unhex(value) FROM json_each(?))');
    this.#byFields = {
      imei: this.#db.prepare('SELECT * FROM ues WHERE imei IN (SELECT value FROM json_each(?))'),
      iccid: this.#db.prepare('SELECT * FROM ues WHERE iccid IN (SELECT value FROM json_each(?))'),
      eid: this.#db.prepare('SELECT * FROM ues WHERE eid IN (SELECT value FROM json_each(?))'),
      msisdn: this.#db.prepare('SELECT * FROM ues WHERE msisdn IN (SELECT value FROM json_each(?))'),
    };
    this.#upsert = this.#db.prepare(
      `INSERT INTO ues VALUES (@ue_key, @imei, @iccid, @eid, @msisdn, @suite, @public_key, @latest_tx_id, @version, @status_revision, @contract_state)
       ON CONFLICT(ue_key) DO UPDATE SET imei=excluded.imei, iccid=excluded.iccid, eid=excluded.eid, msisdn=excluded.msisdn,
         latest_tx_id=excluded.latest_tx_id, version=excluded.version, status_revision=excluded.status_revision,
         contract_state=excluded.contract_state
       WHERE excluded.version > ues.version`,
    );
    this.#setMeta = this.#db.prepare('INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)');
    this.#getMeta = this.#db.prepare('SELECT value FROM meta WHERE key = ?');
  }

  byKey(ueKey: Uint8Array): UeRow | undefined {
    const r = this.#byKey.get(Buffer.from(ueKey));
    return r && toRow(r);
  }

  /** UEs whose current binding shares any given field with `id` (lookup by MSISDN, ICCID, EID or IMEI) [UPD-2]. */
  byIdentity(id: UeIdentity): UeRow[] {
    const out = new Map<string, UeRow>();
    for (const f of ['imei', 'iccid', 'eid', 'msisdn'] as const) {
      const v = id[f];
      // an empty field matches nothing (never the empty value of another row)
      if (!v) continue;
      for (const r of this.#byField[f].all(v)) out.set(r.ue_key.toString('hex'), toRow(r));
    }
    return [...out.values()];
  }

  /**
   * Rows for many lookups at once (registration batches): the rows of these UE keys, and the
   * rows sharing any non-empty field with these identities — one indexed query per column
   * instead of four per registration.
   */
  lookupMany(ueKeys: Uint8Array[], identities: UeIdentity[]): RegistryLookup {
    const byKey = new Map<string, UeRow>();
    for (const r of this.#byKeys.all(JSON.stringify(ueKeys.map((k) => Buffer.from(k).toString('hex'))))) byKey.set(r.ue_key.toString('hex'), toRow(r));
    const byField = new Map<string, UeRow[]>();
    for (const f of ['imei', 'iccid', 'eid', 'msisdn'] as const) {
      const values = [...new Set(identities.map((id) => id[f]).filter((v) => !!v))];
      if (values.length === 0) continue;
      for (const r of this.#byFields[f].all(JSON.stringify(values))) {
        const k = `${f}:${r[f]}`;
        const list = byField.get(k);
        if (list) list.push(toRow(r));
        else byField.set(k, [toRow(r)]);
      }
    }
    return {
      byKey: (ueKey) => byKey.get(Buffer.from(ueKey).toString('hex')),
      byIdentity: (id) => {
        const out = new Map<string, UeRow>();
        for (const f of ['imei', 'iccid', 'eid', 'msisdn'] as const) {
          const v = id[f];
          if (!v) continue;
          for (const r of byField.get(`${f}:${v}`) ?? []) out.set(Buffer.from(r.ueKey).toString('hex'), r);
        }
        return [...out.values()];
      },
    };
  }

  /**
   * Records that CEF events up to `sequence` were handled (applied or not ours). The cursor is
   * written every {@link CURSOR_EVERY} events (and at close): a provisioning run sends one event
   * per subscriber, and a commit per event would cost more than handling it. Losing the newest
   * cursor in a crash only replays events, which applying is idempotent for (status revisions).
   */
  noteCefSequence(sequence: number): void {
    if (sequence <= this.#cefCursor) return;
    this.#cefCursor = sequence;
    if (++this.#cursorPending >= CURSOR_EVERY) this.#flushCursor();
  }

  #flushCursor(): void {
    if (this.#cursorPending === 0) return;
    this.#cursorPending = 0;
    this.#setMeta.run('cef_sequence', this.#cefCursor);
  }

  meta(key: string): number {
    const stored = this.#getMeta.get(key)?.value ?? 0;
    return key === 'cef_sequence' ? Math.max(stored, this.#cefCursor) : stored;
  }

  /**
   * Indexes rows the caller already knows (what it just appended), without decoding the ledger
   * transactions again; `throughTxId` is the last appended tx.
   */
  put(rows: UeRow[], throughTxId: number, cefSequence = 0): void {
    if (rows.length === 0) return;
    this.#db.transaction(() => {
      for (const r of rows) {
        this.#upsert.run({
          ue_key: Buffer.from(r.ueKey),
          imei: r.imei,
          iccid: r.iccid,
          eid: r.eid,
          msisdn: r.msisdn,
          suite: r.suite,
          public_key: Buffer.from(r.publicKey),
          latest_tx_id: r.latestTxId,
          version: r.version,
          status_revision: r.statusRevision,
          contract_state: r.contractState,
        });
      }
      this.#setMeta.run('indexed_through', throughTxId + 1);
      if (cefSequence > 0) this.#setMeta.run('cef_sequence', cefSequence);
    })();
  }

  /** Indexes ledger entries (endorsements) in one transaction; older versions never overwrite newer. */
  index(entries: LedgerEntry[]): void {
    if (entries.length === 0) return;
    this.#db.transaction(() => {
      let maxSeq = 0;
      for (const e of entries) {
        const { endorsement: en } = decodeEndorsementTx(e.tx);
        const params = RegistrationParams.decode(en.registration?.params ?? new Uint8Array());
        const st = en.accountStatus;
        const id = st?.identity ?? params.identity;
        this.#upsert.run({
          ue_key: Buffer.from(en.ueKey),
          imei: id?.imei ?? '',
          iccid: id?.iccid ?? '',
          eid: id?.eid ?? '',
          msisdn: id?.msisdn ?? '',
          suite: params.publicKey?.suite ?? 0,
          public_key: Buffer.from(params.publicKey?.key ?? new Uint8Array()),
          latest_tx_id: e.txId,
          version: en.version,
          status_revision: st?.revision ?? 0,
          contract_state: st?.state ?? 0,
        });
        if (en.statusEventSequence > maxSeq) maxSeq = en.statusEventSequence;
      }
      this.#setMeta.run('indexed_through', (entries.at(-1) as LedgerEntry).txId + 1);
      if (maxSeq > 0) this.#setMeta.run('cef_sequence', maxSeq);
    })();
  }

  /** Replays ledger transactions not yet indexed (after a crash or on a fresh index). */
  catchUp(ledger: Ledger): number {
    const size = ledger.info().size;
    let from = this.meta('indexed_through');
    const start = from;
    while (from < size) {
      const batch: LedgerEntry[] = [];
      for (let i = from; i < Math.min(size, from + 1000); i++) {
        const e = ledger.get(i);
        if (e) batch.push(e);
      }
      this.index(batch.filter((e) => isEndorsementTx(e.tx)));
      this.#setMeta.run('indexed_through', Math.min(size, from + 1000));
      from += 1000;
    }
    return size - start;
  }

  count(): number {
    return (this.#db.prepare('SELECT count(*) AS n FROM ues').get() as { n: number }).n;
  }

  close(): void {
    this.#flushCursor();
    this.#db.close();
  }
}

function isEndorsementTx(tx: Uint8Array): boolean {
  try {
    decodeEndorsementTx(tx);
    return true;
  } catch {
    return false;
  }
}
