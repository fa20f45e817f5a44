/**
 * @module bench/common
 * Shared pieces of the benchmarks: real CEF + AS processes on loopback, fast fleet building
 * (the UE side is not what is measured, so benchmark UEs sign with node:crypto), the crypto
 * limits of this machine measured in the same run, and figure printing.
 */
import { createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistrationParams, SignatureSuite, type SignedRegistration } from '../proto/gen/divs/v1/common.ts';
import type { SubscriberRecord } from '../proto/gen/divs/v1/cef.ts';
import { Domain, pae } from '../protocol/src/bytes.ts';
import { rawPublicKey } from '../protocol/src/suites.ts';
import { generateFleetIdentities } from '../ue/src/fleet.ts';
import { startService, type ChildService } from '../platform/src/spawn.ts';

export const CORES = availableParallelism();

export interface BenchUe {
  subscriber: SubscriberRecord;
  registration: SignedRegistration;
}

/** N UEs with P-256 keys and signed registrations (node:crypto for speed; UEs use noble). */
export function benchFleet(count: number, seed: string, plmnId: string): BenchUe[] {
  const now = Date.now();
  return generateFleetIdentities({ count, seed, plmnId }).map((f) => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const params = RegistrationParams.encode({
      identity: f.identity,
      publicKey: { suite: SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256, key: rawPublicKey(privateKey) },
      suites: [SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256],
      createdAtMs: now,
    }).finish();
    const signature = new Uint8Array(sign('sha256', pae(Domain.registration, params), { key: privateKey, dsaEncoding: 'ieee-p1363' }));
    return { subscriber: f.subscriber, registration: { params, signature } };
  });
}

/**
 * Per-core rates of raw OpenSSL P-256 verify and sign on `msgBytes`-byte messages, and of
 * importing a compressed P-256 public key (SPKI, as every registration brings a new one).
 */
export function cryptoRates(msgBytes = 300, ms = 1500): { verifyPerSec: number; signPerSec: number; importPerSec: number } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const msg = Buffer.alloc(msgBytes, 7);
  const sig = sign('sha256', msg, privateKey);
  const rate = (fn: () => void): number => {
    for (let i = 0; i < 200; i++) fn();
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      for (let i = 0; i < 100; i++) fn();
      n += 100;
    }
    return (n * 1000) / (performance.now() - t0);
  };
  const spki = importSpki(publicKey);
  return {
    verifyPerSec: rate(() => verify('sha256', msg, publicKey, sig)),
    signPerSec: rate(() => sign('sha256', msg, privateKey)),
    importPerSec: rate(() => createPublicKey({ key: spki, format: 'der', type: 'spki' })),
  };
}

/** SPKI DER of the compressed point (the encoding UEs register). */
function importSpki(publicKey: KeyObject): Buffer {
  const raw = rawPublicKey(publicKey);
  return Buffer.concat([Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'), raw]);
}

export interface Stack {
  dir: string;
  cef: ChildService;
  as: ChildService;
  token: string;
  stop(): Promise<void>;
}

export async function startCefAndAs(plmnId: string, asArgs: string[] = []): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'divs-bench-'));
  const env = { DIVS_LOG_LEVEL: 'warn' };
  const cef = await startService(['cef/src/main.ts', '--data-dir', join(dir, 'cef'), '--plmn', plmnId, '--operator', 'BenchTel'], { env });
  const as = await startService(['as-node/src/main.ts', '--data-dir', join(dir, 'as'), '--cef', `127.0.0.1:${cef.port}`, '--ledger-id', 'divs-bench', ...asArgs], { env });
  const token = readFileSync(join(dir, 'as', 'consumer.token'), 'utf8').trim();
  return {
    dir,
    cef,
    as,
    token,
    async stop() {
      await Promise.allSettled([as.stop(), cef.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** Prints one figure line: value, unit, the limit it is compared with, ratio and target. */
export function report(name: string, value: number, unit: string, extra: { limit?: number; limitName?: string; target?: string } = {}): void {
  const parts = [`${name}: ${Math.round(value).toLocaleString('en-US')} ${unit}`];
  if (extra.limit !== undefined) parts.push(`${extra.limitName ?? 'limit'} ${Math.round(extra.limit).toLocaleString('en-US')} ${unit}`, `ratio ${(value / extra.limit).toFixed(2)}`);
  if (extra.target) parts.push(`target ${extra.target}`);
  console.log(parts.join(' | '));
}
