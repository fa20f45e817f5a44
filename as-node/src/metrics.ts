/**
 * @module as-node/metrics
 * The AS node's Prometheus series, beside the per-RPC ones every service has:
 * - `divs_ledger_height`, `divs_ledger_transactions`, `divs_registered_ues` (read at scrape time);
 * - `divs_registrations_total{result,code}`: every registration answered, accepted (`OK`) or
 *   refused with its DIVS error code [END-1] [END-2];
 * - `divs_endorsement_updates_total{reason}`: new versions appended from CEF status events [UPD-3].
 *
 * {@link MeteredContract} is the endorsement contract with these counters; it changes no
 * behaviour.
 */
import type { SignedRegistration } from '../../proto/gen/divs/v1/common.ts';
import type { StatusEvent } from '../../proto/gen/divs/v1/cef.ts';
import { DivsError } from '../../protocol/src/errors.ts';
import type { Metrics } from '../../platform/src/metrics.ts';
import type { Counter } from 'prom-client';
import { EndorsementContract, type ContractOptions, type RegisterResult } from './contract.ts';
import type { LedgerEntry } from './ledger/types.ts';
import { decodeEndorsementTx } from './endorse.ts';
import { reasonName } from './explorer.ts';

/** The endorsement contract, counting registrations by outcome and updates by reason. */
export class MeteredContract extends EndorsementContract {
  readonly #registrations: Counter<'result' | 'code'>;
  readonly #updates: Counter<'reason'>;

  constructor(metrics: Metrics, o: ContractOptions) {
    super(o);
    this.#registrations = metrics.counter('divs_registrations_total', 'UE registrations answered, by result and DIVS code', ['result', 'code']);
    this.#updates = metrics.counter('divs_endorsement_updates_total', 'endorsed versions appended from CEF status events, by reason', ['reason']);
    metrics.gauge('divs_ledger_height', 'blocks on the ledger', [], (g) => g.set(this.ledger.info().height));
    metrics.gauge('divs_ledger_transactions', 'transactions on the ledger (Merkle tree size)', [], (g) => g.set(this.ledger.info().size));
    metrics.gauge('divs_registered_ues', 'UE keys in the index', [], (g) => g.set(this.registry.count()));
  }

  override async registerBatch(regs: SignedRegistration[]): Promise<RegisterResult[]> {
    let results: RegisterResult[];
    try {
      results = await super.registerBatch(regs);
    } catch (e) {
      // a whole batch refused (empty, too large): every item counts with that code
      const code = e instanceof DivsError ? e.code : 'INTERNAL';
      this.#registrations.inc({ result: 'refused', code }, Math.max(1, regs.length));
      throw e;
    }
    const counts = new Map<string, number>();
    for (const r of results) {
      const k = r.ok ? 'OK' : r.code;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    for (const [code, n] of counts) this.#registrations.inc({ result: code === 'OK' ? 'accepted' : 'refused', code }, n);
    return results;
  }

  override async applyStatusEvent(ev: StatusEvent): Promise<LedgerEntry[]> {
    const entries = await super.applyStatusEvent(ev);
    for (const e of entries) {
      let reason = 'UNKNOWN';
      try {
        reason = reasonName(decodeEndorsementTx(e.tx).endorsement.reason);
      } catch {
        // counted as UNKNOWN: the entry was just written by us, so this should never happen
      }
      this.#updates.inc({ reason });
    }
    return entries;
  }
}
