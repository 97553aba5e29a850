import { STATUS_CODES } from 'node:http';
import type { ErrorRequestHandler } from 'express';
import type { Logger } from '../logger';
import { redactLeaseUrl } from './redact';

/** The one error type of the REST API; `errorHandler` turns it into `{ error: { code, message } }`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** For 429 and 503: when the client may try again, sent as Retry-After. */
    readonly opts: { retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** Errors that body parsers and express raise carry a status; keep it, hide internals. */
function statusOf(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null) {
    const s = (err as { status?: unknown; statusCode?: unknown }).status ?? (err as { statusCode?: unknown }).statusCode;
    if (typeof s === 'number' && s >= 400 && s < 600) return s;
  }
  return undefined;
}

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof HttpError) {
      if (err.status >= 500) log.error({ err, url: redactLeaseUrl(req.originalUrl) }, 'request failed');
      if (err.opts.retryAfterSeconds !== undefined) res.set('Retry-After', String(err.opts.retryAfterSeconds));
      res.status(err.status).json({ error: { code: err.code, message: err.message } });
      return;
    }
    const status = statusOf(err);
    if (status !== undefined && status < 500) {
      // Only errors marked `expose` (http-errors' convention) may show their message: others can hold file paths.
      const exposed = typeof err === 'object' && err !== null && (err as { expose?: unknown }).expose === true && err instanceof Error;
      const code = status === 404 ? 'NOT_FOUND' : 'BAD_REQUEST';
      res.status(status).json({ error: { code, message: exposed ? err.message : (STATUS_CODES[status] ?? 'bad request') } });
      return;
    }
    log.error({ err, url: redactLeaseUrl(req.originalUrl) }, 'unhandled error');
    res.status(500).json({ error: { code: 'INTERNAL', message: 'internal error; the coordinator logged the details' } });
  };
}
