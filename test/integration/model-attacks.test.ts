/**
 * The model attacks of issue 18, each against a coordinator running as its
 * own process (as `npm start` runs it), so that a coordinator that hangs
 * fails the test by its time limit instead of hanging the test:
 *
 * 1. a 149-byte model whose Transpose perm [0, 7] made the FLOP count NaN and
 *    the shard-size loop endless;
 * 2. 20,000 MatMul nodes, which took 73 s of quadratic planning;
 * 3. 800 MatMuls on one 2048×2048 weight: 6.7 GFLOP, 9.4 s of recompute per
 *    checked sample;
 * 7. 80 MB of output per sample, more than a contributor can return;
 * 8. initializers whose dimensions ([10⁶, 10⁶], [−1, 3]) were allocated
 *    before they were checked (500 INTERNAL).
 *
 * Each must be a prompt 400 naming the limit or the tensor, with /healthz
 * answering all along and no upload left behind.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobView } from '../../shared/api';
import { MAX_RESULT_BYTES } from '../../shared/protocol';
import { authHeaders } from '../support/coordinator';
import { spawnCoordinator, type CoordinatorProcess } from '../support/coordinator-process';
import { npyOf, randomTensor, type HostTensor } from '../support/inference';
import { floatTensor, matmulChainModel, model, node, outerProductModel, rawTensor, value } from '../support/onnx-builder';

const { DataType } = onnxProto.onnx.TensorProto;

/** Each upload must be answered within this, whatever the model. */
const ANSWER_MS = 5_000;

let coord: CoordinatorProcess;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'tessera-model-attacks-'));
  coord = await spawnCoordinator(dataDir, { TESSERA_CANARIES: 'off', TESSERA_TILES_FOLLOW_KERNELS: 'off', TESSERA_TARGET_TILES: '2' });
}, 90_000);

