import type { BlobStore } from '../storage/blob-store';

/**
 * Keeps recently used panels in memory, bounded in bytes: the tiles of one
 * row share an A panel and the tiles of one column a B panel, so verification
 * reads each from disk about once instead of once per tile.
 */
export class PanelCache {
  private readonly entries = new Map<string, Promise<Float32Array>>();
  private readonly sizes = new Map<string, number>();
  private bytes = 0;

  constructor(
    private readonly blobs: BlobStore,
    private readonly maxBytes: number,
  ) {}

  get(sha256: string, bytes: number): Promise<Float32Array> {
    const hit = this.entries.get(sha256);
    if (hit) {
      this.entries.delete(sha256); // re-insert: Map order is our LRU order
      this.entries.set(sha256, hit);
      return hit;
    }
    const load = this.blobs.readFloat32(sha256);
    load.catch(() => this.drop(sha256));
    this.entries.set(sha256, load);
    this.sizes.set(sha256, bytes);
    this.bytes += bytes;
    this.evict();
    return load;
  }

  drop(sha256: string): void {
    if (!this.entries.delete(sha256)) return;
    this.bytes -= this.sizes.get(sha256) ?? 0;
    this.sizes.delete(sha256);
  }

  private evict(): void {
    for (const key of this.entries.keys()) {
      if (this.bytes <= this.maxBytes || this.entries.size <= 2) break;
      this.drop(key);
    }
  }
}
