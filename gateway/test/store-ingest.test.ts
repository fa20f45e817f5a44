/**
 * The record store (idempotency, forks kept as evidence, arrival order, summaries, reopen,
 * rollback) and ingest checks with their error codes, over the in-process HTTP app too.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordBody, SignedRecord } from '../../proto/gen/divs/v1/common.ts';
import { AckStatus, IngestResponse } from '../../proto/gen/divs/v1/gateway.ts';
import { sha256 } from '../../protocol/src/bytes.ts';
import { silentLogger } from '../../platform/src/log.ts';
import { RecordStore, StoreReader, StoreView } from '../src/store.ts';
import { StoreWriter, packItems, unpackItems } from '../src/writer.ts';
import { RecordSigner } from '../../ue/src/records.ts';
import { IngestWriter, Ingestor, RecordParser, decodeIngestRequest, encodeIngestRequest, encodeIngestResponse, type Parsed } from '../src/ingest.ts';
import fc from 'fast-check';
import { GatewayAuth } from '../src/auth.ts';
import { createHttpApp } from '../src/http.ts';
import { encodeRecords, fixtureUes, reading, type FixtureUe } from './fixtures.ts';
import { expectCode, tempDir, writeCa } from './helpers.ts';
import * as grpc from '@grpc/grpc-js';
import { fromServiceError } from '../../platform/src/grpc.ts';
import { startGateway, type Gateway } from '../src/main.ts';
import { IngestClient } from '../src/client.ts';

let ues: FixtureUe[];
beforeAll(async () => {
  ues = await fixtureUes(3, 'store-ingest');
});

const parser = new RecordParser();
const items = (channel: string, recs: SignedRecord[]) =>
  parser.parse(channel, encodeRecords(recs)).map((p) => {
    if (!p.ok) throw new Error(`${p.code}: ${p.message}`);
    return p.item;
  });

describe('record store', () => {
  let dir: string;
  let store: RecordStore;
  beforeAll(() => {
    dir = tempDir('store');
    store = RecordStore.open({ path: join(dir, 'records.db') });
  });
  afterAll(() => store.close());

  it('[E2E-2] stores a record once: the same record again is a duplicate, another one with its sequence a fork kept as evidence', async () => {
    const u = ues[0] as FixtureUe;
    const recs = [await u.signer.sign(reading(1), 'application/json'), await u.signer.sign(reading(2), 'application/json')];
    expect(store.append(items('a', recs)).map((o) => o.status)).toEqual(['stored', 'stored']);
    expect(store.append(items('a', recs)).map((o) => o.status)).toEqual(['duplicate', 'duplicate']);
    const body = RecordBody.decode((recs[1] as SignedRecord).body);
    const other = SignedRecord.fromPartial({ body: RecordBody.encode({ ...body, payload: reading(99) }).finish(), signature: new Uint8Array([1, 2]) });
    const [fork] = store.append(items('a', [other]));
    expect(fork?.status).toBe('fork');
    expect(fork?.status === 'fork' && Buffer.from(fork.existingHash).equals(Buffer.from(sha256((recs[1] as SignedRecord).body)))).toBe(true);
    expect(store.count()).toBe(2);
    const ids = store.selectionUes({ channel: 'a' });
    expect(store.forkCount(ids.map((x) => x.ue))).toBe(1);
  });

  it('[VER-3] flags a record that arrives after a higher sequence number (reordered in transit)', async () => {
    const u = ues[1] as FixtureUe;
    const [r1, r2, r3] = [await u.signer.sign(reading(1), 'application/json'), await u.signer.sign(reading(2), 'application/json'), await u.signer.sign(reading(3), 'application/json')];
    store.append(items('b', [r1, r3] as SignedRecord[]));
    store.append(items('b', [r2] as SignedRecord[]));
    const key = `${u.identity.imei}|${u.identity.iccid}|${u.identity.eid}|${u.identity.msisdn}`;
    expect([1, 2, 3].map((s) => store.get(key, s)?.late)).toEqual([false, true, false]);
    expect(store.lastSequence(key)).toBe(3);
  });

  it('[SC2-1] summarises a selection per UE without reading records, and lists the endorsements used', () => {
    const [a] = store.selectionUes({ channel: 'b' });
    expect(a).toMatchObject({ count: 3, firstSequence: 1, lastSequence: 3, chainFirst: 1, chainLast: 3 });
    expect(a?.firstTimestampMs).toBeLessThanOrEqual(a?.lastTimestampMs ?? 0);
    expect(store.selectionUes({ channel: 'b', contentTypes: ['text/plain'] })).toEqual([]);
    expect(store.selectionUes({ channel: 'nope' })).toEqual([]);
    const refs = store.refsOfUes([a?.ue as number]);
    expect(refs).toEqual([{ ledgerId: 'divs-test', txId: (ues[1] as FixtureUe).tx.txId, asUrls: ['grpc://127.0.0.1:1'], count: 3 }]);
  });

  it('[E2E-2] keeps everything across a reopen, and workers read it read-only', () => {
    store.close();
    store = RecordStore.open({ path: join(dir, 'records.db') });
    expect(store.count()).toBe(5);
    const again = store.append(items('b', [])).length;
    expect(again).toBe(0);
    const reader = new StoreReader(join(dir, 'records.db'));
    const [u] = store.selectionUes({ channel: 'b' });
    expect(reader.slice(u?.ue as number, 1, 3).map((r) => r.late)).toEqual([false, true, false]);
    reader.close();
  });

  it('[E2E-2] stores nothing of a group when the write fails (STORAGE_FAILED), and nothing is acknowledged', async () => {
    const s2 = RecordStore.open({ path: join(dir, 'other.db') });
    const recs = items('c', [await (ues[2] as FixtureUe).signer.sign(reading(1), 'application/json')]);
    s2.close();
    await expectCode(() => s2.append(recs), 'STORAGE_FAILED');
    const writer = new IngestWriter(s2);
    await expectCode(writer.submit(recs), 'STORAGE_FAILED');
    // a path under a regular file cannot be a database
    writeFileSync(join(dir, 'plain-file'), 'x');
    await expectCode(() => RecordStore.open({ path: join(dir, 'plain-file', 'sub', 'records.db') }), 'STORAGE_FAILED');
  });
});

describe('store writer thread', () => {
  it('[E2E-2] stores groups on its own thread with the same outcomes; a main-thread view reads what it committed', async () => {
    const path = join(tempDir('writer'), 'records.db');
    const w = await StoreWriter.start({ path, durability: 'normal' });
    try {
      const u = ues[0] as FixtureUe;
      const s2 = await RecordSigner.open({ identity: u.identity, keystore: u.keystore, alias: u.alias });
      await s2.updateEndorsement(u.tx, 1);
      const recs = items('w', await s2.signBatch([reading(1), reading(2), reading(3)], 'application/json'));
      expect(unpackItems(packItems(recs)).map((x) => [x.ueKey, x.sequence, x.channel, x.contentType, x.ledgerId, x.txId, x.asUrls, Buffer.from(x.record).toString('hex')])).toEqual(
        recs.map((x) => [x.ueKey, x.sequence, x.channel, x.contentType, x.ledgerId, x.txId, [...x.asUrls], Buffer.from(x.record).toString('hex')]),
      );
      expect((await w.append(recs)).map((o) => o.status)).toEqual(['stored', 'stored', 'stored']);
      const other = await RecordSigner.open({ identity: u.identity, keystore: u.keystore, alias: u.alias });
      await other.updateEndorsement(u.tx, 1);
      const fork = items('w', [await other.sign(reading(9), 'application/json')]);
      const out = await w.append([...recs.slice(0, 1), ...fork]);
      expect(out.map((o) => o.status)).toEqual(['duplicate', 'fork']);
      expect(out[1]?.status === 'fork' && out[1].existingHash.length).toBe(32);
      const view = StoreView.open(path);
      expect(view.count()).toBe(3);
      expect(view.lastSequence(recs[0]?.ueKey as string)).toBe(3);
      view.close();
    } finally {
      await w.close();
    }
    const late = items('w', [await (ues[1] as FixtureUe).signer.sign(reading(5), 'application/json')]);
    await expectCode(w.append(late), 'UNAVAILABLE');
    // a path under a regular file cannot be a database: the writer reports it and never starts
    const bad = tempDir('writer-bad');
    writeFileSync(join(bad, 'plain'), 'x');
    await expectCode(StoreWriter.start({ path: join(bad, 'plain', 'records.db') }), 'STORAGE_FAILED');
  });
});

describe('ingest checks', () => {
  const codeOf = (p: Parsed): string => (p.ok ? 'OK' : p.code);
  const one = (rec: Uint8Array): string => codeOf(parser.parse('x', [rec])[0] as Parsed);

  it('[VER-1] refuses records that cannot be verified, each with its code', async () => {
    const u = ues[2] as FixtureUe;
    const good = await u.signer.sign(reading(1), 'application/json', Date.now());
    const body = RecordBody.decode(good.body);
    const withBody = (b: Partial<RecordBody>) => SignedRecord.encode({ ...good, body: RecordBody.encode({ ...body, ...b }).finish() }).finish();
    expect(one(SignedRecord.encode(good).finish())).toBe('OK');
    expect(one(new Uint8Array([0xff, 0x01]))).toBe('MALFORMED_MESSAGE');
    expect(one(SignedRecord.encode({ ...good, signature: new Uint8Array(0) }).finish())).toBe('MISSING_FIELD');
    expect(one(SignedRecord.encode({ ...good, body: new Uint8Array([0x10]) }).finish())).toBe('MALFORMED_MESSAGE');
    expect(one(withBody({ sequence: 0 }))).toBe('INVALID_ARGUMENT');
    expect(one(withBody({ previousHash: new Uint8Array(31) }))).toBe('MALFORMED_MESSAGE');
    expect(one(withBody({ identity: { ...u.identity, imei: '123456789012345' } }))).toBe('INVALID_IMEI');
    expect(one(withBody({ identity: undefined }))).toBe('IDENTITY_INCOMPLETE');
    expect(one(withBody({ contentType: 'not a type' }))).toBe('INVALID_ARGUMENT');
    expect(one(withBody({ endorsement: undefined }))).toBe('MISSING_FIELD');
    expect(one(withBody({ endorsement: { ...u.tx, entryAddress: { ledgerId: 'l', asUrls: [] } } }))).toBe('INVALID_ARGUMENT');
    expect(one(withBody({ timestampMs: -5 }))).toBe('INVALID_ARGUMENT');
    expect(one(SignedRecord.encode({ ...good, batch: { index: 3, size: 2, path: [], root: new Uint8Array(32) } }).finish())).toBe('MALFORMED_MESSAGE');
    const small = new RecordParser({ maxRecordBytes: 300 });
    expect(codeOf(small.parse('x', [SignedRecord.encode({ ...good, body: RecordBody.encode({ ...body, payload: new Uint8Array(400) }).finish() }).finish()])[0] as Parsed)).toBe('MESSAGE_TOO_LARGE');
    const rejected = parser.parse('x', [withBody({ sequence: 0 })])[0] as Parsed;
    expect(!rejected.ok && rejected.hash?.length).toBe(32);
  });

  it('[VER-1] decodes frames without copying records; refuses malformed frames (MALFORMED_MESSAGE)', async () => {
    const recs = encodeRecords([await (ues[2] as FixtureUe).signer.sign(reading(2), 'application/json')]);
    const frame = encodeIngestRequest({ channel: 'meters', frameId: 300, records: [...recs, ...recs] });
    const back = decodeIngestRequest(frame);
    expect(back.channel).toBe('meters');
    expect(back.frameId).toBe(300);
    expect(back.records).toHaveLength(2);
    expect(back.records[0]?.buffer).toBe(frame.buffer);
    for (const bad of [[0x12, 0x05, 1], [0x18], [0x0b], [0x00]]) await expectCode(() => decodeIngestRequest(new Uint8Array(bad)), 'MALFORMED_MESSAGE');
  });
});

describe('ack encoding', () => {
  it('[VER-1] encodes responses byte for byte as the generated encoder does', () => {
    fc.assert(
      fc.property(
        fc.nat(),
        fc.array(fc.record({ status: fc.integer({ min: 0, max: 3 }), sequence: fc.nat(), recordHash: fc.uint8Array({ maxLength: 40 }), errorCode: fc.string({ maxLength: 20 }), errorMessage: fc.string({ maxLength: 200 }) }), { maxLength: 20 }),
        (frameId, acks) => {
          const res = { frameId, acks: acks as IngestResponse['acks'] };
          expect(Buffer.from(encodeIngestResponse(res)).equals(Buffer.from(IngestResponse.encode(res).finish()))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('HTTP ingest', () => {
  let store: RecordStore;
  let app: ReturnType<typeof createHttpApp>;
  const token = 'ingest-token-0123456789';
  beforeAll(() => {
    store = RecordStore.open({ path: join(tempDir('http'), 'records.db'), durability: 'normal' });
    const ingestor = new Ingestor(new RecordParser(), new IngestWriter(store));
    app = createHttpApp({ ingestor, auth: new GatewayAuth({ consumers: [], ingestTokens: [token], anchors: [] }), log: silentLogger });
  });
  afterAll(() => store.close());
  const post = (body: string | Uint8Array<ArrayBuffer>, type: string, auth = `Bearer ${token}`) => app.request('/v1/records', { method: 'POST', headers: { 'content-type': type, authorization: auth }, body });

  it('[E2E-2] [VER-1] takes protobuf frames and answers protobuf acks', async () => {
    const recs = encodeRecords(await (ues[0] as FixtureUe).signer.signBatch([reading(1), reading(2)], 'application/json'));
    const res = await post(encodeIngestRequest({ channel: 'http', frameId: 9, records: recs }) as Uint8Array<ArrayBuffer>, 'application/x-protobuf');
    expect(res.status).toBe(200);
    const acks = IngestResponse.decode(new Uint8Array(await res.arrayBuffer()));
    expect(acks.frameId).toBe(9);
    expect(acks.acks.map((a) => a.status)).toEqual([AckStatus.ACK_STATUS_STORED, AckStatus.ACK_STATUS_STORED]);
  });

  it('[E2E-2] [VER-1] takes JSON frames (base64 fields, batch proofs) and answers JSON acks', async () => {
    const [a, b] = await (ues[1] as FixtureUe).signer.signBatch([reading(7), reading(8)], 'application/json');
    const b64 = (x: Uint8Array) => Buffer.from(x).toString('base64');
    const bp = (a as SignedRecord).batch as NonNullable<SignedRecord['batch']>;
    const res = await post(
      JSON.stringify({
        channel: 'http',
        records: [
          { body: b64((a as SignedRecord).body), signature: b64((a as SignedRecord).signature), batch: { index: bp.index, size: bp.size, path: bp.path.map(b64), root: b64(bp.root) } },
          { record: b64(SignedRecord.encode(b as SignedRecord).finish()) },
          { record: b64(new Uint8Array([1, 2, 3])) },
        ],
      }),
      'application/json',
    );
    expect(res.status).toBe(200);
    const j = (await res.json()) as { acks: { status: string; errorCode: string; recordHash: string }[] };
    expect(j.acks.map((x) => x.status)).toEqual(['STORED', 'STORED', 'REJECTED']);
    expect(j.acks[2]?.errorCode).toBe('MALFORMED_MESSAGE');
    expect(j.acks[0]?.recordHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('[FW-ACL] refuses bad requests with coded JSON errors', async () => {
    const err = async (res: Response) => ({ status: res.status, code: ((await res.json()) as { error: { code: string } }).error.code });
    expect(await err(await post('{', 'application/json'))).toEqual({ status: 400, code: 'MALFORMED_MESSAGE' });
    expect(await err(await post('{"records":[{"bogus":1}]}', 'application/json'))).toEqual({ status: 400, code: 'MALFORMED_MESSAGE' });
    expect(await err(await post('x', 'text/plain'))).toEqual({ status: 400, code: 'INVALID_ARGUMENT' });
    expect(await err(await post('{"records":[]}', 'application/json', ''))).toEqual({ status: 401, code: 'UNAUTHENTICATED' });
    expect(await err(await post('{"records":[]}', 'application/json', 'Bearer wrong-token-123456789'))).toEqual({ status: 403, code: 'PERMISSION_DENIED' });
    expect(await err(await post('{"channel":"bad channel","records":[]}', 'application/json'))).toEqual({ status: 400, code: 'INVALID_ARGUMENT' });
    expect((await app.request('/healthz')).status).toBe(200);
  });
});

describe('gRPC ingest stream', () => {
  let gw: Gateway;
  const token = 'stream-token-0123456789';
  beforeAll(async () => {
    const dir = tempDir('grpc-ingest');
    const ca = await writeCa(dir);
    gw = await startGateway(
      { dataDir: join(dir, 'gw'), pki: { enroll: { caCert: ca.certPath, caKey: ca.keyPath } }, verify: { threads: 0 }, httpPort: null, ingest: { tokens: [token], maxFrameRecords: 10 } },
      silentLogger,
    );
  });
  afterAll(async () => {
    await gw?.close();
  });

  /** Sends raw frames on one stream; resolves with the responses or rejects with the stream error. */
  function rawStream(frames: Uint8Array[], auth = `Bearer ${token}`): Promise<IngestResponse[]> {
    const client = new grpc.Client(gw.address, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    if (auth) md.set('authorization', auth);
    const call = client.makeBidiStreamRequest<Uint8Array, IngestResponse>('/divs.v1.IngestService/Ingest', (b) => Buffer.from(b), (b) => IngestResponse.decode(b), md);
    const out: IngestResponse[] = [];
    return new Promise<IngestResponse[]>((resolve, reject) => {
      call.on('data', (r: IngestResponse) => out.push(r));
      call.on('error', (e) => reject(fromServiceError(e)));
      call.on('end', () => resolve(out));
      for (const f of frames) call.write(f);
      call.end();
    }).finally(() => client.close());
  }

  it('[E2E-2] [FW-ACL] answers every frame in order; refuses malformed frames, oversized frames and missing credentials with codes', async () => {
    const recs = encodeRecords(await (ues[2] as FixtureUe).signer.signBatch([reading(1), reading(2), reading(3)], 'application/json'));
    const res = await rawStream([encodeIngestRequest({ channel: 's', frameId: 1, records: recs.slice(0, 2) }), encodeIngestRequest({ channel: 's', frameId: 2, records: recs.slice(2) })]);
    expect(res.map((r) => [r.frameId, r.acks.length])).toEqual([
      [1, 2],
      [2, 1],
    ]);
    await expectCode(rawStream([new Uint8Array([0x12, 0x7f])]), 'MALFORMED_MESSAGE');
    await expectCode(rawStream([encodeIngestRequest({ records: Array(11).fill(recs[0]) })]), 'BATCH_TOO_LARGE');
    await expectCode(rawStream([encodeIngestRequest({ records: recs })], ''), 'UNAUTHENTICATED');
    await expectCode(rawStream([encodeIngestRequest({ records: recs })], 'Bearer nope-nope-nope-nope'), 'PERMISSION_DENIED');
    const c = new IngestClient({ address: gw.address, token, channel: 's' });
    expect((await c.send(recs)).map((a) => a.status)).toEqual([AckStatus.ACK_STATUS_DUPLICATE, AckStatus.ACK_STATUS_DUPLICATE, AckStatus.ACK_STATUS_DUPLICATE]);
    c.close();
  });
});
