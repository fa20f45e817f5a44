/**
 * @module enclave-runner/datafile
 * Turns a JSON or CSV file into job data (typed columns + metadata) for the command line
 * runner (main.ts). Not used by the gateway, which builds columns from verified records.
 *
 * Accepted shapes:
 * - JSON columnar: `{ "columns": { "kwh": [1.5, 2], "meter": { "type": "u32", "values": [7, 9] } }, "meta": {...} }`
 *   (a bare array means f64; i64/u64 values may be strings or integers);
 * - JSON records: `[{ "kwh": 1.5, "site": "north" }, ...]`;
 * - CSV with a header row (RFC 4180 quoting).
 * For records and CSV, a column whose non-empty cells are all numbers becomes f64 (empty
 * cells NaN); any other column is dictionary-encoded: u32 codes in the column, the distinct
 * strings in `meta.dictionaries[name]` in order of first appearance.
 */
import { basename } from 'node:path';
import { readFileSync } from 'node:fs';
import { DivsError } from '../../protocol/src/errors.ts';
import type { ColumnInput, JobDataInput } from './pool.ts';
import { COLUMN_TYPES, isColumnType, type ColumnType, type JsonValue } from './protocol.ts';

function bad(message: string): never {
  throw new DivsError('INVALID_ARGUMENT', message);
}

/** A typed column from JSON values of the given type. */
export function typedColumn(name: string, type: ColumnType, values: unknown[]): ColumnInput {
  const buffer = new ArrayBuffer(values.length * COLUMN_TYPES[type].bytes);
  if (type === 'i64' || type === 'u64') {
    const out = type === 'i64' ? new BigInt64Array(buffer) : new BigUint64Array(buffer);
    values.forEach((v, i) => {
      if (!((typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && /^-?\d+$/.test(v)))) {
        bad(`column ${name}[${i}]: not an integer`);
      }
      if (type === 'u64' && String(v).startsWith('-')) bad(`column ${name}[${i}]: negative value in a u64 column`);
      out[i] = BigInt(v);
    });
    return { type, buffer: out };
  }
  const Ctor = { f64: Float64Array, f32: Float32Array, i32: Int32Array, u32: Uint32Array, i16: Int16Array, u16: Uint16Array, i8: Int8Array, u8: Uint8Array }[type];
  const out = new Ctor(buffer);
  values.forEach((v, i) => {
    if (typeof v !== 'number' && v !== null) bad(`column ${name}[${i}]: not a number (null means NaN)`);
    out[i] = v === null ? Number.NaN : v;
  });
  return { type, buffer: out };
}

/** Columns from rows of cells (records or CSV): numeric → f64, otherwise dictionary-encoded. */
export function columnsFromRows(names: string[], rows: unknown[][]): { columns: Record<string, ColumnInput>; dictionaries: Record<string, string[]> } {
  const columns: Record<string, ColumnInput> = {};
  const dictionaries: Record<string, string[]> = {};
  names.forEach((name, j) => {
    const cells = rows.map((r) => r[j]);
    const asNumber = (c: unknown): number | undefined => {
      if (c === null || c === undefined || c === '') return Number.NaN;
      if (typeof c === 'number') return c;
      if (typeof c === 'string' && c.trim() !== '' && Number.isFinite(Number(c))) return Number(c);
      return undefined;
    };
    const numbers = cells.map(asNumber);
    if (numbers.every((v) => v !== undefined)) {
      columns[name] = { type: 'f64', buffer: Float64Array.from(numbers as number[]) };
      return;
    }
    const dict: string[] = [];
    const index = new Map<string, number>();
    const codes = new Uint32Array(cells.length);
    cells.forEach((c, i) => {
      const s = c === null || c === undefined ? '' : typeof c === 'string' ? c : JSON.stringify(c);
      let k = index.get(s);
      if (k === undefined) {
        k = dict.length;
        dict.push(s);
        index.set(s, k);
      }
      codes[i] = k;
    });
    columns[name] = { type: 'u32', buffer: codes };
    dictionaries[name] = dict;
  });
  return { columns, dictionaries };
}

/** Parses CSV text (RFC 4180: quoted fields, doubled quotes, CRLF or LF). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  const src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  while (i < src.length) {
    const ch = src[i] as string;
    if (quoted) {
      if (ch === '"') {
        if (src[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        field += ch;
      }
      i++;
      continue;
    }
    if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      if (ch === '\r' && src[i + 1] === '\n') i++;
    } else field += ch;
    i++;
  }
  if (quoted) bad('CSV: unterminated quoted field');
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0] === ''));
}

/** Job data from CSV text. */
export function dataFromCsv(text: string, source: string): JobDataInput {
  const [header, ...rows] = parseCsv(text);
  if (header === undefined) bad('CSV: no header row');
  rows.forEach((r, i) => {
    if (r.length !== header.length) bad(`CSV row ${i + 2}: ${r.length} fields, header has ${header.length}`);
  });
  const { columns, dictionaries } = columnsFromRows(header, rows);
  return { columns, meta: { source, rows: rows.length, dictionaries } };
}

/** Job data from a parsed JSON document (columnar object or array of records). */
export function dataFromJson(doc: unknown, source: string): JobDataInput {
  if (Array.isArray(doc)) {
    const names: string[] = [];
    for (const rec of doc) {
      if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) bad('JSON records: every element must be an object');
      for (const k of Object.keys(rec)) if (!names.includes(k)) names.push(k);
    }
    const rows = doc.map((rec: Record<string, unknown>) => names.map((k) => rec[k]));
    const { columns, dictionaries } = columnsFromRows(names, rows);
    return { columns, meta: { source, rows: rows.length, dictionaries } };
  }
  if (typeof doc !== 'object' || doc === null) bad('JSON data: expected an object with "columns" or an array of records');
  const d = doc as { columns?: unknown; meta?: unknown };
  if (typeof d.columns !== 'object' || d.columns === null) bad('JSON data: "columns" must be an object');
  const columns: Record<string, ColumnInput> = {};
  for (const [name, spec] of Object.entries(d.columns as Record<string, unknown>)) {
    if (Array.isArray(spec)) columns[name] = typedColumn(name, 'f64', spec);
    else if (typeof spec === 'object' && spec !== null && isColumnType((spec as { type?: unknown }).type) && Array.isArray((spec as { values?: unknown }).values)) {
      const s = spec as { type: ColumnType; values: unknown[] };
      columns[name] = typedColumn(name, s.type, s.values);
    } else bad(`column ${name}: expected an array or { "type", "values" }`);
  }
  return { columns, meta: (d.meta ?? null) as JsonValue };
}

/** Reads a .json or .csv file into job data. */
export function loadDataFile(path: string): JobDataInput {
  const text = readFileSync(path, 'utf8');
  if (/\.csv$/i.test(path)) return dataFromCsv(text, basename(path));
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    bad(`${path}: not valid JSON`);
  }
  return dataFromJson(doc, basename(path));
}
