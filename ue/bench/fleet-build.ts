/**
 * @module ue/bench/fleet-build
 * How long the fleet simulator takes to build N UEs (identities, P-256 keys generated with
 * noble inside key stores, signed registrations), against the floor measured in the same run:
 * one noble key generation + one noble signature per UE on one core.
 *
 * Run: `node_modules/.bin/node ue/bench/fleet-build.ts [count] [workers]`
 */
import { availableParallelism } from 'node:os';
import { SignatureSuite } from '../../proto/gen/divs/v1/common.ts';
import { Domain, pae } from '../../protocol/src/bytes.ts';
import { generateSecretKey, nobleSign, publicKeyOf } from '../../protocol/src/suites.ts';
import { buildFleet, generateFleetIdentities } from '../src/fleet.ts';

const count = Number(process.argv[2] ?? 10_000);
const workersArg = process.argv[3];
const P256 = SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;

// floor: the bare crypto of one UE on one core (warm)
const sample = 300;
const msg = pae(Domain.registration, new Uint8Array(120));
for (let i = 0; i < 50; i++) nobleSign(P256, generateSecretKey(P256), msg);
let t = performance.now();
for (let i = 0; i < sample; i++) {
  const sk = generateSecretKey(P256);
  publicKeyOf(P256, sk);
  nobleSign(P256, sk, msg);
}
const perUeMs = (performance.now() - t) / sample;

t = performance.now();
generateFleetIdentities({ count, seed: 'bench' });
const idsMs = performance.now() - t;

t = performance.now();
const fleet = await buildFleet({ count, seed: 'bench', ...(workersArg !== undefined ? { workers: Number(workersArg) } : {}) });
const buildMs = performance.now() - t;
const workers = fleet.keystores.filter((k) => k.kind === 'worker').length;
await fleet.close();

const floorOneCore = perUeMs * count;
console.log(`cores available          ${availableParallelism()}`);
console.log(`UEs                      ${count}`);
console.log(`identities only          ${idsMs.toFixed(0)} ms`);
console.log(`noble keygen+sign per UE ${perUeMs.toFixed(3)} ms (one core)`);
console.log(`one-core crypto floor    ${(floorOneCore / 1000).toFixed(2)} s`);
console.log(`buildFleet (${workers} workers)   ${(buildMs / 1000).toFixed(2)} s  = ${(count / (buildMs / 1000)).toFixed(0)} UEs/s, ${(buildMs / floorOneCore).toFixed(2)}x the one-core floor`);
