import { freivaldsCheck } from '../../shared/freivalds';
import type { PanelCache } from './panel-cache';
import type { LiveLease, ResultVerifier, Verdict } from './verdict';

/** Matrix products: every tile is checked against its A and B panels with Freivalds' test, whoever sent it. */
export class FreivaldsVerifier implements ResultVerifier {
  constructor(
    private readonly panels: PanelCache,
    private readonly rounds = 3,
  ) {}

  async verify(lease: LiveLease, tile: Float32Array): Promise<Verdict> {
    const [a, b] = await Promise.all([this.panels.get(lease.a.sha256, lease.a.bytes), this.panels.get(lease.b.sha256, lease.b.bytes)]);
    const result = freivaldsCheck(a, b, tile, lease.rows, lease.job.k, lease.cols, { rounds: this.rounds });
    if (result.ok) return { kind: 'accept' };
    return { kind: 'reject', code: 'VERIFICATION_FAILED', message: `tile failed Freivalds' check: ${result.reason ?? 'mismatch'}` };
  }
}
