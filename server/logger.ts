import { pino, type DestinationStream, type Logger } from 'pino';
import { redactLeaseUrl, redactToken } from './http/redact';

export type { Logger };

/** Fields that may hold a lease token (the credential for a result), or a URL with one in its path. */
const TOKEN_FIELDS = ['leaseToken', 'token', '*.leaseToken', '*.token'];
const URL_FIELDS = ['url', 'path', 'req.url', '*.url'];

/**
 * A second line of defence behind the call sites, which redact tokens
 * themselves: a field that carries a token, or a URL with one, is redacted
 * whatever code wrote it.
 */
function censor(value: unknown, path: string[]): unknown {
  if (typeof value !== 'string') return value;
  return URL_FIELDS.some((f) => f.split('.').at(-1) === path.at(-1)) ? redactLeaseUrl(value) : redactToken(value);
}

/** JSON logs on stdout (or `destination`), one object per line, ready for any log shipper. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, base: { service: 'tessera-coordinator' }, redact: { paths: [...TOKEN_FIELDS, ...URL_FIELDS], censor } };
  return destination ? pino(options, destination) : pino(options);
}
