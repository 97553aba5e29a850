import { open } from 'node:fs/promises';
import type { BlobStore } from '../storage/blob-store';
import { collectReleasedSharedMemory } from './shared-memory-gc';

/** A copy of `x` in shared memory, which worker threads read without copying it again. */
export function toShared(x: Float32Array): Float32Array {
  if (x.buffer instanceof SharedArrayBuffer) return x;
  const shared = new Float32Array(new SharedArrayBuffer(x.byteLength));
  shared.set(x);
  return shared;
}

/** Reads a file straight into shared memory (zero-padded to whole float32 values): no copy on the event loop. */
async function readShared(path: string): Promise<Float32Array> {
  const file = await open(path, 'r');
  try {
    const { size } = await file.stat();
    const shared = new SharedArrayBuffer(Math.ceil(size / 4) * 4);
    const bytes = new Uint8Array(shared, 0, size);
    for (let at = 0; at < size; ) {
      const { bytesRead } = await file.read(bytes, at, size - at, at);
      if (bytesRead === 0) throw new Error(`${path} ended after ${at} of ${size} bytes`);
      at += bytesRead;
    }
    return new Float32Array(shared);
  } finally {
    await file.close();
  }
}

/**
 * Keeps recently used panels in memory, bounded in bytes: the tiles of one
 * row share an A panel and the tiles of one column a B panel, so verification
 * reads each from disk about once instead of once per tile. Panels are kept
 * in SharedArrayBuffers: the verification threads read them in place.
 */
export class PanelCache {
  private readonly entries = new Map<string, Promise<Float32Array>>();
  private readonly sizes = new Map<string, number>();
  private bytes = 0;
  /** Bytes of shared memory evicted since the last collection was asked for. */
  private released = 0;

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
    const load = this.load(sha256);
    load.catch(() => this.drop(sha256));
    this.entries.set(sha256, load);
    this.sizes.set(sha256, bytes);
    this.bytes += bytes;
    this.evict();
    return load;
  }

  private async load(sha256: string): Promise<Float32Array> {
    const path = await this.blobs.localFile(sha256);
    return path ? readShared(path) : toShared(await this.blobs.readFloat32(sha256));
  }

  drop(sha256: string): void {
    if (!this.entries.delete(sha256)) return;
    const size = this.sizes.get(sha256) ?? 0;
    this.bytes -= size;
    this.sizes.delete(sha256);
    this.released += size;
    // A quarter of the cache (at least 64 MiB) let go: ask V8 to free it, which it would not do by itself.
    if (this.released >= Math.max(64 * 1024 * 1024, this.maxBytes / 4)) {
      this.released = 0;
      collectReleasedSharedMemory();
    }
  }

  private evict(): void {
    for (const key of this.entries.keys()) {
      if (this.bytes <= this.maxBytes || this.entries.size <= 2) break;
      this.drop(key);
    }
  }
}
