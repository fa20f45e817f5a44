/**
 * @module datasets
 * Datasets and who may see them [SC2-1] [FW-ACL]. A dataset is what the aggregator's
 * configuration names: the records of one ingest channel, optionally only some media types,
 * with a description, a payload schema reference and the consumers it is granted to ("*": every
 * authenticated consumer). Consumers only ever learn descriptions — dataset ID, contributing UE
 * identities, record counts, signature-time ranges, schema — never records.
 */
import type { DatasetDescription } from '../../proto/gen/divs/v1/gateway.ts';
import { fail } from '../../protocol/src/errors.ts';
import type { Selection, StoreQueries } from './store.ts';

export interface DatasetConfig {
  id: string;
  description: string;
  schema: string;
  channel: string;
  /** Media types included; empty: all. */
  contentTypes: string[];
  /** Consumer names the dataset is granted to; "*" grants every authenticated consumer. */
  grants: string[];
}

export class DatasetCatalog {
  readonly #byId: ReadonlyMap<string, DatasetConfig>;
  readonly #store: StoreQueries;

  constructor(configs: readonly DatasetConfig[], store: StoreQueries) {
    const m = new Map<string, DatasetConfig>();
    for (const c of configs) {
      if (m.has(c.id)) fail('CONFIG_INVALID', `dataset ${c.id} is configured twice`);
      m.set(c.id, c);
    }
    this.#byId = m;
    this.#store = store;
  }

  #granted(c: DatasetConfig, consumer: string): boolean {
    return c.grants.includes('*') || c.grants.includes(consumer);
  }

  /** Datasets granted to a consumer, in configuration order. */
  visible(consumer: string): DatasetConfig[] {
    return [...this.#byId.values()].filter((c) => this.#granted(c, consumer));
  }

  /**
   * A dataset granted to the consumer. UNKNOWN_DATASET both when it does not exist and when it
   * is not granted, so consumers cannot probe for datasets they may not see.
   */
  get(id: string, consumer: string): DatasetConfig {
    const c = this.#byId.get(id);
    if (!c || !this.#granted(c, consumer)) fail('UNKNOWN_DATASET', `no dataset ${JSON.stringify(id)} is available to ${consumer}`);
    return c;
  }

  /** The records a dataset is made of. */
  selection(c: DatasetConfig, ueKeys?: readonly string[]): Selection {
    return { channel: c.channel, contentTypes: c.contentTypes, ueKeys };
  }

  /** The description of a dataset as stored right now. */
  describe(c: DatasetConfig, omitUes = false): DatasetDescription {
    const ues = this.#store.selectionUes(this.selection(c));
    let count = 0;
    let first = 0;
    let last = 0;
    for (const u of ues) {
      count += u.count;
      if (first === 0 || u.firstTimestampMs < first) first = u.firstTimestampMs;
      if (u.lastTimestampMs > last) last = u.lastTimestampMs;
    }
    return {
      datasetId: c.id,
      description: c.description,
      schema: c.schema,
      channel: c.channel,
      contentTypes: [...c.contentTypes],
      recordCount: count,
      firstTimestampMs: first,
      lastTimestampMs: last,
      ueCount: ues.length,
      ues: omitUes
        ? []
        : ues.map((u) => ({
            identity: u.identity,
            recordCount: u.count,
            firstTimestampMs: u.firstTimestampMs,
            lastTimestampMs: u.lastTimestampMs,
            firstSequence: u.firstSequence,
            lastSequence: u.lastSequence,
          })),
    };
  }
}
