import { execFile } from 'node:child_process';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_KEY_FILE } from '../../server/auth/api-keys';
import { PROTOCOL_VERSION, type LeaseReply, type MatmulLease, type ResultReply } from '../../shared/protocol';
import { WEBGPU_DEFAULT_LIMITS } from '../../shared/tiling';
import { makeDataDir, startTestCoordinator, type TestCoordinator } from '../support/coordinator';
import { npyBlob, randomMatrix } from '../support/matrices';
import { startPostgres, type PostgresCluster } from '../support/postgres';
import { SimContributor } from '../support/sim-contributor';

/**
 * A key revoked by the operator's CLI, a separate process writing to the store, takes
 * effect on running coordinators within a second or two: the key's event streams end
 * with a `revoked` event, its queued and running jobs are cancelled (leases withdrawn
 * from contributors), and every request with it gets 401. Other keys are untouched.
 */

const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;
/**
 * Longest a running coordinator may take to act on a revocation: it looks every 500 ms and measures 0.33–0.42 s
 * here; the bound leaves room for a loaded 2-core CI machine and still fails a coordinator that waits for its
 * 30 s full re-read.
 */
const NOTICE_MS = 5_000;

/** Runs `npm run keys -- <args>` as the operator would (the CLI itself, under tsx). */
async function keysCli(env: Record<string, string>, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('npx', ['tsx', 'cli/keys.ts', ...args], { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 });
}

