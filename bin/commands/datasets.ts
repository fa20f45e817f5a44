/**
 * @module commands/datasets
 * `divs consumer datasets`: aggregator-initiated verification from the consumer's side
 * (scenario 10.2) [SC2-1] [SC2-2] [FW-SU].
 * - without `--verify`: the descriptions of the datasets a gateway grants this consumer (IDs,
 *   UE and record counts, time range, schema, channel) — never raw data;
 * - `--verify DATASET`: asks the gateway to verify the dataset and checks the signed report
 *   with the consumer SDK against `--trust` (gateway certificate chain with the "gateway" role,
 *   signature over the exact report bytes, dataset and fresh nonce) before printing it.
 *
 * Exit codes: 0 ok; 1 the report does not verify (or, with `--fail-on-invalid`, a record is
 * invalid or unverified); 2 usage error.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { GatewayConsumerServiceClient, SignedVerificationReport, type DatasetDescription, type VerificationReport } from '../../proto/gen/divs/v1/gateway.ts';
import { toBase64, toHex } from '../../protocol/src/bytes.ts';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { describeIdentity } from '../../protocol/src/identity.ts';
import { grpc, makeClient, unary } from '../../platform/src/grpc.ts';
import { GatewayConsumer, checkpointJson, endorsementJson, verifyReport } from '../../consumer/src/report.ts';
import { int, parse, str } from './args.ts';
import { CONNECTION, CONNECTION_OPTIONS, credentials, gatewaysOf, roots, tokenOf, type Values } from './connection.ts';

const USAGE = `divs consumer datasets --gateway HOST:PORT --trust ROOT_CA.pem [--dataset D] [--ues] [--json]
    List the datasets this gateway grants you: descriptions only (SC2-1).

divs consumer datasets --verify DATASET --gateway HOST:PORT --trust ROOT_CA.pem
                       [--fail-on-invalid] [--out REPORT.json] [--timeout-ms N] [--json]
    Ask the gateway to verify DATASET against the AS endorsements (SC2-2) and print its signed
    report — records valid/invalid per reason, chain findings, dataset commitment, endorsement
    versions and checkpoints used — after checking the gateway signature against --trust.
    --out saves the signed report (base64) with its summary, to check again later.

${CONNECTION}
  --json                 machine-readable output

Exit codes: 0 ok, 1 the report's signature/certificate does not verify (or, with
--fail-on-invalid, some record is invalid or could not be checked), 2 usage error.`;

/** Error codes of a report that does not check out (as opposed to a failed call). */
const REPORT_FAILURES = new Set(['UNTRUSTED_CERTIFICATE', 'INVALID_CERTIFICATE', 'UNSUPPORTED_SUITE', 'INVALID_SIGNATURE', 'MALFORMED_MESSAGE', 'MISSING_FIELD', 'INVALID_ARGUMENT']);

const when = (ms: number): string | null => (ms > 0 ? new Date(ms).toISOString() : null);

/** A dataset description as JSON (what `--json` prints). */
function describeDataset(d: DatasetDescription): Record<string, unknown> {
  return {
    datasetId: d.datasetId,
    description: d.description,
    schema: d.schema,
    channel: d.channel,
    contentTypes: d.contentTypes,
    ueCount: d.ueCount,
    recordCount: d.recordCount,
    firstTimestamp: when(d.firstTimestampMs),
    lastTimestamp: when(d.lastTimestampMs),
    ues: d.ues.map((u) => ({
      identity: u.identity,
      recordCount: u.recordCount,
      firstTimestamp: when(u.firstTimestampMs),
      lastTimestamp: when(u.lastTimestampMs),
      firstSequence: u.firstSequence,
      lastSequence: u.lastSequence,
    })),
  };
}

/** A verified report as JSON: counts, findings, commitment and what it relied on. */
export function reportJson(r: VerificationReport, gateway: string): Record<string, unknown> {
  const invalidCount = r.invalid.reduce((n, x) => n + x.count, 0);
  const unverifiedCount = r.unverified.reduce((n, x) => n + x.count, 0);
  return {
    signatureVerified: true,
    gateway,
    datasetId: r.datasetId,
    nonce: toHex(r.nonce),
    startedAt: when(r.startedAtMs),
    finishedAt: when(r.finishedAtMs),
    ueCount: r.ueCount,
    recordCount: r.recordCount,
    validCount: r.validCount,
    invalidCount,
    unverifiedCount,
    invalid: Object.fromEntries(r.invalid.map((x) => [x.reason, x.count])),
    unverified: Object.fromEntries(r.unverified.map((x) => [x.reason, x.count])),
    complete: r.complete,
    chain: r.chain ?? null,
    datasetCommitment: toHex(r.datasetCommitment),
    commitmentSize: r.commitmentSize,
    endorsements: r.endorsements.map(endorsementJson),
    checkpoints: r.checkpoints.map(checkpointJson),
    restrictedTo: r.ues.map(describeIdentity),
  };
}

function printList(list: DatasetDescription[]): void {
  if (list.length === 0) {
    console.log('no dataset is granted to you on this gateway');
    return;
  }
  for (const d of list) {
    const range = d.recordCount > 0 ? `${when(d.firstTimestampMs)} .. ${when(d.lastTimestampMs)}` : 'empty';
    console.log(`${d.datasetId}: ${d.ueCount} UEs, ${d.recordCount} records, ${range}`);
    if (d.description) console.log(`  ${d.description}`);
    console.log(`  schema ${d.schema || '-'}  channel ${d.channel || '-'}${d.contentTypes.length ? `  types ${d.contentTypes.join(', ')}` : ''}`);
    for (const u of d.ues) console.log(`  UE ${(u.identity ? describeIdentity(u.identity) : '?')}: ${u.recordCount} records, #${u.firstSequence}..#${u.lastSequence}`);
  }
}

