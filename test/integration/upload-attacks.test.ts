import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../server/auth/api-keys';
import { SqliteStore } from '../../server/store/sqlite-store';
import type { JobView } from '../../shared/api';
import { encodeNpy } from '../../shared/npy';
import { makeDataDir } from '../support/coordinator';
import { spawnCoordinator, type CoordinatorProcess } from '../support/coordinator-process';
import { randomMatrix } from '../support/matrices';
import { model, node, value } from '../support/onnx-builder';
import { openFilesUnder, peakRssBytes, resetPeakRss, rssBytes, sampleRss } from '../support/process-probe';
import { rawUpload, type Part } from '../support/raw-upload';

/**
 * Uploads as an attacker with an ordinary API key would send them, against a
 * coordinator running as its own process (so that its memory and open
 * descriptors can be read from /proc): cut off mid-body, stalled, racing
 * each other past the quota, overflowing float32, named after Object's
 * prototype, numbers in other notations, and big.
 */

const MiB = 2 ** 20;
const IDLE_SECONDS = 2;
const PER_KEY_UPLOADS = 8;
const TOTAL_UPLOADS = 12;

let dataDir: string;
let coord: CoordinatorProcess;
let store: SqliteStore;
let pid: number;
const keys: Record<string, string> = {};

const uploadsDir = () => join(dataDir, 'uploads');

async function newKey(name: string, limits: { jobs?: number; storedBytes?: number; uploadBytes?: number } = {}): Promise<string> {
  const { secret } = await createApiKey(store, name, {
    maxConcurrentJobs: limits.jobs ?? 1e6,
    maxStoredBytes: limits.storedBytes ?? 1e12,
    maxUploadBytes: limits.uploadBytes ?? 2 ** 30,
    requestsPerMinute: 1e6,
  });
  return secret;
}

beforeAll(async () => {
  dataDir = await makeDataDir();
  coord = await spawnCoordinator(dataDir, {
    TESSERA_CANARIES: 'off',
    TESSERA_UPLOAD_IDLE_SECONDS: String(IDLE_SECONDS),
    TESSERA_KEY_MAX_CONCURRENT_UPLOADS: String(PER_KEY_UPLOADS),
    TESSERA_MAX_CONCURRENT_UPLOADS: String(TOTAL_UPLOADS),
  });
  pid = coord.child.pid!;
  // The coordinator's own database, opened beside it (SQLite in WAL mode takes a second process) to make keys.
  store = new SqliteStore(join(dataDir, 'tessera.db'));
  keys.big = await newKey('big');
}, 90_000);

afterAll(async () => {
  store?.close();
  coord?.child.kill('SIGKILL');
  await coord?.exited;
  await rm(dataDir, { recursive: true, force: true });
});

const npy = (rows: number, cols: number, data: Float32Array) => encodeNpy({ shape: [rows, cols], data });
const filled = (n: number, v: number) => new Float32Array(n).fill(v);

function matmulParts(a: Uint8Array, b: Uint8Array, fields: Record<string, string> = {}): Part[] {
  return [
    { name: 'type', value: 'matmul' },
    ...Object.entries(fields).map(([name, value]) => ({ name, value })),
    { name: 'a', filename: 'a.npy', data: a },
    { name: 'b', filename: 'b.npy', data: b },
  ];
}

async function submit(key: string, parts: Part[]): Promise<{ status: number; headers: Headers; body: { id?: string; error?: { code: string; message: string } } & Partial<JobView> }> {
  const form = new FormData();
  for (const p of parts) {
    if ('data' in p) form.append(p.name, new Blob([p.data]), p.filename);
    else form.append(p.name, p.value);
  }
  const res = await fetch(`${coord.url}/api/v1/jobs`, { method: 'POST', body: form, headers: { authorization: `Bearer ${key}` } });
  return { status: res.status, headers: res.headers, body: (await res.json()) as never };
}

