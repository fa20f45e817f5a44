/**
 * @module main
 * Entry point of the CEF simulator: one process per operator (PLMN ID) with its own data
 * directory. As a library: {@link startCef}. As a script:
 *
 * ```sh
 * node cef/src/main.ts --data-dir ./data/cef-00101 --plmn 00101 --operator "Test Network" --port 0
 * ```
 *
 * prints one JSON line `{"service":"cef","port":N,"pid":P,"httpPort":H}` to stdout once it serves
 * (`--http-port`, default 0 = any free port, -1 = none: /healthz, /readyz, /metrics), logs
 * (JSON, pino) to stderr, and stops gracefully on SIGINT/SIGTERM (a second signal forces).
 * Bearer tokens: `--token T` (repeatable) / `--management-token T`, or, to keep them out of the
 * process list, the comma-separated env vars DIVS_CEF_TOKENS / DIVS_CEF_MANAGEMENT_TOKENS.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { createLogger, silentLogger, type Logger } from '../../platform/src/log.ts';
import { Metrics } from '../../platform/src/metrics.ts';
import { createHttpApp, startHttp, type RunningHttp } from '../../platform/src/http.ts';
import { createCefServer } from './rpc.ts';
import { Usm, validatePlmnId } from './usm.ts';
import { loadCefConfig } from './config.ts';
import { startupExitCode } from '../../platform/src/config.ts';

/** Name of the database file inside the data directory. */
export const DB_FILE = 'cef.sqlite';

export interface CefOptions {
  /** Directory holding the subscriber database; created when missing. */
  dataDir: string;
  /** PLMN ID (MCC + MNC) of the operator; fixed for a data directory. */
  plmnId: string;
  operatorName: string;
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Listen port; 0 (default) picks a free one. */
  port?: number;
  /** Bearer tokens for the exposure (and management) service; none: open. */
  tokens?: string[];
  /** Separate bearer tokens for the operator management service. */
  managementTokens?: string[];
  /** HTTP port for /healthz, /readyz and /metrics (on `host`); 0 (default) any free port, -1 none. */
  httpPort?: number;
  /** How often to record expired contracts as terminated (ms); default 60 000, 0 disables. */
  expirySweepMs?: number;
  log?: Logger;
}

