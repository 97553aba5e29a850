/**
 * Inference jobs over REST with simulated contributors (CPU reference
 * executor): sharding by batch and assembly in order, .npy and .npz results
 * against onnxruntime-node, verification catching wrong samples, clear 400s
 * that queue nothing, and model affinity.
 */
import { describe, expect, it } from 'vitest';
import type { JobList, JobView } from '../../shared/api';
import { authHeaders, getJob, waitForJob } from '../support/coordinator';
import { useCoordinatorHarness } from '../support/harness';
import { inferenceResult, onnxRuntime, postInference, randomTensor, worstRelativeError } from '../support/inference';
import { encoderBlockModel, floatTensor, mlpModel, model, node, twoOutputModel, value } from '../support/onnx-builder';

const h = useCoordinatorHarness({ canaries: false, targetTiles: 4 });

async function submit(bytes: Uint8Array, files: Parameters<typeof postInference>[2], fields: Record<string, string> = {}): Promise<JobView> {
  const res = await postInference(h.coord.url, bytes, files, fields);
  if (res.status !== 201) throw new Error(`submit: ${res.status} ${await res.text()}`);
  return (await res.json()) as JobView;
}

async function jobCount(): Promise<number> {
  const res = await fetch(`${h.coord.url}/api/v1/jobs`, { headers: authHeaders(h.coord.url) });
  return ((await res.json()) as JobList).jobs.length;
}

