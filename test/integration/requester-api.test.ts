import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../server/auth/api-keys';
import { matmulReference, maxToleranceRatio } from '../../shared/matmul-reference';
import { decodeNpy, encodeNpy } from '../../shared/npy';
import { authHeaders, startTestCoordinator, submitMatmul, waitForJob, type TestCoordinator } from '../support/coordinator';
import { npyBlob, randomMatrix } from '../support/matrices';
import { SimContributor } from '../support/sim-contributor';

const run = promisify(execFile);
let coord: TestCoordinator;
const sims: SimContributor[] = [];

beforeAll(async () => {
  coord = await startTestCoordinator({ resultTtlMs: 2_000 });
});
afterAll(async () => {
  for (const s of sims) s.disconnect();
  await coord.dispose();
});

const limits = { maxConcurrentJobs: 10, maxStoredBytes: 1e9, maxUploadBytes: 1e8, requestsPerMinute: 1000 };
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

function form(a = npyBlob(4, 3, randomMatrix(4, 3, 1)), b = npyBlob(3, 2, randomMatrix(3, 2, 2))): FormData {
  const f = new FormData();
  f.set('type', 'matmul');
  f.set('a', a, 'a.npy');
  f.set('b', b, 'b.npy');
  return f;
}

async function post(headers: Record<string, string>, body: FormData = form()) {
  const res = await fetch(`${coord.url}/api/v1/jobs`, { method: 'POST', body, headers });
  return { res, body: (await res.json()) as { id?: string; error?: { code: string; message: string } } };
}

async function helper(): Promise<void> {
  if (sims.length > 0) return;
  for (let i = 0; i < 2; i++) {
    const s = await new SimContributor(coord.url, { kind: 'honest', delayMs: 20 }).connect();
    sims.push(s);
    void s.run().catch(() => undefined);
  }
}

