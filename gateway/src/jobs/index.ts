/**
 * @module jobs
 * Consumer jobs on the gateway [SC2-2] [SC2-3] [SC2-4] [SC2-5]: {@link JobService} puts
 * together the job store, the usage policy, the snapshot verifier, the enclave runner pool
 * (started at the first job, so a gateway that runs no jobs starts no sandbox processes), the
 * attestation signer and the two gRPC services, for `main.ts` to add to its server.
 *
 * @example
 * const jobs = JobService.open({ config: cfg.jobs, tls: cfg.tls, dataDir: cfg.dataDir, auth, catalog, store, engine, reportSigner, key, certChain, gatewayId, anchors, log });
 * jobs.register(server);
 * // … on shutdown, after the server stopped and before the store closes:
 * await jobs.close();
 */
import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { GatewayJobServiceService, JobAdminServiceService } from '../../../proto/gen/divs/v1/jobs.ts';
import { DivsError } from '../../../protocol/src/errors.ts';
import type { RpcServer } from '../../../platform/src/grpc.ts';
import { silentLogger, type Logger } from '../../../platform/src/log.ts';
import { measureRunner, RunnerPool } from '../../../enclave-runner/src/index.ts';
import { GatewayAuth } from '../auth.ts';
import type { DatasetCatalog } from '../datasets.ts';
import type { ReportSigner } from '../report.ts';
import type { RecordStore } from '../store.ts';
import type { VerificationEngine } from '../verify/engine.ts';
import { AttestationSigner } from './attestation.ts';
import { JobManager } from './manager.ts';
import { PolicyEngine, type JobsConfig } from './policy.ts';
import { adminHandlers, jobHandlers } from './rpc.ts';
import { SnapshotVerifier } from './snapshot.ts';
import { JobStore } from './store.ts';

export { JobsConfigSchema, type JobsConfig } from './policy.ts';

/** Params/metadata JSON the runner accepts per job (dictionaries travel in the metadata). */
const RUNNER_MAX_JSON_BYTES = 8 << 20;

export interface JobServiceOptions {
  config: JobsConfig;
  /** The gateway serves TLS (transport rules). */
  tls: boolean;
  /** The job database lives here (jobs.db). */
  dataDir: string;
  auth: GatewayAuth;
  catalog: DatasetCatalog;
  store: RecordStore;
  engine: VerificationEngine;
  reportSigner: ReportSigner;
  /** Gateway key, certificate chain (DER, leaf first) and name: the attestation signer. */
  key: KeyObject;
  certChain: Uint8Array[];
  gatewayId: string;
  /** Consortium root CAs (DER) admin client certificates chain to. */
  anchors: Uint8Array[];
  log?: Logger;
}

export class JobService {
  readonly manager: JobManager;
  readonly #jobs: JobStore;
  readonly #snapshots: SnapshotVerifier;
  readonly #auth: GatewayAuth;
  readonly #adminAuth: GatewayAuth;
  readonly #tls: boolean;
  readonly #config: JobsConfig;
  readonly #log: Logger;
  #pool: RunnerPool | undefined;
  #poolReady: Promise<RunnerPool> | undefined;
  #closed = false;

  private constructor(o: JobServiceOptions) {
    this.#config = o.config;
    this.#log = o.log ?? silentLogger;
    this.#tls = o.tls;
    this.#auth = o.auth;
    this.#adminAuth = new GatewayAuth({ consumers: o.config.admins, anchors: o.anchors });
    const policy = new PolicyEngine(o.config);
    this.#jobs = JobStore.open(join(o.dataDir, 'jobs.db'), o.config.durability);
    this.#snapshots = new SnapshotVerifier({ store: o.store, engine: o.engine });
    try {
      this.manager = new JobManager({
        store: this.#jobs,
        policy,
        catalog: o.catalog,
        snapshots: this.#snapshots,
        reportSigner: o.reportSigner,
        attestations: new AttestationSigner(o.key, o.certChain, o.gatewayId),
        runners: () => this.#runners(),
        measurement: measureRunner(),
        concurrency: o.config.concurrency,
        maxQueued: o.config.maxQueued,
        retentionMs: o.config.retentionDays * 86_400_000,
        verificationMaxAgeMs: o.config.verificationMaxAgeMs,
        log: this.#log,
      });
    } catch (e) {
      this.#jobs.close();
      throw e;
    }
  }

  /** Opens the job store and prepares the services (no sandbox process starts yet). */
  static open(o: JobServiceOptions): JobService {
    return new JobService(o);
  }

  /** The runner pool, started on first use; a pool that cannot start is retried by the next job. */
  #runners(): Promise<RunnerPool> {
    if (this.#closed) return Promise.reject(new DivsError('POOL_UNAVAILABLE', 'the gateway is shutting down'));
    this.#poolReady ??= (async () => {
      const pool = new RunnerPool({
        size: this.#config.runners,
        maxQueue: Math.max(256, this.#config.concurrency * 4),
        defaults: this.#config.defaultLimits,
        maxJsonBytes: RUNNER_MAX_JSON_BYTES,
        logger: this.#log,
      });
      this.#pool = pool;
      try {
        await pool.ready();
        this.#log.info({ runners: this.#config.runners, measurement: pool.measurement.digest }, 'enclave runner pool ready');
        return pool;
      } catch (e) {
        this.#pool = undefined;
        this.#poolReady = undefined;
        await pool.close();
        throw e;
      }
    })();
    return this.#poolReady;
  }

  /** Adds GatewayJobService and JobAdminService to the gateway's server. */
  register(server: RpcServer): void {
    const deps = { manager: this.manager, auth: this.#auth, adminAuth: this.#adminAuth, tls: this.#tls };
    server.add(GatewayJobServiceService, jobHandlers(deps)).add(JobAdminServiceService, adminHandlers(deps));
  }

  /** Stops the jobs (they run again at the next start), the runner processes and the job store. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.manager.close();
    await this.#pool?.close();
    this.#snapshots.close();
    this.#jobs.close();
  }
}
