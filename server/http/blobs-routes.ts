import { Router } from 'express';
import type { BlobStore } from '../storage/blob-store';
import { SHA256_HEX } from '../storage/blob-store';
import { HttpError } from './http-error';
import type { Metrics } from '../metrics/metrics';
import type { BlobCapability } from './blob-capability';

/**
 * Panels and model packages for contributors, through the signed, expiring
 * URLs their leases carry (blob-capability.ts): a requester's data is read only
 * by contributors that hold a lease on it. A blob's name is its hash, so the
 * bytes never change: ETag, Range and an immutable lifetime let the browser
 * keep them, but only privately: no shared proxy or CDN may keep a requester's data.
 */
export function blobsRouter(blobs: BlobStore, capability: BlobCapability, metrics: Metrics): Router {
  const router = Router();
  router.get('/blobs/:sha256', async (req, res) => {
    const sha = req.params.sha256;
    res.set('Cache-Control', 'no-store');
    if (!SHA256_HEX.test(sha)) throw new HttpError(400, 'BAD_BLOB_ID', 'a blob id is 64 lowercase hex digits (sha256)');
    const access = capability.check(sha, req.query.exp, req.query.sig);
    if (!access.ok) throw new HttpError(403, access.code, access.message);
    const file = await blobs.localFile(sha);
    if (!file) throw new HttpError(404, 'BLOB_NOT_FOUND', `no blob ${sha}; its job may have ended`);
    res.set('Cache-Control', 'private, max-age=31536000, immutable');
    res.on('finish', () => metrics.bytesSent.inc(Number(res.getHeader('content-length') ?? 0)));
    res.type('application/octet-stream');
    await new Promise<void>((resolve, reject) =>
      res.sendFile(file, { etag: true, lastModified: false, acceptRanges: true }, (err) => (err ? reject(err) : resolve())),
    );
  });
  return router;
}
