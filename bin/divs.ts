#!/usr/bin/env node
/**
 * @module divs
 * The `divs` command line: one entry point for every DIVS service and tool.
 *
 * Exit codes: 0 success; 1 the work failed (e.g. verification found invalid data);
 * 2 usage or configuration error; 3 a service could not start.
 */
import { DivsError } from '../protocol/src/errors.ts';
import { startupExitCode } from '../platform/src/config.ts';

const HELP = `divs — network-oriented data integrity verification service (ITU-T Y.2247)

Usage: divs <command> [options]      (every command takes --help)

Services
  cef             start a CEF simulator (the operator's USM + capability exposure)
  as-node         start a DIVS AS node (registration, endorsement, ledger, queries)
  gateway         start an aggregator gateway (ingest, store, verification, consumer + job API, runner pool)
  enclave-runner  run one job file over a data file in the sandbox, as the gateway's runner pool does

Tools
  consortium      init a local 3-operator consortium, start etcd, propose/approve/submit config updates
  pki init        create a consortium root CA
  pki issue       issue an AS / gateway / client certificate under a root CA
  ue fleet        provision N UEs at a CEF and register them at an AS (progress bar)
  consumer verify verify signed records (--records FILE) or a data package offline (VER-3, 10.1)
  consumer package build a verifiable data package (optionally encrypted to a recipient)
  consumer transfer pass a package to its next holder (signed custody record)
  consumer datasets list a gateway's datasets (descriptions only); --verify D: its signed verification report
  consumer job    submit / watch / fetch / verify jobs on a gateway (policy, pending, approve, reject)
  consumer train  federated training (FedAvg) across several gateways, with attestations per round
  ledger verify   re-verify an AS node's ledger offline (hash chain, Merkle tree, checkpoint; local or consortium)
  ledger inspect  print ledger height, size, blocks; --ue IMEI|MSISDN|ICCID: a UE's versions
  ledger proof    print an inclusion proof for a transaction

Scenario
  demo            the end-to-end scenario run by \`npm start\` (--once to exit after the summary)

Exit codes: 0 ok, 1 failed (e.g. invalid data found), 2 usage/config error, 3 start-up failure.`;

/** A command's exit status; SERVING when it started a service that runs until a signal stops it. */
type Command = (argv: string[]) => Promise<number | void | typeof SERVING>;

const SERVING = Symbol('serving');

/** Runs a service's `runCli` and keeps the process alive: the service stops itself on SIGINT/SIGTERM. */
const service =
  (start: (argv: string[]) => Promise<unknown>): Command =>
  async (argv) => {
    if (argv.includes('--help') || argv.includes('-h')) {
      await start(['--help']);
      return 0;
    }
    try {
      await start(argv);
    } catch (e) {
      // a service that cannot start: 2 for a wrong configuration, 3 for anything else
      const err = fileError(e) ?? e;
      console.error(`divs: ${err instanceof DivsError ? `${err.code}: ` : ''}${(err as Error).message}`);
      return startupExitCode(err);
    }
    return SERVING;
  };

const COMMANDS: Record<string, () => Promise<Command>> = {
  cef: async () => service(async (argv) => (await import('../cef/src/main.ts')).runCli(argv)),
  'as-node': async () => service(async (argv) => (await import('../as-node/src/main.ts')).runCli(argv)),
  gateway: async () => service(async (argv) => (await import('../gateway/src/main.ts')).runCli(argv)),
  'enclave-runner': async () => async (argv) => (await import('../enclave-runner/src/main.ts')).runCli(argv),
  pki: async () => (await import('./commands/pki.ts')).run,
  consortium: async () => async (argv) => (await import('../as-node/src/governance/cli.ts')).runConsortiumCli(argv),
  ue: async () => (await import('./commands/ue.ts')).run,
  consumer: async () => async (argv) =>
    argv[0] === 'job' || argv[0] === 'train'
      ? (await import('./commands/job.ts')).run(argv)
      : argv[0] === 'datasets'
        ? (await import('./commands/datasets.ts')).run(argv.slice(1))
        : (await import('./commands/consumer.ts')).run(argv),
  ledger: async () => (await import('./commands/ledger.ts')).run,
  demo: async () => (await import('./commands/demo.ts')).run,
};

async function main(argv: string[]): Promise<number | typeof SERVING> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(HELP);
    return cmd ? 0 : 2;
  }
  const load = COMMANDS[cmd];
  if (!load) {
    console.error(`divs: unknown command "${cmd}"\n\n${HELP}`);
    return 2;
  }
  const code = await (await load())(rest);
  return code === SERVING ? SERVING : typeof code === 'number' ? code : 0;
}


/** A file system error from a path the user gave, as a coded error (no stack trace for a typo). */
function fileError(e: unknown): DivsError | undefined {
  const err = e as NodeJS.ErrnoException;
  if (!(e instanceof Error) || typeof err.code !== 'string') return undefined;
  const where = err.path ? `${err.path}: ` : '';
  switch (err.code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return new DivsError('FILE_NOT_FOUND', `${where}no such file or directory`, { cause: e });
    case 'EISDIR':
      return new DivsError('FILE_NOT_FOUND', `${where}is a directory, a file was expected`, { cause: e });
    case 'EEXIST':
      return new DivsError('FILE_EXISTS', `${where}already exists (refusing to overwrite it)`, { cause: e });
    case 'EACCES':
    case 'EPERM':
      return new DivsError('FILE_ACCESS', `${where}permission denied`, { cause: e });
    default:
      return undefined;
  }
}

main(process.argv.slice(2)).then(
  // a finished command is done: exit even if a client library keeps a timer or socket alive
  // (a started service is not done: it keeps the process until its own signal handler stops it)
  (code) => {
    if (code !== SERVING) process.exit(code);
  },
  (raw: unknown) => {
    const e = fileError(raw) ?? raw;
    if (e instanceof DivsError) {
      console.error(`divs: ${e.code}: ${e.message}`);
      // 2: the command line or its files are wrong; 1: the work failed
      process.exitCode = startupExitCode(e) === 2 ? 2 : 1;
    } else {
      console.error(`divs: ${(e as Error).stack ?? String(e)}`);
      process.exitCode = 1;
    }
    process.exit();
  },
);
