/**
 * @module store
 * The aggregator's on-prem store of raw UE records [GEN-1] [E2E-2]: better-sqlite3 in WAL mode,
 * one row per record keyed by UE identity + sequence number, the exact SignedRecord bytes as
 * received, and the few columns the gateway needs without decoding them again.
 *
 * - Idempotent: the same record again (same UE, sequence and body hash) changes nothing and is
 *   reported as a duplicate; another record with a used sequence number is refused as a fork
 *   and kept as evidence in `forks`, never in the chain [VER-3].
 * - Durable before acknowledged: {@link RecordStore.append} writes a whole group of records in
 *   one transaction and returns only after the commit (synchronous=FULL by default: fsync per
 *   commit), so an acknowledged record survives a crash (SIGKILL, power loss).
 * - Arrival order is the rowid; a record that arrives after a higher sequence number of the
 *   same UE is flagged `late` (reordered in transit).
 * - `stats` keeps per (channel, content type, UE, endorsement) counts and time ranges, updated in
 *   the same transaction, so dataset descriptions and verification plans never scan records.
 *
 * Verification workers open the same file read-only ({@link StoreReader}); WAL lets them read a
 * consistent snapshot while ingest goes on.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { equalBytes } from '../../protocol/src/bytes.ts';
import { fail } from '../../protocol/src/errors.ts';

const SCHEMA_VERSION = 2;

export { ueKeyOf } from './verify/identity.ts';

/** One parsed, validated record ready to store. */
export interface StoreItem {
  /** Ingest channel it arrived on. */
  channel: string;
  ueKey: string;
  identity: UeIdentity;
  sequence: number;
  /** SHA-256 of the record body. */
  hash: Uint8Array;
  timestampMs: number;
  contentType: string;
  ledgerId: string;
  txId: number;
  /** Entry address AS URLs (stored once per endorsement reference). */
  asUrls: readonly string[];
  /** Exact SignedRecord bytes. */
  record: Uint8Array;
}

export type AppendOutcome = { status: 'stored' } | { status: 'duplicate' } | { status: 'fork'; existingHash: Uint8Array };

export interface StoreOptions {
  path: string;
  /** 'full' (default): fsync on every commit; 'normal': survives process crashes, not power loss. */
  durability?: 'full' | 'normal';
}

/** Per-UE summary of a dataset (or of the whole store). */
export interface UeStat {
  ue: number;
  key: string;
  identity: UeIdentity;
  /** Records of this UE in the selection. */
  count: number;
  firstTimestampMs: number;
  lastTimestampMs: number;
  firstSequence: number;
  lastSequence: number;
  /** Lowest and highest sequence of the UE's whole chain (all channels). */
  chainFirst: number;
  chainLast: number;
}

/** An endorsement reference used by stored records. */
export interface TxRefStat {
  ledgerId: string;
  txId: number;
  asUrls: string[];
  count: number;
}

/** Which records make a dataset: one ingest channel, optionally only some media types. */
export interface Selection {
  channel: string;
  contentTypes?: readonly string[];
  /** Restrict to these UE keys. */
  ueKeys?: readonly string[];
}

interface UeState {
  id: number;
  maxSeq: number;
  minSeq: number;
  count: number;
  dirty: boolean;
}

function openDb(path: string, readonly: boolean): Database.Database {
  try {
    if (!readonly) mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    return new Database(path, readonly ? { readonly: true, fileMustExist: true } : {});
  } catch (e) {
    fail('STORAGE_FAILED', `cannot open the record store ${path}: ${(e as Error).message}`, e);
  }
}

/**
 * Queries over a store file, on any connection (the writer's, or a read-only one): dataset
 * summaries, endorsement references, fork evidence. They read committed data only.
 */
/**
 * A prepared statement per SQL text, prepared on first use and kept for the connection's life
 * (the gateway's stores run the same queries per job, per report and per scrape).
 */
