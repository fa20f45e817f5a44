/**
 * The command line runner's data files: CSV and JSON become typed columns and metadata.
 */
import { describe, expect, it } from 'vitest';
import { DivsError } from '../../protocol/src/errors.ts';
import { dataFromCsv, dataFromJson, parseCsv } from '../src/datafile.ts';

const values = (c: { buffer: ArrayBuffer | ArrayBufferView } | undefined): unknown[] => {
  const b = c?.buffer;
  return b instanceof Float64Array || b instanceof Uint32Array ? [...b] : [];
};

describe('enclave runner data files', () => {
  it('[SC2-4] parses RFC 4180 CSV (quotes, doubled quotes, CRLF, BOM)', () => {
    expect(parseCsv('\ufeffa,b\r\n1,"x, y"\r\n2,"say ""hi"""\n')).toEqual([
      ['a', 'b'],
      ['1', 'x, y'],
      ['2', 'say "hi"'],
    ]);
    expect(() => parseCsv('a\n"open')).toThrowError(DivsError);
  });

  it('[SC2-4] turns numeric CSV columns into f64 and others into dictionary codes', () => {
    const d = dataFromCsv('kwh,site\n1.5,north\n,south\n3,north\n', 'r.csv');
    expect(d.columns?.kwh?.type).toBe('f64');
    expect(values(d.columns?.kwh)).toEqual([1.5, Number.NaN, 3]);
    expect(d.columns?.site?.type).toBe('u32');
    expect(values(d.columns?.site)).toEqual([0, 1, 0]);
    expect(d.meta).toEqual({ source: 'r.csv', rows: 3, dictionaries: { site: ['north', 'south'] } });
    expect(() => dataFromCsv('a,b\n1\n', 'x.csv')).toThrowError(/2 fields|1 fields/);
  });

  it('[SC2-4] reads JSON columnar data with types and JSON records', () => {
    const d = dataFromJson({ columns: { x: [1, 2], n: { type: 'i64', values: ['9007199254740993', 1] } }, meta: { m: 1 } }, 'd.json');
    expect(values(d.columns?.x)).toEqual([1, 2]);
    expect([...(d.columns?.n?.buffer as BigInt64Array)]).toEqual([9007199254740993n, 1n]);
    expect(d.meta).toEqual({ m: 1 });
    const r = dataFromJson([{ v: 1, k: 'a' }, { v: 2 }], 'r.json');
    expect(values(r.columns?.v)).toEqual([1, 2]);
    expect((r.meta as { dictionaries: unknown }).dictionaries).toEqual({ k: ['a', ''] });
    expect(() => dataFromJson({ columns: { x: { type: 'f64', values: ['a'] } } }, 'x')).toThrowError(DivsError);
    expect(() => dataFromJson(5, 'x')).toThrowError(DivsError);
  });
});
