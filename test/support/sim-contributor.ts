import { io, type Socket } from 'socket.io-client';
import type { KernelTuning } from '../../shared/matmul-configs';
import { matmulReference } from '../../shared/matmul-reference';
import {
  PROTOCOL_VERSION,
  type ClientToServerEvents,
  type BenchmarkLease,
  type InferenceLease,
  type LeaseReply,
  type MatmulLease,
  type ResultReply,
  type ServerToClientEvents,
} from '../../shared/protocol';
import { inputSeeds, probePositions, seededElement } from '../../shared/seeded';
import { interleaveOutputs, splitShardInputs } from '../../shared/inference-job';
import type { ModelGraph } from '../../shared/model-graph';
import { decodeModelPackage } from '../../shared/model-package';
import { runReference } from '../../server/inference/reference-executor';
import { WEBGPU_DEFAULT_LIMITS } from '../../shared/tiling';

export type SimSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** How a simulated contributor turns a lease into a reply (or into no reply). */
export type Behaviour =
  | { kind: 'honest'; delayMs?: number }
  | { kind: 'flip-one' }
  | { kind: 'noise'; scale: number }
  | { kind: 'scale'; factor: number }
  /** Disconnects mid-shard, as a closed tab does: after finishing `afterShards` shards (default 0). */
  | { kind: 'vanish'; afterShards?: number }
  /** Takes leases and never answers. */
  | { kind: 'silent' }
  /** Holds two leases and swaps their results: each tile is sent as the other shard's. */
  | { kind: 'other-shard' }
  /** Answers its first lease honestly, then replays that message and its tile for every later lease. */
  | { kind: 'replay' };

export interface SimStats {
  /** Results assembled (or canaries passed) on this contributor's word. */
  verified: number;
  /** Results accepted but parked until a replica agrees. */
  pending: number;
  rejected: number;
  errors: string[];
}

/**
 * A contributor in Node: same protocol as the page, computing tiles on the CPU
 * with the reference matmul (or lying, when told to).
 */
export class SimContributor {
  readonly socket: SimSocket;
  readonly stats: SimStats = { verified: 0, pending: 0, rejected: 0, errors: [] };
  contributorId = '';
  token: string | undefined;
  /** Every lease this contributor was granted, in order. */
  readonly leases: MatmulLease[] = [];
  /** Every inference lease it was granted, in order. */
  readonly inferenceLeases: InferenceLease[] = [];
  /** Model packages it downloaded (a real contributor keeps them; so does this one, in memory). */
  readonly modelDownloads: string[] = [];
  private readonly models = new Map<string, ModelGraph>();
  private readonly inference: boolean;
  private readonly heldModels: string[];
  /** Benchmark runs this contributor answered, and how the coordinator took them. */
  readonly benchmarkReplies: { jobId: string; status: number; body: unknown }[] = [];
  private readonly max: number;
  private running = false;
  private readonly gflops: number | undefined;
  private readonly kernels: KernelTuning | undefined;
  private readonly benchmarks: boolean;
  private readonly adapter: { vendor: string; architecture: string };
  /** How results go back: on the socket, or as an HTTP PUT as the page and agent send them. */
  private readonly transport: 'socket' | 'http';
  private wake: (() => void) | undefined;
  private readonly idlePollMs: number;

