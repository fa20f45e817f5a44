/**
 * Unit tests of the gateway job parts that need no process: the usage policy, the output
 * contract (aggregation threshold, per-record outputs), the columnar builder and partitioner,
 * the job store, and attestation signing against consumer verification.
 */
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { JobState, JobStatement, type JobAttestation } from '../../proto/gen/divs/v1/jobs.ts';
import { sha256, utf8 } from '../../protocol/src/bytes.ts';
import { chainFromPem, createRootCa, issueCertificate, type CertificateAuthority } from '../../protocol/src/pki.ts';
import { importPrivateKey } from '../../protocol/src/suites.ts';
import { verifyAttestation } from '../../consumer/src/jobs.ts';
import { AttestationSigner } from '../src/jobs/attestation.ts';
import { MISSING_CODE, checkGroupBy, groupData, parsePayload, parseRows, partition, type VerifiedRow } from '../src/jobs/columns.ts';
import { checkGroupValue, resultBytes, scalarCount } from '../src/jobs/output.ts';
import { JobsConfigSchema, PolicyEngine, type SubmissionFacts } from '../src/jobs/policy.ts';
import { JobStore, type JobRecord } from '../src/jobs/store.ts';
import { expectCode, tempDir } from './helpers.ts';

const HASH_A = 'a'.repeat(64);
const HASH_B = 'b'.repeat(64);

function engine(policies: unknown[]): PolicyEngine {
  return new PolicyEngine(JobsConfigSchema.parse({ policies, defaultLimits: { memoryMb: 64, cpuMs: 5000, wallMs: 10_000, outputBytes: 65_536 } }));
}

const facts = (o: Partial<SubmissionFacts> = {}): SubmissionFacts => ({
  consumer: 'alice',
  datasetId: 'meters',
  codeHash: HASH_A,
  limits: {},
  transport: { tls: true, clientCertificate: false },
  activeJobs: 0,
  approvedCodeHashes: new Set(),
  ...o,
});

