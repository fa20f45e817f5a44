/**
 * @module test/helpers/divs
 * Starts a real CEF + AS node pair on loopback (separate processes) with a fresh data
 * directory, and gives tests the clients they need.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CefClient } from '../../cef/src/client.ts';
import { DivsConsumer } from '../../consumer/src/client.ts';
import { pemToDer } from '../../protocol/src/pki.ts';
import { spawnService, type ServiceProcess } from './proc.ts';

export interface Stack {
  dir: string;
  plmn: string;
  cef: ServiceProcess;
  cefClient: CefClient;
  as: ServiceProcess;
  asAddress: string;
  asDataDir: string;
  token: string;
  rootDer: Uint8Array;
  consumer: DivsConsumer;
  startAs(): Promise<ServiceProcess>;
  stop(): Promise<void>;
}

export const tempDir = (prefix: string): string => mkdtempSync(join(tmpdir(), `divs-${prefix}-`));

export async function startAs(asDataDir: string, cefPort: number, extra: string[] = [], port = 0): Promise<ServiceProcess> {
  return spawnService(['as-node/src/main.ts', '--data-dir', asDataDir, '--cef', `127.0.0.1:${cefPort}`, '--port', String(port), '--ledger-id', 'divs-test', ...extra], {}, { autoStop: false });
}

/** CEF + AS node as real processes; stop() kills both by PID and removes the data. */
export async function startStack(plmn = '26201'): Promise<Stack> {
  const dir = tempDir('stack');
  const cef = await spawnService(['cef/src/main.ts', '--data-dir', join(dir, 'cef'), '--plmn', plmn, '--operator', 'TestTel', '--port', '0'], {}, { autoStop: false });
  const asDataDir = join(dir, 'as');
  let as = await startAs(asDataDir, cef.port);
  const token = readFileSync(join(asDataDir, 'consumer.token'), 'utf8').trim();
  const rootDer = pemToDer(readFileSync(join(asDataDir, 'pki', 'root-ca.pem'), 'utf8'));
  const consumer = new DivsConsumer({ anchors: { roots: [rootDer] }, tokens: { '*': token }, latestTtlMs: 0 });
  const cefClient = new CefClient(`127.0.0.1:${cef.port}`);
  const stack: Stack = {
    dir,
    plmn,
    cef,
    cefClient,
    get as() {
      return as;
    },
    asAddress: `127.0.0.1:${as.port}`,
    asDataDir,
    token,
    rootDer,
    consumer,
    async startAs() {
      as = await startAs(asDataDir, cef.port, [], Number(stack.asAddress.split(':')[1]));
      return as;
    },
    async stop() {
      consumer.close();
      cefClient.close();
      await Promise.allSettled([as.stop(), cef.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return stack;
}
