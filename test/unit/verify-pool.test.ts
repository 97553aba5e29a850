/**
 * The verification tasks give the same answers on a worker thread as in
 * place, the pool's time limit counts only a task's own run (not its wait for
 * a thread), a task past its limit is stopped without taking the pool down,
 * and shared-memory panels reach the threads.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { matmulReference } from '../../shared/matmul-reference';
import { toShared } from '../../server/verify/panel-cache';
import { TaskUnavailable, WorkerPool } from '../../server/workers/pool';
import { runTask, type TaskInput } from '../../server/workers/tasks';
import { identityChainModel, modelPackage, overflowingModel } from '../support/heavy-models';
import { randomMatrix } from '../support/matrices';

/** Every task goes to a thread (inlineBelowFlops 0), two threads. */
const pool = new WorkerPool({ threads: 2, taskTimeoutMs: 20_000, inlineBelowFlops: 0 });
afterAll(() => pool.close());

const [m, k, n] = [40, 300, 24];
const a = randomMatrix(m, k, 1);
const b = randomMatrix(k, n, 2);
const c = matmulReference(a, b, m, k, n);
const tile = (change?: (c: Float32Array) => void): TaskInput<'matmulTile'> => {
  const copy = c.slice();
  change?.(copy);
  return { a, b, c: copy, rows: m, k, cols: n, rounds: 3 };
};

describe('verification tasks on the pool and in place', () => {
  it('matmul tiles: the same verdict for a right tile, a wrong element, a NaN and an overflow', async () => {
    const cases: TaskInput<'matmulTile'>[] = [
      tile(),
      tile((x) => (x[100]! += 1)),
      tile((x) => (x[7 * n + 3] = NaN)),
    ];
    const kinds = [];
    for (const input of cases) {
      const [here, there] = [runTask('matmulTile', input), await pool.run('matmulTile', input, 1)];
      expect(there.kind).toBe(here.kind);
      kinds.push(here.kind);
      if (here.kind === 'wrong') expect(there).toEqual(here);
    }
    expect(kinds).toEqual(['ok', 'mismatch', 'wrong']);
    // 3·10³⁸ × ones overflows float32 in every element: honest devices return Infinity there.
    const big = new Float32Array(4 * 8).fill(3e38);
    const ones = new Float32Array(8 * 4).fill(1);
    const overflow: TaskInput<'matmulTile'> = { a: big, b: ones, c: new Float32Array(16).fill(Infinity), rows: 4, k: 8, cols: 4, rounds: 3 };
    const here = runTask('matmulTile', overflow);
    expect(here).toMatchObject({ kind: 'overflow', count: 16, tileBound: Math.fround(3e38) * 8 });
    expect(await pool.run('matmulTile', overflow, 1)).toMatchObject({ kind: 'overflow', count: 16, tileBound: here.kind === 'overflow' ? here.tileBound : 0 });
  });

  it('inference shards: the same recompute verdict, with the model decoded in the thread from shared memory', async () => {
    const pkg = toShared(new Float32Array(padded(modelPackage(overflowingModel())).buffer));
    const bytes = new Uint8Array(pkg.buffer, pkg.byteOffset, pkg.byteLength);
    // Sample 0 sums past 1.2 (y[0] overflows in the reference too), sample 1 is all zeros (y = 0).
    const input = Float32Array.from([1, 1, 1, 1, 0, 0, 0, 0]);
    const honest = Float32Array.from([Infinity, 4, 4, 4, 0, 0, 0, 0]);
    const spec = { inputs: [{ name: 'x', dims: [2, 4] }], outputs: [{ name: 'y', dims: [2, 4] }], tolerance: { abs: 1e-4, rel: 1e-3 } };
    const task = (t: Float32Array, check: number[]): TaskInput<'inferenceShard'> => ({ model: { sha256: 'overflowing', bytes }, ...spec, input, tile: t, rows: 2, width: 4, check });
    const nanWhereFinite = honest.slice();
    nanWhereFinite[5] = NaN;
    const off = honest.slice();
    off[6] = 0.5;
    for (const [t, check, want] of [
      [honest, [1], { kind: 'ok', checked: [0, 1] }],
      [nanWhereFinite, [], { kind: 'mismatch', row: 1, output: 'y', index: 1 }],
      [off, [1], { kind: 'mismatch', row: 1, output: 'y', index: 2, got: 0.5, want: 0 }],
    ] as const) {
      const here = runTask('inferenceShard', task(t, [...check]));
      expect(here).toMatchObject(want);
      expect(await pool.run('inferenceShard', task(t, [...check]), 1)).toEqual(here);
    }
  });

  it('replica comparison and canaries: the same answers', async () => {
    const near = c.map((v) => v * (1 + 1e-7));
    const far = c.slice();
    far[3]! += 1;
    for (const input of [
      { x: c, y: near, k },
      { x: c, y: far, k },
    ]) {
      expect(await pool.run('matmulReplicas', input, 1)).toBe(runTask('matmulReplicas', input));
    }
    const tol = new Float32Array(c.length).fill(1e-3);
    for (const t of [c, far]) {
      const input = { c: t, want: c, tolerance: tol };
      expect(await pool.run('canary', input, 1)).toBe(runTask('canary', input));
    }
    expect(runTask('canary', { c: far, want: c, tolerance: tol })).toBe(3);
    const outputs = [{ name: 'y', dims: [2, 4] }];
    const x = Float32Array.from([Infinity, 4, 4, 4, 0, 0, 0, 0]);
    for (const y of [Float32Array.from([NaN, 4, 4, 4, 0, 0, 0, 0]), Float32Array.from([1e30, 4, 4, 4, 0, 0, 0, 0])]) {
      const input = { outputs, tolerance: { abs: 1e-4, rel: 1e-3 }, x, y, rows: 2, width: 4 };
      expect(await pool.run('inferenceReplicas', input, 1)).toBe(runTask('inferenceReplicas', input));
    }
    // Non-finite agrees only with non-finite at the same place.
    expect(runTask('inferenceReplicas', { outputs, tolerance: { abs: 1e-4, rel: 1e-3 }, x, y: Float32Array.from([NaN, 4, 4, 4, 0, 0, 0, 0]), rows: 2, width: 4 })).toBe(true);
    expect(runTask('inferenceReplicas', { outputs, tolerance: { abs: 1e-4, rel: 1e-3 }, x, y: Float32Array.from([1e30, 4, 4, 4, 0, 0, 0, 0]), rows: 2, width: 4 })).toBe(false);
  });
});

