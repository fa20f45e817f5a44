/**
 * @module ledger/consortium/node
 * Wiring of the consortium backend into an AS node (main.ts): opening the ledger from the
 * node's configuration, and the ConsortiumService adapter (governance over gRPC) [BC-5].
 */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { SignedConfigUpdate, type ConsortiumServiceService } from '../../../../proto/gen/divs/v1/as_sync.ts';
import { fail } from '../../../../protocol/src/errors.ts';
import type { OwnSignatures, Signer } from '../../../../protocol/src/suites.ts';
import type { Handlers } from '../../../../platform/src/grpc.ts';
import type { Authenticator } from '../../auth.ts';
import { Membership } from '../../governance/membership.ts';
import { ConsortiumLedger } from './ledger.ts';

/** The `ledger` section of an AS node's configuration when `type` is `consortium`. */
export interface ConsortiumLedgerConfig {
  type: 'consortium';
  /** Genesis configuration file (JSON), the same for every node. */
  genesis: string;
  etcd: { endpoints: string[]; requestTimeoutMs?: number | undefined; attemptTimeoutMs?: number | undefined; prefix?: string | undefined };
  /** Token (role `peer` at the other nodes) this node presents for RP-dd sync. */
  peerToken?: string | undefined;
  /** Extra RP-dd addresses to sync from. */
  peers?: string[] | undefined;
  retainBlocks?: number | undefined;
  compactEvery?: number | undefined;
  maxBlockTxs?: number | undefined;
  maxBlockBytes?: number | undefined;
  turnTimeoutMs?: number | undefined;
  syncTimeoutMs?: number | undefined;
}

/**
 * Opens the consortium ledger of an AS node. CONFIG_INVALID when the genesis file is bad or
 * names another ledger than the node's `ledgerId`. A node the configuration does not list
 * follows the ledger; its own appends are refused (NOT_MEMBER) until an update admits it.
 */
export async function openConsortiumLedger(
  cfg: ConsortiumLedgerConfig,
  node: { path: string; ledgerId: string; nodeName: string; signer: Signer; certChain: Uint8Array[]; log: Logger; ownSignatures?: OwnSignatures },
): Promise<ConsortiumLedger> {
  const genesis = Membership.fromGenesisFile(resolve(cfg.genesis));
  if (genesis.ledgerId !== node.ledgerId) fail('CONFIG_INVALID', `ledgerId ${node.ledgerId} differs from the genesis configuration's ${genesis.ledgerId}`);
  if (!genesis.orgOfNode(node.nodeName)) node.log.warn({ node: node.nodeName }, 'this node is not in the genesis configuration: it follows the ledger, and appends once a configuration update admits it');
  const etcd = { endpoints: cfg.etcd.endpoints, ...(cfg.etcd.requestTimeoutMs ? { requestTimeoutMs: cfg.etcd.requestTimeoutMs } : {}), ...(cfg.etcd.attemptTimeoutMs ? { attemptTimeoutMs: cfg.etcd.attemptTimeoutMs } : {}) };
  const opt = <K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } => (v === undefined ? {} : ({ [k]: v } as { [P in K]?: V }));
  return ConsortiumLedger.open({
    path: node.path,
    genesis,
    nodeName: node.nodeName,
    signer: node.signer,
    certChain: node.certChain,
    etcd,
    log: node.log,
    ...opt('ownSignatures', node.ownSignatures),
    ...opt('prefix', cfg.etcd.prefix),
    ...opt('peerToken', cfg.peerToken),
    ...opt('peers', cfg.peers),
    ...opt('retainBlocks', cfg.retainBlocks),
    ...opt('compactEvery', cfg.compactEvery),
    ...opt('maxBlockTxs', cfg.maxBlockTxs),
    ...opt('maxBlockBytes', cfg.maxBlockBytes),
    ...opt('turnTimeoutMs', cfg.turnTimeoutMs),
    ...opt('syncTimeoutMs', cfg.syncTimeoutMs),
  });
}

/** gRPC adapter of ConsortiumService [BC-5] [SEC-3]: submitting needs the `admin` role. */
export function consortiumHandlers(ledger: ConsortiumLedger, auth: Authenticator): Handlers<typeof ConsortiumServiceService> {
  return {
    submitConfigUpdate: async (req, ctx) => {
      auth.require(ctx, 'admin');
      if (!req.update || req.update.update.length === 0) fail('MISSING_FIELD', 'update: missing');
      // approvals sign the inner update bytes, carried unchanged; the envelope is re-encoded
      const { entry, membership } = await ledger.submitConfigUpdate(SignedConfigUpdate.encode(req.update).finish());
      return { txId: entry.txId, configVersion: membership.version, configHash: membership.hash };
    },
    getConsortiumConfig: async (_req, ctx) => {
      auth.require(ctx, 'consumer', 'peer', 'admin');
      const m = ledger.membership();
      return { config: m.bytes, configHash: m.hash, height: ledger.info().height };
    },
  };
}
