/**
 * The hostile traffic of the soak (`npm run bench:soak`): each attack of the
 * hardening issue as a request an outsider with an ordinary API key, or an
 * anonymous contributor, can send. Each returns the HTTP status it got (or a
 * word for what happened), so the soak can count outcomes per attack.
 */
import { connect } from 'node:net';
import { io } from 'socket.io-client';
import onnxProto from 'onnx-proto';
import { encodeNpy } from '../shared/npy';
import { PROTOCOL_VERSION } from '../shared/protocol';
import { WEBGPU_DEFAULT_LIMITS } from '../shared/tiling';
import { floatTensor, model, node, value } from '../test/support/onnx-builder';

const { onnx } = onnxProto;

export type Outcome = string;

/** A Transpose whose perm names an axis the input does not have: the plan's cost became NaN and the intake looped forever. */
export function transposeHangModel(): Uint8Array {
  return model({
    inputs: [value('x', ['batch', 4])],
    outputs: [value('y', ['batch', 4])],
    initializers: [],
    nodes: [node('Transpose', ['x'], ['y'], 't', { perm: [0, 7] })],
  });
}

/** `count` chained MatMuls on one small weight: planning used to be quadratic in the node count. */
export function longChainModel(count: number): Uint8Array {
  const nodes = Array.from({ length: count }, (_, i) => node('MatMul', [i === 0 ? 'x' : `h${i - 1}`, 'w'], [i === count - 1 ? 'y' : `h${i}`], `mm${i}`));
  return model({ inputs: [value('x', ['batch', 4])], outputs: [value('y', ['batch', 4])], initializers: [floatTensor('w', [4, 4])], nodes });
}

/** `count` MatMuls on one `width`×`width` weight: legal, but 2·count·width² FLOPs per sample of coordinator recompute. */
export function heavyRecomputeModel(count: number, width: number): Uint8Array {
  const nodes = Array.from({ length: count }, (_, i) => node('MatMul', [i === 0 ? 'x' : `h${i - 1}`, 'w'], [i === count - 1 ? 'y' : `h${i}`], `mm${i}`));
  return model({ inputs: [value('x', ['batch', width])], outputs: [value('y', ['batch', width])], initializers: [floatTensor('w', [width, width], new Float32Array(width * width).fill(1 / width))], nodes });
}

/** One sample's output is side² floats (80 MB for side 4472), from a few KB of model: no contributor could return a shard. */
export function hugeOutputModel(side: number): Uint8Array {
  return model({
    inputs: [value('x', ['batch', side])],
    outputs: [value('y', ['batch', side, side])],
    initializers: [floatTensor('b', [side], new Float32Array(side)), { name: 'axes', dims: [1], dataType: onnx.TensorProto.DataType.INT64, rawData: new Uint8Array(BigInt64Array.from([2n]).buffer) }],
    nodes: [node('Unsqueeze', ['x', 'axes'], ['u'], 'unsqueeze'), node('Add', ['u', 'b'], ['y'], 'broadcast')],
  });
}

/** An initializer that claims [1e6, 1e6] floats stored in an external file: it used to be allocated before being checked. */
export function externalHugeInitializerModel(): Uint8Array {
  return model({
    inputs: [value('x', ['batch', 4])],
    outputs: [value('y', ['batch', 4])],
    initializers: [{ name: 'w', dims: [1_000_000, 1_000_000], dataType: onnx.TensorProto.DataType.FLOAT, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: [{ key: 'location', value: 'w.bin' }] }],
    nodes: [node('MatMul', ['x', 'w'], ['y'], 'mm')],
  });
}

/** A DOUBLE initializer of [1e6, 1e6] with no data. */
export function doubleHugeInitializerModel(): Uint8Array {
  return model({
    inputs: [value('x', ['batch', 4])],
    outputs: [value('y', ['batch', 4])],
    initializers: [{ name: 'w', dims: [1_000_000, 1_000_000], dataType: onnx.TensorProto.DataType.DOUBLE }],
    nodes: [node('MatMul', ['x', 'w'], ['y'], 'mm')],
  });
}

export const npy = (shape: number[], data: Float32Array) => new Blob([encodeNpy({ shape, data })]);

export async function postForm(url: string, key: string, fields: Record<string, string | Blob>): Promise<number> {
  const { status, id } = await postFormKeep(url, key, fields);
  // An attack that got a job accepted does not keep it: cancel, so the key's job quota stays free.
  if (status === 201 && id) await fetch(`${url}/api/v1/jobs/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${key}` } }).then((r) => r.arrayBuffer());
  return status;
}

/** Posts and keeps what was accepted: the quota race counts how many of its parallel submits got in. */
export async function postFormKeep(url: string, key: string, fields: Record<string, string | Blob>): Promise<{ status: number; id?: string }> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === 'string') form.set(k, v);
    else form.set(k, v, `${k}.bin`);
  }
  const res = await fetch(`${url}/api/v1/jobs`, { method: 'POST', body: form, headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(60_000) });
  const body = (await res.json().catch(() => undefined)) as { id?: string } | undefined;
  return { status: res.status, ...(body?.id ? { id: body.id } : {}) };
}