  constructor(
    private readonly url: string,
    private readonly behaviour: Behaviour = { kind: 'honest' },
    opts: {
      token?: string;
      max?: number;
      gflops?: number;
      kernels?: KernelTuning;
      transport?: 'socket' | 'http';
      benchmarks?: boolean;
      adapter?: { vendor: string; architecture: string };
      /** Takes inference leases, computing them with the CPU reference executor. */
      inference?: boolean;
      /** Model packages it says it holds in hello (it downloads them on first use all the same). */
      models?: string[];
      /** Longest wait between lease requests while there is no work (work:available wakes it sooner); default 200 ms. */
      idlePollMs?: number;
    } = {},
  ) {
    this.inference = opts.inference ?? false;
    this.heldModels = opts.models ?? [];
    this.transport = opts.transport ?? 'socket';
    this.token = opts.token;
    this.max = opts.max ?? 1;
    this.gflops = opts.gflops;
    this.kernels = opts.kernels;
    this.benchmarks = opts.benchmarks ?? false;
    this.adapter = opts.adapter ?? { vendor: 'cpu', architecture: 'reference' };
    this.idlePollMs = opts.idlePollMs ?? 200;
    this.socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true });
    this.socket.on('work:available', () => this.wakeUp());
  }

  async connect(): Promise<this> {
    if (!this.socket.connected) await new Promise<void>((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('connect_error', reject);
    });
    const reply = await this.socket.timeout(10_000).emitWithAck('hello', {
      protocol: PROTOCOL_VERSION,
      ...(this.token ? { token: this.token } : {}),
      agent: { kind: 'simulated', userAgent: 'vitest' },
      adapter: { ...this.adapter, device: '', description: 'simulated contributor' },
      ...(this.benchmarks || this.inference
        ? { accepts: ['matmul', ...(this.benchmarks ? (['benchmark'] as const) : []), ...(this.inference ? (['inference'] as const) : [])] }
        : {}),
      ...(this.heldModels.length ? { models: this.heldModels } : {}),
      limits: WEBGPU_DEFAULT_LIMITS,
      ...(this.gflops ? { benchmark: { matmulGflops: this.gflops } } : {}),
      ...(this.kernels ? { kernels: this.kernels } : {}),
    });
    if (!reply.ok) throw new Error(`hello failed: ${reply.error.message}`);
    this.contributorId = reply.contributorId;
    this.token = reply.token;
    return this;
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Works until stopped or disconnected. */
  run(): Promise<void> {
    this.running = true;
    return this.loop();
  }

  stop(): void {
    this.running = false;
    this.wakeUp();
  }

  disconnect(): void {
    this.stop();
    this.socket.disconnect();
  }

  private async loop(): Promise<void> {
    while (this.running && this.socket.connected) {
      let reply: LeaseReply;
      try {
        reply = await this.socket.timeout(10_000).emitWithAck('lease:request', { max: this.max });
      } catch (err) {
        if (!this.socket.connected) return;
        throw err;
      }
      if (!reply.ok && reply.error.code === 'RATE_LIMITED') {
        // As the page does: back off and ask again, rather than give up.
        this.stats.errors.push(`lease:request: ${reply.error.message}`);
        await new Promise((r) => setTimeout(r, 1_000));
        continue;
      }
      if (!reply.ok) throw new Error(`lease:request failed: ${reply.error.message}`);
      if (reply.leases.length === 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(reply.retryAfterMs ?? this.idlePollMs, this.idlePollMs));
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        continue;
      }
      const benchmarks = reply.leases.filter((l): l is BenchmarkLease => l.kind === 'benchmark');
      for (const run of benchmarks) await this.runBenchmark(run);
      const inference = reply.leases.filter((l): l is InferenceLease => l.kind === 'inference');
      this.inferenceLeases.push(...inference);
      for (const lease of inference) {
        const done = await this.handle(lease);
        if (!done) return;
      }
      const leases = reply.leases.filter((l): l is MatmulLease => l.kind === 'matmul');
      this.leases.push(...leases);
      if (this.behaviour.kind === 'other-shard' && leases.length >= 2) {
        const [x, y] = leases as [MatmulLease, MatmulLease];
        const [cx, cy] = [await this.compute(x), await this.compute(y)];
        await this.send(y, cx);
        await this.send(x, cy);
        continue;
      }
      for (const lease of leases) {
        const done = await this.handle(lease);
        if (!done) return;
      }
    }
  }

  /** Returns false when this contributor stops working for good. */
  private async handle(lease: MatmulLease | InferenceLease): Promise<boolean> {
    const b = this.behaviour;
    if (b.kind === 'vanish' && this.stats.verified >= (b.afterShards ?? 0)) {
      this.disconnect();
      return false;
    }
    if (b.kind === 'silent') return true;
    if (b.kind === 'replay' && this.firstResult) {
      await this.socket.timeout(30_000).emitWithAck('lease:result', this.firstResult).then((r) => this.count(r));
      const old = new Float32Array(lease.rows * (lease.kind === 'inference' ? lease.outputsPerSample : lease.cols));
      old.set(this.firstTile!.subarray(0, old.length));
      await this.send(lease, old);
      return true;
    }
    let c: Float32Array;
    try {
      c = await this.compute(lease);
    } catch (err) {
      // A cancelled job's panels are deleted at once (a lease:revoked is on its way): drop the shard, as the page does.
      if (!(err instanceof Error && err.message.startsWith('blob fetch'))) throw err;
      this.stats.errors.push(`${lease.shardId}: ${err.message}`);
      await this.socket.timeout(10_000).emitWithAck('lease:release', { shardId: lease.shardId, leaseToken: lease.leaseToken }).catch(() => undefined);
      return true;
    }
    if (!this.socket.connected) return false;
    if (b.kind === 'honest' && b.delayMs) await new Promise((r) => setTimeout(r, b.delayMs));
    if (b.kind === 'flip-one') c[Math.floor(c.length / 2)]! += 1 + Math.abs(c[Math.floor(c.length / 2)]!);
    if (b.kind === 'noise') for (let i = 0; i < c.length; i++) c[i]! += (Math.random() - 0.5) * b.scale;
    if (b.kind === 'scale') for (let i = 0; i < c.length; i++) c[i]! *= b.factor;
    if (b.kind === 'replay') {
      this.firstResult = { shardId: lease.shardId, leaseToken: lease.leaseToken, c: new Uint8Array(c.buffer) };
      this.firstTile = c;
    }
    await this.send(lease, c);
    return true;
  }

  private firstResult: { shardId: string; leaseToken: string; c: Uint8Array } | undefined;
  private firstTile: Float32Array | undefined;

  private async send(lease: MatmulLease | InferenceLease, c: Float32Array): Promise<void> {
    if (!this.socket.connected) return;
    if (this.transport === 'http') {
      const res = await fetch(new URL(`/api/v1/leases/${lease.leaseToken}/result`, this.url), {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'x-shard-id': lease.shardId },
        body: new Uint8Array(c.buffer as ArrayBuffer, c.byteOffset, c.byteLength),
      });
      this.count((await res.json()) as ResultReply);
      return;
    }
    const reply: ResultReply = await this.socket
      .timeout(30_000)
      .emitWithAck('lease:result', { shardId: lease.shardId, leaseToken: lease.leaseToken, computeMs: 1, c: new Uint8Array(c.buffer) });
    this.count(reply);
  }

  private count(reply: ResultReply): void {
    if (reply.ok && reply.status === 'pending') this.stats.pending++;
    else if (reply.ok) this.stats.verified++;
    else {
      this.stats.rejected++;
      this.stats.errors.push(reply.error.code);
    }
  }

  async fetchPanel(ref: MatmulLease['a']): Promise<Float32Array> {
    const res = await fetch(new URL(ref.url, this.url));
    if (!res.ok) throw new Error(`blob fetch ${res.status}`);
    return new Float32Array(await res.arrayBuffer());
  }

  /**
   * A benchmark run on the CPU: the probed elements of C from the seeded
   * inputs (wrong ones when this contributor lies), timings that claim `gflops`.
   */
  private async runBenchmark(lease: BenchmarkLease): Promise<void> {
    const gflops = this.gflops ?? 1;
    const shapes = lease.shapes.map((shape, s) => {
      const seeds = inputSeeds(lease.seed, s);
      const probes = probePositions(shape, lease.seed, s).map((p) => {
        const i = Math.floor(p / shape.n);
        const j = p % shape.n;
        let v = 0;
        for (let q = 0; q < shape.k; q++) v += seededElement(seeds.a, i * shape.k + q) * seededElement(seeds.b, q * shape.n + j);
        return this.behaviour.kind === 'honest' ? v : v + 1;
      });
      const ms = (2 * shape.m * shape.n * shape.k) / (gflops * 1e6);
      return { config: 'register-r8', runs: lease.reps, wallMs: { median: ms, min: ms * 0.9, max: ms * 1.2 }, probes };
    });
    const res = await fetch(new URL(`/api/v1/leases/${lease.leaseToken}/benchmark`, this.url), {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ shapes }),
    });
    this.benchmarkReplies.push({ jobId: lease.jobId, status: res.status, body: await res.json() });
  }

  async compute(lease: MatmulLease | InferenceLease): Promise<Float32Array> {
    if (lease.kind === 'inference') return this.infer(lease);
    const [a, b] = await Promise.all([this.fetchPanel(lease.a), this.fetchPanel(lease.b)]);
    return matmulReference(a, b, lease.rows, lease.k, lease.cols);
  }

  /** Runs the lease's samples through the reference executor, as a browser runs them through its plan. */
  private async infer(lease: InferenceLease): Promise<Float32Array> {
    let graph = this.models.get(lease.model.sha256);
    if (!graph) {
      const res = await fetch(new URL(lease.model.url, this.url));
      if (!res.ok) throw new Error(`model fetch ${res.status}`);
      graph = decodeModelPackage(new Uint8Array(await res.arrayBuffer()));
      this.models.set(lease.model.sha256, graph);
      this.modelDownloads.push(lease.model.sha256);
    }
    const sizes = graph.inputs.map((v) => (v.dims.slice(1) as number[]).reduce((a, b) => a * b, 1));
    const inputs = splitShardInputs(await this.fetchPanel(lease.input), sizes, lease.rows);
    const feeds = Object.fromEntries(graph.inputs.map((v, i) => [v.name, { dims: [lease.rows, ...(v.dims.slice(1) as number[])], data: inputs[i]! }]));
    const out = runReference(graph, feeds);
    const outs = graph.outputs.map((o) => out[o.name]!.data);
    return interleaveOutputs(outs, outs.map((o) => o.length / lease.rows), lease.rows);
  }
}
