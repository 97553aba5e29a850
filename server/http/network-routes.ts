import { Router } from 'express';
import { z } from 'zod';
import type { BenchmarkService } from '../benchmarks/benchmark-service';
import type { NetworkStats } from '../community/network-stats';
import { HttpError } from './http-error';

const BenchmarkListQuerySchema = z.object({ limit: z.coerce.number().int().min(1).max(100).default(20) });

/** Public, cache-friendly views of the network: a snapshot, a live stream of snapshots, the leaderboard. */
export function networkRouter(stats: NetworkStats, benchmarks: BenchmarkService): Router {
  const router = Router();
  /** Completed network benchmarks, grouped by adapter: public, like the leaderboard. */
  router.get('/benchmarks', async (req, res) => {
    const q = BenchmarkListQuerySchema.safeParse(req.query);
    if (!q.success) throw new HttpError(400, 'BAD_REQUEST', 'limit must be a whole number from 1 to 100');
    res.set('Cache-Control', 'public, max-age=10');
    res.json(await benchmarks.recent(q.data.limit));
  });
  router.get('/network', async (_req, res) => {
    res.set('Cache-Control', 'public, max-age=2');
    res.json(await stats.current());
  });
  router.get('/leaderboard', async (_req, res) => {
    res.set('Cache-Control', 'public, max-age=10');
    res.json((await stats.current()).leaderboard);
  });
  router.get('/network/events', async (req, res) => {
    res.status(200).set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache, no-transform', 'X-Accel-Buffering': 'no' });
    res.flushHeaders();
    const send = (s: unknown) => res.write(`event: snapshot\ndata: ${JSON.stringify(s)}\n\n`);
    send(await stats.current());
    const unsubscribe = stats.subscribe(send);
    req.on('close', unsubscribe);
  });
  return router;
}
