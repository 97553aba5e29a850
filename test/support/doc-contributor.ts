/**
 * A contributor written from docs/protocol.md alone, the way an outside party
 * would write one: socket.io-client for control (`hello`, `lease:request`),
 * plain HTTP for the panels (the lease's relative `url`s) and for results
 * (`PUT /api/v1/leases/<token>/result` with `X-Shard-Id`), and a CPU matmul.
 * It imports nothing from the coordinator or the page: the types below are
 * the document's tables, so a gap in the document is a gap here too.
 *
 * It can lie (`corrupt`), keep or shed its identity (`token`), and pose as a
 * client on another network (`forwardedFor`, believed by a coordinator whose
 * TESSERA_TRUST_PROXY trusts loopback). It records every reply it gets.
 */
import { createHash } from 'node:crypto';
import { Agent, request } from 'node:http';
import { io, type Socket } from 'socket.io-client';
import { z } from 'zod';

/** protocol.md, "Fetching blobs": `{ sha256, bytes, url }`, `url` relative to the coordinator's origin. */
const BlobRefSchema = z.object({ sha256: z.string(), bytes: z.number(), url: z.string() });

/** protocol.md, "A Lease (kind matmul)". Other kinds are not asked for (`accepts` defaults to matmul). */
const MatmulLeaseSchema = z.object({
  kind: z.string().optional(),
  shardId: z.string(),
  leaseToken: z.string(),
  jobId: z.string(),
  rows: z.number().int().positive(),
  cols: z.number().int().positive(),
  k: z.number().int().positive(),
  a: BlobRefSchema,
  b: BlobRefSchema,
  deadline: z.number(),
});
export type DocLease = z.infer<typeof MatmulLeaseSchema>;

const ErrorSchema = z.object({ code: z.string(), message: z.string() });
const FailedSchema = z.object({ ok: z.literal(false), error: ErrorSchema });
const HelloReplySchema = z.union([z.object({ ok: z.literal(true), contributorId: z.string(), token: z.string(), protocol: z.literal(1) }), FailedSchema]);
const LeaseReplySchema = z.union([z.object({ ok: z.literal(true), leases: z.array(z.unknown()), retryAfterMs: z.number().optional() }), FailedSchema]);
const ResultReplySchema = z.union([z.object({ ok: z.literal(true), status: z.enum(['verified', 'pending']) }), FailedSchema]);
/** HTTP-level refusals (400, 413, 415, 429, 500) carry only `{ error }`. */
const HttpErrorSchema = z.object({ error: ErrorSchema });

/** The reply to a result PUT as an outcome; a body the document does not describe is kept as UNEXPECTED_REPLY. */
function outcomeOf(httpStatus: number, body: Buffer): Outcome {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    json = undefined;
  }
  const reply = ResultReplySchema.safeParse(json);
  if (reply.success) return reply.data.ok ? { kind: reply.data.status } : { kind: 'error', ...reply.data.error };
  const refused = HttpErrorSchema.safeParse(json);
  if (refused.success) return { kind: 'error', ...refused.data.error };
  return { kind: 'error', code: 'UNEXPECTED_REPLY', message: `HTTP ${httpStatus}: ${body.toString('utf8').slice(0, 200)}` };
}

/** What the coordinator said about one returned tile. */
export type Outcome = { kind: 'verified' } | { kind: 'pending' } | { kind: 'error'; code: string; message: string };

export interface ReturnedResult {
  shardId: string;
  jobId: string;
  rows: number;
  cols: number;
  k: number;
  /** The tile sent differs from this contributor's honest computation. */
  corrupted: boolean;
  /** Largest |sent − honest| over the tile's elements (0 when honest). */
  injected: number;
  httpStatus: number;
  outcome: Outcome;
  /** A byte-identical re-send of this result (a lost reply, simulated) and what it got. */
  resent?: { httpStatus: number; outcome: Outcome };
}

/** Summation order of the CPU matmul: honest contributors on different hardware round differently. */
export type Summation = 'forward' | 'reverse' | 'four-way';

export interface DocContributorOptions {
  /** Identity token from an earlier `hello`; omitted: a new identity. */
  token?: string;
  /** Client address sent as X-Forwarded-For on the handshake and every HTTP request. */
  forwardedFor?: string;
  /** Leases asked for at once (`lease:request {max}`). */
  maxLeases?: number;
  /** Leases worked on at once: each lane asks for its own and computes while the others wait on the network. */
  lanes?: number;
  summation?: Summation;
  /**
   * Called with the honest tile; returns the tile to send instead, or
   * undefined to send the honest one this time.
   */
  corrupt?: (tile: Float32Array, lease: DocLease) => Float32Array | undefined;
  /** Share of results sent a second time, byte for byte, as after a lost reply. */
  resendShare?: number;
  /** Random source for resendShare (deterministic tests pass their own). */
  random?: () => number;
}

export type JoinResult = { ok: true; contributorId: string; token: string } | { ok: false; code: string; message: string };
export type StopReason = 'stopped' | 'disconnected';

