/**
 * @module commands/demo/aggregator
 * The aggregator-initiated half of the demo (scenario 10.2), seen from the data consumer (the
 * green-certificate issuer), who authenticates to each gateway with its client certificate
 * (mTLS) and trusts only the consortium root CA:
 * - lists the dataset descriptions each gateway shares — never raw data [SC2-1];
 * - asks each gateway to verify its dataset and checks the signed report [SC2-2];
 * - runs the "green energy per region" job on both gateways and checks each attestation
 *   against the usage policy it agreed to (code, runner measurement, report, result) [SC2-3]
 *   [SC2-4];
 * - trains a logistic regression with FedAvg across both gateways, every job attested, and
 *   re-verifies the whole provenance offline at the end [SC2-5].
 * Each step returns plain facts for the summary and the `--json` output.
 */
import { toHex } from '../../../protocol/src/bytes.ts';
import { DivsError } from '../../../protocol/src/errors.ts';
import type { grpc } from '../../../platform/src/grpc.ts';
import { GatewayConsumer } from '../../../consumer/src/report.ts';
import { FINAL_JOB_STATES, JobClient, codeHashOf, jobStateName, verifyAttestation, type JobStatus } from '../../../consumer/src/jobs.ts';
import { federatedEvaluate, federatedTrain, verifyProvenance, type Evaluation, type FedAvgProgress, type FederatedSite } from '../../../consumer/src/fedavg.ts';
import { LOGREG_SOURCE, type LabelSpec } from '../../../consumer/src/models/logreg.ts';
import type { TrustAnchors } from '../../../consumer/src/verify.ts';
import { GREEN_ENERGY_GROUP_BY, GREEN_ENERGY_SOURCE, type GreenEnergy } from './green-energy.ts';

/** One gateway as the consumer reaches it. */
export interface ConsumerSite {
  gateway: string;
  datasetId: string;
  address: string;
  credentials: grpc.ChannelCredentials;
}

export interface DatasetFacts {
  gateway: string;
  datasetId: string;
  description: string;
  schema: string;
  records: number;
  ues: number;
  firstTimestampMs: number;
  lastTimestampMs: number;
}

export interface ReportFacts {
  gateway: string;
  datasetId: string;
  /** Common name of the certificate that signed the report (checked against the root CA). */
  signedBy: string;
  signatureVerified: boolean;
  records: number;
  valid: number;
  invalid: number;
  byReason: Record<string, number>;
  unverified: Record<string, number>;
  chain: { gaps: number; missingRecords: number; forks: number; replays: number; reordered: number };
  ues: number;
  complete: boolean;
  datasetCommitment: string;
  commitmentSize: number;
}

export interface AttestationFacts {
  jobId: string;
  gateway: string;
  consumer: string;
  datasetId: string;
  codeHash: string;
  runnerVersion: string;
  runnerDigest: string;
  datasetCommitment: string;
  commitmentSize: number;
  inputRecords: number;
  inputUes: number;
  resultHash: string;
  approval: string;
  signatureVerified: boolean;
}

export interface JobRunFacts {
  gateway: string;
  jobId: string;
  /** States the consumer saw while watching, in order. */
  states: string[];
  state: string;
  errorCode?: string;
  errorMessage?: string;
  suppressedGroups?: number;
  attestation?: AttestationFacts;
}

export interface RegionFacts extends GreenEnergy {
  gateway: string;
  /** Distinct meters and verified readings behind the value, as counted by the gateway. */
  meters: number;
  readings: number;
}

export interface JobFacts {
  name: string;
  codeHash: string;
  groupBy: string[];
  /** The aggregation threshold of the gateways' usage policy. */
  minDistinctUes: number;
  /** SUCCEEDED when every gateway's job succeeded and its attestation verified. */
  state: string;
  regions: Record<string, RegionFacts>;
  suppressedGroups: number;
  runs: JobRunFacts[];
}

export interface RoundFacts {
  round: number;
  samples: number;
  /** Sample-weighted training loss reported by the gateways. */
  loss: number;
  /** Accuracy of the round's global model, evaluated by attested jobs on every gateway. */
  accuracy: number;
  /** Jobs of this round whose attestation (and report) verified, of `gateways`. */
  attestationsVerified: number;
  gateways: number;
}

export interface TrainingFacts {
  model: string;
  features: string[];
  label: string;
  codeHash: string;
  gateways: string[];
  rounds: RoundFacts[];
  /** Accuracy of the final model on every gateway's verified records. */
  accuracy: number;
  samples: number;
  /** Every job behind the model (statistics, training, evaluation), re-verified offline. */
  attestedJobs: number;
  allAttestationsVerified: boolean;
  errorCode?: string;
  errorMessage?: string;
}

const hex = (b: Uint8Array | undefined): string => toHex(b ?? new Uint8Array(0));

const reasonMap = (list: { reason: string; count: number }[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const r of list) out[r.reason] = (out[r.reason] ?? 0) + r.count;
  return out;
};

