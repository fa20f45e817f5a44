/**
 * @module main
 * Starts an aggregator gateway: the record store, the verification engine (worker threads, AS
 * lookups), the gateway key and certificate, the gRPC server (IngestService +
 * GatewayConsumerService + job services, health, reflection, per-RPC metrics) and the HTTP
 * server (ingest, /healthz, /readyz, /metrics, and the operator dashboard with its report log
 * `reports.db`).
 *
 * Run alone: `node gateway/src/main.ts --config gateway.json` (schema in `config.ts`), with
 * overrides `--data-dir DIR --port N --http-port N`; prints one JSON line
 * `{"service":"gateway","port":…,"httpPort":…,"pid":…}` on stdout when ready; SIGINT/SIGTERM
 * stop it cleanly (records already acknowledged are on disk either way).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { GatewayConsumerServiceService } from '../../proto/gen/divs/v1/gateway.ts';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { startupExitCode } from '../../platform/src/config.ts';
import { chainFromPem, issueCertificate, pemBlocks, verifyChain } from '../../protocol/src/pki.ts';
import { importPrivateKey, rawPublicKey } from '../../protocol/src/suites.ts';
import { equalBytes } from '../../protocol/src/bytes.ts';
import { RpcServer } from '../../platform/src/grpc.ts';
import { startHttp, type RunningHttp } from '../../platform/src/http.ts';
import { createLogger, type Logger } from '../../platform/src/log.ts';
import { Metrics } from '../../platform/src/metrics.ts';
import { SignedVerificationReport } from '../../proto/gen/divs/v1/gateway.ts';
import { commonName } from '../../consumer/src/verify.ts';
import { GatewayAuth } from './auth.ts';
import { loadGatewayConfig, parseGatewayConfig, type GatewayConfig, type GatewayConfigInput } from './config.ts';
import { DatasetCatalog } from './datasets.ts';
import { GatewayExplorer } from './explorer.ts';
import { createHttpApp } from './http.ts';
import { IngestWriter, RecordParser } from './ingest.ts';
import { GatewayMetrics, MeteredIngestor } from './metrics.ts';
import { ReportLog } from './report-log.ts';
import { ReportSigner } from './report.ts';
import { consumerHandlers } from './rpc/consumer.ts';
import { RawIngestService, ingestHandlers } from './rpc/ingest.ts';
import { StoreView, type RecordStore } from './store.ts';
import { StoreWriter } from './writer.ts';
import { EndorsementResolver } from './verify/endorsements.ts';
import { VerificationEngine } from './verify/engine.ts';
import { VerifierPool } from './verify/pool.ts';
import { JobService } from './jobs/index.ts';
import { FINAL_STATES } from './jobs/store.ts';

export interface Gateway {
  /** gRPC port. */
  port: number;
  /** HTTP port: ingest, health, metrics, dashboard (null when disabled). */
  httpPort: number | null;
  /** `host:port` of the gRPC server. */
  address: string;
  name: string;
  /** Read-only view of the record store (writes go through the writer thread). */
  store: StoreView;
  engine: VerificationEngine;
  /** Gateway certificate chain (DER, leaf first). */
  certChain: Uint8Array[];
  /** The gateway's Prometheus registry (also served on the HTTP port at /metrics). */
  metrics: Metrics;
  close(): Promise<void>;
}

interface Pki {
  certPem: string;
  keyPem: string;
  anchors: Uint8Array[];
  anchorsPem: string;
}