const ACK_TIMEOUT_MS = 60_000;
/** Blobs kept by sha256: a job's panels, a few jobs deep. */
const BLOB_CACHE_ENTRIES = 256;

export class DocContributor {
  readonly results: ReturnedResult[] = [];
  /** Socket replies the document does not describe. */
  readonly unexpected: string[] = [];
  /** HTTP 429s the result PUT got (each retried after a pause). */
  throttled = 0;
  contributorId = '';
  token: string | undefined;
  private socket: Socket | undefined;
  private stopping = false;
  private readonly sleepers = new Set<() => void>();
  private readonly blobs = new Map<string, Float32Array>();
  private readonly random: () => number;
  /** Keep-alive connections for panels and results, as a browser keeps them. */
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 8 });

  constructor(
    private readonly origin: string,
    private readonly opts: DocContributorOptions = {},
  ) {
    this.token = opts.token;
    this.random = opts.random ?? Math.random;
  }

  get verified(): number {
    return this.results.filter((r) => r.outcome.kind === 'verified').length;
  }

  get connected(): boolean {
    return this.socket?.connected ?? false;
  }

  private headers(): Record<string, string> {
    return this.opts.forwardedFor ? { 'x-forwarded-for': this.opts.forwardedFor } : {};
  }

  /** Connects and says hello; a refusal (BANNED, RATE_LIMITED, …) comes back as `ok: false`. */
  async join(): Promise<JoinResult> {
    const socket = io(this.origin, { transports: ['websocket'], extraHeaders: this.headers(), reconnection: false, forceNew: true });
    this.socket = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    socket.on('work:available', () => this.wakeAll());
    socket.on('disconnect', () => this.wakeAll());
    const hello = {
      protocol: 1,
      ...(this.token ? { token: this.token } : {}),
      agent: { kind: 'agent', userAgent: 'doc-contributor (test/support/doc-contributor.ts)' },
      adapter: { vendor: 'cpu', architecture: '', device: '', description: 'Node.js CPU matmul' },
      limits: { maxStorageBufferBindingSize: 128 * 1024 * 1024, maxBufferSize: 256 * 1024 * 1024 },
    };
    const raw: unknown = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck('hello', hello);
    const parsed = HelloReplySchema.safeParse(raw);
    if (!parsed.success) {
      socket.disconnect();
      return { ok: false, code: 'UNEXPECTED_REPLY', message: JSON.stringify(raw).slice(0, 200) };
    }
    const reply = parsed.data;
    if (!reply.ok) {
      socket.disconnect();
      return { ok: false, code: reply.error.code, message: reply.error.message };
    }
    this.contributorId = reply.contributorId;
    this.token = reply.token;
    return { ok: true, contributorId: reply.contributorId, token: reply.token };
  }

  /** Works until stopped or disconnected (a ban disconnects). */
  async run(): Promise<StopReason> {
    const socket = this.socket;
    if (!socket) throw new Error('join() first');
    const lanes = Array.from({ length: this.opts.lanes ?? 1 }, () => this.lane(socket));
    const reasons = await Promise.all(lanes);
    return reasons.includes('stopped') ? 'stopped' : 'disconnected';
  }

  private async lane(socket: Socket): Promise<StopReason> {
    while (!this.stopping) {
      if (!socket.connected) return 'disconnected';
      const raw: unknown = await socket
        .timeout(ACK_TIMEOUT_MS)
        .emitWithAck('lease:request', { max: this.opts.maxLeases ?? 1 })
        .catch(() => undefined);
      const parsed = raw === undefined ? undefined : LeaseReplySchema.safeParse(raw);
      if (parsed && !parsed.success) this.unexpected.push(`lease:request reply ${JSON.stringify(raw).slice(0, 200)}`);
      const reply = parsed?.data;
      if (!reply || !reply.ok) {
        await this.idle(1_000);
        continue;
      }
      if (reply.leases.length === 0) {
        await this.idle(reply.retryAfterMs ?? 5_000);
        continue;
      }
      for (const raw of reply.leases) {
        const lease = MatmulLeaseSchema.safeParse(raw);
        if (!lease.success) continue; // not a kind this agent asked for
        if (this.stopping || !socket.connected) break;
        await this.work(lease.data).catch((e: unknown) => {
          if (!this.stopping) throw e; // stop() cut the connection under a request
        });
      }
    }
    return 'stopped';
  }

  stop(): void {
    this.stopping = true;
    this.wakeAll();
    this.socket?.disconnect();
    this.agent.destroy();
  }

  private wakeAll(): void {
    for (const wake of [...this.sleepers]) wake();
  }

  /** Waits `ms`, or less if work:available comes (or the connection drops). */
  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  private async work(lease: DocLease): Promise<void> {
    const [a, b] = await Promise.all([this.blob(lease.a), this.blob(lease.b)]);
    if (!a || !b) return; // a job that ended: drop the lease
    const honest = matmulF32(a, b, lease.rows, lease.k, lease.cols, this.opts.summation ?? 'forward');
    const lie = this.opts.corrupt?.(honest.slice(), lease);
    const sent = lie ?? honest;
    let injected = 0;
    if (lie) for (let i = 0; i < sent.length; i++) injected = Math.max(injected, Math.abs(sent[i]! - honest[i]!));
    const body = new Uint8Array(sent.buffer, sent.byteOffset, sent.byteLength);
    const first = await this.put(lease, body);
    const record: ReturnedResult = { shardId: lease.shardId, jobId: lease.jobId, rows: lease.rows, cols: lease.cols, k: lease.k, corrupted: injected > 0, injected, ...first };
    if (this.opts.resendShare && this.random() < this.opts.resendShare) record.resent = await this.put(lease, body);
    this.results.push(record);
  }

  private async put(lease: DocLease, body: Uint8Array): Promise<{ httpStatus: number; outcome: Outcome }> {
    for (;;) {
      const path = `/api/v1/leases/${encodeURIComponent(lease.leaseToken)}/result`;
      const res = await this.http('PUT', path, { 'content-type': 'application/octet-stream', 'x-shard-id': lease.shardId }, body);
      if (res.status === 429) {
        // The per-address limit on result PUTs; the tile was not looked at, so sending it again is no replay.
        // The RateLimit header (`…; r=0; t=<seconds>`) says when the window resets.
        this.throttled++;
        const seconds = Number(/\bt=(\d+)/.exec(res.ratelimit ?? '')?.[1] ?? 1);
        for (let waited = 0; waited < Math.min(Math.max(seconds, 1), 60) && !this.stopping; waited++) await new Promise((r) => setTimeout(r, 1_000));
        if (this.stopping) throw new Error('stopped while throttled');
        continue;
      }
      return { httpStatus: res.status, outcome: outcomeOf(res.status, res.body) };
    }
  }

  /** A panel by its reference: from the cache by sha256, else downloaded from the lease's URL and its hash checked. */
  private async blob(ref: z.infer<typeof BlobRefSchema>): Promise<Float32Array | undefined> {
    const held = this.blobs.get(ref.sha256);
    if (held) return held;
    const res = await this.http('GET', ref.url, {});
    if (res.status !== 200) return undefined;
    if (createHash('sha256').update(res.body).digest('hex') !== ref.sha256) throw new Error(`blob ${ref.sha256} arrived corrupted`);
    const data = new Float32Array(new Uint8Array(res.body).buffer); // a copy: Buffers may sit unaligned in a shared pool
    if (this.blobs.size >= BLOB_CACHE_ENTRIES) this.blobs.delete(this.blobs.keys().next().value!);
    this.blobs.set(ref.sha256, data);
    return data;
  }

  /** One HTTP request to the coordinator's origin (`path` relative to it, as lease URLs are). */
  private http(method: 'GET' | 'PUT', path: string, headers: Record<string, string>, body?: Uint8Array): Promise<{ status: number; body: Buffer; ratelimit?: string }> {
    const url = new URL(path, this.origin);
    return new Promise((resolve, reject) => {
      const req = request(url, { method, agent: this.agent, headers: { ...headers, ...this.headers(), ...(body ? { 'content-length': String(body.byteLength) } : {}) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        const ratelimit = res.headers.ratelimit;
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), ...(typeof ratelimit === 'string' ? { ratelimit } : {}) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }
}

/**
 * C = A·B with float32 accumulation, as a GPU kernel does: each addition is
 * rounded to float32 (the Float32Array store), in the given order over k.
 */
export function matmulF32(a: Float32Array, b: Float32Array, rows: number, k: number, cols: number, order: Summation): Float32Array {
  const c = new Float32Array(rows * cols);
  if (order === 'four-way') {
    // Four interleaved partial sums, added at the end: a vectorised kernel's order.
    const parts = Array.from({ length: 4 }, () => new Float32Array(cols));
    for (let i = 0; i < rows; i++) {
      for (const p of parts) p.fill(0);
      for (let l = 0; l < k; l++) accumulate(parts[l % 4]!, a[i * k + l]!, b, l * cols, cols);
      for (let j = 0; j < cols; j++) c[i * cols + j] = Math.fround(Math.fround(parts[0]![j]! + parts[1]![j]!) + Math.fround(parts[2]![j]! + parts[3]![j]!));
    }
    return c;
  }
  const acc = new Float32Array(cols);
  for (let i = 0; i < rows; i++) {
    acc.fill(0);
    if (order === 'forward') for (let l = 0; l < k; l++) accumulate(acc, a[i * k + l]!, b, l * cols, cols);
    else for (let l = k - 1; l >= 0; l--) accumulate(acc, a[i * k + l]!, b, l * cols, cols);
    c.set(acc, i * cols);
  }
  return c;
}

function accumulate(acc: Float32Array, aik: number, b: Float32Array, offset: number, cols: number): void {
  const x = Math.fround(aik);
  for (let j = 0; j < cols; j++) acc[j] = acc[j]! + Math.fround(x * b[offset + j]!);
}
