/**
 * Sessions that asked for work and got none. New work wakes only as many of
 * them as there are shards to take, oldest first, instead of broadcasting to
 * every connected contributor: with thousands connected, a broadcast turns
 * each requeued shard into thousands of lease requests.
 */
export class IdleSessions {
  private readonly idle = new Set<string>();

  markIdle(sessionId: string): void {
    this.idle.delete(sessionId); // re-insert: Set order is arrival order
    this.idle.add(sessionId);
  }

  markBusy(sessionId: string): void {
    this.idle.delete(sessionId);
  }

  /** Removes and returns up to `count` of the longest-idle sessions. */
  take(count: number): string[] {
    const out: string[] = [];
    for (const id of this.idle) {
      if (out.length >= count) break;
      out.push(id);
    }
    for (const id of out) this.idle.delete(id);
    return out;
  }
}
