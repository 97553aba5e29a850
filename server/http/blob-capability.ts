import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Capability URLs for blobs. A requester's panels and model packages are read
 * by the contributors that compute on them and by no one else: a lease carries
 * `/api/v1/blobs/<sha256>?exp=<unix seconds>&sig=<base64url HMAC-SHA256>`, and
 * the blob route serves only URLs whose signature this network made and whose
 * expiry has not passed. The check is stateless (no store lookup per fetch), so
 * any coordinator sharing the key serves any blob.
 */

/** Kept after the lease's deadline: a contributor fetches at grant time, but queued leases and slow links take a while. */
const GRACE_SECONDS = 300;
/**
 * Expiries are rounded up to this step, so every lease that needs the same blob
 * within one step carries the very same URL: the browser's HTTP cache and Range
 * resumption keep working across leases of one panel.
 */
const EXPIRY_STEP_SECONDS = 300;
/** Domain separation: this key signs nothing else, but a version tag lets the format change later. */
const CONTEXT = 'tessera-blob-v1';
const SIG_BYTES = 32;
const SIG_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const EXP_PATTERN = /^\d{1,12}$/;

/** The name of the store setting that holds the generated key (base64url, 32 random bytes). */
export const BLOB_KEY_SETTING = 'blob-url-key';

export type BlobAccess = { ok: true } | { ok: false; code: 'BLOB_FORBIDDEN' | 'BLOB_URL_EXPIRED'; message: string };

export class BlobCapability {
  constructor(
    private readonly key: Buffer,
    private readonly clock: () => number = Date.now,
  ) {
    if (key.length < 32) throw new Error('the blob URL key must be at least 32 bytes');
  }

  /** The URL a lease carries for `sha256`, valid until the lease's deadline plus a grace (epoch milliseconds in). */
  url(sha256: string, deadlineMs: number): string {
    const exp = Math.ceil((Math.ceil(deadlineMs / 1000) + GRACE_SECONDS) / EXPIRY_STEP_SECONDS) * EXPIRY_STEP_SECONDS;
    return `/api/v1/blobs/${sha256}?exp=${exp}&sig=${this.sign(sha256, exp).toString('base64url')}`;
  }

  /**
   * Checks a request's `exp` and `sig` for `sha256`. The signature is checked
   * before the expiry, so "expired" is said only of URLs this network issued;
   * the comparison takes the same time wherever the bytes differ.
   */
  check(sha256: string, exp: unknown, sig: unknown): BlobAccess {
    if (typeof exp !== 'string' || typeof sig !== 'string' || !EXP_PATTERN.test(exp) || !SIG_PATTERN.test(sig)) {
      return { ok: false, code: 'BLOB_FORBIDDEN', message: 'blobs are read through the signed URL in a lease (with its exp and sig parameters); ask for a lease' };
    }
    const given = Buffer.from(sig, 'base64url');
    const expected = this.sign(sha256, Number(exp));
    if (given.length !== SIG_BYTES || !timingSafeEqual(given, expected)) {
      return { ok: false, code: 'BLOB_FORBIDDEN', message: "this URL's signature is not valid for this blob; use the URL exactly as the lease gave it" };
    }
    if (Number(exp) * 1000 <= this.clock()) {
      return { ok: false, code: 'BLOB_URL_EXPIRED', message: 'this blob URL has expired with its lease; ask for a new lease' };
    }
    return { ok: true };
  }

  private sign(sha256: string, exp: number): Buffer {
    return createHmac('sha256', this.key).update(`${CONTEXT}\n${sha256}\n${exp}`).digest();
  }
}

/** The part of the store that keeps network-wide settings. */
export interface SettingsStore {
  initSetting(name: string, value: string): Promise<string>;
}

/**
 * The signing key: `TESSERA_BLOB_SECRET` when the operator sets one (every
 * coordinator of a network must then set the same), else a random key that the
 * first coordinator to start stores and every later start (and every other node
 * on the same database) reads, so URLs in leases granted before a restart or by
 * another node still work.
 */
export async function loadBlobKey(store: SettingsStore, configured?: string): Promise<Buffer> {
  if (configured) return Buffer.from(configured, 'utf8');
  const stored = await store.initSetting(BLOB_KEY_SETTING, randomBytes(32).toString('base64url'));
  return Buffer.from(stored, 'base64url');
}
