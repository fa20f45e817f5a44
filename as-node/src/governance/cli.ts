/**
 * @module governance/cli
 * `divs-consortium`: running and governing a consortium ledger [BC-5] [SEC-3], off-line where
 * it matters. Run: `node as-node/src/governance/cli.ts <command> …` (`--help` on each).
 *
 * - `init`     creates a local consortium: root CA, an organization CA, admin and AS node
 *              certificates per operator, and `genesis.json`;
 * - `etcd`     runs a local etcd cluster (real members, Ctrl-C stops them);
 * - `propose`  writes a configuration update file (add/remove an organization or a node)
 *              against the configuration in force (read from a node, or the genesis file);
 * - `approve`  an organization's admin signs an update file: one approval file per admin,
 *              made wherever the admin key lives;
 * - `submit`   gathers the approval files and submits the update to any AS node (admin
 *              token); a proposal short of a majority is refused with CONFIG_MAJORITY_MISSING;
 * - `show`     prints the configuration in force at a node.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConfigUpdate, ConsortiumServiceClient, type ConfigApproval, type MemberOrg } from '../../../proto/gen/divs/v1/as_sync.ts';
import { fromBase64, sha256, toBase64, toHex } from '../../../protocol/src/bytes.ts';
import { DivsError, fail } from '../../../protocol/src/errors.ts';
import { chainFromPem, derToPem, pemToDer } from '../../../protocol/src/pki.ts';
import { importPrivateKey, nodeSigner } from '../../../protocol/src/suites.ts';
import { grpc, makeClient, unary } from '../../../platform/src/grpc.ts';
import { parse, str } from '../../../bin/commands/args.ts';
import { approveConfigUpdate, createConfigUpdate, SignedConfigUpdate } from './config-update.ts';
import { Membership } from './membership.ts';
import { createLocalConsortium, writeLocalConsortium } from './local-consortium.ts';
import { EtcdCluster } from '../ledger/consortium/etcd-cluster.ts';

const USAGE = `divs-consortium — run and govern a consortium ledger

  init     --dir DIR --ledger-id ID --org ID:NAME:NODE[,NODE…] … [--url NODE=HOST:PORT …]
           [--cef NODE=HOST:PORT …] [--etcd URL,URL,…]   (also writes DIR/<node>.json AS configs)
  etcd     --dir DIR [--members 3] [--base-port 23790]
  propose  (--node HOST:PORT --token T | --genesis FILE) --out update.json [--description TEXT]
           --add-org ID:NAME --ca ca.pem --admin admin.pem [--node-name NODE[=HOST:PORT] …]
         | --remove-org ID
         | --add-node ORG:NODE[=HOST:PORT]
         | --remove-node NODE
  approve  --update update.json --org ID --admin-cert admin.pem --admin-key admin.key --out approval.json
  submit   --update update.json --approval a.json [--approval b.json …] --node HOST:PORT --token T
  show     --node HOST:PORT --token T`;

/** A configuration update as a file: exact bytes plus a summary for the admins who approve it. */
export interface UpdateFile {
  ledgerId: string;
  /** base64 of the exact ConfigUpdate bytes (what approvals sign). */
  update: string;
  summary: { description: string; fromVersion: number; toVersion: number; orgs: { id: string; nodes: string[] }[] };
}

/** One admin's approval as a file. */
export interface ApprovalFile {
  orgId: string;
  /** SHA-256 (hex) of the update bytes approved, to match files without decoding. */
  updateSha256: string;
  adminCert: string;
  signature: string;
}

function readJson<T>(path: string): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    fail('CONFIG_INVALID', `${path}: ${(e as Error).message}`, e);
  }
}

function client(address: string): ConsortiumServiceClient {
  return makeClient(ConsortiumServiceClient, address);
}

function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

/** The configuration in force at a node. */
export async function fetchConfig(address: string, token: string): Promise<Membership> {
  const c = client(address);
  try {
    const r = await unary(c, c.getConsortiumConfig, {}, { metadata: bearer(token), timeoutMs: 10_000 });
    return Membership.fromBytes(r.config);
  } finally {
    c.close();
  }
}

function list(v: unknown): string[] {
  return Array.isArray(v) ? (v as string[]) : typeof v === 'string' ? [v] : [];
}

