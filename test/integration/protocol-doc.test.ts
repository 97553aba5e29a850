/**
 * docs/protocol.md promises to be enough to write a contributor. These tests
 * hold it to that: they run the document's own contributor against a real
 * coordinator, compare its seeded-input generator and worked example with the
 * coordinator's, and check its error tables against what the coordinator
 * answers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_ERROR_CODES, type HelloReply, type LeaseReply, type MatmulLease } from '../../shared/protocol';
import { inputSeeds, probePositions, seededElement } from '../../shared/seeded';
import { downloadResult, startTestCoordinator, submitMatmul, waitForJob, type TestCoordinator } from '../support/coordinator';
import { codeSpans, docExample, docTable, readDoc } from '../support/doc-examples';
import { randomMatrix } from '../support/matrices';

const ROOT = resolve(__dirname, '../..');
const DOC = readDoc(join(ROOT, 'docs/protocol.md'));

interface DocSeeded {
  mix(x: number): number;
  seededElement(seed: number, i: number): number;
  inputSeeds(seed: number, j: number): { a: number; b: number };
  probePositions(shape: { m: number; n: number }, seed: number, j: number): number[];
}

async function importDocSeeded(): Promise<DocSeeded> {
  const code = `${docExample(DOC, 'seeded')}\nexport { mix, seededElement, inputSeeds, probePositions };\n`;
  return (await import(`data:text/javascript,${encodeURIComponent(code)}`)) as DocSeeded;
}

describe('the seeded benchmark inputs, as the document describes them', () => {
  it('generate the same elements, seeds and probe positions as the coordinator', async () => {
    const doc = await importDocSeeded();
    const seeds = [0, 1, 12345, 0x7fffffff, 0x80000000, 0xffffffff, ...Array.from({ length: 50 }, (_, i) => (Math.imul(i + 1, 0x9e3779b1) >>> 0))];
    const shapes = [
      { m: 1, k: 1, n: 1 },
      { m: 64, k: 32, n: 48 },
      { m: 4096, k: 4096, n: 4096 },
      { m: 1000, k: 7, n: 1300 },
    ];
    for (const seed of seeds) {
      for (const i of [0, 1, 2, 1000, 0xffffff, 0xffffffff]) expect(doc.seededElement(seed, i)).toBe(seededElement(seed, i));
      for (let j = 0; j < 8; j++) {
        expect(doc.inputSeeds(seed, j)).toEqual(inputSeeds(seed, j));
        for (const shape of shapes) expect(doc.probePositions(shape, seed, j)).toEqual(probePositions(shape, seed, j));
      }
    }
  });

  it("worked example matches the coordinator's numbers", () => {
    const lines = new Map(
      docExample(DOC, 'seeded-worked')
        .split('\n')
        .map((line) => line.split(/:\s+/, 2) as [string, string]),
    );
    const numbers = (key: string) => {
      const value = lines.get(key);
      if (value === undefined) throw new Error(`the worked example has no line "${key}:"`);
      return value.match(/-?\d+(\.\d+)?(e-?\d+)?/g)!.map(Number);
    };
    const seed = 12345;
    expect(numbers('elements of seed 12345, i = 0..3')).toEqual([0, 1, 2, 3].map((i) => seededElement(seed, i)));
    expect(numbers('inputSeeds(12345, 0)')).toEqual([inputSeeds(seed, 0).a, inputSeeds(seed, 0).b]);
    expect(numbers('inputSeeds(12345, 1)')).toEqual([inputSeeds(seed, 1).a, inputSeeds(seed, 1).b]);
    expect(numbers('A of shape 0, elements 0..3')).toEqual([0, 1, 2, 3].map((i) => seededElement(inputSeeds(seed, 0).a, i)));
    expect(numbers('probe positions of shape 0')).toEqual(probePositions({ m: 64, k: 32, n: 48 }, seed, 0));
  });
});

describe('the error codes the document lists', () => {
  it('are exactly the protocol error codes', () => {
    const documented = docTable(DOC, 'protocol-error-codes').map((row) => codeSpans(row[0]!)[0]);
    expect([...documented].sort()).toEqual([...PROTOCOL_ERROR_CODES].sort());
  });

  it('on the result PUT are protocol codes, or the two HTTP-layer codes', () => {
    const httpLayer = ['BAD_REQUEST', 'UNSUPPORTED_MEDIA_TYPE'];
    for (const row of docTable(DOC, 'result-put-statuses')) {
      for (const code of codeSpans(row[1]!)) expect([...PROTOCOL_ERROR_CODES, ...httpLayer]).toContain(code);
    }
  });
});

/** The codes the document's result-PUT table gives for an HTTP status. */
function documentedCodes(status: number): string[] {
  return docTable(DOC, 'result-put-statuses')
    .filter((row) => row[0] === String(status))
    .flatMap((row) => codeSpans(row[1]!));
}

