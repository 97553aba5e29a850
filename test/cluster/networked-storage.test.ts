import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../server/sha256';
import { LocalBlobStore } from '../../server/storage/blob-store';
import { BYTEA_CHUNK } from '../../server/storage/pg-transaction';
import { PostgresBlobStore } from '../../server/storage/postgres-blob-store';
import { PostgresResultFiles } from '../../server/storage/postgres-result-files';
import { LocalResultFiles } from '../../server/storage/result-files';
import { migratePostgres } from '../../server/store/postgres-migrations';
import { decodeNpy } from '../../shared/npy';
import { startPostgres, type PostgresCluster } from '../support/postgres';

/**
 * The networked blob and result stores as two nodes see them: each with its
 * own local directory, one database between them.
 */

let postgres: PostgresCluster;
let pool: pg.Pool;
const dirs: string[] = [];

beforeAll(async () => {
  postgres = await startPostgres();
  pool = new pg.Pool({ connectionString: await postgres.createDatabase(), max: 8 });
  await migratePostgres(pool);
}, 120_000);
afterAll(async () => {
  await pool?.end();
  await postgres?.stop();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function dir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tessera-node-'));
  dirs.push(d);
  return d;
}

async function blobNode(now?: () => number): Promise<PostgresBlobStore> {
  const store = new PostgresBlobStore(pool, new LocalBlobStore(join(await dir(), 'blob-cache')), now);
  await store.init();
  return store;
}

async function resultNode(): Promise<PostgresResultFiles> {
  const files = new PostgresResultFiles(pool, new LocalResultFiles(join(await dir(), 'results')));
  await files.init();
  return files;
}

describe('networked storage', () => {
  it('stores a blob once in chunks, and any node reads and serves it until it is deleted', async () => {
    const [a, b] = [await blobNode(), await blobNode()];
    const bytes = new Uint8Array(BYTEA_CHUNK * 2 + 12);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
    // Both nodes store the same bytes at once: one copy, in three chunks.
    const [ra, rb] = await Promise.all([a.put(bytes), b.put(bytes)]);
    expect(ra).toEqual({ sha256: sha256Hex(bytes), bytes: bytes.length });
    expect(rb).toEqual(ra);
    const chunks = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM blob_chunks WHERE sha256 = $1`, [ra.sha256]);
    expect(chunks.rows[0]!.n).toBe(3);

    const c = await blobNode();
    expect(await c.has(ra.sha256)).toBe(true);
    // Compared by hash: element-wise equality on megabytes is slow in the test runner.
    const read = await c.readFloat32(ra.sha256);
    expect(sha256Hex(new Uint8Array(read.buffer, read.byteOffset, read.byteLength))).toBe(ra.sha256);
    const file = await (await blobNode()).localFile(ra.sha256);
    expect(sha256Hex(await readFile(file!))).toBe(ra.sha256);

    await a.delete(ra.sha256);
    expect(await b.has(ra.sha256)).toBe(false);
    // A node that cached it does not serve it any more either.
    expect(await c.localFile(ra.sha256)).toBeUndefined();
    expect(await b.has('not-a-hash')).toBe(false);
  });

  it('collects only unreferenced blobs untouched for an hour', async () => {
    let now = 1_700_000_000_000;
    const node = await blobNode(() => now);
    const old = await node.put(new Uint8Array([1, 2, 3, 4]));
    const kept = await node.put(new Uint8Array([5, 6, 7, 8]));
    now += 2 * 3_600_000;
    const fresh = await node.put(new Uint8Array([9, 10, 11, 12]));
    expect(await node.collectGarbage(new Set([kept.sha256]))).toBe(1);
    expect(await node.has(old.sha256)).toBe(false);
    expect(await node.has(kept.sha256)).toBe(true);
    expect(await node.has(fresh.sha256)).toBe(true);
  });

  it('assembles tiles written by any node into one result that every node serves, then removes it everywhere', async () => {
    const [a, b, c] = [await resultNode(), await resultNode(), await resultNode()];
    const [m, n] = [4, 6];
    await a.create('job-1', m, n);
    const tile = (row0: number, col0: number, rows: number, cols: number) => {
      const data = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) for (let col = 0; col < cols; col++) data[r * cols + col] = (row0 + r) * 100 + col0 + col;
      return { row0, col0, rows, cols, data };
    };
    await a.writeTile('job-1', m, n, tile(0, 0, 2, 3));
    await b.writeTile('job-1', m, n, { ...tile(0, 3, 2, 3), data: new Float32Array(6).fill(-1) });
    await b.writeTile('job-1', m, n, tile(0, 3, 2, 3)); // a refused result's tile, overwritten by the accepted one
    await c.writeTile('job-1', m, n, tile(2, 0, 2, 6));
    expect(await b.localFile('job-1')).toBeUndefined();

    await b.finalize('job-1');
    await b.finalize('job-1'); // again after a crash: nothing changes
    const tiles = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM result_tiles WHERE job_id = 'job-1'`);
    expect(tiles.rows[0]!.n).toBe(0);
    const want = Float32Array.from({ length: m * n }, (_, i) => Math.floor(i / n) * 100 + (i % n));
    for (const node of [a, b, c]) {
      const file = await node.localFile('job-1');
      const npy = decodeNpy(new Uint8Array(await readFile(file!)));
      expect(npy.shape).toEqual([m, n]);
      expect(npy.data).toEqual(want);
    }

    await a.remove('job-1');
    for (const node of [a, b, c]) expect(await node.localFile('job-1')).toBeUndefined();
  });

  it('stores the packed form of a result when a packer is given', async () => {
    const node = await resultNode();
    await node.create('job-2', 1, 2);
    await node.writeTile('job-2', 1, 2, { row0: 0, col0: 0, rows: 1, cols: 2, data: new Float32Array([3, 4]) });
    await node.finalize('job-2', async (_assembled, out) => writeFile(out, 'packed'));
    const other = await resultNode();
    expect(await readFile((await other.localFile('job-2'))!, 'utf8')).toBe('packed');
  });
});
