/**
 * @module gateway/test/fixtures
 * Test and benchmark material for the gateway without an AS: UEs with real identities (fleet
 * generator) and keys, records signed by the real UE SDK (RecordSigner, single and batch mode),
 * and verification windows built from the same key material. Keys live in an OpenSSL-backed
 * key store so that producing many records is fast; the bytes are the same the noble-backed
 * stores produce (same PAE input, P1363 signatures).
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignedRecord, type TxRef, type UeIdentity } from '../../proto/gen/divs/v1/common.ts';
import { sha256, toHex } from '../../protocol/src/bytes.ts';
import { DivsError } from '../../protocol/src/errors.ts';
import { nodeSign, rawPublicKey, SignatureSuite, type Suite } from '../../protocol/src/suites.ts';
import type { KeyStore, PublicKeyInfo } from '../../ue/src/keystore.ts';
import { generateFleetIdentities } from '../../ue/src/fleet.ts';
import { RecordSigner } from '../../ue/src/records.ts';
import { trustedWindow } from '../src/verify/windows.ts';
import type { WindowSpec } from '../src/verify/task.ts';

/** A key store over node:crypto keys (P-256 / Ed25519): fast signing for fixtures. */
export class NodeKeyStore implements KeyStore {
  readonly kind = 'node-test';
  readonly #keys = new Map<string, { suite: Suite; key: KeyObject; pub: Uint8Array }>();
  async generate(alias: string, suite: Suite): Promise<PublicKeyInfo> {
    if (this.#keys.has(alias)) throw new DivsError('KEY_EXISTS', alias);
    const pair = suite === SignatureSuite.SIGNATURE_SUITE_ED25519 ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = rawPublicKey(pair.publicKey);
    this.#keys.set(alias, { suite, key: pair.privateKey, pub });
    return { suite, key: pub };
  }
  async publicKey(alias: string): Promise<PublicKeyInfo> {
    const k = this.#keys.get(alias);
    if (!k) throw new DivsError('KEY_NOT_FOUND', alias);
    return { suite: k.suite, key: k.pub };
  }
  async sign(alias: string, msg: Uint8Array): Promise<Uint8Array> {
    const k = this.#keys.get(alias);
    if (!k) throw new DivsError('KEY_NOT_FOUND', alias);
    return nodeSign(k.suite, k.key, msg);
  }
  async has(alias: string): Promise<boolean> {
    return this.#keys.has(alias);
  }
  async delete(alias: string): Promise<boolean> {
    return this.#keys.delete(alias);
  }
}

export const LEDGER_ID = 'divs-test';
export const CONTRACT_START = Date.UTC(2025, 0, 1);
export const CONTRACT_END = Date.UTC(2035, 0, 1);

/** A UE with a key, a signer primed with a (local) endorsement reference, and its window. */
export interface FixtureUe {
  identity: UeIdentity;
  signer: RecordSigner;
  tx: TxRef;
  window: WindowSpec;
  publicKey: Uint8Array;
  keystore: NodeKeyStore;
  alias: string;
}

/** `count` UEs (fleet identities from `seed`), each endorsed locally at tx ID = txBase + index + 1. */
export async function fixtureUes(count: number, seed = 'gw-fixture', opts: { suite?: Suite; terminationMs?: number; asUrl?: string; txBase?: number } = {}): Promise<FixtureUe[]> {
  const suite = opts.suite ?? SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256;
  const ids = generateFleetIdentities({ count, seed });
  const ks = new NodeKeyStore();
  const out: FixtureUe[] = [];
  for (const [i, id] of ids.entries()) {
    const pk = await ks.generate(id.alias, suite);
    const n = (opts.txBase ?? 0) + i;
    const txHash = sha256(new Uint8Array([1, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff]));
    const tx: TxRef = { txId: (opts.txBase ?? 0) + i + 1, txHash, entryAddress: { ledgerId: LEDGER_ID, asUrls: [opts.asUrl ?? 'grpc://127.0.0.1:1'] } };
    const signer = await RecordSigner.open({ identity: id.identity, keystore: ks, alias: id.alias, maxBatchSize: 1 << 20 });
    await signer.updateEndorsement(tx, 1);
    const window = trustedWindow({
      ledgerId: LEDGER_ID,
      txId: tx.txId,
      txHash,
      suite,
      publicKey: pk.key,
      ueKey: toHex(sha256(pk.key)),
      identity: id.identity,
      startMs: CONTRACT_START,
      endMs: CONTRACT_END,
      terminationMs: opts.terminationMs,
    });
    out.push({ identity: id.identity, signer, tx, window, publicKey: pk.key, keystore: ks, alias: id.alias });
  }
  return out;
}

/** Encodes SignedRecords as stored and sent. */
export const encodeRecords = (rs: readonly SignedRecord[]): Uint8Array[] => rs.map((r) => SignedRecord.encode(r).finish());

/** A payload like a smart meter reading. */
export function reading(i: number): Uint8Array {
  return new TextEncoder().encode(`{"kWh":${(i * 0.37).toFixed(2)},"i":${i}}`);
}

// ---------------------------------------------------------------- bulk generation (benchmarks)

/** A UE's records as generated in bulk: packed SignedRecord encodings plus the window to judge them. */
export interface GeneratedChain {
  data: Uint8Array;
  offsets: Uint32Array;
  window: WindowSpec;
}

export interface BulkOptions {
  /** UEs per generator thread. */
  uesPerThread: number;
  /** Records per UE. */
  recordsPerUe: number;
  /** Records per signed batch; 1 = single mode (one signature per record). */
  batchSize: number;
  threads?: number;
  seed?: string;
}

/**
 * Generates many UE chains on worker threads with the real UE SDK (RecordSigner), for
 * benchmarks: returns one packed chain per UE.
 */
export async function generateChains(o: BulkOptions): Promise<GeneratedChain[]> {
  const { Worker } = await import('node:worker_threads');
  const threads = o.threads ?? 2;
  const parts = await Promise.all(
    Array.from({ length: threads }, (_, t) =>
      new Promise<GeneratedChain[]>((resolve, reject) => {
        const w = new Worker(new URL('./gen-worker.ts', import.meta.url), { workerData: { ...o, seed: `${o.seed ?? 'bulk'}-${t}`, threadIndex: t } });
        w.once('message', (m: GeneratedChain[]) => {
          resolve(m);
          void w.terminate();
        });
        w.once('error', reject);
      }),
    ),
  );
  return parts.flat();
}
