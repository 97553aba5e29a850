import type pg from 'pg';

/** Deadlock and serialization failure: the transaction lost a race and may simply run again. */
export const RETRYABLE_SQLSTATES: readonly string[] = ['40001', '40P01'];

export function sqlState(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/**
 * Runs `fn` in one transaction on a pooled connection: committed when it
 * resolves, rolled back when it throws. With `retry`, a transaction that
 * failed with one of `retry.on`'s SQLSTATEs runs again, whole, up to
 * `retry.attempts` times (so `fn` must have no effects outside the database).
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>, retry?: { on: readonly string[]; attempts: number }): Promise<T> {
  for (let attempt = 1; ; attempt++) {
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
      const code = sqlState(err);
      if (!retry || attempt >= retry.attempts || code === undefined || !retry.on.includes(code)) throw err;
    } finally {
      client.release(broken);
    }
    await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
  }
}

/** Chunk size for bytes kept in bytea rows: small enough to stream, large enough that a panel is a few rows. */
export const BYTEA_CHUNK = 1024 * 1024;
