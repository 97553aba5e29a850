import { HttpError } from './http-error';

/** A slot frees as soon as an upload in progress is answered: a few seconds is a fair wait. */
const RETRY_AFTER_S = 5;

/**
 * Counts job submissions being received and checked, over all keys and per
 * key. Each holds a temporary file per upload and a panel's worth of memory
 * while it is cut, so the count bounds the coordinator's disk traffic and
 * memory whatever the clients do.
 */
export class UploadSlots {
  private total = 0;
  private readonly byKey = new Map<string, number>();

  constructor(private readonly limits: { total: number; perKey: number }) {}

  /** Takes a slot for the key, or throws 429 with Retry-After; returns the release, safe to call twice. */
  acquire(keyId: string): () => void {
    const mine = this.byKey.get(keyId) ?? 0;
    if (mine >= this.limits.perKey) {
      throw new HttpError(
        429,
        'TOO_MANY_UPLOADS',
        `this key already has ${mine} job submissions in progress, the most it may have at once; wait for one to be answered, then send this one again`,
        { retryAfterSeconds: RETRY_AFTER_S },
      );
    }
    if (this.total >= this.limits.total) {
      throw new HttpError(429, 'TOO_MANY_UPLOADS', `the coordinator is receiving ${this.total} job submissions, the most it takes at once; send this one again in a few seconds`, {
        retryAfterSeconds: RETRY_AFTER_S,
      });
    }
    this.total++;
    this.byKey.set(keyId, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.byKey.get(keyId) ?? 1) - 1;
      if (left > 0) this.byKey.set(keyId, left);
      else this.byKey.delete(keyId);
    };
  }
}
