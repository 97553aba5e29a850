import type { Request, Response } from 'express';
import { KEY_REVOKED_REASON } from '../auth/key-revocations';
import type { RevokedKey, Store } from '../store/store';
import { jobTrustFacts, toJobView } from './job-view';

const POLL_MS = 250;
const HEARTBEAT_MS = 15_000;

/** The key a stream was opened with, and where to hear of its revocation. */
export interface StreamKey {
  keyId: string;
  revocations: { watch(keyId: string, onRevoked: (key: RevokedKey) => void): () => void };
}

const revokedEvent = (name?: string) =>
  `event: revoked\ndata: ${JSON.stringify({ code: 'KEY_REVOKED', message: `the API key${name ? ` "${name}"` : ''} was revoked: this stream is closed and the key's queued and running jobs are cancelled` })}\n\n`;

/**
 * Server-Sent Events for one job: a `progress` event whenever its status or
 * progress changes, then `end` once it has finished, or `revoked` (and the
 * stream closes) as soon as the key that opened it is revoked. It watches the
 * store rather than in-process events, so a stream shows progress made by any
 * coordinator that shares the store.
 */
export async function streamJobEvents(req: Request, res: Response, jobId: string, store: Store, key: StreamKey): Promise<void> {
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
  let revoked: RevokedKey | undefined;
  let wake: (() => void) | undefined;
  res.on('close', () => {
    closed = true;
    wake?.();
  });
  const unwatch = key.revocations.watch(key.keyId, (k) => {
    revoked = k;
    wake?.();
  });
  try {
    while (!closed && !revoked) {
      const job = await store.getJob(jobId);
      if (!job || revoked) break;
      const view = toJobView(job, undefined, await jobTrustFacts(store, job));
      const state = `${view.status}|${view.progress.done}|${view.progress.verified}|${view.replication?.awaitingSecondOpinion ?? ''}|${view.replication?.note ?? ''}|${view.fromBannedContributors?.shards ?? ''}`;
      if (state !== last) {
        last = state;
        res.write(`event: progress\ndata: ${JSON.stringify(view)}\n\n`);
        lastWrite = Date.now();
      } else if (Date.now() - lastWrite > HEARTBEAT_MS) {
        res.write(': keep-alive\n\n'); // proxies close idle streams
        lastWrite = Date.now();
      }
      if (view.status !== 'queued' && view.status !== 'running') {
        // Another coordinator may have cancelled the job before this one heard of the revocation.
        if (job.reason === KEY_REVOKED_REASON) res.write(revokedEvent());
        else res.write(`event: end\ndata: ${JSON.stringify({ status: view.status })}\n\n`);
        break;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, POLL_MS);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
    if (revoked && !closed) res.write(revokedEvent(revoked.name));
  } finally {
    unwatch();
    res.end();
  }
}
