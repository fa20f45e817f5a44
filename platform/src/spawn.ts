/**
 * @module spawn
 * Starts a DIVS service as a child process (Node 24 running its TypeScript entry point), waits
 * for its one-line JSON ready message on stdout, and stops it by PID: SIGTERM, then SIGKILL
 * after a grace period. Used by the CLI scenario and by tests (through test/helpers/proc.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildService {
  port: number;
  pid: number;
  ready: Record<string, unknown>;
  exited: Promise<ExitInfo>;
  stop(timeoutMs?: number): Promise<ExitInfo>;
  kill(signal?: NodeJS.Signals): Promise<ExitInfo>;
  output(): { stdout: string; stderr: string };
}

export interface StartOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
  stopTimeoutMs?: number;
  command?: string;
  /** Extra node flags (e.g. --no-node-snapshot). */
  nodeArgs?: string[];
  /** Called for every stderr chunk (logs). */
  onStderr?: (chunk: string) => void;
}

const TAIL = 64 * 1024;
const tail = (s: string): string => (s.length > TAIL ? s.slice(s.length - TAIL) : s);
const live = new Set<ChildProcess>();
let hook = false;

/** Spawns `node [nodeArgs] args…` and resolves once the JSON ready line (with a port) arrives. */
export function startService(args: string[], o: StartOptions = {}): Promise<ChildService> {
  if (!hook) {
    hook = true;
    // never leave a child running when this process goes away
    process.on('exit', () => {
      for (const c of live) if (c.exitCode === null) c.kill('SIGKILL');
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
  const exited = new Promise<ExitInfo>((resolve) =>
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr = tail(stderr + d);
    o.onStderr?.(d);
  });
  return new Promise<ChildService>((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      child.kill('SIGKILL');
      reject(new Error(`${args[0]} did not become ready in ${o.readyTimeoutMs ?? 30_000} ms\n${stderr}`));
    }, o.readyTimeoutMs ?? 30_000);
    const stopFn = (sig: NodeJS.Signals, timeoutMs: number): Promise<ExitInfo> => {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill(sig);
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      return exited.finally(() => clearTimeout(t));
    };
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout = tail(stdout + d);
      if (done) return;
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const ready = JSON.parse(line) as Record<string, unknown>;
          if (typeof ready.port !== 'number') continue;
          done = true;
          clearTimeout(timer);
          resolve({
            port: ready.port,
            pid: child.pid as number,
            ready,
            exited,
            stop: (ms = o.stopTimeoutMs ?? 5000) => stopFn('SIGTERM', ms),
            kill: (sig = 'SIGKILL') => stopFn(sig, 2000),
            output: () => ({ stdout, stderr }),
          });
          return;
        } catch {
          // not the ready line
        }
      }
    });
    void exited.then((e) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${args[0]} exited (${e.code ?? e.signal}) before it was ready\n${stderr.trim()}`));
    });
  });
}
