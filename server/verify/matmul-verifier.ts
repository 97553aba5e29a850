import { FLOAT32_MAX } from '../../shared/result-compare';
import type { WorkerPool } from '../workers/pool';
import { matmulTileCost, type MatmulTileCheck } from '../workers/verify-tasks';
import type { PanelCache } from './panel-cache';
import type { LiveLease, ResultVerifier, Verdict } from './verdict';

/**
 * Matrix products: every tile is checked against its A and B panels with
 * Freivalds' test, whoever sent it, on the worker pool; the rounds follow from
 * k (freivaldsRounds) unless fixed here.
 */
export class FreivaldsVerifier implements ResultVerifier {
  constructor(
    private readonly panels: PanelCache,
    private readonly pool: WorkerPool,
    private readonly rounds?: number,
  ) {}

  async verify(lease: LiveLease, tile: Float32Array): Promise<Verdict> {
    return checkMatmulResult(this.panels, this.pool, lease, tile, this.rounds);
  }
}

/**
 * Checks a matmul result against its panels: Freivalds' test (`rounds`
 * undefined: as many as the catch guarantee needs for this k; 0: none), and its
 * NaN and ±Infinity against the exact product. Rows the check had to
 * recompute exactly are written into `tile`, which the caller then assembles.
 */
export async function checkMatmulResult(panels: PanelCache, pool: WorkerPool, lease: LiveLease, tile: Float32Array, rounds?: number): Promise<Verdict> {
  const [a, b] = await Promise.all([panels.get(lease.a.sha256, lease.a.bytes), panels.get(lease.b.sha256, lease.b.bytes)]);
  const { rows, cols } = lease;
  const k = lease.job.k;
  const check = await pool.run('matmulTile', { a, b, c: tile, rows, k, cols, rounds }, matmulTileCost(rows, k, cols, rounds));
  // Rows the check recomputed exactly replace the sent ones in `tile`, the very array the caller assembles:
  // a change small enough to hide in the rigorous rounding bound never reaches the result.
  if (check.kind === 'ok') for (const r of check.exactRows ?? []) tile.set(r.values, r.row * cols);
  return matmulVerdict(check, lease);
}

function matmulVerdict(check: MatmulTileCheck, lease: LiveLease): Verdict {
  switch (check.kind) {
    case 'ok':
      return { kind: 'accept' };
    case 'mismatch':
      return reject(`tile failed Freivalds' check: ${check.reason}`);
    case 'wrong':
      return reject(`result contains NaN or Infinity where A·B is finite (${check.count} such elements, e.g. row ${lease.row0 + check.row}, column ${lease.col0 + check.col})`);
    case 'overflow':
      return { kind: 'unrepresentable', message: overflowReason(check, lease) };
  }
}

export function overflowReason(o: { row: number; col: number; magnitude: number; tileBound: number }, lease: LiveLease): string {
  const e = (x: number) => x.toExponential(2);
  return (
    `A·B cannot be represented in float32: at C[${lease.row0 + o.row}][${lease.col0 + o.col}] the terms |A[i][p]·B[p][j]| add up to ${e(o.magnitude)}, ` +
    `over float32's largest value ${e(FLOAT32_MAX)} (max|A|·max|B|·K is ${e(o.tileBound)} for these rows and columns); ` +
    `divide A or B by a power of two until max|A|·max|B|·K < ${e(FLOAT32_MAX)}, and multiply the result back`
  );
}

const reject = (message: string): Verdict => ({ kind: 'reject', code: 'VERIFICATION_FAILED', message });