export function statementCache(db: Database.Database): (sql: string) => Database.Statement {
  const stmts = new Map<string, Database.Statement>();
  return (sql) => {
    let st = stmts.get(sql);
    if (st === undefined) stmts.set(sql, (st = db.prepare(sql)));
    return st;
  };
}

export class StoreQueries {
  readonly path: string;
  protected readonly db: Database.Database;

  /** A prepared statement per SQL text ({@link statementCache}). */
  protected readonly stmt: (sql: string) => Database.Statement;

  constructor(path: string, db: Database.Database) {
    this.path = path;
    this.db = db;
    this.stmt = statementCache(db);
  }

  // ---------------------------------------------------------------- queries

  /** Channel names known to the store. */
  channels(): string[] {
    return this.stmt('SELECT name FROM channels ORDER BY id').pluck().all() as string[];
  }

  /** Per-UE summary of the records of a selection, UEs in ascending key order. */
  selectionUes(sel: Selection): UeStat[] {
    const ch = this.channelId(sel.channel);
    if (ch === undefined) return [];
    const types = sel.contentTypes && sel.contentTypes.length > 0 ? sel.contentTypes : null;
    const sql =
      `SELECT s.ue AS ue, u.key AS key, u.imei AS imei, u.iccid AS iccid, u.eid AS eid, u.msisdn AS msisdn,
              SUM(s.count) AS count, MIN(s.min_ts) AS min_ts, MAX(s.max_ts) AS max_ts, MIN(s.min_seq) AS min_seq, MAX(s.max_seq) AS max_seq,
              u.min_seq AS chain_first, u.max_seq AS chain_last
       FROM stats s JOIN ues u ON u.id = s.ue
       WHERE s.channel = ?` +
      (types ? ` AND s.content_type IN (${types.map(() => '?').join(',')})` : '') +
      ' GROUP BY s.ue ORDER BY u.key';
    const rows = this.stmt(sql).all(ch, ...(types ?? [])) as {
      ue: number;
      key: string;
      imei: string;
      iccid: string;
      eid: string;
      msisdn: string;
      count: number;
      min_ts: number;
      max_ts: number;
      min_seq: number;
      max_seq: number;
      chain_first: number;
      chain_last: number;
    }[];
    const only = sel.ueKeys ? new Set(sel.ueKeys) : null;
    return rows
      .filter((r) => only === null || only.has(r.key))
      .map((r) => ({
        ue: r.ue,
        key: r.key,
        identity: { imei: r.imei, iccid: r.iccid, eid: r.eid, msisdn: r.msisdn },
        count: r.count,
        firstTimestampMs: r.min_ts,
        lastTimestampMs: r.max_ts,
        firstSequence: r.min_seq,
        lastSequence: r.max_seq,
        chainFirst: r.chain_first,
        chainLast: r.chain_last,
      }));
  }

  /** Endorsement references used by any record of these UEs (any channel: chains are whole). */
  refsOfUes(ues: readonly number[]): TxRefStat[] {
    const q = this.stmt('SELECT ledger, tx_id, SUM(count) AS count FROM stats WHERE ue = ? GROUP BY ledger, tx_id');
    const urls = this.stmt('SELECT as_urls FROM txrefs WHERE ledger = ? AND tx_id = ?').pluck();
    const out = new Map<string, TxRefStat>();
    for (const ue of ues) {
      for (const r of q.all(ue) as { ledger: string; tx_id: number; count: number }[]) {
        const k = `${r.ledger}\n${r.tx_id}`;
        const had = out.get(k);
        if (had) had.count += r.count;
        else out.set(k, { ledgerId: r.ledger, txId: r.tx_id, asUrls: JSON.parse((urls.get(r.ledger, r.tx_id) as string | undefined) ?? '[]') as string[], count: r.count });
      }
    }
    return [...out.values()];
  }

  /** Conflicting records refused at ingest for these UEs. */
  forkCount(ues: readonly number[]): number {
    const q = this.stmt('SELECT COUNT(*) FROM forks WHERE ue = ?').pluck();
    let n = 0;
    for (const ue of ues) n += q.get(ue) as number;
    return n;
  }

