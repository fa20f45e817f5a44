/**
 * @module as-node
 * Starts a DIVS AS node: PKI (AS key + certificate under the consortium root CA), the ledger
 * (local SQLite, or a consortium ledger ordered by etcd: `ledger.type`), the UE index, the
 * CEF link (status lookups and the update subscription), and the gRPC server with RP-ud,
 * RP-ds and RP-dd services (plus ConsortiumService on a consortium), health and reflection.
 *
 * Run alone: `node as-node/src/main.ts --config as.json` or
 * `node as-node/src/main.ts --data-dir DIR --cef HOST:PORT [--port N] [--http-port N]`; prints
 * one JSON line `{"service":"as-node","port":…,"httpPort":…}` on stdout when ready; SIGINT/SIGTERM
 * stop it cleanly. The HTTP port serves the operator dashboard, /healthz, /readyz and /metrics.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { UeRegistrationServiceService } from '../../proto/gen/divs/v1/ue_as.ts';
import { VerificationDataServiceService } from '../../proto/gen/divs/v1/consumer_as.ts';
import { ConsortiumServiceService, LedgerSyncServiceService } from '../../proto/gen/divs/v1/as_sync.ts';
import { importPrivateKey, nodeSigner, OwnSignatures } from '../../protocol/src/suites.ts';
import { DivsError } from '../../protocol/src/errors.ts';
import { startupExitCode } from '../../platform/src/config.ts';
import { chainFromPem, createRootCa, issueCertificate, pemToDer } from '../../protocol/src/pki.ts';
import { RpcServer, grpc } from '../../platform/src/grpc.ts';
import { createLogger } from '../../platform/src/log.ts';
import { Metrics } from '../../platform/src/metrics.ts';
import type { RunningHttp } from '../../platform/src/http.ts';
import { MeteredContract } from './metrics.ts';
import { startAsHttp } from './http.ts';
import { LocalLedger } from './ledger/local.ts';
import { ConsortiumLedger } from './ledger/consortium/ledger.ts';
import { consortiumHandlers, openConsortiumLedger } from './ledger/consortium/node.ts';
import { Registry } from './registry.ts';
import { CryptoPool } from './crypto-pool.ts';
import { EndorsementContract } from './contract.ts';
import { CefLink } from './cef-link.ts';
import { Authenticator, type TokenGrant } from './auth.ts';
import { ueHandlers } from './rpc/ue.ts';
import { queryHandlers } from './rpc/query.ts';
import { syncHandlers } from './rpc/sync.ts';
import { loadAsConfig, parseAsConfig, type AsConfig, type AsConfigInput } from './config.ts';

export interface AsNode {
  port: number;
  url: string;
  ledgerId: string;
  contract: EndorsementContract;
  /** Root CA certificate (PEM) consumers use as trust anchor. */
  rootCaPem: string;
  /** Consumer bearer token (created in the data dir when none was configured). */
  consumerToken: string | undefined;
  /** Resolves once the CEF subscription is connected. */
  subscribed: Promise<void>;
  /** HTTP port (dashboard, /healthz, /readyz, /metrics); undefined when httpPort is -1. */
  httpPort: number | undefined;
  metrics: Metrics;
  close(): Promise<void>;
}

interface PkiFiles {
  rootCaPem: string;
  asCertPem: string;
  asKeyPem: string;
}