const errorFacts = (e: unknown): { errorCode: string; errorMessage: string } =>
  e instanceof DivsError ? { errorCode: e.code, errorMessage: e.message } : { errorCode: 'INTERNAL', errorMessage: e instanceof Error ? e.message : String(e) };

/** ListDatasets on every gateway [SC2-1]. */
export async function listDatasets(sites: ConsumerSite[], anchors: TrustAnchors): Promise<DatasetFacts[]> {
  const lists = await Promise.all(
    sites.map(async (s) => {
      const c = new GatewayConsumer({ address: s.address, credentials: s.credentials, anchors });
      try {
        return (await c.listDatasets({ omitUes: true })).map((d) => ({
          gateway: s.gateway,
          datasetId: d.datasetId,
          description: d.description,
          schema: d.schema,
          records: d.recordCount,
          ues: d.ueCount,
          firstTimestampMs: d.firstTimestampMs,
          lastTimestampMs: d.lastTimestampMs,
        }));
      } finally {
        c.close();
      }
    }),
  );
  return lists.flat();
}

/** VerifyDataset on every gateway; each signed report is checked with the consumer SDK [SC2-2]. */
export async function verifyDatasets(sites: ConsumerSite[], anchors: TrustAnchors): Promise<ReportFacts[]> {
  return Promise.all(
    sites.map(async (s) => {
      const c = new GatewayConsumer({ address: s.address, credentials: s.credentials, anchors });
      try {
        // verifyDataset checks chain (role "gateway" under the root), signature, dataset and nonce
        const { report: r, gateway } = await c.verifyDataset(s.datasetId);
        const invalid = r.invalid.reduce((n, x) => n + x.count, 0);
        return {
          gateway: s.gateway,
          datasetId: r.datasetId,
          signedBy: gateway,
          signatureVerified: true,
          records: r.recordCount,
          valid: r.validCount,
          invalid,
          byReason: reasonMap(r.invalid),
          unverified: reasonMap(r.unverified),
          chain: { gaps: r.chain?.gaps ?? 0, missingRecords: r.chain?.missingRecords ?? 0, forks: r.chain?.forks ?? 0, replays: r.chain?.replays ?? 0, reordered: r.chain?.reordered ?? 0 },
          ues: r.ueCount,
          complete: r.complete,
          datasetCommitment: hex(r.datasetCommitment),
          commitmentSize: r.commitmentSize,
        };
      } finally {
        c.close();
      }
    }),
  );
}

/**
 * Runs "green energy per region" on every gateway: learns the usage policy, submits, watches,
 * fetches the result and checks its attestation against what was agreed (code hash, runner
 * measurement, report, result bytes). A job that fails is reported with its code, not thrown.
 */
export async function runGreenEnergyJob(sites: ConsumerSite[], anchors: TrustAnchors, onStatus: (gateway: string, s: JobStatus) => void): Promise<JobFacts> {
  const codeHash = codeHashOf(GREEN_ENERGY_SOURCE);
  let minDistinctUes = 0;
  const regions: Record<string, RegionFacts> = {};
  let suppressed = 0;
  const runs = await Promise.all(
    sites.map(async (s): Promise<JobRunFacts> => {
      const c = new JobClient({ address: s.address, credentials: s.credentials, anchors });
      const states: string[] = [];
      const seen = (st: JobStatus) => {
        const name = jobStateName(st.state);
        if (states.at(-1) !== name) {
          states.push(name);
          onStatus(s.gateway, st);
        }
      };
      let jobId = '';
      try {
        const policy = await c.policy();
        minDistinctUes = Math.max(minDistinctUes, policy.output?.minDistinctUes ?? 0);
        const first = await c.submit({ datasetId: s.datasetId, code: GREEN_ENERGY_SOURCE, params: { digits: 3 }, groupBy: GREEN_ENERGY_GROUP_BY });
        jobId = first.jobId;
        seen(first);
        const last = FINAL_JOB_STATES.has(first.state) ? first : await c.watch(first.jobId, seen);
        // result() verifies the attestation and report, and binds code, params, nonce and dataset
        const r = await c.result<GreenEnergy>(first.jobId, { runnerDigest: policy.runner?.digest });
        // checked once more, explicitly, as an auditor holding only the root CA would
        const v = verifyAttestation(r.attestation, anchors, { result: r.result, report: r.signedReport, jobId, codeHash: r.statement.codeHash });
        for (const g of r.document.groups) {
          const region = String(g.key.region);
          regions[region] = { gateway: s.gateway, meters: g.ues, readings: g.records, solarKWh: g.value.solarKWh, exportedKWh: g.value.exportedKWh };
        }
        suppressed += r.document.suppressedGroups;
        const st = v.statement;
        return {
          gateway: s.gateway,
          jobId,
          states,
          state: jobStateName(last.state),
          suppressedGroups: r.document.suppressedGroups,
          attestation: {
            jobId: st.jobId,
            gateway: v.gateway,
            consumer: st.consumer,
            datasetId: st.datasetId,
            codeHash: hex(st.codeHash),
            runnerVersion: st.runner?.version ?? '',
            runnerDigest: hex(st.runner?.digest),
            datasetCommitment: hex(st.datasetCommitment),
            commitmentSize: st.commitmentSize,
            inputRecords: st.inputRecords,
            inputUes: st.inputUes,
            resultHash: hex(st.resultHash),
            approval: st.approval,
            signatureVerified: true,
          },
        };
      } catch (e) {
        return { gateway: s.gateway, jobId, states, state: states.at(-1) ?? 'NOT_SUBMITTED', ...errorFacts(e) };
      } finally {
        c.close();
      }
    }),
  );
  const ok = runs.every((r) => r.state === 'SUCCEEDED' && r.attestation?.signatureVerified === true);
  return {
    name: 'green energy per region',
    codeHash,
    groupBy: GREEN_ENERGY_GROUP_BY,
    minDistinctUes,
    state: ok ? 'SUCCEEDED' : (runs.find((r) => r.state !== 'SUCCEEDED')?.state ?? 'FAILED'),
    regions: Object.fromEntries(Object.entries(regions).sort(([a], [b]) => a.localeCompare(b))),
    suppressedGroups: suppressed,
    runs,
  };
}

