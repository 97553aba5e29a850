/**
 * `npm run bench:inference [-- --models mlp,encoder --reps 5 --network encoder]`
 * Inference throughput (samples/s) of whole models, side by side in one run:
 * - ours: the contributor's ModelRunner (shared/inference-plan.ts + WGSL) in
 *   headless Chromium, through the /bench page (WebGPU on whatever adapter
 *   Chromium has; SwiftShader on a machine without a GPU);
 * - ONNX Runtime Web's WebGPU EP on the same model in the same browser;
 * - onnxruntime-node on this machine's CPU (the reference).
 * Each run includes uploading the batch and reading the outputs back; the
 * figure is the median of --reps runs after one warm-up. Every answer is
 * compared with onnxruntime-node's. With --network, that model also runs as
 * a real job: POSTed over REST, sharded, computed by the contributor page,
 * verified and assembled — samples/s from submission to completion.
 * Writes bench-results/inference-<time>.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import type { JobView } from '../shared/api';
import { encodeModelPackage } from '../shared/model-package';
import { loadModel } from '../server/inference/onnx-model';
import { launchBrowser, openBenchPage } from '../test/support/browser';
import { startTestCoordinator, waitForJob } from '../test/support/coordinator';
import { inferenceResult, postInference, randomTensor, worstRelativeError, type HostTensor } from '../test/support/inference';
import { deepMlpModel, encoderStackModel } from '../test/support/onnx-builder';

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: 'mlp,encoder' },
    reps: { type: 'string', default: '5' },
    network: { type: 'string', default: 'encoder' },
    'network-batch': { type: 'string', default: '128' },
    out: { type: 'string' },
  },
});

interface BenchModel {
  id: string;
  describe: string;
  bytes: Uint8Array;
  inputDims: (batch: number) => number[];
  batch: number;
}

const MODELS: Record<string, () => BenchModel> = {
  mlp: () => ({ id: 'mlp', describe: 'MLP 784-1024-1024-10 (Gemm transB + Relu), 1.86 M parameters', bytes: deepMlpModel([784, 1024, 1024, 10]), inputDims: (b) => [b, 784], batch: 64 }),
  encoder: () => ({
    id: 'encoder',
    describe: '4 transformer encoder blocks, d=128, 4 heads, seq 64, ff 512 (LayerNorm, attention, GELU via Erf), 0.79 M parameters',
    bytes: encoderStackModel({ layers: 4, d: 128, heads: 4, seq: 64, ff: 512 }),
    inputDims: (b) => [b, 64, 128],
    batch: 16,
  }),
};

function profileByKind(steps: { kind: string; ms: number }[]): Record<string, { launches: number; ms: number }> {
  const by: Record<string, { launches: number; ms: number }> = {};
  for (const s of steps) {
    const e = (by[s.kind] ??= { launches: 0, ms: 0 });
    e.launches++;
    e.ms += s.ms;
  }
  return by;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64');

async function ortNode(bytes: Uint8Array, x: HostTensor, reps: number): Promise<{ y: HostTensor; ms: number[] }> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const feeds = { x: new ort.Tensor('float32', x.data, x.dims) };
    let out = await session.run(feeds);
    const ms: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      out = await session.run(feeds);
      ms.push(performance.now() - t0);
    }
    const t = out[session.outputNames[0]!]!;
    return { y: { dims: [...t.dims], data: t.data as Float32Array }, ms };
  } finally {
    await session.release();
  }
}

async function main(): Promise<void> {
  const reps = Number(values.reps);
  const coord = await startTestCoordinator({ clientDir: fileURLToPath(new URL('../dist/client', import.meta.url)), canaries: false });
  const browser = await launchBrowser({ protocolTimeoutMs: 3_600_000 });
  const rows: Record<string, unknown>[] = [];
  let network: Record<string, unknown> | undefined;
  try {
    const page = await openBenchPage(browser, coord.url, (err) => console.error('page error:', err));
    page.setDefaultTimeout(0);
    const userAgent = await page.evaluate(() => navigator.userAgent);

    for (const id of values.models.split(',').filter(Boolean)) {
      const make = MODELS[id];
      if (!make) throw new Error(`--models: unknown model "${id}"; known: ${Object.keys(MODELS).join(', ')}`);
      const m = make();
      const x = randomTensor(m.inputDims(m.batch), 1);
      const cpu = await ortNode(m.bytes, x, reps);
      const ours = await page.evaluate((req) => window.tesseraBench!.model(req), { packageBase64: b64(encodeModelPackage(loadModel(m.bytes))), batch: m.batch, inputs: [Array.from(x.data)], reps, profile: true });
      const web = await page.evaluate((req) => window.tesseraBench!.ortModel(req), { modelBase64: b64(m.bytes), feeds: { x: { dims: x.dims, data: Array.from(x.data) } }, reps });
      const errOurs = worstRelativeError({ dims: cpu.y.dims, data: Float32Array.from(ours.outputs[0]!) }, cpu.y);
      const errWeb = worstRelativeError({ dims: cpu.y.dims, data: Float32Array.from(web.outputs[0]!) }, cpu.y);
      const sps = (ms: number[]) => (m.batch * 1000) / median(ms);
      const row = {
        model: m.id,
        describe: m.describe,
        batch: m.batch,
        modelBytes: m.bytes.byteLength,
        oursSamplesPerS: sps(ours.ms),
        ortWebSamplesPerS: sps(web.ms),
        ortNodeSamplesPerS: sps(cpu.ms),
        oursMs: ours.ms,
        ortWebMs: web.ms,
        ortNodeMs: cpu.ms,
        maxRelErrOurs: errOurs,
        maxRelErrOrtWeb: errWeb,
        ortWebVersion: web.version,
        // Each launch timed alone (waiting for the GPU after each), summed by kind: where our time goes.
        oursProfile: profileByKind(ours.profile ?? []),
      };
      rows.push(row);
      console.log(
        `${m.id} (batch ${m.batch}): ours ${row.oursSamplesPerS.toFixed(1)} samples/s · ORT-web WebGPU ${row.ortWebSamplesPerS.toFixed(1)} · onnxruntime-node CPU ${row.ortNodeSamplesPerS.toFixed(1)}` +
          ` → ours/ORT-web ${(row.oursSamplesPerS / row.ortWebSamplesPerS).toFixed(2)}×, ours/onnxruntime-node ${(row.oursSamplesPerS / row.ortNodeSamplesPerS).toFixed(2)}× (max rel. error ${errOurs.toExponential(1)})`,
      );
      console.log(`  where our time goes (each launch alone): ${Object.entries(row.oursProfile).sort((p, q) => q[1].ms - p[1].ms).map(([k, v]) => `${k} ${v.ms.toFixed(0)} ms/${v.launches}`).join(', ')}`);
    }
    await page.close();

    if (values.network) {
      const make = MODELS[values.network];
      if (!make) throw new Error(`--network: unknown model "${values.network}"`);
      const m = make();
      const contributor = await browser.newPage();
      contributor.on('pageerror', (err) => console.error('page error:', err));
      await contributor.goto(`${coord.url}/?autostart=1`);
      await contributor.waitForFunction(() => document.getElementById('state')?.textContent === 'idle', { timeout: 600_000 });
      const batch = Number(values['network-batch']);
      const x = randomTensor(m.inputDims(batch), 2);
      const t0 = performance.now();
      const res = await postInference(coord.url, m.bytes, { x });
      if (res.status !== 201) throw new Error(`submit: ${res.status} ${await res.text()}`);
      const job = (await res.json()) as JobView;
      const queuedAt = performance.now();
      // Poll once a second: a job of minutes would otherwise use up the key's request budget.
      const done = await waitForJob(coord.url, job.id, 3_600_000, (j) => j.status !== 'queued' && j.status !== 'running', 1_000);
      const ms = performance.now() - queuedAt;
      const { outputs } = await inferenceResult(coord.url, job.id);
      const cpu = await ortNode(m.bytes, x, 0);
      network = {
        model: m.id,
        batch,
        shards: job.progress.total,
        samplesPerShard: job.inference?.samplesPerShard,
        status: done.status,
        uploadMs: queuedAt - t0,
        queuedToCompletedMs: ms,
        samplesPerS: (batch * 1000) / ms,
        maxRelErr: worstRelativeError(outputs['*']!, cpu.y),
      };
      console.log(`network job: ${m.id}, ${batch} samples in ${job.progress.total} shards, one browser contributor: ${(network.samplesPerS as number).toFixed(1)} samples/s from queued to completed (max rel. error ${(network.maxRelErr as number).toExponential(1)})`);
    }

    await mkdir('bench-results', { recursive: true });
    const out = values.out ?? `bench-results/inference-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
    await writeFile(out, JSON.stringify({ at: new Date().toISOString(), userAgent, reps, what: 'samples/s = batch / median run time; a run uploads the batch, computes, reads the outputs back', rows, network }, null, 2));
    console.log(`wrote ${out}`);
  } finally {
    await browser.close();
    await coord.dispose();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
