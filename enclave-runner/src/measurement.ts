/**
 * @module enclave-runner/measurement
 * The runner measurement: what a gateway attestation states about the execution environment
 * that ran a consumer's job. It is the runner version, the runtime that executes the sandbox
 * (Node, V8, isolated-vm, the child's flags) and the SHA-256 of every source file of the runner
 * that is part of the trusted computing base, folded into one digest.
 *
 * Digest = SHA-256 over the UTF-8 text
 * ```
 * divs-enclave-runner-measurement/v1\n
 * version <RUNNER_VERSION>\n
 * node <process.versions.node>\n
 * v8 <process.versions.v8>\n
 * isolated-vm <version>\n
 * execArgv <child flags joined by spaces>\n
 * file <name> <sha256 hex of the file bytes>\n   (one line per file, in MEASURED_FILES order)
 * ```
 * so a verifier holding the same sources and versions recomputes it byte for byte.
 *
 * The pool computes it at construction; every child computes it again at start-up from the
 * files it actually loaded, and the pool refuses a child whose digest differs (the files
 * changed on disk while the gateway ran).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { sha256, toHex, utf8 } from '../../protocol/src/bytes.ts';

/** Version of the runner's protocol and behaviour; bump on any change visible to jobs. */
export const RUNNER_VERSION = '1.0.0';

/** Flags every child process starts with (isolated-vm requires --no-node-snapshot on Node ≥ 20). */
export const CHILD_EXEC_ARGV: readonly string[] = Object.freeze(['--no-node-snapshot']);

/** Source files (in src/) that make up the runner's trusted computing base, in digest order. */
export const MEASURED_FILES: readonly string[] = Object.freeze([
  'protocol.ts',
  'prelude.ts',
  'child.ts',
  'pool.ts',
  'measurement.ts',
]);

/** The measurement with its inputs, for logs and attestations. */
export interface RunnerMeasurement {
  /** SHA-256 hex digest over everything below (format in the module comment). */
  digest: string;
  version: string;
  runtime: { node: string; v8: string; isolatedVm: string; execArgv: readonly string[] };
  files: ReadonlyArray<{ name: string; sha256: string }>;
}

let cached: RunnerMeasurement | undefined;

function isolatedVmVersion(): string {
  // Reads only package.json: the gateway process must never load the native addon itself.
  const require = createRequire(import.meta.url);
  const pkg = require('isolated-vm/package.json') as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

/** Computes (once per process) and returns the runner measurement. */
export function measureRunner(): RunnerMeasurement {
  if (cached !== undefined) return cached;
  const files = MEASURED_FILES.map((name) => ({
    name,
    sha256: toHex(sha256(readFileSync(new URL(`./${name}`, import.meta.url)))),
  }));
  const runtime = {
    node: process.versions.node,
    v8: process.versions.v8,
    isolatedVm: isolatedVmVersion(),
    execArgv: CHILD_EXEC_ARGV,
  };
  let text = 'divs-enclave-runner-measurement/v1\n';
  text += `version ${RUNNER_VERSION}\n`;
  text += `node ${runtime.node}\n`;
  text += `v8 ${runtime.v8}\n`;
  text += `isolated-vm ${runtime.isolatedVm}\n`;
  text += `execArgv ${runtime.execArgv.join(' ')}\n`;
  for (const f of files) text += `file ${f.name} ${f.sha256}\n`;
  cached = Object.freeze({ digest: toHex(sha256(utf8(text))), version: RUNNER_VERSION, runtime, files: Object.freeze(files) });
  return cached;
}
