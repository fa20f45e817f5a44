/**
 * @module ledger/consortium/etcd-cluster
 * Starts a local etcd cluster (Debian's etcd-server, `/usr/bin/etcd`) on loopback ports: each
 * member in its own directory, started and stopped by PID. For development, the consortium
 * tests and benchmark, and `divs-consortium etcd` (README). Raft timing is shortened
 * (heartbeat 50 ms, election 500 ms) so that losing and regaining a quorum takes about a
 * second on one machine, and requests up to 32 MiB are accepted (large blocks).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export const ETCD_BIN = process.env.DIVS_ETCD_BIN ?? '/usr/bin/etcd';

/** Whether etcd is installed. */
export function etcdInstalled(): boolean {
  return existsSync(ETCD_BIN);
}

/** A free loopback TCP port (bound and released; etcd needs explicit ports). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

interface Member {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  proc: ChildProcess | undefined;
  log: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const live = new Set<ChildProcess>();
let hooked = false;
function installExitHook(): void {
  if (hooked) return;
  hooked = true;
  // never leave a member running when this process goes away
  process.on('exit', () => {
    for (const p of live) p.kill('SIGKILL');
  });
}

export interface EtcdClusterOptions {
  members?: number;
  /** Where the members keep their data; default a new temp dir (removed by stop()). */
  dir?: string;
  /** Member i listens on basePort + 2i (clients) and basePort + 2i + 1 (peers); default: free ports. */
  basePort?: number;
  /** Extra etcd flags. */
  flags?: string[];
}

/** A cluster of real etcd members. */
export class EtcdCluster {
  readonly dir: string;
  readonly members: Member[];
  readonly #flags: string[];
  readonly #initial: string;
  // a temp dir made here is removed by stop(); a directory given by the caller never is
  #owned = false;
  readonly #token = `divs-test-${randomBytes(4).toString('hex')}`;

  private constructor(dir: string, members: Member[], flags: string[]) {
    this.dir = dir;
    this.members = members;
    this.#flags = flags;
    this.#initial = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  }

  /** Starts `members` (default 3) members and waits until the cluster has a leader. */
  static async start(o: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'divs-etcd-'));
    const members: Member[] = [];
    for (let i = 0; i < (o.members ?? 3); i++) {
      const [c, p] = o.basePort ? [o.basePort + 2 * i, o.basePort + 2 * i + 1] : [await freePort(), await freePort()];
      members.push({ name: `m${i}`, clientUrl: `http://127.0.0.1:${c}`, peerUrl: `http://127.0.0.1:${p}`, dataDir: join(dir, `m${i}`), proc: undefined, log: '' });
    }
    const cluster = new EtcdCluster(dir, members, o.flags ?? []);
    cluster.#owned = o.dir === undefined;
    try {
      for (let i = 0; i < members.length; i++) cluster.#spawn(i, 'new');
      await cluster.waitHealthy();
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    return cluster;
  }

  /** Client URLs of every member. */
  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  #spawn(i: number, state: 'new' | 'existing'): void {
    const m = this.members[i] as Member;
    const args = [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-peer-urls', m.peerUrl,
      '--initial-advertise-peer-urls', m.peerUrl,
      '--listen-client-urls', m.clientUrl,
      '--advertise-client-urls', m.clientUrl,
      '--initial-cluster', this.#initial,
      '--initial-cluster-state', state,
      '--initial-cluster-token', this.#token,
      '--heartbeat-interval', '50',
      '--election-timeout', '500',
      '--max-request-bytes', String(32 * 1024 * 1024),
      '--logger', 'zap',
      '--log-level', 'error',
      '--log-outputs', 'stderr',
      ...this.#flags,
    ];
    const proc = spawn(ETCD_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
      m.log = (m.log + d).slice(-16 * 1024);
    });
    m.proc = proc;
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    installExitHook();
  }

  /** Waits until every running member reports healthy (the cluster has a leader and a quorum). */
  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const m of this.members) {
      if (!m.proc) continue;
      for (;;) {
        try {
          const r = await fetch(`${m.clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
          const j = (await r.json()) as { health?: string };
          if (j.health === 'true') break;
        } catch {
          // not up yet
        }
        if (Date.now() > deadline) throw new Error(`etcd member ${m.name} not healthy within ${timeoutMs} ms\n${m.log}`);
        if (m.proc.exitCode !== null) throw new Error(`etcd member ${m.name} exited (${m.proc.exitCode})\n${m.log}`);
        await sleep(100);
      }
    }
  }

  /** Stops member i (SIGTERM by PID, SIGKILL after 5 s). */
  async stopMember(i: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const m = this.members[i] as Member;
    const p = m.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
    m.proc = undefined;
  }

  /** Restarts a stopped member on its data dir (it rejoins the cluster). */
  async startMember(i: number): Promise<void> {
    this.#spawn(i, 'existing');
  }

  /** Stops every member; removes the data when it is in a temp dir made by {@link start} (unless `keepData`). */
  async stop(o: { keepData?: boolean } = {}): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.stopMember(i)));
    if (this.#owned && !o.keepData) rmSync(this.dir, { recursive: true, force: true });
  }
}
