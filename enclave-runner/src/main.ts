/**
 * @module enclave-runner/main
 * Command line: runs one job file over one JSON or CSV data file in the sandbox, as the gateway
 * would, and prints the job's output (JSON) on stdout.
 *
 * ```
 * node enclave-runner/src/main.ts --job mean.js --data readings.csv [--params '{"k":2}']
 *      [--memory-mb 64] [--cpu-ms 5000] [--wall-ms 10000] [--output-bytes 1048576]
 *      [--seed 0] [--start-time 2024-05-17T08:30:00Z] [--verbose]
 * node enclave-runner/src/main.ts --measurement
 * ```
 * Exit status: 0 success, 1 the job failed (code and message on stderr), 2 bad usage or input.
 * This process never loads isolated-vm; the job runs in a child process, as in the gateway.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DivsError } from '../../protocol/src/errors.ts';
import { loadDataFile } from './datafile.ts';
import { measureRunner } from './measurement.ts';
import { RunnerPool, type JobDataInput } from './pool.ts';
import type { JobLimits, JsonValue } from './protocol.ts';

const USAGE = `usage: divs enclave-runner --job <file.js> [--data <file.json|file.csv>] [--params <json>] [--memory-mb N]
       [--cpu-ms N] [--wall-ms N] [--output-bytes N] [--seed N] [--start-time <ms|ISO date>] [--verbose]
       divs enclave-runner --measurement`;

function usage(message: string): never {
  throw new DivsError('INVALID_ARGUMENT', `${message}\n${USAGE}`);
}

function int(v: string | undefined, label: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) usage(`--${label} must be a non-negative integer`);
  return Number(v);
}

/** Command-line entry (`divs enclave-runner …` and `node enclave-runner/src/main.ts …`); resolves to the exit status. */
export async function runCli(argv: string[] = process.argv.slice(2)): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        job: { type: 'string' },
        data: { type: 'string' },
        params: { type: 'string' },
        'memory-mb': { type: 'string' },
        'cpu-ms': { type: 'string' },
        'wall-ms': { type: 'string' },
        'output-bytes': { type: 'string' },
        seed: { type: 'string' },
        'start-time': { type: 'string' },
        measurement: { type: 'boolean' },
        verbose: { type: 'boolean' },
        help: { type: 'boolean' },
      },
      strict: true,
    });
  } catch (e) {
    usage(e instanceof Error ? e.message : String(e));
  }
  const { values } = parsed;
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.measurement === true) {
    process.stdout.write(`${JSON.stringify(measureRunner(), null, 2)}\n`);
    return 0;
  }
  if (values.job === undefined) usage('--job is required');
  const code = readFileSync(values.job, 'utf8');
  const data: JobDataInput = values.data === undefined ? {} : loadDataFile(values.data);
  let params: JsonValue = null;
  if (values.params !== undefined) {
    try {
      params = JSON.parse(values.params) as JsonValue;
    } catch {
      usage('--params must be JSON');
    }
  }
  const limits: Partial<JobLimits> = {
    memoryMb: int(values['memory-mb'], 'memory-mb'),
    cpuMs: int(values['cpu-ms'], 'cpu-ms'),
    wallMs: int(values['wall-ms'], 'wall-ms'),
    outputBytes: int(values['output-bytes'], 'output-bytes'),
  };
  let startTimeMs: number | undefined;
  const start = values['start-time'];
  if (start !== undefined) {
    startTimeMs = /^-?\d+$/.test(start) ? Number(start) : Date.parse(start);
    if (!Number.isSafeInteger(startTimeMs)) usage('--start-time must be milliseconds or an ISO date');
  }

  const pool = new RunnerPool({ size: 1, maxQueue: 1 });
  try {
    const result = await pool.run({ code, params, data, limits, seed: int(values.seed, 'seed'), startTimeMs });
    if (values.verbose === true) {
      const { output: _output, ...info } = result as typeof result & { output?: string };
      process.stderr.write(`${JSON.stringify({ ...info, runner: pool.measurement.digest })}\n`);
    }
    if (!result.ok) {
      process.stderr.write(`${result.code}: ${result.message}\n`);
      return 1;
    }
    process.stdout.write(`${result.output}\n`);
    return 0;
  } finally {
    await pool.close();
  }
}

if (import.meta.main) {
  runCli().then(
    (status) => {
      process.exitCode = status;
    },
    (e: unknown) => {
      const message = e instanceof Error ? e.message : String(e);
      process.stderr.write(`${e instanceof DivsError ? `${e.code}: ` : ''}${message}\n`);
      process.exitCode = 2;
    },
  );
}
