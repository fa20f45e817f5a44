/**
 * @module test/helpers/proc
 * Starts a DIVS service as a real child process for integration tests and stops it by PID
 * (platform/src/spawn.ts does the work; this adds test-lifetime clean-up).
 *
 * Contract with the service: it runs under Node 24 (`process.execPath` when vitest runs via
 * npm or node_modules/.bin), and once it serves it prints ONE JSON line with a numeric `port`
 * to stdout, e.g. `{"service":"cef","port":40123,"pid":4242}`. Logs belong on stderr (kept, and
 * shown when start-up fails; set DIVS_TEST_LOGS=1 to stream them live).
 *
 * Clean-up: when spawned inside a test, the process is stopped when that test finishes
 * (`onTestFinished`). When spawned in a hook, pass `{ autoStop: false }` and stop it yourself
 * (e.g. in `afterAll`) or call {@link stopAll}; as a last resort every child still alive is
 * SIGKILLed when the test worker exits.
 *
 * @example
 * const cef = await spawnService(['cef/src/main.ts', '--data-dir', dir, '--plmn', '00101', '--port', '0']);
 * await cef.kill('SIGKILL');            // crash it
 * await cef.stop();                     // or stop it gracefully: SIGTERM, then SIGKILL after 5 s
 */
import { onTestFinished } from 'vitest';
import { startService, stopAllServices, type ChildService, type ExitInfo } from '../../platform/src/spawn.ts';

export { REPO_ROOT } from '../../platform/src/spawn.ts';
export type { ExitInfo };
export type ServiceProcess = ChildService;

export interface SpawnOptions {
  /** Working directory; default the repository root. */
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

/** Spawns a service, waits for its ready line, and (inside a test) stops it when the test ends. */
export async function spawnService(args: string[], env: Record<string, string | undefined> = {}, opts: SpawnOptions = {}): Promise<ServiceProcess> {
  const svc = await startService(args, {
    env,
    showLogs: process.env.DIVS_TEST_LOGS === '1',
    readyTimeoutMs: opts.readyTimeoutMs ?? 20_000,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    ...(opts.stopTimeoutMs ? { stopTimeoutMs: opts.stopTimeoutMs } : {}),
    ...(opts.command ? { command: opts.command } : {}),
  });
  if (opts.autoStop !== false) {
    try {
      onTestFinished(async () => {
        await svc.stop();
      });
    } catch {
      // spawned outside a test (in a hook): the caller stops it, or stopAll / the exit hook does
    }
  }
  return svc;
}

/** Stops every child still running (SIGTERM, then SIGKILL). */
export const stopAll = stopAllServices;
