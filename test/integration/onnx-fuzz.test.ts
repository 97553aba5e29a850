/**
 * Grammar-based ONNX fuzzing of the upload path (issue 18): thousands of
 * models from test/support/onnx-grammar.ts — valid graphs of the supported
 * operators, then mutated attributes, dimensions, data types, wiring,
 * external data and bytes — each uploaded with matching float32 .npy inputs
 * to one coordinator running as its own process. Every upload must be
 * answered within ANSWER_MS with a 201 or a 4xx (never a 5xx), /healthz must
 * answer throughout, every accepted job must be one contributors can run and
 * return (checked against its spec and, where cheap, by running the CPU
 * reference on the whole batch and on each sample alone: shards and their
 * checks must agree), and no upload may be left on disk.
 *
 * Replay: TESSERA_FUZZ_SEED=<seed> TESSERA_FUZZ_ONLY=<index,...> runs just
 * those cases; TESSERA_FUZZ_MODELS changes the count (default 5,000).
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobView } from '../../shared/api';
import { MAX_RESULT_BYTES } from '../../shared/protocol';
import { loadModel } from '../../server/inference/onnx-model';
import { runReference, type Tensor } from '../../server/inference/reference-executor';
import { authHeaders } from '../support/coordinator';
import { spawnCoordinator, type CoordinatorProcess } from '../support/coordinator-process';
import { npyOf } from '../support/inference';
import { fuzzCase, type FuzzCase } from '../support/onnx-grammar';

const SEED = Number(process.env.TESSERA_FUZZ_SEED ?? 18);
const COUNT = Number(process.env.TESSERA_FUZZ_MODELS ?? 5_000);
const ONLY = process.env.TESSERA_FUZZ_ONLY?.split(',').map(Number);
const CONCURRENCY = 4;
/** Each upload must be answered within this; so must /healthz, all the time. */
const ANSWER_MS = 5_000;
/** Accepted models are run on the CPU reference when the batch costs less than this. */
const REFERENCE_FLOPS = 2e7;

let coord: CoordinatorProcess;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'tessera-onnx-fuzz-'));
  // The local key with limits that let thousands of jobs through (each accepted one is cancelled at once).
  coord = await spawnCoordinator(dataDir, {
    TESSERA_CANARIES: 'off',
    TESSERA_TILES_FOLLOW_KERNELS: 'off',
    TESSERA_KEY_MAX_JOBS: '1000000',
    TESSERA_KEY_REQUESTS_PER_MINUTE: '10000000',
    TESSERA_KEY_MAX_STORED_BYTES: String(2 ** 50),
    TESSERA_RATE_LIMIT_PER_SECOND: '1000000',
    TESSERA_RATE_LIMIT_BURST: '1000000',
    TESSERA_MAX_CONCURRENT_UPLOADS: '64',
    TESSERA_KEY_MAX_CONCURRENT_UPLOADS: '64',
    TESSERA_LOG_LEVEL: 'info',
  });
}, 90_000);

afterAll(async () => {
  coord?.child.kill('SIGTERM');
  await coord?.exited;
  await rm(dataDir, { recursive: true, force: true });
});

const replay = (c: Pick<FuzzCase, 'index'>) => `TESSERA_FUZZ_SEED=${SEED} TESSERA_FUZZ_ONLY=${c.index}`;

const sameValues = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]) || (Number.isNaN(v) && Number.isNaN(b[i]!)));

