import type { BlobStore } from '../storage/blob-store';
import type { PendingResult, Store } from '../store/store';
import type { WorkerPool } from '../workers/pool';
import { checkMatmulResult } from './matmul-verifier';
import type { PanelCache } from './panel-cache';
import type { LiveLease, ResultVerifier, Verdict } from './verdict';

/** Beyond this many independent parked results without two agreeing, the shard is treated as failing. */
const MAX_PARKED = 4;

/** What replication needs to know about a kind of work. */
export interface ReplicaRules {
  /**
   * What one result can be judged on alone, before it is compared. Matmul: the
   * whole Freivalds check, so a tile two colluders agree on is still checked
   * against A·B. Inference: its NaN and ±Infinity against the reference.
   * Undefined: go on to compare.
   */
  screen(lease: LiveLease, tile: Float32Array): Promise<Verdict | undefined>;
  /** When two results count as the same answer. */
  agree(lease: LiveLease, x: Float32Array, y: Float32Array): Promise<boolean>;
  /**
   * Two results disagree: the coordinator settles it itself rather than wait
   * for a third contributor that may never come, by checking both where they
   * differ. Absent: wait for more replicas.
   */
  arbitrate?(lease: LiveLease, mine: Float32Array, theirs: Float32Array): Promise<Arbitration>;
}

export interface Arbitration {
  /** Each result matches the coordinator's own computation where they differ. */
  mineOk: boolean;
  theirsOk: boolean;
  /** Every place where they differ was checked (not just a sample of them). */
  allChecked: boolean;
}

/** Matrix products: every replica passes Freivalds' check on its own, and replicas agree within float32 rounding of a length-k dot product. */
export function matmulReplicaRules(panels: PanelCache, pool: WorkerPool): ReplicaRules {
  return {
    async screen(lease, tile) {
      const v = await checkMatmulResult(panels, pool, lease, tile);
      return v.kind === 'accept' ? undefined : v;
    },
    agree: (lease, x, y) => pool.run('matmulReplicas', { x, y, k: lease.job.k, cols: lease.cols }, 8 * x.length),
  };
}

/**
 * Two results are independent when they come from two identities and, where
 * both networks are known, from two networks: identities are cheap, and one
 * person's Sybils share a /24 or /64 far more often than strangers do.
 */
export function independent(p: Pick<PendingResult, 'contributorId' | 'network'>, lease: Pick<LiveLease, 'contributorId' | 'senderNetwork'>): boolean {
  if (p.contributorId === lease.contributorId) return false;
  return !(p.network && lease.senderNetwork && p.network === lease.senderNetwork);
}

/**
 * Replication is a floor the requester chose: every shard is assembled only
 * once two independent contributors' results agree (see `independent`);
 * reputation never waives the second opinion. Results that disagree with the
 * agreed one lose the vote. A result with nothing to agree with yet is parked
 * and the shard goes back to the queue, where the store leases it only to
 * contributors of other identities and networks.
 */
export class ReplicationVerifier implements ResultVerifier {
  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly rules: ReplicaRules,
  ) {}

  async verify(lease: LiveLease, tile: Float32Array): Promise<Verdict> {
    const screened = await this.rules.screen(lease, tile);
    if (screened) return screened;
    const parked = (await this.store.pendingResults(lease.shardId)).filter((p) => independent(p, lease));
    const agreed: string[] = [];
    const outvoted: string[] = [];
    /** Parked results the coordinator itself found wrong. */
    const wrong: string[] = [];
    /**
     * Confirmed without a matching replica: an independent result agrees with it everywhere but
     * where they differ, and there the coordinator's own computation sides with it.
     */
    let settled = false;
    for (const p of parked) {
      const other = await this.parkedTile(p);
      if (!other) continue;
      if (await this.rules.agree(lease, tile, other)) {
        agreed.push(p.contributorId);
        continue;
      }
      if (!this.rules.arbitrate) {
        outvoted.push(p.contributorId);
        continue;
      }
      const { mineOk, theirsOk, allChecked } = await this.rules.arbitrate(lease, tile, other);
      if (!theirsOk) wrong.push(p.token);
      if (mineOk && !theirsOk && allChecked) settled = true;
      if (!mineOk) {
        // The replica agrees with this result everywhere but where the coordinator found this one wrong and it right:
        // it is confirmed. A parked result found wrong too stays parked: the next independent result settles it.
        const message = 'differs from an independent replica, and the coordinator’s recompute of the disputed samples sided with the replica';
        return { kind: 'reject', code: 'VERIFICATION_FAILED', message, ...(theirsOk && allChecked ? { confirmed: p } : {}) };
      }
      (theirsOk ? agreed : outvoted).push(p.contributorId);
    }
    if (agreed.length > 0 || settled) {
      await this.dropParked(lease.shardId);
      return { kind: 'accept', agreed, outvoted };
    }
    if (wrong.length > 0) {
      // Right where it was disputed, but nothing independent vouches for the rest of it yet: it waits, the wrong ones go.
      await this.dropTokens(wrong);
      const { sha256, bytes } = await this.blobs.put(new Uint8Array(tile.buffer, tile.byteOffset, tile.byteLength));
      await this.store.addPendingResult(lease.token, sha256, bytes, Date.now(), lease.senderNetwork);
      return { kind: 'pending', outvoted };
    }
    if (parked.length + 1 >= MAX_PARKED) {
      await this.dropParked(lease.shardId);
      return { kind: 'reject', code: 'VERIFICATION_FAILED', message: `${MAX_PARKED} independent results for this shard and no two agree` };
    }
    const { sha256, bytes } = await this.blobs.put(new Uint8Array(tile.buffer, tile.byteOffset, tile.byteLength));
    await this.store.addPendingResult(lease.token, sha256, bytes, Date.now(), lease.senderNetwork);
    return { kind: 'pending' };
  }

  /**
   * A parked result's bytes. Blobs are content-addressed and shared (two colluders' all-42 tiles
   * are one blob), and a drop elsewhere that found the blob unreferenced may delete it just as
   * this result parks it: such a result is lost, and dropped, as if it never came.
   */
  private async parkedTile(p: PendingResult): Promise<Float32Array | undefined> {
    try {
      return await this.blobs.readFloat32(p.sha256);
    } catch {
      await this.store.dropPendingResults({ tokens: [p.token] });
      return undefined;
    }
  }

  private async dropParked(shardId: string): Promise<void> {
    for (const sha of await this.store.dropPendingResults({ shardId })) await this.blobs.delete(sha);
  }

  private async dropTokens(tokens: string[]): Promise<void> {
    if (tokens.length === 0) return;
    for (const sha of await this.store.dropPendingResults({ tokens })) await this.blobs.delete(sha);
  }
}

