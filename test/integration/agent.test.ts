import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { matmulReference, maxToleranceRatio } from '../../shared/matmul-reference';
import { downloadResult, makeDataDir, startTestCoordinator, submitMatmul, waitForJob, type TestCoordinator } from '../support/coordinator';
import { spawnCoordinator, type CoordinatorProcess } from '../support/coordinator-process';
import { spawnAgent, type AgentProcess } from '../support/agent-process';
import { randomMatrix } from '../support/matrices';
import { SimContributor } from '../support/sim-contributor';
import { freePort } from '../support/free-port';

let coord: TestCoordinator | undefined;
let proc: CoordinatorProcess | undefined;
const agents: AgentProcess[] = [];
const sims: SimContributor[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const a of agents.splice(0)) a.child.kill('SIGKILL');
  for (const s of sims.splice(0)) s.disconnect();
  proc?.child.kill('SIGKILL');
  proc = undefined;
  await coord?.dispose();
  coord = undefined;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

function problem(m: number, k: number, n: number, seed: number) {
  const a = { rows: m, cols: k, data: randomMatrix(m, k, seed) };
  const b = { rows: k, cols: n, data: randomMatrix(k, n, seed + 1) };
  return { a, b, ref: () => matmulReference(a.data, b.data, m, k, n) };
}

async function agent(url: string, extra: string[] = []): Promise<AgentProcess> {
  const dir = await makeDataDir();
  dirs.push(dir);
  const a = spawnAgent(['--server', url, '--token-file', join(dir, 'token'), '--summary-every', '3600', ...extra]);
  agents.push(a);
  await a.waitFor(/joined .* as contributor/);
  return a;
}

describe('headless agent (Dawn on SwiftShader)', () => {
  it('completes a matmul job with the same WGSL kernel, checked against the CPU reference', async () => {
    coord = await startTestCoordinator({ targetTiles: 6 });
    const a = await agent(coord.url);
    const p = problem(200, 96, 150, 3);
    const job = await submitMatmul(coord.url, p.a, p.b);
    const done = await waitForJob(coord.url, job.id, 120_000);
    expect(done.status).toBe('completed');
    expect(maxToleranceRatio((await downloadResult(coord.url, job.id)).data, p.ref(), 1e-4, 1e-4)).toBeLessThanOrEqual(1);
    expect(a.lines.some((l) => /GPU: .*swiftshader/i.test(l))).toBe(true);
    expect(a.lines.filter((l) => /shard \S+ job \S+ \d+ ms [\d.]+ GFLOPS accepted/.test(l)).length).toBeGreaterThanOrEqual(1);
    a.child.kill('SIGTERM');
    await a.exited;

    // --once: one shard (which may be a canary: they look like any shard), then exit 0.
    const q = problem(64, 32, 64, 9);
    await submitMatmul(coord.url, q.a, q.b);
    const once = await agent(coord.url, ['--once']);
    expect(await once.exited).toBe(0);
    expect(once.lines.filter((l) => /shard \S+ job \S+ .* accepted/.test(l)).length).toBe(1);
  }, 180_000);

  it('reconnects after the coordinator is killed and restarted, and the job completes', async () => {
    const dataDir = await makeDataDir();
    dirs.push(dataDir);
    const port = String(await freePort());
    proc = await spawnCoordinator(dataDir, { PORT: port, TESSERA_TARGET_TILES: '16' });
    const a = await agent(proc.url, ['--duty', '50']);
    const p = problem(256, 256, 256, 5);
    const job = await submitMatmul(proc.url, p.a, p.b);
    await waitForJob(proc.url, job.id, 120_000, (j) => j.progress.verified >= 1);
    proc.child.kill('SIGKILL');
    await proc.exited;
    proc = await spawnCoordinator(dataDir, { PORT: port, TESSERA_TARGET_TILES: '16' });
    const done = await waitForJob(proc.url, job.id, 150_000);
    expect(done.status).toBe('completed');
    expect(maxToleranceRatio((await downloadResult(proc.url, job.id)).data, p.ref(), 1e-4, 1e-4)).toBeLessThanOrEqual(1);
    expect(a.lines.filter((l) => /joined .* as contributor/.test(l)).length).toBeGreaterThanOrEqual(1);
  }, 240_000);

  it('hands its leases back at once on SIGTERM', async () => {
    coord = await startTestCoordinator({ targetTiles: 16, leaseBaseMs: 600_000, speculateAfterMs: 1e12, canaries: false });
    const a = await agent(coord.url);
    const p = problem(512, 1024, 512, 7);
    const job = await submitMatmul(coord.url, p.a, p.b);
    await a.waitFor(/shard \S+ job \S+ .* accepted/, 120_000);
    a.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    const atStop = await waitForJob(coord.url, job.id, 1, () => true);
    expect(atStop.progress.verified).toBeLessThan(atStop.progress.total); // it stopped mid-job, holding leases
    const helper = await new SimContributor(coord.url).connect();
    sims.push(helper);
    void helper.run().catch(() => undefined);
    const t0 = Date.now();
    const done = await waitForJob(coord.url, job.id, 60_000);
    expect(done.status).toBe('completed');
    expect(Date.now() - t0).toBeLessThan(60_000); // the 10-minute leases were not waited out
    expect(maxToleranceRatio((await downloadResult(coord.url, job.id)).data, p.ref(), 1e-4, 1e-4)).toBeLessThanOrEqual(1);
  }, 180_000);
});
