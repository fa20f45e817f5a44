/**
 * @module enclave-runner
 * Public API of the enclave runner for the gateway: the pool, the job and result types, and the
 * runner measurement for attestations. Importing this never loads isolated-vm (only the child
 * processes do).
 */
export { RunnerPool, type ColumnInput, type JobDataInput, type PoolStats, type RunnerJob, type RunnerPoolOptions } from './pool.ts';
export { measureRunner, RUNNER_VERSION, type RunnerMeasurement } from './measurement.ts';
export {
  COLUMN_TYPES,
  DEFAULT_LIMITS,
  JOB_ERROR_CODES,
  LIMIT_BOUNDS,
  type ColumnType,
  type JobErrorCode,
  type JobFailure,
  type JobLimits,
  type JobResult,
  type JobSuccess,
  type JsonValue,
} from './protocol.ts';
