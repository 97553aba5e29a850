import { writeSync } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeNpyHeader } from '../../shared/npy';
import { syncDir } from './atomic-file';

/** A tile of a result: rows×cols values whose top-left element is (row0, col0) of the m×n result. */
export interface ResultTile {
  row0: number;
  col0: number;
  rows: number;
  cols: number;
  data: Float32Array;
}

/** Writes the served form of a result (an inference job's .npy or .npz) from the assembled m×n .npy. */
export type ResultPacker = (assembledPath: string, outPath: string) => Promise<void>;

/**
 * Where jobs' results are assembled and kept. A tile is written durably before
 * it is marked verified in the store; finalize() turns a job's tiles into the
 * served file once every tile is in, and is safe to call again after a crash.
 * Embedded mode assembles in a local file; networked mode keeps tiles and
 * results in PostgreSQL, so that any coordinator serves any result.
 */
export interface ResultFiles {
  init(): Promise<void>;
  /** Called once, when the job is accepted. */
  create(jobId: string, m: number, n: number): Promise<void>;
  writeTile(jobId: string, m: number, n: number, tile: ResultTile): Promise<void>;
  finalize(jobId: string, pack?: ResultPacker): Promise<void>;
  /** A file on this machine holding the finished result, to serve with sendFile; undefined when there is none. */
  localFile(jobId: string): Promise<string | undefined>;
  remove(jobId: string): Promise<void>;
}

/**
 * Results assembled in place: `<id>.npy.partial` is created at full size with
 * its header, each verified tile's rows are written at their offsets and
 * fsynced before the tile is marked verified in the store, and the file is
 * renamed to `<id>.npy` once every tile is in. Only the final name is ever
 * served, so a half-assembled result is never read as data.
 */
export class LocalResultFiles implements ResultFiles {
  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  finalPath(jobId: string): string {
    return join(this.dir, `${jobId}.npy`);
  }

  async localFile(jobId: string): Promise<string | undefined> {
    const path = this.finalPath(jobId);
    return (await stat(path).catch(() => undefined)) ? path : undefined;
  }

  private partialPath(jobId: string): string {
    return join(this.dir, `${jobId}.npy.partial`);
  }

  /** Creates the full-size partial file; called once, when the job is accepted. */
  async create(jobId: string, m: number, n: number): Promise<void> {
    const header = encodeNpyHeader([m, n]);
    const handle = await open(this.partialPath(jobId), 'w');
    try {
      await handle.write(header, 0, header.length, 0);
      await handle.truncate(header.length + m * n * 4); // sparse: untouched tiles cost no disk
      await handle.sync();
    } finally {
      await handle.close();
    }
    await syncDir(this.dir);
  }

  async writeTile(jobId: string, m: number, n: number, tile: ResultTile): Promise<void> {
    const headerBytes = encodeNpyHeader([m, n]).length;
    const handle = await open(this.partialPath(jobId), 'r+');
    try {
      const bytes = new Uint8Array(tile.data.buffer, tile.data.byteOffset, tile.data.byteLength);
      const rowBytes = tile.cols * 4;
      // One pwrite per row lands in the page cache in microseconds; doing them synchronously
      // avoids a thread-pool round trip per row (the cost that showed up under load).
      for (let r = 0; r < tile.rows; r++) {
        const offset = headerBytes + ((tile.row0 + r) * n + tile.col0) * 4;
        writeSync(handle.fd, bytes, r * rowBytes, rowBytes, offset);
      }
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  /**
   * Puts the assembled file in place; safe to call again after a crash. `pack`
   * writes the served form from the assembled one (an inference job's .npy or
   * .npz), which then replaces it atomically.
   */
  async finalize(jobId: string, pack?: ResultPacker): Promise<void> {
    const final = this.finalPath(jobId);
    if (await stat(final).catch(() => undefined)) return;
    if (pack) {
      const packed = join(this.dir, `${jobId}.packing`);
      await pack(this.partialPath(jobId), packed);
      const handle = await open(packed, 'r');
      await handle.sync().finally(() => handle.close());
      await rename(packed, final);
      await unlink(this.partialPath(jobId)).catch(() => undefined);
    } else {
      await rename(this.partialPath(jobId), final);
    }
    await syncDir(this.dir);
  }

  async remove(jobId: string): Promise<void> {
    for (const p of [this.finalPath(jobId), this.partialPath(jobId), join(this.dir, `${jobId}.packing`)]) await unlink(p).catch(() => undefined);
  }
}
