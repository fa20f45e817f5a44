/**
 * @module log
 * Structured JSON logs (pino) to stderr, so stdout stays free for CLI output.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(service: string, level: string = process.env.DIVS_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: service, level, base: { service, pid: process.pid } }, pino.destination(2));
}

/** A logger that drops everything (tests and library use). */
export const silentLogger: Logger = pino({ level: 'silent' });
