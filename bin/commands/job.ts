/**
 * @module commands/job
 * `divs consumer job …` and `divs consumer train …`: consumer jobs on aggregator gateways
 * (scenario 10.2) [SC2-3] [SC2-4] [SC2-5] — usage policy, submission, watching with a progress
 * bar, verified results, offline re-verification of a saved result, the operators' approval
 * commands, and FedAvg training across several gateways with a progress bar per round.
 */
import { writeFileSync } from 'node:fs';
import { SignedVerificationReport } from '../../proto/gen/divs/v1/gateway.ts';
import { JobAttestation, type JobStatus } from '../../proto/gen/divs/v1/jobs.ts';
import { fromBase64, toBase64, toHex } from '../../protocol/src/bytes.ts';
import { fail } from '../../protocol/src/errors.ts';
import { progressBar, type Progress } from '../../platform/src/progress.ts';
import {
  FINAL_JOB_STATES,
  JobAdminClient,
  JobClient,
  jobStateName,
  verifyAttestation,
  type JobSpec,
  type VerifiedJobResult,
} from '../../consumer/src/jobs.ts';
import { federatedEvaluate, federatedTrain, modelToJson, type FedAvgProgress, type FederatedSite } from '../../consumer/src/fedavg.ts';
import type { LabelSpec } from '../../consumer/src/models/logreg.ts';
import { int, parse, str } from './args.ts';
import { CONNECTION, CONNECTION_OPTIONS, credentials, gatewaysOf, readText, roots, type Values } from './connection.ts';

const USAGE = `divs consumer job <command> [options]

  policy   the usage policy this gateway applies to you (datasets, limits, output rules, runner)
  submit   --dataset D --code FILE [--params JSON|@FILE] [--group-by a,b] [--seed N] [--idempotency-key K]
           [--memory-mb N] [--cpu-ms N] [--wall-ms N] [--output-bytes N] [--watch] [--out FILE]
  watch    --job ID        follow a job until it ends (progress bar)
  result   --job ID [--out FILE]   fetch, verify (attestation + report) and print the result
  cancel   --job ID
  verify   --bundle FILE   re-verify a saved result offline (needs only --trust)

Operators (admin token of the gateway's jobs.admins):
  pending  --admin-token T                       jobs waiting for approval, with their code
  approve  --admin-token T --job ID [--remember] run it (and trust its code hash from now on)
  reject   --admin-token T --job ID --reason TEXT

${CONNECTION}
  --json                 machine-readable output

Exit codes: 0 ok, 1 the job failed / was withheld / did not verify, 2 usage error.`;

const TRAIN_USAGE = `divs consumer train --gateway HOST:PORT[=DATASET] --gateway … --dataset D --features a,b --label 'col>0'
                    [--rounds 10] [--epochs 1] [--lr 0.1] [--batch 32] [--l2 0] [--seed 1] [--out model.json]

FedAvg logistic regression over the verified data of several gateways (SC2-5): each round sends the
current weights as a job to every gateway, averages the returned weights by sample counts, and keeps
every round's attestation. --label is COLUMN OP VALUE with OP one of > >= < <= == !=.
--out writes the model with every kept result, attestation and report (verify with
\`divs consumer job verify --bundle model.json\`).

${CONNECTION}
  --json                 machine-readable output`;

function jobClient(v: Values, address?: string): JobClient {
  const r = roots(v);
  return new JobClient({ address: address ?? (gatewaysOf(v)[0] as string), token: typeof v.token === 'string' ? v.token : undefined, credentials: credentials(v, r.pem), anchors: { roots: r.der } });
}

function optionalInt(v: unknown, name: string, min: number, max: number): number | undefined {
  return v === undefined ? undefined : int(v, name, 0, min, max);
}

/** A status line for people. */
function describe(s: JobStatus): string {
  const err = s.errorCode ? ` ${s.errorCode}: ${s.errorMessage}` : '';
  return `${s.jobId} ${jobStateName(s.state)}${s.detail ? ` (${s.detail})` : ''}${err}`;
}

