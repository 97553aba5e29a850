import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON logs on stdout, one object per line, ready for any log shipper. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'tessera-coordinator' } });
}
