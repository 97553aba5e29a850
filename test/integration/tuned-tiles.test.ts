/** Contributors report their tuned kernels; new jobs are cut into tiles those kernels run efficiently. */
import { describe, expect, it } from 'vitest';
import type { KernelTuning } from '../../shared/matmul-configs';
import { matmulReference, maxToleranceRatio } from '../../shared/matmul-reference';
import { downloadResult, submitMatmul, waitForJob } from '../support/coordinator';
import { useCoordinatorHarness } from '../support/harness';
import { randomMatrix } from '../support/matrices';

const h = useCoordinatorHarness({ canaries: false, targetTiles: 32 });

/** A big GPU's tuning: its kernel only fills the device at 512×512 tiles. */
const bigGpu: KernelTuning = { configs: { small: 'tiled-vec4-32', medium: 'tiled-vec4-64', large: 'tiled-vec4-64' }, gflops: { small: 300, medium: 900, large: 2000 } };

describe('tiles cut to suit the contributors’ tuned kernels', () => {
  it('a job submitted while big GPUs are online gets 512-edge tiles, and is still computed right', async () => {
    await h.start({ tilesFollowKernels: true });
    const m = 1024;
    const a = randomMatrix(m, 64, 1);
    const b = randomMatrix(64, m, 2);
    const before = await submitMatmul(h.coord.url, { rows: m, cols: 64, data: a }, { rows: 64, cols: m, data: b });
    expect(before.tile.rows).toBe(128); // nobody online: 32 tiles of 128

    for (let i = 0; i < 3; i++) await h.spawn({ kind: 'honest' }, { kernels: bigGpu });
    const after = await submitMatmul(h.coord.url, { rows: m, cols: 64, data: a }, { rows: 64, cols: m, data: b });
    expect(after.tile).toEqual({ rows: 512, cols: 512 });
    expect(after.progress.total).toBe(4);
    for (const job of [before, after]) {
      await waitForJob(h.coord.url, job.id, 60_000);
      expect(maxToleranceRatio((await downloadResult(h.coord.url, job.id)).data, matmulReference(a, b, m, 64, m), 1e-5, 1e-5)).toBeLessThanOrEqual(1);
    }
  });

  it('is off when the operator says so (TESSERA_TILES_FOLLOW_KERNELS=off)', async () => {
    await h.start({ tilesFollowKernels: false });
    await h.spawn({ kind: 'honest' }, { kernels: bigGpu });
    const m = 1024;
    const job = await submitMatmul(h.coord.url, { rows: m, cols: 16, data: randomMatrix(m, 16, 3) }, { rows: 16, cols: m, data: randomMatrix(16, m, 4) });
    expect(job.tile.rows).toBe(128);
  });
});
