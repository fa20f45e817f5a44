/**
 * @module jobs/columns
 * Turns verified records into what a job sees [SC2-4]: their JSON payloads as typed columns
 * (the enclave runner's data model), partitioned by the gateway into output groups.
 *
 * Payloads: a record whose media type is JSON (`application/json`, `…+json`, `text/json`) and
 * whose payload is a JSON object becomes one row; its top-level fields become columns. Other
 * records (binary payloads, arrays, invalid UTF-8 or JSON) are left out and counted.
 *
 * Columns, built per group from that group's rows only (so no value of another group, not even
 * a dictionary string, reaches the job):
 * - a field whose values are all numbers or booleans: `f64` (booleans 0/1, missing NaN);
 * - a field whose values are strings (or mixed scalars): `u32` dictionary codes, the strings in
 *   `meta.dictionaries[name]` in order of first appearance, missing = {@link MISSING_CODE};
 * - fields with nested values, names starting with `_` or longer than 128 characters, fields
 *   beyond {@link MAX_FIELDS} and dictionaries over budget are left out, named in `meta.skipped`;
 * - derived by the gateway: `_ts` (f64, the record's signature time, ms) and `_ue` (u32, the
 *   UE's index within the group, 0-based; never its identity).
 *
 * Groups: the gateway — not the job — assigns every row to a group by the values of the
 * `group_by` fields (payload fields, or `_hour` / `_day` of the signature time in UTC, or `_ue`),
 * and counts the distinct UEs of each group. See jobs/output.ts for why this is what makes the
 * aggregation threshold sound.
 */
import { fail } from '../../../protocol/src/errors.ts';
import type { ColumnInput, JobDataInput } from '../../../enclave-runner/src/index.ts';
import type { JsonValue } from '../../../enclave-runner/src/index.ts';

/** Dictionary code of a missing string value. */
export const MISSING_CODE = 0xffff_ffff;
/** Most payload fields turned into columns. */
export const MAX_FIELDS = 256;
/**
 * Budget of all dictionary strings of one group (UTF-16 code units): even escaped at 6 bytes a
 * character, `meta` stays under the runner's 8 MiB JSON limit the job service sets.
 */
export const MAX_DICTIONARY_CHARS = 1024 * 1024;
/** Most group_by fields. */
export const MAX_GROUP_BY = 4;
/** Derived group_by fields. */
export const DERIVED_GROUP_FIELDS = ['_hour', '_day', '_ue'] as const;

/** One verified record handed to the builder. */
export interface VerifiedRow {
  /** Index of the UE in the dataset (dense, in dataset order). */
  ue: number;
  /** SHA-256 of the record body. */
  hash: Uint8Array;
  timestampMs: number;
  contentType: string;
  payload: Uint8Array;
}

/** A row whose payload parsed. */
export interface ParsedRow {
  row: VerifiedRow;
  fields: Record<string, unknown>;
}

/** A scalar group key value. */
export type KeyValue = string | number | boolean | null;

/** One output group as the gateway partitioned it. */
export interface Group {
  /** group_by field → value. */
  key: Record<string, KeyValue>;
  rows: ParsedRow[];
  /** Distinct UEs among the rows (counted by the gateway). */
  ues: number;
}

const JSON_TYPE = /^(application\/(json|[\w.+-]+\+json)|text\/json)\s*(;.*)?$/i;
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Whether a media type is JSON. */
export function isJsonType(contentType: string): boolean {
  return JSON_TYPE.test(contentType.trim());
}

