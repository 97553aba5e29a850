import { prng } from './prng';
/**
 * Honest float32 matrix products in the summation orders different devices
 * use, emulated with Math.fround: what an honest contributor may return. The
 * check's tolerance is measured against these (bench/honest-error.ts) and
 * tested with them (test/unit/freivalds.test.ts).
 */

export interface SummationOrder {
  id: string;
  /** One float32 dot product of row `i` of A (rows×k) with column `j` of B (k×cols). */
  dot(a: Float32Array, b: Float32Array, i: number, j: number, k: number, cols: number): number;
}

const f = Math.fround;

/** a·b rounded to float32, then added and rounded (no FMA); or a·b + s rounded once (FMA: the float32 product is exact in float64). */
const step = (fma: boolean) => (fma ? (s: number, x: number, y: number) => f(s + x * y) : (s: number, x: number, y: number) => f(s + f(x * y)));

function sequential(fma: boolean, reversed: boolean): SummationOrder {
  const add = step(fma);
  return {
    id: `${reversed ? 'reversed' : 'sequential'}${fma ? '-fma' : ''}`,
    dot(a, b, i, j, k, cols) {
      let s = 0;
      if (reversed) for (let p = k - 1; p >= 0; p--) s = add(s, a[i * k + p]!, b[p * cols + j]!);
      else for (let p = 0; p < k; p++) s = add(s, a[i * k + p]!, b[p * cols + j]!);
      return s;
    },
  };
}

/** Split-K: each block of `size` terms summed on its own, then the partial sums in order (a GPU reduction across workgroups). */
function blocked(size: number, fma: boolean): SummationOrder {
  const add = step(fma);
  return {
    id: `blocked-${size}${fma ? '-fma' : ''}`,
    dot(a, b, i, j, k, cols) {
      let total = 0;
      for (let p0 = 0; p0 < k; p0 += size) {
        let s = 0;
        for (let p = p0; p < Math.min(k, p0 + size); p++) s = add(s, a[i * k + p]!, b[p * cols + j]!);
        total = f(total + s);
      }
      return total;
    },
  };
}

/** `lanes` interleaved accumulators summed at the end (vec4 kernels, subgroup reductions). */
function lanes(count: number, fma: boolean): SummationOrder {
  const add = step(fma);
  return {
    id: `lanes-${count}${fma ? '-fma' : ''}`,
    dot(a, b, i, j, k, cols) {
      const acc = new Array<number>(count).fill(0);
      for (let p = 0; p < k; p++) acc[p % count] = add(acc[p % count]!, a[i * k + p]!, b[p * cols + j]!);
      let s = 0;
      for (const x of acc) s = f(s + x);
      return s;
    },
  };
}

const pairwise: SummationOrder = {
  id: 'pairwise',
  dot(a, b, i, j, k, cols) {
    const sum = (lo: number, hi: number): number => {
      if (hi - lo === 1) return f(a[i * k + lo]! * b[lo * cols + j]!);
      const mid = (lo + hi) >> 1;
      return f(sum(lo, mid) + sum(mid, hi));
    };
    return k === 0 ? 0 : sum(0, k);
  },
};

export const SUMMATION_ORDERS: readonly SummationOrder[] = [
  sequential(false, false),
  sequential(true, false),
  sequential(false, true),
  ...[4, 16, 64].map((n) => blocked(n, false)),
  blocked(32, true),
  lanes(4, false),
  lanes(4, true),
  lanes(32, false),
  pairwise,
];

/** Rows `rowIds` of A·B in one order: a (rowIds.length × cols) result. */
export function productRows(order: SummationOrder, a: Float32Array, b: Float32Array, rowIds: readonly number[], k: number, cols: number): Float32Array {
  const out = new Float32Array(rowIds.length * cols);
  rowIds.forEach((i, r) => {
    for (let j = 0; j < cols; j++) out[r * cols + j] = order.dot(a, b, i, j, k, cols);
  });
  return out;
}

/** The same rows of A, as a (rowIds.length × k) matrix: checking a sample of rows is checking a smaller tile. */
export function pickRows(a: Float32Array, rowIds: readonly number[], k: number): Float32Array {
  const out = new Float32Array(rowIds.length * k);
  rowIds.forEach((i, r) => out.set(a.subarray(i * k, (i + 1) * k), r * k));
  return out;
}

export type DataClass = 'uniform' | 'gaussian' | 'positive' | 'heavy-tailed' | 'constant' | 'integers';
export const DATA_CLASSES: readonly DataClass[] = ['uniform', 'gaussian', 'positive', 'heavy-tailed', 'constant', 'integers'];

/** A (rows×k) and B (k×cols) of a data class, from a seeded generator. */
export function classMatrices(cls: DataClass, rows: number, k: number, cols: number, seed: number): { a: Float32Array; b: Float32Array } {
  const rand = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const fill = (n: number, side: 'a' | 'b', at: (idx: number) => number) => Float32Array.from({ length: n }, (_, idx) => at(idx + (side === 'b' ? 1 : 0)));
  const gen: Record<DataClass, (side: 'a' | 'b', n: number) => Float32Array> = {
    uniform: (s, n) => fill(n, s, () => rand() * 2 - 1),
    gaussian: (s, n) => fill(n, s, gauss),
    positive: (s, n) => fill(n, s, rand),
    // log-normal magnitudes spanning ~6 decades, random signs
    'heavy-tailed': (s, n) => fill(n, s, () => (rand() < 0.5 ? -1 : 1) * Math.exp(2.5 * gauss())),
    // A = 0.1 everywhere, B = 1: the rounding errors of a sequential sum all lean one way
    constant: (s, n) => new Float32Array(n).fill(s === 'a' ? 0.1 : 1),
    // small integers times 0.1 (quantised data): many equal terms
    integers: (s, n) => fill(n, s, () => Math.floor(rand() * 8) * 0.1),
  };
  return { a: gen[cls]('a', rows * k), b: gen[cls]('b', k * cols) };
}

/** The seeded generator the fuzzers use, under the name these measurements know it by. */
export const mulberry32 = prng;
