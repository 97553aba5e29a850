import type { Logger } from '../logger';
import type { RevokedKey, Store } from '../store/store';

/** The reason a revoked key's jobs end with, as requesters and contributors see it. */
export const KEY_REVOKED_REASON = 'API key revoked';

export interface KeyRevocationDeps {
  store: Store;
  log: Logger;
  /** Cancels one job for `reason` the way DELETE /jobs/:id does (leases revoked, inputs released); false if it had already ended. */
  cancelJob(jobId: string, reason: string): Promise<boolean>;
  /** How often the store is asked for new revocations. */
  pollMs: number;
  /** How often every revoked key is read again and their active jobs swept, whatever the polls saw. */
  sweepMs: number;
}

/**
 * Keys revoked at a clock this far behind the newest revocation seen are still noticed:
 * revocations are stamped by the process that makes them (the operator's CLI, another node).
 */
const CLOCK_SKEW_MS = 5 * 60_000;

/**
 * For this long after a revocation is seen, every poll sweeps: an upload that began before the
 * revocation commits its job after it, and that job is cancelled within a poll, not a sweep period.
 */
const RECENT_MS = 2 * 60_000;

/**
 * Notices keys revoked by another process (the `keys` CLI, another coordinator) by polling
 * the store, so that every coordinator acts on its own: it closes the key's event streams
 * (subscribers of `watch`) and cancels the key's queued and running jobs.
 *
 * A poll asks only for keys revoked since the newest revocation it has seen (less a
 * clock-skew margin), which is usually nothing. Every `sweepMs` it reads every revoked key
 * and sweeps their active jobs with one query, as it does on every poll for a while after it
 * sees a new revocation: that also catches a job whose upload was committed just after its key
 * was revoked, a revocation stamped by a clock far behind, and those made while this node was down.
 */
export class KeyRevocations {
  private readonly revoked = new Map<string, RevokedKey>();
  private readonly watchers = new Map<string, Set<(key: RevokedKey) => void>>();
  private newest = 0;
  private lastSweep = 0;
  private lastFresh = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly deps: KeyRevocationDeps) {}

  /** Loads the keys revoked so far and cancels what they left running, then polls. */
  async start(): Promise<void> {
    await this.poll();
    this.timer = setInterval(() => {
      // A poll that outlasts the interval is not stacked on by the next one.
      if (this.running) return;
      this.running = this.poll()
        .catch((err: unknown) => this.deps.log.error({ err }, 'polling key revocations failed'))
        .finally(() => (this.running = undefined));
    }, this.deps.pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  isRevoked(keyId: string): boolean {
    return this.revoked.has(keyId);
  }

  /** Calls `onRevoked` once when the key is revoked (at once if it already is); returns the unsubscribe. */
  watch(keyId: string, onRevoked: (key: RevokedKey) => void): () => void {
    const known = this.revoked.get(keyId);
    if (known) {
      onRevoked(known);
      return () => undefined;
    }
    let set = this.watchers.get(keyId);
    if (!set) this.watchers.set(keyId, (set = new Set()));
    set.add(onRevoked);
    return () => {
      set.delete(onRevoked);
      if (set.size === 0 && this.watchers.get(keyId) === set) this.watchers.delete(keyId);
    };
  }

  private async poll(): Promise<void> {
    const { store, log } = this.deps;
    const now = Date.now();
    const full = now - this.lastSweep >= this.deps.sweepMs;
    const since = full || this.newest === 0 ? 0 : this.newest - CLOCK_SKEW_MS;
    let fresh = 0;
    for (const key of await store.apiKeysRevokedSince(since)) {
      this.newest = Math.max(this.newest, key.revokedAt);
      if (this.revoked.has(key.id)) continue;
      this.revoked.set(key.id, key);
      fresh++;
      const listeners = this.watchers.get(key.id);
      this.watchers.delete(key.id);
      log.info({ key: key.name, streams: listeners?.size ?? 0 }, 'API key revoked: closing its event streams and cancelling its jobs');
      for (const listener of listeners ?? []) listener(key);
    }
    // The first poll reads every revocation ever made: those are not news.
    if (fresh > 0 && this.lastSweep > 0) this.lastFresh = now;
    if (full) this.lastSweep = now;
    if (full || now - this.lastFresh < RECENT_MS) await this.sweep();
  }

  private async sweep(): Promise<void> {
    const { store, log } = this.deps;
    for (const { jobId, owner } of await store.activeJobsOfRevokedKeys()) {
      try {
        if (await this.deps.cancelJob(jobId, KEY_REVOKED_REASON)) log.info({ jobId, key: this.revoked.get(owner)?.name ?? owner }, 'cancelled a job of a revoked API key');
      } catch (err) {
        log.error({ err, jobId }, 'cancelling a job of a revoked API key failed');
      }
    }
  }
}