export async function postModel(url: string, key: string, modelBytes: Uint8Array, input: { shape: number[] }): Promise<number> {
  const size = input.shape.reduce((a, b) => a * b, 1);
  return postForm(url, key, { type: 'inference', model: new Blob([new Uint8Array(modelBytes)]), x: npy(input.shape, new Float32Array(size).fill(0.5)) });
}

/** Finite inputs whose product overflows float32: 3e38 × ones. */
export function overflowMatmul(url: string, key: string): Promise<number> {
  return postForm(url, key, { type: 'matmul', a: npy([8, 8], new Float32Array(64).fill(3e38)), b: npy([8, 8], new Float32Array(64).fill(1)) });
}

/** A .npy header with a duplicate key, which NumPy refuses. */
export function duplicateKeyNpy(url: string, key: string): Promise<number> {
  const good = encodeNpy({ shape: [4, 4], data: new Float32Array(16).fill(1) });
  const text = new TextDecoder('latin1').decode(good.subarray(10, good.length - 64));
  const header = text.replace("'shape': (4, 4)", "'shape': (4, 4), 'shape': (4, 4)");
  const padded = header.trimEnd().padEnd(header.length, ' ');
  const bytes = new Uint8Array(good);
  bytes.set(new TextEncoder().encode(padded.slice(0, header.length)), 10);
  return postForm(url, key, { type: 'matmul', a: new Blob([bytes]), b: new Blob([good]) });
}

/** `priority=0x5`: numbers in form fields are decimal only. */
export function hexPriority(url: string, key: string): Promise<number> {
  const m = npy([4, 4], new Float32Array(16).fill(1));
  return postForm(url, key, { type: 'matmul', priority: '0x5', a: m, b: m });
}

/** Starts a multipart upload that promises `bytes` and stops after a part of them, leaving the socket to be cut. */
export function abortedUpload(url: string, key: string, bytes: number, sendBytes: number): Promise<Outcome> {
  const { hostname, port } = new URL(url);
  const boundary = 'soakboundary';
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\nmatmul\r\n--${boundary}\r\nContent-Disposition: form-data; name="a"; filename="a.npy"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        `POST /api/v1/jobs HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${key}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${head.length + bytes}\r\n\r\n${head}`,
      );
      socket.write(Buffer.alloc(sendBytes, 7), () => {
        setTimeout(() => {
          socket.destroy();
          resolve('aborted');
        }, 50);
      });
    });
    socket.on('error', () => resolve('error'));
  });
}

export async function blobWithoutLease(url: string, sha256: string): Promise<number> {
  const res = await fetch(`${url}/api/v1/blobs/${sha256}`);
  await res.arrayBuffer();
  return res.status;
}

/** An anonymous contributor that sends `count` malformed or out-of-turn messages, then leaves. */
export async function socketJunk(url: string, count: number, rand: () => number): Promise<Outcome> {
  const s = io(url, { transports: ['websocket'], reconnection: false, forceNew: true });
  try {
    await new Promise<void>((res, rej) => (s.once('connect', () => res()), s.once('connect_error', rej)));
    const junk: unknown[] = [null, 42, 'x'.repeat(10_000), { __proto__: { polluted: true } }, { shardId: 'x', leaseToken: 'y', c: new Uint8Array(12) }, [1, 2, 3], { max: 1e9 }, { name: '\u3164\u3164' }];
    const events = ['hello', 'lease:request', 'lease:result', 'lease:release', 'profile', 'nonsense'];
    if (rand() < 0.5) {
      await s.timeout(5_000).emitWithAck('hello', { protocol: PROTOCOL_VERSION, agent: { kind: 'simulated', userAgent: 'soak' }, adapter: { vendor: 'x', architecture: '', device: '', description: '' }, limits: WEBGPU_DEFAULT_LIMITS }).catch(() => undefined);
    }
    for (let i = 0; i < count && s.connected; i++) {
      const ev = events[Math.floor(rand() * events.length)]!;
      const msg = junk[Math.floor(rand() * junk.length)];
      (s as unknown as { emit(ev: string, ...a: unknown[]): void }).emit(ev, msg, () => undefined);
    }
    await new Promise((r) => setTimeout(r, 200));
    return s.connected ? 'survived' : 'disconnected';
  } catch {
    return 'refused';
  } finally {
    s.close();
  }
}

/** A name that is invisible (Hangul fillers) or passes for the operators. */
export async function badName(url: string, name: string): Promise<Outcome> {
  const s = io(url, { transports: ['websocket'], reconnection: false, forceNew: true });
  try {
    await new Promise<void>((res, rej) => (s.once('connect', () => res()), s.once('connect_error', rej)));
    const hello = (await s.timeout(5_000).emitWithAck('hello', { protocol: PROTOCOL_VERSION, agent: { kind: 'simulated', userAgent: 'soak' }, adapter: { vendor: 'x', architecture: '', device: '', description: '' }, limits: WEBGPU_DEFAULT_LIMITS })) as { ok: boolean };
    if (!hello.ok) return 'refused';
    const r = (await s.timeout(5_000).emitWithAck('profile', { name })) as { ok: boolean; error?: { code: string } };
    return r.ok ? 'accepted' : r.error?.code ?? 'refused';
  } catch {
    return 'refused';
  } finally {
    s.close();
  }
}