  /** Stored record count (all UEs and channels). */
  count(): number {
    return this.stmt('SELECT COUNT(*) FROM records').pluck().get() as number;
  }

  /** The stored bytes of one record, or undefined. */
  get(ueKey: string, sequence: number): { record: Uint8Array; hash: Uint8Array; late: boolean } | undefined {
    const r = this.stmt('SELECT r.record AS record, r.hash AS hash, r.late AS late FROM records r JOIN ues u ON u.id = r.ue WHERE u.key = ? AND r.seq = ?').get(ueKey, sequence) as
      | { record: Buffer; hash: Buffer; late: number }
      | undefined;
    return r ? { record: new Uint8Array(r.record), hash: new Uint8Array(r.hash), late: r.late === 1 } : undefined;
  }

  /** Highest stored sequence of a UE chain (0: none). */
  lastSequence(ueKey: string): number {
    return (this.stmt('SELECT max_seq FROM ues WHERE key = ?').pluck().get(ueKey) as number | undefined) ?? 0;
  }

  /** Channel id of a name (undefined when no record came on it). */
  channelId(name: string): number | undefined {
    return this.stmt('SELECT id FROM channels WHERE name = ?').pluck().get(name) as number | undefined;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** A read-only view of a store (the gateway's main thread while a writer thread owns the writes). */
export class StoreView extends StoreQueries {
  /** Opens an existing store file read-only. STORAGE_FAILED when it cannot. */
  static open(path: string): StoreView {
    const db = openDb(path, true);
    db.pragma('busy_timeout = 5000');
    return new StoreView(path, db);
  }
}

/** The writable store (one writer per file: the gateway's writer thread, or a test). */
export class RecordStore extends StoreQueries {
  readonly #db: Database.Database;
  readonly #ues = new Map<string, UeState>();
  readonly #channels = new Map<string, number>();
  readonly #ctypes = new Map<string, number>();
  readonly #refs = new Set<string>();
  readonly #insert: Database.Statement;
  readonly #existing: Database.Statement;
  readonly #fork: Database.Statement;
  readonly #stat: Database.Statement;
  readonly #ref: Database.Statement;
  readonly #ueNew: Database.Statement;
  readonly #ueUpdate: Database.Statement;
  readonly #append: (items: readonly StoreItem[], receivedMs: number) => AppendOutcome[];

  private constructor(path: string, db: Database.Database) {
    super(path, db);
    this.#db = db;
    // only what ingest and the workers need per row: the rest is in the record (and in stats)
    this.#insert = db.prepare(
      `INSERT INTO records (ue, seq, channel, ctype, late, hash, received_ms, record)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ue, seq) DO NOTHING`,
    );
    this.#existing = db.prepare('SELECT hash FROM records WHERE ue = ? AND seq = ?').pluck();
    this.#fork = db.prepare('INSERT INTO forks (ue, seq, channel, hash, existing_hash, received_ms, record) VALUES (?, ?, ?, ?, ?, ?, ?)');
    this.#stat = db.prepare(
      `INSERT INTO stats (channel, content_type, ue, ledger, tx_id, count, min_ts, max_ts, min_seq, max_seq)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (channel, content_type, ue, ledger, tx_id) DO UPDATE SET
         count = count + excluded.count, min_ts = min(min_ts, excluded.min_ts), max_ts = max(max_ts, excluded.max_ts),
         min_seq = min(min_seq, excluded.min_seq), max_seq = max(max_seq, excluded.max_seq)`,
    );
    this.#ref = db.prepare('INSERT INTO txrefs (ledger, tx_id, as_urls) VALUES (?, ?, ?) ON CONFLICT DO NOTHING');
    this.#ueNew = db.prepare('INSERT INTO ues (key, imei, iccid, eid, msisdn) VALUES (?, ?, ?, ?, ?)');
    this.#ueUpdate = db.prepare('UPDATE ues SET min_seq = ?, max_seq = ?, count = ? WHERE id = ?');
    for (const r of db.prepare('SELECT id, key, min_seq, max_seq, count FROM ues').all() as { id: number; key: string; min_seq: number; max_seq: number; count: number }[]) {
      this.#ues.set(r.key, { id: r.id, minSeq: r.min_seq, maxSeq: r.max_seq, count: r.count, dirty: false });
    }
    for (const r of db.prepare('SELECT id, name FROM channels').all() as { id: number; name: string }[]) this.#channels.set(r.name, r.id);
    for (const r of db.prepare('SELECT id, name FROM ctypes').all() as { id: number; name: string }[]) this.#ctypes.set(r.name, r.id);
    this.#append = db.transaction((items: readonly StoreItem[], receivedMs: number) => this.#appendTx(items, receivedMs));
  }

  /** Opens (creating when new) the store file. STORAGE_FAILED when it cannot. */
  static open(opts: StoreOptions): RecordStore {
    const db = openDb(opts.path, false);
    try {
      db.pragma('page_size = 16384');
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${opts.durability === 'normal' ? 'NORMAL' : 'FULL'}`);
      db.pragma('cache_size = -65536');
      db.pragma('busy_timeout = 5000');
      RecordStore.#migrate(db);
      return new RecordStore(opts.path, db);
    } catch (e) {
      db.close();
      if (e instanceof Error && e.name === 'DivsError') throw e;
      fail('STORAGE_FAILED', `cannot initialise the record store ${opts.path}: ${(e as Error).message}`, e);
    }
  }

  static #migrate(db: Database.Database): void {
    db.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS channels (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
      CREATE TABLE IF NOT EXISTS ues (
        id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
        imei TEXT NOT NULL, iccid TEXT NOT NULL, eid TEXT NOT NULL, msisdn TEXT NOT NULL,
        min_seq INTEGER NOT NULL DEFAULT 0, max_seq INTEGER NOT NULL DEFAULT 0, count INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE IF NOT EXISTS ctypes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
      CREATE TABLE IF NOT EXISTS records (
        id INTEGER PRIMARY KEY,
        ue INTEGER NOT NULL, seq INTEGER NOT NULL, channel INTEGER NOT NULL, ctype INTEGER NOT NULL,
        late INTEGER NOT NULL, hash BLOB NOT NULL, received_ms INTEGER NOT NULL, record BLOB NOT NULL);
      CREATE UNIQUE INDEX IF NOT EXISTS records_ue_seq ON records (ue, seq);
      CREATE TABLE IF NOT EXISTS forks (
        id INTEGER PRIMARY KEY, ue INTEGER NOT NULL, seq INTEGER NOT NULL, channel INTEGER NOT NULL,
        hash BLOB NOT NULL, existing_hash BLOB NOT NULL, received_ms INTEGER NOT NULL, record BLOB NOT NULL);
      CREATE INDEX IF NOT EXISTS forks_ue ON forks (ue, seq);
      CREATE TABLE IF NOT EXISTS stats (
        channel INTEGER NOT NULL, content_type TEXT NOT NULL, ue INTEGER NOT NULL, ledger TEXT NOT NULL, tx_id INTEGER NOT NULL,
        count INTEGER NOT NULL, min_ts INTEGER NOT NULL, max_ts INTEGER NOT NULL, min_seq INTEGER NOT NULL, max_seq INTEGER NOT NULL,
        PRIMARY KEY (channel, content_type, ue, ledger, tx_id)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS stats_ue ON stats (ue);
      CREATE TABLE IF NOT EXISTS txrefs (ledger TEXT NOT NULL, tx_id INTEGER NOT NULL, as_urls TEXT NOT NULL, PRIMARY KEY (ledger, tx_id)) WITHOUT ROWID;
    `);
    const v = db.prepare("SELECT value FROM meta WHERE key = 'schema'").pluck().get() as string | undefined;
    if (v === undefined) db.prepare("INSERT INTO meta (key, value) VALUES ('schema', ?)").run(String(SCHEMA_VERSION));
    else if (Number(v) !== SCHEMA_VERSION) fail('STORAGE_FAILED', `record store schema ${v} is not ${SCHEMA_VERSION}`);
  }

  #channelId(name: string): number {
    let id = this.#channels.get(name);
    if (id === undefined) {
      id = Number(this.#db.prepare('INSERT INTO channels (name) VALUES (?)').run(name).lastInsertRowid);
      this.#channels.set(name, id);
    }
    return id;
  }

  #ctypeId(name: string): number {
    let id = this.#ctypes.get(name);
    if (id === undefined) {
      id = Number(this.#db.prepare('INSERT INTO ctypes (name) VALUES (?)').run(name).lastInsertRowid);
      this.#ctypes.set(name, id);
    }
    return id;
  }

  #ue(item: StoreItem, created: UeState[]): UeState {
    let u = this.#ues.get(item.ueKey);
    if (u === undefined) {
      const id = item.identity;
      const info = this.#ueNew.run(item.ueKey, id.imei, id.iccid, id.eid, id.msisdn);
      u = { id: Number(info.lastInsertRowid), minSeq: 0, maxSeq: 0, count: 0, dirty: true };
      this.#ues.set(item.ueKey, u);
      created.push(u);
    }
    return u;
  }