function nodeSpec(s: string): { name: string; urls: string[] } {
  const [name, url] = s.split('=');
  if (!name) fail('CONFIG_INVALID', `bad node ${s} (NAME or NAME=HOST:PORT)`);
  return { name, urls: url ? [url] : [] };
}

/** The next configuration: `current` with one change, version + 1. */
export function changedConfig(
  current: Membership,
  change: { addOrg?: MemberOrg; removeOrg?: string; addNode?: { org: string; node: { name: string; urls: string[] } }; removeNode?: string },
): Membership {
  let orgs = current.config.orgs.map((o) => ({ ...o, nodes: [...o.nodes] }));
  if (change.addOrg) {
    if (orgs.some((o) => o.id === change.addOrg?.id)) fail('CONFIG_INVALID', `organization ${change.addOrg.id} is already a member`);
    orgs.push(change.addOrg);
  }
  if (change.removeOrg !== undefined) {
    if (!orgs.some((o) => o.id === change.removeOrg)) fail('CONFIG_INVALID', `organization ${change.removeOrg} is not a member`);
    orgs = orgs.filter((o) => o.id !== change.removeOrg);
  }
  if (change.addNode) {
    const org = orgs.find((o) => o.id === change.addNode?.org);
    if (!org) fail('CONFIG_INVALID', `organization ${change.addNode.org} is not a member`);
    org.nodes.push(change.addNode.node);
  }
  if (change.removeNode !== undefined) {
    const org = orgs.find((o) => o.nodes.some((n) => n.name === change.removeNode));
    if (!org) fail('CONFIG_INVALID', `node ${change.removeNode} is not a member node`);
    org.nodes = org.nodes.filter((n) => n.name !== change.removeNode);
  }
  return Membership.fromConfig({ ledgerId: current.ledgerId, version: current.version + 1, orgs });
}

/** An update file for `next` replacing `current`. */
export function updateFile(current: Membership, next: Membership, description: string): UpdateFile {
  const bytes = createConfigUpdate(current, next, description);
  return {
    ledgerId: current.ledgerId,
    update: toBase64(bytes),
    summary: { description, fromVersion: current.version, toVersion: next.version, orgs: next.orgs.map((o) => ({ id: o.id, nodes: o.nodes.map((n) => n.name) })) },
  };
}

/** An admin's approval file for an update file. */
export async function approvalFile(update: UpdateFile, orgId: string, adminCertPem: string, adminKeyPem: string): Promise<ApprovalFile> {
  const bytes = fromBase64(update.update, 'update');
  // the admin signs exact bytes: make sure they are an update, and of this ledger
  let u: ConfigUpdate;
  try {
    u = ConfigUpdate.decode(bytes);
  } catch (e) {
    fail('MALFORMED_MESSAGE', 'the update file does not hold a configuration update', e);
  }
  if (u.ledgerId !== update.ledgerId) fail('CONFIG_INVALID', `the update is for ledger ${u.ledgerId}, the file says ${update.ledgerId}`);
  Membership.fromBytes(u.config, u.ledgerId);
  const cert = pemToDer(adminCertPem);
  const a = await approveConfigUpdate(bytes, orgId, cert, nodeSigner(importPrivateKey(adminKeyPem)));
  return { orgId, updateSha256: toHex(sha256(bytes)), adminCert: derToPem(cert), signature: toBase64(a.signature) };
}

/** Exact SignedConfigUpdate from an update file and approval files (each must be for that update). */
export function assemble(update: UpdateFile, approvals: ApprovalFile[]): SignedConfigUpdate {
  const bytes = fromBase64(update.update, 'update');
  const digest = toHex(sha256(bytes));
  const list: ConfigApproval[] = approvals.map((a, i) => {
    if (a.updateSha256 !== digest) fail('CONFIG_INVALID', `approval ${i} (${a.orgId}) is for another update`);
    return { orgId: a.orgId, adminCert: pemToDer(a.adminCert), signature: fromBase64(a.signature, 'signature') };
  });
  return { update: bytes, approvals: list };
}

