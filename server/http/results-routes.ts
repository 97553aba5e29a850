import express, { Router } from 'express';
import { rateLimit } from 'express-rate-limit';
import { MAX_RESULT_BYTES, type ProtocolErrorCode, type ResultReply } from '../../shared/protocol';
import type { ResultIntake } from '../scheduler/result-intake';
import type { Store } from '../store/store';
import { HttpError } from './http-error';
import type { Metrics } from '../metrics/metrics';
import type { BenchmarkService } from '../benchmarks/benchmark-service';
import { networkPrefix } from '../trust/network-prefix';

const STATUS: Partial<Record<ProtocolErrorCode, number>> = {
  LEASE_UNKNOWN: 404,
  LEASE_EXPIRED: 409,
  JOB_CANCELLED: 409,
  SHAPE_MISMATCH: 422,
  VERIFICATION_FAILED: 422,
};

/**
 * Result tiles travel over plain HTTP like the panels do, so Socket.IO
 * carries control messages only: `PUT /api/v1/leases/<leaseToken>/result`
 * with the raw float32 tile. The lease token — a random secret handed only to
 * the lease holder — is the credential; the result goes through exactly the
 * same checks as one sent on the socket.
 */
export function resultsRouter(store: Store, intake: ResultIntake, metrics: Metrics, benchmarks: BenchmarkService): Router {
  const router = Router();
  const limiter = () =>
    rateLimit({
      windowMs: 60_000,
      limit: 1200,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      handler: (_req, _res, next) => next(new HttpError(429, 'RATE_LIMITED', 'too many results from this address; slow down')),
    });
  /** A network benchmark run's timings and probed elements of C, as JSON (shared/benchmark.ts). */
  router.put('/leases/:token/benchmark', limiter(), express.json({ limit: '64kb' }), async (req, res) => {
    if (!req.is('application/json')) throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the benchmark result as application/json');
    const reply = await benchmarks.submit(String(req.params.token ?? ''), req.body as unknown);
    res.status(reply.ok ? 200 : (STATUS[reply.error.code] ?? 400)).json(reply);
  });
  router.put(
    '/leases/:token/result',
    limiter(),
    express.raw({ type: 'application/octet-stream', limit: MAX_RESULT_BYTES }),
    async (req, res) => {
      if (!Buffer.isBuffer(req.body)) throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the tile as application/octet-stream (rows·cols little-endian float32)');
      const shardId = req.get('x-shard-id');
      if (!shardId || shardId.length > 64) throw new HttpError(400, 'BAD_REQUEST', 'the X-Shard-Id header must name the leased shard');
      metrics.bytesReceived.inc(req.body.length);
      const token = String(req.params.token ?? '');
      const lease = await store.findLease(token);
      let reply: ResultReply;
      if (!lease) reply = { ok: false, error: { code: 'LEASE_UNKNOWN', message: 'no such lease' } };
      else {
        // req.ip follows TESSERA_TRUST_PROXY (app.ts), as the contributor channel's address does.
        const network = networkPrefix(req.ip);
        reply = await intake.submit({ contributorId: lease.contributorId, sessionId: lease.sessionId, ...(network ? { network } : {}) }, { shardId, leaseToken: token, c: req.body });
      }
      res.status(reply.ok ? 200 : (STATUS[reply.error.code] ?? 400)).json(reply);
    },
  );
  return router;
}
