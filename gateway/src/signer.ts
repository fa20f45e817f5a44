/**
 * @module signer
 * The gateway's certified key: signs exact statement bytes under a DIVS domain (PAE) and
 * carries the certificate chain that proves the key to consumers. Verification reports and job
 * attestations both sign through it.
 */
import type { KeyObject } from 'node:crypto';
import { pae } from '../../protocol/src/bytes.ts';
import { nodeSign, suiteOfKeyObject, type Suite } from '../../protocol/src/suites.ts';

export class GatewayKeySigner {
  readonly #key: KeyObject;
  readonly #suite: Suite;
  readonly certChain: Uint8Array[];
  readonly gatewayId: string;

  constructor(key: KeyObject, certChain: Uint8Array[], gatewayId: string) {
    this.#key = key;
    this.#suite = suiteOfKeyObject(key);
    this.certChain = certChain;
    this.gatewayId = gatewayId;
  }

  /** Signature over `pae(domain, bytes)`: exactly the bytes that travel, never a re-encoding. */
  protected signBytes(domain: string, bytes: Uint8Array): Uint8Array {
    return nodeSign(this.#suite, this.#key, pae(domain, bytes));
  }
}