async function createKeyWithCli(env: Record<string, string>, name: string): Promise<string> {
  const { stdout } = await keysCli(env, 'create', '--name', name, '--max-jobs', '10');
  const secret = /^(tsk_\S+)$/m.exec(stdout)?.[1];
  if (!secret) throw new Error(`no key in the CLI's output: ${stdout}`);
  return secret;
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

async function submit(url: string, key: string, size = 64): Promise<string> {
  const form = new FormData();
  form.set('type', 'matmul');
  form.set('a', npyBlob(size, size, randomMatrix(size, size, 1)), 'a.npy');
  form.set('b', npyBlob(size, size, randomMatrix(size, size, 2)), 'b.npy');
  const res = await fetch(`${url}/api/v1/jobs`, { method: 'POST', body: form, headers: bearer(key) });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

interface SseEvent {
  event: string;
  data: string;
  at: number;
}

/** An open GET /jobs/:id/events: the events so far, and a promise that settles when the server ends the stream. */
interface Stream {
  events: SseEvent[];
  ended: Promise<void>;
  endedAt?: number;
  abort(): void;
}

async function openStream(url: string, key: string, jobId: string): Promise<Stream> {
  const ctl = new AbortController();
  const res = await fetch(`${url}/api/v1/jobs/${jobId}/events`, { headers: bearer(key), signal: ctl.signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const stream: Stream = { events: [], ended: Promise.resolve(), abort: () => ctl.abort() };
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  stream.ended = (async () => {
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data !== undefined) stream.events.push({ event, data, at: Date.now() });
      }
    }
    stream.endedAt = Date.now();
  })();
  // The first progress event says the stream is live.
  await until(() => stream.events.length > 0, 5_000, 'the stream sent no first event');
  return stream;
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits for the stream to end (failing after `ms`) and returns its last event. */
async function endOf(stream: Stream, ms: number): Promise<SseEvent> {
  await Promise.race([stream.ended, new Promise((_, reject) => setTimeout(() => reject(new Error(`stream still open after ${ms} ms`)), ms))]);
  const last = stream.events.at(-1);
  if (!last) throw new Error('the stream ended without an event');
  return last;
}

async function revokedAt(coord: TestCoordinator, name: string): Promise<number> {
  const key = (await coord.store.listApiKeys()).find((k) => k.name === name);
  if (!key?.revokedAt) throw new Error(`key ${name} is not revoked`);
  return key.revokedAt;
}

describe('revoking a key with the CLI (embedded store)', () => {
  let coord: TestCoordinator;
  const sims: SimContributor[] = [];

  beforeAll(async () => {
    coord = await startTestCoordinator({ canaries: false, targetTiles: 4 });
  });
  afterAll(async () => {
    for (const s of sims) s.disconnect();
    await coord?.dispose();
  });

  it('closes its streams, cancels its queued and running jobs, withdraws their leases and refuses the key at once', { timeout: 120_000 }, async () => {
    const env = { TESSERA_DATA_DIR: coord.dataDir };
    const alice = await createKeyWithCli(env, 'alice');
    const bob = await createKeyWithCli(env, 'bob');
    const running = await submit(coord.url, alice);
    // A contributor holds a lease of alice's first job, so that job is running when the key goes.
    const sim = await new SimContributor(coord.url).connect();
    sims.push(sim);
    const revocations: { shardId: string; reason: string }[] = [];
    sim.socket.on('lease:revoked', (msg) => revocations.push(msg));
    const reply: LeaseReply = await sim.socket.timeout(10_000).emitWithAck('lease:request', { max: 1 });
    if (!reply.ok) throw new Error(reply.error.message);
    const held = reply.leases[0] as MatmulLease;
    expect(held.jobId).toBe(running);
    const queued = await submit(coord.url, alice);
    const bobs = await submit(coord.url, bob);
    expect((await coord.store.getJob(running))!.status).toBe('running');
    expect((await coord.store.getJob(queued))!.status).toBe('queued');

    const streams = [await openStream(coord.url, alice, running), await openStream(coord.url, alice, queued)];
    const bobStream = await openStream(coord.url, bob, bobs);

    const { stdout } = await keysCli(env, 'revoke', '--name', 'alice');
    expect(stdout).toContain('revoked "alice"');
    const at = await revokedAt(coord, 'alice');

    for (const s of streams) {
      const last = await endOf(s, NOTICE_MS + 3_000);
      console.log(`embedded: stream closed ${s.endedAt! - at} ms after the CLI revoked the key`);
      expect(last.event).toBe('revoked');
      expect(JSON.parse(last.data)).toEqual({ code: 'KEY_REVOKED', message: expect.stringContaining('"alice" was revoked') });
      expect(s.endedAt! - at).toBeLessThan(NOTICE_MS);
    }
    await until(async () => (await coord.store.getJob(queued))!.status === 'cancelled', NOTICE_MS, 'the queued job was not cancelled');
    for (const id of [running, queued]) expect(await coord.store.getJob(id)).toMatchObject({ status: 'cancelled', reason: 'API key revoked' });
    await until(() => revocations.length > 0, NOTICE_MS, 'the contributor heard no lease:revoked');
    expect(revocations).toEqual([{ shardId: held.shardId, reason: 'API key revoked' }]);
    // The tile of a withdrawn lease is refused, not assembled.
    const late: ResultReply = await sim.socket.timeout(10_000).emitWithAck('lease:result', { shardId: held.shardId, leaseToken: held.leaseToken, c: new Uint8Array(held.rows * held.cols * 4) });
    expect(late).toMatchObject({ ok: false, error: { code: 'JOB_CANCELLED' } });

    for (const path of ['/api/v1/jobs', `/api/v1/jobs/${running}`, `/api/v1/jobs/${queued}/events`]) {
      const res = await fetch(`${coord.url}${path}`, { headers: bearer(alice) });
      expect(res.status, path).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
    }
    const form = new FormData();
    form.set('type', 'matmul');
    expect((await fetch(`${coord.url}/api/v1/jobs`, { method: 'POST', body: form, headers: bearer(alice) })).status).toBe(401);

    // bob's key, job and stream go on.
    expect(bobStream.endedAt).toBeUndefined();
    expect(bobStream.events.map((e) => e.event)).not.toContain('revoked');
    expect((await coord.store.getJob(bobs))!.status).toBe('queued');
    expect((await fetch(`${coord.url}/api/v1/jobs/${bobs}`, { headers: bearer(bob) })).status).toBe(200);
    bobStream.abort();

    // Revoking again is refused by the CLI, with a reason.
    await expect(keysCli(env, 'revoke', '--name', 'alice')).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('no active key named "alice"') });
  });

  it('cancels a job whose upload began before the revocation and ended after it', { timeout: 120_000 }, async () => {
    const env = { TESSERA_DATA_DIR: coord.dataDir };
    const frank = await createKeyWithCli(env, 'frank');
    const boundary = 'revocation-test-boundary';
    const part = (name: string, body: Uint8Array | string, file?: string) => [
      `--${boundary}\r\nContent-Disposition: form-data; name="${name}"${file ? `; filename="${file}"\r\nContent-Type: application/octet-stream` : ''}\r\n\r\n`,
      body,
      '\r\n',
    ];
    const npy = async (seed: number) => new Uint8Array(await npyBlob(64, 64, randomMatrix(64, 64, seed)).arrayBuffer());
    const chunks = [...part('type', 'matmul'), ...part('a', await npy(1), 'a.npy'), ...part('b', await npy(2), 'b.npy'), `--${boundary}--\r\n`];
    const encoded = chunks.map((c) => (typeof c === 'string' ? new TextEncoder().encode(c) : c));
    // The body stops before its last file; it goes on once the CLI has revoked the key.
    let resume!: () => void;
    const resumed = new Promise<void>((r) => (resume = r));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent === 4) await resumed;
        if (sent < encoded.length) controller.enqueue(encoded[sent++]!);
        else controller.close();
      },
    });
    const posted = fetch(`${coord.url}/api/v1/jobs`, {
      method: 'POST',
      body,
      headers: { ...bearer(frank), 'content-type': `multipart/form-data; boundary=${boundary}` },
      duplex: 'half',
    } as RequestInit);
    await until(() => sent >= 4, 5_000, 'the upload did not start');
    await keysCli(env, 'revoke', '--name', 'frank');
    resume();
    const res = await posted;
    console.log(`upload finished after the revocation: ${res.status}`);
    // Either the coordinator refuses the upload at its end, or it takes the job and cancels it at once.
    if (res.status === 201) {
      const { id } = (await res.json()) as { id: string };
      await until(async () => (await coord.store.getJob(id))!.status === 'cancelled', NOTICE_MS, 'the job committed after the revocation was not cancelled');
      expect(await coord.store.getJob(id)).toMatchObject({ reason: 'API key revoked' });
    } else {
      expect(res.status).toBe(401);
    }
  });

  it('cancels the jobs of a key revoked while the coordinator was down, on start', { timeout: 120_000 }, async () => {
    const dataDir = await makeDataDir();
    const env = { TESSERA_DATA_DIR: dataDir };
    let first = await startTestCoordinator({ canaries: false }, dataDir);
    const carol = await createKeyWithCli(env, 'carol');
    const job = await submit(first.url, carol);
    await first.close();
    await keysCli(env, 'revoke', '--name', 'carol');
    first = await startTestCoordinator({ canaries: false }, dataDir);
    try {
      expect(await first.store.getJob(job)).toMatchObject({ status: 'cancelled', reason: 'API key revoked' });
    } finally {
      await first.dispose();
    }
  });
});