/** Why an accepted job is not one contributors can run, return and have checked; undefined when it is. */
function invalidJob(c: FuzzCase, job: JobView): string | undefined {
  const spec = job.inference;
  if (!spec) return 'no inference section';
  if (job.status !== 'queued') return `status ${job.status}`;
  if (job.shape.m !== c.batch) return `batch ${job.shape.m}, sent ${c.batch}`;
  const rows = spec.samplesPerShard;
  if (!Number.isSafeInteger(rows) || rows < 1 || rows > c.batch || job.tile.rows !== rows) return `samplesPerShard ${rows}, tile ${job.tile.rows}`;
  if (job.progress.total !== Math.ceil(c.batch / rows)) return `${job.progress.total} shards for ${c.batch} samples of ${rows}`;
  const width = spec.outputs.reduce((s, o) => s + o.dims.slice(1).reduce((a, b) => a * b, 1), 0);
  if (job.tile.cols !== width || width < 1) return `tile width ${job.tile.cols}, outputs ${width}`;
  if (rows * width * 4 > MAX_RESULT_BYTES) return `a shard's result takes ${rows * width * 4} bytes, over MAX_RESULT_BYTES`;
  if (!Number.isFinite(spec.gflopPerSample) || spec.gflopPerSample < 0) return `gflopPerSample ${spec.gflopPerSample}`;
  if (spec.outputs.some((o) => o.dims[0] !== c.batch)) return 'an output without the batch first';
  return undefined;
}

/**
 * Runs the CPU reference on the whole batch and on each sample alone: what a
 * contributor computes for a shard must be what the coordinator recomputes
 * per sample, or honest shards would fail their check.
 */
function shardsDisagree(c: FuzzCase, job: JobView): string | undefined {
  const graph = loadModel(c.bytes);
  const feeds: Record<string, Tensor> = {};
  for (const v of graph.inputs) feeds[v.name] = c.files[v.name] ?? c.files.input!;
  const whole = runReference(graph, feeds);
  for (const o of job.inference!.outputs) {
    if (whole[o.name]?.dims.join() !== o.dims.join()) return `output ${o.name} has shape [${whole[o.name]?.dims}], the job says [${o.dims}]`;
  }
  for (let s = 0; s < c.batch; s++) {
    const one: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(feeds)) {
      const per = t.data.length / c.batch;
      one[k] = { dims: [1, ...t.dims.slice(1)], data: t.data.slice(s * per, (s + 1) * per) };
    }
    const alone = runReference(graph, one);
    for (const o of job.inference!.outputs) {
      const w = whole[o.name]!.data;
      const per = w.length / c.batch;
      if (!sameValues(w.slice(s * per, (s + 1) * per), alone[o.name]!.data)) return `sample ${s} of output ${o.name} differs when computed alone`;
    }
  }
  return undefined;
}