/** Follows a job with a progress bar (stderr); resolves with the final status. */
async function follow(c: JobClient, jobId: string, silent: boolean): Promise<JobStatus> {
  const bar = progressBar(`job ${jobId.slice(0, 8)}`, 100, { silent });
  const last = await c.watch(jobId, (s) => bar.update(Math.round(s.progress * 100), jobStateName(s.state).toLowerCase()));
  bar.finish(jobStateName(last.state).toLowerCase());
  return last;
}

/** A saved result: everything needed to verify it again offline. */
function bundleOf(r: VerifiedJobResult): Record<string, unknown> {
  return {
    jobId: r.jobId,
    gateway: r.gateway,
    datasetId: r.statement.datasetId,
    codeHash: toHex(r.statement.codeHash),
    runnerDigest: toHex(r.statement.runner?.digest ?? new Uint8Array(0)),
    datasetCommitment: toHex(r.statement.datasetCommitment),
    verifiedRecords: `${r.report.validCount}/${r.report.recordCount}`,
    document: r.document,
    result: toBase64(r.result),
    attestation: toBase64(JobAttestation.encode(r.attestation).finish()),
    report: toBase64(SignedVerificationReport.encode(r.signedReport).finish()),
  };
}

function printResult(r: VerifiedJobResult, json: boolean): void {
  if (json) {
    console.log(JSON.stringify(bundleOf(r)));
    return;
  }
  console.log(`result of job ${r.jobId}, attested by ${r.gateway}`);
  console.log(`  dataset ${r.statement.datasetId}: ${r.report.validCount} of ${r.report.recordCount} records verified; the job read ${r.statement.inputRecords} of them from ${r.statement.inputUes} UEs`);
  console.log(`  code ${toHex(r.statement.codeHash)}  runner ${toHex(r.statement.runner?.digest ?? new Uint8Array(0)).slice(0, 16)}…  approval ${r.statement.approval}`);
  if (r.document.suppressedGroups > 0) console.log(`  ${r.document.suppressedGroups} group(s) below the aggregation threshold were suppressed`);
  for (const g of r.document.groups) console.log(`  ${JSON.stringify(g.key)} (${g.ues} UEs, ${g.records} records): ${JSON.stringify(g.value)}`);
}

function paramsOf(v: unknown): unknown {
  if (typeof v !== 'string') return undefined;
  const text = v.startsWith('@') ? readText(v.slice(1), '--params') : v;
  try {
    return JSON.parse(text);
  } catch {
    fail('CONFIG_INVALID', '--params: not JSON');
  }
}

