/**
 * Appendix I use-case generators: deterministic series (same options, same bytes; continuation
 * by start index), plausible data for each use case, typed columns per schema, hostile payloads
 * refused with codes, and payloads a UE can sign as they are.
 */
import { describe, expect, it } from 'vitest';
import { RecordBody, SignatureSuite, type UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { utf8 } from '../../protocol/src/bytes.ts';
import { verifyRecordSignature } from '../../protocol/src/records.ts';
import { importPublicKey } from '../../protocol/src/suites.ts';
import { expectCode } from '../../protocol/test/helpers.ts';
import { SoftwareKeyStore } from '../src/keystore.ts';
import { RecordSigner } from '../src/records.ts';
import {
  DRIVING_EVENTS,
  PART_SPEC,
  SeededRandom,
  USE_CASES,
  inspection,
  smartMeter,
  solarFactor,
  useCase,
  vehicleTelemetry,
  type InspectionResult,
  type MeterReading,
  type VehicleTelemetry,
} from '../src/usecases.ts';

const opts = { seed: 'usecase-test', deviceId: '490154203237518', startMs: Date.UTC(2025, 5, 21) };
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe('seeded PRNG', () => {
  it('is xoshiro128** (reference outputs from state 1, 2, 3, 4)', () => {
    const r = SeededRandom.fromState([1, 2, 3, 4]);
    expect([r.nextU32(), r.nextU32(), r.nextU32()]).toEqual([11520, 0, 5927040]);
    expectCode(() => SeededRandom.fromState([0, 0, 0, 0]), 'INVALID_ARGUMENT');
  });

  it('gives one series per seed, values in range', () => {
    const a = new SeededRandom('x');
    const b = new SeededRandom('x');
    const c = new SeededRandom('y');
    const xs = Array.from({ length: 1000 }, () => a.next());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b.next()));
    expect(xs).not.toEqual(Array.from({ length: 1000 }, () => c.next()));
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
  });
});