describe('usage policy', () => {
  it('[SC2-3] applies defaults capped by the policy maxima, and refuses limits above them (POLICY_LIMIT_EXCEEDED)', async () => {
    const p = engine([{ consumer: 'alice', maxLimits: { memoryMb: 32, cpuMs: 1000, wallMs: 60_000, outputBytes: 4096 }, maxOutputBytes: 2048, approval: { allowCodeHashes: [HASH_A] } }]);
    expect(p.decide(facts()).limits).toEqual({ memoryMb: 32, cpuMs: 1000, wallMs: 10_000, outputBytes: 2048 });
    expect(p.decide(facts({ limits: { wallMs: 60_000, cpuMs: 0 } })).limits).toMatchObject({ wallMs: 60_000, cpuMs: 1000 });
    await expectCode(() => p.decide(facts({ limits: { cpuMs: 1001 } })), 'POLICY_LIMIT_EXCEEDED');
    await expectCode(() => p.decide(facts({ limits: { outputBytes: 4096 } })), 'POLICY_LIMIT_EXCEEDED');
    await expectCode(() => p.decide(facts({ limits: { memoryMb: 4 } })), 'INVALID_ARGUMENT');
    await expectCode(() => p.decide(facts({ limits: { cpuMs: 1.5 } })), 'INVALID_ARGUMENT');
    await expectCode(() => p.decide(facts({ activeJobs: 4 })), 'POLICY_LIMIT_EXCEEDED');
  });

  it('[SC2-3] [FW-ACL] allows only the datasets it names; a consumer without a policy runs no jobs (POLICY_DATASET_DENIED)', async () => {
    const p = engine([{ consumer: 'alice', datasets: ['meters'], approval: { allowCodeHashes: [HASH_A] } }, { consumer: '*', datasets: ['*'], approval: { allowCodeHashes: [HASH_A] } }]);
    await expectCode(() => p.decide(facts({ datasetId: 'cars' })), 'POLICY_DATASET_DENIED');
    expect(p.decide(facts({ consumer: 'bob', datasetId: 'cars' })).approval).toBe('allow-list');
    const none = engine([{ consumer: 'alice' }]);
    await expectCode(() => none.decide(facts({ consumer: 'bob' })), 'POLICY_DATASET_DENIED');
    expect(() => engine([{ consumer: 'x' }, { consumer: 'x' }])).toThrowError(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(JobsConfigSchema.safeParse({ policies: [{ consumer: 'a', approval: { allowCodeHashes: ['nothex'] } }] }).success).toBe(false);
  });

  it('[SC2-3] code runs at once when allow-listed or approved before, waits when manual approval is on, else is refused (POLICY_CODE_NOT_APPROVED)', async () => {
    const manual = engine([{ consumer: 'alice', approval: { allowCodeHashes: [HASH_A.toUpperCase()], manual: true } }]);
    expect(manual.decide(facts()).approval).toBe('allow-list');
    expect(manual.decide(facts({ codeHash: HASH_B })).approval).toBe('manual');
    expect(manual.decide(facts({ codeHash: HASH_B, approvedCodeHashes: new Set([HASH_B]) })).approval).toBe('allow-list');
    const strict = engine([{ consumer: 'alice', approval: { allowCodeHashes: [HASH_A] } }]);
    await expectCode(() => strict.decide(facts({ codeHash: HASH_B })), 'POLICY_CODE_NOT_APPROVED');
  });

  it('[SEC-1] enforces the transport rule: TLS, or mTLS with the consumer\'s own client certificate (POLICY_TRANSPORT_REQUIRED)', async () => {
    const cases: [string, boolean, boolean, boolean][] = [
      // transport rule, gateway serves TLS, verified client certificate, accepted
      ['any', false, false, true],
      ['tls', false, false, false],
      ['tls', true, false, true],
      ['mtls', true, false, false],
      ['mtls', false, true, false],
      ['mtls', true, true, true],
    ];
    for (const [transport, tls, clientCertificate, ok] of cases) {
      const p = engine([{ consumer: 'alice', transport, approval: { allowCodeHashes: [HASH_A] } }]);
      const run = () => p.decide(facts({ transport: { tls, clientCertificate } }));
      if (ok) expect(run().approval).toBe('allow-list');
      else await expectCode(run, 'POLICY_TRANSPORT_REQUIRED');
    }
    // secure by default: an entry that says nothing requires TLS
    await expectCode(() => engine([{ consumer: 'alice', approval: { allowCodeHashes: [HASH_A] } }]).decide(facts({ transport: { tls: false, clientCertificate: false } })), 'POLICY_TRANSPORT_REQUIRED');
  });
});

describe('output contract', () => {
  it('[SC2-4] counts scalar values: numbers 1, strings and keys 1 per 8 characters, stopping at the budget', () => {
    expect(scalarCount(3)).toBe(1);
    expect(scalarCount('12345678')).toBe(1);
    expect(scalarCount('123456789')).toBe(2);
    expect(scalarCount({ mean: 1.5, n: 10 })).toBe(4);
    expect(scalarCount([])).toBe(1);
    expect(scalarCount({ weights: [1, 2, 3], n: 5, loss: 0.1 })).toBe(8);
    expect(scalarCount(new Array(1e6).fill(0), 100)).toBe(101);
    fc.assert(fc.property(fc.array(fc.double(), { maxLength: 200 }), (xs) => scalarCount(xs) === Math.max(1, xs.length)));
  });

  it('[SC2-4] [SEC-1] refuses a group value with a value per record or more, or over the policy size (OUTPUT_NOT_AGGREGATE)', async () => {
    expect(() => checkGroupValue({ mean: 2, n: 100 }, 100, { maxValuesPerGroup: 64 })).not.toThrow();
    await expectCode(() => checkGroupValue(Array.from({ length: 100 }, (_, i) => i), 100, { maxValuesPerGroup: 4096 }), 'OUTPUT_NOT_AGGREGATE');
    await expectCode(() => checkGroupValue({ rows: 'x'.repeat(800) }, 100, { maxValuesPerGroup: 4096 }), 'OUTPUT_NOT_AGGREGATE');
    await expectCode(() => checkGroupValue(Array.from({ length: 65 }, () => 0), 1000, { maxValuesPerGroup: 64 }), 'OUTPUT_NOT_AGGREGATE');
    // a small group cannot hide its records in a small value either
    await expectCode(() => checkGroupValue([1, 2, 3], 3, { maxValuesPerGroup: 64 }), 'OUTPUT_NOT_AGGREGATE');
    const doc = { jobId: 'j', datasetId: 'd', groupBy: [], groups: [{ key: {}, ues: 5, records: 50, value: 'y'.repeat(200) }], suppressedGroups: 0, unparsedRecords: 0 };
    await expectCode(() => resultBytes(doc, { maxOutputBytes: 100 }), 'JOB_OUTPUT_LIMIT');
    expect(JSON.parse(new TextDecoder().decode(resultBytes(doc, { maxOutputBytes: 1000 })))).toEqual(doc);
  });
});

const row = (ue: number, payload: unknown, ts = Date.UTC(2026, 0, 1, 10), contentType = 'application/json'): VerifiedRow => ({
  ue,
  hash: sha256(utf8(JSON.stringify([ue, payload, ts]))),
  timestampMs: ts,
  contentType,
  payload: typeof payload === 'string' ? utf8(payload) : payload instanceof Uint8Array ? payload : utf8(JSON.stringify(payload)),
});

describe('columnar data from verified records', () => {
  it('[SC2-4] treats payloads as hostile: only JSON objects of a JSON media type become rows', () => {
    expect(parsePayload('application/json', utf8('{"a":1}'))).toEqual({ a: 1 });
    expect(parsePayload('application/vnd.divs.meter-reading+json; charset=utf-8', utf8('{"a":1}'))).toEqual({ a: 1 });
    expect(parsePayload('application/octet-stream', utf8('{"a":1}'))).toBeNull();
    expect(parsePayload('application/json', utf8('[1,2]'))).toBeNull();
    expect(parsePayload('application/json', utf8('{"a":'))).toBeNull();
    expect(parsePayload('application/json', new Uint8Array([0x7b, 0xff, 0x7d]))).toBeNull();
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
      const v = parsePayload('application/json', b);
      return v === null || (typeof v === 'object' && !Array.isArray(v));
    }));
    const { parsed, unparsed } = parseRows([row(0, { a: 1 }), row(0, 'not json'), row(1, { a: 2 }, 0, 'text/plain')]);
    expect(parsed).toHaveLength(1);
    expect(unparsed).toBe(2);
  });

  it('[SC2-4] builds typed columns: numbers and booleans f64 (NaN missing), strings as dictionaries, nested fields skipped, _ts and _ue derived', () => {
    const rows = parseRows([
      row(4, { kwh: 1.5, ok: true, site: 'north', nested: { x: 1 }, _hidden: 1 }, 1000),
      row(9, { kwh: 2, ok: false, site: 'south' }, 2000),
      row(4, { site: 'north', extra: 7 }, 3000),
    ]).parsed;
    const [g] = partition(rows, [], 10);
    const data = groupData(g as never, { datasetId: 'd', groupBy: [] });
    const col = (n: string) => data.columns?.[n];
    expect(col('kwh')?.type).toBe('f64');
    expect(Array.from(col('kwh')?.buffer as Float64Array)).toEqual([1.5, 2, Number.NaN]);
    expect(Array.from(col('ok')?.buffer as Float64Array)).toEqual([1, 0, Number.NaN]);
    expect(col('site')?.type).toBe('u32');
    expect(Array.from(col('site')?.buffer as Uint32Array)).toEqual([0, 1, 0]);
    expect(Array.from(col('extra')?.buffer as Float64Array)).toEqual([Number.NaN, Number.NaN, 7]);
    expect(Array.from(col('_ts')?.buffer as Float64Array)).toEqual([1000, 2000, 3000]);
    expect(Array.from(col('_ue')?.buffer as Uint32Array)).toEqual([0, 1, 0]);
    expect(col('nested')).toBeUndefined();
    expect(col('_hidden')).toBeUndefined();
    const meta = data.meta as { dictionaries: Record<string, string[]>; skipped: Record<string, string>; group: { ues: number; records: number } };
    expect(meta.dictionaries.site).toEqual(['north', 'south']);
    expect(Object.keys(meta.skipped).sort()).toEqual(['_hidden', 'nested']);
    expect(meta.group).toMatchObject({ ues: 2, records: 3 });
    const withMissing = groupData(partition(parseRows([row(0, { s: 'a' }), row(1, { t: 1 })]).parsed, [], 10)[0] as never, { datasetId: 'd', groupBy: [] });
    expect(Array.from(withMissing.columns?.s?.buffer as Uint32Array)).toEqual([0, MISSING_CODE]);
  });

  it('[SC2-4] partitions by fields the gateway reads itself, counts distinct UEs per group, and gives each group only its own values', async () => {
    const rows = parseRows([
      row(0, { region: 'b', id: 'm0' }, Date.UTC(2026, 0, 1, 10)),
      row(1, { region: 'a', id: 'm1' }, Date.UTC(2026, 0, 1, 11)),
      row(1, { region: 'a', id: 'm1' }, Date.UTC(2026, 0, 1, 10)),
      row(2, { region: 'a', id: 'm2' }, Date.UTC(2026, 0, 2, 10)),
      row(3, { id: 'm3' }, Date.UTC(2026, 0, 2, 10)),
    ]).parsed;
    const byRegion = partition(rows, ['region'], 10);
    expect(byRegion.map((g) => [g.key.region, g.ues, g.rows.length])).toEqual([
      [null, 1, 1],
      ['a', 2, 3],
      ['b', 1, 1],
    ]);
    const a = groupData(byRegion[1] as never, { datasetId: 'd', groupBy: ['region'] });
    // no identifier of another group reaches this group's job
    expect((a.meta as { dictionaries: Record<string, string[]> }).dictionaries.id).toEqual(['m1', 'm2']);
    expect(partition(rows, ['_hour'], 10).map((g) => [g.key._hour, g.ues])).toEqual([
      [10, 4],
      [11, 1],
    ]);
    expect(partition(rows, ['_day', 'region'], 10)).toHaveLength(4);
    expect(partition([], ['region'], 10)).toEqual([{ key: { region: null }, rows: [], ues: 0 }]);
    await expectCode(() => partition(rows, ['id'], 3), 'OUTPUT_NOT_AGGREGATE');
    await expectCode(() => checkGroupBy(['_secret']), 'INVALID_ARGUMENT');
    await expectCode(() => checkGroupBy(['a', 'a']), 'INVALID_ARGUMENT');
    await expectCode(() => checkGroupBy(['a', 'b', 'c', 'd', 'e']), 'INVALID_ARGUMENT');
    expect(checkGroupBy(['_ue', 'region'])).toEqual(['_ue', 'region']);
  });
});

