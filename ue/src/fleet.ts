/**
 * @module ue/fleet
 * Fleet simulator for massive machine-type terminals [GEN-8] [MTC-1]: N UEs with valid
 * identities (Luhn IMEIs under given TACs, 20-digit ICCIDs with the 89 prefix and Luhn, or
 * check-digit-valid EIDs; E.164 MSISDNs; IMSIs of one PLMN), the operator's SubscriberRecords
 * for CEF provisioning (with per-SIM OTA keys), key pairs in key stores, and signed
 * registrations; then batch registration against an AS with a progress callback.
 *
 * Identities, subscriber records and OTA keys are a pure function of (seed, index): two runs
 * with one seed describe the same fleet, so the CEF can be provisioned by one process and the
 * UEs run by another. Every identifier is unique within a fleet: each is an affine permutation
 * of the index modulo its number space, with seed-derived coefficients. Key pairs are random,
 * made inside the key stores (persist a store to reuse them). OTA keys derive from the seed:
 * simulator material, never for real SIMs.
 */
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { SignatureSuite, type SignedRegistration, type UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { SubscriberRecord } from '../../proto/gen/divs/v1/cef.ts';
import type { RegisterBatchResult } from '../../proto/gen/divs/v1/ue_as.ts';
import { sha256, toHex, utf8 } from '../../protocol/src/bytes.ts';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { eidWithCheck, luhnCheckDigit, validateImsi, validateMsisdn } from '../../protocol/src/identity.ts';
import { assertSuite, type Suite } from '../../protocol/src/suites.ts';
import { backoffDelay, isRetryable, type BackoffOptions } from './client.ts';
import { SoftwareKeyStore, type KeyStore, type PublicKeyInfo } from './keystore.ts';
import { RecordSigner, checkTxRef, type EndorsementRef, type RecordSignerOptions } from './records.ts';
import { buildRegistrationParams, signRegistration } from './registration.ts';
import { asDivsError } from './util.ts';
import { WorkerKeyStore } from './worker-keystore.ts';

/** Largest fleet one call builds. */
export const MAX_FLEET_SIZE = 1_000_000;

export interface FleetOptions {
  /** Number of UEs (1..1,000,000). */
  count: number;
  /** Any string; the same seed gives the same identities. */
  seed: string;
  /** Index of the first UE (to grow a fleet in slices); default 0. */
  startIndex?: number;
  /** Operator PLMN (MCC + MNC, 5 or 6 digits) of the IMSIs; default "26201". */
  plmnId?: string;
  /** 8-digit type allocation codes the IMEIs are spread over (1,000,000 UEs per TAC). */
  tacs?: readonly string[];
  /** 4 digits after "89" in ICCIDs and EIDs' issuer part: country + issuer; default "4999". */
  iccidIssuer?: string;
  /** "+", country code and network prefix of the MSISDNs (8 subscriber digits follow); default "+49170". */
  msisdnPrefix?: string;
  /** Share of UEs with an eUICC (EID instead of ICCID), 0..1; default 0. */
  euiccShare?: number;
  terminalTypes?: readonly string[];
  owner?: string;
  contractStartMs?: number;
  contractEndMs?: number;
  geoRestrictions?: readonly string[];
  /** Signature suite of the UE keys; default ECDSA P-256. */
  suite?: Suite;
}

/** One UE's identities and operator record, before any key exists. */
export interface FleetIdentity {
  index: number;
  /** Key store alias of this UE's key. */
  alias: string;
  identity: UeIdentity;
  imsi: string;
  /** The USM record to provision at the CEF (MTC-1). */
  subscriber: SubscriberRecord;
}

const DEFAULTS = {
  plmnId: '26201',
  tacs: ['35999901', '35999902', '35999903', '35999904'],
  iccidIssuer: '4999',
  msisdnPrefix: '+49170',
  terminalTypes: ['smart-meter', 'vehicle', 'camera'],
  owner: 'DIVS fleet simulator',
  contractStartMs: Date.UTC(2025, 0, 1),
  contractEndMs: Date.UTC(2035, 0, 1),
} as const;

/** Seeded pseudo-random values: HMAC-SHA256(seed key, label || index). */
class SeededPrf {
  readonly #seed: Uint8Array;
  // one KeyObject for all calls: createHmac with raw key bytes imports the key every time
  readonly #key: KeyObject;
  constructor(seed: string) {
    this.#seed = sha256(utf8(`divs-fleet/v1:${seed}`));
    this.#key = createSecretKey(this.#seed);
  }
  bytes(label: string, index: number): Uint8Array {
    const idx = new Uint8Array(8);
    new DataView(idx.buffer).setBigUint64(0, BigInt(index));
    return new Uint8Array(createHmac('sha256', this.#key).update(label).update(idx).digest());
  }
  big(label: string, index = 0): bigint {
    return BigInt(`0x${toHex(this.bytes(label, index))}`);
  }
  /** A uniform-ish fraction in [0, 1). */
  fraction(label: string, index: number): number {
    const b = this.bytes(label, index);
    return new DataView(b.buffer).getUint32(0) / 2 ** 32;
  }
  get tag(): string {
    return toHex(this.#seed.subarray(0, 4));
  }
}

/**
 * i -> (a*i + b) mod 10^digits with gcd(a, 10) = 1: a bijection on the number space, so distinct
 * indexes give distinct identifiers that still look random.
 */
class Permutation {
  readonly #m: bigint;
  readonly #a: bigint;
  readonly #b: bigint;
  readonly #digits: number;
  constructor(prf: SeededPrf, label: string, digits: number) {
    this.#digits = digits;
    this.#m = 10n ** BigInt(digits);
    let a = (prf.big(`${label}/a`) % this.#m) | 1n;
    while (a % 5n === 0n) a = (a + 2n) % this.#m;
    this.#a = a;
    this.#b = prf.big(`${label}/b`) % this.#m;
  }
  at(i: number): string {
    return ((this.#a * BigInt(i) + this.#b) % this.#m).toString().padStart(this.#digits, '0');
  }
}

function digits(v: unknown, label: string, ...lengths: number[]): string {
  if (typeof v !== 'string' || !/^[0-9]+$/.test(v) || !lengths.includes(v.length)) fail('INVALID_ARGUMENT', `${label}: expected ${lengths.join(' or ')} digits`);
  return v;
}

/**
 * The identities and subscriber records of a fleet, deterministically from the seed. Pure and
 * fast (no keys). INVALID_ARGUMENT on bad options.
 */
export function generateFleetIdentities(opts: FleetOptions): FleetIdentity[] {
  const count = opts.count;
  const start = opts.startIndex ?? 0;
  if (!Number.isSafeInteger(count) || count < 1 || count > MAX_FLEET_SIZE) fail('INVALID_ARGUMENT', `count: 1 to ${MAX_FLEET_SIZE}`);
  if (!Number.isSafeInteger(start) || start < 0) fail('INVALID_ARGUMENT', 'startIndex: must be a non-negative integer');
  if (typeof opts.seed !== 'string') fail('INVALID_ARGUMENT', 'seed: required');
  const plmn = digits(opts.plmnId ?? DEFAULTS.plmnId, 'plmnId', 5, 6);
  const tacs = [...(opts.tacs ?? DEFAULTS.tacs)];
  if (tacs.length === 0) fail('INVALID_ARGUMENT', 'tacs: at least one');
  tacs.forEach((t, i) => digits(t, `tacs[${i}]`, 8));
  if (start + count > tacs.length * 1_000_000) fail('INVALID_ARGUMENT', `tacs: ${tacs.length} TACs hold at most ${tacs.length * 1_000_000} IMEIs`);
  const issuer = digits(opts.iccidIssuer ?? DEFAULTS.iccidIssuer, 'iccidIssuer', 4);
  const msisdnPrefix = opts.msisdnPrefix ?? DEFAULTS.msisdnPrefix;
  if (typeof msisdnPrefix !== 'string' || !/^\+[1-9][0-9]{1,6}$/.test(msisdnPrefix)) fail('INVALID_ARGUMENT', 'msisdnPrefix: "+" then 2 to 7 digits');
  const euicc = opts.euiccShare ?? 0;
  if (typeof euicc !== 'number' || !(euicc >= 0 && euicc <= 1)) fail('INVALID_ARGUMENT', 'euiccShare: 0 to 1');
  const types = [...(opts.terminalTypes ?? DEFAULTS.terminalTypes)];
  if (types.length === 0 || types.some((t) => typeof t !== 'string' || t.length === 0)) fail('INVALID_ARGUMENT', 'terminalTypes: non-empty strings');
  const startMs = opts.contractStartMs ?? DEFAULTS.contractStartMs;
  const endMs = opts.contractEndMs ?? DEFAULTS.contractEndMs;
  if (!Number.isSafeInteger(startMs) || !Number.isSafeInteger(endMs) || endMs <= startMs) fail('INVALID_ARGUMENT', 'contract period: end must follow start');
  const geo = [...(opts.geoRestrictions ?? [])];

  const prf = new SeededPrf(opts.seed);
  const imeiSerial = new Permutation(prf, 'imei', 6);
  const iccidAccount = new Permutation(prf, 'iccid', 13);
  const eidSerial = new Permutation(prf, 'eid', 22);
  const msisdnNumber = new Permutation(prf, 'msisdn', 8);
  const msin = new Permutation(prf, 'imsi', 15 - plmn.length);
  const tag = prf.tag;

  const out: FleetIdentity[] = [];
  for (let k = 0; k < count; k++) {
    const i = start + k;
    const tac = tacs[Math.floor(i / 1_000_000) % tacs.length] as string;
    const imeiBody = tac + imeiSerial.at(i % 1_000_000);
    const imei = imeiBody + luhnCheckDigit(imeiBody);
    const useEid = euicc > 0 && prf.fraction('euicc', i) < euicc;
    let iccid = '';
    let eid = '';
    if (useEid) {
      eid = eidWithCheck(`89${issuer}00${eidSerial.at(i)}`);
    } else {
      const body = `89${issuer}${iccidAccount.at(i)}`;
      iccid = body + luhnCheckDigit(body);
    }
    const msisdn = validateMsisdn(msisdnPrefix + msisdnNumber.at(i), 'msisdn');
    const imsi = validateImsi(plmn + msin.at(i), 'imsi');
    const identity: UeIdentity = { imei, iccid, eid, msisdn };
    const subscriber = SubscriberRecord.fromPartial({
      identity,
      imsi,
      contractId: `CT-${tag}-${String(i).padStart(7, '0')}`,
      terminalType: types[Math.floor(prf.fraction('type', i) * types.length)] as string,
      startTimeMs: startMs,
      endTimeMs: endMs,
      owner: opts.owner ?? DEFAULTS.owner,
      geoRestrictions: geo,
      otaKey: prf.bytes('ota', i),
    });
    out.push({ index: i, alias: `fleet-${tag}-${i}`, identity, imsi, subscriber });
  }
  return out;
}

/** A simulated UE: identities, its key (in a key store) and its signed registration. */
export interface SimulatedUe extends FleetIdentity {
  keystore: KeyStore;
  publicKey: PublicKeyInfo;
  registration: SignedRegistration;
  /** Set by {@link registerFleet} on success. */
  endorsement?: EndorsementRef;
  /** Set by {@link registerFleet} on failure. */
  registrationError?: { code: string; message: string };
}

export interface Fleet {
  readonly seed: string;
  readonly ues: SimulatedUe[];
  /** Stores holding the UE keys (UE i uses keystores[i % n]). */
  readonly keystores: readonly KeyStore[];
  /** SubscriberRecords for CEF batch provisioning, in UE order. */
  subscribers(): SubscriberRecord[];
  /** Stops the worker key stores this fleet started (keys in memory are gone). */
  close(): Promise<void>;
}

export interface BuildFleetOptions extends FleetOptions {
  /**
   * Worker-thread key stores to spread key generation and signing over (default: up to 4, one
   * per core, for fleets of 256 UEs or more; none below). Ignored when `keystores` is given.
   */
  workers?: number;
  /** Use these stores instead (UE i -> keystores[i % n]); the caller closes them. */
  keystores?: readonly KeyStore[];
  /** Registration creation time (default now). */
  createdAtMs?: number;
  /** Operations in flight per key store (default 32). */
  concurrency?: number;
  /** Called as UEs are built: (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** Runs `fn` over items with at most `limit` in flight, preserving order of results. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

/**
 * Builds a fleet: identities from the seed, a key pair per UE generated inside a key store
 * [REG-2] [GEN-3], and a signed registration per UE [REG-3].
 *
 * @example
 * const fleet = await buildFleet({ count: 10_000, seed: 'demo' });
 * await cef.provisionBatch({ subscribers: fleet.subscribers() });
 * const report = await registerFleet(fleet.ues, (regs) => client.registerBatch(regs), { onProgress: bar.update });
 * await fleet.close();
 */
export async function buildFleet(opts: BuildFleetOptions): Promise<Fleet> {
  const ids = generateFleetIdentities(opts);
  const suite = opts.suite ?? SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;
  assertSuite(suite);
  const createdAtMs = opts.createdAtMs ?? Date.now();
  const perStore = opts.concurrency ?? 32;
  if (!Number.isSafeInteger(perStore) || perStore < 1) fail('INVALID_ARGUMENT', 'concurrency: a positive integer');

  const owned: WorkerKeyStore[] = [];
  let stores: readonly KeyStore[];
  if (opts.keystores && opts.keystores.length > 0) {
    stores = opts.keystores;
  } else {
    const workers = opts.workers ?? (ids.length >= 256 ? Math.min(availableParallelism(), 4) : 0);
    if (!Number.isSafeInteger(workers) || workers < 0 || workers > 64) fail('INVALID_ARGUMENT', 'workers: 0 to 64');
    if (workers === 0) {
      stores = [new SoftwareKeyStore()];
    } else {
      try {
        for (let w = 0; w < workers; w++) owned.push(await WorkerKeyStore.start());
      } catch (e) {
        await Promise.all(owned.map((s) => s.close()));
        throw e;
      }
      stores = owned;
    }
  }
  const close = async () => {
    await Promise.all(owned.map((s) => s.close()));
  };

  let done = 0;
  try {
    const ues = await mapLimit(ids, perStore * stores.length, async (id, k): Promise<SimulatedUe> => {
      const keystore = stores[k % stores.length] as KeyStore;
      const publicKey = await keystore.generate(id.alias, suite);
      const params = buildRegistrationParams({ identity: id.identity, publicKey, createdAtMs });
      const registration = await signRegistration(params, keystore, id.alias);
      done += 1;
      opts.onProgress?.(done, ids.length);
      return { ...id, keystore, publicKey, registration };
    });
    return {
      seed: opts.seed,
      ues,
      keystores: stores,
      subscribers: () => ues.map((u) => u.subscriber),
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** The AS call registering a batch: e.g. `(regs) => client.registerBatch(regs)`. */
export type RegisterBatchFn = (registrations: SignedRegistration[]) => Promise<RegisterBatchResult[]>;

export interface FleetProgress {
  total: number;
  /** UEs with a final answer (registered or failed). */
  done: number;
  registered: number;
  failed: number;
}

export interface RegisterFleetOptions {
  /** Registrations per call (default 500). */
  batchSize?: number;
  /** Calls in flight (default 2). */
  concurrency?: number;
  /** Retries of a call that failed with a retryable error (default 3). */
  retries?: number;
  backoff?: BackoffOptions;
  /** After every batch; the CLI draws its progress bar from this. */
  onProgress?: (p: FleetProgress) => void;
}

export interface FleetRegistrationReport extends FleetProgress {
  /** Failures by DIVS error code. */
  errors: Record<string, number>;
}

/**
 * Registers a fleet in batches [MTC-1] [REG-1], through any batch function (a UeClient, a test
 * double, a load generator). Per-UE results land on the UEs (`endorsement` or
 * `registrationError`); whole-call failures are retried with backoff when retryable, then
 * count against every UE of the batch. Never throws for AS-side failures: read the report.
 */
export async function registerFleet(ues: readonly SimulatedUe[], registerBatch: RegisterBatchFn, opts: RegisterFleetOptions = {}): Promise<FleetRegistrationReport> {
  const batchSize = opts.batchSize ?? 500;
  const concurrency = opts.concurrency ?? 2;
  const retries = opts.retries ?? 3;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) fail('INVALID_ARGUMENT', 'batchSize: a positive integer');
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) fail('INVALID_ARGUMENT', 'concurrency: a positive integer');
  if (!Number.isSafeInteger(retries) || retries < 0) fail('INVALID_ARGUMENT', 'retries: a non-negative integer');

  const report: FleetRegistrationReport = { total: ues.length, done: 0, registered: 0, failed: 0, errors: {} };
  const failOne = (ue: SimulatedUe, code: string, message: string) => {
    ue.registrationError = { code, message };
    delete ue.endorsement;
    report.failed += 1;
    report.errors[code] = (report.errors[code] ?? 0) + 1;
  };
  const batches: SimulatedUe[][] = [];
  for (let i = 0; i < ues.length; i += batchSize) batches.push(ues.slice(i, i + batchSize));

  await mapLimit(batches, concurrency, async (batch) => {
    let results: RegisterBatchResult[] | undefined;
    let failure: DivsError | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        results = await registerBatch(batch.map((u) => u.registration));
        if (!Array.isArray(results) || results.length !== batch.length) {
          failure = new DivsError('MALFORMED_MESSAGE', `AS returned ${results?.length ?? 0} results for ${batch.length} registrations`);
          results = undefined;
        }
        break;
      } catch (e) {
        failure = asDivsError(e);
        if (!isRetryable(failure) || attempt >= retries) break;
        await new Promise((r) => setTimeout(r, backoffDelay(attempt, opts.backoff)));
      }
    }
    batch.forEach((ue, j) => {
      const r = results?.[j];
      if (!r) return failOne(ue, failure?.code ?? 'INTERNAL', failure?.message ?? 'no result');
      if (r.errorCode) return failOne(ue, r.errorCode, r.errorMessage);
      try {
        if (!Number.isSafeInteger(r.version) || r.version < 1) fail('MALFORMED_MESSAGE', 'result.version: must be >= 1');
        ue.endorsement = { tx: checkTxRef(r.tx, 'result.tx'), version: r.version };
        delete ue.registrationError;
        report.registered += 1;
      } catch (e) {
        const d = asDivsError(e);
        failOne(ue, d.code, d.message);
      }
    });
    report.done += batch.length;
    opts.onProgress?.({ total: report.total, done: report.done, registered: report.registered, failed: report.failed });
  });
  return report;
}

/**
 * A RecordSigner for a simulated UE, primed with its endorsement (so it can sign at once).
 * NOT_REGISTERED when the UE has none (unless `requireEndorsement: false`).
 */
export async function fleetSigner(ue: SimulatedUe, opts: Partial<Omit<RecordSignerOptions, 'identity' | 'keystore' | 'alias'>> = {}): Promise<RecordSigner> {
  const signer = await RecordSigner.open({ ...opts, identity: ue.identity, keystore: ue.keystore, alias: ue.alias });
  if (ue.endorsement) await signer.updateEndorsement(ue.endorsement.tx, ue.endorsement.version);
  else if (opts.requireEndorsement !== false) fail('NOT_REGISTERED', `UE ${ue.index} has no endorsement: register the fleet first`);
  return signer;
}