describe('use-case generators', () => {
  it('produce the same payloads and bytes for the same options, and continue a series from a start index', () => {
    for (const uc of Object.values(USE_CASES)) {
      const a = uc.generate({ ...opts, count: 50 });
      const b = uc.generate({ ...opts, count: 50 });
      expect(a.map((s) => text(s.bytes))).toEqual(b.map((s) => text(s.bytes)));
      const tail = uc.generate({ ...opts, count: 20, startIndex: 30 });
      expect(tail.map((s) => text(s.bytes))).toEqual(a.slice(30).map((s) => text(s.bytes)));
      expect(tail[0]?.index).toBe(30);
      const other = uc.generate({ ...opts, deviceId: 'another-device', count: 50 });
      expect(other.map((s) => text(s.bytes))).not.toEqual(a.map((s) => text(s.bytes)));
      // the bytes are the JSON of the payload, and the timestamps follow the interval
      for (const s of a) expect(JSON.parse(text(s.bytes))).toEqual(s.payload);
      expect(a[1]?.timestampMs).toBe(opts.startMs + uc.defaultIntervalMs);
      expect(a.every((s) => s.contentType === uc.contentType)).toBe(true);
    }
  });

  it('I.1 vehicle telemetry: a route whose distance matches speed x interval, a growing odometer, driving events', () => {
    const s = vehicleTelemetry.generate({ ...opts, count: 1000 }).map((x) => x.payload as VehicleTelemetry);
    const hours = vehicleTelemetry.defaultIntervalMs / 3_600_000;
    for (const [i, p] of s.entries()) {
      expect(p.seq).toBe(i);
      expect(Math.abs(p.distanceKm - p.speedKmh * hours)).toBeLessThan(0.001);
      expect(p.speedKmh).toBeGreaterThanOrEqual(0);
      expect(Math.abs(p.lat)).toBeLessThanOrEqual(90);
      expect(p.eventCode).toBe(DRIVING_EVENTS.indexOf(p.event));
      if (p.event === 'speeding') expect(p.speedKmh).toBeGreaterThan(p.speedLimitKmh * 1.1);
      if (i > 0) expect(p.odometerKm).toBeGreaterThanOrEqual((s[i - 1] as VehicleTelemetry).odometerKm);
    }
    const events = new Set(s.map((p) => p.event));
    for (const e of ['none', 'harsh_braking', 'speeding', 'sharp_turn']) expect(events.has(e as VehicleTelemetry['event'])).toBe(true);
    // consecutive points are about one interval's distance apart (1 degree latitude ~ 111 km)
    const a = s[100] as VehicleTelemetry;
    const b = s[101] as VehicleTelemetry;
    const km = Math.hypot((b.lat - a.lat) * 111.32, (b.lon - a.lon) * 111.32 * Math.cos((a.lat * Math.PI) / 180));
    expect(Math.abs(km - b.distanceKm)).toBeLessThan(0.01);
  });

  it('I.2 smart meter: solar production follows the day, import/export balance, one region per meter', () => {
    const day = smartMeter.generate({ ...opts, count: 96 }).map((x) => x.payload as MeterReading);
    expect(day).toHaveLength(96);
    const at = (h: number) => day[h * 4] as MeterReading;
    expect(at(2).pvKWh).toBe(0);
    expect(at(23).pvKWh).toBe(0);
    expect(at(12).pvKWh).toBeGreaterThan(0);
    expect(solarFactor(Date.UTC(2025, 5, 21, 12))).toBeGreaterThan(solarFactor(Date.UTC(2025, 11, 21, 12)));
    for (const r of day) {
      expect(r.importKWh).toBeGreaterThanOrEqual(0);
      expect(r.exportKWh).toBeGreaterThanOrEqual(0);
      expect(r.importKWh === 0 || r.exportKWh === 0).toBe(true);
      expect(Math.abs(r.netKWh - (r.consumptionKWh - r.pvKWh))).toBeLessThan(0.0002);
      expect(Math.abs(r.netKWh - (r.importKWh - r.exportKWh))).toBeLessThan(0.0002);
      expect(r.intervalMinutes).toBe(15);
    }
    expect(new Set(day.map((r) => r.region)).size).toBe(1);
    expect(day.some((r) => r.exportKWh > 0)).toBe(true);
  });

  it('I.3 inspection: pass exactly when every measurement is inside tolerance, a realistic reject rate', () => {
    const s = inspection.generate({ ...opts, count: 1000 }).map((x) => x.payload as InspectionResult);
    for (const p of s) {
      const inside =
        Math.abs(p.lengthMm - PART_SPEC.lengthMm.nominal) <= PART_SPEC.lengthMm.tolerance &&
        Math.abs(p.widthMm - PART_SPEC.widthMm.nominal) <= PART_SPEC.widthMm.tolerance &&
        Math.abs(p.holeDiameterMm - PART_SPEC.holeDiameterMm.nominal) <= PART_SPEC.holeDiameterMm.tolerance &&
        p.surfaceDefects <= PART_SPEC.maxSurfaceDefects;
      expect(p.pass).toBe(inside);
      expect(p.failed.length === 0).toBe(p.pass);
      expect(p.cameraId).toBe(opts.deviceId);
    }
    expect(new Set(s.map((p) => p.partId)).size).toBe(1000);
    const rejects = s.filter((p) => !p.pass).length;
    expect(rejects).toBeGreaterThan(10);
    expect(rejects).toBeLessThan(300);
  });

  it('turn payloads or their JSON bytes into typed columns per schema', () => {
    for (const uc of Object.values(USE_CASES)) {
      const samples = uc.generate({ ...opts, count: 40 });
      const fromBytes = uc.toColumns(samples.map((s) => s.bytes));
      const fromObjects = (uc.toColumns as (x: readonly object[]) => ReturnType<typeof uc.toColumns>)(samples.map((s) => s.payload));
      expect(Object.keys(fromBytes)).toEqual(uc.schema.map((c) => c.name));
      for (const c of uc.schema) {
        const col = fromBytes[c.name];
        expect(col).toHaveLength(40);
        expect(col).toEqual(fromObjects[c.name]);
        const kind = { f64: Float64Array, timestamp: Float64Array, i32: Int32Array, bool: Uint8Array, string: Array }[c.type];
        expect(col).toBeInstanceOf(kind);
      }
    }
    const kwh = smartMeter.toColumns(smartMeter.generate({ ...opts, count: 4 }).map((s) => s.bytes)).importKWh as Float64Array;
    expect(kwh[0]).toBe((smartMeter.generate({ ...opts, count: 1 })[0]?.payload as MeterReading).importKWh);
  });

  it('refuse malformed payloads and bad options with codes', () => {
    expectCode(() => smartMeter.parse(utf8('not json')), 'MALFORMED_MESSAGE');
    expectCode(() => smartMeter.parse(utf8('[1,2]')), 'MALFORMED_MESSAGE');
    expectCode(() => smartMeter.parse(new Uint8Array([0xff, 0xfe])), 'MALFORMED_MESSAGE');
    const good = JSON.parse(text(smartMeter.generate({ ...opts, count: 1 })[0]?.bytes as Uint8Array)) as Record<string, unknown>;
    expectCode(() => smartMeter.parse(utf8(JSON.stringify({ ...good, importKWh: 'lots' }))), 'MALFORMED_MESSAGE');
    expectCode(() => smartMeter.parse(utf8(JSON.stringify({ ...good, intervalMinutes: 1.5 }))), 'MALFORMED_MESSAGE');
    expectCode(() => inspection.toColumns([utf8('{}')]), 'MALFORMED_MESSAGE');
    expectCode(() => vehicleTelemetry.generate({ ...opts, count: 0 }), 'INVALID_ARGUMENT');
    expectCode(() => vehicleTelemetry.generate({ ...opts, deviceId: '', count: 1 }), 'INVALID_ARGUMENT');
    expectCode(() => vehicleTelemetry.generate({ ...opts, intervalMs: 0, count: 1 }), 'INVALID_ARGUMENT');
    expectCode(() => useCase('I.9'), 'INVALID_ARGUMENT');
    expect(useCase('smart-meter')).toBe(smartMeter);
    expect(useCase('I.3')).toBe(inspection);
  });

  it('[VER-1] give payloads a UE signs as they are', async () => {
    const ks = new SoftwareKeyStore();
    const pk = await ks.generate('ue', SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256);
    const identity: UeIdentity = { imei: '490154203237518', iccid: '89490200001234567892', eid: '', msisdn: '+491701234567' };
    const signer = await RecordSigner.open({ identity, keystore: ks, alias: 'ue', requireEndorsement: false });
    for (const uc of Object.values(USE_CASES)) {
      const [s] = uc.generate({ ...opts, count: 1 });
      if (!s) throw new Error('no sample');
      const rec = await signer.sign(s.bytes, s.contentType, s.timestampMs);
      const body = RecordBody.decode(rec.body);
      expect(body.contentType).toBe(uc.contentType);
      expect(body.timestampMs).toBe(s.timestampMs);
      expect(uc.parse(body.payload)).toEqual(s.payload);
      expect(verifyRecordSignature(rec, pk.suite, importPublicKey(pk.suite, pk.key))).toBe(true);
    }
  });
});
