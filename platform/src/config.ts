/**
 * @module config
 * Configuration loading shared by every service: a zod schema per service, a JSON file, then
 * environment variables, then command-line overrides; every validation error names the field.
 */
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { fail } from '../../protocol/src/errors.ts';

/** Validates `input` with `schema`; CONFIG_INVALID lists every bad field by its path. */
export function parseConfig<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const r = schema.safeParse(input);
  if (!r.success) {
    fail('CONFIG_INVALID', r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '));
  }
  return r.data as z.infer<S>;
}

/** Reads a JSON config file (none: `{}`); CONFIG_INVALID names the file on a read or parse error. */
export function readConfigFile(file?: string): Record<string, unknown> {
  if (!file) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    fail('CONFIG_INVALID', `${file}: ${(e as Error).message}`);
  }
}

/** Picks `PREFIX_NAME` variables into config fields: `{ DATA_DIR: 'dataDir', PORT: ['port', Number] }`. */
export function configFromEnv(env: NodeJS.ProcessEnv, prefix: string, map: Record<string, string | [string, (v: string) => unknown]>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(map)) {
    const v = env[`${prefix}_${name}`];
    if (v === undefined || v === '') continue;
    const [field, conv] = typeof spec === 'string' ? [spec, (x: string) => x] : spec;
    out[field] = conv(v);
  }
  return out;
}

/** Codes that mean the command line, configuration or a named file is wrong. */
const USAGE_CODES: ReadonlySet<string> = new Set(['CONFIG_INVALID', 'INVALID_ARGUMENT', 'FILE_NOT_FOUND', 'FILE_EXISTS', 'FILE_ACCESS']);

/**
 * The exit status of a service that could not start: 2 when its configuration is wrong (fix the
 * config and retry), 3 otherwise (a port taken, a store that does not open, a peer down).
 */
export function startupExitCode(e: unknown): 2 | 3 {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && USAGE_CODES.has(code) ? 2 : 3;
}
