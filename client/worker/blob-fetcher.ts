import type { BlobRef } from '../../shared/protocol';

/**
 * Downloads content-addressed panels over HTTP, checks each against its
 * sha256, and keeps the most recent ones so that the next tile of the same
 * row or column does not fetch its panel again.
 */
export class BlobFetcher {
  private readonly cache = new Map<string, Promise<ArrayBuffer>>();
  private bytes = 0;

  constructor(
    private readonly baseUrl: string,
    private readonly maxBytes = 256 * 1024 * 1024,
  ) {}

  get(ref: BlobRef): Promise<ArrayBuffer> {
    const hit = this.cache.get(ref.sha256);
    if (hit) {
      this.cache.delete(ref.sha256);
      this.cache.set(ref.sha256, hit);
      return hit;
    }
    const load = this.download(ref);
    this.cache.set(ref.sha256, load);
    this.bytes += ref.bytes;
    load.catch(() => this.forget(ref.sha256, ref.bytes));
    this.evict(ref.bytes);
    return load;
  }

  private forget(sha: string, bytes: number): void {
    if (this.cache.delete(sha)) this.bytes -= bytes;
  }

  private evict(latest: number): void {
    for (const key of this.cache.keys()) {
      if (this.bytes <= this.maxBytes || this.cache.size <= 2) break;
      this.cache.delete(key);
      this.bytes -= latest; // panels of one job have near-equal sizes; an estimate keeps this simple
    }
  }

  private download(ref: BlobRef): Promise<ArrayBuffer> {
    return downloadBlob(this.baseUrl, ref);
  }
}

/**
 * Fetches a content-addressed blob through the lease's signed URL (used exactly
 * as given: its query is the permission) and checks its size and sha256.
 */
export async function downloadBlob(baseUrl: string, ref: BlobRef): Promise<ArrayBuffer> {
  const res = await fetch(new URL(ref.url, baseUrl));
  if (!res.ok) {
    // 403 BLOB_URL_EXPIRED and the like: say which, so a contributor's log tells a lapsed lease from a broken link.
    const body = (await res.json().catch(() => undefined)) as { error?: { code?: string; message?: string } } | undefined;
    const why = body?.error?.code ? ` ${body.error.code}: ${body.error.message ?? ''}` : '';
    throw new Error(`blob ${ref.sha256.slice(0, 12)}: HTTP ${res.status}${why}`);
  }
  const buf = await res.arrayBuffer();
  if (buf.byteLength !== ref.bytes) throw new Error(`blob ${ref.sha256.slice(0, 12)}: ${buf.byteLength} bytes, expected ${ref.bytes}`);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
  if (hex !== ref.sha256) throw new Error(`blob ${ref.sha256.slice(0, 12)}: content does not match its hash`);
  return buf;
}
