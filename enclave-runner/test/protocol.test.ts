/**
 * The IPC contract in isolation: the pool's parser treats a child as hostile (a compromised
 * child must not be able to hand the gateway an oversized, non-JSON or mislabelled result),
 * and the runner measurement is recomputable from its documented format.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { sha256, toHex, utf8 } from '../../protocol/src/bytes.ts';
import { DivsError, ERROR_CODES } from '../../protocol/src/errors.ts';
import { MEASURED_FILES, RUNNER_VERSION, measureRunner } from '../src/measurement.ts';
import { DEFAULT_LIMITS, JOB_ERROR_CODES, checkLimits, parseChildMessage, parseParentMessage } from '../src/protocol.ts';

const malformed = (f: () => unknown): void => {
  expect(f).toThrowError(DivsError);
  try {
    f();
  } catch (e) {
    expect((e as DivsError).code).toBe('MALFORMED_MESSAGE');
  }
};

const result = (over: Record<string, unknown>): Record<string, unknown> => ({
  type: 'result',
  jobId: 'j1',
  ok: true,
  output: '{"a":1}',
  outputBytes: 7,
  cpuMs: 1,
  wallMs: 2,
  ...over,
});

describe('enclave runner protocol', () => {
  it('[SEC-1][SC2-4] accepts a well-formed child result and re-checks its output', () => {
    expect(parseChildMessage(result({}), 100)).toMatchObject({ ok: true, output: '{"a":1}', outputBytes: 7, retire: false });
    // What a compromised child might claim:
    malformed(() => parseChildMessage(result({ outputBytes: 3 }), 100)); // lies about the size
    malformed(() => parseChildMessage(result({ output: 'x'.repeat(200), outputBytes: 200 }), 100)); // over the limit
    malformed(() => parseChildMessage(result({ output: '{"a":', outputBytes: 5 }), 100)); // not JSON
    malformed(() => parseChildMessage(result({ output: { toString: () => '1' } }), 100)); // not a string
    malformed(() => parseChildMessage(result({ ok: false, code: 'POOL_UNAVAILABLE', message: 'x' }), 100)); // a pool-only code
    malformed(() => parseChildMessage(result({ ok: false, code: 'INTERNAL', message: 'x' }), 100)); // not a job code
    malformed(() => parseChildMessage(result({ cpuMs: -1 }), 100));
    malformed(() => parseChildMessage(result({ jobId: '' }), 100));
    malformed(() => parseChildMessage(result({ retire: 'yes' }), 100));
    malformed(() => parseChildMessage({ type: 'ready', pid: 1, measurement: 'nothex' }, 100));
    malformed(() => parseChildMessage({ type: 'shell', cmd: 'rm' }, 100));
    malformed(() => parseChildMessage(null, 100));
    const failure = parseChildMessage(result({ ok: false, code: 'JOB_CODE_ERROR', message: 'm'.repeat(5000) }), 100);
    expect(failure.type === 'result' && !failure.ok && failure.message.length).toBe(2000);
  });

  it('[SC2-4] validates job requests on the child side', () => {
    const job = {
      type: 'job',
      jobId: 'j',
      code: 'export const run = () => 1',
      paramsJson: 'null',
      metaJson: 'null',
      columns: [{ name: 'x', type: 'f64', buffer: new ArrayBuffer(16) }],
      rows: 2,
      limits: { ...DEFAULT_LIMITS },
      seed: 1,
      startTimeMs: 0,
    };
    expect(parseParentMessage(job)).toMatchObject({ type: 'job', rows: 2 });
    expect(parseParentMessage({ type: 'cancel', jobId: 'j' })).toEqual({ type: 'cancel', jobId: 'j' });
    malformed(() => parseParentMessage({ ...job, rows: 3 }));
    malformed(() => parseParentMessage({ ...job, columns: [{ name: 'x', type: 'f99', buffer: new ArrayBuffer(16) }] }));
    malformed(() => parseParentMessage({ ...job, columns: [job.columns[0], job.columns[0]] }));
    malformed(() => parseParentMessage({ ...job, limits: { ...DEFAULT_LIMITS, memoryMb: 0 } }));
    malformed(() => parseParentMessage({ ...job, seed: 0.5 }));
  });

  it('[SC2-4] bounds every limit', () => {
    expect(checkLimits({ ...DEFAULT_LIMITS })).toBeNull();
    expect(checkLimits({ ...DEFAULT_LIMITS, outputBytes: 0 })).toMatch(/outputBytes/);
    expect(checkLimits({ ...DEFAULT_LIMITS, cpuMs: '5' })).toMatch(/cpuMs/);
    expect(checkLimits(null)).toMatch(/object/);
  });

  it('[SC2-4] every job error code is in the shared catalogue', () => {
    for (const code of JOB_ERROR_CODES) expect(Object.hasOwn(ERROR_CODES, code)).toBe(true);
  });

  it('[SC2-4] the runner measurement is recomputable from its documented format', () => {
    const m = measureRunner();
    let text = `divs-enclave-runner-measurement/v1\nversion ${RUNNER_VERSION}\nnode ${process.versions.node}\nv8 ${process.versions.v8}\n`;
    text += `isolated-vm ${m.runtime.isolatedVm}\nexecArgv --no-node-snapshot\n`;
    for (const name of MEASURED_FILES) {
      const bytes = readFileSync(new URL(`../src/${name}`, import.meta.url));
      text += `file ${name} ${toHex(sha256(bytes))}\n`;
    }
    expect(m.digest).toBe(toHex(sha256(utf8(text))));
    expect(m.runtime.isolatedVm).toMatch(/^\d+\.\d+\.\d+/);
  });
});