describe('API keys and ownership', () => {
  it('refuses requests without a valid key', async () => {
    const none = await post({});
    expect(none.res.status).toBe(401);
    expect(none.res.headers.get('www-authenticate')).toMatch(/Bearer/);
    expect(none.body.error?.message).toMatch(/Authorization: Bearer/);
    expect((await post(bearer('tsk_' + 'x'.repeat(43)))).res.status).toBe(401);
    expect((await post({ authorization: 'Basic Zm9vOmJhcg==' })).res.status).toBe(401);
    expect((await fetch(`${coord.url}/api/v1/jobs`)).status).toBe(401);
  });

  it("hides one requester's jobs from another (404, not 403)", async () => {
    const alice = (await createApiKey(coord.store, 'alice', limits)).secret;
    const bob = (await createApiKey(coord.store, 'bob', limits)).secret;
    const { body } = await post(bearer(alice));
    const id = body.id!;
    for (const [method, path] of [
      ['GET', `/api/v1/jobs/${id}`],
      ['GET', `/api/v1/jobs/${id}/result`],
      ['GET', `/api/v1/jobs/${id}/events`],
      ['DELETE', `/api/v1/jobs/${id}`],
    ] as const) {
      const res = await fetch(`${coord.url}${path}`, { method, headers: bearer(bob) });
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    const bobsList = (await (await fetch(`${coord.url}/api/v1/jobs`, { headers: bearer(bob) })).json()) as { jobs: unknown[] };
    expect(bobsList.jobs).toEqual([]);
    const alicesList = (await (await fetch(`${coord.url}/api/v1/jobs`, { headers: bearer(alice) })).json()) as { jobs: { id: string }[] };
    expect(alicesList.jobs.map((j) => j.id)).toEqual([id]);
  });

  it('creates, uses and revokes keys with the keys CLI', async () => {
    const env = { ...process.env, TESSERA_DATA_DIR: coord.dataDir };
    const created = await run(process.execPath, ['--import', 'tsx', 'cli/keys.ts', 'create', '--name', 'carol', '--max-jobs', '3'], { env });
    const secret = /tsk_\S+/.exec(created.stdout)![0];
    expect((await post(bearer(secret))).res.status).toBe(201);
    const listed = await run(process.execPath, ['--import', 'tsx', 'cli/keys.ts', 'list'], { env });
    expect(listed.stdout).toMatch(/carol.*active.*jobs ≤ 3/);
    expect(listed.stdout).not.toContain(secret);
    await run(process.execPath, ['--import', 'tsx', 'cli/keys.ts', 'revoke', '--name', 'carol'], { env });
    expect((await post(bearer(secret))).res.status).toBe(401);
    const dup = await run(process.execPath, ['--import', 'tsx', 'cli/keys.ts', 'create', '--name', 'alice'], { env }).catch((e: { stderr: string; code: number }) => e);
    expect((dup as { stderr: string }).stderr).toMatch(/already exists/);
  });

  it('stores keys hashed, and the local key only in a 0600 file', async () => {
    const db = await readFile(join(coord.dataDir, 'tessera.db'));
    expect(db.includes(Buffer.from(coord.apiKey))).toBe(false);
    const { stat } = await import('node:fs/promises');
    expect((await stat(join(coord.dataDir, 'local-api-key'))).mode & 0o777).toBe(0o600);
  });
});

describe('limits', () => {
  it('enforces concurrent jobs, stored bytes, upload size and request rate per key', async () => {
    const one = (await createApiKey(coord.store, 'one-job', { ...limits, maxConcurrentJobs: 1 })).secret;
    expect((await post(bearer(one))).res.status).toBe(201);
    const second = await post(bearer(one));
    expect(second.res.status).toBe(429);
    expect(second.body.error?.code).toBe('QUOTA_EXCEEDED');

    const small = (await createApiKey(coord.store, 'small-disk', { ...limits, maxStoredBytes: 200 })).secret;
    const big = await post(bearer(small), form(npyBlob(10, 10, randomMatrix(10, 10, 1)), npyBlob(10, 10, randomMatrix(10, 10, 2))));
    expect(big.res.status).toBe(413);
    expect(big.body.error?.code).toBe('QUOTA_EXCEEDED');

    const tiny = (await createApiKey(coord.store, 'tiny-upload', { ...limits, maxUploadBytes: 2048 })).secret;
    const upload = await post(bearer(tiny), form(npyBlob(40, 40, randomMatrix(40, 40, 1)), npyBlob(40, 2, randomMatrix(40, 2, 2))));
    expect(upload.res.status).toBe(413);
    expect(upload.body.error?.code).toBe('TOO_LARGE');

    const slow = (await createApiKey(coord.store, 'slow', { ...limits, requestsPerMinute: 5 })).secret;
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await fetch(`${coord.url}/api/v1/jobs`, { headers: bearer(slow) })).status);
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    const limited = await fetch(`${coord.url}/api/v1/jobs`, { headers: bearer(slow) });
    expect(limited.status).toBe(429);
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe('RATE_LIMITED');
    expect(limited.headers.get('ratelimit-policy') ?? limited.headers.get('ratelimit')).toBeTruthy();
  });

  it('refuses NaN and Infinity in inputs, with the position', async () => {
    const a = randomMatrix(4, 3, 1);
    a[5] = NaN;
    const r = await post(authHeaders(coord.url), form(npyBlob(4, 3, a)));
    expect(r.res.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 'NON_FINITE' });
    expect(r.body.error?.message).toMatch(/row 1, column 2/);
    const b = randomMatrix(3, 2, 1);
    b[0] = -Infinity;
    expect((await post(authHeaders(coord.url), form(undefined, npyBlob(3, 2, b)))).body.error?.code).toBe('NON_FINITE');
  });
});

