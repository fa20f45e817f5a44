/**
 * @module ledger/consortium/peers
 * RP-dd client [RP-DD] [E2E-3]: reads blocks from a height from other AS nodes
 * (`LedgerSyncService.GetBlocks`), for a node that was down, or joins, after etcd no longer
 * holds the blocks it lacks. What arrives is untrusted: the ledger validates every block
 * exactly as it validates one from etcd before storing it.
 */
import { LedgerSyncServiceClient, type GetBlocksResponse } from '../../../../proto/gen/divs/v1/as_sync.ts';
import { grpc, makeClient, serverStream, unary } from '../../../../platform/src/grpc.ts';

export interface PeerSyncOptions {
  /** Bearer token with the `peer` role at the other nodes. */
  token?: string;
  /** Deadline of a GetLedgerInfo call (ms). Default 3000. */
  timeoutMs?: number;
}

/** gRPC clients to peers, one per address, kept open. */
export class PeerSync {
  readonly #o: PeerSyncOptions;
  readonly #clients = new Map<string, LedgerSyncServiceClient>();

  constructor(o: PeerSyncOptions = {}) {
    this.#o = o;
  }

  #client(address: string): LedgerSyncServiceClient {
    let c = this.#clients.get(address);
    if (!c) this.#clients.set(address, (c = makeClient(LedgerSyncServiceClient, address)));
    return c;
  }

  #md(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.#o.token) md.set('authorization', `Bearer ${this.#o.token}`);
    return md;
  }

  /** The peer's height (number of blocks). Throws a coded error when it does not answer. */
  async height(address: string): Promise<number> {
    const c = this.#client(address);
    const r = await unary(c, c.getLedgerInfo, {}, { metadata: this.#md(), timeoutMs: this.#o.timeoutMs ?? 3000 });
    return r.height;
  }

  /** Blocks `[fromHeight, fromHeight + max)` (max 0: to the peer's tip), in order. */
  blocks(address: string, fromHeight: number, max = 0): AsyncIterable<GetBlocksResponse> {
    const c = this.#client(address);
    return serverStream(c.getBlocks({ fromHeight, maxBlocks: max }, this.#md()));
  }

  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }
}
