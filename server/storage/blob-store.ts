import { mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../sha256';
import { writeFileAtomic } from './atomic-file';

export const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Content-addressed bytes (input panels, model packages, parked replica
 * results). The name is the hash of the content, so a blob is immutable,
 * stored once however many jobs share it, and safe for any cache or CDN to
 * keep forever. Embedded mode keeps them in a local directory; networked mode
 * in PostgreSQL, so that any coordinator serves any blob.
 */
export interface BlobStore {
  init(): Promise<void>;
  put(bytes: Uint8Array): Promise<{ sha256: string; bytes: number }>;
  has(sha256: string): Promise<boolean>;
  /** Reads a blob as float32. */
  readFloat32(sha256: string): Promise<Float32Array>;
  /** A file on this machine holding the blob, to serve with sendFile (ETag, Range); undefined when there is no such blob. */
  localFile(sha256: string): Promise<string | undefined>;
  delete(sha256: string): Promise<void>;
  /** Deletes every blob not in `keep`, and temporary files left by a crash; returns how many. */
  collectGarbage(keep: ReadonlySet<string>): Promise<number>;
}

/** Blobs as files under `<dataDir>/blobs/<sha256>`. */
export class LocalBlobStore implements BlobStore {
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
    await this.write(sha256, bytes);
    return { sha256, bytes: bytes.byteLength };
  }

  /** Stores bytes already known to hash to `sha256` (a copy fetched from elsewhere). */
  async write(sha256: string, bytes: Uint8Array): Promise<void> {
    const path = this.path(sha256);
    const existing = await stat(path).catch(() => undefined);
    if (existing?.size !== bytes.byteLength) await writeFileAtomic(path, [bytes]);
  }

  async has(sha256: string): Promise<boolean> {
    return SHA256_HEX.test(sha256) && (await stat(this.path(sha256)).catch(() => undefined)) !== undefined;
  }

  /** Reads a blob as float32 (copied when the buffer is not 4-byte aligned). */
  async readFloat32(sha256: string): Promise<Float32Array> {
    return toFloat32(await readFile(this.path(sha256)));
  }

  async localFile(sha256: string): Promise<string | undefined> {
    return (await this.has(sha256)) ? this.path(sha256) : undefined;
  }

  async delete(sha256: string): Promise<void> {
    await unlink(this.path(sha256)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

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

/** Views bytes as float32, copying only when they are not 4-byte aligned. */
export function toFloat32(buf: Uint8Array): Float32Array {
  if (buf.byteOffset % 4 === 0) return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  return new Float32Array(new Uint8Array(buf).buffer);
}
