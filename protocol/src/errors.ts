/**
 * @module errors
 * Coded errors shared by every DIVS part. A code is a stable string that clients and tests
 * assert on; the message is for people; `cause` is kept for logs and never sent to a peer.
 * Each code maps to one gRPC status (numbers from the gRPC spec, so this module imports no
 * transport) and one HTTP status.
 */

/** gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode];

const G = GrpcCode;

/** Every DIVS error code with its gRPC status. Add new codes here, never ad hoc. */
export const ERROR_CODES = {
  // malformed input
  MALFORMED_MESSAGE: G.INVALID_ARGUMENT,
  MISSING_FIELD: G.INVALID_ARGUMENT,
  INVALID_ARGUMENT: G.INVALID_ARGUMENT,
  MESSAGE_TOO_LARGE: G.RESOURCE_EXHAUSTED,
  BATCH_TOO_LARGE: G.INVALID_ARGUMENT,
  // identities
  INVALID_IMEI: G.INVALID_ARGUMENT,
  INVALID_IMEISV: G.INVALID_ARGUMENT,
  INVALID_ICCID: G.INVALID_ARGUMENT,
  INVALID_EID: G.INVALID_ARGUMENT,
  INVALID_MSISDN: G.INVALID_ARGUMENT,
  INVALID_IMSI: G.INVALID_ARGUMENT,
  IDENTITY_INCOMPLETE: G.INVALID_ARGUMENT,
  // keys and signatures
  UNSUPPORTED_SUITE: G.INVALID_ARGUMENT,
  INVALID_PUBLIC_KEY: G.INVALID_ARGUMENT,
  INVALID_SIGNATURE: G.UNAUTHENTICATED,
  SUITE_MISMATCH: G.INVALID_ARGUMENT,
  // registration and endorsement
  UNKNOWN_IDENTITY: G.NOT_FOUND,
  IDENTITY_MISMATCH: G.PERMISSION_DENIED,
  CONTRACT_INACTIVE: G.FAILED_PRECONDITION,
  REGISTRATION_CONFLICT: G.ALREADY_EXISTS,
  REGISTRATION_REPLAYED: G.ALREADY_EXISTS,
  REGISTRATION_STALE: G.INVALID_ARGUMENT,
  NOT_REGISTERED: G.NOT_FOUND,
  CEF_UNAVAILABLE: G.UNAVAILABLE,
  // ledger and proofs
  UNKNOWN_TX: G.NOT_FOUND,
  UNKNOWN_BLOCK: G.NOT_FOUND,
  WRONG_LEDGER: G.NOT_FOUND,
  LEDGER_TAMPERED: G.DATA_LOSS,
  LEDGER_CORRUPT: G.DATA_LOSS,
  INVALID_PROOF: G.FAILED_PRECONDITION,
  INVALID_CHECKPOINT: G.FAILED_PRECONDITION,
  INVALID_RANGE: G.OUT_OF_RANGE,
  // PKI and endorsement verification
  UNTRUSTED_CERTIFICATE: G.PERMISSION_DENIED,
  INVALID_CERTIFICATE: G.INVALID_ARGUMENT,
  INVALID_ENDORSEMENT: G.FAILED_PRECONDITION,
  NOT_LATEST: G.FAILED_PRECONDITION,
  SIGNED_AFTER_TERMINATION: G.FAILED_PRECONDITION,
  SIGNED_OUTSIDE_CONTRACT: G.FAILED_PRECONDITION,
  // access control
  UNAUTHENTICATED: G.UNAUTHENTICATED,
  PERMISSION_DENIED: G.PERMISSION_DENIED,
  AUTH_EXPIRED: G.UNAUTHENTICATED,
  // CEF
  SUBSCRIBER_EXISTS: G.ALREADY_EXISTS,
  UNKNOWN_SUBSCRIPTION: G.NOT_FOUND,
  INVALID_ACTION: G.FAILED_PRECONDITION,
  OTA_AUTH_FAILED: G.UNAUTHENTICATED,
  NO_DEVICE_CONFIG: G.NOT_FOUND,
  // UE key store and chain state (UE SDK)
  KEY_NOT_FOUND: G.NOT_FOUND,
  KEY_EXISTS: G.ALREADY_EXISTS,
  KEYSTORE_WRONG_PASSPHRASE: G.UNAUTHENTICATED,
  KEYSTORE_TAMPERED: G.DATA_LOSS,
  STATE_CORRUPT: G.DATA_LOSS,
  STORAGE_FAILED: G.INTERNAL,
  // enclave runner (consumer jobs in the isolated-vm sandbox)
  JOB_TIMEOUT: G.DEADLINE_EXCEEDED,
  JOB_CPU_LIMIT: G.RESOURCE_EXHAUSTED,
  JOB_MEMORY_LIMIT: G.RESOURCE_EXHAUSTED,
  JOB_OUTPUT_LIMIT: G.RESOURCE_EXHAUSTED,
  JOB_INVALID_OUTPUT: G.INVALID_ARGUMENT,
  JOB_CODE_ERROR: G.INVALID_ARGUMENT,
  JOB_RUNNER_CRASHED: G.INTERNAL,
  JOB_CANCELLED: G.CANCELLED,
  POOL_UNAVAILABLE: G.UNAVAILABLE,
  // gateway: record chains, datasets, endorsement sources
  RECORD_FORK: G.ALREADY_EXISTS,
  RECORD_REPLAYED: G.ALREADY_EXISTS,
  RECORD_REORDERED: G.FAILED_PRECONDITION,
  CHAIN_GAP: G.FAILED_PRECONDITION,
  AS_UNAVAILABLE: G.UNAVAILABLE,
  UNKNOWN_DATASET: G.NOT_FOUND,
  // gateway jobs (10.2): usage policy refusals, withheld outputs, job life cycle, attestations
  POLICY_DATASET_DENIED: G.PERMISSION_DENIED,
  POLICY_LIMIT_EXCEEDED: G.PERMISSION_DENIED,
  POLICY_CODE_NOT_APPROVED: G.PERMISSION_DENIED,
  POLICY_TRANSPORT_REQUIRED: G.PERMISSION_DENIED,
  OUTPUT_BELOW_THRESHOLD: G.FAILED_PRECONDITION,
  OUTPUT_NOT_AGGREGATE: G.FAILED_PRECONDITION,
  JOB_REJECTED: G.PERMISSION_DENIED,
  JOB_NOT_FINISHED: G.FAILED_PRECONDITION,
  JOB_STATE_CONFLICT: G.FAILED_PRECONDITION,
  ATTESTATION_MISMATCH: G.FAILED_PRECONDITION,
  // data packages (consumer-initiated verification, 10.1)
  CUSTODY_BROKEN: G.FAILED_PRECONDITION,
  DECRYPTION_FAILED: G.PERMISSION_DENIED,
  // consortium ledger: ordering, block validation, governance, witnesses
  ORDERING_UNAVAILABLE: G.UNAVAILABLE,
  INVALID_BLOCK: G.FAILED_PRECONDITION,
  NOT_MEMBER: G.PERMISSION_DENIED,
  CONFIG_MAJORITY_MISSING: G.PERMISSION_DENIED,
  COSIGNATURES_MISSING: G.FAILED_PRECONDITION,
  LEDGER_DIVERGED: G.DATA_LOSS,
  // generic
  NOT_FOUND: G.NOT_FOUND,
  UNAVAILABLE: G.UNAVAILABLE,
  TIMEOUT: G.DEADLINE_EXCEEDED,
  CONFIG_INVALID: G.INVALID_ARGUMENT,
  // files named on a command line or in a config
  FILE_NOT_FOUND: G.NOT_FOUND,
  FILE_EXISTS: G.ALREADY_EXISTS,
  FILE_ACCESS: G.PERMISSION_DENIED,
  INTERNAL: G.INTERNAL,
} as const satisfies Record<string, GrpcCode>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error with a stable DIVS code; `cause` stays local (logs), the rest may be sent. */
export class DivsError extends Error {
  readonly code: ErrorCode;
  override readonly cause?: unknown;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message);
    this.name = 'DivsError';
    this.code = code;
    if (options && 'cause' in options) this.cause = options.cause;
  }
  /** gRPC status code this error maps to. */
  get grpcCode(): GrpcCode {
    return ERROR_CODES[this.code];
  }
}

export function isErrorCode(s: string): s is ErrorCode {
  return Object.hasOwn(ERROR_CODES, s);
}

/** Throws a coded error; for concise guard clauses. */
export function fail(code: ErrorCode, message: string, cause?: unknown): never {
  throw new DivsError(code, message, cause === undefined ? undefined : { cause });
}

/** HTTP status for an error code, for HTTP adapters. */
export function httpStatusOf(code: ErrorCode): number {
  switch (ERROR_CODES[code]) {
    case G.INVALID_ARGUMENT:
    case G.OUT_OF_RANGE:
      return 400;
    case G.UNAUTHENTICATED:
      return 401;
    case G.PERMISSION_DENIED:
      return 403;
    case G.NOT_FOUND:
      return 404;
    case G.ALREADY_EXISTS:
      return 409;
    case G.FAILED_PRECONDITION:
      return 412;
    case G.RESOURCE_EXHAUSTED:
      return 413;
    case G.UNAVAILABLE:
      return 503;
    case G.DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}