describe('job store', () => {
  const job = (o: Partial<JobRecord> = {}): JobRecord => ({
    id: 'job-1',
    consumer: 'alice',
    datasetId: 'meters',
    state: JobState.JOB_STATE_QUEUED,
    code: 'export function run() { return 1; }',
    codeHash: HASH_A,
    paramsJson: 'null',
    limits: { memoryMb: 64, cpuMs: 100, wallMs: 200, outputBytes: 300 },
    groupBy: ['_hour'],
    ues: [{ imei: '490154203237518', iccid: '89490200001234567894', eid: '', msisdn: '+491701234567' }],
    nonce: new Uint8Array([1, 2]),
    seed: 7,
    idempotencyKey: '',
    approval: 'allow-list',
    submittedAtMs: 1000,
    startedAtMs: 0,
    finishedAtMs: 0,
    updatedAtMs: 1000,
    errorCode: '',
    errorMessage: '',
    recordsTotal: 0,
    recordsValid: 0,
    groupsTotal: 0,
    groupsDone: 0,
    progress: 0,
    detail: 'queued',
    result: null,
    attestation: null,
    report: null,
    ...o,
  });

  it('[SC2-4] keeps jobs, results and approvals across reopening; prunes finished jobs past retention', () => {
    const path = join(tempDir('jobstore'), 'jobs.db');
    let st = JobStore.open(path);
    st.save(job());
    st.save(job({ id: 'job-2', idempotencyKey: 'k1', state: JobState.JOB_STATE_SUCCEEDED, finishedAtMs: 5000, result: utf8('{"x":1}'), attestation: new Uint8Array([9]) }));
    st.approveCode('alice', HASH_B, 'op');
    st.close();
    st = JobStore.open(path);
    expect(st.get('job-1')).toEqual(job());
    expect(new TextDecoder().decode(st.get('job-2')?.result ?? new Uint8Array())).toBe('{"x":1}');
    expect(st.byIdempotencyKey('alice', 'k1')?.id).toBe('job-2');
    expect(st.byIdempotencyKey('bob', 'k1')).toBeUndefined();
    expect(st.activeCount('alice')).toBe(1);
    expect(st.inStates([JobState.JOB_STATE_QUEUED]).map((j) => j.id)).toEqual(['job-1']);
    expect([...st.approvedCode('alice')]).toEqual([HASH_B]);
    expect(st.approvedCode('bob').size).toBe(0);
    expect(st.prune(4000)).toBe(0);
    expect(st.prune(6000)).toBe(1);
    expect(st.get('job-2')).toBeUndefined();
    expect(st.get('job-1')).toBeDefined();
    st.close();
  });
});

