import { describe, expect, it } from 'vitest';
import { checkProduct, rowsToCsv, seededMatrix, type BenchRow } from '../../client/bench/runner';
import { configRunsOn, MATMUL_CONFIGS, matmulConfig, sizeClassOf, type KernelTuning } from '../../shared/matmul-configs';
import { HelloSchema } from '../../shared/protocol-schemas';
import { planMatmulTiles } from '../../shared/tiling';
import { leaseDurationMs } from '../../server/scheduler/lease-policy';
import { efficientEdge, TuningCensus } from '../../server/scheduler/tuning-census';
import { matmulReference } from '../../shared/matmul-reference';
import type { ShardWork } from '../../server/store/store';

const tuning = (small: number, medium: number, large: number): KernelTuning => ({
  configs: { small: 'register-r8', medium: 'register-r8', large: 'tiled-vec4-64' },
  gflops: { small, medium, large },
});

describe('matmul configurations', () => {
  it('have unique ids, blocks that tile C, and run only where the device allows', () => {
    expect(new Set(MATMUL_CONFIGS.map((c) => c.id)).size).toBe(MATMUL_CONFIGS.length);
    const small = { subgroups: false, maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 };
    expect(configRunsOn(matmulConfig('subgroup-r8'), small)).toBe(false);
    expect(configRunsOn(matmulConfig('tiled-vec4-64'), small)).toBe(false); // 32 KiB of workgroup memory
    expect(configRunsOn(matmulConfig('register-r8'), small)).toBe(true);
    expect(() => matmulConfig('nope')).toThrow(/unknown matmul configuration "nope"/);
  });

  it('sorts tiles into size classes by their longer side', () => {
    expect(sizeClassOf(64, 128)).toBe('small');
    expect(sizeClassOf(200, 256)).toBe('medium');
    expect(sizeClassOf(512, 17)).toBe('large');
  });
});

describe('contributor tuning at the coordinator', () => {
  it('hello accepts a tuning of known configurations and refuses unknown ones', () => {
    const base = { protocol: 1, agent: { kind: 'page' }, adapter: {}, limits: { maxStorageBufferBindingSize: 1 << 27, maxBufferSize: 1 << 28 } };
    expect(HelloSchema.safeParse({ ...base, kernels: tuning(1, 2, 3) }).success).toBe(true);
    const bad = HelloSchema.safeParse({ ...base, kernels: { ...tuning(1, 2, 3), configs: { small: 'rm -rf', medium: 'register-r8', large: 'register-r8' } } });
    expect(bad.success).toBe(false);
    expect(HelloSchema.safeParse({ ...base, kernels: tuning(0, 2, 3) }).success).toBe(false);
  });

  it('the efficient edge is the smallest size class within 80% of the kernel’s best', () => {
    expect(efficientEdge(tuning(10, 10, 10))).toBe(128);
    expect(efficientEdge(tuning(2, 9, 10))).toBe(256);
    expect(efficientEdge(tuning(2, 5, 10))).toBe(512);
  });

  it('the census takes the median online contributor and forgets those who leave', () => {
    const census = new TuningCensus();
    expect(census.preferredMinEdge()).toBeUndefined();
    census.join('a', tuning(2, 5, 10)); // 512
    census.join('b', tuning(2, 9, 10)); // 256
    census.join('c', tuning(10, 10, 10)); // 128
    expect(census.preferredMinEdge()).toBe(256);
    census.leave('c');
    census.leave('b');
    expect(census.preferredMinEdge()).toBe(512);
  });

  it('the planner stops shrinking tiles at the preferred edge', () => {
    const d = { m: 1024, k: 1024, n: 1024 };
    expect(planMatmulTiles(d, { targetTiles: 32 }).tileRows).toBe(128);
    expect(planMatmulTiles(d, { targetTiles: 32, minEdge: 256 }).tileRows).toBe(256);
    expect(planMatmulTiles(d, { targetTiles: 32, minEdge: 64 }).tileRows).toBe(128);
  });

  it('lease deadlines follow the tuned speed for the tile’s size class', () => {
    const work = { rows: 512, cols: 512, k: 4096, a: { bytes: 0 }, b: { bytes: 0 } } as unknown as ShardWork;
    const policy = { baseMs: 0, assumedFlopsPerSecond: 5e9, assumedBytesPerSecond: 1e12 };
    const fastLarge = leaseDurationMs(policy, work, { reportedGflops: 1, tunedGflops: tuning(1, 1, 100).gflops });
    const slow = leaseDurationMs(policy, work, { reportedGflops: 1 });
    expect(fastLarge * 90).toBeLessThan(slow);
  });
});

describe('benchmark runner checks', () => {
  it('passes a correct product and fails one wrong element', () => {
    const [m, k, n] = [13, 7, 11];
    const a = seededMatrix(m * k, 1);
    const b = seededMatrix(k * n, 2);
    const c = matmulReference(a, b, m, k, n);
    expect(checkProduct(c, a, b, { m, k, n })).toMatchObject({ ok: true, method: 'full', checked: m * n });
    c[5] = c[5]! + 0.01;
    expect(checkProduct(c, a, b, { m, k, n }).ok).toBe(false);
    c[5] = Number.NaN;
    expect(checkProduct(c, a, b, { m, k, n }).worstRatio).toBe(Infinity);
  });

  it('samples large products, always including the corners', () => {
    const [m, k, n] = [512, 512, 512];
    const a = seededMatrix(m * k, 3);
    const b = seededMatrix(k * n, 4);
    const c = new Float32Array(m * n);
    const r = checkProduct(c, a, b, { m, k, n });
    expect(r.method).toBe('sampled');
    expect(r.checked).toBe(1024);
    expect(r.ok).toBe(false);
  });

  it('writes CSV with quoting', () => {
    const row: BenchRow = { subject: 'custom', label: 'x', group: 'custom', m: 1, k: 2, n: 3, error: 'line 3: "bad", really' };
    const csv = rowsToCsv([row]).trim().split('\n');
    expect(csv[1]).toContain('"line 3: ""bad"", really"');
  });
});
