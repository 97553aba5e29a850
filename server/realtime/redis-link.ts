import { createAdapter } from '@socket.io/redis-adapter';
import { RedisStore } from 'rate-limit-redis';
import { createClient } from 'redis';
import type { Logger } from '../logger';
import type { ContributorServer } from './contributor-channel';

const redisClient = (url: string) => createClient({ url });
type RedisClient = ReturnType<typeof redisClient>;

/**
 * The coordinators' shared Redis: Socket.IO's Redis adapter, so that a
 * broadcast to a room (a session's lease:revoked, a banned contributor's
 * disconnect) reaches sockets on every node, and the REST rate limits' counters.
 */
export class RedisLink {
  private constructor(
    private readonly pub: RedisClient,
    private readonly sub: RedisClient,
  ) {}

  static async connect(url: string, log: Logger): Promise<RedisLink> {
    const pub = redisClient(url);
    const sub = pub.duplicate();
    // The client reconnects by itself; without a listener an 'error' event would crash the process.
    for (const c of [pub, sub]) c.on('error', (err: unknown) => log.warn({ err }, 'redis connection error'));
    await Promise.all([pub.connect(), sub.connect()]);
    return new RedisLink(pub, sub);
  }

  attach(io: ContributorServer): void {
    io.adapter(createAdapter(this.pub, this.sub, { key: 'tessera' }));
  }

  /** A rate-limit store for one limiter: counters shared by every node. */
  rateLimitStore(prefix: string): RedisStore {
    return new RedisStore({ prefix: `tessera:rl:${prefix}:`, sendCommand: (...args: string[]) => this.pub.sendCommand(args) });
  }

  async close(): Promise<void> {
    await Promise.all([this.pub.close(), this.sub.close()].map((p) => p.catch(() => undefined)));
  }
}
