import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { matmulReference, maxToleranceRatio } from '../../shared/matmul-reference';
import { downloadResult, getJob, makeDataDir, submitMatmul, waitForJob } from '../support/coordinator';
import { spawnCoordinator, type CoordinatorProcess } from '../support/coordinator-process';
import { randomMatrix } from '../support/matrices';
import { SimContributor } from '../support/sim-contributor';

let proc: CoordinatorProcess | undefined;
let dataDir: string | undefined;
const sims: SimContributor[] = [];

afterEach(async () => {
  for (const s of sims) s.disconnect();
  proc?.child.kill('SIGKILL');
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('coordinator crash', () => {
  it('resumes a job after SIGKILL from its verified tiles and completes it correctly', async () => {
    dataDir = await makeDataDir();
    proc = await spawnCoordinator(dataDir, { TESSERA_TARGET_TILES: '16' });
    const [m, k, n] = [256, 48, 256];
    const a = randomMatrix(m, k, 41);
    const b = randomMatrix(k, n, 42);
    const job = await submitMatmul(proc.url, { rows: m, cols: k, data: a }, { rows: k, cols: n, data: b });
    const waiting = await submitMatmul(proc.url, { rows: 8, cols: 8, data: randomMatrix(8, 8, 1) }, { rows: 8, cols: 8, data: randomMatrix(8, 8, 2) });
    const slow = await new SimContributor(proc.url, { kind: 'honest', delayMs: 150 }).connect();
    sims.push(slow);
    void slow.run().catch(() => undefined);
    const before = await waitForJob(proc.url, job.id, 30_000, (j) => j.progress.verified >= 3);

    proc.child.kill('SIGKILL');
    await proc.exited;
    slow.disconnect();
    proc = await spawnCoordinator(dataDir, { TESSERA_TARGET_TILES: '16' });

    const after = await getJob(proc.url, job.id);
    expect(after.progress.total).toBe(before.progress.total);
    expect(after.progress.verified).toBeGreaterThanOrEqual(before.progress.verified);
    expect(['queued', 'running', 'completed']).toContain((await getJob(proc.url, waiting.id)).status);

    for (let i = 0; i < 2; i++) {
      const s = await new SimContributor(proc.url).connect();
      sims.push(s);
      void s.run().catch(() => undefined);
    }
    expect((await waitForJob(proc.url, job.id, 30_000)).status).toBe('completed');
    expect((await waitForJob(proc.url, waiting.id, 30_000)).status).toBe('completed');
    const result = await downloadResult(proc.url, job.id);
    expect(maxToleranceRatio(result.data, matmulReference(a, b, m, k, n), 1e-5, 1e-5)).toBeLessThanOrEqual(1);
  });
});