/** The payload as a JSON object, or null when it is not one (never throws: payloads are hostile). */
export function parsePayload(contentType: string, payload: Uint8Array): Record<string, unknown> | null {
  if (!isJsonType(contentType)) return null;
  let v: unknown;
  try {
    v = JSON.parse(decoder.decode(payload));
  } catch {
    return null;
  }
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** Parses every row; rows that are not JSON objects are counted, not kept. */
export function parseRows(rows: readonly VerifiedRow[]): { parsed: ParsedRow[]; unparsed: number } {
  const parsed: ParsedRow[] = [];
  let unparsed = 0;
  for (const row of rows) {
    const fields = parsePayload(row.contentType, row.payload);
    if (fields === null) unparsed++;
    else parsed.push({ row, fields });
  }
  return { parsed, unparsed };
}

/** Checks group_by names; INVALID_ARGUMENT for bad ones. */
export function checkGroupBy(groupBy: readonly string[]): string[] {
  if (!Array.isArray(groupBy)) fail('INVALID_ARGUMENT', 'group_by: a list of field names');
  if (groupBy.length > MAX_GROUP_BY) fail('INVALID_ARGUMENT', `group_by: at most ${MAX_GROUP_BY} fields`);
  const seen = new Set<string>();
  for (const g of groupBy) {
    if (typeof g !== 'string' || g.length === 0 || g.length > 128) fail('INVALID_ARGUMENT', 'group_by: field names of 1-128 characters');
    if (g.startsWith('_') && !(DERIVED_GROUP_FIELDS as readonly string[]).includes(g)) {
      fail('INVALID_ARGUMENT', `group_by: ${g} is not a field (derived fields: ${DERIVED_GROUP_FIELDS.join(', ')})`);
    }
    if (seen.has(g)) fail('INVALID_ARGUMENT', `group_by: ${g} appears twice`);
    seen.add(g);
  }
  return [...groupBy];
}

function keyValue(p: ParsedRow, field: string): KeyValue {
  switch (field) {
    case '_hour':
      return new Date(p.row.timestampMs).getUTCHours();
    case '_day':
      return new Date(p.row.timestampMs).toISOString().slice(0, 10);
    case '_ue':
      return p.row.ue;
    default: {
      const v = p.fields[field];
      return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v)) ? v : null;
    }
  }
}

function compareKeys(a: readonly KeyValue[], b: readonly KeyValue[]): number {
  // null < boolean < number < string, then natural order: a deterministic group order
  const rank = (v: KeyValue): number => (v === null ? 0 : typeof v === 'boolean' ? 1 : typeof v === 'number' ? 2 : 3);
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as KeyValue;
    const y = b[i] as KeyValue;
    const d = rank(x) - rank(y);
    if (d !== 0) return d;
    if (x === y) continue;
    return (x as number | string | boolean) < (y as number | string | boolean) ? -1 : 1;
  }
  return 0;
}

/**
 * Partitions rows by the group_by fields (no fields: one group of everything), in a
 * deterministic order, with the distinct UE count of each group. Stops with
 * OUTPUT_NOT_AGGREGATE as soon as there are more than `maxGroups` groups: a grouping that
 * fine-grained is a per-record output.
 */
export function partition(rows: readonly ParsedRow[], groupBy: readonly string[], maxGroups: number): Group[] {
  const groups = new Map<string, { values: KeyValue[]; rows: ParsedRow[]; ues: Set<number> }>();
  for (const p of rows) {
    const values = groupBy.map((f) => keyValue(p, f));
    const k = JSON.stringify(values);
    let g = groups.get(k);
    if (!g) {
      if (groups.size >= maxGroups) fail('OUTPUT_NOT_AGGREGATE', `group_by ${groupBy.join(', ')} makes more than ${maxGroups} groups (the policy maximum): that is close to one output per record`);
      g = { values, rows: [], ues: new Set() };
      groups.set(k, g);
    }
    g.rows.push(p);
    g.ues.add(p.row.ue);
  }
  if (groups.size === 0) return [{ key: Object.fromEntries(groupBy.map((f) => [f, null])), rows: [], ues: 0 }];
  return [...groups.values()]
    .sort((a, b) => compareKeys(a.values, b.values))
    .map((g) => ({ key: Object.fromEntries(groupBy.map((f, i) => [f, g.values[i] as KeyValue])), rows: g.rows, ues: g.ues.size }));
}

