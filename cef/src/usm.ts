/**
 * @module usm
 * The CEF's subscriber database (the USM of ITU-T Y.2247 clause 9.1) and all CEF domain logic,
 * with no transport: batch provisioning (MTC-1), account-status lookups (NET-1), operator
 * actions that append status events, event subscriptions with gap-free resumable delivery
 * (NET-2, RP-EDL), and device configuration served over the air (MTC-2).
 *
 * Storage is one SQLite file (better-sqlite3, WAL, synchronous=FULL, exclusive locking so one
 * process owns a data directory). Every state change runs in one SQLite transaction together
 * with the status event it produces, so a record and its event history never disagree, and a
 * rejected action changes nothing.
 *
 * Event sequence numbers come from an AUTOINCREMENT key: strictly increasing, never reused,
 * and (with a single writer whose transactions run synchronously) visible to readers in
 * commit order, so a reader that has seen sequence N has seen every matching event below N.
 */
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { AccountStatus, ContractState, UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import {
  DeviceConfig,
  StatusEventType,
  type ApplyActionRequest,
  type CreateSubscriptionRequest,
  type CreateSubscriptionResponse,
  type GetDeviceConfigRequest,
  type GetDeviceConfigResponse,
  type ModifySubscriptionRequest,
  type ModifySubscriptionResponse,
  type ProvisionBatchResponse,
  type ProvisionResult,
  type SetDeviceConfigRequest,
  type StatusEvent,
  type SubscriberRecord,
} from '../../proto/gen/divs/v1/cef.ts';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { validateEid, validateIccid, validateImei, validateImsi, validateLookupIdentity, validateMsisdn, validateUeIdentity } from '../../protocol/src/identity.ts';
import { OTA_KEY_BYTES, OTA_MAX_SKEW_MS, otaRequestMac, otaResponseMac, verifyOtaRequestMac } from './ota.ts';

/** Most records accepted in one ProvisionBatch call. */
export const MAX_PROVISION_BATCH = 10_000;
/** Most identities in one subscription or device-config request. */
export const MAX_IDENTITIES_PER_REQUEST = 10_000;
/** Most geographic restrictions per subscriber. */
export const MAX_GEO_REGIONS = 64;
/** Events read per query while streaming. */
const PAGE = 256;
const SCHEMA_VERSION = 1;
/** device_configs row that holds the configuration for all subscribers. */
const ALL_SUBSCRIBERS = 0;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subscribers (
  id INTEGER PRIMARY KEY,
  imei TEXT NOT NULL UNIQUE,
  iccid TEXT UNIQUE,
  eid TEXT UNIQUE,
  msisdn TEXT NOT NULL UNIQUE,
  imsi TEXT NOT NULL UNIQUE,
  contract_id TEXT NOT NULL,
  terminal_type TEXT NOT NULL,
  start_ms INTEGER NOT NULL,
  end_ms INTEGER NOT NULL,
  termination_ms INTEGER NOT NULL DEFAULT 0,
  suspended INTEGER NOT NULL DEFAULT 0,
  owner TEXT NOT NULL,
  geo TEXT NOT NULL,
  ota_key BLOB NOT NULL,
  revision INTEGER NOT NULL,
  provisioned_ms INTEGER NOT NULL,
  CHECK ((iccid IS NULL) <> (eid IS NULL))
);
CREATE INDEX IF NOT EXISTS subscribers_expiry ON subscribers(end_ms) WHERE termination_ms = 0;
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  subscriber_id INTEGER NOT NULL,
  type INTEGER NOT NULL,
  occurred_ms INTEGER NOT NULL,
  previous_identity BLOB NOT NULL,
  status BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_subscriber ON events(subscriber_id, seq);
CREATE TABLE IF NOT EXISTS subscriptions (
  id TEXT PRIMARY KEY,
  subscriber TEXT NOT NULL,
  all_ues INTEGER NOT NULL,
  created_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subscription_targets (
  subscription_id TEXT NOT NULL,
  subscriber_id INTEGER NOT NULL,
  PRIMARY KEY (subscription_id, subscriber_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS device_configs (subscriber_id INTEGER PRIMARY KEY, config BLOB NOT NULL);
`;

/**
 * Every better-sqlite3 Database and Statement this process creates, held until exit.
 * Why: better-sqlite3 12.x wraps them in node::ObjectWrap, whose destructor on Node >= 24.19
 * aborts the process (`Assertion failed: (env) != nullptr`) when a wrapper is finalized by a
 * GC that runs outside a JS context (idle GC). Never letting a wrapper become garbage avoids
 * that; the cost is a few KiB per opened database. Drop this once on better-sqlite3 >= 13
 * (Node-API wrappers).
 */
const KEEP_ALIVE: unknown[] = [];

/** One subscriber row as stored. */
interface Row {
  id: number;
  imei: string;
  iccid: string | null;
  eid: string | null;
  msisdn: string;
  imsi: string;
  contract_id: string;
  terminal_type: string;
  start_ms: number;
  end_ms: number;
  termination_ms: number;
  suspended: number;
  owner: string;
  geo: string;
  ota_key: Buffer;
  revision: number;
}

interface EventRow {
  seq: number;
  type: number;
  occurred_ms: number;
  previous_identity: Buffer;
  status: Buffer;
}

export interface UsmOptions {
  /** SQLite file; created when missing. */
  path: string;
  /** PLMN ID (MCC + MNC, 5 or 6 digits) of the operator this CEF serves. */
  plmnId: string;
  operatorName: string;
  /** Clock (ms since the epoch); tests inject one. */
  now?: () => number;
}

// ---------------------------------------------------------------- input checks

const CONTROL = /[\u0000-\u001f\u007f]/;
const GEO = /^[A-Z]{2}(-[A-Z0-9]{1,3})?$/;

/** Checks a PLMN ID (MCC + MNC: 5 or 6 digits); CONFIG_INVALID otherwise. */
export function validatePlmnId(v: unknown): string {
  if (typeof v !== 'string' || !/^[0-9]{5,6}$/.test(v)) fail('CONFIG_INVALID', 'plmnId: must be MCC + MNC, 5 or 6 digits');
  return v;
}

function text(v: unknown, label: string, max: number): string {
  if (typeof v !== 'string' || v.length === 0) fail('MISSING_FIELD', `${label}: missing`);
  if (v.length > max) fail('INVALID_ARGUMENT', `${label}: longer than ${max} characters`);
  if (CONTROL.test(v)) fail('INVALID_ARGUMENT', `${label}: contains control characters`);
  return v;
}

function time(v: unknown, label: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail('INVALID_ARGUMENT', `${label}: must be a non-negative integer (ms since the epoch)`);
  return v;
}

/** ISO 3166-1 alpha-2 codes or ISO 3166-2 subdivision codes, upper case, no duplicates. */
function geoList(v: unknown, label: string): string[] {
  if (!Array.isArray(v)) fail('INVALID_ARGUMENT', `${label}: expected a list`);
  if (v.length > MAX_GEO_REGIONS) fail('INVALID_ARGUMENT', `${label}: more than ${MAX_GEO_REGIONS} regions`);
  const seen = new Set<string>();
  for (const [i, g] of v.entries()) {
    if (typeof g !== 'string' || !GEO.test(g)) fail('INVALID_ARGUMENT', `${label}[${i}]: not an ISO 3166 code (e.g. "DE" or "DE-BY")`);
    if (seen.has(g)) fail('INVALID_ARGUMENT', `${label}[${i}]: duplicate region ${g}`);
    seen.add(g);
  }
  return [...v] as string[];
}

function otaKey(v: unknown, label: string): Buffer {
  if (!(v instanceof Uint8Array) || v.length === 0) fail('MISSING_FIELD', `${label}: missing (the operator personalises the key into the SIM)`);
  if (v.length !== OTA_KEY_BYTES) fail('INVALID_ARGUMENT', `${label}: must be ${OTA_KEY_BYTES} bytes, got ${v.length}`);
  if (v.every((b) => b === 0)) fail('INVALID_ARGUMENT', `${label}: all-zero key`);
  return Buffer.from(v);
}

function url(v: unknown, label: string): string {
  const s = text(v, label, 2048);
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    fail('INVALID_ARGUMENT', `${label}: not a URL`);
  }
  if (!['grpc:', 'grpcs:', 'http:', 'https:'].includes(u.protocol) || !u.host) {
    fail('INVALID_ARGUMENT', `${label}: must be a grpc://, grpcs://, http:// or https:// URL with a host`);
  }
  return s;
}

function subscriptionIdOf(v: unknown): string {
  if (typeof v !== 'string' || v.length === 0) fail('MISSING_FIELD', 'subscription_id: missing');
  if (v.length > 64) fail('UNKNOWN_SUBSCRIPTION', 'no such subscription');
  return v;
}

const sameSet = (a: string[], b: string[]): boolean => a.length === b.length && [...a].sort().join(',') === [...b].sort().join(',');

/** Maps a UNIQUE violation on the subscribers table to the identity field it names. */
function uniqueField(e: unknown): string | undefined {
  if (!(e instanceof Database.SqliteError) || e.code !== 'SQLITE_CONSTRAINT_UNIQUE') return undefined;
  const m = /subscribers\.(\w+)/.exec(e.message);
  return m?.[1] ?? 'identity';
}

function identityOf(r: Row): UeIdentity {
  return { imei: r.imei, iccid: r.iccid ?? '', eid: r.eid ?? '', msisdn: r.msisdn };
}

/** Validated provisioning record, ready to insert. */
interface NewSubscriber {
  imei: string;
  iccid: string | null;
  eid: string | null;
  msisdn: string;
  imsi: string;
  contract_id: string;
  terminal_type: string;
  start_ms: number;
  end_ms: number;
  owner: string;
  geo: string;
  ota_key: Buffer;
}

function prepareStatements(db: Database.Database) {
  return {
    insert: db.prepare<[NewSubscriber & { revision: number; provisioned_ms: number }]>(
      `INSERT INTO subscribers (imei, iccid, eid, msisdn, imsi, contract_id, terminal_type, start_ms, end_ms, owner, geo, ota_key, revision, provisioned_ms)
       VALUES (@imei, @iccid, @eid, @msisdn, @imsi, @contract_id, @terminal_type, @start_ms, @end_ms, @owner, @geo, @ota_key, @revision, @provisioned_ms)`,
    ),
    update: db.prepare<[Row]>(
      `UPDATE subscribers SET imei = @imei, iccid = @iccid, eid = @eid, msisdn = @msisdn, owner = @owner, geo = @geo,
         suspended = @suspended, termination_ms = @termination_ms, revision = revision + 1 WHERE id = @id`,
    ),
    byId: db.prepare<[number], Row>('SELECT * FROM subscribers WHERE id = ?'),
    byImei: db.prepare<[string], Row>('SELECT * FROM subscribers WHERE imei = ?'),
    byIccid: db.prepare<[string], Row>('SELECT * FROM subscribers WHERE iccid = ?'),
    byEid: db.prepare<[string], Row>('SELECT * FROM subscribers WHERE eid = ?'),
    byMsisdn: db.prepare<[string], Row>('SELECT * FROM subscribers WHERE msisdn = ?'),
    expired: db.prepare<[number, number], Row>('SELECT * FROM subscribers WHERE termination_ms = 0 AND end_ms < ? ORDER BY end_ms LIMIT ?'),
    countSubscribers: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM subscribers'),
    appendEvent: db.prepare<[number, number, number, Buffer, Buffer]>(
      'INSERT INTO events (subscriber_id, type, occurred_ms, previous_identity, status) VALUES (?, ?, ?, ?, ?)',
    ),
    latestSeq: db.prepare<[], { seq: number | null }>('SELECT max(seq) AS seq FROM events'),
    eventsAll: db.prepare<[number, number], EventRow>(
      'SELECT seq, type, occurred_ms, previous_identity, status FROM events WHERE seq > ? ORDER BY seq LIMIT ?',
    ),
    eventsFor: db.prepare<[number, string, number], EventRow>(
      `SELECT seq, type, occurred_ms, previous_identity, status FROM events
       WHERE seq > ? AND subscriber_id IN (SELECT subscriber_id FROM subscription_targets WHERE subscription_id = ?)
       ORDER BY seq LIMIT ?`,
    ),
    subscription: db.prepare<[string], { all_ues: number }>('SELECT all_ues FROM subscriptions WHERE id = ?'),
    insertSubscription: db.prepare<[string, string, number, number]>('INSERT INTO subscriptions (id, subscriber, all_ues, created_ms) VALUES (?, ?, ?, ?)'),
    setAll: db.prepare<[number, string]>('UPDATE subscriptions SET all_ues = ? WHERE id = ?'),
    deleteSubscription: db.prepare<[string]>('DELETE FROM subscriptions WHERE id = ?'),
    addTarget: db.prepare<[string, number]>('INSERT OR IGNORE INTO subscription_targets (subscription_id, subscriber_id) VALUES (?, ?)'),
    removeTarget: db.prepare<[string, number]>('DELETE FROM subscription_targets WHERE subscription_id = ? AND subscriber_id = ?'),
    deleteTargets: db.prepare<[string]>('DELETE FROM subscription_targets WHERE subscription_id = ?'),
    countTargets: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM subscription_targets WHERE subscription_id = ?'),
    nextConfigVersion: db.prepare<[], { value: number }>(
      "UPDATE meta SET value = value + 1 WHERE key = 'device_config_version' RETURNING value",
    ),
    putConfig: db.prepare<[number, Buffer]>('INSERT OR REPLACE INTO device_configs (subscriber_id, config) VALUES (?, ?)'),
    clearConfigs: db.prepare<[]>('DELETE FROM device_configs'),
    config: db.prepare<[number], { config: Buffer }>('SELECT config FROM device_configs WHERE subscriber_id = ?'),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

// ---------------------------------------------------------------- the USM

/**
 * The subscriber database of one operator (one PLMN) and the CEF logic over it.
 * @example
 * const usm = Usm.open({ path: 'data/cef.sqlite', plmnId: '00101', operatorName: 'Test Net' });
 * const { results } = usm.provisionBatch(records);
 * const status = usm.getAccountStatus({ imei: '356938035643809', iccid: '', eid: '', msisdn: '' });
 */
export class Usm {
  readonly plmnId: string;
  readonly operatorName: string;
  readonly #db: Database.Database;
  readonly #now: () => number;
  readonly #s: Statements;
  // live-stream wake-ups: bumped after every commit that adds events or changes subscriptions
  #version = 0;
  #waiters = new Set<() => void>();
  #stopping = false;
  #closed = false;

  private constructor(db: Database.Database, opts: UsmOptions) {
    this.#db = db;
    this.plmnId = opts.plmnId;
    this.operatorName = opts.operatorName;
    this.#now = opts.now ?? Date.now;
    this.#s = prepareStatements(db);
    KEEP_ALIVE.push(this.#s);
  }

  /**
   * Opens (creating when missing) the database of one operator. Fails with CONFIG_INVALID when
   * the file belongs to another PLMN, is not a CEF database, or is in use by another process.
   */
  static open(opts: UsmOptions): Usm {
    validatePlmnId(opts.plmnId);
    try {
      text(opts.operatorName, 'operatorName', 128);
    } catch (e) {
      fail('CONFIG_INVALID', (e as Error).message);
    }
    let db: Database.Database | undefined;
    try {
      db = new Database(opts.path, { timeout: 1000 });
      KEEP_ALIVE.push(db);
      // exec, not db.pragma(): pragma() prepares a throw-away Statement (see KEEP_ALIVE)
      // exclusive locking: a second CEF process on the same data directory fails at open
      // instead of interleaving sequence numbers; also lets WAL run without shared memory
      db.exec('PRAGMA locking_mode = EXCLUSIVE');
      db.exec('PRAGMA journal_mode = WAL');
      // FULL: an acknowledged event survives power loss, so its sequence is never reissued
      db.exec('PRAGMA synchronous = FULL');
      const conn = db;
      conn.transaction(() => {
        conn.exec(SCHEMA);
        const get = conn.prepare<[string], { value: unknown }>('SELECT value FROM meta WHERE key = ?');
        const put = conn.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
        KEEP_ALIVE.push(get, put);
        const version = get.get('schema_version')?.value;
        if (version === undefined) put.run('schema_version', SCHEMA_VERSION);
        else if (version !== SCHEMA_VERSION) fail('CONFIG_INVALID', `database schema version ${String(version)}, this CEF understands ${SCHEMA_VERSION}`);
        const plmn = get.get('plmn_id')?.value;
        if (plmn === undefined) put.run('plmn_id', opts.plmnId);
        else if (plmn !== opts.plmnId) fail('CONFIG_INVALID', `data directory belongs to PLMN ${String(plmn)}, not ${opts.plmnId}`);
        if (get.get('device_config_version') === undefined) put.run('device_config_version', 0);
      }).immediate();
      return new Usm(conn, opts);
    } catch (e) {
      db?.close();
      if (e instanceof DivsError) throw e;
      const code = (e as { code?: string }).code;
      if (code === 'SQLITE_BUSY') fail('CONFIG_INVALID', `${opts.path}: in use by another CEF process`, e);
      if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') fail('CONFIG_INVALID', `${opts.path}: not a CEF database`, e);
      fail('CONFIG_INVALID', `${opts.path}: cannot open: ${(e as Error).message}`, e);
    }
  }

  // ------------------------------------------------------------ status

  /** Account status of a row, with the state computed at `now`. */
  #status(r: Row, now: number): AccountStatus {
    let state: ContractState;
    let terminationTimeMs = r.termination_ms;
    if (r.termination_ms !== 0) state = ContractState.CONTRACT_STATE_TERMINATED;
    else if (now > r.end_ms) {
      // an expired contract is terminated at its end, whether or not the sweep has run yet
      state = ContractState.CONTRACT_STATE_TERMINATED;
      terminationTimeMs = r.end_ms;
    } else if (r.suspended !== 0 || now < r.start_ms) {
      // before its start a contract is not in service: reported as suspended
      state = ContractState.CONTRACT_STATE_SUSPENDED;
    } else state = ContractState.CONTRACT_STATE_ACTIVE;
    return {
      plmnId: this.plmnId,
      operatorName: this.operatorName,
      contractId: r.contract_id,
      state,
      startTimeMs: r.start_ms,
      endTimeMs: r.end_ms,
      terminationTimeMs,
      owner: r.owner,
      geoRestrictions: JSON.parse(r.geo) as string[],
      terminalType: r.terminal_type,
      identity: identityOf(r),
      revision: r.revision,
    };
  }

  /**
   * Finds the subscriber an identity names. Any of IMEI, ICCID, EID, MSISDN locates it; when
   * several are given they must all name the same subscriber (else IDENTITY_MISMATCH).
   */
  #resolve(identity: UeIdentity | undefined, label = 'identity'): Row {
    const id = validateLookupIdentity(identity, label);
    const found: (Row | undefined)[] = [];
    if (id.imei) found.push(this.#s.byImei.get(id.imei));
    if (id.iccid) found.push(this.#s.byIccid.get(id.iccid));
    if (id.eid) found.push(this.#s.byEid.get(id.eid));
    if (id.msisdn) found.push(this.#s.byMsisdn.get(id.msisdn));
    const hit = found.find((r) => r !== undefined);
    if (!hit) fail('UNKNOWN_IDENTITY', `${label}: no subscriber with this identity at PLMN ${this.plmnId}`);
    if (found.some((r) => r?.id !== hit.id)) fail('IDENTITY_MISMATCH', `${label}: the given identities do not belong to one subscriber`);
    return hit;
  }

  /** Account status of the UE an identity names, computed now [NET-1]. */
  getAccountStatus(identity: UeIdentity | undefined): AccountStatus {
    this.#open();
    return this.#status(this.#resolve(identity), this.#now());
  }

  /** Highest event sequence so far (0 when there is none). */
  latestSequence(): number {
    return this.#s.latestSeq.get()?.seq ?? 0;
  }

  #appendEvent(r: Row, type: StatusEventType, previous: UeIdentity, now: number): StatusEvent {
    const status = this.#status(r, now);
    const info = this.#s.appendEvent.run(
      r.id,
      type,
      now,
      Buffer.from(UeIdentity.encode(previous).finish()),
      Buffer.from(AccountStatus.encode(status).finish()),
    );
    return { sequence: Number(info.lastInsertRowid), type, previousIdentity: previous, status, occurredAtMs: now };
  }

  // ------------------------------------------------------------ provisioning (MTC-1)

  #validateRecord(rec: SubscriberRecord, i: number, now: number): NewSubscriber {
    const label = `subscribers[${i}]`;
    const id = validateUeIdentity(rec.identity, `${label}.identity`);
    const imsi = validateImsi(rec.imsi, `${label}.imsi`);
    // an IMSI starts with the home network's MCC + MNC: another operator's IMSI is not ours
    if (!imsi.startsWith(this.plmnId)) fail('INVALID_IMSI', `${label}.imsi: must start with this operator's PLMN ID ${this.plmnId}`);
    const start = time(rec.startTimeMs, `${label}.start_time_ms`);
    const end = time(rec.endTimeMs, `${label}.end_time_ms`);
    if (end <= start) fail('INVALID_ARGUMENT', `${label}: contract period must end after it starts`);
    if (end <= now) fail('INVALID_ARGUMENT', `${label}: contract period has already ended`);
    return {
      imei: id.imei,
      iccid: id.iccid || null,
      eid: id.eid || null,
      msisdn: id.msisdn,
      imsi,
      contract_id: text(rec.contractId, `${label}.contract_id`, 128),
      terminal_type: text(rec.terminalType, `${label}.terminal_type`, 64),
      start_ms: start,
      end_ms: end,
      owner: text(rec.owner, `${label}.owner`, 256),
      geo: JSON.stringify(geoList(rec.geoRestrictions, `${label}.geo_restrictions`)),
      ota_key: otaKey(rec.otaKey, `${label}.ota_key`),
    };
  }

  /**
   * Provisions a batch of machine-type subscribers [MTC-1]. Each record is validated on its
   * own; the valid ones are inserted in one transaction with a PROVISIONED event each. Results
   * are in request order, with an error code for every rejected record (SUBSCRIBER_EXISTS when
   * any of its IMEI, ICCID/EID, MSISDN or IMSI is already in use, also by an earlier record of
   * the same batch).
   */
  provisionBatch(records: SubscriberRecord[]): ProvisionBatchResponse {
    this.#open();
    if (!Array.isArray(records)) fail('INVALID_ARGUMENT', 'subscribers: expected a list');
    if (records.length > MAX_PROVISION_BATCH) fail('BATCH_TOO_LARGE', `at most ${MAX_PROVISION_BATCH} subscribers per batch, got ${records.length}`);
    const now = this.#now();
    const results: ProvisionResult[] = [];
    let provisioned = 0;
    this.#db.transaction(() => {
      for (const [i, rec] of records.entries()) {
        let sub: NewSubscriber;
        try {
          sub = this.#validateRecord(rec, i, now);
        } catch (e) {
          results.push(rejected(e));
          continue;
        }
        let rowId: number;
        try {
          rowId = Number(this.#s.insert.run({ ...sub, revision: 1, provisioned_ms: now }).lastInsertRowid);
        } catch (e) {
          const field = uniqueField(e);
          // a failed INSERT undoes only itself; the transaction goes on with the next record
          if (field === undefined) throw e;
          results.push({ errorCode: 'SUBSCRIBER_EXISTS', errorMessage: `subscribers[${i}]: ${field} is already in use`, status: undefined });
          continue;
        }
        const row = this.#s.byId.get(rowId) as Row;
        const ev = this.#appendEvent(row, StatusEventType.STATUS_EVENT_TYPE_PROVISIONED, identityOf(row), now);
        results.push({ errorCode: '', errorMessage: '', status: ev.status });
        provisioned++;
      }
    })();
    if (provisioned > 0) this.#notify();
    return { results, provisioned };
  }

  // ------------------------------------------------------------ operator actions

  /**
   * Applies one operator action to a subscriber [NET-2]: validates it, updates the record,
   * bumps its revision and appends the status event, all in one transaction. Rejected actions
   * (INVALID_ACTION, SUBSCRIBER_EXISTS, bad arguments) change nothing.
   */
  applyAction(req: ApplyActionRequest): StatusEvent {
    this.#open();
    const action = req.action;
    if (!action) fail('MISSING_FIELD', 'action: missing');
    const now = this.#now();
    const ev = this.#db.transaction((): StatusEvent => {
      const row = this.#resolve(req.identity);
      const before = this.#status(row, now);
      if (before.state === ContractState.CONTRACT_STATE_TERMINATED) {
        fail('INVALID_ACTION', `contract ${row.contract_id} is terminated (at ${before.terminationTimeMs}); no further actions apply`);
      }
      const next: Row = { ...row };
      let type: StatusEventType;
      switch (action.$case) {
        case 'terminate': {
          const t = time(action.value.terminationTimeMs, 'terminate.termination_time_ms');
          if (t > now) fail('INVALID_ARGUMENT', 'terminate.termination_time_ms: a termination cannot be in the future');
          next.termination_ms = t === 0 ? now : t;
          type = StatusEventType.STATUS_EVENT_TYPE_CONTRACT_TERMINATED;
          break;
        }
        case 'swapSim': {
          const { newIccid, newEid } = action.value;
          if (!newIccid && !newEid) fail('MISSING_FIELD', 'swap_sim: give new_iccid or new_eid');
          if (newIccid && newEid) fail('INVALID_ARGUMENT', 'swap_sim: give new_iccid or new_eid, not both');
          if (newIccid) validateIccid(newIccid, 'swap_sim.new_iccid');
          if (newEid) validateEid(newEid, 'swap_sim.new_eid');
          if ((newIccid && newIccid === row.iccid) || (newEid && newEid === row.eid)) fail('INVALID_ACTION', 'swap_sim: the subscriber already uses this SIM');
          next.iccid = newIccid || null;
          next.eid = newEid || null;
          type = StatusEventType.STATUS_EVENT_TYPE_SIM_SWAP;
          break;
        }
        case 'swapDevice': {
          validateImei(action.value.newImei, 'swap_device.new_imei');
          if (action.value.newImei === row.imei) fail('INVALID_ACTION', 'swap_device: the subscriber already uses this device');
          next.imei = action.value.newImei;
          type = StatusEventType.STATUS_EVENT_TYPE_DEVICE_SWAP;
          break;
        }
        case 'changeMsisdn': {
          validateMsisdn(action.value.newMsisdn, 'change_msisdn.new_msisdn');
          if (action.value.newMsisdn === row.msisdn) fail('INVALID_ACTION', 'change_msisdn: the subscriber already has this MSISDN');
          next.msisdn = action.value.newMsisdn;
          type = StatusEventType.STATUS_EVENT_TYPE_MSISDN_CHANGE;
          break;
        }
        case 'changeOwner': {
          const owner = text(action.value.newOwner, 'change_owner.new_owner', 256);
          if (owner === row.owner) fail('INVALID_ACTION', 'change_owner: the subscriber already has this owner');
          next.owner = owner;
          type = StatusEventType.STATUS_EVENT_TYPE_OWNER_CHANGE;
          break;
        }
        case 'changeGeo': {
          const geo = geoList(action.value.geoRestrictions, 'change_geo.geo_restrictions');
          if (sameSet(geo, JSON.parse(row.geo) as string[])) fail('INVALID_ACTION', 'change_geo: the restrictions are unchanged');
          next.geo = JSON.stringify(geo);
          type = StatusEventType.STATUS_EVENT_TYPE_GEO_RESTRICTION_CHANGE;
          break;
        }
        case 'suspend':
          if (row.suspended) fail('INVALID_ACTION', 'suspend: the subscriber is already suspended');
          next.suspended = 1;
          type = StatusEventType.STATUS_EVENT_TYPE_SUSPENDED;
          break;
        case 'resume':
          if (!row.suspended) fail('INVALID_ACTION', 'resume: the subscriber is not suspended');
          next.suspended = 0;
          type = StatusEventType.STATUS_EVENT_TYPE_RESUMED;
          break;
        default:
          fail('MISSING_FIELD', 'action: unknown action');
      }
      try {
        this.#s.update.run(next);
      } catch (e) {
        const field = uniqueField(e);
        if (field === undefined) throw e;
        fail('SUBSCRIBER_EXISTS', `${field} is already in use by another subscriber`);
      }
      return this.#appendEvent(this.#s.byId.get(row.id) as Row, type, identityOf(row), now);
    })();
    this.#notify();
    return ev;
  }

  /**
   * Records the termination of every contract whose period has ended and appends a
   * CONTRACT_TERMINATED event for each (termination time = contract end). Lookups already
   * report such contracts as terminated; the sweep makes the change reach subscribers [NET-2].
   * Returns the events appended.
   */
  sweepExpired(): StatusEvent[] {
    this.#open();
    const now = this.#now();
    const out: StatusEvent[] = [];
    for (;;) {
      const batch = this.#db.transaction((): StatusEvent[] => {
        const rows = this.#s.expired.all(now, 500);
        return rows.map((row) => {
          this.#s.update.run({ ...row, termination_ms: row.end_ms });
          return this.#appendEvent(this.#s.byId.get(row.id) as Row, StatusEventType.STATUS_EVENT_TYPE_CONTRACT_TERMINATED, identityOf(row), now);
        });
      })();
      out.push(...batch);
      if (batch.length < 500) break;
    }
    if (out.length > 0) this.#notify();
    return out;
  }

  // ------------------------------------------------------------ subscriptions (NET-2, RP-EDL)

  #resolveAll(ids: UeIdentity[] | undefined, label: string): number[] {
    const list = ids ?? [];
    if (list.length > MAX_IDENTITIES_PER_REQUEST) fail('BATCH_TOO_LARGE', `${label}: at most ${MAX_IDENTITIES_PER_REQUEST} identities`);
    return list.map((id, i) => this.#resolve(id, `${label}[${i}]`).id);
  }

  /**
   * Creates a subscription to status events of some UEs (resolved to subscribers now, so it
   * follows them across SIM, device and MSISDN changes) or of all UEs. Identities are ignored
   * when `all` is set. `currentSequence` is the highest sequence at creation.
   */
  createSubscription(req: CreateSubscriptionRequest): CreateSubscriptionResponse {
    this.#open();
    const who = text(req.subscriber, 'subscriber', 128);
    const now = this.#now();
    const res = this.#db.transaction((): CreateSubscriptionResponse => {
      const targets = req.all ? [] : this.#resolveAll(req.identities, 'identities');
      const id = randomUUID();
      this.#s.insertSubscription.run(id, who, req.all ? 1 : 0, now);
      for (const t of targets) this.#s.addTarget.run(id, t);
      return { subscriptionId: id, currentSequence: this.latestSequence() };
    })();
    return res;
  }

  /**
   * Adds and removes followed UEs and optionally replaces the `all` flag. Removing a UE that is
   * not followed is a no-op; an unknown identity fails the whole call. The followed list is
   * kept while `all` is set, so clearing `all` restores it.
   */
  modifySubscription(req: ModifySubscriptionRequest): ModifySubscriptionResponse {
    this.#open();
    const id = subscriptionIdOf(req.subscriptionId);
    const res = this.#db.transaction((): ModifySubscriptionResponse => {
      const sub = this.#s.subscription.get(id);
      if (!sub) fail('UNKNOWN_SUBSCRIPTION', 'no such subscription');
      const add = this.#resolveAll(req.add, 'add');
      const remove = this.#resolveAll(req.remove, 'remove');
      for (const t of add) this.#s.addTarget.run(id, t);
      for (const t of remove) this.#s.removeTarget.run(id, t);
      let all = sub.all_ues !== 0;
      if (req.all !== undefined) {
        all = req.all;
        this.#s.setAll.run(all ? 1 : 0, id);
      }
      return { followed: this.#s.countTargets.get(id)?.n ?? 0, all };
    })();
    // a live stream may now match events it skipped: wake it to re-query
    this.#notify();
    return res;
  }

  /** Deletes a subscription; its live streams end with UNKNOWN_SUBSCRIPTION. */
  unsubscribe(subscriptionId: string): void {
    this.#open();
    const id = subscriptionIdOf(subscriptionId);
    this.#db.transaction(() => {
      if (this.#s.deleteSubscription.run(id).changes === 0) fail('UNKNOWN_SUBSCRIPTION', 'no such subscription');
      this.#s.deleteTargets.run(id);
    })();
    this.#notify();
  }

  #decodeEvent(r: EventRow): StatusEvent {
    return {
      sequence: r.seq,
      type: r.type as StatusEventType,
      previousIdentity: UeIdentity.decode(r.previous_identity),
      status: AccountStatus.decode(r.status),
      occurredAtMs: r.occurred_ms,
    };
  }

  /**
   * One page of the events a subscription matches with sequence > `after`, in sequence order.
   * Matching uses the subscription as it is now. Throws UNKNOWN_SUBSCRIPTION.
   */
  eventsPage(subscriptionId: string, after: number, limit = PAGE): StatusEvent[] {
    this.#open();
    const id = subscriptionIdOf(subscriptionId);
    const sub = this.#s.subscription.get(id);
    if (!sub) fail('UNKNOWN_SUBSCRIPTION', 'no such subscription');
    const rows = sub.all_ues ? this.#s.eventsAll.all(after, limit) : this.#s.eventsFor.all(after, id, limit);
    return rows.map((r) => this.#decodeEvent(r));
  }

  /**
   * Streams the events of a subscription with sequence > `afterSequence`: the stored backlog
   * first, then live events as they commit, in strict sequence order, each exactly once.
   *
   * Why this has no gaps: the stream remembers the change counter, then queries from the last
   * sequence it delivered; every commit bumps the counter after it is visible; so if anything
   * committed since the query, the wait returns at once and the next query picks it up.
   * Ends with UNKNOWN_SUBSCRIPTION when the subscription is deleted, with UNAVAILABLE when the
   * CEF stops or `signal` aborts. Backpressure: the next page is read only when the consumer
   * has taken the previous event.
   */
  async *events(subscriptionId: string, afterSequence: number, signal?: AbortSignal): AsyncGenerator<StatusEvent, void, undefined> {
    this.#open();
    const id = subscriptionIdOf(subscriptionId);
    let last = time(afterSequence, 'after_sequence');
    if (!this.#s.subscription.get(id)) fail('UNKNOWN_SUBSCRIPTION', 'no such subscription');
    const latest = this.latestSequence();
    // a client ahead of us saw events this database no longer has (restored from a backup?)
    if (last > latest) fail('INVALID_RANGE', `after_sequence ${last} is beyond the latest sequence ${latest}`);
    for (;;) {
      if (this.#stopping || this.#closed) fail('UNAVAILABLE', 'CEF is shutting down');
      if (signal?.aborted) fail('UNAVAILABLE', 'stream cancelled');
      const seen = this.#version;
      const page = this.eventsPage(id, last, PAGE);
      for (const ev of page) {
        yield ev;
        last = ev.sequence;
      }
      if (page.length === PAGE) continue;
      await this.#changedSince(seen, signal);
    }
  }

  #notify(): void {
    this.#version++;
    const ws = [...this.#waiters];
    this.#waiters.clear();
    for (const w of ws) w();
  }

  #changedSince(version: number, signal?: AbortSignal): Promise<void> {
    if (this.#version !== version) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(new DivsError('UNAVAILABLE', 'stream cancelled'));
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiters.delete(wake);
        reject(new DivsError('UNAVAILABLE', 'stream cancelled'));
      };
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      this.#waiters.add(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  // ------------------------------------------------------------ device management (MTC-2)

  /**
   * Sets the device configuration of some subscribers, or of all (present and future ones;
   * this also replaces every per-subscriber configuration). The CEF assigns `config_version`
   * from one counter, so a UE sees a higher version after every change that affects it.
   * Returns the number of subscribers the configuration now applies to.
   */
  setDeviceConfig(req: SetDeviceConfigRequest): number {
    this.#open();
    const cfg = req.config;
    if (!cfg) fail('MISSING_FIELD', 'config: missing');
    const ea = cfg.entryAddress;
    if (!ea) fail('MISSING_FIELD', 'config.entry_address: missing');
    const ledgerId = text(ea.ledgerId, 'config.entry_address.ledger_id', 128);
    if (ea.asUrls.length === 0) fail('MISSING_FIELD', 'config.entry_address.as_urls: give at least one AS URL');
    if (ea.asUrls.length > 16) fail('INVALID_ARGUMENT', 'config.entry_address.as_urls: at most 16 URLs');
    const asUrls = ea.asUrls.map((u, i) => url(u, `config.entry_address.as_urls[${i}]`));
    const gatewayUrl = cfg.gatewayUrl ? url(cfg.gatewayUrl, 'config.gateway_url') : '';
    if (!req.all && req.identities.length === 0) fail('MISSING_FIELD', 'identities: give identities or set all');
    return this.#db.transaction((): number => {
      const targets = req.all ? [] : [...new Set(this.#resolveAll(req.identities, 'identities'))];
      const version = this.#s.nextConfigVersion.get()?.value;
      if (version === undefined) fail('INTERNAL', 'device config counter missing');
      const bytes = Buffer.from(DeviceConfig.encode({ entryAddress: { ledgerId, asUrls }, gatewayUrl, configVersion: version }).finish());
      if (req.all) {
        this.#s.clearConfigs.run();
        this.#s.putConfig.run(ALL_SUBSCRIBERS, bytes);
        return this.#s.countSubscribers.get()?.n ?? 0;
      }
      for (const t of targets) this.#s.putConfig.run(t, bytes);
      return targets.length;
    })();
  }

  /**
   * Serves a UE's device configuration over the air [MTC-2]. The request must carry a
   * timestamp within ±5 minutes of the CEF clock and a valid MAC with the subscriber's OTA
   * key; an unknown identity fails exactly like a bad MAC (OTA_AUTH_FAILED), so the channel
   * does not reveal who is a subscriber. The response holds the exact stored DeviceConfig
   * bytes and a MAC bound to the request (see ota.ts).
   */
  getDeviceConfig(req: GetDeviceConfigRequest): GetDeviceConfigResponse {
    this.#open();
    const ts = req.timestampMs;
    if (!Number.isSafeInteger(ts) || Math.abs(this.#now() - ts) > OTA_MAX_SKEW_MS) fail('OTA_AUTH_FAILED', 'timestamp is outside ±5 minutes of the CEF clock');
    const sent = validateLookupIdentity(req.identity);
    let row: Row | undefined;
    try {
      row = this.#resolve(sent);
    } catch (e) {
      if (!(e instanceof DivsError) || (e.code !== 'UNKNOWN_IDENTITY' && e.code !== 'IDENTITY_MISMATCH')) throw e;
      // spend the same HMAC work as for a known subscriber, then fail like a bad MAC
      otaRequestMac(new Uint8Array(OTA_KEY_BYTES), sent, ts);
      fail('OTA_AUTH_FAILED', 'request MAC does not verify');
    }
    if (!verifyOtaRequestMac(row.ota_key, sent, ts, req.mac)) fail('OTA_AUTH_FAILED', 'request MAC does not verify');
    if (this.#status(row, this.#now()).state === ContractState.CONTRACT_STATE_TERMINATED) fail('CONTRACT_INACTIVE', 'contract is terminated');
    const cfg = this.#s.config.get(row.id) ?? this.#s.config.get(ALL_SUBSCRIBERS);
    if (!cfg) fail('NO_DEVICE_CONFIG', 'no device configuration for this subscriber');
    const config = new Uint8Array(cfg.config);
    return { config, mac: otaResponseMac(row.ota_key, sent, ts, config) };
  }

  // ------------------------------------------------------------ lifecycle

  #open(): void {
    if (this.#closed) fail('UNAVAILABLE', 'CEF database is closed');
  }

  /** Ends every live event stream with UNAVAILABLE (first step of a graceful stop). */
  stopStreams(): void {
    this.#stopping = true;
    this.#notify();
  }

  /** Ends live streams and closes the database (checkpointing the WAL). */
  close(): void {
    if (this.#closed) return;
    this.stopStreams();
    this.#closed = true;
    this.#db.close();
  }
}

function rejected(e: unknown): ProvisionResult {
  // anything but a coded validation error is a bug: fail the whole batch (nothing is written)
  if (!(e instanceof DivsError)) throw e;
  return { errorCode: e.code, errorMessage: e.message, status: undefined };
}
