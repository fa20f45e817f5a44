/**
 * @module test/helpers/proc
 * Starts a DIVS service as a real child process for integration tests and stops it by PID.
 *
 * Contract with the service: it runs under Node 24 (`process.execPath` when vitest runs via
 * npm or node_modules/.bin), and once it serves it prints ONE JSON line with a numeric `port`
 * to stdout, e.g. `{"service":"cef","port":40123,"pid":4242}`. Anything before that line is
 * ignored; logs belong on stderr (kept, and shown when start-up fails; set DIVS_TEST_LOGS=1 to
 * stream them live).
 *
 * Clean-up: when spawned inside a test, the process is stopped when that test finishes
 * (`onTestFinished`). When spawned in a hook, stop it yourself (e.g. in `afterAll`) or call
 * {@link stopAll}; as a last resort every child still alive is SIGKILLed when the test worker
 * exits.
 *
 * @example
 * const cef = await spawnService(['cef/src/main.ts', '--data-dir', dir, '--plmn', '00101', '--port', '0']);
 * const client = new CefClient(`127.0.0.1:${cef.port}`);
 * await cef.kill('SIGKILL');            // crash it
 * await cef.stop();                     // or stop it gracefully: SIGTERM, then SIGKILL after 5 s
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';

/** Repository root (cwd of spawned services by default). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  /** Working directory; default the repository root (so `cef/src/main.ts` resolves). */
  cwd?: string;
  /** How long to wait for the ready line (ms); default 20 000. */
  readyTimeoutMs?: number;
  /** How long `stop()` waits after SIGTERM before SIGKILL (ms); default 5 000. */
  stopTimeoutMs?: number;
  /** Stop when the current test finishes (default true; ignored outside a test). */
  autoStop?: boolean;
  /** Executable; default `process.execPath` (Node 24). */
  command?: string;
}

export interface ServiceProcess {
  /** Port from the ready line. */
  port: number;
  pid: number;
  /** The whole parsed ready line. */
  ready: Record<string, unknown>;
  /** Resolves when the process has exited. */
  exited: Promise<ExitInfo>;
  /** SIGTERM, then SIGKILL after the stop timeout; resolves on exit. Idempotent. */
  stop(timeoutMs?: number): Promise<ExitInfo>;
  /** Sends a signal (default SIGKILL) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<ExitInfo>;
  /** Recent stdout/stderr (last 64 KiB each), for assertions and failure messages. */
  output(): { stdout: string; stderr: string };
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // last resort: never leave a service running after the test worker is gone
  process.on('exit', () => {
    for (const c of live) if (c.pid !== undefined) c.kill('SIGKILL');
  });
}

const TAIL = 64 * 1024;
const tail = (s: string): string => (s.length > TAIL ? s.slice(s.length - TAIL) : s);

/**
 * Spawns `command args...` (default: Node 24 running a TypeScript entry point), waits for its
 * JSON ready line and returns its port and PID.
 */
export async function spawnService(args: string[], env: Record<string, string | undefined> = {}, opts: SpawnOptions = {}): Promise<ServiceProcess> {
  installExitHook();
  const child = spawn(opts.command ?? process.execPath, args, {
    cwd: opts.cwd ?? REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let stdout = '';
  let stderr = '';
  const showLogs = process.env.DIVS_TEST_LOGS === '1';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr = tail(stderr + d);
    if (showLogs) process.stderr.write(d);
  });

  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  const what = args.find((a) => a.endsWith('.ts') || a.endsWith('.js')) ?? opts.command ?? 'service';

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
      finish(new Error(`${what}: no ready line within ${opts.readyTimeoutMs ?? 20_000} ms\n--- stderr ---\n${stderr}`));
    }, opts.readyTimeoutMs ?? 20_000);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout = tail(stdout + d);
      if (done) return;
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
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

  const pid = child.pid as number;
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitInfo> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  let stopping: Promise<ExitInfo> | undefined;
  const stop = (timeoutMs = opts.stopTimeoutMs ?? 5_000): Promise<ExitInfo> => {
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

  if (opts.autoStop !== false) {
    try {
      onTestFinished(async () => {
        await stop();
      });
    } catch {
      // spawned outside a test (in a hook): the caller stops it, or stopAll / the exit hook does
    }
  }

  return {
    port: ready.port as number,
    pid,
    ready,
    exited,
    stop,
    kill,
    output: () => ({ stdout, stderr }),
  };
}

/** Stops every child this helper started that is still running (SIGTERM, then SIGKILL). */
export async function stopAll(timeoutMs = 5_000): Promise<void> {
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
