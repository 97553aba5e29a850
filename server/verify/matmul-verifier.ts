import { freivaldsCheck } from '../../shared/freivalds';
import type { LeaseLookup } from '../store/store';
import type { PanelCache } from './panel-cache';

export type VerifyOutcome = { ok: true } | { ok: false; code: 'SHAPE_MISMATCH' | 'VERIFICATION_FAILED'; message: string };

/** Checks a returned C tile against its A and B panels with Freivalds' test. */
export class MatmulVerifier {
  constructor(
    private readonly panels: PanelCache,
    private readonly rounds = 3,
  ) {}

  async verify(lease: LeaseLookup, tile: Float32Array): Promise<VerifyOutcome> {
    const expected = lease.rows * lease.cols;
    if (tile.length !== expected) {
      return {
        ok: false,
        code: 'SHAPE_MISMATCH',
        message: `tile must be ${lease.rows}×${lease.cols} float32 (${expected * 4} bytes), got ${tile.length * 4} bytes`,
      };
    }
    const [a, b] = await Promise.all([this.panels.get(lease.a.sha256, lease.a.bytes), this.panels.get(lease.b.sha256, lease.b.bytes)]);
    const result = freivaldsCheck(a, b, tile, lease.rows, lease.job.k, lease.cols, { rounds: this.rounds });
    if (result.ok) return { ok: true };
    return { ok: false, code: 'VERIFICATION_FAILED', message: `tile failed Freivalds' check: ${result.reason ?? 'mismatch'}` };
  }
}