/** Submits an assembled update to a node; returns the config tx ID and new version. */
export async function submit(address: string, token: string, signed: SignedConfigUpdate): Promise<{ txId: number; version: number; hash: string }> {
  const c = client(address);
  try {
    const r = await unary(c, c.submitConfigUpdate, { update: signed }, { metadata: bearer(token), timeoutMs: 30_000 });
    return { txId: r.txId, version: r.configVersion, hash: toHex(r.configHash) };
  } finally {
    c.close();
  }
}

/** Runs one command; returns the exit code. */
export async function runConsortiumCli(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'init': {
      const { values: v } = parse(
        rest,
        { dir: { type: 'string' }, 'ledger-id': { type: 'string' }, org: { type: 'string', multiple: true }, url: { type: 'string', multiple: true }, cef: { type: 'string', multiple: true }, etcd: { type: 'string' } },
        USAGE,
      );
      const orgs = list(v.org).map((s) => {
        const [id, name, nodes] = s.split(':');
        if (!id || !name || !nodes) fail('CONFIG_INVALID', `--org ${s}: expected ID:NAME:NODE[,NODE…]`);
        return { id, name, nodes: nodes.split(',') };
      });
      const nodeUrls = Object.fromEntries(list(v.url).map((s) => [nodeSpec(s).name, nodeSpec(s).urls]));
      const dir = resolve(str(v.dir, 'dir'));
      const ledgerId = str(v['ledger-id'], 'ledger-id');
      const c = await createLocalConsortium({ ledgerId, orgs, nodeUrls });
      writeLocalConsortium(c, dir);
      // AS node configurations ready to run, sharing a peer token (RP-dd) and an admin/consumer token
      const tokens = { consumerAndAdmin: randomBytes(24).toString('hex'), peer: randomBytes(24).toString('hex') };
      const cefs = Object.fromEntries(list(v.cef).map((x) => [nodeSpec(x).name, nodeSpec(x).urls[0]]));
      const etcd = (typeof v.etcd === 'string' ? v.etcd : 'http://127.0.0.1:23790,http://127.0.0.1:23792,http://127.0.0.1:23794').split(',');
      c.nodes.forEach((n, i) => {
        const port = Number((nodeUrls[n.name]?.[0] ?? '').split(':')[1] ?? 0);
        const config = {
          dataDir: join(dir, 'data', n.name),
          nodeName: n.name,
          ledgerId,
          port,
          httpPort: -1,
          cef: { address: cefs[n.name] ?? `127.0.0.1:${7001 + i}` },
          tokens: [
            { token: tokens.consumerAndAdmin, name: 'consumer-admin', roles: ['consumer', 'admin'] },
            { token: tokens.peer, name: 'consortium-peers', roles: ['peer'] },
          ],
          pki: { rootCaCert: join(dir, 'root-ca.pem'), asCert: join(dir, 'nodes', `${n.name}.pem`), asKey: join(dir, 'nodes', `${n.name}.key`), autoPki: false },
          ledger: { type: 'consortium', genesis: join(dir, 'genesis.json'), etcd: { endpoints: etcd }, peerToken: tokens.peer },
        };
        writeFileSync(join(dir, `${n.name}.json`), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
      });
      writeFileSync(join(dir, 'tokens.json'), `${JSON.stringify(tokens, null, 2)}\n`, { mode: 0o600 });
      console.log(JSON.stringify({ dir, genesis: join(dir, 'genesis.json'), rootCa: join(dir, 'root-ca.pem'), nodeConfigs: c.nodes.map((n) => join(dir, `${n.name}.json`)), tokens: join(dir, 'tokens.json'), config: c.genesis.describe() }, null, 2));
      return 0;
    }
    case 'etcd': {
      const { values: v } = parse(rest, { dir: { type: 'string' }, members: { type: 'string' }, 'base-port': { type: 'string' } }, USAGE);
      const cluster = await EtcdCluster.start({ dir: str(v.dir, 'dir'), members: Number(v.members ?? 3), basePort: Number(v['base-port'] ?? 23790) });
      console.log(JSON.stringify({ service: 'etcd', endpoints: cluster.endpoints, pids: cluster.members.map((m) => m.proc?.pid) }));
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await cluster.stop({ keepData: true });
      return 0;
    }
    case 'propose': {
      const { values: v } = parse(
        rest,
        {
          node: { type: 'string' },
          token: { type: 'string' },
          genesis: { type: 'string' },
          out: { type: 'string' },
          description: { type: 'string' },
          'add-org': { type: 'string' },
          ca: { type: 'string' },
          admin: { type: 'string' },
          'node-name': { type: 'string', multiple: true },
          'remove-org': { type: 'string' },
          'add-node': { type: 'string' },
          'remove-node': { type: 'string' },
        },
        USAGE,
      );
      const current = typeof v.genesis === 'string' ? Membership.fromGenesisFile(v.genesis) : await fetchConfig(str(v.node, 'node'), str(v.token, 'token'));
      let next: Membership;
      let what: string;
      if (typeof v['add-org'] === 'string') {
        const [id, name] = v['add-org'].split(':');
        if (!id) fail('CONFIG_INVALID', '--add-org ID:NAME');
        next = changedConfig(current, {
          addOrg: {
            id,
            name: name ?? id,
            caCerts: chainFromPem(readFileSync(str(v.ca, 'ca'), 'utf8')),
            adminCerts: chainFromPem(readFileSync(str(v.admin, 'admin'), 'utf8')),
            nodes: list(v['node-name']).map(nodeSpec),
          },
        });
        what = `add organization ${id}`;
      } else if (typeof v['remove-org'] === 'string') {
        next = changedConfig(current, { removeOrg: v['remove-org'] });
        what = `remove organization ${v['remove-org']}`;
      } else if (typeof v['add-node'] === 'string') {
        const [org, spec] = v['add-node'].split(/:(.*)/s);
        if (!org || !spec) fail('CONFIG_INVALID', '--add-node ORG:NODE[=HOST:PORT]');
        next = changedConfig(current, { addNode: { org, node: nodeSpec(spec) } });
        what = `add node ${nodeSpec(spec).name} to ${org}`;
      } else if (typeof v['remove-node'] === 'string') {
        next = changedConfig(current, { removeNode: v['remove-node'] });
        what = `remove node ${v['remove-node']}`;
      } else fail('CONFIG_INVALID', `one change is required\n\n${USAGE}`);
      const file = updateFile(current, next, typeof v.description === 'string' ? v.description : what);
      writeFileSync(str(v.out, 'out'), `${JSON.stringify(file, null, 2)}\n`);
      console.log(JSON.stringify(file.summary, null, 2));
      return 0;
    }
    case 'approve': {
      const { values: v } = parse(rest, { update: { type: 'string' }, org: { type: 'string' }, 'admin-cert': { type: 'string' }, 'admin-key': { type: 'string' }, out: { type: 'string' } }, USAGE);
      const update = readJson<UpdateFile>(str(v.update, 'update'));
      const a = await approvalFile(update, str(v.org, 'org'), readFileSync(str(v['admin-cert'], 'admin-cert'), 'utf8'), readFileSync(str(v['admin-key'], 'admin-key'), 'utf8'));
      writeFileSync(str(v.out, 'out'), `${JSON.stringify(a, null, 2)}\n`);
      console.log(`approved ${update.summary.description} (version ${update.summary.fromVersion} → ${update.summary.toVersion}) for ${a.orgId}`);
      return 0;
    }
    case 'submit': {
      const { values: v } = parse(rest, { update: { type: 'string' }, approval: { type: 'string', multiple: true }, node: { type: 'string' }, token: { type: 'string' } }, USAGE);
      const update = readJson<UpdateFile>(str(v.update, 'update'));
      const signed = assemble(update, list(v.approval).map((p) => readJson<ApprovalFile>(p)));
      const r = await submit(str(v.node, 'node'), str(v.token, 'token'), signed);
      console.log(JSON.stringify({ submitted: update.summary.description, ...r }));
      return 0;
    }
    case 'show': {
      const { values: v } = parse(rest, { node: { type: 'string' }, token: { type: 'string' } }, USAGE);
      console.log(JSON.stringify((await fetchConfig(str(v.node, 'node'), str(v.token, 'token'))).describe(), null, 2));
      return 0;
    }
    default:
      console.error(USAGE);
      return 2;
  }
}

if (import.meta.main) {
  runConsortiumCli(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`divs-consortium: ${e instanceof DivsError ? `${e.code}: ` : ''}${(e as Error).message}\n`);
      process.exit(e instanceof DivsError && e.code === 'CONFIG_INVALID' ? 2 : 1);
    },
  );
}
