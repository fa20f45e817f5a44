/**
 * @module rpc/consumer
 * gRPC adapter of the data-consumer service (scenario 10.2 steps 3-7) [SC2-1] [SC2-2] [RP-DS]:
 * authenticated consumers list the dataset descriptions granted to them and ask the gateway to
 * verify a dataset, getting a report signed by the gateway. Verification runs are limited in
 * number (they share the worker threads); others wait their turn.
 */
import { GatewayConsumerServiceService, type SignedVerificationReport } from '../../../proto/gen/divs/v1/gateway.ts';
import { UeIdentity } from '../../../proto/gen/divs/v1/common.ts';
import { fail } from '../../../protocol/src/errors.ts';
import { validateUeIdentity } from '../../../protocol/src/identity.ts';
import type { Handlers } from '../../../platform/src/grpc.ts';
import type { GatewayAuth } from '../auth.ts';
import type { DatasetCatalog } from '../datasets.ts';
import type { VerificationEngine } from '../verify/engine.ts';
import { buildReport, type ReportSigner } from '../report.ts';
import { ueKeyOf, type StoreQueries } from '../store.ts';

const MAX_NONCE = 64;
const MAX_UES = 10_000;

/** A counting semaphore: at most `n` holders. */
export class Gate {
  #free: number;
  readonly #waiters: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((r) => this.#waiters.push(r));
    try {
      return await fn();
    } finally {
      const next = this.#waiters.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

export interface ConsumerDeps {
  auth: GatewayAuth;
  catalog: DatasetCatalog;
  engine: VerificationEngine;
  store: StoreQueries;
  signer: ReportSigner;
  /** Concurrent VerifyDataset runs; default 2. */
  concurrency?: number;
  /** Sees every report signed for a consumer (the dashboard's report log); must not throw. */
  onReport?: (signed: SignedVerificationReport, info: { consumer: string; datasetId: string }) => void;
}

export function consumerHandlers(d: ConsumerDeps): Handlers<typeof GatewayConsumerServiceService> {
  const gate = new Gate(d.concurrency ?? 2);
  return {
    listDatasets: async (req, ctx) => {
      const consumer = d.auth.consumerOf(ctx);
      const list = req.datasetId ? [d.catalog.get(req.datasetId, consumer)] : d.catalog.visible(consumer);
      return { datasets: list.map((c) => d.catalog.describe(c, req.omitUes)) };
    },
    verifyDataset: async (req, ctx) => {
      const consumer = d.auth.consumerOf(ctx);
      const cfg = d.catalog.get(req.datasetId, consumer);
      if (req.nonce.length > MAX_NONCE) fail('INVALID_ARGUMENT', `nonce: at most ${MAX_NONCE} bytes`);
      if (req.ues.length > MAX_UES) fail('INVALID_ARGUMENT', `ues: at most ${MAX_UES}`);
      const ues = req.ues.map((u, i) => validateUeIdentity(u, `ues[${i}]`));
      const sel = d.catalog.selection(cfg, ues.length > 0 ? ues.map(ueKeyOf) : undefined);
      return gate.run(async () => {
        const outcome = await d.engine.verifyStored(d.store, sel);
        const report = buildReport(outcome, {
          gatewayId: d.signer.gatewayId,
          datasetId: cfg.id,
          nonce: req.nonce,
          ues: ues.map((u) => UeIdentity.fromPartial(u)),
          forksRejectedAtIngest: d.store.forkCount(outcome.ues.map((u) => u.ue)),
        });
        ctx.log.info({ consumer, dataset: cfg.id, records: report.recordCount, valid: report.validCount, ms: report.finishedAtMs - report.startedAtMs }, 'dataset verified');
        const signed = d.signer.sign(report);
        try {
          d.onReport?.(signed, { consumer, datasetId: cfg.id });
        } catch (e) {
          // keeping a copy for operators must never cost the consumer its answer
          ctx.log.warn({ err: (e as Error).message }, 'report observer failed');
        }
        return { report: signed };
      });
    },
  };
}
