/**
 * @module fedavg
 * Federated training across aggregators [SC2-5]: a consumer trains one model over the verified
 * data of several gateways at once, and every number it receives is attested.
 *
 * FedAvg (McMahan et al., 2017) with logistic regression (models/logreg.ts):
 * 1. round 0, `stats`: each gateway returns per-feature sums, sums of squares and its row count;
 *    the consumer derives global means and deviations for standardisation;
 * 2. rounds 1..R, `train`: each gateway runs `localEpochs` of SGD from the current global
 *    weights over its own verified records and returns its weights and row count; the consumer
 *    averages the weights weighted by row counts: `w = Σ n_k w_k / Σ n_k`;
 * 3. optionally `evaluate`: confusion counts per gateway, summed.
 *
 * Only weights and counts leave a gateway (the job returns nothing else, and the gateway's
 * output policy would withhold anything shaped like records). Each job's result comes with the
 * gateway's attestation and verification report, both checked on arrival and kept in the
 * returned model ({@link FederatedModel.rounds}); {@link verifyProvenance} re-checks them
 * later, offline, so the consumer can show that only DIVS-verified data was used and which.
 */
import { SignedVerificationReport } from '../../proto/gen/divs/v1/gateway.ts';
import { JobAttestation, type JobStatement, type JobStatus } from '../../proto/gen/divs/v1/jobs.ts';
import { fromBase64, sha256, toBase64, toHex, utf8 } from '../../protocol/src/bytes.ts';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { FINAL_JOB_STATES, verifyAttestation, type JobClient, type JobLimitsInput, type VerifiedJobResult } from './jobs.ts';
import { LOGREG_SOURCE, runLocally, type LabelSpec, type LocalData } from './models/logreg.ts';
import type { TrustAnchors } from './verify.ts';

/** One gateway taking part: a client and the dataset to train on there. */
export interface FederatedSite {
  /** Name for progress and provenance; default the client address. */
  name?: string;
  client: JobClient;
  datasetId: string;
}

export type Phase = 'stats' | 'train' | 'evaluate';

/** A progress event: one gateway's job changed state. */
export interface FedAvgProgress {
  phase: Phase;
  /** 0 for stats, 1..rounds for training, rounds + 1 for evaluation. */
  round: number;
  rounds: number;
  site: string;
  status: JobStatus;
  /** Sites whose job of this round has finished. */
  sitesDone: number;
  sites: number;
}

export interface FedAvgOptions {
  sites: FederatedSite[];
  features: string[];
  label: LabelSpec;
  /** Training rounds (default 10). */
  rounds?: number;
  /** SGD epochs per round on each gateway (default 1). */
  localEpochs?: number;
  learningRate?: number;
  batchSize?: number;
  l2?: number;
  seed?: number;
  limits?: JobLimitsInput;
  onProgress?: (p: FedAvgProgress) => void;
}

/** One gateway's job of a round, with what proves it. */
export interface SiteRound {
  site: string;
  /** Common name of the gateway that signed. */
  gateway: string;
  jobId: string;
  datasetId: string;
  samples: number;
  /** Mean log loss on the gateway's rows after its local epochs (train), or summed (evaluate). */
  loss: number;
  /** Exact bytes of what the gateway signed, kept for later audits. */
  result: Uint8Array;
  attestation: JobAttestation;
  report: SignedVerificationReport;
  statement: JobStatement;
  /** Records verified / records in the dataset snapshot the job ran over. */
  validRecords: number;
  totalRecords: number;
}

export interface RoundRecord {
  phase: Phase;
  round: number;
  samples: number;
  /** Sample-weighted mean loss (train) or summed loss / samples (evaluate). */
  loss: number;
  sites: SiteRound[];
  /** Global weights after this round (train). */
  weights?: number[];
}

