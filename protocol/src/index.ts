/**
 * @module protocol
 * The DIVS protocol library: signature suites, domain-separated signing, identities, coded
 * errors, Merkle proofs and checkpoints. Imports no transport (no grpc, no hono), so every
 * part (UE SDK, AS node, CEF, gateway, consumer) shares exactly the same rules.
 */
export * from './errors.ts';
export * from './bytes.ts';
export * from './suites.ts';
export * from './identity.ts';
export * from './pki.ts';
export * from './merkle.ts';
export * from './smt.ts';
export * from './checkpoint.ts';