export interface TrainingOptions {
  features: string[];
  label: LabelSpec;
  rounds: number;
  localEpochs: number;
  learningRate: number;
  batchSize: number;
  seed: number;
  /** Called once per finished round (statistics = round 0). */
  onRound?: (p: FedAvgProgress) => void;
}

const OPS = { eq: '==', ne: '!=', gt: '>', ge: '>=', lt: '<', le: '<=' } as const;

/**
 * FedAvg across the gateways [SC2-5]; then each training round's global model is evaluated by
 * attested jobs on every gateway, and every attestation behind the model is re-verified offline.
 */
export async function trainAcross(sites: ConsumerSite[], anchors: TrustAnchors, o: TrainingOptions): Promise<TrainingFacts> {
  const clients = sites.map((s) => new JobClient({ address: s.address, credentials: s.credentials, anchors }));
  const fed: FederatedSite[] = sites.map((s, i) => ({ name: s.gateway, datasetId: s.datasetId, client: clients[i] as JobClient }));
  const base = {
    model: 'FedAvg logistic regression',
    features: o.features,
    label: `${o.label.column} ${OPS[o.label.op]} ${o.label.value}`,
    codeHash: codeHashOf(LOGREG_SOURCE),
    gateways: sites.map((s) => s.gateway),
  };
  const reported = new Set<string>();
  const onProgress = (p: FedAvgProgress) => {
    const key = `${p.phase}:${p.round}`;
    if (p.sitesDone === p.sites && FINAL_JOB_STATES.has(p.status.state) && !reported.has(key)) {
      reported.add(key);
      o.onRound?.(p);
    }
  };
  try {
    const model = await federatedTrain({ sites: fed, features: o.features, label: o.label, rounds: o.rounds, localEpochs: o.localEpochs, learningRate: o.learningRate, batchSize: o.batchSize, seed: o.seed, onProgress });
    const trained = model.rounds.filter((r) => r.phase === 'train');
    // accuracy of each round's global model, measured where the data is (attested jobs too)
    const evaluations: Evaluation[] = [];
    for (const r of trained) {
      const snapshot = { ...model, weights: r.weights ?? model.weights, rounds: [...model.rounds] };
      evaluations.push(await federatedEvaluate(snapshot, { sites: fed }));
      // keep the evaluation jobs with the model, so they are re-verified below too
      const evalRound = snapshot.rounds.at(-1);
      if (evalRound) model.rounds.push({ ...evalRound, round: model.rounds.length });
    }
    // everything the model rests on, checked again offline with only the root CA
    const entries = verifyProvenance(model, anchors);
    const rounds: RoundFacts[] = trained.map((r, i) => ({
      round: r.round,
      samples: r.samples,
      loss: r.loss,
      accuracy: evaluations[i]?.accuracy ?? 0,
      attestationsVerified: entries.filter((e) => e.phase === 'train' && e.round === r.round).length,
      gateways: sites.length,
    }));
    const final = evaluations.at(-1);
    return {
      ...base,
      rounds,
      accuracy: final?.accuracy ?? 0,
      samples: final?.n ?? 0,
      attestedJobs: entries.length,
      allAttestationsVerified: entries.length === model.rounds.reduce((n, r) => n + r.sites.length, 0),
    };
  } catch (e) {
    return { ...base, rounds: [], accuracy: 0, samples: 0, attestedJobs: 0, allAttestationsVerified: false, ...errorFacts(e) };
  } finally {
    for (const c of clients) c.close();
  }
}
