/**
 * @module verify/store-source
 * Builds a {@link VerifyTask} from the gateway store inside a worker: the main thread only plans
 * which UE slices a task covers, the worker reads them (read-only connection, WAL snapshot) and
 * packs them, so reading a large dataset costs the main thread nothing. Records of a UE chain
 * outside the dataset (another channel or media type) are read as CONTEXT: verified and part of
 * the chain, not counted.
 */
import { StoreReader } from '../store.ts';
import { Flag, type VerifyTask, type WindowSpec } from './task.ts';

/** One UE's records with `from <= sequence <= to`. */
export interface StoreSlice {
  ue: number;
  from: number;
  to: number;
}

export interface StoreTaskSpec {
  id: number;
  dbPath: string;
  slices: StoreSlice[];
  /** The dataset: channel id and media types (null: all); other records are context. */
  channel: number;
  contentTypes: string[] | null;
  windows: WindowSpec[];
  /** See {@link VerifyTask.remember}. */
  remember?: boolean;
}

const readers = new Map<string, StoreReader>();

function reader(path: string): StoreReader {
  let r = readers.get(path);
  if (!r) {
    r = new StoreReader(path);
    readers.set(path, r);
  }
  return r;
}

/** Closes this thread's store connections (tests, shutdown). */
export function closeStoreReaders(): void {
  for (const r of readers.values()) r.close();
  readers.clear();
}

/** Reads the slices of a spec into a task (one segment per slice). */
export function readStoreTask(spec: StoreTaskSpec): { task: VerifyTask; segmentUes: Int32Array } {
  const db = reader(spec.dbPath);
  const types = spec.contentTypes ? new Set(spec.contentTypes) : null;
  const records: Uint8Array[] = [];
  const flagList: number[] = [];
  const segments = new Uint32Array(spec.slices.length);
  const segmentUes = new Int32Array(spec.slices.length);
  let total = 0;
  spec.slices.forEach((s, k) => {
    segments[k] = records.length;
    segmentUes[k] = s.ue;
    for (const row of db.slice(s.ue, s.from, s.to)) {
      records.push(row.record);
      total += row.record.length;
      let fl = row.late ? Flag.LATE : 0;
      if (row.channel !== spec.channel || (types !== null && !types.has(row.contentType))) fl |= Flag.CONTEXT;
      flagList.push(fl);
    }
  });
  const data = new Uint8Array(total);
  const offsets = new Uint32Array(records.length + 1);
  let o = 0;
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as Uint8Array;
    offsets[i] = o;
    data.set(r, o);
    o += r.length;
  }
  offsets[records.length] = o;
  return { task: { id: spec.id, data, offsets, flags: Uint8Array.from(flagList), segments, windows: spec.windows, ...(spec.remember ? { remember: true } : {}) }, segmentUes };
}
