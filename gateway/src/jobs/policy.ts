/**
 * @module jobs/policy
 * The aggregator's usage policy for consumer jobs [SC2-3] [SEC-1]: the `jobs` section of the
 * gateway configuration (zod) and the pure decisions taken from it.
 *
 * Per consumer (an entry named after it, else the `"*"` entry; no entry: no jobs at all):
 * - which datasets jobs may use (a subset of the datasets granted to the consumer);
 * - maximum resource limits, and the defaults a request that sets none gets;
 * - output constraints: largest released result, most groups, largest value per group, and the
 *   aggregation threshold — the fewest distinct UEs whose records make up every released group;
 * - code approval: SHA-256 hashes of job sources that run at once (allow-list), and whether
 *   other code waits for an operator's approval through the admin API or is refused;
 * - transport: `"any"`, `"tls"` (the gateway serves TLS) or `"mtls"` (the consumer is
 *   authenticated by its client certificate).
 *
 * A submission that breaks a rule is refused with a coded reason (POLICY_DATASET_DENIED,
 * POLICY_LIMIT_EXCEEDED, POLICY_CODE_NOT_APPROVED, POLICY_TRANSPORT_REQUIRED).
 */
import { z } from 'zod';
import { fail } from '../../../protocol/src/errors.ts';

const hash = z.string().regex(/^[0-9a-f]{64}$/i, 'a SHA-256 hash in hex');
const consumerName = z.string().min(1).max(128);

/** Limits as the enclave runner takes them (its bounds). */
const limitsShape = {
  memoryMb: z.number().int().min(8).max(16_384),
  cpuMs: z.number().int().min(1).max(3_600_000),
  wallMs: z.number().int().min(1).max(3_600_000),
  outputBytes: z.number().int().min(1).max(256 << 20),
};

export const JobLimitsSchema = z.object(limitsShape);
export type JobLimitValues = z.infer<typeof JobLimitsSchema>;

export const DEFAULT_JOB_LIMITS: Readonly<JobLimitValues> = Object.freeze({ memoryMb: 64, cpuMs: 5_000, wallMs: 10_000, outputBytes: 64 * 1024 });
export const DEFAULT_MAX_LIMITS: Readonly<JobLimitValues> = Object.freeze({ memoryMb: 256, cpuMs: 60_000, wallMs: 120_000, outputBytes: 1 << 20 });

export const JobPolicySchema = z.object({
  /** Consumer name, or "*" for every consumer without an entry of its own. */
  consumer: consumerName,
  /** Dataset IDs jobs may use; "*" = every dataset granted to the consumer. */
  datasets: z.array(z.string().min(1)).default(['*']),
  maxLimits: JobLimitsSchema.default({ ...DEFAULT_MAX_LIMITS }),
  /** Aggregation threshold: distinct UEs behind every released group. */
  minDistinctUes: z.number().int().min(1).max(1_000_000).default(5),
  /** Largest released result (JSON bytes; at most 32 MiB, which one gRPC answer carries with room to spare). */
  maxOutputBytes: z.number().int().min(64).max(32 << 20).default(1 << 20),
  maxGroups: z.number().int().min(1).max(100_000).default(256),
  /** Largest value of one group, in scalar values (see jobs/output.ts). */
  maxValuesPerGroup: z.number().int().min(1).max(10_000_000).default(4096),
  /** Most verified records one job may read. */
  maxRecords: z.number().int().min(1).max(100_000_000).default(1_000_000),
  /** Jobs of this consumer not yet finished (pending, queued or running). */
  maxActiveJobs: z.number().int().min(1).max(10_000).default(4),
  approval: z
    .object({
      /** SHA-256 (hex) of job sources that run without manual approval. */
      allowCodeHashes: z.array(hash).default([]),
      /** Other code waits for an operator (admin API) instead of being refused. */
      manual: z.boolean().default(false),
    })
    .default({ allowCodeHashes: [], manual: false }),
  transport: z.enum(['any', 'tls', 'mtls']).default('tls'),
});
export type JobPolicyConfig = z.infer<typeof JobPolicySchema>;

export const JobsConfigSchema = z.object({
  enabled: z.boolean().default(true),
  /** Enclave runner child processes (started at the first job). */
  runners: z.number().int().min(1).max(64).default(2),
  /** Jobs verifying or running at the same time. */
  concurrency: z.number().int().min(1).max(64).default(2),
  /** Jobs waiting to run; more are refused (POOL_UNAVAILABLE). */
  maxQueued: z.number().int().min(1).max(100_000).default(256),
  /** Finished jobs (results, attestations) are kept this many days. */
  retentionDays: z.number().min(0.0001).max(3650).default(30),
  defaultLimits: JobLimitsSchema.default({ ...DEFAULT_JOB_LIMITS }),
  /**
   * Reuse the verified snapshot of a dataset whose records did not change for at most this
   * long (ms) instead of verifying it again for every job; 0 (default): verify every job. The
   * report returned with a job then carries the time of the verification it reused.
   */
  verificationMaxAgeMs: z.number().int().min(0).max(86_400_000).default(0),
  /**
   * What a stored job state survives: "process" (default) a crash of the gateway process, with
   * no fsync per job; "power" also an OS crash or power loss (an fsync per state change, a few
   * ms per job). Jobs are deterministic and submissions carry idempotency keys, so a job rolled
   * back by a power loss runs again or is resubmitted with the same result.
   */
  durability: z.enum(['process', 'power']).default('process'),
  policies: z.array(JobPolicySchema).default([]),
  /** Operators of the admin API: bearer token (or sha256:<hex>) and/or client certificate CN = name. */
  admins: z.array(z.object({ name: consumerName, token: z.string().min(16).optional() })).default([]),
});
export type JobsConfig = z.infer<typeof JobsConfigSchema>;

