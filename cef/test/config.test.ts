/**
 * The CEF's configuration: file, then DIVS_CEF_* environment, then flags, one zod schema whose
 * errors name the bad field.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCefConfig } from '../src/config.ts';
import { DivsError } from '../../protocol/src/errors.ts';

const codeOf = (fn: () => unknown): { code: string; message: string } => {
  try {
    fn();
  } catch (e) {
    if (e instanceof DivsError) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected a DivsError');
};

describe('CEF configuration', () => {
  it('[RP-EDL] layers file, environment and flags, with defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'divs-cefcfg-'));
    try {
      const file = join(dir, 'cef.json');
      writeFileSync(file, JSON.stringify({ dataDir: '/from/file', plmnId: '26201', operatorName: 'Example Mobile', port: 7001 }));
      const cfg = loadCefConfig(file, { DIVS_CEF_PORT: '7002', DIVS_CEF_TOKENS: 'aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb' }, { port: 7003 });
      expect(cfg).toMatchObject({ dataDir: '/from/file', plmnId: '26201', operatorName: 'Example Mobile', port: 7003, host: '127.0.0.1', httpPort: 0, expirySweepMs: 60_000 });
      expect(cfg.tokens).toEqual(['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb']);
      expect(loadCefConfig(file, { DIVS_CEF_PORT: '7002' }).port).toBe(7002);
      expect(loadCefConfig(undefined, {}, { dataDir: 'd', plmnId: '001010', httpPort: -1 }).httpPort).toBe(-1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad values with CONFIG_INVALID naming the field', () => {
    expect(codeOf(() => loadCefConfig(undefined, {}, { dataDir: 'd', plmnId: '12' }))).toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringMatching(/^plmnId:/) });
    expect(codeOf(() => loadCefConfig(undefined, {}, { plmnId: '26201' })).message).toMatch(/dataDir/);
    expect(codeOf(() => loadCefConfig(undefined, {}, { dataDir: 'd', plmnId: '26201', port: 70000 })).message).toMatch(/^port:/);
    expect(codeOf(() => loadCefConfig(undefined, { DIVS_CEF_TOKENS: 'short' }, { dataDir: 'd', plmnId: '26201' })).message).toMatch(/^tokens\.0:/);
    expect(codeOf(() => loadCefConfig(undefined, {}, { dataDir: 'd', plmnId: '26201', bogus: 1 })).message).toMatch(/bogus/);
    expect(codeOf(() => loadCefConfig('/nonexistent/cef.json', {})).code).toBe('CONFIG_INVALID');
  });
});
