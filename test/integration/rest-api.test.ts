import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeNpy } from '../../shared/npy';
import type { Lease, MatmulLease } from '../../shared/protocol';
import { authHeaders, startTestCoordinator, submitMatmul, type TestCoordinator } from '../support/coordinator';
import { SimContributor } from '../support/sim-contributor';
import { npyBlob, randomMatrix } from '../support/matrices';

let coord: TestCoordinator;
beforeAll(async () => {
  coord = await startTestCoordinator({ maxUploadBytes: 2 * 1024 * 1024, maxDim: 5000 });
});
afterAll(async () => coord.dispose());
const auth = () => authHeaders(coord.url);

function npyWithHeader(header: string, dataBytes: number): Blob {
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  const out = new Uint8Array(total + dataBytes);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, total - 10, true);
  const text = header.padEnd(total - 11, ' ') + '\n';
  for (let i = 0; i < text.length; i++) out[10 + i] = text.charCodeAt(i);
  return new Blob([out]);
}

async function post(parts: Record<string, string | Blob>): Promise<{ status: number; body: { error?: { code: string; message: string }; id?: string } }> {
  const form = new FormData();
  for (const [k, v] of Object.entries(parts)) {
    if (typeof v === 'string') form.set(k, v);
    else form.set(k, v, `${k}.npy`);
  }
  const res = await fetch(`${coord.url}/api/v1/jobs`, { method: 'POST', body: form, headers: auth() });
  return { status: res.status, body: (await res.json()) as never };
}

const ok = (r: number, c: number) => npyBlob(r, c, randomMatrix(r, c, r * 31 + c));