describe('the pool', () => {
  const width = 512;
  const heavy = toShared(new Float32Array(padded(modelPackage(identityChainModel(60, width))).buffer));
  const heavyTask = (samples: number): TaskInput<'inferenceShard'> => {
    const input = randomMatrix(samples, width, 9);
    return {
      model: { sha256: 'identity-chain', bytes: new Uint8Array(heavy.buffer) },
      inputs: [{ name: 'x', dims: [samples, width] }],
      outputs: [{ name: 'y', dims: [samples, width] }],
      tolerance: { abs: 1e-4, rel: 1e-3 },
      input,
      tile: input, // the identity chain's output is its input
      rows: samples,
      width,
      check: Array.from({ length: samples }, (_, i) => i),
    };
  };

  it('stops a task past its time limit, answers TaskUnavailable, and keeps serving', async () => {
    const strict = new WorkerPool({ threads: 1, taskTimeoutMs: 300, inlineBelowFlops: 0 });
    try {
      await strict.run('canary', { c, want: c, tolerance: c }, 1); // the thread is up: its start-up is not timed
      const t0 = performance.now();
      const err = await strict.run('inferenceShard', heavyTask(40), 1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TaskUnavailable);
      expect((err as TaskUnavailable).reason).toBe('timeout');
      expect(performance.now() - t0).toBeLessThan(3_000); // 40 samples take far longer than that
      expect(await strict.run('inferenceShard', heavyTask(1), 1)).toMatchObject({ kind: 'ok', checked: [0] });
    } finally {
      await strict.close();
    }
  });

  it("counts a task's time from its start, not from its wait for a thread", async () => {
    // One task's time on a pool thread, then a limit of four times that: seven queued on one thread make the last wait longer.
    const probe = new WorkerPool({ threads: 1, taskTimeoutMs: 20_000, inlineBelowFlops: 0 });
    let each: number;
    try {
      await probe.run('inferenceShard', heavyTask(4), 1); // the thread is up and has decoded the model
      const t0 = performance.now();
      await probe.run('inferenceShard', heavyTask(4), 1);
      each = performance.now() - t0;
    } finally {
      await probe.close();
    }
    const one = new WorkerPool({ threads: 1, taskTimeoutMs: 4 * each, inlineBelowFlops: 0 });
    try {
      await one.run('inferenceShard', heavyTask(4), 1);
      const t1 = performance.now();
      const results = await Promise.all(Array.from({ length: 7 }, () => one.run('inferenceShard', heavyTask(4), 1)));
      expect(results.every((r) => r.kind === 'ok')).toBe(true);
      expect(performance.now() - t1).toBeGreaterThan(4 * each);
    } finally {
      await one.close();
    }
  });

  it('refuses a task while the bytes copied for waiting and running ones would pass the limit, and takes it once they are done', async () => {
    // heavyTask(4) copies its input and its tile: 2 × 4 × 512 float32, 16 KiB.
    const small = new WorkerPool({ threads: 1, taskTimeoutMs: 20_000, inlineBelowFlops: 0, maxPendingBytes: 20_000 });
    try {
      const first = small.run('inferenceShard', heavyTask(4), 1);
      await expect(small.run('inferenceShard', heavyTask(4), 1)).rejects.toMatchObject({ reason: 'overloaded' });
      expect((await first).kind).toBe('ok');
      expect((await small.run('inferenceShard', heavyTask(4), 1)).kind).toBe('ok');
    } finally {
      await small.close();
    }
  });

  it('refuses tasks once closed', async () => {
    const p = new WorkerPool({ threads: 1, taskTimeoutMs: 1_000, inlineBelowFlops: 0 });
    await p.close();
    await expect(p.run('canary', { c, want: c, tolerance: c }, 1)).rejects.toMatchObject({ reason: 'closed' });
  });
});

/** Blobs are stored in whole float32 words. */
function padded(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(bytes);
  return out;
}
