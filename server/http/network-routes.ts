import { Router } from 'express';
import type { NetworkStats } from '../community/network-stats';

/** Public, cache-friendly views of the network: a snapshot, a live stream of snapshots, the leaderboard. */
export function networkRouter(stats: NetworkStats): Router {
  const router = Router();
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
