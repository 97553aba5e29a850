/**
 * Sessions that asked for work and got none. New work wakes only as many of
 * them as there are shards to take, oldest first, instead of broadcasting to
 * every connected contributor: with thousands connected, a broadcast turns
 * each requeued shard into thousands of lease requests.
 *
 * A session is woken at most once per MIN_WAKE_INTERVAL_MS. Work often comes
 * back that a given session may not take (a replicated shard waits for a
 * contributor of another identity and network), so a session woken for it
 * asks, gets nothing and is idle again at once; without the pause, a stream of
 * such shards would have an honest agent's lease requests run past the
 * channel's rate limit (50 messages/s) and earn it a flood strike.
 */
export const MIN_WAKE_INTERVAL_MS = 250;

export class IdleSessions {
  private readonly idle = new Set<string>();
  private readonly lastWoken = new Map<string, number>();

  markIdle(sessionId: string): void {
    this.idle.delete(sessionId); // re-insert: Set order is arrival order
    this.idle.add(sessionId);
  }

  markBusy(sessionId: string): void {
    this.idle.delete(sessionId);
  }

  /** The session is gone. */
  forget(sessionId: string): void {
    this.idle.delete(sessionId);
    this.lastWoken.delete(sessionId);
  }

  /** Whether some idle session was left out of a wake-up because it was woken too recently. */
  anyThrottled(now = Date.now()): boolean {
    for (const id of this.idle) if (now - (this.lastWoken.get(id) ?? -Infinity) < MIN_WAKE_INTERVAL_MS) return true;
    return false;
  }

  /** Removes and returns up to `count` of the longest-idle sessions not woken in the last MIN_WAKE_INTERVAL_MS. */
  take(count: number, now = Date.now()): string[] {
    const out: string[] = [];
    for (const id of this.idle) {
      if (out.length >= count) break;
      if (now - (this.lastWoken.get(id) ?? -Infinity) < MIN_WAKE_INTERVAL_MS) continue; // it still polls at retryAfterMs
      out.push(id);
    }
    for (const id of out) {
      this.idle.delete(id);
      this.lastWoken.set(id, now);
    }
    return out;
  }
}