describe('against a coordinator', () => {
  let coord: TestCoordinator;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    // Canaries off: the lease these tests spoil must be the test's own job's.
    coord = await startTestCoordinator({ targetTiles: 6, canaries: false });
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.disconnect();
  });
  afterAll(async () => coord.dispose());

  async function hello(): Promise<Socket> {
    const socket = io(coord.url, { transports: ['websocket'] });
    sockets.push(socket);
    const reply = (await socket.timeout(10_000).emitWithAck('hello', {
      protocol: 1,
      agent: { kind: 'agent' },
      adapter: {},
      limits: { maxStorageBufferBindingSize: 2 ** 27, maxBufferSize: 2 ** 27 },
    })) as HelloReply;
    expect(reply.ok).toBe(true);
    return socket;
  }

  const put = (token: string, body: Uint8Array | string, headers: Record<string, string>) =>
    fetch(`${coord.url}/api/v1/leases/${encodeURIComponent(token)}/result`, { method: 'PUT', body, headers });

  async function expectDocumented(res: Response): Promise<{ ok?: boolean; error?: { code: string; message: string } }> {
    const body = (await res.json()) as { ok?: boolean; error?: { code: string; message: string } };
    expect(documentedCodes(res.status), `status ${res.status} ${JSON.stringify(body)}`).toContain(body.error?.code);
    return body;
  }

  it('answers the result PUT with the statuses and codes the document gives', async () => {
    const octets = { 'content-type': 'application/octet-stream', 'x-shard-id': 'x' };
    const cases: [string, () => Promise<Response>, number][] = [
      ['an unknown lease', () => put('no-such-lease-token', new Uint8Array(16), octets), 404],
      ['no X-Shard-Id', () => put('no-such-lease-token', new Uint8Array(16), { 'content-type': 'application/octet-stream' }), 400],
      ['a text body', () => put('no-such-lease-token', 'hello', { 'content-type': 'text/plain', 'x-shard-id': 'x' }), 415],
      ['a body over 16 MiB', () => put('no-such-lease-token', new Uint8Array(16 * 1024 * 1024 + 4), octets), 413],
    ];
    for (const [what, send, status] of cases) {
      const res = await send();
      expect(res.status, what).toBe(status);
      await expectDocumented(res);
    }
  });

  it('a wrong-sized tile uses up its lease; a second hello on one connection is refused', async () => {
    const job = await submitMatmul(coord.url, { rows: 8, cols: 8, data: randomMatrix(8, 8, 1) }, { rows: 8, cols: 8, data: randomMatrix(8, 8, 2) });
    const socket = await hello();
    const again = (await socket.timeout(10_000).emitWithAck('hello', { protocol: 1, agent: { kind: 'agent' }, adapter: {}, limits: { maxStorageBufferBindingSize: 2 ** 27, maxBufferSize: 2 ** 27 } })) as HelloReply;
    expect(again).toMatchObject({ ok: false, error: { code: 'BAD_MESSAGE' } });
    const granted = (await socket.timeout(10_000).emitWithAck('lease:request', { max: 1 })) as LeaseReply;
    if (!granted.ok) throw new Error(granted.error.message);
    const lease = granted.leases[0] as MatmulLease;
    expect(lease.kind).toBe('matmul');
    expect(lease.a.url.startsWith('/api/v1/')).toBe(true);
    const headers = { 'content-type': 'application/octet-stream', 'x-shard-id': lease.shardId };
    const short = new Uint8Array(lease.rows * lease.cols * 4 - 4);
    const first = await put(lease.leaseToken, short, headers);
    expect(first.status).toBe(422);
    expect((await expectDocumented(first)).error?.code).toBe('SHAPE_MISMATCH');
    // The same bytes again (a lost reply): the same answer.
    const resent = await put(lease.leaseToken, short, headers);
    expect(resent.status).toBe(422);
    expect((await expectDocumented(resent)).error?.code).toBe('SHAPE_MISMATCH');
    // A corrected tile on the used-up lease is a different result for an ended lease.
    const corrected = await put(lease.leaseToken, new Uint8Array(lease.rows * lease.cols * 4), headers);
    expect(corrected.status).toBe(404);
    expect((await expectDocumented(corrected)).error?.code).toBe('LEASE_UNKNOWN');
    expect(lease.jobId).toBe(job.id);
  });
});

