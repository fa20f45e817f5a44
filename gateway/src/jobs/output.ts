/**
 * @module jobs/output
 * The output contract of consumer jobs and the checks that keep raw records inside the gateway
 * [SC2-3] [SC2-4].
 *
 * ## How the gateway knows the distinct UEs behind every output
 *
 * A job's code is hostile, so nothing it *says* about which records it used can be believed: a
 * job that returns `{ value, ues: 50 }` may have computed `value` from one UE. The gateway
 * therefore never asks. It partitions the verified records itself (by the request's `group_by`
 * fields; no fields = one group), counts the distinct UEs of each group itself, and runs the
 * code once per group, each time in a fresh isolate holding only that group's rows
 * (jobs/columns.ts). A group's output can then depend only on that group's records and the
 * params, and its UE count is a fact the gateway established, not a claim:
 *
 * - groups with fewer than `minDistinctUes` UEs are never run (suppressed, only counted);
 * - if no group is left, the job is WITHHELD with OUTPUT_BELOW_THRESHOLD;
 * - more than `maxGroups` groups (grouping by a per-record field): WITHHELD, OUTPUT_NOT_AGGREGATE.
 *
 * ## Per-record outputs
 *
 * Within a group, a job could still return the group's records themselves. Every group value is
 * measured in scalar values ({@link scalarCount}: a number, boolean or null is 1; a string or an
 * object key is 1 per 8 characters, as 8 characters carry about what one float64 does) and the
 * job is WITHHELD with OUTPUT_NOT_AGGREGATE when a value holds as many scalars as its group has
 * records (one value per record or more), or more than `maxValuesPerGroup`. Released groups
 * carry the gateway's counts: `{ key, ues, records, value }`.
 *
 * What an aggregation threshold does not do (true of AWS Clean Rooms too): it cannot stop code
 * written to encode one UE's values into an aggregate (e.g. a sum over a group where every other
 * row contributes 0). That is what code approval (allow-list of reviewed code hashes, or manual
 * approval) is for; the threshold and the shape checks stop accidental and naive leaks and make
 * every released number the product of at least `minDistinctUes` UEs' records.
 */
import { fail } from '../../../protocol/src/errors.ts';
import { utf8 } from '../../../protocol/src/bytes.ts';
import type { KeyValue } from './columns.ts';

/** Characters of a string (or object key) counted as one scalar value. */
export const CHARS_PER_SCALAR = 8;

/**
 * Scalar values in a JSON value (see the module comment). Stops counting once over `budget`
 * (returns budget + 1), so a huge value costs no more than the budget.
 */
export function scalarCount(value: unknown, budget = Number.MAX_SAFE_INTEGER): number {
  let n = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v === 'number' || typeof v === 'boolean') n += 1;
    else if (typeof v === 'string') n += Math.max(1, Math.ceil(v.length / CHARS_PER_SCALAR));
    else if (Array.isArray(v)) {
      if (v.length === 0) n += 1;
      for (const x of v) stack.push(x);
    } else if (typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>);
      if (entries.length === 0) n += 1;
      for (const [k, x] of entries) {
        n += Math.max(1, Math.ceil(k.length / CHARS_PER_SCALAR));
        stack.push(x);
      }
    } else n += 1;
    if (n > budget) return budget + 1;
  }
  return n;
}

/** Output limits of the policy that the checks need. */
export interface OutputLimits {
  minDistinctUes: number;
  maxValuesPerGroup: number;
  maxOutputBytes: number;
}

/** Throws OUTPUT_NOT_AGGREGATE when a group's value is not an aggregate of its records. */
export function checkGroupValue(value: unknown, records: number, limits: Pick<OutputLimits, 'maxValuesPerGroup'>): void {
  const budget = Math.max(records, limits.maxValuesPerGroup);
  const n = scalarCount(value, budget);
  if (n >= records) {
    fail('OUTPUT_NOT_AGGREGATE', `a group output holds ${n > budget ? `more than ${budget}` : n} values for ${records} records: per-record values are never released`);
  }
  if (n > limits.maxValuesPerGroup) fail('OUTPUT_NOT_AGGREGATE', `a group output holds more than ${limits.maxValuesPerGroup} values (policy maximum)`);
}

/** One released group. */
export interface ReleasedGroup {
  key: Record<string, KeyValue>;
  ues: number;
  records: number;
  value: unknown;
}

/** The document released to the consumer. */
export interface JobResultDocument {
  jobId: string;
  datasetId: string;
  groupBy: string[];
  groups: ReleasedGroup[];
  /** Groups not run: fewer distinct UEs than the threshold. */
  suppressedGroups: number;
  /** Verified records left out because their payload is not a JSON object. */
  unparsedRecords: number;
}

/** The exact result bytes; JOB_OUTPUT_LIMIT when larger than the policy allows. */
export function resultBytes(doc: JobResultDocument, limits: Pick<OutputLimits, 'maxOutputBytes'>): Uint8Array {
  const bytes = utf8(JSON.stringify(doc));
  if (bytes.length > limits.maxOutputBytes) fail('JOB_OUTPUT_LIMIT', `the result has ${bytes.length} bytes, over the policy maximum of ${limits.maxOutputBytes}`);
  return bytes;
}
