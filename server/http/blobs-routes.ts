import { Router } from 'express';
import type { BlobStore } from '../storage/blob-store';
import { SHA256_HEX } from '../storage/blob-store';
import { HttpError } from './http-error';
import type { Metrics } from '../metrics/metrics';

/**
 * Content-addressed panels for contributors. A blob's name is its hash, so
 * the response never changes: immutable caching, ETag and Range requests let
 * a browser cache, a proxy or a CDN serve repeats.
 */
export function blobsRouter(blobs: BlobStore, metrics: Metrics): Router {
  const router = Router();
  router.get('/blobs/:sha256', async (req, res) => {
    const sha = req.params.sha256;
    if (!SHA256_HEX.test(sha)) throw new HttpError(400, 'BAD_BLOB_ID', 'a blob id is 64 lowercase hex digits (sha256)');
    const file = await blobs.localFile(sha);
    if (!file) throw new HttpError(404, 'BLOB_NOT_FOUND', `no blob ${sha}; its job may have ended`);
    res.set('Cache-Control', 'public, max-age=31536000, immutable');
    res.on('finish', () => metrics.bytesSent.inc(Number(res.getHeader('content-length') ?? 0)));
    res.type('application/octet-stream');
    await new Promise<void>((resolve, reject) =>
      res.sendFile(file, { etag: true, lastModified: false, acceptRanges: true }, (err) => (err ? reject(err) : resolve())),
    );
  });
  return router;
}