describe('inference jobs', () => {
  it('splits an MLP batch into shards, verifies each and returns the output as .npy matching onnxruntime-node', async () => {
    await h.start();
    await h.spawn({ kind: 'honest' }, { inference: true });
    await h.spawn({ kind: 'honest' }, { inference: true });
    const x = randomTensor([37, 16], 3);
    const job = await submit(mlpModel(), { x });
    expect(job).toMatchObject({ type: 'inference', verification: 'recompute', shape: { m: 37, n: 4 }, tile: { rows: 10, cols: 4 }, progress: { total: 4 } });
    expect(job.inference).toMatchObject({ inputs: [{ name: 'x', dims: [37, 16] }], outputs: [{ name: 'y', dims: [37, 4] }], samplesPerShard: 10 });
    expect(job.inference!.model.sha256).toMatch(/^[0-9a-f]{64}$/);
    const done = await waitForJob(h.coord.url, job.id, 30_000);
    expect(done).toMatchObject({ status: 'completed', progress: { verified: 4 } });
    const { filename, outputs } = await inferenceResult(h.coord.url, job.id);
    expect(filename).toBe(`${job.id}.npy`);
    const want = await onnxRuntime(mlpModel(), { x });
    expect(worstRelativeError(outputs['*']!, want.y!)).toBeLessThan(1e-5);
  });

  it('accepts the field "input" for a one-input model, and returns several outputs as .npz keyed by name', async () => {
    await h.start();
    await h.spawn({ kind: 'honest' }, { inference: true });
    const x = randomTensor([9, 12], 4);
    const job = await submit(twoOutputModel(), { input: x });
    expect((await waitForJob(h.coord.url, job.id, 30_000)).status).toBe('completed');
    const { filename, outputs } = await inferenceResult(h.coord.url, job.id);
    expect(filename).toBe(`${job.id}.npz`);
    const want = await onnxRuntime(twoOutputModel(), { x });
    expect(Object.keys(outputs).sort()).toEqual(['mean', 'probs']);
    expect(worstRelativeError(outputs.probs!, want.probs!)).toBeLessThan(1e-5);
    expect(worstRelativeError(outputs.mean!, want.mean!)).toBeLessThan(1e-5);
  });

  it('rejects results the coordinator recomputes differently, strikes the sender, and still completes with honest contributors', async () => {
    await h.start();
    const cheat = await h.spawn({ kind: 'noise', scale: 0.05 }, { inference: true });
    await h.spawn({ kind: 'honest' }, { inference: true });
    const x = randomTensor([12, 8, 16], 5);
    const job = await submit(encoderBlockModel(), { x });
    expect((await waitForJob(h.coord.url, job.id, 60_000)).status).toBe('completed');
    expect(cheat.stats.rejected).toBeGreaterThan(0);
    expect(cheat.stats.errors).toContain('VERIFICATION_FAILED');
    const { outputs } = await inferenceResult(h.coord.url, job.id);
    expect(worstRelativeError(outputs['*']!, (await onnxRuntime(encoderBlockModel(), { x })).y!)).toBeLessThan(1e-5);
  });

  it('with replication, two contributors must agree within tolerance before a shard is assembled', async () => {
    await h.start();
    const a = await h.spawn({ kind: 'honest' }, { inference: true });
    const b = await h.spawn({ kind: 'honest' }, { inference: true });
    const x = randomTensor([8, 16], 6);
    const job = await submit(mlpModel(), { x }, { verification: 'replication' });
    expect(job.verification).toBe('replication');
    expect((await waitForJob(h.coord.url, job.id, 30_000)).status).toBe('completed');
    expect(a.stats.pending + b.stats.pending).toBeGreaterThan(0);
    const { outputs } = await inferenceResult(h.coord.url, job.id);
    expect(worstRelativeError(outputs['*']!, (await onnxRuntime(mlpModel(), { x })).y!)).toBeLessThan(1e-5);
  });

  it('refuses, with a 400 naming what to fix, a model with unsupported operators and inputs that do not fit; nothing is queued', async () => {
    await h.start();
    const unsupported = model({
      inputs: [value('x', ['batch', 4])],
      outputs: [value('y', ['batch', 4])],
      initializers: [floatTensor('w', [4, 4])],
      nodes: [node('MatMul', ['x', 'w'], ['h'], 'fc'), node('Cos', ['h'], ['c'], 'cosine'), node('LeakyRelu', ['c'], ['y'], 'leaky')],
    });
    const cases: [Uint8Array, Parameters<typeof postInference>[2], number, RegExp][] = [
      [unsupported, { x: randomTensor([2, 4], 1) }, 400, /unsupported operator Cos \(node cosine\).*unsupported operator LeakyRelu \(node leaky\)/],
      [mlpModel(), { x: randomTensor([5, 15], 1) }, 400, /file "x" has shape \(5, 15\); the model's input x is \(batch, 16\)/],
      [mlpModel(), { x: randomTensor([5, 16, 1], 1) }, 400, /SHAPE_MISMATCH|shape \(5, 16, 1\)/],
      [mlpModel(), {}, 400, /missing file "x"/],
      [mlpModel(), { x: randomTensor([5, 16], 1), z: randomTensor([5, 16], 1) }, 400, /file "z" matches no input of the model/],
      [new TextEncoder().encode('not a model at all'), { x: randomTensor([5, 16], 1) }, 400, /not an ONNX protobuf|no graph/],
    ];
    for (const [bytes, files, status, message] of cases) {
      const res = await postInference(h.coord.url, bytes, files);
      const body = (await res.json()) as { error: { message: string } };
      expect(res.status, body.error.message).toBe(status);
      expect(body.error.message).toMatch(message);
    }
    const noModel = new FormData();
    noModel.set('type', 'inference');
    const res = await fetch(`${h.coord.url}/api/v1/jobs`, { method: 'POST', body: noModel, headers: authHeaders(h.coord.url) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/missing file "model"/);
    expect(await jobCount()).toBe(0);
  });

  it('gives a new job on a model first to the contributor that holds it; that contributor does not download it again', async () => {
    await h.start({ targetTiles: 2 });
    const holder = await h.spawn({ kind: 'honest' }, { inference: true, max: 2 });
    const first = await submit(mlpModel(), { x: randomTensor([6, 16], 7) });
    expect((await waitForJob(h.coord.url, first.id, 30_000)).status).toBe('completed');
    expect(holder.modelDownloads).toEqual([first.inference!.model.sha256]);

    // A newcomer connected before the second job: it would take half the shards, but the holder has the model.
    const newcomer = await h.spawn({ kind: 'honest' }, { inference: true, max: 2 });
    const second = await submit(mlpModel(), { x: randomTensor([6, 16], 8) });
    expect(second.inference!.model.sha256).toBe(first.inference!.model.sha256);
    expect((await waitForJob(h.coord.url, second.id, 30_000)).status).toBe('completed');
    expect(holder.inferenceLeases.filter((l) => l.jobId === second.id)).toHaveLength(2);
    expect(newcomer.inferenceLeases).toHaveLength(0);
    expect(holder.modelDownloads).toHaveLength(1);
    expect((await getJob(h.coord.url, second.id)).progress.verified).toBe(2);
  });

  it('lets holding the model decide the order, not who may work: with every holder busy, a contributor without it gets shards at once', async () => {
    // An affinity window far longer than the test: only a busy holder can explain the newcomer's shards.
    await h.start({ targetTiles: 4, modelAffinityMs: 600_000 });
    const probe = await submit(mlpModel(), { x: randomTensor([40, 16], 9) });
    await fetch(`${h.coord.url}/api/v1/jobs/${probe.id}`, { method: 'DELETE', headers: authHeaders(h.coord.url) });
    // It holds the model, takes a shard and sits on it.
    const holder = await h.spawn({ kind: 'silent' }, { inference: true, models: [probe.inference!.model.sha256] });
    const newcomer = await h.spawn({ kind: 'honest' }, { inference: true });
    const job = await submit(mlpModel(), { x: randomTensor([40, 16], 10) });
    const end = Date.now() + 20_000;
    while (newcomer.inferenceLeases.filter((l) => l.jobId === job.id).length < job.progress.total - holder.inferenceLeases.length && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(holder.inferenceLeases.length).toBeGreaterThan(0);
    expect(newcomer.inferenceLeases.filter((l) => l.jobId === job.id).length).toBe(job.progress.total - holder.inferenceLeases.length);
  });
});
