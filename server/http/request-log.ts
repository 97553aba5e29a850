import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Logger } from '../logger';
import { redactLeaseUrl } from './redact';

/**
 * One structured line per REST request, with a request id (the client's
 * X-Request-Id when it sent a sane one) echoed back, so a requester's report
 * leads to the log line — and from its jobId to the job's shard lines.
 */
export function requestLog(log: Logger): RequestHandler {
  return (req, res, next) => {
    const given = req.get('x-request-id');
    const id = given && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    res.set('X-Request-Id', id);
    res.locals.requestId = id;
    const start = process.hrtime.bigint();
    res.on('finish', () => {
      log.info(
        {
          requestId: id,
          method: req.method,
          route: req.route ? `${req.baseUrl}${String(req.route.path)}` : undefined,
          // A result PUT's path holds the lease token, the credential for that result.
          path: redactLeaseUrl(req.path),
          status: res.statusCode,
          ms: Number(process.hrtime.bigint() - start) / 1e6,
          ...(res.locals.jobId ? { jobId: res.locals.jobId } : {}),
        },
        'request',
      );
    });
    next();
  };
}