const readText = (path: string, what: string): string => {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    fail('CONFIG_INVALID', `${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
  }
};

/** Loads the gateway key and certificate, issuing them on first start when `pki.enroll` is set. */
async function ensurePki(cfg: GatewayConfig): Promise<Pki> {
  const dir = join(cfg.dataDir, 'pki');
  const certPath = cfg.pki.cert ?? join(dir, `${cfg.name}.pem`);
  const keyPath = cfg.pki.key ?? join(dir, `${cfg.name}.key`);
  const enroll = cfg.pki.enroll;
  if (!existsSync(certPath) || !existsSync(keyPath)) {
    if (!enroll) fail('CONFIG_INVALID', `gateway certificate ${certPath} or key ${keyPath} missing (set pki.cert/pki.key, or pki.enroll to issue them)`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const ca = { certPem: readText(enroll.caCert, 'pki.enroll.caCert'), keyPem: readText(enroll.caKey, 'pki.enroll.caKey') };
    // at most 825 days, and never beyond the issuing CA's own validity
    const caUntil = new X509Certificate(ca.certPem).validToDate.getTime();
    const days = Math.min(825, Math.floor((caUntil - Date.now()) / 86_400_000) - 1);
    if (days < 1) fail('CONFIG_INVALID', 'pki.enroll.caCert expires within two days');
    // names a TLS client may dial the gateway by: localhost, and the listen address when it is an IP
    const ipAddresses = /^\d{1,3}(\.\d{1,3}){3}$/.test(cfg.host) && cfg.host !== '0.0.0.0' ? [cfg.host] : [];
    const leaf = await issueCertificate({ ca, subjectName: cfg.name, role: 'gateway', validityDays: days, dnsNames: ['localhost'], ipAddresses });
    writeFileSync(certPath, leaf.certPem);
    writeFileSync(keyPath, leaf.keyPem, { mode: 0o600 });
  }
  const anchorFiles = cfg.pki.trustAnchors.length > 0 ? cfg.pki.trustAnchors : enroll ? [enroll.caCert] : [];
  if (anchorFiles.length === 0) fail('CONFIG_INVALID', 'pki.trustAnchors: at least one consortium root CA certificate');
  const anchorsPem = anchorFiles.map((f) => readText(f, 'trust anchor')).join('');
  return { certPem: readText(certPath, 'pki.cert'), keyPem: readText(keyPath, 'pki.key'), anchors: pemBlocks(anchorsPem), anchorsPem };
}

/**
 * TLS with the gateway certificate that asks for (but does not require) a client certificate:
 * consumers may authenticate by mTLS or by a token over TLS. The handshake proves possession of
 * the client key; the chain and the "client" role are checked per call (auth.ts).
 */
function tlsCredentials(pki: Pki): grpc.ServerCredentials {
  const ca = Buffer.from(pki.anchorsPem);
  const identity = { certificate: Buffer.from(pki.certPem), privateKey: Buffer.from(pki.keyPem) };
  // updates are delivered after the listener is registered: grpc-js adds its watcher only after
  // subscribing, and an update delivered synchronously would reach nobody
  const provider: grpc.experimental.CertificateProvider = {
    addCaCertificateListener: (l) => queueMicrotask(() => l({ caCertificate: ca })),
    removeCaCertificateListener: () => undefined,
    addIdentityCertificateListener: (l) => queueMicrotask(() => l(identity)),
    removeIdentityCertificateListener: () => undefined,
  };
  // one provider serves both the identity and the CA (grpc-js' parameter names are swapped)
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
}

/** Starts a gateway in this process. */
export async function startGateway(input: GatewayConfigInput | GatewayConfig, log: Logger = createLogger('gateway')): Promise<Gateway> {
  const cfg = parseGatewayConfig(input);
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  const pki = await ensurePki(cfg);
  const key = importPrivateKey(pki.keyPem);
  const certChain = chainFromPem(pki.certPem);
  // the certificate must be ours, for our role, under our anchors: a report signed otherwise is worthless
  const own = verifyChain(certChain, pki.anchors, { role: 'gateway' });
  if (!equalBytes(rawPublicKey(own.publicKey), rawPublicKey(key))) fail('CONFIG_INVALID', 'pki.key does not match pki.cert');
  const gatewayId = commonName(own.subject);

  // the writer thread creates the file; the main thread reads it through its own connection
  const storePath = join(cfg.dataDir, 'records.db');
  const storeWriter = await StoreWriter.start({ path: storePath, durability: cfg.durability });
  const store = StoreView.open(storePath);
  const pool = new VerifierPool({ threads: cfg.verify.threads });
  const resolver = new EndorsementResolver({
    anchors: { roots: pki.anchors },
    tokens: cfg.as.tokens,
    timeoutMs: cfg.as.timeoutMs,
    attempts: cfg.as.attempts,
    backoffMs: cfg.as.backoffMs,
    latestTtlMs: cfg.as.latestTtlMs,
    cacheEntries: cfg.as.cacheEntries,
    allowedAsUrls: cfg.as.allowedUrls,
  });
  const engine = new VerificationEngine({ pool, resolver, requireGenesis: cfg.verify.requireGenesis, taskRecords: cfg.verify.taskRecords });
  const auth = new GatewayAuth({ consumers: cfg.consumers, ingestTokens: cfg.ingest.tokens, anchors: pki.anchors });
  const catalog = new DatasetCatalog(cfg.datasets, store);
  const writer = new IngestWriter(storeWriter);
  const metrics = new Metrics('gateway');
  const gm = new GatewayMetrics(metrics, { store, catalog, datasets: cfg.datasets, writer });
  engine.onOutcome((o) => gm.observeVerification(o));
  const ingestor = new MeteredIngestor(new RecordParser({ maxRecordBytes: cfg.ingest.maxRecordBytes, maxFrameRecords: cfg.ingest.maxFrameRecords }), writer, gm);
  const signer = new ReportSigner(key, certChain, gatewayId);
  // the dashboard's copy of every signed report issued (only when there is a dashboard to show it)
  const dashboard = cfg.dashboard.enabled && cfg.httpPort !== null;
  let reports: ReportLog | null = null;
  let jobs: JobService | null = null;
  let http: RunningHttp | null = null;
  let closing = false;
  const server = new RpcServer({ log, maxMessageBytes: cfg.maxMessageBytes, credentials: cfg.tls ? tlsCredentials(pki) : grpc.ServerCredentials.createInsecure(), protoFiles: ['divs/v1/gateway.proto', 'divs/v1/jobs.proto'], onCall: metrics.rpcHook() });
  const keepReport = (signed: SignedVerificationReport, meta: Parameters<ReportLog['add']>[1]) => {
    try {
      reports?.add(signed, meta);
    } catch (e) {
      log.warn({ err: (e as Error).message, dataset: meta.datasetId }, 'cannot keep a copy of a report for the dashboard');
    }
  };
  let port: number;
  try {
    reports = dashboard ? ReportLog.open(join(cfg.dataDir, 'reports.db'), cfg.dashboard.keepReports) : null;
    server
      .add(RawIngestService, ingestHandlers(ingestor, auth, cfg.ingest.window))
      .add(
        GatewayConsumerServiceService,
        consumerHandlers({ auth, catalog, engine, store, signer, concurrency: cfg.verify.concurrency, onReport: (signed, info) => keepReport(signed, { ...info, source: 'verify' }) }),
      );
    // consumer jobs (enclave runner started at the first job), closed before the store and verifier
    // jobs/ types its store as RecordStore but only reads through it (StoreQueries methods)
    const jobStore = store as unknown as RecordStore;
    jobs = cfg.jobs.enabled ? JobService.open({ config: cfg.jobs, tls: cfg.tls, dataDir: cfg.dataDir, auth, catalog, store: jobStore, engine, reportSigner: signer, key, certChain, gatewayId, anchors: pki.anchors, log }) : null;
    if (jobs) {
      gm.attachJobs(jobs.manager);
      jobs.manager.onChange((j) => {
        gm.jobChanged(j);
        if (FINAL_STATES.has(j.state) && j.report) {
          keepReport(SignedVerificationReport.decode(j.report), { datasetId: j.datasetId, source: 'job', consumer: j.consumer, jobId: j.id });
        }
      });
      jobs.register(server);
    }
    port = await server.listen(cfg.host, cfg.port);
    if (cfg.httpPort !== null) {
      let dash;
      if (reports) {
        // operators: the job admins, and the dashboard's own read-only operators
        const operators = new GatewayAuth({ consumers: [...cfg.jobs.admins, ...cfg.dashboard.operators], anchors: pki.anchors });
        if (cfg.jobs.admins.length + cfg.dashboard.operators.length === 0) log.warn('dashboard enabled without operators (jobs.admins, dashboard.operators): its API refuses every token');
        dash = { operators, explorer: new GatewayExplorer({ gatewayId, certChain, anchors: pki.anchors, catalog, datasets: cfg.datasets, metrics: gm, reports, jobs: jobs?.manager ?? null }) };
      }
      const app = createHttpApp({
        ingestor,
        auth,
        log,
        maxBodyBytes: cfg.maxMessageBytes,
        metrics,
        ready: () => (closing ? { ready: false, detail: { reason: 'shutting down' } } : { ready: true, detail: { gatewayId } }),
        ...(dash ? { dashboard: dash } : {}),
      });
      http = await startHttp(app, { host: cfg.host, port: cfg.httpPort });
    }
  } catch (e) {
    await server.close(0);
    await jobs?.close();
    await pool.close();
    resolver.close();
    store.close();
    await storeWriter.close();
    reports?.close();
    throw e;
  }
  log.info({ port, httpPort: http?.port ?? null, gatewayId, records: store.count(), dashboard: reports !== null }, 'gateway serving');

  return {
    port,
    httpPort: http?.port ?? null,
    address: `${cfg.host}:${port}`,
    name: gatewayId,
    store,
    engine,
    certChain,
    metrics,
    close: async () => {
      if (closing) return;
      closing = true;
      await http?.close();
      await server.close();
      await jobs?.close();
      // records already handed over are committed before the writer stops
      await writer.close();
      await storeWriter.close();
      await pool.close();
      resolver.close();
      store.close();
      reports?.close();
    },
  };
}

const USAGE = `divs gateway [--config FILE] [--data-dir DIR] [--port N] [--http-port N] [--host H] [--name NAME]

Starts an aggregator gateway (ingest, record store, verification engine, consumer and job API,
runner pool). Configuration: FILE (JSON, schema in gateway/src/config.ts), then DIVS_GW_*
environment variables, then these flags. Prints one JSON line with the ports when ready.`;

/** Command-line entry (`divs gateway …` and `node gateway/src/main.ts …`). */
export async function runCli(argv: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean' },
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      port: { type: 'string' },
      'http-port': { type: 'string' },
      host: { type: 'string' },
      name: { type: 'string' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const overrides: Record<string, unknown> = {};
  if (values['data-dir']) overrides.dataDir = values['data-dir'];
  if (values.port) overrides.port = Number(values.port);
  if (values['http-port']) overrides.httpPort = Number(values['http-port']);
  if (values.host) overrides.host = values.host;
  if (values.name) overrides.name = values.name;
  const log = createLogger('gateway');
  const cfg = loadGatewayConfig(values.config, process.env, overrides);
  const gw = await startGateway(cfg, log);
  process.stdout.write(`${JSON.stringify({ service: 'gateway', port: gw.port, httpPort: gw.httpPort, pid: process.pid, name: gw.name })}\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(1);
    stopping = true;
    gw.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (import.meta.main) {
  runCli().catch((e: unknown) => {
    process.stderr.write(`gateway: ${e instanceof DivsError ? `${e.code}: ` : ''}${(e as Error).message}\n`);
    process.exit(startupExitCode(e));
  });
}
