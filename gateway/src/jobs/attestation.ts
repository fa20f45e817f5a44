/**
 * @module jobs/attestation
 * The gateway's attestation of a job result [SC2-3] [SC2-5]: a JobStatement (job ID, consumer,
 * code hash, runner measurement, dataset commitment and verification report hash, input
 * commitment, limits, output policy, result hash, timestamps) encoded once and signed by the
 * gateway key over `PAE("divs/attestation", exact statement bytes)`, shipped with the gateway
 * certificate chain (role "gateway" under the consortium root CA). Consumers check it with
 * `consumer/src/jobs.ts` `verifyAttestation`.
 */
import { JobStatement, type JobAttestation, type RunnerMeasurement as RunnerMeasurementMsg } from '../../../proto/gen/divs/v1/jobs.ts';
import { Domain, fromHex } from '../../../protocol/src/bytes.ts';
import type { RunnerMeasurement } from '../../../enclave-runner/src/index.ts';
import { GatewayKeySigner } from '../signer.ts';

/** The runner measurement as carried in statements and policies. */
export function measurementMessage(m: RunnerMeasurement): RunnerMeasurementMsg {
  return {
    version: m.version,
    digest: fromHex(m.digest, 'runner digest'),
    nodeVersion: m.runtime.node,
    v8Version: m.runtime.v8,
    isolatedVmVersion: m.runtime.isolatedVm,
  };
}

/** Signs job statements with the gateway key. */
export class AttestationSigner extends GatewayKeySigner {
  /** Encodes the statement once and signs exactly those bytes. */
  sign(statement: JobStatement): JobAttestation {
    const bytes = JobStatement.encode(statement).finish();
    return { statement: bytes, signature: this.signBytes(Domain.attestation, bytes), certChain: this.certChain };
  }
}
