import { mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../sha256';
import { writeFileAtomic } from './atomic-file';

export const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Content-addressed files under `<dataDir>/blobs/<sha256>`. The name is the
 * hash of the content, so a blob is immutable, stored once however many jobs
 * share it, and safe for any cache or CDN to keep forever.
 */
export class BlobStore {
  constructor(private readonly dir: string) {}

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  path(sha256: string): string {
    if (!SHA256_HEX.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return join(this.dir, sha256);
  }

  async put(bytes: Uint8Array): Promise<{ sha256: string; bytes: number }> {
    const sha256 = sha256Hex(bytes);
    const path = this.path(sha256);
    const existing = await stat(path).catch(() => undefined);
    if (existing?.size !== bytes.byteLength) await writeFileAtomic(path, [bytes]);
    return { sha256, bytes: bytes.byteLength };
  }

  async has(sha256: string): Promise<boolean> {
    return SHA256_HEX.test(sha256) && (await stat(this.path(sha256)).catch(() => undefined)) !== undefined;
  }

  /** Reads a blob as float32 (copied when the buffer is not 4-byte aligned). */
  async readFloat32(sha256: string): Promise<Float32Array> {
    const buf = await readFile(this.path(sha256));
    if (buf.byteOffset % 4 === 0) return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    return new Float32Array(new Uint8Array(buf).buffer);
  }

  async delete(sha256: string): Promise<void> {
    await unlink(this.path(sha256)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  /** Deletes every blob not in `keep`, and temporary files left by a crash. */
  async collectGarbage(keep: ReadonlySet<string>): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.dir)) {
      if (SHA256_HEX.test(name) && keep.has(name)) continue;
      await unlink(join(this.dir, name)).catch(() => undefined);
      removed++;
    }
    return removed;
  }
}
