import type pg from 'pg';
import { sha256Hex } from '../sha256';
import { SHA256_HEX, toFloat32, type BlobStore, type LocalBlobStore } from './blob-store';
import { BYTEA_CHUNK, inTransaction } from './pg-transaction';

/**
 * A blob put by an upload on one node is referenced by its job only once the
 * upload is accepted; garbage collection on another node starting meanwhile
 * must not take it. Every put refreshes `touched_at`, and only blobs untouched
 * this long are collected.
 */
const GC_GRACE_MS = 60 * 60 * 1000;

/**
 * Blobs in PostgreSQL (`blobs`, `blob_chunks` of 1 MiB bytea), so any
 * coordinator serves any blob with no shared disk. Each node keeps the blobs
 * it wrote or served in a local directory: content addressing means a cached
 * copy can never be stale, only unused.
 */
export class PostgresBlobStore implements BlobStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly cache: LocalBlobStore,
    private readonly now: () => number = Date.now,
  ) {}

  init(): Promise<void> {
    return this.cache.init();
  }

  async put(bytes: Uint8Array): Promise<{ sha256: string; bytes: number }> {
    const sha256 = sha256Hex(bytes);
    await inTransaction(this.pool, async (c) => {
      // A concurrent insert of the same blob waits for this one to commit, then finds it there.
      const inserted = await c.query(`INSERT INTO blobs (sha256, bytes, touched_at) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING RETURNING sha256`, [
        sha256,
        bytes.byteLength,
        this.now(),
      ]);
      if (inserted.rowCount === 0) {
        await c.query(`UPDATE blobs SET touched_at = $2 WHERE sha256 = $1`, [sha256, this.now()]);
        return;
      }
      for (let idx = 0; idx * BYTEA_CHUNK < bytes.byteLength; idx++) {
        const start = idx * BYTEA_CHUNK;
        const chunk = Buffer.from(bytes.buffer, bytes.byteOffset + start, Math.min(BYTEA_CHUNK, bytes.byteLength - start));
        await c.query(`INSERT INTO blob_chunks (sha256, idx, data) VALUES ($1, $2, $3)`, [sha256, idx, chunk]);
      }
    });
    // The node that stored a panel usually serves it first.
    await this.cache.write(sha256, bytes);
    return { sha256, bytes: bytes.byteLength };
  }

  async has(sha256: string): Promise<boolean> {
    if (!SHA256_HEX.test(sha256)) return false;
    const { rowCount } = await this.pool.query(`SELECT 1 FROM blobs WHERE sha256 = $1`, [sha256]);
    return (rowCount ?? 0) > 0;
  }

  async readFloat32(sha256: string): Promise<Float32Array> {
    if (await this.cache.has(sha256)) return this.cache.readFloat32(sha256);
    const bytes = await this.fetch(sha256);
    if (!bytes) throw new Error(`no blob ${sha256}`);
    await this.cache.write(sha256, bytes);
    return toFloat32(bytes);
  }

  async localFile(sha256: string): Promise<string | undefined> {
    // The database decides whether the blob exists: one deleted elsewhere is not served from a cached copy.
    if (!(await this.has(sha256))) return undefined;
    if (!(await this.cache.has(sha256))) {
      const bytes = await this.fetch(sha256);
      if (!bytes) return undefined;
      await this.cache.write(sha256, bytes);
    }
    return this.cache.path(sha256);
  }

  async delete(sha256: string): Promise<void> {
    await this.pool.query(`DELETE FROM blobs WHERE sha256 = $1`, [sha256]);
    await this.cache.delete(sha256);
  }

  async collectGarbage(keep: ReadonlySet<string>): Promise<number> {
    const { rows } = await this.pool.query<{ sha256: string }>(`SELECT sha256 FROM blobs WHERE touched_at < $1`, [this.now() - GC_GRACE_MS]);
    const dead = rows.map((r) => r.sha256).filter((sha) => !keep.has(sha));
    if (dead.length > 0) await this.pool.query(`DELETE FROM blobs WHERE sha256 = ANY($1::text[]) AND touched_at < $2`, [dead, this.now() - GC_GRACE_MS]);
    await this.cache.collectGarbage(keep);
    return dead.length;
  }

  private async fetch(sha256: string): Promise<Uint8Array | undefined> {
    const head = await this.pool.query<{ bytes: string }>(`SELECT bytes FROM blobs WHERE sha256 = $1`, [sha256]);
    if (head.rows.length === 0) return undefined;
    const { rows } = await this.pool.query<{ data: Buffer }>(`SELECT data FROM blob_chunks WHERE sha256 = $1 ORDER BY idx`, [sha256]);
    const bytes = Buffer.concat(rows.map((r) => r.data));
    if (bytes.byteLength !== Number(head.rows[0]!.bytes)) throw new Error(`blob ${sha256} is incomplete in the database`);
    return bytes;
  }
}