describe("the document's minimal contributor", () => {
  let coord: TestCoordinator;
  let agent: ChildProcess | undefined;
  let agentDir: string | undefined;
  beforeAll(async () => {
    coord = await startTestCoordinator({ targetTiles: 6 });
  });
  afterAll(async () => {
    agent?.kill();
    if (agentDir) rmSync(agentDir, { recursive: true, force: true });
    await coord.dispose();
  });

  it('completes a matmul job with the right numbers', async () => {
    const [m, k, n] = [150, 96, 140];
    const a = randomMatrix(m, k, 7);
    const b = randomMatrix(k, n, 8);
    const job = await submitMatmul(coord.url, { rows: m, cols: k, data: a }, { rows: k, cols: n, data: b });
    expect(job.progress.total).toBeGreaterThan(1);

    // Inside node_modules' tree, so that its `import 'socket.io-client'` resolves as it would in the reader's project.
    mkdirSync(join(ROOT, 'node_modules/.cache'), { recursive: true });
    agentDir = mkdtempSync(join(ROOT, 'node_modules/.cache/protocol-doc-'));
    const file = join(agentDir, 'contributor.mjs');
    writeFileSync(file, docExample(DOC, 'minimal-contributor'));
    let output = '';
    agent = spawn(process.execPath, [file], { env: { ...process.env, TESSERA_URL: coord.url }, stdio: ['ignore', 'pipe', 'pipe'] });
    agent.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    agent.stderr!.on('data', (d: Buffer) => (output += d.toString()));

    const done = await waitForJob(coord.url, job.id, 15_000).catch((err: unknown) => {
      throw new Error(`${String(err)}\ncontributor output:\n${output}`);
    });
    expect(done.status, output).toBe('completed');
    expect(output).toMatch(/joined as [0-9a-f-]{36}/);
    expect(output).toMatch(/: 200 verified/);
    expect(output).not.toMatch(/: [45]\d\d /);
    // Its public standing, under the field names the document gives.
    const id = /joined as ([0-9a-f-]{36})/.exec(output)![1]!;
    const standing = (await (await fetch(`${coord.url}/api/v1/contributors/${id}`)).json()) as Record<string, unknown>;
    expect(standing).toMatchObject({ status: 'active', strikes: 0, probation: false, rejectedShards: 0, verifiedJobs: 1 });
    expect(standing.verifiedShards).toBeGreaterThanOrEqual(job.progress.total);
    expect(standing.firstVerifiedAt).toEqual(expect.any(String));
    // A burst of small tiles from one job, minutes old, is never trusted (that takes GFLOP, jobs and hours).
    expect(['new', 'established']).toContain(standing.trustLevel);

    const c = await downloadResult(coord.url, job.id);
    expect(c.shape).toEqual([m, n]);
    let worst = 0;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let ref = 0;
        for (let q = 0; q < k; q++) ref += a[i * k + q]! * b[q * n + j]!;
        worst = Math.max(worst, Math.abs(c.data[i * n + j]! - ref));
      }
    expect(worst).toBeLessThan(1e-5);
  });
});