afterAll(async () => {
  coord?.child.kill('SIGTERM');
  await coord?.exited;
  await rm(dataDir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: { id?: string; tile?: JobView['tile']; error?: { code: string; message: string } };
  ms: number;
}

/** POSTs an inference job, failing (not hanging) if the coordinator takes longer than `limitMs` to answer. */
async function submit(bytes: Uint8Array, files: Record<string, HostTensor>, limitMs = ANSWER_MS): Promise<Answer> {
  const form = new FormData();
  form.set('type', 'inference');
  form.set('model', new Blob([new Uint8Array(bytes)]), 'model.onnx');
  for (const [name, t] of Object.entries(files)) form.set(name, npyOf(t), `${name}.npy`);
  const t0 = performance.now();
  const res = await fetch(`${coord.url}/api/v1/jobs`, { method: 'POST', body: form, headers: authHeaders(coord.url), signal: AbortSignal.timeout(limitMs) });
  const body = (await res.json()) as Answer['body'];
  return { status: res.status, body, ms: performance.now() - t0 };
}

/** Polls /healthz until stopped; the worst latency seen. Stopping throws if an answer was not 200 or came later than ANSWER_MS. */
function probeHealth(): { stop: () => Promise<number> } {
  let running = true;
  let worst = 0;
  let failure: string | undefined;
  const loop = (async () => {
    while (running && !failure) {
      const t0 = performance.now();
      try {
        const res = await fetch(`${coord.url}/healthz`, { signal: AbortSignal.timeout(ANSWER_MS) });
        await res.arrayBuffer();
        if (res.status !== 200) failure = `/healthz answered ${res.status}`;
      } catch (err) {
        failure = `/healthz did not answer within ${ANSWER_MS} ms (${(err as Error).message})`;
      }
      worst = Math.max(worst, performance.now() - t0);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      if (failure) throw new Error(failure);
      return worst;
    },
  };
}

async function cancel(id: string): Promise<void> {
  const res = await fetch(`${coord.url}/api/v1/jobs/${id}`, { method: 'DELETE', headers: authHeaders(coord.url) });
  expect(res.status).toBe(200);
}

describe('hostile models at upload', () => {
  it('answers the Transpose perm [0, 7] model (the 149-byte hang) with a 400 naming the node, at once', async () => {
    const health = probeHealth();
    const bytes = model({ inputs: [value('x', ['N', 4])], outputs: [value('y', ['N', 4])], initializers: [], nodes: [node('Transpose', ['x'], ['y'], 't', { perm: [0, 7] })] });
    const r = await submit(bytes, { x: randomTensor([3, 4], 1) });
    expect(r.status).toBe(400);
    expect(r.body.error).toEqual({ code: 'INVALID_MODEL', message: expect.stringContaining("node t (Transpose): perm [0, 7] is not a permutation of the input's 2 axes") });
    expect(r.ms).toBeLessThan(ANSWER_MS);
    expect(await health.stop()).toBeLessThan(ANSWER_MS);
  });

  it('refuses 20,000 MatMul nodes by MAX_MODEL_NODES, and plans 10,000 (the limit) in linear time', async () => {
    const health = probeHealth();
    const over = await submit(matmulChainModel(20_000), { x: randomTensor([4, 4], 2) });
    expect(over.status).toBe(400);
    expect(over.body.error).toEqual({ code: 'MODEL_TOO_LARGE', message: expect.stringMatching(/the model has 20000 nodes; the network takes models of up to 10000 nodes \(MAX_MODEL_NODES\)/) });
    const limit = await submit(matmulChainModel(10_000), { x: randomTensor([4, 4], 3) });
    expect(limit.status, limit.body.error?.message).toBe(201);
    await cancel(limit.body.id!);
    const worst = await health.stop();
    console.log(`20,000 nodes refused in ${over.ms.toFixed(0)} ms, 10,000 accepted in ${limit.ms.toFixed(0)} ms; worst /healthz ${worst.toFixed(0)} ms`);
    expect(Math.max(over.ms, limit.ms, worst)).toBeLessThan(ANSWER_MS);
  }, 60_000);

  it('refuses 800 MatMuls on one 2048×2048 weight (6.7 GFLOP per sample) by MAX_FLOPS_PER_SAMPLE', async () => {
    const nodes = Array.from({ length: 800 }, (_, i) => node('MatMul', [i === 0 ? 'x' : `h${i - 1}`, 'w'], [i === 799 ? 'y' : `h${i}`], `mm${i}`));
    const bytes = model({ inputs: [value('x', ['batch', 2048])], outputs: [value('y', ['batch', 2048])], initializers: [floatTensor('w', [2048, 2048])], nodes });
    const r = await submit(bytes, { x: randomTensor([2, 2048], 4) }, 20_000);
    expect(r.status).toBe(400);
    expect(r.body.error?.code).toBe('MODEL_TOO_LARGE');
    expect(r.body.error?.message).toMatch(/one sample takes 6\.7\d GFLOP of work; the network takes up to 1 GFLOP per sample \(MAX_FLOPS_PER_SAMPLE\)/);
  }, 60_000);

  it('refuses a model whose one sample has 80 MB of outputs, and cuts shards so that each result fits one message', async () => {
    const big = await submit(outerProductModel(4472), { x: randomTensor([1, 4472, 1], 5) });
    expect(big.status).toBe(400);
    expect(big.body.error?.code).toBe('MODEL_TOO_LARGE');
    expect(big.body.error?.message).toMatch(/one sample's outputs take 76\.3 MiB; a contributor returns at most 16 MiB per shard \(MAX_OUTPUT_BYTES_PER_SAMPLE\)/);
    // 4 MiB per sample: 12 samples over 2 shards would be 24 MiB of result each; 4 samples a shard fit.
    const ok = await submit(outerProductModel(1024), { x: randomTensor([12, 1024, 1], 6) });
    expect(ok.status, ok.body.error?.message).toBe(201);
    expect(ok.body.tile).toEqual({ rows: 4, cols: 1024 * 1024 });
    expect(ok.body.tile!.rows * ok.body.tile!.cols * 4).toBeLessThanOrEqual(MAX_RESULT_BYTES);
    await cancel(ok.body.id!);
  });

  it('answers initializers with impossible or huge dimensions with a 400 naming the tensor, never a 500', async () => {
    const withWeight = (w: onnxProto.onnx.ITensorProto) =>
      model({ inputs: [value('x', ['batch', 4])], outputs: [value('y', ['batch', 4])], initializers: [w], nodes: [node('MatMul', ['x', 'w'], ['y'], 'mm')] });
    const cases: [onnxProto.onnx.ITensorProto, string, RegExp][] = [
      [rawTensor('w', [1e6, 1e6], { external: 'w.bin' }), 'MODEL_TOO_LARGE', /initializer: tensor "w" \[1000000, 1000000\] holds 1,000,000,000,000 values/],
      [rawTensor('w', [-1, 3], { external: 'w.bin' }), 'INVALID_MODEL', /initializer: tensor "w" has dimensions \[-1, 3\]; each must be a whole number ≥ 0/],
      [rawTensor('w', [1e6, 1e6], { dataType: DataType.DOUBLE }), 'MODEL_TOO_LARGE', /initializer: tensor "w" \[1000000, 1000000\] holds/],
    ];
    for (const [w, code, message] of cases) {
      const r = await submit(withWeight(w), { x: randomTensor([2, 4], 7) });
      expect(r.status, r.body.error?.message).toBe(400);
      expect(r.body.error?.code).toBe(code);
      expect(r.body.error?.message).toMatch(message);
    }
  });

  it('leaves no upload behind', async () => {
    expect(await readdir(join(dataDir, 'uploads'))).toEqual([]);
    expect((await fetch(`${coord.url}/healthz`)).status).toBe(200);
  });
});