export interface RunningCef {
  port: number;
  /** `host:port` to dial. */
  address: string;
  /** Port of /healthz, /readyz and /metrics; undefined when disabled. */
  httpPort: number | undefined;
  /** Ends live streams, drains calls (up to `graceMs`), closes the database. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Starts a CEF in this process.
 * @example
 * const cef = await startCef({ dataDir: '/tmp/cef', plmnId: '00101', operatorName: 'Test Net' });
 * // ... new CefClient(cef.address) ...
 * await cef.close();
 */
export async function startCef(opts: CefOptions): Promise<RunningCef> {
  const log = opts.log ?? silentLogger;
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail('CONFIG_INVALID', 'port: must be 0..65535');
  const httpPort = opts.httpPort ?? 0;
  if (!Number.isInteger(httpPort) || httpPort < -1 || httpPort > 65535) fail('CONFIG_INVALID', 'httpPort: must be -1..65535');
  if (!opts.dataDir) fail('CONFIG_INVALID', 'dataDir: missing');
  validatePlmnId(opts.plmnId);
  mkdirSync(opts.dataDir, { recursive: true });
  const usm = Usm.open({ path: join(opts.dataDir, DB_FILE), plmnId: opts.plmnId, operatorName: opts.operatorName });
  const server = createCefServer({
    usm,
    log,
    ...(opts.tokens ? { tokens: opts.tokens } : {}),
    ...(opts.managementTokens ? { managementTokens: opts.managementTokens } : {}),
  });
  const metrics = new Metrics('cef');
  server.observeCalls(metrics.rpcHook());
  metrics.gauge('divs_cef_event_sequence', 'sequence number of the newest status event', [], (g) => g.set(usm.latestSequence()));
  let bound: number;
  try {
    bound = await server.listen(host, port);
  } catch (e) {
    usm.close();
    fail('CONFIG_INVALID', `cannot listen on ${host}:${port}: ${(e as Error).message}`, e);
  }
  const sweepMs = opts.expirySweepMs ?? 60_000;
  const sweep = () => {
    try {
      const n = usm.sweepExpired().length;
      if (n > 0) log.info({ terminated: n }, 'expired contracts recorded as terminated');
    } catch (err) {
      log.error({ err }, 'expiry sweep failed');
    }
  };
  sweep();
  const timer = sweepMs > 0 ? setInterval(sweep, sweepMs) : undefined;
  timer?.unref();
  let http: RunningHttp | undefined;
  if (httpPort >= 0) {
    // ready while serving; not ready once close() began
    const app = createHttpApp({ service: 'cef', log, metrics, ready: () => closing === undefined });
    http = await startHttp(app, { host, port: httpPort }).catch(async (e: unknown) => {
      if (timer) clearInterval(timer);
      await server.close(0);
      usm.close();
      throw e;
    });
  }
  log.info({ host, port: bound, httpPort: http?.port, plmnId: opts.plmnId, dataDir: opts.dataDir }, 'cef serving');

  let closing: Promise<void> | undefined;
  return {
    port: bound,
    address: `${host.includes(':') ? `[${host}]` : host}:${bound}`,
    httpPort: http?.port,
    close(graceMs = 2000) {
      closing ??= (async () => {
        await http?.close();
        if (timer) clearInterval(timer);
        // live Subscribe streams never end on their own: end them first so the drain can finish
        usm.stopStreams();
        await server.close(graceMs);
        usm.close();
        log.info('cef stopped');
      })();
      return closing;
    },
  };
}


/** Command-line entry (`divs cef …` and `node cef/src/main.ts …`). */
const CEF_USAGE = `divs cef [--config FILE] [--data-dir DIR] [--plmn MCCMNC] [--operator NAME] [--host H] [--port N]
         [--http-port N] [--token T]... [--management-token T]... [--expiry-sweep-ms N]

Starts a CEF simulator: the operator's subscriber database (SQLite under DIR), account status
lookups, status event subscriptions, operator actions and over-the-air device configuration
(RP-edl). Configuration: FILE (JSON, schema in cef/src/config.ts), then DIVS_CEF_* environment
variables (DATA_DIR, PLMN, PORT, HTTP_PORT, TOKENS, MANAGEMENT_TOKENS), then these flags; data
dir and PLMN are required. --token grants lookups and subscriptions (also DIVS_CEF_TOKENS, comma-separated),
--management-token grants provisioning and operator actions (DIVS_CEF_MANAGEMENT_TOKENS).
--http-port -1 disables HTTP (/healthz, /readyz, /metrics). Prints one JSON line when ready.`;

export async function runCli(argv: string[] = process.argv.slice(2)): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${CEF_USAGE}\n`);
    return;
  }
  const log = createLogger('cef');
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        'data-dir': { type: 'string' },
        plmn: { type: 'string' },
        operator: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        'http-port': { type: 'string' },
        token: { type: 'string', multiple: true },
        'management-token': { type: 'string', multiple: true },
        'expiry-sweep-ms': { type: 'string' },
      },
      strict: true,
    }).values;
  } catch (e) {
    process.stderr.write(`cef: CONFIG_INVALID: ${(e as Error).message}\n${CEF_USAGE}\n`);
    process.exit(2);
  }
  let cef: RunningCef;
  try {
    // flags override the environment, which overrides the file; the schema names bad fields
    const num = (v: string | undefined, name: string): number | undefined => {
      if (v === undefined) return undefined;
      if (!/^-?[0-9]+$/.test(v)) fail('CONFIG_INVALID', `--${name}: not a number`);
      return Number(v);
    };
    const flags: Record<string, unknown> = {
      dataDir: args['data-dir'],
      plmnId: args.plmn,
      operatorName: args.operator,
      host: args.host,
      port: num(args.port, 'port'),
      httpPort: num(args['http-port'], 'http-port'),
      expirySweepMs: num(args['expiry-sweep-ms'], 'expiry-sweep-ms'),
      tokens: args.token,
      managementTokens: args['management-token'],
    };
    const cfg = loadCefConfig(args.config, process.env, Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)));
    cef = await startCef({
      dataDir: cfg.dataDir,
      plmnId: cfg.plmnId,
      operatorName: cfg.operatorName ?? `PLMN ${cfg.plmnId}`,
      host: cfg.host,
      port: cfg.port,
      httpPort: cfg.httpPort,
      expirySweepMs: cfg.expirySweepMs,
      log,
      ...(cfg.tokens.length > 0 ? { tokens: cfg.tokens } : {}),
      ...(cfg.managementTokens.length > 0 ? { managementTokens: cfg.managementTokens } : {}),
    });
  } catch (e) {
    const msg = e instanceof DivsError ? `${e.code}: ${e.message}` : String(e);
    log.fatal({ err: e }, 'cef failed to start');
    process.stderr.write(`cef: ${msg}\n`);
    process.exit(startupExitCode(e));
  }
  process.stdout.write(`${JSON.stringify({ service: 'cef', port: cef.port, pid: process.pid, ...(cef.httpPort !== undefined ? { httpPort: cef.httpPort } : {}) })}\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping');
    cef.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

if (import.meta.main ?? process.argv[1] === fileURLToPath(import.meta.url)) await runCli();
