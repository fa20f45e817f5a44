/**
 * @module spawn
 * Starts a DIVS service as a child process (Node 24 running its TypeScript entry point), waits
 * for its one-line JSON ready message on stdout (`{"service":…,"port":N,…}`), and stops it by
 * PID: SIGTERM, then SIGKILL after a grace period. Used by the CLI scenario, the benchmarks and
 * (through test/helpers/proc.ts) the integration tests. Children still alive when this process
 * exits are SIGKILLed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Repository root (default working directory, so `cef/src/main.ts` resolves). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildService {
  /** Port from the ready line. */
  port: number;
  pid: number;
  /** The whole parsed ready line. */
  ready: Record<string, unknown>;
  /** Resolves when the process has exited. */
  exited: Promise<ExitInfo>;
  /** SIGTERM, then SIGKILL after the timeout; resolves on exit. Idempotent. */
  stop(timeoutMs?: number): Promise<ExitInfo>;
  /** Sends a signal (default SIGKILL) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<ExitInfo>;
  /** Recent stdout/stderr (last 64 KiB each). */
  output(): { stdout: string; stderr: string };
}

export interface StartOptions {
  cwd?: string;
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** How long to wait for the ready line (ms); default 30 000. */
  readyTimeoutMs?: number;
  /** How long `stop()` waits after SIGTERM before SIGKILL (ms); default 5 000. */
  stopTimeoutMs?: number;
  /** Executable; default `process.execPath` (Node 24). */
  command?: string;
  /** Flags before the script (e.g. --no-node-snapshot). */
  nodeArgs?: string[];
  /** Copy the child's stderr (its logs) to ours as it comes. */
  showLogs?: boolean;
}

const TAIL = 64 * 1024;
const tail = (s: string): string => (s.length > TAIL ? s.slice(s.length - TAIL) : s);
const live = new Set<ChildProcess>();
let exitHook = false;

/** Spawns `node [nodeArgs] args…` and resolves once the JSON ready line (with a port) arrives. */
export async function startService(args: string[], o: StartOptions = {}): Promise<ChildService> {
  if (!exitHook) {
    exitHook = true;
    // last resort: never leave a service running after this process is gone
    process.on('exit', () => {
      for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    });
  }
  const child = spawn(o.command ?? process.execPath, [...(o.nodeArgs ?? []), ...args], {
    cwd: o.cwd ?? REPO_ROOT,
    env: { ...process.env, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr = tail(stderr + d);
    if (o.showLogs) process.stderr.write(d);
  });
  const exited = new Promise<ExitInfo>((resolve) =>
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  const what = args.find((a) => a.endsWith('.ts') || a.endsWith('.js')) ?? o.command ?? 'service';
  const readyMs = o.readyTimeoutMs ?? 30_000;

  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let buf = '';
    let done = false;
    const finish = (err: Error | undefined, value?: Record<string, unknown>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(value as Record<string, unknown>);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(new Error(`${what}: no ready line within ${readyMs} ms\n--- stderr ---\n${stderr}`));
    }, readyMs);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout = tail(stdout + d);
      if (done) return;
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        try {
          const v = JSON.parse(line) as Record<string, unknown>;
          if (typeof v.port === 'number') return finish(undefined, v);
        } catch {
          // not the ready line
        }
      }
    });
    child.once('error', (e) => finish(new Error(`${what}: cannot start: ${e.message}`)));
    void exited.then(({ code, signal }) => finish(new Error(`${what}: exited (code ${code}, signal ${signal}) before it was ready\n--- stderr ---\n${stderr}`)));
  });

  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitInfo> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  let stopping: Promise<ExitInfo> | undefined;
  const stop = (timeoutMs = o.stopTimeoutMs ?? 5_000): Promise<ExitInfo> => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(t);
      }
    })();
    return stopping;
  };
  return { port: ready.port as number, pid: child.pid as number, ready, exited, stop, kill, output: () => ({ stdout, stderr }) };
}

/** Stops every child started here that is still running (SIGTERM, then SIGKILL). */
export async function stopAllServices(timeoutMs = 5_000): Promise<void> {
  await Promise.all(
    [...live].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
          c.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          c.kill('SIGTERM');
        }),
    ),
  );
}