/** Loads the AS key and certificate; on the embedded default creates a root CA and AS cert once. */
async function ensurePki(cfg: AsConfig): Promise<PkiFiles> {
  const dir = join(cfg.dataDir, 'pki');
  const p = {
    rootCaCert: cfg.pki.rootCaCert ?? join(dir, 'root-ca.pem'),
    rootCaKey: cfg.pki.rootCaKey ?? join(dir, 'root-ca.key'),
    asCert: cfg.pki.asCert ?? join(dir, `${cfg.nodeName}.pem`),
    asKey: cfg.pki.asKey ?? join(dir, `${cfg.nodeName}.key`),
  };
  if (!existsSync(p.asCert) || !existsSync(p.asKey)) {
    if (!cfg.pki.autoPki) throw new Error(`AS certificate ${p.asCert} or key ${p.asKey} missing and autoPki is off`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    let ca;
    if (existsSync(p.rootCaCert) && existsSync(p.rootCaKey)) {
      ca = { certPem: readFileSync(p.rootCaCert, 'utf8'), keyPem: readFileSync(p.rootCaKey, 'utf8') };
    } else {
      ca = await createRootCa({ name: `DIVS consortium root CA (${cfg.ledgerId})`, validityDays: 3650 });
      writeFileSync(p.rootCaCert, ca.certPem);
      writeFileSync(p.rootCaKey, ca.keyPem, { mode: 0o600 });
    }
    // the AS certificate doubles as its TLS server certificate: name the addresses it serves on
    const ip = /^[0-9.]+$/.test(cfg.host) ? [cfg.host] : [];
    const leaf = await issueCertificate({ ca, subjectName: cfg.nodeName, role: 'as', validityDays: 825, dnsNames: ['localhost'], ipAddresses: ip.length ? ip : ['127.0.0.1'] });
    writeFileSync(p.asCert, leaf.certPem);
    writeFileSync(p.asKey, leaf.keyPem, { mode: 0o600 });
  }
  return { rootCaPem: readFileSync(p.rootCaCert, 'utf8'), asCertPem: readFileSync(p.asCert, 'utf8'), asKeyPem: readFileSync(p.asKey, 'utf8') };
}

function ensureTokens(cfg: AsConfig): { grants: TokenGrant[]; consumerToken: string | undefined } {
  if (cfg.tokens.length > 0) return { grants: cfg.tokens, consumerToken: cfg.tokens.find((t) => t.roles.includes('consumer'))?.token };
  const file = join(cfg.dataDir, 'consumer.token');
  if (!existsSync(file)) writeFileSync(file, randomBytes(24).toString('hex'), { mode: 0o600 });
  const token = readFileSync(file, 'utf8').trim();
  return { grants: [{ token, name: 'local-consumer', roles: ['consumer', 'peer', 'admin'] }], consumerToken: token };
}

export async function startAsNode(input: AsConfigInput | AsConfig, log: Logger = createLogger('as-node')): Promise<AsNode> {
  const cfg = parseAsConfig(input);
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  const pki = await ensurePki(cfg);
  const key = importPrivateKey(pki.asKeyPem);
  // a consortium node need not verify its own endorsements' signatures before proposing them
  const own = cfg.ledger.type === 'consortium' ? new OwnSignatures() : undefined;
  const signer = nodeSigner(key, own);
  // the whole chain in the certificate file (AS certificate, then e.g. its operator's CA)
  const certChain = chainFromPem(pki.asCertPem);
  const ledgerPath = join(cfg.dataDir, 'ledger.db');
  const ledger =
    cfg.ledger.type === 'consortium'
      ? await openConsortiumLedger(cfg.ledger, { path: ledgerPath, ledgerId: cfg.ledgerId, nodeName: cfg.nodeName, signer, certChain, log, ...(own ? { ownSignatures: own } : {}) })
      : await LocalLedger.open({ path: ledgerPath, ledgerId: cfg.ledgerId, signer, signerName: cfg.nodeName, certChain });
  const registry = new Registry(join(cfg.dataDir, 'index.db'));
  const replayed = registry.catchUp(ledger);
  if (replayed > 0) log.info({ replayed }, 'index caught up with the ledger');
  // other operators' endorsements reach the index as their blocks arrive
  if (ledger instanceof ConsortiumLedger) ledger.onForeignEntries((entries) => registry.index(entries));
  const pool = new CryptoPool(key, cfg.threads, own);
  const cef = new CefLink({ address: cfg.cef.address, token: cfg.cef.token, stateFile: join(cfg.dataDir, 'cef-subscription.json'), subscriber: cfg.nodeName, log });
  const { grants, consumerToken } = ensureTokens(cfg);
  const rootDer = pemToDer(pki.rootCaPem);
  const auth = new Authenticator(grants, [rootDer]);
  let credentials: grpc.ServerCredentials | undefined;
  if (cfg.tls.enabled) {
    const dir = join(cfg.dataDir, 'pki');
    const cert = readFileSync(cfg.tls.certFile ?? cfg.pki.asCert ?? join(dir, `${cfg.nodeName}.pem`));
    const privateKey = readFileSync(cfg.tls.keyFile ?? cfg.pki.asKey ?? join(dir, `${cfg.nodeName}.key`));
    const clientCa = readFileSync(cfg.tls.clientCaFile ?? cfg.pki.rootCaCert ?? join(dir, 'root-ca.pem'));
    credentials = grpc.ServerCredentials.createSsl(clientCa, [{ cert_chain: cert, private_key: privateKey }], cfg.tls.requireClientCert);
  }

  const metrics = new Metrics('as-node');
  const server = new RpcServer({ log, credentials, maxMessageBytes: cfg.maxMessageBytes, protoFiles: ['divs/v1/ue_as.proto', 'divs/v1/consumer_as.proto', 'divs/v1/as_sync.proto'], onCall: metrics.rpcHook() });
  // the entry address needs the port, known only after bind: bind first, serve after
  const entryAddress = { ledgerId: cfg.ledgerId, asUrls: [] as string[] };
  const contract: EndorsementContract = new MeteredContract(metrics, {
    ledger,
    registry,
    pool,
    status: cef,
    asId: cfg.nodeName,
    certChain,
    entryAddress,
    maxBatch: cfg.maxBatch,
    freshness: { maxAgeMs: cfg.registrationMaxAgeSec * 1000, maxFutureMs: 5 * 60_000 },
    log,
  });
  server
    .add(UeRegistrationServiceService, ueHandlers(contract))
    .add(VerificationDataServiceService, queryHandlers(contract, auth, pool, certChain))
    .add(LedgerSyncServiceService, syncHandlers(ledger, auth));
  if (ledger instanceof ConsortiumLedger) server.add(ConsortiumServiceService, consortiumHandlers(ledger, auth));
  const port = await server.listen(cfg.host, cfg.port);
  const url = `${cfg.tls.enabled ? 'grpcs' : 'grpc'}://${cfg.host}:${port}`;
  entryAddress.asUrls.push(...(cfg.publicUrls.length > 0 ? cfg.publicUrls : [url]));

  let following: Promise<void> = Promise.resolve();
  const subscribed = new Promise<void>((resolve) => {
    following = cef.follow(
      () => registry.meta('cef_sequence'),
      async (ev) => {
        await contract.applyStatusEvent(ev);
        registry.noteCefSequence(ev.sequence);
      },
      resolve,
    );
  });
  let cefUp = false;
  void subscribed.then(() => (cefUp = true));
  let http: RunningHttp | undefined;
  const close = async () => {
    await http?.close();
    cef.close();
    await server.close();
    await following.catch(() => undefined);
    await pool.close();
    ledger.close();
    registry.close();
  };
  if (cfg.httpPort >= 0) {
    const ready = () => ({ ready: cefUp, detail: { cefSubscription: cefUp ? 'connected' : 'connecting', ledgerHeight: ledger.info().height } });
    // nothing may stay open when start-up fails half-way (e.g. the HTTP port is taken)
    http = await startAsHttp({ contract, auth, asName: cfg.nodeName, metrics, log, host: cfg.httpHost, port: cfg.httpPort, ready }).catch(async (e: unknown) => {
      await close();
      throw e;
    });
  }
  log.info({ port, httpPort: http?.port, ledgerId: cfg.ledgerId, size: ledger.info().size }, 'AS node serving');

  return {
    port,
    url,
    ledgerId: cfg.ledgerId,
    contract,
    rootCaPem: pki.rootCaPem,
    consumerToken,
    subscribed,
    httpPort: http?.port,
    metrics,
    close,
  };
}

const AS_USAGE = `divs as-node [--config FILE] [--data-dir DIR] [--cef HOST:PORT] [--port N] [--http-port N]
             [--host H] [--ledger-id ID] [--name NAME] [--threads N] [--tls | --mtls]

Starts a DIVS AS node: registration and endorsement (RP-ud), queries with proofs (RP-ds), ledger
sync (RP-dd), the operator dashboard and /healthz /readyz /metrics on the HTTP port.
Configuration: FILE (JSON, schema in as-node/src/config.ts), then DIVS_AS_* environment
variables, then these flags. On first start the embedded default creates a consortium root CA
and the AS certificate under DIR/pki. Prints one JSON line with the ports when ready.`;

/** Command-line entry (`divs as-node …` and `node as-node/src/main.ts …`). */
export async function runCli(argv: string[] = process.argv.slice(2)): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${AS_USAGE}\n`);
    return;
  }
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      cef: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      'ledger-id': { type: 'string' },
      name: { type: 'string' },
      threads: { type: 'string' },
      'http-port': { type: 'string' },
      tls: { type: 'boolean' },
      mtls: { type: 'boolean' },
    },
  });
  const overrides: Record<string, unknown> = {};
  if (values['data-dir']) overrides.dataDir = values['data-dir'];
  if (values.cef) overrides.cef = { address: values.cef };
  if (values.port) overrides.port = Number(values.port);
  if (values.host) overrides.host = values.host;
  if (values['ledger-id']) overrides.ledgerId = values['ledger-id'];
  if (values.name) overrides.nodeName = values.name;
  if (values.threads) overrides.threads = Number(values.threads);
  if (values.tls || values.mtls) overrides.tls = { enabled: true, requireClientCert: values.mtls === true };
  if (values['http-port']) overrides.httpPort = Number(values['http-port']);
  const log = createLogger('as-node');
  const cfg = loadAsConfig(values.config, process.env, overrides);
  const node = await startAsNode(cfg, log);
  process.stdout.write(`${JSON.stringify({ service: 'as-node', port: node.port, pid: process.pid, ledgerId: node.ledgerId, url: node.url, ...(node.httpPort !== undefined ? { httpPort: node.httpPort } : {}) })}\n`);
  const stop = () => {
    node.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (import.meta.main) {
  runCli().catch((e: unknown) => {
    const code = e instanceof DivsError ? `${e.code}: ` : '';
    process.stderr.write(`as-node: ${code}${(e as Error).message}\n`);
    process.exit(startupExitCode(e));
  });
}
