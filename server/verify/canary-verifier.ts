import type { Store } from '../store/store';
import type { WorkerPool } from '../workers/pool';
import type { PanelCache } from './panel-cache';
import type { LiveLease, ResultVerifier, Verdict } from './verdict';

/**
 * Known-answer canaries: the coordinator computed the answer itself, so the
 * tile is compared element by element against it and a per-element tolerance
 * stored beside it — a sharper test than Freivalds' projection, which catches
 * systematic errors (a tile scaled by 1 + 1e-3) however long the sums are.
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
    if (!answer || !tolerance) return { kind: 'reject', code: 'VERIFICATION_FAILED', message: 'the known answer was lost' };
    const [want, tol] = await Promise.all([this.panels.get(answer.sha256, answer.bytes), this.panels.get(tolerance.sha256, tolerance.bytes)]);
    const at = await this.pool.run('canary', { c: tile, want, tolerance: tol }, 3 * want.length);
    if (at >= 0) return { kind: 'reject', code: 'VERIFICATION_FAILED', message: `tile differs from A·B at element ${at}` };
    return { kind: 'accept' };
  }
}
