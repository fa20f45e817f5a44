/**
 * @module ue/usecases
 * Deterministic data generators for the Y.2247 Appendix I use cases, used by tests, the demo
 * and benchmarks:
 * - I.1 logistics vehicles: route points, speed, distance, odometer, driving events;
 * - I.2 smart meters: kWh imported/exported per interval under a daily solar curve;
 * - I.3 industrial inspection: part and camera IDs, measurements against tolerances, pass/fail.
 *
 * Every sample is a pure function of (seed, device ID, index): the same options give the same
 * payloads and the same JSON bytes, on any machine. Each use case also describes its numeric
 * columns ({@link ColumnSpec}) and turns payloads (or their JSON bytes) into typed columns, so
 * an aggregator can hand jobs columnar data.
 *
 * Payloads are flat JSON objects whose keys are in a fixed order; numbers are rounded to the
 * precision a real device would report.
 */
import { sha256, utf8 } from '../../protocol/src/bytes.ts';
import { fail } from '../../protocol/src/errors.ts';

// ---------------------------------------------------------------- seeded PRNG

/**
 * xoshiro128** (Blackman & Vigna) seeded with SHA-256 of a string: fast, 2^128 - 1 period, and
 * identical on every platform (32-bit integer arithmetic only). Not for cryptography.
 */
export class SeededRandom {
  readonly #s = new Uint32Array(4);

  constructor(seed: string) {
    const h = sha256(utf8(seed));
    const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
    for (let i = 0; i < 4; i++) this.#s[i] = dv.getUint32(i * 4);
    // the all-zero state is the one fixed point of the generator
    if (this.#s.every((w) => w === 0)) this.#s[0] = 1;
  }

  /** A generator with an explicit state (four 32-bit words, not all zero): for test vectors. */
  static fromState(words: readonly [number, number, number, number]): SeededRandom {
    const w: unknown[] = Array.isArray(words) ? [...(words as readonly unknown[])] : [];
    if (w.length !== 4 || !w.every((x) => Number.isInteger(x) && (x as number) >= 0 && (x as number) < 2 ** 32) || w.every((x) => x === 0)) {
      fail('INVALID_ARGUMENT', 'state: four 32-bit words, not all zero');
    }
    const r = new SeededRandom('');
    for (let i = 0; i < 4; i++) r.#s[i] = w[i] as number;
    return r;
  }

  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.#s;
    const s0 = s[0] as number;
    const s1 = s[1] as number;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s[2] = (s[2] as number) ^ s0;
    s[3] = (s[3] as number) ^ s1;
    s[1] = s1 ^ (s[2] as number);
    s[0] = s0 ^ (s[3] as number);
    s[2] = (s[2] as number) ^ t;
    s[3] = rotl(s[3] as number, 11);
    return result;
  }

  /** A uniform number in [0, 1). */
  next(): number {
    return this.nextU32() / 2 ** 32;
  }

