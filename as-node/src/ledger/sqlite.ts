/**
 * @module ledger/sqlite
 * better-sqlite3 glue for the local ledger: opening a database with the ledger's durability
 * settings, and mapping SQLite failures to coded errors.
 *
 * Settings and why:
 * - `journal_mode = WAL`: appends write sequentially to the log; readers never block.
 * - `synchronous = FULL`: every committed append is fsynced before the AS answers. A tx ID and
 *   a signed checkpoint, once handed out, must survive power loss: with NORMAL a crash could
 *   roll back the last blocks, and the next append would reuse those tx IDs for other txs and
 *   sign a checkpoint inconsistent with one already published (a fork). Batching (one commit
 *   per block of ~500 txs) makes the fsync cost negligible.
 * - `locking_mode = EXCLUSIVE`: one process owns the ledger file (a second one fails at open
 *   with UNAVAILABLE instead of interleaving appends); WAL then needs no shared memory.
 */
import Database from 'better-sqlite3';
import { DivsError, fail, type ErrorCode } from '../../../protocol/src/errors.ts';

export type Db = Database.Database;
export type Stmt = Database.Statement;

function sqliteCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

/** Maps a SQLite failure to a DIVS code (DivsErrors pass through). */
export function sqliteError(e: unknown, what: string, fallback: ErrorCode = 'UNAVAILABLE'): DivsError {
  if (e instanceof DivsError) return e;
  const code = sqliteCode(e) ?? '';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return new DivsError('UNAVAILABLE', `${what}: the ledger database is in use by another process`, { cause: e });
  if (code.startsWith('SQLITE_NOTADB') || code.startsWith('SQLITE_CORRUPT')) return new DivsError('LEDGER_CORRUPT', `${what}: the ledger file is not a readable database`, { cause: e });
  if (code.startsWith('SQLITE_CANTOPEN')) return new DivsError('CONFIG_INVALID', `${what}: cannot open the ledger file`, { cause: e });
  return new DivsError(fallback, `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

/** Prepares a statement (the ledger prepares each once and keeps it for its lifetime). */
export function prepare(db: Db, sql: string): Stmt {
  return db.prepare(sql);
}

/**
 * Opens (creating if missing) a ledger database with WAL, synchronous=FULL and an exclusive
 * lock, and takes the lock now so a second process fails here.
 */
export function openDatabase(path: string): Db {
  let db: Db | undefined;
  try {
    db = new Database(path, { timeout: 0 });
  } catch (e) {
    // e.g. the directory does not exist or is not writable: a configuration problem
    const mapped = sqliteError(e, 'ledger open', 'CONFIG_INVALID');
    throw mapped.code === 'UNAVAILABLE' || mapped.code === 'LEDGER_CORRUPT' ? mapped : new DivsError('CONFIG_INVALID', `cannot open the ledger file ${path}`, { cause: e });
  }
  try {
    db.exec('PRAGMA locking_mode = EXCLUSIVE');
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA synchronous = FULL');
    db.exec('PRAGMA foreign_keys = OFF');
    // ~64 MiB of page cache: the tree's right edge and the SMT's top levels stay hot
    db.exec('PRAGMA cache_size = -65536');
    const mode = prepare(db, 'PRAGMA journal_mode').pluck().get();
    if (mode !== 'wal') fail('CONFIG_INVALID', `ledger database: cannot enable WAL (journal_mode is ${String(mode)})`);
    // first read: takes the exclusive lock (and fails if the file is not a database)
    prepare(db, 'SELECT count(*) FROM sqlite_master').get();
    return db;
  } catch (e) {
    try {
      db?.close();
    } catch {
      // already failing; the original error is what matters
    }
    throw sqliteError(e, 'ledger open', 'LEDGER_CORRUPT');
  }
}
