import type { InferenceLease, MatmulLease } from '../../shared/protocol';
import { SimContributor } from './sim-contributor';

/** How a shortcut contributor answers a lease; `panel` downloads one of the lease's blobs. */
export type Shortcut = (lease: MatmulLease | InferenceLease, panel: (ref: MatmulLease['a']) => Promise<Float32Array>) => Promise<Float32Array>;

/**
 * A simulated contributor that answers from what the test knows about the
 * job instead of computing it: work that is heavy for the coordinator to
 * check but whose answer is cheap (an identity chain's output is its input),
 * so the test process stays idle and the coordinator's load is its own.
 */
export class ShortcutContributor extends SimContributor {
  constructor(
    url: string,
    private readonly answer: Shortcut,
    opts: ConstructorParameters<typeof SimContributor>[2] = {},
  ) {
    super(url, { kind: 'honest' }, { inference: true, ...opts });
  }

  override compute(lease: MatmulLease | InferenceLease): Promise<Float32Array> {
    return this.answer(lease, (ref) => this.fetchPanel(ref));
  }
}

/** The answer for identity-chain models (test/support/heavy-models.ts): the output is the input. */
export const identityAnswer: Shortcut = async (lease, panel) => {
  if (lease.kind !== 'inference') throw new Error('identityAnswer answers inference leases');
  return panel(lease.input);
};

/**
 * The answer for products with identityBlocks(k, n) as B: each tile of C is
 * the first `cols` columns of its A panel.
 */
export const leadingColumnsAnswer: Shortcut = async (lease, panel) => {
  if (lease.kind !== 'matmul') throw new Error('leadingColumnsAnswer answers matmul leases');
  const a = await panel(lease.a);
  const c = new Float32Array(lease.rows * lease.cols);
  for (let i = 0; i < lease.rows; i++) c.set(a.subarray(i * lease.k, i * lease.k + lease.cols), i * lease.cols);
  return c;
};

/** A k×n matrix with B[p][j] = 1 where p = j mod `block` (and 0 elsewhere): every column panel `block` wide is [I; 0]. */
export function identityBlocks(k: number, n: number, block: number): Float32Array {
  const b = new Float32Array(k * n);
  for (let j = 0; j < n; j++) b[(j % block) * n + j] = 1;
  return b;
}