async function jobsOf(key: string): Promise<JobView[]> {
  const res = await fetch(`${coord.url}/api/v1/jobs?limit=1000`, { headers: { authorization: `Bearer ${key}` } });
  return ((await res.json()) as { jobs: JobView[] }).jobs;
}

/** Polls until `check` holds, failing with `what` after `ms`. */
async function within(ms: number, what: string, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const uploadFiles = () => readdir(uploadsDir()).catch(() => [] as string[]);
const uploadFds = () => openFilesUnder(pid, uploadsDir());
async function uploadedBytes(): Promise<number> {
  let total = 0;
  for (const f of await uploadFiles()) total += (await stat(join(uploadsDir(), f)).catch(() => ({ size: 0 }))).size;
  return total;
}

/** Nothing of a refused or abandoned job: every blob on disk belongs to a job, every job's blob is on disk. */
async function expectBlobsConsistent(): Promise<void> {
  const referenced = await store.referencedBlobs();
  const onDisk = new Set((await readdir(join(dataDir, 'blobs'))).filter((f) => /^[0-9a-f]{64}$/.test(f)));
  expect([...onDisk].filter((b) => !referenced.has(b)), 'blobs no job refers to').toEqual([]);
  expect([...referenced].filter((b) => !onDisk.has(b)), 'blobs missing under a job').toEqual([]);
}

describe('upload attacks', () => {
  it('keeps memory bounded per upload, whatever the file size (two 68 MiB uploads at once)', async () => {
    const k = 4096;
    const warm = npy(1024, 1024, randomMatrix(1024, 1024, 1));
    expect((await submit(keys.big!, matmulParts(warm, npy(1024, 64, randomMatrix(1024, 64, 2))))).status).toBe(201);
    const a = [npy(k, k, randomMatrix(k, k, 3)), npy(k, k, randomMatrix(k, k, 4))];
    const b = npy(k, 256, randomMatrix(k, 256, 5));
    await new Promise((r) => setTimeout(r, 500));
    const before = await rssBytes(pid);
    const resettable = await resetPeakRss(pid);
    const sampler = sampleRss(pid, 5);
    const answers = await Promise.all(a.map((ai) => submit(keys.big!, matmulParts(ai, b))));
    const peak = Math.max(await sampler.stop(), resettable ? await peakRssBytes(pid) : 0);
    expect(answers.map((r) => r.status)).toEqual([201, 201]);
    const growth = peak - before;
    console.log(`coordinator RSS ${(before / MiB).toFixed(1)} MiB before, peak ${(peak / MiB).toFixed(1)} MiB during two ${((a[0]!.length + b.length) / MiB).toFixed(0)} MiB uploads: +${(growth / MiB).toFixed(1)} MiB`);
    expect(growth).toBeLessThan(2 * 32 * MiB);
  }, 120_000);

  it('forgets an upload cut off mid-body within a second: no temporary file, no open descriptor, outside any quota', async () => {
    const limited = await newKey('cut-off', { jobs: 3, storedBytes: 2 * MiB, uploadBytes: 2 * MiB });
    const a = npy(700, 700, randomMatrix(700, 700, 6)); // 1.9 MB, under the key's 2 MB per file
    const b = npy(700, 10, randomMatrix(700, 10, 7));
    const uploads = Array.from({ length: 5 }, () => rawUpload(coord.url, limited, matmulParts(a, b)));
    // Stop in the middle of a (the first three) or of b, after a is complete (the other two).
    await Promise.all(uploads.map((u, i) => u.sendUntil(i < 3 ? Math.floor(u.size / 2) : u.size - 2000)));
    // What the issue saw: 7 MB and 5 descriptors held for a key allowed 2 MB.
    await within(5_000, 'the uploads reach the coordinator', async () => (await uploadFds()).length >= 5 && (await uploadedBytes()) > 4 * MiB);
    for (const u of uploads) u.hangUp();
    const ms = await within(1_000, 'files and descriptors of the cut-off uploads are gone', async () => (await uploadFiles()).length === 0 && (await uploadFds()).length === 0);
    console.log(`5 cut-off uploads cleaned up in ${ms} ms`);
    expect(await jobsOf(limited)).toEqual([]);
  }, 30_000);

  it('forgets an upload whose client leaves after the last byte, before its job is committed', async () => {
    const k = 4096;
    const before = (await jobsOf(keys.big!)).length;
    const upload = rawUpload(coord.url, keys.big!, matmulParts(npy(k, k, randomMatrix(k, k, 8)), npy(k, 128, randomMatrix(k, 128, 9))));
    await upload.sendUntil(upload.size);
    // The whole body is on the coordinator's disk: it is now cutting panels.
    await within(10_000, 'the body is received', async () => (await uploadedBytes()) >= k * k * 4 + k * 128 * 4);
    upload.hangUp();
    await within(2_000, 'files and descriptors are gone', async () => (await uploadFiles()).length === 0 && (await uploadFds()).length === 0);
    expect(await upload.response).toBeUndefined();
    expect((await jobsOf(keys.big!)).length).toBe(before);
    await new Promise((r) => setTimeout(r, 200));
    await expectBlobsConsistent();
  }, 30_000);

  it('cuts off a stalled upload with 408 and removes what it sent', async () => {
    const upload = rawUpload(coord.url, keys.big!, matmulParts(npy(300, 300, randomMatrix(300, 300, 10)), npy(300, 4, randomMatrix(300, 4, 11))));
    await upload.sendUntil(Math.floor(upload.size / 2));
    await within(5_000, 'the upload starts', async () => (await uploadFds()).length === 1);
    const res = await Promise.race([upload.response, new Promise<'hang'>((r) => setTimeout(() => r('hang'), IDLE_SECONDS * 1000 * 3))]);
    expect(res).not.toBe('hang');
    expect(res).toMatchObject({ status: 408 });
    expect(JSON.parse((res as { body: string }).body).error.code).toBe('UPLOAD_STALLED');
    expect(await uploadFiles()).toEqual([]);
    expect(await uploadFds()).toEqual([]);
  }, 30_000);

  it('caps concurrent uploads per key and overall with 429 and Retry-After', async () => {
    const parts = matmulParts(npy(200, 200, randomMatrix(200, 200, 12)), npy(200, 8, randomMatrix(200, 8, 13)));
    const holdSlots = async (key: string, n: number) => {
      const held = Array.from({ length: n }, () => rawUpload(coord.url, key, parts));
      await Promise.all(held.map((u) => u.sendUntil(Math.floor(u.size / 2))));
      return held;
    };
    const one = await newKey('caps-one');
    const held = await holdSlots(one, PER_KEY_UPLOADS);
    await within(5_000, 'the held uploads start', async () => (await uploadFds()).length === PER_KEY_UPLOADS);
    const perKey = await submit(one, parts);
    expect(perKey.status).toBe(429);
    expect(perKey.body.error?.code).toBe('TOO_MANY_UPLOADS');
    expect(perKey.body.error?.message).toMatch(/this key already has 8 job submissions in progress.*wait for one/);
    expect(Number(perKey.headers.get('retry-after'))).toBeGreaterThan(0);

    const two = await newKey('caps-two');
    const more = await holdSlots(two, TOTAL_UPLOADS - PER_KEY_UPLOADS);
    await within(5_000, 'the other key’s uploads start', async () => (await uploadFds()).length === TOTAL_UPLOADS);
    const overall = await submit(keys.big!, parts);
    expect(overall.status).toBe(429);
    expect(overall.body.error?.message).toMatch(/the most it takes at once; send this one again/);
    expect(Number(overall.headers.get('retry-after'))).toBeGreaterThan(0);

    for (const u of [...held, ...more]) u.hangUp();
    await within(1_000, 'the held uploads are gone', async () => (await uploadFiles()).length === 0 && (await uploadFds()).length === 0);
    // Slots come back with the uploads that held them.
    await within(1_000, 'the key can submit again', async () => (await submit(one, parts)).status === 201);
  }, 30_000);

  it('takes quota atomically at commit: of 8 parallel submits on a 3-job key, 3 are accepted, the rest leave nothing', async () => {
    const key = await newKey('race-jobs', { jobs: 3 });
    // Identical uploads of 4 MB (so that the eight overlap): the losers' panels are the winners' blobs,
    // which must survive the losers' clean-up.
    const parts = matmulParts(npy(1000, 500, randomMatrix(1000, 500, 14)), npy(500, 1000, randomMatrix(500, 1000, 15)));
    const answers = await Promise.all(Array.from({ length: 8 }, () => submit(key, parts)));
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 201, 201, 429, 429, 429, 429, 429]);
    for (const r of answers.filter((x) => x.status === 429)) {
      expect(r.body.error?.code).toBe('QUOTA_EXCEEDED');
      expect(r.body.error?.message).toMatch(/jobs queued or running, the most this key allows/);
    }
    expect(await store.ownerUsage((await store.listApiKeys()).find((k) => k.name === 'race-jobs')!.id)).toMatchObject({ activeJobs: 3 });
    expect((await jobsOf(key)).length).toBe(3);
    await expectBlobsConsistent();
    expect(await uploadFiles()).toEqual([]);
  }, 60_000);

  it('takes quota atomically at commit: 8 parallel submits cannot store more than the key’s 2 MB', async () => {
    const key = await newKey('race-bytes', { jobs: 3, storedBytes: 2 * MiB });
    const results = new Set(await readdir(join(dataDir, 'results')));
    // 0.9 MB each (inputs and result): two fit in 2 MB; each is different, so each loser has panels of its own to remove.
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => submit(key, matmulParts(npy(300, 256, randomMatrix(300, 256, 100 + i)), npy(256, 300, randomMatrix(256, 300, 200 + i))))),
    );
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 201, 413, 413, 413, 413, 413, 413]);
    for (const r of answers.filter((x) => x.status === 413)) {
      expect(r.body.error?.code).toBe('QUOTA_EXCEEDED');
      expect(r.body.error?.message).toMatch(/this job needs \d+ bytes of storage; this key uses \d+ of its 2097152/);
    }
    const owner = (await store.listApiKeys()).find((k) => k.name === 'race-bytes')!.id;
    expect((await store.ownerUsage(owner)).storedBytes).toBeLessThanOrEqual(2 * MiB);
    const newResults = (await readdir(join(dataDir, 'results'))).filter((f) => !results.has(f));
    expect(newResults).toHaveLength(2);
    await expectBlobsConsistent();
    expect(await uploadFiles()).toEqual([]);
  }, 60_000);

  it('refuses inputs whose product cannot be represented in float32, with the bound', async () => {
    // 3e38 × ones: every element of C is 4 · 3e38, past float32's 3.4e38.
    const over = await submit(keys.big!, matmulParts(npy(4, 4, filled(16, 3e38)), npy(4, 4, filled(16, 1))));
    expect(over.status).toBe(400);
    expect(over.body.error?.code).toBe('PRODUCT_OVERFLOW');
    expect(over.body.error?.message).toMatch(/max\|a\|·max\|b\|·K = 3\.000e\+38·1\.000e\+0·4 = 1\.200e\+39.*float32 maximum 3\.4028235e\+38/);
    // Large but safe: 1e19 · 1e19 · 3 = 3e38 fits.
    expect((await submit(keys.big!, matmulParts(npy(2, 3, filled(6, 1e19)), npy(3, 2, filled(6, 1e19))))).status).toBe(201);
    expect((await submit(keys.big!, matmulParts(npy(2, 3, filled(6, 1e19)), npy(3, 2, filled(6, -2e19))))).status).toBe(400);
  });

  it('treats fields and files named after Object.prototype as any other name', async () => {
    // An inference model whose inputs are called constructor and toString.
    const onnx = model({
      nodes: [node('Add', ['constructor', 'toString'], ['y'], 'add')],
      inputs: [value('constructor', ['batch', 4]), value('toString', ['batch', 4])],
      outputs: [value('y', ['batch', 4])],
      initializers: [],
    });
    const input = npy(3, 4, randomMatrix(3, 4, 16));
    const inference = await submit(keys.big!, [
      { name: 'type', value: 'inference' },
      { name: 'model', filename: 'model.onnx', data: onnx },
      { name: 'constructor', filename: 'c.npy', data: input },
      { name: 'toString', filename: 't.npy', data: input },
    ]);
    expect(inference.body.error?.message ?? '').not.toMatch(/twice/);
    expect(inference.status).toBe(201);
    const a = npy(2, 2, randomMatrix(2, 2, 17));
    const stray = await submit(keys.big!, [...matmulParts(a, a), { name: 'toString', filename: 'x.npy', data: a }]);
    expect(stray.status).toBe(400);
    expect(stray.body.error?.code).toBe('UNEXPECTED_FILE');
    for (const name of ['constructor', '__proto__', 'hasOwnProperty']) {
      expect((await submit(keys.big!, matmulParts(a, a, { [name]: '1' }))).status, `field ${name}`).toBe(201);
    }
    const twice = await submit(keys.big!, [...matmulParts(a, a), { name: 'priority', value: '1' }, { name: 'priority', value: '2' }]);
    expect(twice.status).toBe(400);
    expect(twice.body.error?.message).toMatch(/"priority" was sent twice/);
  });

  it('reads numbers in form fields as decimal digits only, naming the field', async () => {
    const a = npy(2, 2, randomMatrix(2, 2, 18));
    for (const text of ['0x5', '1e1', ' 5', '5 ', '', '5.0', '+5', '٥']) {
      const res = await submit(keys.big!, matmulParts(a, a, { priority: text }));
      expect(res.status, JSON.stringify(text)).toBe(400);
      expect(res.body.error?.message).toMatch(/priority must be a number: a whole number in decimal digits/);
    }
    const ok = await submit(keys.big!, matmulParts(a, a, { priority: '5' }));
    expect(ok.status).toBe(201);
    expect(ok.body.priority).toBe(5);
    const list = await fetch(`${coord.url}/api/v1/jobs?limit=0x10`, { headers: { authorization: `Bearer ${keys.big}` } });
    expect(list.status).toBe(400);
    expect(((await list.json()) as { error: { message: string } }).error.message).toMatch(/limit must be a number: a whole number in decimal digits/);
  });

  it('refuses .npy headers NumPy would read another way (a duplicate key)', async () => {
    const good = npy(2, 2, randomMatrix(2, 2, 19));
    const headerEnd = good.length - 16;
    const text = new TextDecoder('latin1').decode(good.subarray(0, headerEnd));
    // NumPy keeps the last of two keys: it would read this file as big-endian.
    const extra = "'descr':'>f4', ";
    const forged = text.replace("'fortran_order'", `${extra}'fortran_order'`).replace(new RegExp(` {${extra.length}}\n$`), '\n');
    expect(forged.length).toBe(headerEnd);
    const bytes = new Uint8Array(good);
    for (let i = 0; i < headerEnd; i++) bytes[i] = forged.charCodeAt(i);
    const res = await submit(keys.big!, matmulParts(bytes, good));
    expect(res.status).toBe(400);
    expect(res.body.error?.code).toBe('BAD_NPY_HEADER');
    expect(res.body.error?.message).toMatch(/file "a".*"descr" appears twice/);
  });
});
