/**
 * The `divs` CLI and the `npm start` scenario, run as real processes.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/proc.ts';
import { tempDir } from '../helpers/divs.ts';

const divs = (args: string[], timeout = 120_000) =>
  spawnSync(process.execPath, [join(REPO_ROOT, 'bin/divs.ts'), ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout, env: { ...process.env, DIVS_LOG_LEVEL: 'error' } });

describe('divs CLI', () => {
  it('prints help, and refuses unknown commands and bad flags with exit code 2', () => {
    const help = divs(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/divs <command>/);
    expect(divs(['frobnicate']).status).toBe(2);
    const bad = divs(['ue', 'fleet', '--count', 'many', '--cef', 'x', '--as', 'y']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/CONFIG_INVALID: --count/);
  });

  it('[GEN-2] [VER-3] [MTC-2] [UPD-4] runs the end-to-end scenario: tampered and post-termination readings are caught, the rest verify', () => {
    const dir = tempDir('demo');
    try {
      const r = divs(['demo', '--once', '--json', '--data-dir', dir, '--meters', '8', '--readings', '4']);
      expect(r.status, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as { registered: number; readings: number; valid: number; invalid: number; byReason: Record<string, number> };
      expect(summary.registered).toBe(8);
      expect(summary.readings).toBe(32);
      // meter #3's contract ends between readings 3 and 4: its 4th reading is refused
      expect(summary.byReason).toEqual({ INVALID_SIGNATURE: 1, SIGNED_AFTER_TERMINATION: 1 });
      expect(summary.valid).toBe(30);
      // the ledger it left behind re-verifies offline, and the records file re-verifies too
      const lv = divs(['ledger', 'verify', '--data-dir', join(dir, 'as'), '--json']);
      expect(lv.status, lv.stderr).toBe(0);
      expect(JSON.parse(lv.stdout).transactions).toBe(9);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
