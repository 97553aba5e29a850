import pg from 'pg';
import type { Logger } from '../logger';

const CHANNEL = 'tessera_work_available';
const RECONNECT_MS = 1_000;

/**
 * Tells the other coordinators that shards were queued, so each wakes its own
 * idle contributors at once instead of at their next poll. PostgreSQL's
 * LISTEN/NOTIFY carries it: networked mode always has the database, so waking
 * works with or without Redis, and a notification is sent only when the
 * transaction that queued the work has committed elsewhere on the same server.
 */
export class WorkSignal {
  private listener: pg.Client | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly databaseUrl: string,
    private readonly pool: pg.Pool,
    private readonly nodeId: string,
    private readonly onPeerWork: (shards: number) => void,
    private readonly log: Logger,
  ) {}

  static async start(databaseUrl: string, pool: pg.Pool, nodeId: string, onPeerWork: (shards: number) => void, log: Logger): Promise<WorkSignal> {
    const signal = new WorkSignal(databaseUrl, pool, nodeId, onPeerWork, log);
    await signal.listen();
    return signal;
  }

  /** Announces `shards` newly queued shards to the other nodes (this node wakes its own sessions directly). */
  publish(shards: number): void {
    const payload = JSON.stringify({ node: this.nodeId, shards });
    this.pool.query('SELECT pg_notify($1, $2)', [CHANNEL, payload]).catch((err: unknown) => this.log.warn({ err }, 'work notification failed'));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.listener?.end().catch(() => undefined);
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.databaseUrl });
    client.on('notification', (msg) => this.received(msg.payload));
    // A lost listener only delays waking (idle contributors poll every few seconds); reconnect quietly.
    let lost = false;
    const onLost = (err?: Error) => {
      if (lost || this.closed) return;
      lost = true;
      this.log.warn({ err }, 'work notification listener lost; reconnecting');
      void client.end().catch(() => undefined);
      this.retry();
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (err) {
      lost = true; // the caller retries (or, at start-up, fails); the handlers above must not as well
      await client.end().catch(() => undefined);
      throw err;
    }
    this.listener = client;
  }

  /** One reconnection at a time, however many ways the old connection reported its end. */
  private retry(): void {
    this.listener = undefined;
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closed) this.listen().catch(() => this.retry());
    }, RECONNECT_MS);
    this.retryTimer.unref();
  }

  private received(payload: string | undefined): void {
    try {
      const msg = JSON.parse(payload ?? '') as { node?: unknown; shards?: unknown };
      if (msg.node !== this.nodeId && typeof msg.shards === 'number' && msg.shards > 0) this.onPeerWork(Math.min(msg.shards, 10_000));
    } catch {
      // not ours: another program on the same channel
    }
  }
}
