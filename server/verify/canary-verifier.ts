import type { Store } from '../store/store';
import { TaskUnavailable, type WorkerPool } from '../workers/pool';
import { checkMatmulResult } from './matmul-verifier';
import type { PanelCache } from './panel-cache';
import type { LiveLease, ResultVerifier, Verdict } from './verdict';

/**
 * Known-answer canaries: the coordinator computed the answer itself, so the
 * tile is compared element by element against it and a per-element tolerance
 * stored beside it — a sharper test than Freivalds' projection, which catches
 * systematic errors (a tile scaled by 1 + 1e-3) however long the sums are.
 * The tile first goes through the same Freivalds check as a real tile, so a
 * canary's reply takes as long as a real one's and says the same things. A
 * reject message is for the operator's log; the contributor hears only the
 * category (server/scheduler/result-intake.ts).
 */
export class CanaryVerifier implements ResultVerifier {
  constructor(
    private readonly store: Store,
    private readonly panels: PanelCache,
    private readonly pool: WorkerPool,
  ) {}

  async verify(lease: LiveLease, tile: Float32Array): Promise<Verdict> {
    const refs = await this.store.jobPanels(lease.job.id);
    const answer = refs.find((p) => p.side === 'answer');
    const tolerance = refs.find((p) => p.side === 'tolerance');
    // Our loss, not the sender's fault: no verdict, so no strike.
    if (!answer || !tolerance) throw new TaskUnavailable('failed', `canary ${lease.job.id} lost its known answer`);
    const projected = await checkMatmulResult(this.panels, this.pool, lease, tile.slice());
    if (projected.kind !== 'accept') return projected;
    const [want, tol] = await Promise.all([this.panels.get(answer.sha256, answer.bytes), this.panels.get(tolerance.sha256, tolerance.bytes)]);
    const at = await this.pool.run('canary', { c: tile, want, tolerance: tol }, 3 * want.length);
    if (at >= 0) return { kind: 'reject', code: 'VERIFICATION_FAILED', message: `canary tile differs from its known answer at element ${at} (row ${Math.floor(at / lease.cols)}, column ${at % lease.cols})` };
    return { kind: 'accept' };
  }
}