  /**
   * Stores records (each with its channel), all in one transaction, and returns one outcome per
   * item (in order) after the commit. A failure stores none of them (STORAGE_FAILED).
   */
  append(items: readonly StoreItem[], receivedMs = Date.now()): AppendOutcome[] {
    if (items.length === 0) return [];
    const snapshot = new Map<UeState, { minSeq: number; maxSeq: number; count: number; dirty: boolean }>();
    for (const it of items) {
      const u = this.#ues.get(it.ueKey);
      if (u && !snapshot.has(u)) snapshot.set(u, { minSeq: u.minSeq, maxSeq: u.maxSeq, count: u.count, dirty: u.dirty });
    }
    const channelsBefore = new Map(this.#channels);
    const ctypesBefore = new Map(this.#ctypes);
    const refsBefore = new Set(this.#refs);
    const uesBefore = new Set(this.#ues.keys());
    try {
      return this.#append(items, receivedMs);
    } catch (e) {
      // the transaction rolled back: so must the in-memory mirrors
      for (const [u, st] of snapshot) Object.assign(u, st);
      for (const k of [...this.#ues.keys()]) if (!uesBefore.has(k)) this.#ues.delete(k);
      this.#channels.clear();
      for (const [k, v] of channelsBefore) this.#channels.set(k, v);
      this.#ctypes.clear();
      for (const [k, v] of ctypesBefore) this.#ctypes.set(k, v);
      this.#refs.clear();
      for (const r of refsBefore) this.#refs.add(r);
      fail('STORAGE_FAILED', `cannot store records: ${(e as Error).message}`, e);
    }
  }

  #appendTx(items: readonly StoreItem[], receivedMs: number): AppendOutcome[] {
    const out: AppendOutcome[] = [];
    const created: UeState[] = [];
    // stats aggregated per (channel, content type, ue, ledger, tx) within this group
    type Agg = { ch: number; ct: string; ue: number; ledger: string; tx: number; count: number; minTs: number; maxTs: number; minSeq: number; maxSeq: number };
    const agg = new Map<string, Agg>();
    let last: Agg | undefined;
    let lastName = '';
    let channel = -1;
    let lastType = '';
    let ctype = -1;
    for (const it of items) {
      if (channel < 0 || it.channel !== lastName) {
        channel = this.#channelId(it.channel);
        lastName = it.channel;
      }
      if (ctype < 0 || it.contentType !== lastType) {
        ctype = this.#ctypeId(it.contentType);
        lastType = it.contentType;
      }
      const u = this.#ue(it, created);
      const late = u.count > 0 && it.sequence < u.maxSeq ? 1 : 0;
      const info = this.#insert.run(u.id, it.sequence, channel, ctype, late, it.hash, receivedMs, it.record);
      if (info.changes === 0) {
        const existing = this.#existing.get(u.id, it.sequence) as Uint8Array;
        if (equalBytes(existing, it.hash)) {
          out.push({ status: 'duplicate' });
        } else {
          this.#fork.run(u.id, it.sequence, channel, it.hash, existing, receivedMs, it.record);
          out.push({ status: 'fork', existingHash: new Uint8Array(existing) });
        }
        continue;
      }
      out.push({ status: 'stored' });
      u.count += 1;
      u.minSeq = u.minSeq === 0 ? it.sequence : Math.min(u.minSeq, it.sequence);
      u.maxSeq = Math.max(u.maxSeq, it.sequence);
      u.dirty = true;
      // consecutive records mostly share UE, media type and endorsement: reuse the last entry
      let a = last;
      if (a === undefined || a.ue !== u.id || a.ch !== channel || a.ct !== it.contentType || a.tx !== it.txId || a.ledger !== it.ledgerId) {
        const refKey = `${it.ledgerId}\n${it.txId}`;
        if (!this.#refs.has(refKey)) {
          this.#ref.run(it.ledgerId, it.txId, JSON.stringify(it.asUrls));
          this.#refs.add(refKey);
        }
        const k = `${channel}\n${it.contentType}\n${u.id}\n${refKey}`;
        a = agg.get(k);
        if (a === undefined) agg.set(k, (a = { ch: channel, ct: it.contentType, ue: u.id, ledger: it.ledgerId, tx: it.txId, count: 0, minTs: it.timestampMs, maxTs: it.timestampMs, minSeq: it.sequence, maxSeq: it.sequence }));
        last = a;
      }
      a.count++;
      if (it.timestampMs < a.minTs) a.minTs = it.timestampMs;
      if (it.timestampMs > a.maxTs) a.maxTs = it.timestampMs;
      if (it.sequence < a.minSeq) a.minSeq = it.sequence;
      if (it.sequence > a.maxSeq) a.maxSeq = it.sequence;
    }
    for (const a of agg.values()) this.#stat.run(a.ch, a.ct, a.ue, a.ledger, a.tx, a.count, a.minTs, a.maxTs, a.minSeq, a.maxSeq);
    for (const it of items) {
      const u = this.#ues.get(it.ueKey) as UeState;
      if (u.dirty) {
        this.#ueUpdate.run(u.minSeq, u.maxSeq, u.count, u.id);
        u.dirty = false;
      }
    }
    return out;
  }
}

// ---------------------------------------------------------------- read side (workers)

/** One stored record as read for verification. */
export interface StoredRow {
  record: Uint8Array;
  channel: number;
  contentType: string;
  late: boolean;
}

/** Read-only access for verification workers. */
export class StoreReader {
  readonly #db: Database.Database;
  readonly #slice: Database.Statement;
  readonly #types = new Map<number, string>();

  constructor(path: string) {
    this.#db = openDb(path, true);
    this.#slice = this.#db.prepare('SELECT record, channel, ctype, late FROM records WHERE ue = ? AND seq >= ? AND seq <= ? ORDER BY seq').raw(true);
  }

  #type(id: number): string {
    let t = this.#types.get(id);
    if (t === undefined) {
      // media types are few and only ever added: reload the table when one is new to us
      for (const r of this.#db.prepare('SELECT id, name FROM ctypes').all() as { id: number; name: string }[]) this.#types.set(r.id, r.name);
      t = this.#types.get(id) ?? '';
    }
    return t;
  }

  /** Records of one UE with `from <= seq <= to`, ascending. */
  slice(ue: number, from: number, to: number): StoredRow[] {
    const rows = this.#slice.all(ue, from, to) as [Buffer, number, number, number][];
    return rows.map(([record, channel, ctype, late]) => ({ record, channel, contentType: this.#type(ctype), late: late === 1 }));
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
