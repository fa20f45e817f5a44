/**
 * The consortium ledger's etcd client (`as-node/src/ledger/consortium/etcd.ts`) over etcd's
 * native gRPC API, against a real 3-member etcd cluster: every operation the ledger uses,
 * watch ordering and backpressure, values far above grpc-js's 4 MiB default, etcd's request
 * size limit, compaction, failover between members, loss of the quorum and close().
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { DivsError } from '../../protocol/src/errors.ts';
import { EtcdClient, prefixEnd, type WatchEvent } from '../../as-node/src/ledger/consortium/etcd.ts';
import { EtcdCluster } from '../../as-node/src/ledger/consortium/etcd-cluster.ts';
import { describeEtcd } from './helpers.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** The DivsError a promise rejects with (fails the test when it resolves or rejects otherwise). */
async function refusal(p: Promise<unknown>): Promise<DivsError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(DivsError);
  return e as DivsError;
}

/** Resolves once `cond()` holds (polls every 10 ms), or fails after `ms`. */
async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('etcd client: options and arguments', () => {
  it('[FW-BC] refuses malformed endpoints and timeouts with CONFIG_INVALID, connecting to nothing', () => {
    for (const endpoints of [[], ['127.0.0.1:2379'], ['grpc://127.0.0.1:2379'], ['http://127.0.0.1:2379/v3'], ['http://u:p@127.0.0.1:2379'], ['http://127.0.0.1:99999'], [42]]) {
      expect(() => new EtcdClient({ endpoints: endpoints as string[] }), JSON.stringify(endpoints)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    }
    expect(() => new EtcdClient({ endpoints: ['http://127.0.0.1:2379'], requestTimeoutMs: 0 })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(() => new EtcdClient({ endpoints: ['http://127.0.0.1:2379'], attemptTimeoutMs: 1.5 })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    // TLS endpoints are accepted (system roots); nothing connects before the first call
    new EtcdClient({ endpoints: ['https://etcd.example:2379', 'http://[::1]:2379', 'http://localhost'] }).close();
  });

  it('[FW-BC] refuses bad keys, values and revisions with INVALID_ARGUMENT before any call', async () => {
    const c = new EtcdClient({ endpoints: ['http://127.0.0.1:1'] });
    try {
      for (const p of [
        c.range(''),
        c.range('k\u0100'),
        c.range('k', { limit: -1 }),
        c.range('k', { rangeEnd: '' }),
        c.put('k', 'v' as unknown as Uint8Array),
        c.putIfAbsent('k', bytes('v'), [{ key: '' }]),
        c.deleteIfUnchanged('k', 0),
        c.compact(1.5),
      ]) {
        expect((await refusal(p)).code).toBe('INVALID_ARGUMENT');
      }
      expect(() => c.watch('', 0, { onEvents: () => {}, onCompacted: () => {} })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      expect(() => c.watch('/p/', -1, { onEvents: () => {}, onCompacted: () => {} })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    } finally {
      c.close();
    }
  });
});

describeEtcd('etcd client over gRPC against a real 3-member cluster', () => {
  let cluster: EtcdCluster;
  let etcd: EtcdClient;
  const clients: EtcdClient[] = [];
  const client = (o: { requestTimeoutMs?: number; attemptTimeoutMs?: number; endpoints?: string[] } = {}): EtcdClient => {
    const c = new EtcdClient({ endpoints: cluster.endpoints, requestTimeoutMs: 4000, attemptTimeoutMs: 1500, ...o });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    cluster = await EtcdCluster.start({ members: 3 });
    etcd = client();
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  it('[FW-BC] range: one key, [key, rangeEnd), limit with more, keysOnly, serializable; keys are byte strings', async () => {
    const p = '/t/range/';
    const keys = ['a', 'b', 'c', '\u00ff\u0000x'].map((k) => p + k);
    for (const k of keys) await etcd.put(k, bytes(`value of ${k}`));
    const one = await etcd.range(`${p}b`);
    expect(one.kvs.map((kv) => [kv.key, text(kv.value)])).toEqual([[`${p}b`, `value of ${p}b`]]);
    expect(one.kvs[0]?.version).toBe(1);
    expect(one.kvs[0]?.createRevision).toBe(one.kvs[0]?.modRevision);
    expect(one.revision).toBeGreaterThanOrEqual(one.kvs[0]?.modRevision as number);

    const all = await etcd.range(p, { rangeEnd: prefixEnd(p) });
    expect(all.kvs.map((kv) => kv.key)).toEqual(keys); // sorted by key bytes; 0xff last
    expect(all.more).toBe(false);
    expect(text((all.kvs[3] as { value: Uint8Array }).value)).toBe(`value of ${keys[3]}`);

    const two = await etcd.range(p, { rangeEnd: prefixEnd(p), limit: 2 });
    expect(two.kvs.map((kv) => kv.key)).toEqual(keys.slice(0, 2));
    expect(two.more).toBe(true);

    const ko = await etcd.range(p, { rangeEnd: prefixEnd(p), keysOnly: true });
    expect(ko.kvs.map((kv) => kv.key)).toEqual(keys);
    expect(ko.kvs.every((kv) => kv.value.byteLength === 0 && kv.modRevision > 0)).toBe(true);

    const local = await etcd.range(p, { rangeEnd: `${p}c`, serializable: true });
    expect(local.kvs.map((kv) => kv.key)).toEqual(keys.slice(0, 2));

    expect((await etcd.range(`${p}none`)).kvs).toEqual([]);
    expect(await etcd.revision()).toBeGreaterThanOrEqual(all.revision);
  });

  it('[FW-BC] putIfAbsent: one creator; a loser gets the value there; its own value again counts as created', async () => {
    const k = '/t/pia/block';
    const first = await etcd.putIfAbsent(k, bytes('one'));
    expect(first.created).toBe(true);
    const lost = await etcd.putIfAbsent(k, bytes('two'));
    expect(lost.created).toBe(false);
    if (lost.created) return;
    expect(text(lost.existing?.value as Uint8Array)).toBe('one');
    expect(lost.existing?.modRevision).toBe(first.revision);
    expect(lost.revision).toBeGreaterThanOrEqual(first.revision);
    // a retried attempt that finds its own value (the first attempt committed after all)
    expect(await etcd.putIfAbsent(k, bytes('one'))).toEqual({ created: true, revision: first.revision });

    // a real race between two clients on other channels: Raft picks exactly one
    const other = client();
    const rk = '/t/pia/race';
    const [a, b] = await Promise.all([etcd.putIfAbsent(rk, bytes('a')), other.putIfAbsent(rk, bytes('b'))]);
    expect([a.created, b.created].sort()).toEqual([false, true]);
    const winner = a.created ? 'a' : 'b';
    const loser = a.created ? b : a;
    if (!loser.created) expect(text(loser.existing?.value as Uint8Array)).toBe(winner);
  });

  it('[FW-BC] putIfAbsent deletes the alsoDelete ranges in the same transaction, and only when it creates', async () => {
    const p = '/t/prune/';
    for (const k of ['old/1', 'old/2', 'old/3', 'keep', 'single']) await etcd.put(p + k, bytes(k));
    const r = await etcd.putIfAbsent(`${p}new`, bytes('new'), [{ key: `${p}old/`, rangeEnd: `${p}old/3` }, { key: `${p}single` }]);
    expect(r.created).toBe(true);
    const left = await etcd.range(p, { rangeEnd: prefixEnd(p) });
    expect(left.kvs.map((kv) => kv.key.slice(p.length))).toEqual(['keep', 'new', 'old/3']);
    // every surviving key and the new one were written at or before the transaction
    expect(left.kvs.every((kv) => kv.modRevision <= r.revision)).toBe(true);

    const lost = await etcd.putIfAbsent(`${p}new`, bytes('other'), [{ key: `${p}keep` }]);
    expect(lost.created).toBe(false);
    expect((await etcd.range(`${p}keep`)).kvs).toHaveLength(1);
  });

  it('[FW-BC] put and deleteIfUnchanged: deletes only the version that was read', async () => {
    const k = '/t/del/k';
    const r1 = await etcd.put(k, bytes('v1'));
    const r2 = await etcd.put(k, bytes('v2'));
    expect(r2).toBeGreaterThan(r1);
    const kv = (await etcd.range(k)).kvs[0];
    expect(kv?.version).toBe(2);
    expect(kv?.modRevision).toBe(r2);
    expect(await etcd.deleteIfUnchanged(k, r1)).toBe(false);
    expect((await etcd.range(k)).kvs).toHaveLength(1);
    expect(await etcd.deleteIfUnchanged(k, r2)).toBe(true);
    expect((await etcd.range(k)).kvs).toHaveLength(0);
    expect(await etcd.deleteIfUnchanged(k, r2)).toBe(false);
  });

  it('[FW-BC] a watch delivers history and live puts and deletes in revision order, one awaited batch at a time', async () => {
    const p = '/t/watch/';
    const from = (await etcd.revision()) + 1;
    const expected: string[] = [];
    const write = async (i: number): Promise<void> => {
      if (i % 4 === 3) {
        await etcd.deleteIfUnchanged(`${p}${i - 1}`, (await etcd.range(`${p}${i - 1}`)).kvs[0]?.modRevision as number);
        expected.push(`delete ${p}${i - 1}`);
      } else {
        await etcd.put(`${p}${i}`, bytes(`v${i}`));
        expected.push(`put ${p}${i} v${i}`);
      }
    };
    for (let i = 0; i < 8; i++) await write(i); // history: before the watch starts
    await etcd.put('/t/other', bytes('outside the prefix'));

    const seen: string[] = [];
    const revisions: number[] = [];
    let active = 0;
    let overlap = false;
    const w = etcd.watch(p, from, {
      onEvents: async (events: WatchEvent[]) => {
        if (active++ > 0) overlap = true;
        // a slow consumer: the next batch must wait for this one
        await sleep(15);
        for (const e of events) {
          seen.push(e.type === 'put' ? `put ${e.kv.key} ${text(e.kv.value)}` : `delete ${e.kv.key}`);
          revisions.push(e.kv.modRevision);
        }
        active--;
      },
      onCompacted: () => {
        throw new Error('not compacted');
      },
    });
    for (let i = 8; i < 20; i++) await write(i); // live, while the handler is slow
    await until(() => seen.length === expected.length);
    w.close();
    await w.done;
    expect(seen).toEqual(expected);
    expect(overlap).toBe(false);
    expect(revisions.every((r, i) => i === 0 || r > (revisions[i - 1] as number))).toBe(true);
    expect(revisions[0]).toBeGreaterThanOrEqual(from);
  });

  it('[FW-BC] a ~20 MiB value round-trips (above grpc-js\'s 4 MiB default), as a read and as a watch event', async () => {
    const k = '/t/big/value';
    const big = randomBytes(20 * 1024 * 1024);
    // 20 MiB through Raft into three WALs takes ~1 s alone, several with other suites running
    const slow = client({ requestTimeoutMs: 30_000, attemptTimeoutMs: 15_000 });
    const from = (await etcd.revision()) + 1;
    let watched: Uint8Array | undefined;
    const w = etcd.watch('/t/big/', from, { onEvents: (evs) => void (watched = evs[0]?.kv.value), onCompacted: () => {} });
    const r = await slow.putIfAbsent(k, big);
    expect(r.created).toBe(true);
    const got = (await slow.range(k)).kvs[0];
    expect(got?.value.byteLength).toBe(big.byteLength);
    expect(Buffer.compare(got?.value as Uint8Array, big)).toBe(0);
    await until(() => watched !== undefined);
    expect(Buffer.compare(watched as Uint8Array, big)).toBe(0);
    w.close();
    await w.done;
    // a retried put of the same big value finds its own
    expect((await slow.putIfAbsent(k, big)).created).toBe(true);
    expect(await slow.deleteIfUnchanged(k, got?.modRevision as number)).toBe(true);
  });

  it('[FW-BC] values over etcd\'s --max-request-bytes (32 MiB) are MESSAGE_TOO_LARGE, not retried as outages', async () => {
    // a refusal, not an outage: it comes back at once, far before the call's deadline
    const slow = client({ requestTimeoutMs: 30_000, attemptTimeoutMs: 15_000 });
    const t0 = Date.now();
    // just over the limit: etcd's own check ("request is too large")
    const e1 = await refusal(slow.putIfAbsent('/t/big/too-large', new Uint8Array(32 * 1024 * 1024)));
    expect(e1.code).toBe('MESSAGE_TOO_LARGE');
    // far over it: etcd's gRPC server refuses the message itself
    const e2 = await refusal(slow.put('/t/big/too-large', new Uint8Array(40 * 1024 * 1024)));
    expect(e2.code).toBe('MESSAGE_TOO_LARGE');
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect((await etcd.range('/t/big/too-large')).kvs).toHaveLength(0);
  });

  it('[FW-BC] compaction: a watch from a compacted revision gets onCompacted and ends; compacting again is INVALID_RANGE', async () => {
    const k = '/t/compact/k';
    const r1 = await etcd.put(k, bytes('1'));
    const r2 = await etcd.put(k, bytes('2'));
    await etcd.compact(r2);
    let compacted = 0;
    const events: WatchEvent[] = [];
    const w = etcd.watch('/t/compact/', r1, { onEvents: (e) => void events.push(...e), onCompacted: (r) => void (compacted = r) });
    await w.done; // ends by itself
    expect(compacted).toBe(r2);
    expect(events).toEqual([]);
    expect((await refusal(etcd.compact(r1))).code).toBe('INVALID_RANGE');
    // from the compaction revision on, the history is still there
    const seen: number[] = [];
    const w2 = etcd.watch('/t/compact/', r2, { onEvents: (e) => void seen.push(...e.map((x) => x.kv.modRevision)), onCompacted: () => {} });
    await until(() => seen.length === 1);
    expect(seen).toEqual([r2]);
    w2.close();
    await w2.done;
  });

  it('[FW-BC] close() cancels calls in flight, ends watches and refuses new calls with ORDERING_UNAVAILABLE', async () => {
    const c = client();
    await c.put('/t/close/k', bytes('v'));
    const w = c.watch('/t/close/', 0, { onEvents: () => {}, onCompacted: () => {} });
    const pending = c.range('/t/close/k');
    c.close();
    const e = await refusal(pending);
    expect(e.code).toBe('ORDERING_UNAVAILABLE');
    expect(e.message).toBe('etcd client closed');
    await w.done;
    expect((await refusal(c.put('/t/close/k', bytes('v')))).message).toBe('etcd client closed');
    c.close(); // idempotent
  });

  it('[FW-BC] failover: with one member of three stopped calls succeed and a watch moves on; without a quorum, ORDERING_UNAVAILABLE within the deadline', async () => {
    // member 0 first: the client starts there, and a watch sits on it
    const c = client({ requestTimeoutMs: 6000, attemptTimeoutMs: 2500 });
    // for the refusals: a short deadline, measured
    const quick = client({ requestTimeoutMs: 1500, attemptTimeoutMs: 700 });
    const p = '/t/failover/';
    await c.put(`${p}before`, bytes('0'));
    const seen: string[] = [];
    const errors: DivsError[] = [];
    const w = c.watch(p, (await c.revision()) + 1, {
      onEvents: (evs) => void seen.push(...evs.map((e) => e.kv.key.slice(p.length))),
      onCompacted: () => {},
      onError: (e) => void errors.push(e),
    });
    await c.put(`${p}a`, bytes('a'));
    await until(() => seen.length === 1);

    await cluster.stopMember(0);
    await c.put(`${p}b`, bytes('b'));
    expect((await c.range(`${p}b`)).kvs).toHaveLength(1);
    expect((await c.putIfAbsent(`${p}c`, bytes('c'))).created).toBe(true);
    await until(() => seen.length === 3);
    expect(seen).toEqual(['a', 'b', 'c']); // resumed after the last delivered revision: no gap, no repeat
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((e) => e.code === 'ORDERING_UNAVAILABLE')).toBe(true);

    // two of three stopped: no quorum; a local (serializable) read still answers
    await cluster.stopMember(1);
    let t0 = Date.now();
    const e1 = await refusal(quick.put(`${p}d`, bytes('d')));
    expect(e1.code).toBe('ORDERING_UNAVAILABLE');
    expect(e1.message).toMatch(/unreachable or has lost its quorum/);
    expect(Date.now() - t0).toBeLessThan(1500 + 1000);
    expect((await quick.range(`${p}c`, { serializable: true })).kvs).toHaveLength(1);

    await cluster.stopMember(2);
    t0 = Date.now();
    const e2 = await refusal(quick.range(`${p}c`, { serializable: true }));
    expect(e2.code).toBe('ORDERING_UNAVAILABLE');
    expect(e2.message).toMatch(/unreachable or has lost its quorum/);
    expect(Date.now() - t0).toBeLessThan(1500 + 1000);
    w.close();
    await w.done;
  });
});