describe('ONNX upload fuzzing', () => {
  it(`answers ${ONLY ? ONLY.length : COUNT} generated and mutated models with 201 or 4xx in time, keeps /healthz answering, and accepts only runnable jobs`, async () => {
    const indices = ONLY ?? Array.from({ length: COUNT }, (_, i) => i);
    const outcomes = new Map<string, number>();
    const failures: string[] = [];
    let referenceChecks = 0;
    const slowest: { ms: number; what: string }[] = [];
    const started = performance.now();

    // /healthz, polled all along: any failure or a latency over ANSWER_MS fails the run.
    let probing = true;
    let worstHealthMs = 0;
    let probes = 0;
    const prober = (async () => {
      while (probing) {
        const t0 = performance.now();
        try {
          const res = await fetch(`${coord.url}/healthz`, { signal: AbortSignal.timeout(ANSWER_MS) });
          await res.arrayBuffer();
          if (res.status !== 200) failures.push(`/healthz answered ${res.status}`);
        } catch (err) {
          failures.push(`/healthz did not answer within ${ANSWER_MS} ms (${(err as Error).message})`);
        }
        worstHealthMs = Math.max(worstHealthMs, performance.now() - t0);
        probes++;
        await new Promise((r) => setTimeout(r, 25));
      }
    })();

    const one = async (index: number) => {
      let c: FuzzCase;
      try {
        c = fuzzCase(SEED, index);
      } catch (err) {
        failures.push(`case ${index}: the generator threw ${(err as Error).message} (${replay({ index })})`);
        return;
      }
      const form = new FormData();
      form.set('type', 'inference');
      form.set('model', new Blob([new Uint8Array(c.bytes)]), 'model.onnx');
      for (const [name, t] of Object.entries(c.files)) form.set(name, npyOf(t), `${name}.npy`);
      const t0 = performance.now();
      let status: number;
      let body: JobView & { error?: { code: string; message: string } };
      try {
        const res = await fetch(`${coord.url}/api/v1/jobs`, { method: 'POST', body: form, headers: authHeaders(coord.url), signal: AbortSignal.timeout(ANSWER_MS) });
        status = res.status;
        body = (await res.json()) as typeof body;
      } catch (err) {
        failures.push(`case ${index}: no answer within ${ANSWER_MS} ms (${(err as Error).message}); ${c.story.join(' | ').slice(0, 500)} (${replay(c)})`);
        return;
      }
      const ms = performance.now() - t0;
      slowest.push({ ms, what: `case ${index} (${status}): ${c.story.slice(0, 2).join(' | ').slice(0, 120)}` });
      slowest.sort((a, b) => b.ms - a.ms).splice(3);
      const key = status === 201 ? '201 accepted' : `${status} ${body.error?.code ?? '?'}`;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      const where = () => `${c.story.join(' | ').slice(0, 500)} (${replay(c)})`;
      if (status >= 500 || (status !== 201 && (status < 400 || !body.error?.code))) {
        failures.push(`case ${index}: ${status} ${JSON.stringify(body).slice(0, 300)} after ${ms.toFixed(0)} ms; ${where()}`);
        return;
      }
      if (body.error && body.error.message.length > 2_000) failures.push(`case ${index}: a ${body.error.message.length}-character message; ${where()}`);
      if (status !== 201) return;
      const invalid = invalidJob(c, body);
      if (invalid) failures.push(`case ${index}: accepted an invalid job: ${invalid}; ${where()}`);
      else if (body.inference!.gflopPerSample * 1e9 * c.batch < REFERENCE_FLOPS) {
        referenceChecks++;
        try {
          const disagree = shardsDisagree(c, body);
          if (disagree) failures.push(`case ${index}: accepted a job whose shards would fail their checks: ${disagree}; ${where()}`);
        } catch (err) {
          failures.push(`case ${index}: accepted a job the CPU reference cannot run: ${(err as Error).message}; ${where()}`);
        }
      }
      const del = await fetch(`${coord.url}/api/v1/jobs/${body.id}`, { method: 'DELETE', headers: authHeaders(coord.url), signal: AbortSignal.timeout(ANSWER_MS) });
      await del.arrayBuffer();
      if (del.status !== 200) failures.push(`case ${index}: DELETE answered ${del.status}`);
    };

    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < indices.length && failures.length < 20) await one(indices[next++]!);
      }),
    );
    probing = false;
    await prober;

    // Temporary files go when the upload is answered; give the coordinator a moment to unlink them.
    let left = await readdir(join(dataDir, 'uploads'));
    for (let i = 0; i < 20 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await readdir(join(dataDir, 'uploads'));
    }
    const seconds = (performance.now() - started) / 1000;
    const sent = [...outcomes.values()].reduce((a, b) => a + b, 0);
    console.log(
      `onnx fuzz (seed ${SEED}): ${sent} models in ${seconds.toFixed(0)} s (${(sent / seconds).toFixed(1)}/s), ` +
        `${referenceChecks} accepted ones run on the reference; worst /healthz ${worstHealthMs.toFixed(0)} ms over ${probes} probes\n` +
        [...outcomes].sort((a, b) => b[1] - a[1]).map(([k, n]) => `  ${k}: ${n}`).join('\n') +
        `\nslowest answers:\n${slowest.map((x) => `  ${x.ms.toFixed(0)} ms ${x.what}`).join('\n')}`,
    );
    expect(failures).toEqual([]);
    expect(sent).toBe(indices.length);
    expect(left).toEqual([]);
    expect(worstHealthMs).toBeLessThan(ANSWER_MS);
    if (!ONLY) {
      // The grammar must reach both sides: a good share accepted and checked, and refusals of every kind.
      expect(outcomes.get('201 accepted') ?? 0).toBeGreaterThan(COUNT / 10);
      expect(referenceChecks).toBeGreaterThan(COUNT / 20);
      for (const code of ['NOT_ONNX', 'INVALID_MODEL', 'UNSUPPORTED_MODEL', 'MODEL_TOO_LARGE']) expect(outcomes.get(`400 ${code}`) ?? 0).toBeGreaterThan(0);
    }
  }, 900_000);
});
