/**
 * Cuts C = A·B (M×K times K×N) into rectangular tiles. A tile needs the A row
 * panel [row0, row0+rows) × K and the B column panel K × [col0, col0+cols);
 * tiles that share a row share the A panel, so panels are stored once each.
 */

export interface MatmulDims {
  m: number;
  k: number;
  n: number;
}

export interface Tile {
  index: number;
  rowPanel: number;
  colPanel: number;
  row0: number;
  col0: number;
  rows: number;
  cols: number;
}

export interface TilePlan {
  tileRows: number;
  tileCols: number;
  rowPanels: number;
  colPanels: number;
  tiles: Tile[];
}

/** The WebGPU limits that bound a shard. Every adapter offers at least the defaults. */
export interface BufferLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}

/** The spec's guaranteed minimums: a plan that fits these runs on any WebGPU device. */
export const WEBGPU_DEFAULT_LIMITS: BufferLimits = {
  maxStorageBufferBindingSize: 128 * 1024 * 1024,
  maxBufferSize: 256 * 1024 * 1024,
};

export interface PlanOptions {
  limits?: BufferLimits;
  /** Upper bound on one panel's bytes, to keep each transfer and each lease short. */
  maxPanelBytes?: number;
  /** Prefer tiles small enough that a job spreads over at least this many shards. */
  targetTiles?: number;
  /** Candidate tile edges, largest first; multiples of the kernels' workgroup blocks. */
  edges?: readonly number[];
  /**
   * Stop shrinking tiles at this edge even if the job then spreads over fewer
   * than targetTiles shards: below it, the contributors' kernels run inefficiently.
   */
  minEdge?: number;
}

export const DEFAULT_PLAN: Required<Omit<PlanOptions, 'limits' | 'minEdge'>> = {
  maxPanelBytes: 16 * 1024 * 1024,
  targetTiles: 32,
  edges: [512, 256, 128, 64],
};

export class TilingError extends Error {
  readonly code = 'TOO_LARGE';
}

function panelBudget(opts: PlanOptions): number {
  const limits = opts.limits ?? WEBGPU_DEFAULT_LIMITS;
  return Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize, opts.maxPanelBytes ?? DEFAULT_PLAN.maxPanelBytes);
}

function tileCount(d: MatmulDims, rows: number, cols: number): number {
  return Math.ceil(d.m / rows) * Math.ceil(d.n / cols);
}

/** The largest tile edge such that a panel of `edge` rows (or columns) of length K fits the budget. */
function fittingEdge(d: MatmulDims, edge: number, budget: number): { rows: number; cols: number } | null {
  const rows = Math.min(edge, d.m);
  const cols = Math.min(edge, d.n);
  const fits = rows * d.k * 4 <= budget && cols * d.k * 4 <= budget && rows * cols * 4 <= budget;
  return fits ? { rows, cols } : null;
}

export function chooseTileShape(d: MatmulDims, opts: PlanOptions = {}): { rows: number; cols: number } {
  const budget = panelBudget(opts);
  const edges = opts.edges ?? DEFAULT_PLAN.edges;
  const target = opts.targetTiles ?? DEFAULT_PLAN.targetTiles;
  let smallestFit: { rows: number; cols: number } | null = null;
  for (const edge of edges) {
    const shape = fittingEdge(d, edge, budget);
    if (!shape) continue;
    if (tileCount(d, shape.rows, shape.cols) >= target || (opts.minEdge !== undefined && edge <= opts.minEdge)) return shape;
    smallestFit = shape;
  }
  if (smallestFit) return smallestFit;
  // K is so long that even the smallest candidate panel is over budget: shrink the edge to fit.
  const edge = Math.floor(budget / (d.k * 4));
  if (edge < 1) {
    throw new TilingError(`K = ${d.k} is too long: one row of A (${d.k * 4} bytes) exceeds the ${budget}-byte panel budget`);
  }
  return { rows: Math.min(edge, d.m), cols: Math.min(edge, d.n) };
}

export function planMatmulTiles(d: MatmulDims, opts: PlanOptions = {}): TilePlan {
  for (const [name, v] of Object.entries(d)) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`dimension ${name} must be a positive integer, got ${v}`);
  }
  const { rows, cols } = chooseTileShape(d, opts);
  const rowPanels = Math.ceil(d.m / rows);
  const colPanels = Math.ceil(d.n / cols);
  const tiles: Tile[] = [];
  for (let r = 0; r < rowPanels; r++) {
    for (let c = 0; c < colPanels; c++) {
      const row0 = r * rows;
      const col0 = c * cols;
      tiles.push({
        index: tiles.length,
        rowPanel: r,
        colPanel: c,
        row0,
        col0,
        rows: Math.min(rows, d.m - row0),
        cols: Math.min(cols, d.n - col0),
      });
    }
  }
  return { tileRows: rows, tileCols: cols, rowPanels, colPanels, tiles };
}

/** Rows [row0, row0+rows) of a row-major matrix with `width` columns. */
export function rowPanel(src: Float32Array, width: number, row0: number, rows: number): Float32Array {
  return src.slice(row0 * width, (row0 + rows) * width);
}

/** Columns [col0, col0+cols) of a row-major `height`×`width` matrix, as a row-major height×cols matrix. */
export function colPanel(src: Float32Array, height: number, width: number, col0: number, cols: number): Float32Array {
  const out = new Float32Array(height * cols);
  for (let i = 0; i < height; i++) out.set(src.subarray(i * width + col0, i * width + col0 + cols), i * cols);
  return out;
}