/** How a call reached the gateway, for transport rules. */
export interface TransportFacts {
  /** The gateway serves TLS. */
  tls: boolean;
  /** The caller is authenticated by a verified client certificate naming it. */
  clientCertificate: boolean;
}

/** A submission as the policy sees it. */
export interface SubmissionFacts {
  consumer: string;
  datasetId: string;
  /** SHA-256 hex of the job source. */
  codeHash: string;
  /** Requested limits; 0 or undefined = default. */
  limits: Partial<JobLimitValues>;
  transport: TransportFacts;
  /** Jobs of this consumer not yet finished. */
  activeJobs: number;
  /** Code hashes an operator approved for this consumer earlier (remember_code). */
  approvedCodeHashes: ReadonlySet<string>;
}

/** What the policy decided for an accepted submission. */
export interface SubmissionDecision {
  policy: JobPolicyConfig;
  limits: JobLimitValues;
  /** "allow-list" (runs at once) or "manual" (waits for an operator). */
  approval: 'allow-list' | 'manual';
}

const LIMIT_KEYS = ['memoryMb', 'cpuMs', 'wallMs', 'outputBytes'] as const;

/** Decisions of the usage policy; pure (no I/O). */
export class PolicyEngine {
  readonly #byConsumer = new Map<string, JobPolicyConfig>();
  readonly #wildcard: JobPolicyConfig | undefined;
  readonly #defaults: JobLimitValues;

  constructor(cfg: Pick<JobsConfig, 'policies' | 'defaultLimits'>) {
    let wildcard: JobPolicyConfig | undefined;
    for (const p of cfg.policies) {
      if (p.consumer === '*') {
        if (wildcard) fail('CONFIG_INVALID', 'jobs.policies: two entries for "*"');
        wildcard = p;
        continue;
      }
      if (this.#byConsumer.has(p.consumer)) fail('CONFIG_INVALID', `jobs.policies: two entries for ${p.consumer}`);
      this.#byConsumer.set(p.consumer, p);
    }
    this.#wildcard = wildcard;
    this.#defaults = { ...cfg.defaultLimits };
  }

  /** The policy that applies to a consumer, or undefined (no jobs). */
  policyFor(consumer: string): JobPolicyConfig | undefined {
    return this.#byConsumer.get(consumer) ?? this.#wildcard;
  }

  /** Default limits of a policy: the gateway defaults, capped by the policy maxima. */
  defaultLimits(p: JobPolicyConfig): JobLimitValues {
    const out = { ...this.#defaults };
    for (const k of LIMIT_KEYS) out[k] = Math.min(out[k], p.maxLimits[k]);
    out.outputBytes = Math.min(out.outputBytes, p.maxOutputBytes);
    return out;
  }

  /** Whether a policy lets jobs use a dataset (that the consumer is granted anyway). */
  datasetAllowed(p: JobPolicyConfig, datasetId: string): boolean {
    return p.datasets.includes('*') || p.datasets.includes(datasetId);
  }

  /** Checks the transport rule; POLICY_TRANSPORT_REQUIRED when broken. */
  checkTransport(p: JobPolicyConfig, t: TransportFacts): void {
    if (p.transport === 'tls' && !t.tls) fail('POLICY_TRANSPORT_REQUIRED', 'the usage policy requires TLS for this consumer, and this gateway does not serve TLS');
    if (p.transport === 'mtls' && !(t.tls && t.clientCertificate)) {
      fail('POLICY_TRANSPORT_REQUIRED', 'the usage policy requires mTLS: authenticate with a client certificate (not a bearer token)');
    }
  }

  /**
   * Decides on a submission: refused with a POLICY_* code, or accepted with the limits to apply
   * and whether it must wait for manual approval.
   */
  decide(s: SubmissionFacts): SubmissionDecision {
    const p = this.policyFor(s.consumer);
    if (!p) fail('POLICY_DATASET_DENIED', `the usage policy grants ${s.consumer} no jobs on this gateway`);
    this.checkTransport(p, s.transport);
    if (!this.datasetAllowed(p, s.datasetId)) fail('POLICY_DATASET_DENIED', `the usage policy does not allow jobs on dataset ${s.datasetId}`);
    const limits = this.defaultLimits(p);
    for (const k of LIMIT_KEYS) {
      const v = s.limits[k];
      if (v === undefined || v === 0) continue;
      const max = k === 'outputBytes' ? Math.min(p.maxLimits.outputBytes, p.maxOutputBytes) : p.maxLimits[k];
      if (!Number.isSafeInteger(v) || v < 0) fail('INVALID_ARGUMENT', `limits.${k}: a non-negative integer`);
      if (v > max) fail('POLICY_LIMIT_EXCEEDED', `limits.${k} = ${v} exceeds the policy maximum ${max}`);
      const min = k === 'memoryMb' ? 8 : 1;
      if (v < min) fail('INVALID_ARGUMENT', `limits.${k}: at least ${min}`);
      limits[k] = v;
    }
    if (s.activeJobs >= p.maxActiveJobs) fail('POLICY_LIMIT_EXCEEDED', `${s.consumer} already has ${s.activeJobs} unfinished jobs (policy maximum ${p.maxActiveJobs})`);
    const hash = s.codeHash.toLowerCase();
    const listed = p.approval.allowCodeHashes.some((h) => h.toLowerCase() === hash) || s.approvedCodeHashes.has(hash);
    if (listed) return { policy: p, limits, approval: 'allow-list' };
    if (p.approval.manual) return { policy: p, limits, approval: 'manual' };
    fail('POLICY_CODE_NOT_APPROVED', `code ${hash} is not on the allow-list of ${s.consumer}, and the policy allows no manual approval`);
  }
}
