import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
const blob = Buffer.alloc(680, 7); const h = Buffer.alloc(32, 1);
for (const variant of ['norowid-4k', 'norowid-16k', 'rowid-4k', 'rowid-16k']) {
  const path = '/tmp/gwp/probe.db';
  rmSync(path, { force: true }); rmSync(path + '-wal', { force: true });
  const db = new Database(path);
  db.pragma(`page_size = ${variant.endsWith('16k') ? 16384 : 4096}`);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  if (variant.startsWith('norowid')) db.exec('CREATE TABLE r (ue INTEGER NOT NULL, seq INTEGER NOT NULL, arrival INTEGER, ch INTEGER, ct TEXT, ts INTEGER, late INTEGER, hash BLOB, rec BLOB NOT NULL, PRIMARY KEY (ue, seq)) WITHOUT ROWID');
  else db.exec('CREATE TABLE r (id INTEGER PRIMARY KEY, ue INTEGER NOT NULL, seq INTEGER NOT NULL, arrival INTEGER, ch INTEGER, ct TEXT, ts INTEGER, late INTEGER, hash BLOB, rec BLOB NOT NULL); CREATE UNIQUE INDEX r_ue_seq ON r(ue, seq)');
  const ins = variant.startsWith('norowid') ? db.prepare('INSERT INTO r VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING') : db.prepare('INSERT INTO r (ue,seq,arrival,ch,ct,ts,late,hash,rec) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING');
  const UES = 1000; const N = 200_000;
  const tx = db.transaction((a: number, b: number) => { for (let i = a; i < b; i++) ins.run(i % UES, Math.floor(i / UES) + 1, i, 1, 'application/json', 1700000000000 + i, 0, h, blob); });
  const c0 = process.cpuUsage(); let t = performance.now();
  for (let i = 0; i < N; i += 2000) tx(i, i + 2000);
  const c = process.cpuUsage(c0);
  console.log(variant, 'insert/s wall', Math.round(N / ((performance.now() - t) / 1000)), 'cpu', Math.round(N / ((c.user + c.system) / 1e6)));
  const sel = db.prepare('SELECT seq, rec FROM r WHERE ue = ? AND seq >= ? ORDER BY seq LIMIT 5000').raw(true);
  t = performance.now(); const c1 = process.cpuUsage(); let n = 0;
  for (let u = 0; u < UES; u++) for (const row of sel.all(u, 0)) { n++; void row; }
  const c2 = process.cpuUsage(c1);
  console.log(variant, 'read rows/s wall', Math.round(n / ((performance.now() - t) / 1000)), 'cpu', Math.round(n / ((c2.user + c2.system) / 1e6)));
  db.close();
}
