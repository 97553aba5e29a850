import type { Logger } from '../logger';
import type { BlobStore } from '../storage/blob-store';
import type { Store } from '../store/store';
import { LruMap } from './lru-map';
import { applyTrustEvent, canaryRate, DEFAULT_TRUST_THRESHOLDS, FRESH, trustLevel, type TrustEvent, type TrustLevel, type TrustRecord, type TrustThresholds, type VerifiedWork } from './reputation';

export interface TrustKeeperDeps {
  store: Store;
  blobs: BlobStore;
  log: Logger;
  /** What it takes to become trusted (config: TESSERA_TRUSTED_AFTER_*). */
  thresholds?: TrustThresholds;
  /** Contributors whose records are kept in memory; others are read from the store when needed. */
  cacheSize?: number;
  /** Disconnects every session of a banned contributor. */
  onBanned(contributorId: string): void;
  /** Shards were returned to the queue. */
  onRequeued(shards: number): void;
}

/**
 * How long a cached record is used before it is read again: with several coordinators on one store, a
 * strike or a level earned on another node shows here within this time.
 */
const CACHE_TTL_MS = 30_000;
const DEFAULT_CACHE_SIZE = 10_000;

/**
 * Records what contributors do into their reputation and carries out bans:
 * a banned contributor is disconnected, its leases go back to the queue, its
 * results still waiting for a replica are discarded, shards of running jobs
 * that only a sampled check vouched for are queued again, and the networks it
 * came from are recorded, so that identities minted there next start on probation.
 */
export class TrustKeeper {
  private readonly cache: LruMap<string, { rec: TrustRecord; at: number }>;
  /** The network each contributor last said hello from (this node's sessions only). */
  private readonly networks: LruMap<string, string>;
  readonly thresholds: TrustThresholds;

  constructor(private readonly deps: TrustKeeperDeps) {
    this.thresholds = deps.thresholds ?? DEFAULT_TRUST_THRESHOLDS;
    this.cache = new LruMap(deps.cacheSize ?? DEFAULT_CACHE_SIZE);
    this.networks = new LruMap(deps.cacheSize ?? DEFAULT_CACHE_SIZE);
  }

  async current(contributorId: string): Promise<TrustRecord> {
    const hit = this.cache.get(contributorId);
    if (hit && Date.now() - hit.at < CACHE_TTL_MS) return hit.rec;
    const rec = (await this.deps.store.getContributor(contributorId))?.trust ?? FRESH;
    this.cache.set(contributorId, { rec, at: Date.now() });
    return rec;
  }

  /** Contributors whose record is held in memory now (at most cacheSize). */
  get cachedContributors(): number {
    return this.cache.size;
  }

  level(rec: TrustRecord, now = Date.now()): TrustLevel {
    return trustLevel(rec, now, this.thresholds);
  }

  /** Chance that this contributor's next lease request is answered with a canary. */
  canaryRate(rec: TrustRecord, now = Date.now()): number {
    return canaryRate(rec, now, this.thresholds);
  }

  /** Remembers where a contributor connects from, so that a ban also marks that network. */
  noteNetwork(contributorId: string, network: string | undefined): void {
    if (network) this.networks.set(contributorId, network);
  }

  /** `work`: for 'verified', the result's FLOPs, job and time (they move the distinct-job count and the first verified time). */
  async record(contributorId: string, event: TrustEvent, detail: string, work?: VerifiedWork): Promise<TrustRecord> {
    const before = await this.current(contributorId);
    if (before.status === 'banned') return before;
    const next = await this.deps.store.updateTrust(contributorId, (rec) => applyTrustEvent(rec, event, work), `${event}: ${detail}`);
    this.cache.set(contributorId, { rec: next, at: Date.now() });
    if (next.strikes > before.strikes) this.deps.log.warn({ contributorId, event, detail, strikes: next.strikes, status: next.status }, 'strike');
    if (next.status === 'banned') await this.ban(contributorId, `${event}: ${detail}`);
    else if (event === 'rejected' || event === 'canary-failed') {
      // Caught once is enough to doubt what a sampled check let through: those shards are computed again.
      const recompute = await this.deps.store.requeueUnconfirmed(contributorId, Date.now());
      if (recompute > 0) {
        this.deps.log.warn({ contributorId, shardsToRecompute: recompute }, 'caught: its unconfirmed shards are queued again');
        this.deps.onRequeued(recompute);
      }
    }
    return next;
  }

  private async ban(contributorId: string, reason: string): Promise<void> {
    const { store, blobs, log } = this.deps;
    const now = Date.now();
    const networks = new Set([(await store.getContributor(contributorId))?.address, this.networks.get(contributorId)].filter((n): n is string => !!n));
    for (const prefix of networks) await store.recordAddressBan(prefix, contributorId, now);
    const released = await store.releaseContributor(contributorId, now);
    for (const sha of await store.dropPendingResults({ contributorId })) await blobs.delete(sha);
    // Its shards that only a sampled check vouched for are computed again by someone else before their jobs assemble.
    const recompute = await store.requeueUnconfirmed(contributorId, now);
    log.warn({ contributorId, reason, leasesReturned: released, shardsToRecompute: recompute, networks: [...networks] }, 'contributor banned');
    this.deps.onBanned(contributorId);
    if (released + recompute > 0) this.deps.onRequeued(released + recompute);
  }
}
