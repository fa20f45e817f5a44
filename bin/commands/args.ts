/**
 * @module args
 * Argument parsing shared by the CLI commands: node's parseArgs with `--help` on every
 * command and usage errors as CONFIG_INVALID (exit code 2).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { fail } from '../../protocol/src/errors.ts';

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parse<O extends Options>(argv: string[], options: O, usage: string, positionals = false) {
  let r;
  try {
    r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: positionals, strict: true });
  } catch (e) {
    fail('CONFIG_INVALID', `${(e as Error).message}\n\n${usage}`);
  }
  if ((r.values as Record<string, unknown>).help) {
    console.log(usage);
    process.exit(0);
  }
  return r as unknown as { values: Record<keyof O, string | boolean | string[] | undefined>; positionals: string[] };
}

export function str(v: unknown, name: string, dflt?: string): string {
  if (typeof v === 'string' && v.length > 0) return v;
  if (dflt !== undefined) return dflt;
  fail('CONFIG_INVALID', `--${name} is required`);
}

export function int(v: unknown, name: string, dflt: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) fail('CONFIG_INVALID', `--${name} must be an integer from ${min} to ${max}`);
  return n;
}