  /** A uniform number in [min, max). */
  range(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** A uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** A normal variate (Box–Muller). */
  normal(mean = 0, sd = 1): number {
    const u = 1 - this.next(); // (0, 1]: log(0) would be -Infinity
    const v = this.next();
    return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

const round = (x: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

// ---------------------------------------------------------------- common shapes

/** Type of a column: typed-array backed numbers, 0/1 booleans, epoch-ms timestamps, or text. */
export type ColumnType = 'f64' | 'i32' | 'bool' | 'timestamp' | 'string';

/** One column of a use case's data. */
export interface ColumnSpec {
  name: string;
  type: ColumnType;
  unit?: string;
  description: string;
}

/** f64/timestamp: Float64Array; i32: Int32Array; bool: Uint8Array (0/1); string: string[]. */
export type Column = Float64Array | Int32Array | Uint8Array | string[];
export type Columns = Record<string, Column>;

/** One generated sample: the payload, its exact JSON bytes, media type and signing time. */
export interface UseCaseSample<T> {
  index: number;
  payload: T;
  bytes: Uint8Array;
  contentType: string;
  timestampMs: number;
}

export interface GenerateOptions {
  /** Any string; the same seed gives the same data. */
  seed: string;
  /** Device identifier written into the payloads (e.g. an IMEI or meter number); part of the seed. */
  deviceId: string;
  /** Samples to produce (1..1,000,000). */
  count: number;
  /** Index of the first sample (to continue a series); default 0. */
  startIndex?: number;
  /** Time of sample 0, ms since the epoch; default 2025-06-21T00:00:00Z. */
  startMs?: number;
  /** Time between samples (ms); default per use case. */
  intervalMs?: number;
}

/** A use case: its description, schema and generator. */
export interface UseCase<T extends object> {
  readonly id: 'I.1' | 'I.2' | 'I.3';
  readonly name: string;
  /** CEF terminal type of the devices producing it. */
  readonly terminalType: string;
  readonly contentType: string;
  readonly defaultIntervalMs: number;
  readonly schema: readonly ColumnSpec[];
  /** An endless series of samples. */
  samples(opts: Omit<GenerateOptions, 'count'>): Generator<UseCaseSample<T>>;
  /** `count` samples. */
  generate(opts: GenerateOptions): UseCaseSample<T>[];
  /** Parses and checks JSON bytes of one payload (every schema column present and typed). MALFORMED_MESSAGE otherwise. */
  parse(bytes: Uint8Array): T;
  /** Typed columns per {@link schema} from payloads or their JSON bytes. */
  toColumns(items: readonly (T | Uint8Array)[]): Columns;
}

const DEFAULT_START_MS = Date.UTC(2025, 5, 21);
const MAX_COUNT = 1_000_000;

interface Resolved {
  seed: string;
  deviceId: string;
  startIndex: number;
  startMs: number;
  intervalMs: number;
}

function resolve(opts: Omit<GenerateOptions, 'count'>, defaultIntervalMs: number): Resolved {
  if (typeof opts !== 'object' || opts === null) fail('INVALID_ARGUMENT', 'options: expected an object');
  if (typeof opts.seed !== 'string') fail('INVALID_ARGUMENT', 'seed: a string');
  if (typeof opts.deviceId !== 'string' || opts.deviceId.length === 0 || opts.deviceId.length > 64) fail('INVALID_ARGUMENT', 'deviceId: 1 to 64 characters');
  const startIndex = opts.startIndex ?? 0;
  const startMs = opts.startMs ?? DEFAULT_START_MS;
  const intervalMs = opts.intervalMs ?? defaultIntervalMs;
  if (!Number.isSafeInteger(startIndex) || startIndex < 0 || startIndex > 100 * MAX_COUNT) fail('INVALID_ARGUMENT', 'startIndex: an integer from 0');
  if (!Number.isSafeInteger(startMs) || startMs < 0) fail('INVALID_ARGUMENT', 'startMs: a non-negative integer');
  if (!Number.isSafeInteger(intervalMs) || intervalMs < 1 || intervalMs > 86_400_000) fail('INVALID_ARGUMENT', 'intervalMs: 1 ms to 1 day');
  return { seed: opts.seed, deviceId: opts.deviceId, startIndex, startMs, intervalMs };
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

/** Builds a use case from its per-device sample function (index-ordered; may keep state). */
function defineUseCase<T extends object>(d: {
  id: UseCase<T>['id'];
  name: string;
  terminalType: string;
  contentType: string;
  defaultIntervalMs: number;
  schema: readonly ColumnSpec[];
  /** Returns the sample function of one device series, called with index 0, 1, 2, … in order. */
  series(r: Resolved): (index: number, timestampMs: number) => T;
}): UseCase<T> {
  const schema = Object.freeze(d.schema.map((c) => Object.freeze({ ...c })));
  function* samples(opts: Omit<GenerateOptions, 'count'>): Generator<UseCaseSample<T>> {
    const r = resolve(opts, d.defaultIntervalMs);
    const next = d.series(r);
    for (let i = 0; ; i++) {
      const timestampMs = r.startMs + i * r.intervalMs;
      const payload = next(i, timestampMs);
      // earlier samples are generated (and dropped) so stateful series continue exactly
      if (i >= r.startIndex) yield { index: i, payload, bytes: enc.encode(JSON.stringify(payload)), contentType: d.contentType, timestampMs };
    }
  }
  const parse = (bytes: Uint8Array): T => {
    if (!(bytes instanceof Uint8Array)) fail('MALFORMED_MESSAGE', `${d.name}: expected JSON bytes`);
    let v: unknown;
    try {
      v = JSON.parse(dec.decode(bytes));
    } catch (e) {
      fail('MALFORMED_MESSAGE', `${d.name}: not JSON`, e);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('MALFORMED_MESSAGE', `${d.name}: expected a JSON object`);
    const o = v as Record<string, unknown>;
    for (const c of schema) {
      const x = o[c.name];
      const ok =
        c.type === 'string'
          ? typeof x === 'string'
          : c.type === 'bool'
            ? typeof x === 'boolean'
            : c.type === 'i32'
              ? Number.isInteger(x) && (x as number) >= -(2 ** 31) && (x as number) < 2 ** 31
              : typeof x === 'number' && Number.isFinite(x);
      if (!ok) fail('MALFORMED_MESSAGE', `${d.name}: field ${c.name} missing or not of type ${c.type}`);
    }
    return o as T;
  };
  const toColumns = (items: readonly (T | Uint8Array)[]): Columns => {
    if (!Array.isArray(items)) fail('INVALID_ARGUMENT', 'toColumns: expected a list');
    const rows = items.map((it) => (it instanceof Uint8Array ? parse(it) : it) as Record<string, unknown>);
    const n = rows.length;
    const out: Columns = {};
    for (const c of schema) {
      if (c.type === 'string') out[c.name] = rows.map((r) => String(r[c.name]));
      else if (c.type === 'bool') out[c.name] = Uint8Array.from(rows, (r) => (r[c.name] === true ? 1 : 0));
      else if (c.type === 'i32') out[c.name] = Int32Array.from(rows, (r) => Number(r[c.name]));
      else {
        const col = new Float64Array(n);
        rows.forEach((r, i) => {
          col[i] = Number(r[c.name]);
        });
        out[c.name] = col;
      }
    }
    return out;
  };
  return {
    id: d.id,
    name: d.name,
    terminalType: d.terminalType,
    contentType: d.contentType,
    defaultIntervalMs: d.defaultIntervalMs,
    schema,
    samples,
    generate(opts: GenerateOptions): UseCaseSample<T>[] {
      if (!Number.isSafeInteger(opts?.count) || opts.count < 1 || opts.count > MAX_COUNT) fail('INVALID_ARGUMENT', `count: 1 to ${MAX_COUNT}`);
      const out: UseCaseSample<T>[] = [];
      for (const s of samples(opts)) {
        out.push(s);
        if (out.length === opts.count) break;
      }
      return out;
    },
    parse,
    toColumns,
  };
}

// ---------------------------------------------------------------- I.1 vehicle telemetry

export const DRIVING_EVENTS = ['none', 'harsh_braking', 'harsh_acceleration', 'speeding', 'sharp_turn'] as const;
export type DrivingEvent = (typeof DRIVING_EVENTS)[number];

/** I.1: one telemetry point of a logistics vehicle. */
export interface VehicleTelemetry {
  vehicleId: string;
  tripId: string;
  seq: number;
  t: number;
  lat: number;
  lon: number;
  speedKmh: number;
  headingDeg: number;
  /** Distance since the previous point. */
  distanceKm: number;
  odometerKm: number;
  speedLimitKmh: number;
  event: DrivingEvent;
  /** Index of `event` in {@link DRIVING_EVENTS} (a numeric column). */
  eventCode: number;
}

const DEPOTS: readonly [number, number][] = [
  [52.52, 13.405], // Berlin
  [53.5511, 9.9937], // Hamburg
  [48.1351, 11.582], // Munich
  [50.1109, 8.6821], // Frankfurt
  [50.9375, 6.9603], // Cologne
];
const ROAD_TYPES = [
  { limit: 50, cruise: 45 },
  { limit: 100, cruise: 85 },
  { limit: 130, cruise: 110 },
] as const;

export const vehicleTelemetry: UseCase<VehicleTelemetry> = defineUseCase<VehicleTelemetry>({
  id: 'I.1',
  name: 'vehicle-telemetry',
  terminalType: 'vehicle',
  contentType: 'application/vnd.divs.vehicle-telemetry+json',
  defaultIntervalMs: 10_000,
  schema: [
    { name: 't', type: 'timestamp', unit: 'ms', description: 'sample time' },
    { name: 'seq', type: 'i32', description: 'sample number in the series' },
    { name: 'lat', type: 'f64', unit: 'deg', description: 'WGS 84 latitude' },
    { name: 'lon', type: 'f64', unit: 'deg', description: 'WGS 84 longitude' },
    { name: 'speedKmh', type: 'f64', unit: 'km/h', description: 'speed' },
    { name: 'headingDeg', type: 'f64', unit: 'deg', description: 'heading, clockwise from north' },
    { name: 'distanceKm', type: 'f64', unit: 'km', description: 'distance since the previous sample' },
    { name: 'odometerKm', type: 'f64', unit: 'km', description: 'odometer' },
    { name: 'speedLimitKmh', type: 'f64', unit: 'km/h', description: 'speed limit of the road' },
    { name: 'eventCode', type: 'i32', description: 'driving event: 0 none, 1 harsh braking, 2 harsh acceleration, 3 speeding, 4 sharp turn' },
    { name: 'vehicleId', type: 'string', description: 'vehicle identifier' },
    { name: 'tripId', type: 'string', description: 'trip identifier' },
    { name: 'event', type: 'string', description: 'driving event name' },
  ],
  series(r) {
    const rnd = new SeededRandom(`divs-usecase/v1:I.1:${r.seed}:${r.deviceId}`);
    const [depotLat, depotLon] = rnd.pick(DEPOTS);
    let lat = depotLat + rnd.range(-0.05, 0.05);
    let lon = depotLon + rnd.range(-0.05, 0.05);
    let heading = rnd.range(0, 360);
    let speed = 0;
    let odometer = round(rnd.range(10_000, 200_000), 1);
    let road: (typeof ROAD_TYPES)[number] = ROAD_TYPES[0];
    let roadLeft = 0;
    const tripId = `${r.deviceId}-T${rnd.int(1000, 9999)}`;
    const dtH = r.intervalMs / 3_600_000;
    return (index, t) => {
      if (roadLeft <= 0) {
        road = rnd.pick(ROAD_TYPES);
        roadLeft = rnd.int(10, 60);
      }
      roadLeft--;
      let event: DrivingEvent = 'none';
      const before = speed;
      // approach the road's cruising speed, with noise
      speed += (road.cruise - speed) * 0.3 + rnd.normal(0, 3);
      let turn = rnd.normal(0, 6);
      const x = rnd.next();
      if (x < 0.02 && before > 30) {
        speed = before * rnd.range(0.35, 0.6);
        event = 'harsh_braking';
      } else if (x < 0.035 && before < road.cruise) {
        speed = before + rnd.range(20, 30);
        event = 'harsh_acceleration';
      } else if (x < 0.05) {
        turn = rnd.pick([-1, 1]) * rnd.range(60, 95);
        speed = Math.min(speed, 35);
        event = 'sharp_turn';
      } else if (x < 0.06) {
        speed = road.limit * rnd.range(1.12, 1.3);
      }
      // judged on the reported (rounded) speed, so the payload is self-consistent
      speed = round(Math.max(0, Math.min(speed, 160)), 1);
      if (event === 'none' && speed > road.limit * 1.1) event = 'speeding';
      heading = (((heading + turn) % 360) + 360) % 360;
      const distance = speed * dtH;
      const rad = (heading * Math.PI) / 180;
      lat += (distance * Math.cos(rad)) / 111.32;
      lon += (distance * Math.sin(rad)) / (111.32 * Math.cos((lat * Math.PI) / 180));
      odometer += distance;
      return {
        vehicleId: r.deviceId,
        tripId,
        seq: index,
        t,
        lat: round(lat, 6),
        lon: round(lon, 6),
        speedKmh: round(speed, 1),
        headingDeg: round(heading, 1),
        distanceKm: round(distance, 4),
        odometerKm: round(odometer, 3),
        speedLimitKmh: road.limit,
        event,
        eventCode: DRIVING_EVENTS.indexOf(event),
      };
    };
  },
});

// ---------------------------------------------------------------- I.2 smart-meter readings

/** I.2: one interval reading of a smart meter with rooftop solar. */
export interface MeterReading {
  meterId: string;
  region: string;
  intervalStartMs: number;
  intervalMinutes: number;
  /** Energy drawn from the grid. */
  importKWh: number;
  /** Energy fed into the grid. */
  exportKWh: number;
  /** Solar production in the interval. */
  pvKWh: number;
  /** Consumption in the interval. */
  consumptionKWh: number;
  /** import - export. */
  netKWh: number;
  voltageV: number;
}

export const METER_REGIONS = ['DE-BE', 'DE-HH', 'DE-BY', 'DE-NW', 'DE-BW', 'DE-SN'] as const;

/** Fraction of peak solar output at a UTC time: a daily sine from 06:00 to 18:00, larger in summer. */
export function solarFactor(timeMs: number): number {
  const hour = (timeMs % 86_400_000) / 3_600_000;
  const day = Math.floor(timeMs / 86_400_000);
  const dayOfYear = day - Math.floor(Date.UTC(new Date(timeMs).getUTCFullYear(), 0, 1) / 86_400_000);
  const season = 0.55 + 0.45 * Math.cos((2 * Math.PI * (dayOfYear - 172)) / 365);
  const sun = Math.sin((Math.PI * (hour - 6)) / 12);
  return sun > 0 ? sun * season : 0;
}

export const smartMeter: UseCase<MeterReading> = defineUseCase<MeterReading>({
  id: 'I.2',
  name: 'smart-meter',
  terminalType: 'smart-meter',
  contentType: 'application/vnd.divs.meter-reading+json',
  defaultIntervalMs: 15 * 60_000,
  schema: [
    { name: 'intervalStartMs', type: 'timestamp', unit: 'ms', description: 'start of the interval' },
    { name: 'intervalMinutes', type: 'i32', unit: 'min', description: 'interval length' },
    { name: 'importKWh', type: 'f64', unit: 'kWh', description: 'energy drawn from the grid' },
    { name: 'exportKWh', type: 'f64', unit: 'kWh', description: 'energy fed into the grid' },
    { name: 'pvKWh', type: 'f64', unit: 'kWh', description: 'solar production' },
    { name: 'consumptionKWh', type: 'f64', unit: 'kWh', description: 'consumption' },
    { name: 'netKWh', type: 'f64', unit: 'kWh', description: 'import minus export' },
    { name: 'voltageV', type: 'f64', unit: 'V', description: 'mean voltage' },
    { name: 'meterId', type: 'string', description: 'meter identifier' },
    { name: 'region', type: 'string', description: 'ISO 3166-2 region' },
  ],
  series(r) {
    const base = `divs-usecase/v1:I.2:${r.seed}:${r.deviceId}`;
    const meter = new SeededRandom(`${base}:meter`);
    const region = meter.pick(METER_REGIONS);
    const peakKw = round(meter.range(3, 10), 1);
    const baseLoadKw = meter.range(0.15, 0.45);
    const hours = r.intervalMs / 3_600_000;
    const minutes = Math.round(r.intervalMs / 60_000);
    const clouds = new Map<number, number>();
    // cloudiness is a property of the day, so every interval of one day shares it, whatever the start index
    const cloudOf = (day: number): number => {
      let c = clouds.get(day);
      if (c === undefined) {
        c = new SeededRandom(`${base}:day:${day}`).range(0.25, 1);
        clouds.clear();
        clouds.set(day, c);
      }
      return c;
    };
    return (index, t) => {
      const rnd = new SeededRandom(`${base}:i:${index}`);
      const mid = t + r.intervalMs / 2;
      const pv = peakKw * solarFactor(mid) * cloudOf(Math.floor(mid / 86_400_000)) * rnd.range(0.9, 1.05) * hours;
      const hour = (mid % 86_400_000) / 3_600_000;
      const peak = (hour >= 6 && hour < 9 ? 0.9 : 0) + (hour >= 17 && hour < 22 ? 1.4 : 0);
      const load = Math.max(0.05, (baseLoadKw + peak * rnd.range(0.5, 1.2)) * Math.exp(rnd.normal(0, 0.2))) * hours;
      const net = load - pv;
      return {
        meterId: r.deviceId,
        region,
        intervalStartMs: t,
        intervalMinutes: minutes,
        importKWh: round(Math.max(0, net), 4),
        exportKWh: round(Math.max(0, -net), 4),
        pvKWh: round(pv, 4),
        consumptionKWh: round(load, 4),
        netKWh: round(net, 4),
        voltageV: round(230 + rnd.normal(0, 2.5), 1),
      };
    };
  },
});

// ---------------------------------------------------------------- I.3 industrial inspection

/** I.3: one camera inspection of a machined part. */
export interface InspectionResult {
  partId: string;
  cameraId: string;
  line: string;
  station: number;
  t: number;
  lengthMm: number;
  widthMm: number;
  holeDiameterMm: number;
  surfaceDefects: number;
  pass: boolean;
  /** Checks that failed: "length", "width", "hole", "surface". */
  failed: string[];
}

/** Nominal dimensions and tolerances of the inspected part. */
export const PART_SPEC = {
  lengthMm: { nominal: 120, tolerance: 0.15 },
  widthMm: { nominal: 45, tolerance: 0.1 },
  holeDiameterMm: { nominal: 8, tolerance: 0.02 },
  maxSurfaceDefects: 1,
} as const;

export const inspection: UseCase<InspectionResult> = defineUseCase<InspectionResult>({
  id: 'I.3',
  name: 'inspection',
  terminalType: 'camera',
  contentType: 'application/vnd.divs.inspection-result+json',
  defaultIntervalMs: 6_000,
  schema: [
    { name: 't', type: 'timestamp', unit: 'ms', description: 'inspection time' },
    { name: 'station', type: 'i32', description: 'station number on the line' },
    { name: 'lengthMm', type: 'f64', unit: 'mm', description: 'measured length' },
    { name: 'widthMm', type: 'f64', unit: 'mm', description: 'measured width' },
    { name: 'holeDiameterMm', type: 'f64', unit: 'mm', description: 'measured hole diameter' },
    { name: 'surfaceDefects', type: 'i32', description: 'surface defects found' },
    { name: 'pass', type: 'bool', description: 'all checks passed' },
    { name: 'partId', type: 'string', description: 'part serial number' },
    { name: 'cameraId', type: 'string', description: 'camera identifier' },
    { name: 'line', type: 'string', description: 'production line' },
  ],
  series(r) {
    const base = `divs-usecase/v1:I.3:${r.seed}:${r.deviceId}`;
    const cam = new SeededRandom(`${base}:camera`);
    const line = `L${cam.int(1, 9)}`;
    const station = cam.int(1, 12);
    const firstSerial = cam.int(100_000, 900_000);
    // a slowly drifting tool: measurements wander within (and sometimes beyond) tolerance
    const drift = cam.range(-0.4, 0.4);
    return (index, t) => {
      const rnd = new SeededRandom(`${base}:i:${index}`);
      const wear = drift * Math.sin(index / 50);
      const lengthMm = round(rnd.normal(PART_SPEC.lengthMm.nominal + wear * PART_SPEC.lengthMm.tolerance, PART_SPEC.lengthMm.tolerance / 2.2), 3);
      const widthMm = round(rnd.normal(PART_SPEC.widthMm.nominal, PART_SPEC.widthMm.tolerance / 2.5), 3);
      const holeDiameterMm = round(rnd.normal(PART_SPEC.holeDiameterMm.nominal - wear * PART_SPEC.holeDiameterMm.tolerance, PART_SPEC.holeDiameterMm.tolerance / 2.5), 4);
      const x = rnd.next();
      const surfaceDefects = x < 0.9 ? 0 : x < 0.97 ? 1 : rnd.int(2, 5);
      const failed: string[] = [];
      if (Math.abs(lengthMm - PART_SPEC.lengthMm.nominal) > PART_SPEC.lengthMm.tolerance) failed.push('length');
      if (Math.abs(widthMm - PART_SPEC.widthMm.nominal) > PART_SPEC.widthMm.tolerance) failed.push('width');
      if (Math.abs(holeDiameterMm - PART_SPEC.holeDiameterMm.nominal) > PART_SPEC.holeDiameterMm.tolerance) failed.push('hole');
      if (surfaceDefects > PART_SPEC.maxSurfaceDefects) failed.push('surface');
      return {
        partId: `P-${line}-${firstSerial + index}`,
        cameraId: r.deviceId,
        line,
        station,
        t,
        lengthMm,
        widthMm,
        holeDiameterMm,
        surfaceDefects,
        pass: failed.length === 0,
        failed,
      };
    };
  },
});

// ---------------------------------------------------------------- registry

/** The three use cases by Appendix I clause. */
export const USE_CASES = {
  'I.1': vehicleTelemetry,
  'I.2': smartMeter,
  'I.3': inspection,
} as const;

export type UseCaseId = keyof typeof USE_CASES;

/** A use case by its clause ("I.1") or name ("smart-meter"). INVALID_ARGUMENT for others. */
export function useCase(idOrName: string): UseCase<VehicleTelemetry> | UseCase<MeterReading> | UseCase<InspectionResult> {
  for (const u of Object.values(USE_CASES)) if (u.id === idOrName || u.name === idOrName) return u;
  fail('INVALID_ARGUMENT', `unknown use case ${idOrName}: one of ${Object.values(USE_CASES).map((u) => `${u.id} (${u.name})`).join(', ')}`);
}
