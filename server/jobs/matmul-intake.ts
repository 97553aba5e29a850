import { randomUUID } from 'node:crypto';
import { elementCount, type NpyHeader } from '../../shared/npy';
import { colPanel, planMatmulTiles, rowPanel, TilingError } from '../../shared/tiling';
import type { Config } from '../config';
import { HttpError } from '../http/http-error';
import type { UploadedFile } from '../http/multipart';
import { inspectNpy, loadNpyData } from './npy-upload';
import type { BlobStore } from '../storage/blob-store';
import type { ResultFiles } from '../storage/result-files';
import type { TuningCensus } from '../scheduler/tuning-census';
import type { JobRecord, NewShard, PanelRecord, Store, VerificationMethod } from '../store/store';

export interface MatmulIntakeDeps {
  config: Config;
  store: Store;
  blobs: BlobStore;
  results: ResultFiles;
  /** Online contributors' tuned kernels: tiles are not cut below the size they run efficiently. */
  census?: TuningCensus;
}

/** Validates a matrix upload from its header alone, before any of its data is read. */
async function inspectMatrix(file: UploadedFile, config: Config): Promise<NpyHeader> {
  const header = await inspectNpy(file);
  const shape = header.shape;
  if (shape.length !== 2) {
    throw new HttpError(400, 'NOT_A_MATRIX', `file "${file.field}" has shape (${shape.join(', ')}); a matmul operand must be 2-D`);
  }
  if (shape.some((d) => d === 0)) {
    throw new HttpError(400, 'EMPTY_DIMENSION', `file "${file.field}" has shape (${shape.join(', ')}); every dimension must be at least 1`);
  }
  if (shape.some((d) => d > config.maxDim) || elementCount(shape) > config.maxElements) {
    throw new HttpError(
      413,
      'TOO_LARGE',
      `file "${file.field}" has shape (${shape.join(', ')}); the limits are ${config.maxDim} per dimension and ${config.maxElements} elements per matrix`,
    );
  }
  return header;
}

/**
 * NaN and Infinity propagate through a product and make every affected tile
 * fail verification, so a job with them could only fail later; refuse it now.
 */
function rejectNonFinite(data: Float32Array, field: string, cols: number): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) {
      throw new HttpError(400, 'NON_FINITE', `file "${field}" has ${data[i]} at row ${Math.floor(i / cols)}, column ${i % cols}; inputs must be finite numbers`);
    }
  }
}

/**
 * Turns an uploaded A and B into a queued job: checks them, cuts A into row
 * panels and B into column panels stored as content-addressed blobs, creates
 * the result file, and records job, panels and shards in one transaction.
 * The job exists only once that transaction commits, so a crash before it
 * leaves no half-accepted job (only unreferenced blobs, collected at start).
 */
export async function acceptMatmulJob(
  deps: MatmulIntakeDeps,
  files: Record<string, UploadedFile>,
  opts: { owner: string | null; priority: number; verification: VerificationMethod; storage?: { used: number; limit: number } },
): Promise<JobRecord> {
  const { config, store, blobs, results } = deps;
  for (const name of ['a', 'b'] as const) {
    if (!files[name]) throw new HttpError(400, 'MISSING_FILE', `missing file "${name}"; matmul needs a (M×K) and b (K×N) as .npy files: -F a=@a.npy -F b=@b.npy`);
  }
  const ha = await inspectMatrix(files.a!, config);
  const hb = await inspectMatrix(files.b!, config);
  const [m, k] = ha.shape as [number, number];
  const [kb, n] = hb.shape as [number, number];
  if (k !== kb) {
    throw new HttpError(400, 'SHAPE_MISMATCH', `inner dimensions do not match: a is ${m}×${k} and b is ${kb}×${n}; a's columns (${k}) must equal b's rows (${kb})`);
  }
  if (m * n > config.maxElements) {
    throw new HttpError(413, 'TOO_LARGE', `the result would be ${m}×${n}, over the limit of ${config.maxElements} elements`);
  }
  const inputBytes = (m * k + k * n) * 4;
  const resultBytes = m * n * 4;
  if (opts.storage && opts.storage.used + inputBytes + resultBytes > opts.storage.limit) {
    throw new HttpError(
      413,
      'QUOTA_EXCEEDED',
      `this job needs ${inputBytes + resultBytes} bytes of storage; this key uses ${opts.storage.used} of its ${opts.storage.limit}. ` +
        'Download and DELETE finished jobs to free space',
    );
  }
  let plan;
  try {
    const minEdge = config.tilesFollowKernels ? deps.census?.preferredMinEdge() : undefined;
    plan = planMatmulTiles({ m, k, n }, { maxPanelBytes: config.maxPanelBytes, targetTiles: config.targetTiles, ...(minEdge ? { minEdge } : {}) });
  } catch (err) {
    if (err instanceof TilingError) throw new HttpError(413, 'TOO_LARGE', err.message);
    throw err;
  }
  const a = await loadNpyData(files.a!);
  const b = await loadNpyData(files.b!);
  rejectNonFinite(a, 'a', k);
  rejectNonFinite(b, 'b', n);

  const panels: PanelRecord[] = [];
  for (let r = 0; r < plan.rowPanels; r++) {
    const rows = Math.min(plan.tileRows, m - r * plan.tileRows);
    const data = rowPanel(a, k, r * plan.tileRows, rows);
    panels.push({ side: 'a', idx: r, ...(await blobs.put(new Uint8Array(data.buffer))) });
  }
  for (let c = 0; c < plan.colPanels; c++) {
    const cols = Math.min(plan.tileCols, n - c * plan.tileCols);
    const data = colPanel(b, k, n, c * plan.tileCols, cols);
    panels.push({ side: 'b', idx: c, ...(await blobs.put(new Uint8Array(data.buffer))) });
  }

  const id = randomUUID();
  const shards: NewShard[] = plan.tiles.map((t) => ({
    id: `${id}.${t.index}`,
    idx: t.index,
    rowPanel: t.rowPanel,
    colPanel: t.colPanel,
    row0: t.row0,
    col0: t.col0,
    rows: t.rows,
    cols: t.cols,
  }));
  await results.create(id, m, n);
  const now = Date.now();
  await store.createJob({ id, type: 'matmul', owner: opts.owner, priority: opts.priority, verification: opts.verification, inputBytes, resultBytes, m, k, n, tileRows: plan.tileRows, tileCols: plan.tileCols, panels, shards, now });
  return (await store.getJob(id))!;
}