describe('revoking a key with the CLI (networked: two coordinators on one PostgreSQL)', () => {
  let postgres: PostgresCluster;
  const nodes: TestCoordinator[] = [];
  let databaseUrl: string;

  beforeAll(async () => {
    postgres = await startPostgres();
    databaseUrl = await postgres.createDatabase();
    const dirs = [await makeDataDir(), await makeDataDir()];
    for (let i = 0; i < 2; i++) {
      // The first node creates the local key in its data directory; the test helper reads it from each node's.
      if (i > 0) await copyFile(join(dirs[0]!, LOCAL_KEY_FILE), join(dirs[i]!, LOCAL_KEY_FILE));
      nodes.push(await startTestCoordinator({ canaries: false, cluster: { databaseUrl, nodeId: `node-${i}`, finalizePollMs: 1_000 } }, dirs[i]));
    }
  }, 120_000);
  afterAll(async () => {
    for (const n of nodes) await n.dispose();
    await postgres?.stop();
  });

  it('every node closes the key\'s streams and refuses it; its jobs are cancelled once', { timeout: 120_000 }, async () => {
    const env = { TESSERA_DATABASE_URL: databaseUrl, TESSERA_DATA_DIR: nodes[0]!.dataDir };
    const dave = await createKeyWithCli(env, 'dave');
    const erin = await createKeyWithCli(env, 'erin');
    const [a, b] = nodes as [TestCoordinator, TestCoordinator];
    const jobA = await submit(a.url, dave);
    const jobB = await submit(b.url, dave);
    const other = await submit(a.url, erin);
    // Each node streams both of dave's jobs.
    const streams = [await openStream(a.url, dave, jobA), await openStream(a.url, dave, jobB), await openStream(b.url, dave, jobA), await openStream(b.url, dave, jobB)];
    const erinStream = await openStream(b.url, erin, other);

    await keysCli(env, 'revoke', '--name', 'dave');
    const at = await revokedAt(a, 'dave');
    for (const s of streams) {
      const last = await endOf(s, NOTICE_MS + 3_000);
      console.log(`networked: stream closed ${s.endedAt! - at} ms after the CLI revoked the key`);
      expect(last.event).toBe('revoked');
      expect(s.endedAt! - at).toBeLessThan(NOTICE_MS);
    }
    for (const id of [jobA, jobB]) {
      await until(async () => (await a.store.getJob(id))!.status === 'cancelled', NOTICE_MS, `job ${id} was not cancelled`);
      expect(await b.store.getJob(id)).toMatchObject({ status: 'cancelled', reason: 'API key revoked' });
    }
    for (const node of nodes) expect((await fetch(`${node.url}/api/v1/jobs`, { headers: bearer(dave) })).status).toBe(401);
    expect(erinStream.endedAt).toBeUndefined();
    expect((await a.store.getJob(other))!.status).toBe('queued');
    expect((await fetch(`${b.url}/api/v1/jobs/${other}`, { headers: bearer(erin) })).status).toBe(200);
    erinStream.abort();
  });
});