function printReport(j: Record<string, unknown>, r: VerificationReport): void {
  console.log(`verification report for dataset ${r.datasetId}, signed by gateway ${String(j.gateway)} (signature and certificate verified)`);
  console.log(`  ${r.validCount} of ${r.recordCount} records valid from ${r.ueCount} UEs${r.complete ? '' : ' (INCOMPLETE: some records could not be checked)'}`);
  for (const x of r.invalid) console.log(`  invalid     ${x.reason.padEnd(28)} ${x.count}`);
  for (const x of r.unverified) console.log(`  unverified  ${x.reason.padEnd(28)} ${x.count}`);
  const c = r.chain;
  if (c) console.log(`  chains: ${c.gaps} gaps (${c.missingRecords} missing), ${c.forks} forks, ${c.replays} replays, ${c.reordered} reordered, ${c.forksRejectedAtIngest} forks refused at ingest`);
  console.log(`  dataset commitment ${toHex(r.datasetCommitment)} over ${r.commitmentSize} records`);
  console.log(`  ${r.endorsements.length} endorsements used:`);
  for (const e of r.endorsements.slice(0, 50)) {
    const latest = e.latestTxId !== e.txId ? ` (latest: v${e.latestVersion} tx ${e.latestTxId})` : '';
    console.log(`    ${e.ledgerId} tx ${e.txId} v${e.version}${latest}: ${e.recordCount} records, ${e.outcome}`);
  }
  if (r.endorsements.length > 50) console.log(`    … ${r.endorsements.length - 50} more (--json for all)`);
  console.log(`  checkpoints used:`);
  for (const k of r.checkpoints) console.log(`    ${k.origin} size ${k.size} root ${toHex(k.rootHash).slice(0, 16)}… signed by ${k.signer}`);
}

async function verify(v: Values, datasetId: string): Promise<number> {
  const r = roots(v);
  const address = gatewaysOf(v)[0] as string;
  const json = v.json === true;
  const client = makeClient(GatewayConsumerServiceClient, address, credentials(v, r.pem));
  const md = new grpc.Metadata();
  const token = tokenOf(v);
  if (token !== undefined) md.set('authorization', `Bearer ${token}`);
  const nonce = new Uint8Array(randomBytes(16));
  let signed: SignedVerificationReport | undefined;
  try {
    if (!json) process.stderr.write(`asking ${address} to verify dataset ${datasetId}…\n`);
    const res = await unary(client, client.verifyDataset, { datasetId, nonce, ues: [] }, { metadata: md, timeoutMs: int(v['timeout-ms'], 'timeout-ms', 300_000, 1) });
    signed = res.report;
  } finally {
    client.close();
  }
  // the answer is checked apart from the call: a call that failed is the gateway's (its code, exit
  // 1 or 2), a report that does not check out is a verification failure (exit 1, said so)
  let checked;
  try {
    checked = verifyReport(signed, { roots: r.der }, { datasetId, nonce });
  } catch (e) {
    if (e instanceof DivsError && REPORT_FAILURES.has(e.code)) {
      if (json) console.log(JSON.stringify({ signatureVerified: false, datasetId, code: e.code, message: e.message }));
      console.error(`divs: ${e.code}: report verification FAILED: ${e.message}`);
      return 1;
    }
    throw e;
  }
  const out = reportJson(checked.report, checked.gateway);
  if (typeof v.out === 'string') {
    writeFileSync(v.out, `${JSON.stringify({ ...out, signedReport: toBase64(SignedVerificationReport.encode(signed as SignedVerificationReport).finish()) }, null, 2)}\n`);
  }
  if (json) console.log(JSON.stringify(out));
  else printReport(out, checked.report);
  const problems = (out.invalidCount as number) + (out.unverifiedCount as number);
  return v['fail-on-invalid'] === true && problems > 0 ? 1 : 0;
}

/** Entry point of `divs consumer datasets …` (argv without "datasets"). */
export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(
    argv,
    {
      ...CONNECTION_OPTIONS,
      dataset: { type: 'string' },
      ues: { type: 'boolean' },
      verify: { type: 'string' },
      'fail-on-invalid': { type: 'boolean' },
      out: { type: 'string' },
      'timeout-ms': { type: 'string' },
    },
    USAGE,
    true,
  );
  if (positionals.length > 0) fail('CONFIG_INVALID', `unexpected argument ${positionals[0]}\n\n${USAGE}`);
  if (gatewaysOf(v).length > 1) fail('CONFIG_INVALID', 'one --gateway at a time');
  if (v.verify !== undefined) {
    if (v.dataset !== undefined || v.ues === true) fail('CONFIG_INVALID', '--verify takes no --dataset/--ues');
    return verify(v, str(v.verify, 'verify'));
  }
  if (v['fail-on-invalid'] === true || v.out !== undefined) fail('CONFIG_INVALID', '--fail-on-invalid and --out go with --verify');
  const r = roots(v);
  const gw = new GatewayConsumer({
    address: gatewaysOf(v)[0] as string,
    token: tokenOf(v),
    credentials: credentials(v, r.pem),
    anchors: { roots: r.der },
    timeoutMs: int(v['timeout-ms'], 'timeout-ms', 30_000, 1),
  });
  try {
    const list = await gw.listDatasets({ datasetId: typeof v.dataset === 'string' ? v.dataset : undefined, omitUes: v.ues !== true });
    if (v.json) console.log(JSON.stringify({ gateway: gatewaysOf(v)[0], datasets: list.map(describeDataset) }));
    else printList(list);
    return 0;
  } finally {
    gw.close();
  }
}