async function jobCommand(sub: string | undefined, rest: string[]): Promise<number> {
  const jobOpt = { job: { type: 'string' } } as const;
  switch (sub) {
    case 'policy': {
      const { values: v } = parse(rest, CONNECTION_OPTIONS, USAGE);
      const c = jobClient(v);
      try {
        const p = await c.policy();
        const view = {
          gateway: p.gatewayId,
          consumer: p.consumer,
          datasets: p.datasets,
          transport: p.transport,
          defaultLimits: p.defaultLimits,
          maxLimits: p.maxLimits,
          output: p.output,
          maxRecords: p.maxRecords,
          maxActiveJobs: p.maxActiveJobs,
          allowedCodeHashes: p.allowedCodeHashes.map(toHex),
          manualApproval: p.manualApproval,
          runner: { version: p.runner?.version, digest: toHex(p.runner?.digest ?? new Uint8Array(0)), node: p.runner?.nodeVersion, isolatedVm: p.runner?.isolatedVmVersion },
        };
        console.log(v.json ? JSON.stringify(view) : JSON.stringify(view, null, 2));
        return 0;
      } finally {
        c.close();
      }
    }
    case 'submit': {
      const { values: v } = parse(
        rest,
        {
          ...CONNECTION_OPTIONS,
          dataset: { type: 'string' },
          code: { type: 'string' },
          params: { type: 'string' },
          'group-by': { type: 'string' },
          seed: { type: 'string' },
          'memory-mb': { type: 'string' },
          'cpu-ms': { type: 'string' },
          'wall-ms': { type: 'string' },
          'output-bytes': { type: 'string' },
          'idempotency-key': { type: 'string' },
          watch: { type: 'boolean' },
          out: { type: 'string' },
        },
        USAGE,
      );
      const spec: JobSpec = {
        datasetId: str(v.dataset, 'dataset'),
        code: readText(str(v.code, 'code'), '--code'),
        params: paramsOf(v.params),
        groupBy: typeof v['group-by'] === 'string' ? v['group-by'].split(',').map((x) => x.trim()).filter((x) => x !== '') : [],
        seed: int(v.seed, 'seed', 0),
        idempotencyKey: typeof v['idempotency-key'] === 'string' ? v['idempotency-key'] : undefined,
        limits: {
          memoryMb: optionalInt(v['memory-mb'], 'memory-mb', 8, 16_384),
          cpuMs: optionalInt(v['cpu-ms'], 'cpu-ms', 1, 3_600_000),
          wallMs: optionalInt(v['wall-ms'], 'wall-ms', 1, 3_600_000),
          outputBytes: optionalInt(v['output-bytes'], 'output-bytes', 1, 256 << 20),
        },
      };
      const c = jobClient(v);
      try {
        const first = await c.submit(spec);
        if (v.watch !== true) {
          console.log(v.json ? JSON.stringify({ jobId: first.jobId, state: jobStateName(first.state) }) : describe(first));
          return 0;
        }
        const last = FINAL_JOB_STATES.has(first.state) ? first : await follow(c, first.jobId, v.json === true);
        const r = await c.result(first.jobId).catch((e: unknown) => {
          console.error(describe(last));
          throw e;
        });
        if (typeof v.out === 'string') writeFileSync(v.out, `${JSON.stringify(bundleOf(r), null, 2)}\n`);
        printResult(r, v.json === true);
        return 0;
      } finally {
        c.close();
      }
    }
    case 'watch': {
      const { values: v } = parse(rest, { ...CONNECTION_OPTIONS, ...jobOpt }, USAGE);
      const c = jobClient(v);
      try {
        const last = await follow(c, str(v.job, 'job'), v.json === true);
        console.log(v.json ? JSON.stringify({ jobId: last.jobId, state: jobStateName(last.state), errorCode: last.errorCode }) : describe(last));
        return last.errorCode === '' ? 0 : 1;
      } finally {
        c.close();
      }
    }
    case 'result': {
      const { values: v } = parse(rest, { ...CONNECTION_OPTIONS, ...jobOpt, out: { type: 'string' } }, USAGE);
      const c = jobClient(v);
      try {
        const r = await c.result(str(v.job, 'job'));
        if (typeof v.out === 'string') writeFileSync(v.out, `${JSON.stringify(bundleOf(r), null, 2)}\n`);
        printResult(r, v.json === true);
        return 0;
      } finally {
        c.close();
      }
    }
    case 'cancel': {
      const { values: v } = parse(rest, { ...CONNECTION_OPTIONS, ...jobOpt }, USAGE);
      const c = jobClient(v);
      try {
        const s = await c.cancel(str(v.job, 'job'));
        console.log(v.json ? JSON.stringify({ jobId: s.jobId, state: jobStateName(s.state) }) : describe(s));
        return 0;
      } finally {
        c.close();
      }
    }
    case 'verify': {
      const { values: v } = parse(rest, { trust: { type: 'string' }, bundle: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
      const r = roots(v);
      let bundle: Record<string, unknown>;
      try {
        bundle = JSON.parse(readText(str(v.bundle, 'bundle'), '--bundle')) as Record<string, unknown>;
      } catch (e) {
        if (e instanceof Error && e.name === 'DivsError') throw e;
        fail('CONFIG_INVALID', '--bundle: not JSON');
      }
      // a training model holds many results; a job bundle one
      const { verifyProvenance } = await import('../../consumer/src/fedavg.ts');
      if (Array.isArray(bundle.rounds)) {
        const entries = verifyProvenance(bundle, { roots: r.der });
        if (v.json) console.log(JSON.stringify({ ok: true, jobs: entries }));
        else {
          for (const e of entries) console.log(`${e.phase} round ${e.round} ${e.site}: job ${e.jobId} by ${e.gateway}, ${e.validRecords}/${e.totalRecords} records verified, commitment ${e.datasetCommitment.slice(0, 16)}…`);
          console.log(`OK: ${entries.length} attested jobs, all running code ${entries[0]?.codeHash ?? '-'}`);
        }
        return 0;
      }
      const str64 = (k: string): Uint8Array => (typeof bundle[k] === 'string' ? fromBase64(bundle[k] as string, k) : fail('CONFIG_INVALID', `--bundle: ${k} missing`));
      const att = JobAttestation.decode(str64('attestation'));
      const report = SignedVerificationReport.decode(str64('report'));
      const out = verifyAttestation(att, { roots: r.der }, { result: str64('result'), report });
      const summary = { ok: true, jobId: out.statement.jobId, gateway: out.gateway, consumer: out.statement.consumer, datasetId: out.statement.datasetId, codeHash: toHex(out.statement.codeHash), verifiedRecords: out.report?.validCount, inputRecords: out.statement.inputRecords };
      console.log(v.json ? JSON.stringify(summary) : `OK: job ${summary.jobId} attested by ${summary.gateway} for ${summary.consumer}: code ${summary.codeHash} over ${summary.inputRecords} verified records of ${summary.datasetId}`);
      return 0;
    }
    case 'pending':
    case 'approve':
    case 'reject': {
      const { values: v } = parse(rest, { ...CONNECTION_OPTIONS, ...jobOpt, 'admin-token': { type: 'string' }, remember: { type: 'boolean' }, reason: { type: 'string' } }, USAGE);
      const r = v.tls === true || typeof v.cert === 'string' ? roots(v) : undefined;
      const admin = new JobAdminClient({ address: gatewaysOf(v)[0] as string, token: str(v['admin-token'], 'admin-token'), credentials: r ? credentials(v, r.pem) : undefined });
      try {
        if (sub === 'pending') {
          const jobs = await admin.pending();
          if (v.json) console.log(JSON.stringify(jobs.map((j) => ({ ...j, codeHash: toHex(j.codeHash) }))));
          else if (jobs.length === 0) console.log('no job waits for approval');
          else for (const j of jobs) console.log(`${j.jobId}  ${j.consumer}  ${j.datasetId}  code ${toHex(j.codeHash)}  submitted ${new Date(j.submittedAtMs).toISOString()}\n${j.code}\n`);
          return 0;
        }
        const s = sub === 'approve' ? await admin.approve(str(v.job, 'job'), v.remember === true) : await admin.reject(str(v.job, 'job'), str(v.reason, 'reason'));
        console.log(v.json ? JSON.stringify({ jobId: s.jobId, state: jobStateName(s.state) }) : describe(s));
        return 0;
      } finally {
        admin.close();
      }
    }
    default:
      console.error(USAGE);
      return 2;
  }
}

/** "exportKWh>0" → { column, op, value }. */
export function parseLabel(text: string): LabelSpec {
  const m = /^\s*([A-Za-z0-9_.-]+)\s*(>=|<=|==|!=|>|<)\s*(-?[0-9.eE+-]+)\s*$/.exec(text);
  if (!m || !Number.isFinite(Number(m[3]))) fail('CONFIG_INVALID', '--label: COLUMN OP NUMBER, e.g. "exportKWh>0"');
  const ops = { '>': 'gt', '>=': 'ge', '<': 'lt', '<=': 'le', '==': 'eq', '!=': 'ne' } as const;
  return { column: m[1] as string, op: ops[m[2] as keyof typeof ops], value: Number(m[3]) };
}

async function trainCommand(rest: string[]): Promise<number> {
  const { values: v } = parse(
    rest,
    {
      ...CONNECTION_OPTIONS,
      dataset: { type: 'string' },
      features: { type: 'string' },
      label: { type: 'string' },
      rounds: { type: 'string' },
      epochs: { type: 'string' },
      lr: { type: 'string' },
      batch: { type: 'string' },
      l2: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
    },
    TRAIN_USAGE,
  );
  const json = v.json === true;
  const features = str(v.features, 'features').split(',').map((f) => f.trim()).filter((f) => f !== '');
  const label = parseLabel(str(v.label, 'label'));
  const num = (x: unknown, name: string, dflt: number): number => {
    if (x === undefined) return dflt;
    const n = Number(x);
    if (!Number.isFinite(n) || n < 0) fail('CONFIG_INVALID', `--${name}: a non-negative number`);
    return n;
  };
  const sites: FederatedSite[] = gatewaysOf(v).map((g) => {
    const [address, dataset] = g.split('=');
    return { name: address as string, datasetId: dataset ?? str(v.dataset, 'dataset'), client: jobClient(v, address) };
  });
  let bar: Progress | undefined;
  let current = -1;
  const perSite = new Map<string, number>();
  const onProgress = (p: FedAvgProgress) => {
    if (p.round !== current) {
      bar?.finish();
      current = p.round;
      perSite.clear();
      const title = p.phase === 'stats' ? 'round 0 (statistics)' : p.phase === 'evaluate' ? 'evaluation' : `round ${p.round}/${p.rounds}`;
      bar = progressBar(title, 100 * p.sites, { silent: json });
    }
    perSite.set(p.site, Math.round(p.status.progress * 100));
    let done = 0;
    for (const x of perSite.values()) done += x;
    bar?.update(done, `${p.sitesDone}/${p.sites} gateways`);
  };
  try {
    const model = await federatedTrain({
      sites,
      features,
      label,
      rounds: int(v.rounds, 'rounds', 10, 1, 10_000),
      localEpochs: int(v.epochs, 'epochs', 1, 1, 1000),
      learningRate: num(v.lr, 'lr', 0.1),
      batchSize: int(v.batch, 'batch', 32, 1, 1_000_000),
      l2: num(v.l2, 'l2', 0),
      seed: int(v.seed, 'seed', 1),
      onProgress,
    });
    const ev = await federatedEvaluate(model, { sites, onProgress });
    bar?.finish();
    if (typeof v.out === 'string') writeFileSync(v.out, `${JSON.stringify(modelToJson(model), null, 2)}\n`);
    const summary = {
      features: model.features,
      label: model.label,
      weights: model.weights,
      accuracy: ev.accuracy,
      loss: ev.loss,
      samples: ev.n,
      rounds: model.rounds.filter((r) => r.phase === 'train').map((r) => ({ round: r.round, samples: r.samples, loss: r.loss })),
      attestedJobs: model.rounds.reduce((n, r) => n + r.sites.length, 0),
      codeHash: model.codeHash,
    };
    if (json) console.log(JSON.stringify(summary));
    else {
      for (const r of summary.rounds) console.log(`round ${String(r.round).padStart(3)}: ${r.samples} samples, loss ${r.loss.toFixed(4)}`);
      console.log(`accuracy ${(100 * ev.accuracy).toFixed(2)} % on ${ev.n} verified records of ${sites.length} gateways (${summary.attestedJobs} attested jobs, code ${model.codeHash.slice(0, 16)}…)`);
      if (typeof v.out === 'string') console.log(`model and attestations written to ${v.out}`);
    }
    return 0;
  } finally {
    for (const s of sites) s.client.close();
  }
}

/**
 * Entry point for `divs consumer job …` (argv starts with "job") and `divs consumer train …`
 * (argv starts with "train").
 */
export async function run(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === 'job') {
    const [sub, ...args] = rest;
    return jobCommand(sub, args);
  }
  if (cmd === 'train') return trainCommand(rest);
  console.error(`${USAGE}\n\n${TRAIN_USAGE}`);
  return 2;
}
