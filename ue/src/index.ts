/**
 * @module ue
 * The DIVS UE function SDK [FW-UE]: key store (trusted environment), registration, record
 * signing with chain state, the RP-ud client, and the fleet simulator.
 */
export * from './keystore.ts';
export * from './worker-keystore.ts';
export * from './registration.ts';
export * from './records.ts';
export * from './client.ts';
export * from './fleet.ts';
export * from './usecases.ts';
