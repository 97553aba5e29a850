import { resultsAgree } from '../../shared/result-compare';
import type { BlobStore } from '../storage/blob-store';
import type { Store } from '../store/store';
import { replicationRate, type TrustRecord } from '../trust/reputation';
import type { LiveLease, ResultVerifier, Verdict } from './verdict';

/** Beyond this many parked results without two agreeing, the shard is treated as failing. */
const MAX_PARKED = 4;

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
    private readonly random: () => number = Math.random,
    /** When two results count as the same answer; by default within float32 rounding of a length-k dot product. */
    private readonly agree: (lease: LiveLease, x: Float32Array, y: Float32Array) => Promise<boolean> | boolean = (lease, x, y) => resultsAgree(x, y, lease.job.k),
  ) {}

  async verify(lease: LiveLease, tile: Float32Array, submitter: TrustRecord): Promise<Verdict> {
    if (tile.some((v) => !Number.isFinite(v))) return { kind: 'reject', code: 'VERIFICATION_FAILED', message: 'result contains NaN or Infinity' };
    const parked = (await this.store.pendingResults(lease.shardId)).filter((p) => p.contributorId !== lease.contributorId);
    if (parked.length === 0 && this.random() >= replicationRate(submitter)) return { kind: 'accept' };
    const agreed: string[] = [];
    const outvoted: string[] = [];
    for (const p of parked) {
      const other = await this.blobs.readFloat32(p.sha256);
      ((await this.agree(lease, tile, other)) ? agreed : outvoted).push(p.contributorId);
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