/** A trained model with the attested history of how it was made. */
export interface FederatedModel {
  kind: 'logistic-regression';
  features: string[];
  label: LabelSpec;
  /** One weight per feature, then the bias, over standardised features. */
  weights: number[];
  mean: number[];
  std: number[];
  /** SHA-256 (hex) of the job source every gateway ran. */
  codeHash: string;
  rounds: RoundRecord[];
}

interface Hyper {
  rounds: number;
  localEpochs: number;
  learningRate: number;
  batchSize: number;
  l2: number;
  seed: number;
}

function hyper(o: Partial<Hyper>): Hyper {
  const h = { rounds: o.rounds ?? 10, localEpochs: o.localEpochs ?? 1, learningRate: o.learningRate ?? 0.1, batchSize: o.batchSize ?? 32, l2: o.l2 ?? 0, seed: o.seed ?? 1 };
  if (!Number.isInteger(h.rounds) || h.rounds < 1 || h.rounds > 10_000) fail('INVALID_ARGUMENT', 'rounds: 1 to 10000');
  if (!Number.isInteger(h.localEpochs) || h.localEpochs < 1 || h.localEpochs > 1000) fail('INVALID_ARGUMENT', 'localEpochs: 1 to 1000');
  if (!(h.learningRate > 0 && h.learningRate <= 10)) fail('INVALID_ARGUMENT', 'learningRate: in (0, 10]');
  if (!Number.isInteger(h.batchSize) || h.batchSize < 1) fail('INVALID_ARGUMENT', 'batchSize: a positive integer');
  if (!(h.l2 >= 0)) fail('INVALID_ARGUMENT', 'l2: not negative');
  if (!Number.isSafeInteger(h.seed) || h.seed < 0) fail('INVALID_ARGUMENT', 'seed: a safe integer');
  return h;
}

