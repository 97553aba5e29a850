/**
 * The matmul verifier end to end on real panels and the real worker pool: a
 * tile whose rounding the √k model cannot explain (all-equal data, k = 4096)
 * is accepted, and the rows the check recomputed are the exact ones in the
 * tile that gets assembled; a wrong element is rejected with the category only.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalBlobStore } from '../../server/storage/blob-store';
import type { JobRecord, PanelRecord } from '../../server/store/store';
import { checkMatmulResult } from '../../server/verify/matmul-verifier';
import { PanelCache } from '../../server/verify/panel-cache';
import type { LiveLease } from '../../server/verify/verdict';
import { WorkerPool } from '../../server/workers/pool';
import { classMatrices, productRows, SUMMATION_ORDERS } from '../support/float32-orders';

const [rows, k, cols] = [4, 4096, 32];
let dir: string;
let panels: PanelCache;
let lease: LiveLease;
const pool = new WorkerPool({ threads: 1, taskTimeoutMs: 20_000 });
const { a, b } = classMatrices('constant', rows, k, cols, 0); // A = 0.1, B = 1

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-verifier-'));
  const blobs = new LocalBlobStore(dir);
  await blobs.init();
  const panel = async (side: 'a' | 'b', x: Float32Array): Promise<PanelRecord> => ({ side, idx: 0, ...(await blobs.put(new Uint8Array(x.buffer))) });
  panels = new PanelCache(blobs, 1 << 24);
  // Only what checkMatmulResult reads: the tile's place and shape, k, and the panels.
  const job = { id: 'job', k } as JobRecord;
  lease = { rows, cols, row0: 0, col0: 0, job, a: await panel('a', a), b: await panel('b', b) } as LiveLease;
});

afterAll(async () => {
  await pool.close();
  await rm(dir, { recursive: true, force: true });
});

describe('checkMatmulResult', () => {
  it('accepts a sequential float32 sum of all-equal data and assembles the exact rows it recomputed', async () => {
    const sent = productRows(SUMMATION_ORDERS[0]!, a, b, [0, 1, 2, 3], k, cols);
    const exact = Math.fround(4096 * Math.fround(0.1));
    expect(sent[0]).not.toBe(exact); // float32 rounding errs here, all in one direction
    const tile = sent.slice();
    const verdict = await checkMatmulResult(panels, pool, lease, tile);
    expect(verdict).toEqual({ kind: 'accept' });
    // Each row's error is ~10× the √k model's, so a row escapes recomputation in all 8 rounds with
    // probability ≈ 4·10⁻⁴; the rows recomputed hold A·B exactly, the others are as sent.
    const recomputed = [0, 1, 2, 3].filter((i) => tile.subarray(i * cols, (i + 1) * cols).every((x) => x === exact));
    for (let i = 0; i < rows; i++) if (!recomputed.includes(i)) expect(tile.subarray(i * cols, (i + 1) * cols)).toEqual(sent.subarray(i * cols, (i + 1) * cols));
    expect(recomputed.length).toBeGreaterThan(0);
  });

  it('rejects a tile with one element off by 10⁻⁴ of its row magnitude, saying only the category', async () => {
    const tile = productRows(SUMMATION_ORDERS[0]!, a, b, [0, 1, 2, 3], k, cols);
    tile[37]! += 1e-4 * 409.6 * Math.sqrt(cols); // M_i = Σ_p 0.1·‖b_p‖ = 409.6·√cols
    const verdict = await checkMatmulResult(panels, pool, lease, tile);
    expect(verdict).toMatchObject({ kind: 'reject', code: 'VERIFICATION_FAILED' });
  });
});