type FieldKind = 'numeric' | 'dictionary' | 'skip';

/** The job data of one group: columns from its rows only, and metadata. */
export function groupData(g: Group, meta: { datasetId: string; groupBy: readonly string[] }): JobDataInput {
  const n = g.rows.length;
  const kinds = new Map<string, FieldKind>();
  const skipped: Record<string, string> = {};
  for (const p of g.rows) {
    for (const [name, v] of Object.entries(p.fields)) {
      let kind = kinds.get(name);
      if (kind === 'skip') continue;
      if (kind === undefined) {
        if (name.startsWith('_') || name.length === 0 || name.length > 128) {
          kinds.set(name, 'skip');
          skipped[name] = 'reserved or overlong name';
          continue;
        }
        if (kinds.size >= MAX_FIELDS) {
          kinds.set(name, 'skip');
          skipped[name] = `more than ${MAX_FIELDS} fields`;
          continue;
        }
        kind = 'numeric';
      }
      if (v === null || v === undefined) {
        kinds.set(name, kind);
        continue;
      }
      if (typeof v === 'object') {
        kinds.set(name, 'skip');
        skipped[name] = 'nested value';
        continue;
      }
      if (typeof v === 'string') kind = 'dictionary';
      kinds.set(name, kind);
    }
  }

  const columns: Record<string, ColumnInput> = {};
  const dictionaries: Record<string, string[]> = {};
  const described: Record<string, string> = { _ts: 'derived: signature time (ms)', _ue: 'derived: UE index within the group' };
  const ts = new Float64Array(n);
  const ue = new Uint32Array(n);
  const ueIndex = new Map<number, number>();
  g.rows.forEach((p, i) => {
    ts[i] = p.row.timestampMs;
    let u = ueIndex.get(p.row.ue);
    if (u === undefined) ueIndex.set(p.row.ue, (u = ueIndex.size));
    ue[i] = u;
  });
  columns._ts = { type: 'f64', buffer: ts };
  columns._ue = { type: 'u32', buffer: ue };

  let dictChars = 0;
  for (const [name, kind] of kinds) {
    if (kind === 'numeric') {
      const col = new Float64Array(n);
      g.rows.forEach((p, i) => {
        const v = p.fields[name];
        col[i] = typeof v === 'number' ? v : typeof v === 'boolean' ? (v ? 1 : 0) : Number.NaN;
      });
      columns[name] = { type: 'f64', buffer: col };
      described[name] = 'numeric';
    } else if (kind === 'dictionary') {
      const col = new Uint32Array(n);
      const codes = new Map<string, number>();
      const strings: string[] = [];
      let chars = 0;
      let over = false;
      for (let i = 0; i < n && !over; i++) {
        const v = (g.rows[i] as ParsedRow).fields[name];
        if (v === null || v === undefined) {
          col[i] = MISSING_CODE;
          continue;
        }
        const s = String(v);
        let c = codes.get(s);
        if (c === undefined) {
          c = strings.length;
          codes.set(s, c);
          strings.push(s);
          chars += s.length + 8;
          if (dictChars + chars > MAX_DICTIONARY_CHARS) over = true;
        }
        col[i] = c;
      }
      if (over) {
        skipped[name] = 'dictionary over budget (too many distinct strings)';
        continue;
      }
      dictChars += chars;
      columns[name] = { type: 'u32', buffer: col };
      dictionaries[name] = strings;
      described[name] = 'dictionary';
    }
  }
  const metaValue: JsonValue = {
    datasetId: meta.datasetId,
    groupBy: [...meta.groupBy],
    group: { key: g.key, records: n, ues: g.ues },
    columns: described,
    dictionaries,
    missingCode: MISSING_CODE,
    skipped,
  };
  return { columns, meta: metaValue };
}
