/**
 * @module crypto-pool.test
 * The AS's crypto pool: signatures made on worker threads and inline verify under the AS key,
 * and each is noted as the AS's own (the consortium ledger then skips re-checking it).
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { CryptoPool } from '../src/crypto-pool.ts';
import { nodeVerify, OwnSignatures, SignatureSuite } from '../../protocol/src/suites.ts';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const own = new OwnSignatures();
const pool = new CryptoPool(privateKey, 2, own);
afterAll(() => pool.close());

describe('crypto pool', () => {
  it('[END-3] signs on workers (large batches) and inline (small ones); every signature verifies and is noted as made here', async () => {
    for (const n of [40, 3]) {
      const msgs = Array.from({ length: n }, (_, i) => new TextEncoder().encode(`endorsement ${n}/${i}`));
      const sigs = await pool.sign(msgs);
      expect(sigs).toHaveLength(n);
      for (const [i, m] of msgs.entries()) {
        expect(nodeVerify(SignatureSuite.SIGNATURE_SUITE_ECDSA_P256_SHA256, publicKey, m, sigs[i] as Uint8Array)).toBe(true);
        expect(own.made(m, sigs[i] as Uint8Array)).toBe(true);
      }
      // noted per message: a signature of one message is not "made" for another
      expect(own.made(msgs[0] as Uint8Array, sigs[1] as Uint8Array)).toBe(false);
    }
  });
});
