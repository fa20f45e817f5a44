/**
 * @module rpc/sync
 * RP-dd adapter [RP-DD]: other AS nodes read blocks from a height with their exact bytes and
 * verify them before storing their own copy (see the consortium backend).
 */
import type { LedgerSyncServiceService } from '../../../proto/gen/divs/v1/as_sync.ts';
import { fail } from '../../../protocol/src/errors.ts';
import type { Handlers } from '../../../platform/src/grpc.ts';
import type { Ledger } from '../ledger/types.ts';
import type { Authenticator } from '../auth.ts';

const PAGE = 64;

export function syncHandlers(ledger: Ledger, auth: Authenticator): Handlers<typeof LedgerSyncServiceService> {
  return {
    getBlocks: async (req, send, ctx) => {
      auth.require(ctx, 'peer', 'admin');
      const height = ledger.info().height;
      if (req.fromHeight > height) fail('INVALID_RANGE', `from_height ${req.fromHeight} is beyond the ledger height ${height}`);
      const end = req.maxBlocks > 0 ? Math.min(height, req.fromHeight + req.maxBlocks) : height;
      for (let h = req.fromHeight; h < end && !ctx.cancelled(); h += PAGE) {
        for (const b of ledger.blocks(h, Math.min(PAGE, end - h))) await send({ header: b.header, txs: b.txs });
      }
    },
    getLedgerInfo: async (_req, ctx) => {
      auth.require(ctx, 'peer', 'admin', 'consumer');
      const i = ledger.info();
      return { ledgerId: i.ledgerId, height: i.height, txCount: i.size, checkpoint: ledger.checkpoint() };
    },
  };
}
