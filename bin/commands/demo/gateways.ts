/**
 * @module commands/demo/gateways
 * The aggregators of the demo: each gateway gets a certificate (role "gateway") issued under the
 * consortium root CA, a configuration file in the demo's data directory (TLS, an ingest token,
 * one smart-meter dataset, the certificate issuer as its only consumer, authenticated by its
 * client certificate, and a usage policy with an aggregation threshold and an allow-list of the
 * two job sources the demo runs), and runs as its own process (`gateway/src/main.ts`).
 *
 * The consortium CA operator (here: the demo) issues the certificates, so no gateway ever holds
 * the CA key.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { issueCertificate, type CaCredentials } from '../../../protocol/src/pki.ts';
import { startService, type ChildService } from '../../../platform/src/spawn.ts';
import type { GatewayConfigInput } from '../../../gateway/src/config.ts';

/** What one demo gateway holds. */
export interface GatewaySpec {
  /** Gateway name: certificate CN and gateway ID in reports and attestations. */
  name: string;
  datasetId: string;
  description: string;
  /** Regions whose meters send to this gateway. */
  regions: string[];
}

export interface DemoGateway extends GatewaySpec {
  proc: ChildService;
  /**
   * `localhost:port` (gRPC over TLS: ingest, consumer service, job service). A host name, not
   * the IP: TLS clients send it as SNI, which may not be an IP address (RFC 6066).
   */
  address: string;
  /** What meters are told over the air. */
  url: string;
  httpPort: number | null;
  configPath: string;
}

export interface GatewaySetup {
  /** Demo data directory; each gateway gets `<dir>/<name>/` and `<dir>/<name>.json`. */
  dir: string;
  ca: CaCredentials;
  /** Path of the consortium root CA certificate (trust anchor). */
  rootPemPath: string;
  /** The AS the records name, and the token the gateway uses for RP-ds queries. */
  asUrl: string;
  asToken: string;
  /** Consumer name (= CN of its client certificate). */
  consumer: string;
  /** Bearer token meters present when they stream readings. */
  ingestToken: string;
  contentType: string;
  /** SHA-256 (hex) of the job sources that run without manual approval. */
  allowCodeHashes: string[];
  /** Aggregation threshold: distinct meters behind every released group. */
  minDistinctUes: number;
  env?: NodeJS.ProcessEnv;
}

/** The configuration file of one gateway (schema in gateway/src/config.ts). */
export function gatewayConfig(spec: GatewaySpec, s: GatewaySetup): GatewayConfigInput {
  const data = join(s.dir, spec.name);
  return {
    dataDir: data,
    name: spec.name,
    host: '127.0.0.1',
    port: 0,
    httpPort: 0,
    tls: true,
    pki: { cert: join(data, 'pki', `${spec.name}.pem`), key: join(data, 'pki', `${spec.name}.key`), trustAnchors: [s.rootPemPath] },
    // only the demo's AS is dialled, whatever URL a record names
    as: { tokens: { '*': s.asToken }, allowedUrls: [s.asUrl], timeoutMs: 5000, attempts: 3, backoffMs: 200 },
    verify: { threads: 1, concurrency: 1 },
    consumers: [{ name: s.consumer }],
    ingest: { tokens: [s.ingestToken] },
    datasets: [{ id: spec.datasetId, description: spec.description, schema: 'urn:divs:usecase:I.2', channel: 'meters', contentTypes: [s.contentType], grants: [s.consumer] }],
    jobs: {
      runners: 1,
      concurrency: 2,
      // the training rounds reuse the verified snapshot of an unchanged dataset for a minute
      verificationMaxAgeMs: 60_000,
      policies: [
        {
          consumer: s.consumer,
          datasets: [spec.datasetId],
          minDistinctUes: s.minDistinctUes,
          maxGroups: 16,
          transport: 'mtls',
          approval: { allowCodeHashes: s.allowCodeHashes, manual: false },
        },
      ],
    },
  };
}

/** Issues the gateway certificate, writes the config and starts the gateway process. */
export async function startDemoGateway(spec: GatewaySpec, s: GatewaySetup): Promise<DemoGateway> {
  const cfg = gatewayConfig(spec, s);
  const pkiDir = join(s.dir, spec.name, 'pki');
  mkdirSync(pkiDir, { recursive: true, mode: 0o700 });
  const leaf = await issueCertificate({ ca: s.ca, subjectName: spec.name, role: 'gateway', validityDays: 30, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  writeFileSync(join(pkiDir, `${spec.name}.pem`), leaf.certPem);
  writeFileSync(join(pkiDir, `${spec.name}.key`), leaf.keyPem, { mode: 0o600 });
  const configPath = join(s.dir, `${spec.name}.json`);
  // the file holds the ingest token: readable by its owner only
  writeFileSync(configPath, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
  const proc = await startService(['gateway/src/main.ts', '--config', configPath], { env: s.env });
  const httpPort = typeof proc.ready.httpPort === 'number' ? proc.ready.httpPort : null;
  return { ...spec, proc, address: `localhost:${proc.port}`, url: `grpcs://localhost:${proc.port}`, httpPort, configPath };
}

/** Issues the consumer's client certificate (role "client") and writes it under `<dir>/consumer/`. */
export async function issueConsumerCertificate(dir: string, ca: CaCredentials, name: string): Promise<{ certPem: string; keyPem: string; certPath: string }> {
  const out = join(dir, 'consumer');
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const c = await issueCertificate({ ca, subjectName: name, role: 'client', validityDays: 30 });
  const certPath = join(out, `${name}.pem`);
  writeFileSync(certPath, c.certPem);
  writeFileSync(join(out, `${name}.key`), c.keyPem, { mode: 0o600 });
  return { certPem: c.certPem, keyPem: c.keyPem, certPath };
}
