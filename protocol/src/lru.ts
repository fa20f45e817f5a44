/**
 * @module lru
 * A map with a bounded number of entries that drops the least recently used one when full:
 * for caches of verified material keyed by something unbounded (UE keys, tx IDs), where a
 * miss only costs a lookup or a verification again.
 */
import { fail } from './errors.ts';

export class LruMap<K, V> {
  readonly #max: number;
  readonly #map = new Map<K, V>();

  /** @param max most entries kept (a positive integer) */
  constructor(max: number) {
    if (!Number.isSafeInteger(max) || max < 1) fail('INVALID_ARGUMENT', 'LruMap: max must be a positive integer');
    this.#max = max;
  }

  get size(): number {
    return this.#map.size;
  }

  /** The value, and marks it most recently used. */
  get(key: K): V | undefined {
    const v = this.#map.get(key);
    if (v === undefined) return undefined;
    // a Map iterates in insertion order: re-inserting moves the entry to the young end
    this.#map.delete(key);
    this.#map.set(key, v);
    return v;
  }

  /** Sets the value as the most recently used; drops the least recently used beyond `max`. */
  set(key: K, value: V): this {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value as K);
    return this;
  }

  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }
}