describe('REST API', () => {
  it('answers /healthz', async () => {
    const res = await fetch(`${coord.url}/healthz`);
    expect(res.status).toBe(200);
  });

  it('accepts a job: 201, Location, id and status', async () => {
    const form = new FormData();
    form.set('type', 'matmul');
    form.set('a', ok(3, 4), 'a.npy');
    form.set('b', ok(4, 5), 'b.npy');
    const res = await fetch(`${coord.url}/api/v1/jobs`, { method: 'POST', body: form, headers: auth() });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { id: string; status: string; progress: { total: number } };
    expect(res.headers.get('location')).toBe(`/api/v1/jobs/${body.id}`);
    expect(body.status).toBe('queued');
    expect(body.progress.total).toBe(1);
    const list = (await (await fetch(`${coord.url}/api/v1/jobs`, { headers: auth() })).json()) as { jobs: { id: string }[] };
    expect(list.jobs.map((j) => j.id)).toContain(body.id);
  });

  it('accepts Fortran-ordered operands', async () => {
    const fortran = npyWithHeader("{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }", 48);
    const r = await post({ type: 'matmul', a: fortran, b: ok(4, 2) });
    expect(r.status).toBe(201);
  });

  it.each([
    ['missing file', { type: 'matmul', a: 'A' }, 400, 'MISSING_FILE', /missing file "b"/],
    ['missing type', { a: 'A', b: 'B' }, 400, 'MISSING_FIELD', /type/],
    ['unknown type', { type: 'fft', a: 'A', b: 'B' }, 400, 'UNKNOWN_JOB_TYPE', /matmul/],
    ['not an .npy', { type: 'matmul', a: new Blob(['1,2,3\n']), b: 'B' }, 400, 'NOT_NPY', /numpy\.save/],
    ['wrong dtype', { type: 'matmul', a: npyWithHeader("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }", 96), b: 'B' }, 415, 'UNSUPPORTED_DTYPE', /float32/],
    ['inner dimensions', { type: 'matmul', a: 'A', b: 'B5' }, 400, 'SHAPE_MISMATCH', /a's columns \(4\) must equal b's rows \(5\)/],
    ['negative dimension', { type: 'matmul', a: npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 4), }", 0), b: 'B' }, 400, 'BAD_NPY_HEADER', /shape/],
    ['zero dimension', { type: 'matmul', a: npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }", 0), b: 'B' }, 400, 'EMPTY_DIMENSION', /at least 1/],
    ['not 2-D', { type: 'matmul', a: npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (12,), }", 48), b: 'B' }, 400, 'NOT_A_MATRIX', /2-D/],
    ['truncated data', { type: 'matmul', a: npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 40), b: 'B' }, 400, 'TRUNCATED_NPY', /promises/],
    ['dimension too large', { type: 'matmul', a: npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 6000), }", 24000), b: 'B' }, 413, 'TOO_LARGE', /limits/],
    ['upload too large', { type: 'matmul', a: new Blob([new Uint8Array(3 * 1024 * 1024)]), b: 'B' }, 413, 'TOO_LARGE', /upload limit/],
    ['unexpected file', { type: 'matmul', a: 'A', b: 'B', c: 'B' }, 400, 'UNEXPECTED_FILE', /a, b/],
  ] as const)('rejects %s with a clear error', async (_name, parts, status, code, message) => {
    const resolved: Record<string, string | Blob> = {};
    for (const [k, v] of Object.entries(parts)) {
      if (v === 'A') resolved[k] = ok(3, 4);
      else if (v === 'B') resolved[k] = ok(4, 2);
      else if (v === 'B5') resolved[k] = ok(5, 2);
      else resolved[k] = v;
    }
    const r = await post(resolved);
    expect(r.status).toBe(status);
    expect(r.body.error?.code).toBe(code);
    expect(r.body.error?.message).toMatch(message);
  });

  it('rejects a body that is not multipart', async () => {
    const res = await fetch(`${coord.url}/api/v1/jobs`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(415);
  });

  it('answers unknown ids, bad query parameters and unknown routes with JSON errors', async () => {
    const missing = await fetch(`${coord.url}/api/v1/jobs/00000000-0000-4000-8000-000000000000`, { headers: auth() });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('JOB_NOT_FOUND');
    const weird = await fetch(`${coord.url}/api/v1/jobs/..%2F..%2Fetc%2Fpasswd`, { headers: auth() });
    expect(weird.status).toBe(404);
    const badLimit = await fetch(`${coord.url}/api/v1/jobs?limit=-3`, { headers: auth() });
    expect(badLimit.status).toBe(400);
    const route = await fetch(`${coord.url}/api/v1/nothing-here`);
    expect(route.status).toBe(404);
    expect(((await route.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
    const blob = await fetch(`${coord.url}/api/v1/blobs/not-a-hash`);
    expect(blob.status).toBe(400);
  });

  it('answers 409 for a result that is not ready, and keeps serving after hostile input', async () => {
    const job = await submitMatmul(coord.url, { rows: 2, cols: 2, data: new Float32Array(4) }, { rows: 2, cols: 2, data: new Float32Array(4) });
    const res = await fetch(`${coord.url}/api/v1/jobs/${job.id}/result`, { headers: auth() });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/queued/);
    const garbage = await fetch(`${coord.url}/api/v1/jobs`, { method: 'POST', headers: { ...auth(), 'content-type': 'multipart/form-data; boundary=x' }, body: '--x\r\nbroken' });
    expect(garbage.status).toBeGreaterThanOrEqual(400);
    expect(garbage.status).toBeLessThan(500);
    expect((await fetch(`${coord.url}/api/v1/jobs/${job.id}`, { headers: auth() })).status).toBe(200);
  });

  it('serves panels as immutable content-addressed blobs with Range support, through the lease URL', async () => {
    const a = randomMatrix(3, 4, 9);
    const job = await submitMatmul(coord.url, { rows: 3, cols: 4, data: a }, { rows: 4, cols: 2, data: randomMatrix(4, 2, 10) });
    expect(job.id).toBeTruthy();
    const { createHash } = await import('node:crypto');
    const sha = createHash('sha256').update(new Uint8Array(a.buffer)).digest('hex');
    // A contributor's lease carries the panel's URL. Other tests' jobs and canaries come first: hand those back.
    const sim = await new SimContributor(coord.url).connect();
    let url: string | undefined;
    try {
      for (let i = 0; i < 20 && !url; i++) {
        const reply = await sim.socket.timeout(10_000).emitWithAck('lease:request', { max: 4 });
        if (!reply.ok) throw new Error(reply.error.message);
        url = reply.leases.find((l: Lease): l is MatmulLease => l.kind === 'matmul' && l.jobId === job.id && l.a.sha256 === sha)?.a.url;
        for (const l of reply.leases) await sim.socket.timeout(10_000).emitWithAck('lease:release', { shardId: l.shardId, leaseToken: l.leaseToken });
      }
    } finally {
      sim.disconnect();
    }
    if (!url) throw new Error(`no lease on job ${job.id} in 20 requests`);
    expect((await fetch(`${coord.url}/api/v1/blobs/${sha}`)).status).toBe(403);
    const res = await fetch(new URL(url, coord.url));
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toContain('immutable');
    expect(new Float32Array(await res.arrayBuffer())).toEqual(a);
    const part = await fetch(new URL(url, coord.url), { headers: { range: 'bytes=4-7' } });
    expect(part.status).toBe(206);
    expect(new Float32Array(await part.arrayBuffer())[0]).toBe(a[1]);
  });

  it('encodes results that numpy can read', () => {
    const bytes = encodeNpy({ shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) });
    expect(new TextDecoder().decode(bytes.subarray(10, 128))).toContain("'shape': (2, 2)");
  });
});
