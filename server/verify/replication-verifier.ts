import { firstNonFinite } from '../../shared/result-compare';
import type { BlobStore } from '../storage/blob-store';
import type { Store } from '../store/store';
import { replicationRate, type TrustRecord } from '../trust/reputation';
import type { WorkerPool } from '../workers/pool';
import { checkMatmulResult } from './matmul-verifier';
import type { PanelCache } from './panel-cache';
import type { LiveLease, ResultVerifier, Verdict } from './verdict';

/** Beyond this many parked results without two agreeing, the shard is treated as failing. */
const MAX_PARKED = 4;

/** What replication needs to know about a kind of work. */
export interface ReplicaRules {
  /**
   * What one result can be judged on alone, before it is compared: its NaN and
   * ±Infinity against the reference (a wrong one rejects it; one the
   * reference shares is no fault, or fails a job that cannot be represented).
   * Undefined: go on to compare.
   */
  screen(lease: LiveLease, tile: Float32Array): Promise<Verdict | undefined>;
  /** When two results count as the same answer. */
  agree(lease: LiveLease, x: Float32Array, y: Float32Array): Promise<boolean>;
}

/** Matrix products: non-finite elements are checked against A·B, and replicas agree within float32 rounding of a length-k dot product. */
export function matmulReplicaRules(panels: PanelCache, pool: WorkerPool): ReplicaRules {
  return {
    async screen(lease, tile) {
      if (firstNonFinite(tile) < 0) return undefined; // a scan costs less than handing the tile to a thread
      const v = await checkMatmulResult(panels, pool, lease, tile, 0);
      return v.kind === 'accept' ? undefined : v;
    },
    agree: (lease, x, y) => pool.run('matmulReplicas', { x, y, k: lease.job.k }, 8 * x.length),
  };
}

/**
 * Work without an algebraic check is confirmed by a second contributor:
 * a result is assembled once another contributor's result agrees with it
 * within tolerance; results that disagree with the agreed one lose the vote.
 * How often a result needs a replica depends on the submitter's reputation
 * (adaptive replication): always for new or quarantined contributors, a
 * spot-check share for trusted ones.
 */
export class ReplicationVerifier implements ResultVerifier {
  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly rules: ReplicaRules,
    private readonly random: () => number = Math.random,
  ) {}

  async verify(lease: LiveLease, tile: Float32Array, submitter: TrustRecord): Promise<Verdict> {
    const screened = await this.rules.screen(lease, tile);
    if (screened) return screened;
    const parked = (await this.store.pendingResults(lease.shardId)).filter((p) => p.contributorId !== lease.contributorId);
    if (parked.length === 0 && this.random() >= replicationRate(submitter)) return { kind: 'accept' };
    const agreed: string[] = [];
    const outvoted: string[] = [];
    for (const p of parked) {
      const other = await this.blobs.readFloat32(p.sha256);
      ((await this.rules.agree(lease, tile, other)) ? agreed : outvoted).push(p.contributorId);
    }
    if (agreed.length > 0) {
      await this.store.dropPendingResults({ shardId: lease.shardId }).then((shas) => Promise.all(shas.map((s) => this.blobs.delete(s))));
      return { kind: 'accept', agreed, outvoted };
    }
    if (parked.length + 1 >= MAX_PARKED) {
      await this.store.dropPendingResults({ shardId: lease.shardId }).then((shas) => Promise.all(shas.map((s) => this.blobs.delete(s))));
      return { kind: 'reject', code: 'VERIFICATION_FAILED', message: `${MAX_PARKED} results for this shard and no two agree` };
    }
    const { sha256, bytes } = await this.blobs.put(new Uint8Array(tile.buffer, tile.byteOffset, tile.byteLength));
    await this.store.addPendingResult(lease.token, sha256, bytes, Date.now());
    return { kind: 'pending' };
  }
}
