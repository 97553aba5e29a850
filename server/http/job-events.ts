import type { Request, Response } from 'express';
import type { Store } from '../store/store';
import { toJobView } from './job-view';

const POLL_MS = 250;
const HEARTBEAT_MS = 15_000;

/**
 * Server-Sent Events for one job: a `progress` event whenever its status or
 * progress changes, then `end` once it has finished. It watches the store
 * rather than in-process events, so a stream shows progress made by any
 * coordinator that shares the store.
 */
export async function streamJobEvents(req: Request, res: Response, jobId: string, store: Store): Promise<void> {
  res.status(200).set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no', // nginx: do not buffer the stream
  });
  res.flushHeaders();
  res.write('retry: 2000\n\n');
  let last = '';
  let lastWrite = Date.now();
  let closed = false;
  req.on('close', () => (closed = true));
  while (!closed) {
    const job = await store.getJob(jobId);
    if (!job) break;
    const view = toJobView(job);
    const key = `${view.status}|${view.progress.done}|${view.progress.verified}`;
    if (key !== last) {
      last = key;
      res.write(`event: progress\ndata: ${JSON.stringify(view)}\n\n`);
      lastWrite = Date.now();
    } else if (Date.now() - lastWrite > HEARTBEAT_MS) {
      res.write(': keep-alive\n\n'); // proxies close idle streams
      lastWrite = Date.now();
    }
    if (view.status !== 'queued' && view.status !== 'running') {
      res.write(`event: end\ndata: ${JSON.stringify({ status: view.status })}\n\n`);
      break;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  res.end();
}
