/** Inference jobs from the requester's side in tests: submit over REST, read .npy/.npz results, compare with onnxruntime-node. */
import { unzipSync } from 'fflate';
import * as ort from 'onnxruntime-node';
import { expect } from 'vitest';
import { decodeNpy, encodeNpy } from '../../shared/npy';
import { authHeaders } from './coordinator';
import { randomMatrix } from './matrices';

export interface HostTensor {
  dims: number[];
  data: Float32Array;
}

export const npyOf = (t: HostTensor) => new Blob([encodeNpy({ shape: t.dims, data: t.data })]);

export function randomTensor(dims: number[], seed: number): HostTensor {
  return { dims, data: randomMatrix(1, dims.reduce((a, b) => a * b, 1), seed) };
}

/** POST /api/v1/jobs type=inference with the model and one .npy per entry of `files` (field name → tensor). */
export async function postInference(url: string, model: Uint8Array, files: Record<string, HostTensor>, fields: Record<string, string> = {}): Promise<Response> {
  const form = new FormData();
  form.set('type', 'inference');
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  form.set('model', new Blob([new Uint8Array(model)]), 'model.onnx');
  for (const [name, t] of Object.entries(files)) form.set(name, npyOf(t), `${name}.npy`);
  return fetch(`${url}/api/v1/jobs`, { method: 'POST', body: form, headers: authHeaders(url) });
}

/** The job's result, read as numpy.load would: one array (.npy) or several by name (.npz). */
export async function inferenceResult(url: string, jobId: string): Promise<{ filename: string; outputs: Record<string, HostTensor> }> {
  const res = await fetch(`${url}/api/v1/jobs/${jobId}/result`, { headers: authHeaders(url) });
  expect(res.status).toBe(200);
  const filename = /filename="?([^";]+)"?/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? '';
  const bytes = new Uint8Array(await res.arrayBuffer());
  const outputs: Record<string, HostTensor> = {};
  if (filename.endsWith('.npz')) {
    for (const [name, entry] of Object.entries(unzipSync(bytes))) {
      const t = decodeNpy(entry);
      outputs[name.replace(/\.npy$/, '')] = { dims: t.shape, data: t.data };
    }
  } else {
    const t = decodeNpy(bytes);
    outputs['*'] = { dims: t.shape, data: t.data };
  }
  return { filename, outputs };
}

export async function onnxRuntime(model: Uint8Array, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const session = await ort.InferenceSession.create(model);
  try {
    const out = await session.run(Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor('float32', t.data, t.dims)])));
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, { dims: [...t.dims], data: t.data as Float32Array }]));
  } finally {
    await session.release();
  }
}

/** Largest |ours − theirs| relative to the reference's largest magnitude. */
export function worstRelativeError(ours: HostTensor, theirs: HostTensor): number {
  expect(ours.dims).toEqual(theirs.dims);
  let scale = 1e-6;
  for (const v of theirs.data) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < theirs.data.length; i++) worst = Math.max(worst, Math.abs(ours.data[i]! - theirs.data[i]!) / scale);
  return worst;
}
