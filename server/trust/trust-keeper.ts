import type { Logger } from '../logger';
import type { BlobStore } from '../storage/blob-store';
import type { Store } from '../store/store';
import { applyTrustEvent, FRESH, type TrustEvent, type TrustRecord } from './reputation';

export interface TrustKeeperDeps {
  store: Store;
  blobs: BlobStore;
  log: Logger;
  /** Disconnects every session of a banned contributor. */
  onBanned(contributorId: string): void;
  /** Shards were returned to the queue. */
  onRequeued(shards: number): void;
}

/**
 * Records what contributors do into their reputation and carries out bans:
 * a banned contributor is disconnected, its leases go back to the queue, and
 * its results still waiting for a replica are discarded.
 */
export class TrustKeeper {
  private readonly cache = new Map<string, TrustRecord>();

  constructor(private readonly deps: TrustKeeperDeps) {}

  async current(contributorId: string): Promise<TrustRecord> {
    const hit = this.cache.get(contributorId);
    if (hit) return hit;
    const rec = (await this.deps.store.getContributor(contributorId))?.trust ?? FRESH;
    this.cache.set(contributorId, rec);
    return rec;
  }

  async record(contributorId: string, event: TrustEvent, detail: string): Promise<TrustRecord> {
    const before = await this.current(contributorId);
    if (before.status === 'banned') return before;
    const next = await this.deps.store.updateTrust(contributorId, (rec) => applyTrustEvent(rec, event), `${event}: ${detail}`);
    this.cache.set(contributorId, next);
    if (next.strikes > before.strikes) this.deps.log.warn({ contributorId, event, detail, strikes: next.strikes, status: next.status }, 'strike');
    if (next.status === 'banned') await this.ban(contributorId, `${event}: ${detail}`);
    return next;
  }

  private async ban(contributorId: string, reason: string): Promise<void> {
    const { store, blobs, log } = this.deps;
    const released = await store.releaseContributor(contributorId, Date.now());
    for (const sha of await store.dropPendingResults({ contributorId })) await blobs.delete(sha);
    log.warn({ contributorId, reason, leasesReturned: released }, 'contributor banned');
    this.deps.onBanned(contributorId);
    if (released > 0) this.deps.onRequeued(released);
  }
}
