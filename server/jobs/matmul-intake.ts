import { randomUUID } from 'node:crypto';
import { elementCount, type NpyHeader } from '../../shared/npy';
import { planMatmulTiles, TilingError } from '../../shared/tiling';
import type { Config } from '../config';
import { HttpError } from '../http/http-error';
import type { UploadedFile } from '../http/multipart';
import { checkStorageQuota, commitJob, withIntakeBlobs } from './job-commit';
import { inspectNpy, NpyReader } from './npy-upload';
import type { BlobStore } from '../storage/blob-store';
import type { ResultFiles } from '../storage/result-files';
import type { TuningCensus } from '../scheduler/tuning-census';
import type { JobQuota, JobRecord, NewJob, NewShard, PanelRecord, Store, VerificationMethod } from '../store/store';
import { FLOAT32_MAX, float32SumMayOverflow } from '../../shared/result-compare';

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

/** The largest finite float32. */

/**
 * Checks an operand in one streaming pass. NaN and Infinity propagate through
 * a product and make every affected tile fail verification, so a job with
 * them could only fail later; refuse it now. Returns the largest magnitude.
 */
async function scanOperand(reader: NpyReader, field: string): Promise<number> {
  const { maxAbs, nonFinite } = await reader.scan();
  if (nonFinite) {
    const [row, col] = nonFinite.index;
    throw new HttpError(400, 'NON_FINITE', `file "${field}" has ${nonFinite.value} at row ${row}, column ${col}; inputs must be finite numbers`);
  }
  return maxAbs;
}

/**
 * Turns an uploaded A and B into a queued job: checks them, cuts A into row
 * panels and B into column panels stored as content-addressed blobs, creates
 * the result file, and records job, panels and shards in one transaction
 * (which also takes the owner's quota). The job exists only once that
 * transaction commits, so a crash before it leaves no half-accepted job
 * (only unreferenced blobs, collected at start). The files are read in
 * place, a panel at a time, so memory does not grow with their size.
 */
export async function acceptMatmulJob(
  deps: MatmulIntakeDeps,
  files: Record<string, UploadedFile>,
  opts: {
    owner: string | null;
    priority: number;
    verification: VerificationMethod;
    /** Replication: a Freivalds-checked tile is assembled without a second opinion after waiting this long. */
    replicaWaitMs?: number;
    storage?: { used: number; limit: number };
    /** Checked again, atomically, when the job is committed. */
    quota?: JobQuota;
    /** The request's: a client gone before the commit gets no job. */
    signal?: AbortSignal;
  },
): Promise<JobRecord> {
  const { config, store, blobs } = deps;
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
  checkStorageQuota(inputBytes + resultBytes, opts.storage);
  let plan;
  try {
    const minEdge = config.tilesFollowKernels ? deps.census?.preferredMinEdge() : undefined;
    plan = planMatmulTiles({ m, k, n }, { maxPanelBytes: config.maxPanelBytes, targetTiles: config.targetTiles, ...(minEdge ? { minEdge } : {}) });
  } catch (err) {
    if (err instanceof TilingError) throw new HttpError(413, 'TOO_LARGE', err.message);
    throw err;
  }
  const tiles = plan;

  const id = randomUUID();
  return withIntakeBlobs(blobs, store, async (intake) => {
    const panels: PanelRecord[] = [];
    await NpyReader.with(files.a!, ha, (ra) =>
      NpyReader.with(files.b!, hb, async (rb) => {
        const maxA = await scanOperand(ra, 'a');
        const maxB = await scanOperand(rb, 'b');
        // Every element of C is a sum of K products, each at most max|a|·max|b|: past float32's range an
        // honest contributor's tile is Infinity and could only be blamed on it.
        const bound = maxA * maxB * k;
        if (float32SumMayOverflow(bound, k)) {
          throw new HttpError(
            400,
            'PRODUCT_OVERFLOW',
            `the product may not fit in float32: max|a|·max|b|·K = ${maxA.toExponential(3)}·${maxB.toExponential(3)}·${k} = ${bound.toExponential(3)}, ` +
              `with float32 rounding over K terms not safely below the float32 maximum ${FLOAT32_MAX.toExponential(7)}; scale a or b down (and the result back up)`,
          );
        }
        // One buffer, reused: a panel's bytes are written out before the next panel is read.
        const panel = new Float32Array(Math.max(tiles.tileRows, tiles.tileCols) * k);
        const bytesOf = (len: number) => new Uint8Array(panel.buffer, 0, len * 4);
        for (let r = 0; r < tiles.rowPanels; r++) {
          opts.signal?.throwIfAborted();
          const rows = Math.min(tiles.tileRows, m - r * tiles.tileRows);
          await ra.readBlock(r * tiles.tileRows, rows, 0, k, panel);
          panels.push({ side: 'a', idx: r, ...(await intake.put(bytesOf(rows * k))) });
        }
        // A column panel of B is a pass over B's rows, keeping its columns.
        for (let c = 0; c < tiles.colPanels; c++) {
          opts.signal?.throwIfAborted();
          const cols = Math.min(tiles.tileCols, n - c * tiles.tileCols);
          await rb.readBlock(0, k, c * tiles.tileCols, cols, panel);
          panels.push({ side: 'b', idx: c, ...(await intake.put(bytesOf(k * cols))) });
        }
      }),
    );

    const shards: NewShard[] = tiles.tiles.map((t) => ({
      id: randomUUID(),
      idx: t.index,
      rowPanel: t.rowPanel,
      colPanel: t.colPanel,
      row0: t.row0,
      col0: t.col0,
      rows: t.rows,
      cols: t.cols,
    }));
    const job: NewJob = { id, type: 'matmul', owner: opts.owner, priority: opts.priority, verification: opts.verification, ...(opts.replicaWaitMs ? { replicaWaitMs: opts.replicaWaitMs } : {}), inputBytes, resultBytes, m, k, n, tileRows: tiles.tileRows, tileCols: tiles.tileCols, panels, shards, now: Date.now() };
    await commitJob(deps, job, intake, { ...(opts.quota ? { quota: opts.quota } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
    return (await store.getJob(id))!;
  });
}
