import { randomUUID } from 'node:crypto';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { BYTEA_CHUNK, inTransaction } from './pg-transaction';
import type { LocalResultFiles, ResultFiles, ResultPacker, ResultTile } from './result-files';

/**
 * Results for several coordinators, in PostgreSQL: each verified tile is a row
 * (`result_tiles`), committed before the tile is marked verified, whichever
 * node verified it. The one node that claims the job's assembly rebuilds the
 * .npy from the tiles in its local directory, packs it as embedded mode does,
 * and stores the served file in 1 MiB chunks (`result_files`, `result_chunks`);
 * the tiles are then dropped. Any node serves the result from a local copy,
 * fetched from the database on first request.
 */
export class PostgresResultFiles implements ResultFiles {
  constructor(
    private readonly pool: pg.Pool,
    private readonly local: LocalResultFiles,
  ) {}

  init(): Promise<void> {
    return this.local.init();
  }

  async create(jobId: string, m: number, n: number): Promise<void> {
    await this.pool.query(`INSERT INTO result_shapes (job_id, m, n) VALUES ($1, $2, $3) ON CONFLICT (job_id) DO NOTHING`, [jobId, m, n]);
  }

  async writeTile(jobId: string, _m: number, _n: number, tile: ResultTile): Promise<void> {
    const data = Buffer.from(tile.data.buffer, tile.data.byteOffset, tile.data.byteLength);
    // A tile written by a contributor whose result was then refused is overwritten by the accepted one.
    await this.pool.query(
      `INSERT INTO result_tiles (job_id, row0, col0, rows, cols, data) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (job_id, row0, col0) DO UPDATE SET rows = EXCLUDED.rows, cols = EXCLUDED.cols, data = EXCLUDED.data`,
      [jobId, tile.row0, tile.col0, tile.rows, tile.cols, data],
    );
  }

  async finalize(jobId: string, pack?: ResultPacker): Promise<void> {
    if (await this.stored(jobId)) return;
    const shape = (await this.pool.query<{ m: number; n: number }>(`SELECT m, n FROM result_shapes WHERE job_id = $1`, [jobId])).rows[0];
    if (!shape) throw new Error(`no result shape for job ${jobId}`);
    const { m, n } = shape;
    // A local final file left by an earlier attempt on this node (killed before its upload) is reused as it is.
    if (!(await this.local.localFile(jobId))) {
      await this.local.create(jobId, m, n);
      const tiles = await this.pool.query<{ row0: number; col0: number; rows: number; cols: number }>(
        `SELECT row0, col0, rows, cols FROM result_tiles WHERE job_id = $1 ORDER BY row0, col0`,
        [jobId],
      );
      // One tile in memory at a time: a result may be far larger than any tile.
      for (const t of tiles.rows) {
        const { rows } = await this.pool.query<{ data: Buffer }>(`SELECT data FROM result_tiles WHERE job_id = $1 AND row0 = $2 AND col0 = $3`, [jobId, t.row0, t.col0]);
        const bytes = rows[0]!.data;
        await this.local.writeTile(jobId, m, n, { ...t, data: new Float32Array(new Uint8Array(bytes).buffer) });
      }
      await this.local.finalize(jobId, pack);
    }
    await this.upload(jobId, this.local.finalPath(jobId));
    await this.pool.query(`DELETE FROM result_tiles WHERE job_id = $1`, [jobId]);
  }

  async localFile(jobId: string): Promise<string | undefined> {
    const bytes = await this.stored(jobId);
    if (bytes === undefined) {
      // Deleted (by its owner, or expired) through another node: this node's copy goes too.
      await this.local.remove(jobId);
      return undefined;
    }
    const path = this.local.finalPath(jobId);
    if ((await stat(path).catch(() => undefined))?.size === bytes) return path;
    await this.download(jobId, bytes, path);
    return path;
  }

  async remove(jobId: string): Promise<void> {
    await inTransaction(this.pool, async (c) => {
      await c.query(`DELETE FROM result_files WHERE job_id = $1`, [jobId]);
      await c.query(`DELETE FROM result_tiles WHERE job_id = $1`, [jobId]);
      await c.query(`DELETE FROM result_shapes WHERE job_id = $1`, [jobId]);
    });
    await this.local.remove(jobId);
  }

  /** The stored result's size, or undefined when it is not (or no longer) stored. */
  private async stored(jobId: string): Promise<number | undefined> {
    const { rows } = await this.pool.query<{ bytes: string }>(`SELECT bytes FROM result_files WHERE job_id = $1`, [jobId]);
    return rows[0] ? Number(rows[0].bytes) : undefined;
  }

  private async upload(jobId: string, path: string): Promise<void> {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      await inTransaction(this.pool, async (c) => {
        const inserted = await c.query(`INSERT INTO result_files (job_id, bytes) VALUES ($1, $2) ON CONFLICT (job_id) DO NOTHING`, [jobId, size]);
        if (inserted.rowCount === 0) return;
        const buf = Buffer.alloc(BYTEA_CHUNK);
        for (let idx = 0; idx * BYTEA_CHUNK < size; idx++) {
          const { bytesRead } = await handle.read(buf, 0, BYTEA_CHUNK, idx * BYTEA_CHUNK);
          await c.query(`INSERT INTO result_chunks (job_id, idx, data) VALUES ($1, $2, $3)`, [jobId, idx, buf.subarray(0, bytesRead)]);
        }
      });
    } finally {
      await handle.close();
    }
  }

  /** Copies the stored result to `path` chunk by chunk, through a temporary name: readers never see half a file. */
  private async download(jobId: string, size: number, path: string): Promise<void> {
    const tmp = join(this.local.dir, `.download-${randomUUID()}`);
    const handle = await open(tmp, 'w');
    try {
      for (let idx = 0; idx * BYTEA_CHUNK < size; idx++) {
        const { rows } = await this.pool.query<{ data: Buffer }>(`SELECT data FROM result_chunks WHERE job_id = $1 AND idx = $2`, [jobId, idx]);
        if (!rows[0]) throw new Error(`result of job ${jobId} is missing chunk ${idx}`);
        await handle.write(rows[0].data);
      }
      await handle.sync();
    } catch (err) {
      await handle.close();
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await handle.close();
    await rename(tmp, path);
  }
}