describe('progress, results and documents', () => {
  it('streams progress as Server-Sent Events until the job ends', async () => {
    await helper();
    const m = 192;
    const job = await submitMatmul(coord.url, { rows: m, cols: 32, data: randomMatrix(m, 32, 5) }, { rows: 32, cols: m, data: randomMatrix(32, m, 6) });
    const res = await fetch(`${coord.url}/api/v1/jobs/${job.id}/events`, { headers: authHeaders(coord.url) });
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const text = await res.text(); // the stream ends by itself after `event: end`
    const progress = [...text.matchAll(/event: progress\ndata: (.*)\n/g)].map((x) => JSON.parse(x[1]!) as { progress: { verified: number }; status: string });
    expect(progress.length).toBeGreaterThan(1);
    const verified = progress.map((p) => p.progress.verified);
    expect([...verified].sort((x, y) => x - y)).toEqual(verified);
    expect(progress.at(-1)!.status).toBe('completed');
    expect(text).toMatch(/event: end\ndata: \{"status":"completed"\}/);
  });

  it('deletes a result on request and when it expires', async () => {
    await helper();
    const small = { rows: 8, cols: 8, data: randomMatrix(8, 8, 1) };
    const j1 = await submitMatmul(coord.url, small, small);
    await waitForJob(coord.url, j1.id);
    const del = await fetch(`${coord.url}/api/v1/jobs/${j1.id}`, { method: 'DELETE', headers: authHeaders(coord.url) });
    expect(((await del.json()) as { resultDeleted?: boolean }).resultDeleted).toBe(true);
    expect((await fetch(`${coord.url}/api/v1/jobs/${j1.id}/result`, { headers: authHeaders(coord.url) })).status).toBe(410);
    const j2 = await submitMatmul(coord.url, small, small);
    await waitForJob(coord.url, j2.id);
    expect((await fetch(`${coord.url}/api/v1/jobs/${j2.id}/result`, { headers: authHeaders(coord.url) })).status).toBe(200);
    await waitForJob(coord.url, j2.id, 10_000, (j) => j.resultDeleted === true); // TTL is 2 s in this suite
    const gone = await fetch(`${coord.url}/api/v1/jobs/${j2.id}/result`, { headers: authHeaders(coord.url) });
    expect(gone.status).toBe(410);
    expect(((await gone.json()) as { error: { code: string } }).error.code).toBe('RESULT_DELETED');
  });

  it('publishes a valid OpenAPI document listing every route, and browsable docs', async () => {
    const doc = (await (await fetch(`${coord.url}/api/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const result = await new Validator().validate(doc);
    expect(JSON.stringify(result.errors ?? [], null, 1)).toBe("[]");
    expect(result.valid).toBe(true);
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(routes.sort()).toEqual(
      [
        'GET /healthz',
        'POST /api/v1/jobs',
        'GET /api/v1/jobs',
        'GET /api/v1/jobs/{id}',
        'DELETE /api/v1/jobs/{id}',
        'GET /api/v1/jobs/{id}/result',
        'GET /api/v1/jobs/{id}/events',
        'GET /api/v1/blobs/{sha256}',
        'GET /api/v1/contributors/{id}',
        'GET /api/v1/contributors/me',
        'PUT /api/v1/leases/{token}/result',
        'PUT /api/v1/leases/{token}/benchmark',
        'GET /api/v1/benchmarks',
        'GET /api/v1/network',
        'GET /api/v1/network/events',
        'GET /api/v1/leaderboard',
        'GET /api/v1/openapi.json',
      ].sort(),
    );
    const page = await fetch(`${coord.url}/api/docs/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('swagger-ui');
    expect((await fetch(`${coord.url}/api/docs/swagger-ui-bundle.js`)).status).toBe(200);
  });

  it('sends security headers and no stack traces', async () => {
    const res = await fetch(`${coord.url}/api/v1/nothing`);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(res.headers.get('x-powered-by')).toBeNull();
    const body = await res.text();
    expect(body).not.toMatch(/at .*\.ts:\d+/);
  });

  it('the CLI submits, waits with progress, and downloads the right result', async () => {
    await helper();
    const a = randomMatrix(100, 40, 8);
    const b = randomMatrix(40, 70, 9);
    const dir = coord.dataDir;
    await writeFile(join(dir, 'a.npy'), encodeNpy({ shape: [100, 40], data: a }));
    await writeFile(join(dir, 'b.npy'), encodeNpy({ shape: [40, 70], data: b }));
    const out = await run(process.execPath, ['bin/tessera.mjs', '--server', coord.url, '--key', coord.apiKey, 'submit', 'matmul', join(dir, 'a.npy'), join(dir, 'b.npy'), '-o', join(dir, 'c.npy')]);
    expect(out.stdout).toMatch(/completed/);
    const c = decodeNpy(await readFile(join(dir, 'c.npy')));
    expect(c.shape).toEqual([100, 70]);
    expect(maxToleranceRatio(c.data, matmulReference(a, b, 100, 40, 70), 1e-5, 1e-5)).toBeLessThanOrEqual(1);
    const listed = await run(process.execPath, ['bin/tessera.mjs', '--server', coord.url, '--key', coord.apiKey, 'list']);
    expect(listed.stdout).toMatch(/matmul\s+completed/);
    const bad = await run(process.execPath, ['bin/tessera.mjs', '--server', coord.url, '--key', 'nope', 'list']).catch((e: { stderr: string }) => e);
    expect((bad as { stderr: string }).stderr).toMatch(/401 UNAUTHORIZED/);
    expect(await readdir(join(dir, 'uploads'))).toEqual([]);
  });
});
