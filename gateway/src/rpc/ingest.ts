/**
 * @module rpc/ingest
 * gRPC adapter of UE ingest [E2E-2] [VER-1]: the bidirectional `Ingest` stream. Frames are read
 * as raw bytes (records stay the exact bytes the UE sent), checked and handed to the group-commit
 * writer while the next frames are read; responses go out in frame order, each only after its
 * records are durable. At most `window` frames of one stream wait for their commit; beyond
 * that the stream stops reading (HTTP/2 flow control pushes back on the sender).
 */
import type * as grpc from '@grpc/grpc-js';
import { IngestResponse, IngestServiceService } from '../../../proto/gen/divs/v1/gateway.ts';
import type { Handlers } from '../../../platform/src/grpc.ts';
import { DivsError } from '../../../protocol/src/errors.ts';
import type { GatewayAuth } from '../auth.ts';
import { decodeIngestRequest, encodeIngestResponse, type Ingestor, type RawIngestRequest } from '../ingest.ts';

/** A frame as the stream handler sees it: decoded, or the coded reason it is not. */
export type IngestFrame = RawIngestRequest | { error: DivsError };

/**
 * The Ingest service with a zero-copy request decoder. The decoder never throws: a malformed
 * frame reaches the handler as a coded error, which fails the stream with its code.
 */
export const RawIngestService = {
  ingest: {
    ...IngestServiceService.ingest,
    requestDeserialize: (value: Buffer): IngestFrame => {
      try {
        return decodeIngestRequest(value);
      } catch (e) {
        return { error: e instanceof DivsError ? e : new DivsError('MALFORMED_MESSAGE', 'ingest request does not decode') };
      }
    },
    requestSerialize: (): Buffer => {
      throw new Error('server-side definition');
    },
    responseSerialize: (value: IngestResponse): Buffer => {
      const b = encodeIngestResponse(value);
      return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    },
  } as grpc.MethodDefinition<IngestFrame, IngestResponse> & { requestStream: true; responseStream: true },
} as const;

export function ingestHandlers(ingestor: Ingestor, auth: GatewayAuth, window = 64): Handlers<typeof RawIngestService> {
  return {
    ingest: async (frames, send, ctx) => {
      auth.ingest(ctx.metadata.get('authorization')[0]);
      let sent = Promise.resolve();
      let failed: unknown;
      let outstanding = 0;
      let wake: (() => void) | null = null;
      // Frames are pulled by hand and the iterator is never returned early: returning it would
      // destroy the call stream before the error status could be sent.
      const it = frames[Symbol.asyncIterator]();
      for (;;) {
        const next = await it.next();
        if (next.done) break;
        const frame = next.value;
        if ('error' in frame) {
          failed ??= frame.error;
          break;
        }
        outstanding++;
        const p = ingestor.frame(frame);
        void p
          .catch(() => undefined)
          .then(() => {
            outstanding--;
            wake?.();
            wake = null;
          });
        // responses leave in frame order, whatever order the commits finish in
        sent = sent.then(async () => {
          const res = await p;
          if (failed === undefined) await send(res);
        });
        sent.catch((e: unknown) => {
          failed ??= e;
        });
        while (outstanding >= window && failed === undefined) await new Promise<void>((r) => (wake = r));
        if (failed !== undefined) break;
      }
      await sent.catch(() => undefined);
      if (failed !== undefined) throw failed;
    },
  };
}