function checkSpec(features: string[], label: LabelSpec): void {
  if (!Array.isArray(features) || features.length === 0 || features.length > 1000 || !features.every((f) => typeof f === 'string' && f.length > 0)) {
    fail('INVALID_ARGUMENT', 'features: 1 to 1000 column names');
  }
  if (!label || typeof label.column !== 'string' || !['eq', 'ne', 'gt', 'ge', 'lt', 'le'].includes(label.op) || typeof label.value !== 'number') {
    fail('INVALID_ARGUMENT', 'label: { column, op: eq|ne|gt|ge|lt|le, value: number }');
  }
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const numbers = (v: unknown, n: number): v is number[] => Array.isArray(v) && v.length === n && v.every(finite);

/** The single group value of a job result (training jobs do not group). */
function valueOf(r: VerifiedJobResult, site: string): Record<string, unknown> {
  const g = r.document.groups;
  if (g.length !== 1 || typeof g[0]?.value !== 'object' || g[0].value === null) fail('MALFORMED_MESSAGE', `${site}: expected one result group`);
  return g[0].value as Record<string, unknown>;
}

/** Runs one job per site in parallel and keeps its proof. */
async function roundOf(
  phase: Phase,
  round: number,
  o: FedAvgOptions,
  h: Hyper,
  params: (i: number) => Record<string, unknown>,
): Promise<{ results: VerifiedJobResult[]; sites: SiteRound[] }> {
  let done = 0;
  const results = await Promise.all(
    o.sites.map(async (s, i) => {
      const site = s.name ?? s.client.address;
      try {
        const r = await s.client.run(
          { datasetId: s.datasetId, code: LOGREG_SOURCE, params: params(i), limits: o.limits, seed: h.seed },
          {
            onStatus: (status) => {
              if (FINAL_JOB_STATES.has(status.state)) done++;
              o.onProgress?.({ phase, round, rounds: h.rounds, site, status, sitesDone: done, sites: o.sites.length });
            },
          },
        );
        return r;
      } catch (e) {
        const err = e instanceof DivsError ? e : new DivsError('INTERNAL', String(e));
        throw new DivsError(err.code, `${site} (${phase}, round ${round}): ${err.message}`, { cause: e });
      }
    }),
  );
  const sites = results.map((r, i) => {
    const s = o.sites[i] as FederatedSite;
    const v = valueOf(r, s.name ?? s.client.address);
    return {
      site: s.name ?? s.client.address,
      gateway: r.gateway,
      jobId: r.jobId,
      datasetId: s.datasetId,
      samples: finite(v.n) ? v.n : 0,
      loss: finite(v.loss) ? v.loss : 0,
      result: r.result,
      attestation: r.attestation,
      report: r.signedReport,
      statement: r.statement,
      validRecords: r.report.validCount,
      totalRecords: r.report.recordCount,
    };
  });
  return { results, sites };
}

/** Global standardisation from per-site sums. */
function combineStats(values: Record<string, unknown>[], d: number): { n: number; mean: number[]; std: number[] } {
  let n = 0;
  const sum = new Array<number>(d).fill(0);
  const sumSq = new Array<number>(d).fill(0);
  for (const v of values) {
    if (!finite(v.n) || v.n < 0 || !numbers(v.sum, d) || !numbers(v.sumSq, d)) fail('MALFORMED_MESSAGE', 'a stats result is not { n, sum, sumSq }');
    n += v.n;
    for (let j = 0; j < d; j++) {
      sum[j] = (sum[j] as number) + (v.sum[j] as number);
      sumSq[j] = (sumSq[j] as number) + (v.sumSq[j] as number);
    }
  }
  if (n === 0) fail('OUTPUT_BELOW_THRESHOLD', 'no gateway has usable rows for these features and label');
  const mean = sum.map((s) => s / n);
  const std = sumSq.map((q, j) => {
    const m = mean[j] as number;
    const sd = Math.sqrt(Math.max(0, q / n - m * m));
    return sd > 1e-12 ? sd : 1;
  });
  return { n, mean, std };
}

/** FedAvg over the sites; see the module comment. */
export async function federatedTrain(o: FedAvgOptions): Promise<FederatedModel> {
  if (!Array.isArray(o.sites) || o.sites.length < 1) fail('INVALID_ARGUMENT', 'sites: at least one gateway');
  checkSpec(o.features, o.label);
  const h = hyper(o);
  const d = o.features.length;
  const rounds: RoundRecord[] = [];
  const base = { features: o.features, label: o.label };

  const stats = await roundOf('stats', 0, o, h, () => ({ ...base, mode: 'stats' }));
  const { n: total, mean, std } = combineStats(
    stats.results.map((r, i) => valueOf(r, stats.sites[i]?.site ?? '')),
    d,
  );
  rounds.push({ phase: 'stats', round: 0, samples: total, loss: 0, sites: stats.sites });

  let weights = new Array<number>(d + 1).fill(0);
  for (let round = 1; round <= h.rounds; round++) {
    const current = weights;
    const r = await roundOf('train', round, o, h, (i) => ({
      ...base,
      mode: 'train',
      weights: current,
      mean,
      std,
      epochs: h.localEpochs,
      learningRate: h.learningRate,
      batchSize: h.batchSize,
      l2: h.l2,
      // a different shuffle per round and gateway, reproducible from the seed
      seed: (h.seed * 1_000_003 + round * 7919 + i * 104_729) >>> 0,
    }));
    let n = 0;
    let loss = 0;
    const next = new Array<number>(d + 1).fill(0);
    r.results.forEach((res, i) => {
      const v = valueOf(res, r.sites[i]?.site ?? '');
      if (!finite(v.n) || v.n < 0 || !numbers(v.weights, d + 1) || !finite(v.loss)) fail('MALFORMED_MESSAGE', 'a training result is not { n, weights, loss }');
      n += v.n;
      loss += v.loss * v.n;
      v.weights.forEach((w, j) => (next[j] = (next[j] as number) + w * (v.n as number)));
    });
    if (n === 0) fail('OUTPUT_BELOW_THRESHOLD', `round ${round}: no gateway trained on any row`);
    weights = next.map((w) => w / n);
    rounds.push({ phase: 'train', round, samples: n, loss: loss / n, sites: r.sites, weights: [...weights] });
  }
  return { kind: 'logistic-regression', features: [...o.features], label: { ...o.label }, weights, mean, std, codeHash: toHex(sha256(utf8(LOGREG_SOURCE))), rounds };
}

/** Confusion counts and accuracy. */
export interface Evaluation {
  n: number;
  tp: number;
  fp: number;
  tn: number;
  fn: number;
  accuracy: number;
  /** Mean log loss. */
  loss: number;
}

function evaluation(v: { n: number; tp: number; fp: number; tn: number; fn: number; loss: number }): Evaluation {
  return { ...v, accuracy: v.n > 0 ? (v.tp + v.tn) / v.n : 0, loss: v.n > 0 ? v.loss / v.n : 0 };
}

/** Evaluates a model on every site's verified data (jobs), summing the counts; the round is appended to the model. */
export async function federatedEvaluate(model: FederatedModel, o: Pick<FedAvgOptions, 'sites' | 'limits' | 'onProgress' | 'seed'>): Promise<Evaluation> {
  const h = hyper({ seed: o.seed });
  const round = model.rounds.length;
  const opts: FedAvgOptions = { ...o, features: model.features, label: model.label };
  const r = await roundOf('evaluate', round, opts, { ...h, rounds: round - 1 }, () => ({
    mode: 'evaluate',
    features: model.features,
    label: model.label,
    weights: model.weights,
    mean: model.mean,
    std: model.std,
  }));
  const sum = { n: 0, tp: 0, fp: 0, tn: 0, fn: 0, loss: 0 };
  r.results.forEach((res, i) => {
    const v = valueOf(res, r.sites[i]?.site ?? '');
    for (const k of ['n', 'tp', 'fp', 'tn', 'fn', 'loss'] as const) {
      if (!finite(v[k])) fail('MALFORMED_MESSAGE', 'an evaluation result is not { n, tp, fp, tn, fn, loss }');
      sum[k] += v[k];
    }
  });
  model.rounds.push({ phase: 'evaluate', round, samples: sum.n, loss: sum.n > 0 ? sum.loss / sum.n : 0, sites: r.sites });
  return evaluation(sum);
}

/** Evaluates a model on local data (same job source, run in this process). */
export function evaluateLocally(model: Pick<FederatedModel, 'features' | 'label' | 'weights' | 'mean' | 'std'>, data: LocalData): Evaluation {
  return evaluation(runLocally(data, { mode: 'evaluate', features: model.features, label: model.label, weights: model.weights, mean: model.mean, std: model.std }));
}

/**
 * Centralized baseline: the same procedure on one pooled dataset in this process — global
 * standardisation, then `rounds × localEpochs` epochs of the same SGD from zero weights.
 */
export function trainCentralized(data: LocalData, o: Omit<FedAvgOptions, 'sites' | 'limits' | 'onProgress'>): Pick<FederatedModel, 'features' | 'label' | 'weights' | 'mean' | 'std'> {
  checkSpec(o.features, o.label);
  const h = hyper(o);
  const d = o.features.length;
  const base = { features: o.features, label: o.label };
  const { mean, std } = combineStats([runLocally<Record<string, unknown>>(data, { ...base, mode: 'stats' })], d);
  let weights = new Array<number>(d + 1).fill(0);
  for (let round = 1; round <= h.rounds; round++) {
    const r = runLocally<{ weights: number[] }>(data, {
      ...base,
      mode: 'train',
      weights,
      mean,
      std,
      epochs: h.localEpochs,
      learningRate: h.learningRate,
      batchSize: h.batchSize,
      l2: h.l2,
      seed: (h.seed * 1_000_003 + round * 7919) >>> 0,
    });
    weights = r.weights;
  }
  return { features: [...o.features], label: { ...o.label }, weights, mean, std };
}

// ------------------------------------------------------------------ provenance

/** A model as JSON, with every kept result, attestation and report as base64. */
export function modelToJson(m: FederatedModel): unknown {
  return {
    ...m,
    rounds: m.rounds.map((r) => ({
      ...r,
      sites: r.sites.map((s) => ({
        site: s.site,
        gateway: s.gateway,
        jobId: s.jobId,
        datasetId: s.datasetId,
        samples: s.samples,
        loss: s.loss,
        validRecords: s.validRecords,
        totalRecords: s.totalRecords,
        datasetCommitment: toHex(s.statement.datasetCommitment),
        inputRecords: s.statement.inputRecords,
        result: toBase64(s.result),
        attestation: toBase64(JobAttestation.encode(s.attestation).finish()),
        report: toBase64(SignedVerificationReport.encode(s.report).finish()),
      })),
    })),
  };
}

/** What {@link verifyProvenance} found for one kept job. */
export interface ProvenanceEntry {
  phase: Phase;
  round: number;
  site: string;
  gateway: string;
  jobId: string;
  datasetId: string;
  codeHash: string;
  runnerDigest: string;
  datasetCommitment: string;
  validRecords: number;
  totalRecords: number;
  inputRecords: number;
}

/**
 * Re-verifies, offline, every result a model was built from: each kept attestation against the
 * trust anchors (gateway role and signature), its result bytes and verification report, and that
 * every job ran the expected code. Accepts a {@link FederatedModel} or its {@link modelToJson}
 * form. Throws the first failure's code; returns one entry per job.
 */
export function verifyProvenance(model: unknown, anchors: TrustAnchors, o: { at?: Date } = {}): ProvenanceEntry[] {
  const m = model as { codeHash?: unknown; rounds?: unknown };
  if (typeof m !== 'object' || m === null || typeof m.codeHash !== 'string' || !Array.isArray(m.rounds)) fail('MALFORMED_MESSAGE', 'not a federated model');
  const expectedCode = m.codeHash;
  const out: ProvenanceEntry[] = [];
  for (const r of m.rounds as { phase: Phase; round: number; sites: unknown[] }[]) {
    for (const raw of r.sites as Record<string, unknown>[]) {
      const bytes = (v: unknown, what: string): Uint8Array => (v instanceof Uint8Array ? v : typeof v === 'string' ? fromBase64(v, what) : fail('MALFORMED_MESSAGE', `${what} missing`));
      const att = raw.attestation instanceof Uint8Array || typeof raw.attestation === 'string' ? JobAttestation.decode(bytes(raw.attestation, 'attestation')) : (raw.attestation as JobAttestation);
      const rep = raw.report instanceof Uint8Array || typeof raw.report === 'string' ? SignedVerificationReport.decode(bytes(raw.report, 'report')) : (raw.report as SignedVerificationReport);
      const v = verifyAttestation(att, anchors, { result: bytes(raw.result, 'result'), report: rep, jobId: String(raw.jobId), at: o.at });
      const codeHash = toHex(v.statement.codeHash);
      if (codeHash !== expectedCode) fail('ATTESTATION_MISMATCH', `job ${v.statement.jobId} ran code ${codeHash}, not the model's ${expectedCode}`);
      out.push({
        phase: r.phase,
        round: r.round,
        site: String(raw.site),
        gateway: v.gateway,
        jobId: v.statement.jobId,
        datasetId: v.statement.datasetId,
        codeHash,
        runnerDigest: toHex(v.statement.runner?.digest ?? new Uint8Array(0)),
        datasetCommitment: toHex(v.statement.datasetCommitment),
        validRecords: v.report?.validCount ?? 0,
        totalRecords: v.report?.recordCount ?? 0,
        inputRecords: v.statement.inputRecords,
      });
    }
  }
  return out;
}