describe('attestation', () => {
  let ca: CertificateAuthority;
  let signer: AttestationSigner;
  let att: JobAttestation;
  const statement = (): JobStatement =>
    JobStatement.fromPartial({
      jobId: 'job-1',
      gatewayId: 'gw-unit',
      consumer: 'alice',
      datasetId: 'meters',
      codeHash: sha256(utf8('code')),
      resultHash: sha256(utf8('{"r":1}')),
      resultBytes: 7,
      submittedAtMs: 1,
      startedAtMs: 2,
      finishedAtMs: 3,
    });

  beforeAll(async () => {
    ca = await createRootCa({ name: 'unit root', validityDays: 2 });
    const leaf = await issueCertificate({ ca, subjectName: 'gw-unit', role: 'gateway', validityDays: 1 });
    signer = new AttestationSigner(importPrivateKey(leaf.keyPem), chainFromPem(leaf.certPem), 'gw-unit');
    att = signer.sign(statement());
  });

  it('[SC2-3] [SC2-5] a gateway-signed statement verifies with the consortium root and binds the result bytes', async () => {
    const roots = [new Uint8Array(ca.cert.rawData)];
    const v = verifyAttestation(att, { roots }, { result: utf8('{"r":1}'), jobId: 'job-1', consumer: 'alice', codeHash: sha256(utf8('code')) });
    expect(v.gateway).toBe('gw-unit');
    expect(v.statement).toEqual(statement());
    await expectCode(() => verifyAttestation(att, { roots }, { result: utf8('{"r":2}') }), 'ATTESTATION_MISMATCH');
    await expectCode(() => verifyAttestation(att, { roots }, { jobId: 'job-2' }), 'ATTESTATION_MISMATCH');
    await expectCode(() => verifyAttestation(undefined, { roots }), 'MISSING_FIELD');
    // a client certificate cannot attest
    const client = await issueCertificate({ ca, subjectName: 'gw-unit', role: 'client', validityDays: 1 });
    const asClient = new AttestationSigner(importPrivateKey(client.keyPem), chainFromPem(client.certPem), 'gw-unit').sign(statement());
    await expectCode(() => verifyAttestation(asClient, { roots }), 'UNTRUSTED_CERTIFICATE');
  });

  it('[SC2-3] any flipped bit in the statement or signature fails verification', () => {
    const roots = [new Uint8Array(ca.cert.rawData)];
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 0, max: 7 }), fc.boolean(), (pos, bit, inStatement) => {
        const field = inStatement ? att.statement : att.signature;
        const i = pos % field.length;
        const flipped = Uint8Array.from(field, (b, k) => (k === i ? b ^ (1 << bit) : b));
        const bad = inStatement ? { ...att, statement: flipped } : { ...att, signature: flipped };
        try {
          verifyAttestation(bad, { roots });
          return false;
        } catch (e) {
          return (e as { code?: string }).code === 'INVALID_SIGNATURE';
        }
      }),
      { numRuns: 200 },
    );
  });
});
