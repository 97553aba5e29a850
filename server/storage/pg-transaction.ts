import type pg from 'pg';

/** Runs `fn` in one transaction on a pooled connection: committed when it resolves, rolled back when it throws. */
export async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {
      broken = true; // a connection that cannot roll back is discarded, not reused
    });
    throw err;
  } finally {
    client.release(broken);
  }
}

/** Chunk size for bytes kept in bytea rows: small enough to stream, large enough that a panel is a few rows. */
export const BYTEA_CHUNK = 1024 * 1024;
