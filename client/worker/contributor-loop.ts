import { io, type Socket } from 'socket.io-client';
import {
  PROTOCOL_VERSION,
  type ClientToServerEvents,
  type BenchmarkLease,
  type BenchmarkReply,
  type BlobRef,
  type InferenceLease,
  type Lease,
  type MatmulLease,
  type ProfileMessage,
  type ProfileReply,
  type ResultReply,
  type ServerToClientEvents,
} from '../../shared/protocol';
import type { KernelTuning } from '../../shared/matmul-configs';
import type { GpuHandle } from '../gpu/device';
import type { MatmulKernel } from '../gpu/matmul-kernel';
import { runBenchmarkLease } from './benchmark-run';
import { BlobFetcher } from './blob-fetcher';
import type { WorkerEvent } from './events';

type ContributorSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface LoopDeps {
  serverUrl: string;
  /**
   * Other coordinators of the same network, tried in turn when the current one
   * cannot be reached. Not needed behind a load balancer: one URL is enough there.
   */
  fallbackUrls?: readonly string[];
  gpu: GpuHandle;
  kernel: MatmulKernel;
  agentKind: 'page' | 'agent';
  userAgent: string;
  /** Runs inference leases; without it the contributor takes matmul and benchmark work only. */
  inference?: {
    held(): Promise<string[]>;
    prefetch(model: BlobRef): void;
    run(lease: InferenceLease, input: ArrayBuffer): Promise<{ rows: Float32Array; flops: number }>;
  };
  /** The device's tuned kernels, reported with hello: the coordinator sizes leases and tiles by them. */
  tuning?: KernelTuning;
  /** Send each result and wait for its verdict before computing the next (the agent's --once). */
  serial?: boolean;
  /** Share of wall time the GPU may be busy, in (0, 1]: after each tile the loop rests in proportion. */
  duty?: () => number;
  /** False outside the hours the owner allows; the loop then holds no work and waits. */
  mayWork?: () => boolean;
  loadToken(): Promise<string | undefined>;
  saveToken(token: string): Promise<void>;
  emit(e: WorkerEvent): void;
}

const ACK_TIMEOUT_MS = 60_000;
/** Failed connection attempts to one coordinator before moving to the next in the list. */
const ATTEMPTS_PER_COORDINATOR = 2;
/** Leases held at once: one computing, one downloading. */
const PIPELINE = 2;
/** Results on their way back (being verified) while the next shard computes. */
const SENDING = 2;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The contributor's work cycle: introduce itself, ask for a lease, fetch the
 * panels, run the kernel, send the tile back, repeat. Socket.IO reconnects by
 * itself; every (re)connection starts with a fresh hello.
 */
export class ContributorLoop {
  private socket: ContributorSocket | undefined;
  private running = false;
  private introduced = false;
  private wake: (() => void) | undefined;
  private readonly revoked = new Set<string>();
  private readonly sending = new Set<Promise<void>>();
  private blobs: BlobFetcher;
  private readonly coordinators: readonly string[];
  /** Index in `coordinators` of the one this loop talks to. */
  private current = 0;

  constructor(private readonly deps: LoopDeps) {
    this.coordinators = [deps.serverUrl, ...(deps.fallbackUrls ?? []).filter((u) => u !== deps.serverUrl)];
    this.blobs = new BlobFetcher(deps.serverUrl);
  }

  private get serverUrl(): string {
    return this.coordinators[this.current]!;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.deps.emit({ type: 'state', state: 'connecting' });
    this.connect();
    void this.run();
  }

  /**
   * Opens the socket to the current coordinator. Socket.IO retries the same URL
   * by itself; with fallbacks, a coordinator that keeps refusing is left for the
   * next one (a new hello there: leases held through the old one lapse and are reissued).
   */
  private connect(): void {
    const socket: ContributorSocket = io(this.serverUrl, { reconnectionDelayMax: 10_000 });
    this.socket = socket;
    let failures = 0;
    socket.on('connect', () => {
      failures = 0;
      this.hello().catch((err: unknown) => this.deps.emit({ type: 'state', state: 'error', message: String(err) }));
    });
    socket.on('connect_error', () => {
      if (this.coordinators.length < 2 || ++failures < ATTEMPTS_PER_COORDINATOR || this.socket !== socket) return;
      socket.removeAllListeners();
      socket.disconnect();
      this.current = (this.current + 1) % this.coordinators.length;
      this.blobs = new BlobFetcher(this.serverUrl);
      this.deps.emit({ type: 'state', state: 'connecting', message: `trying ${this.serverUrl}` });
      if (this.running) this.connect();
    });
    socket.on('disconnect', () => {
      this.introduced = false;
      if (this.running) this.deps.emit({ type: 'state', state: 'connecting', message: 'connection lost; reconnecting' });
    });
    socket.on('work:available', () => this.wakeUp());
    socket.on('lease:revoked', ({ shardId }) => this.revoked.add(shardId));
  }

  stop(): void {
    this.running = false;
    this.socket?.disconnect(); // the coordinator requeues whatever this session held
    this.socket = undefined;
    this.wakeUp();
    this.deps.emit({ type: 'state', state: 'stopped' });
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private waitForWake(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => this.wakeUp(), ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** Sets the public name and team; the coordinator keeps them with this identity. */
  async setProfile(profile: ProfileMessage): Promise<ProfileReply> {
    const socket = this.socket;
    if (!socket?.connected || !this.introduced) return { ok: false, error: { code: 'NOT_INTRODUCED', message: 'not connected yet; try again in a moment' } };
    return socket.timeout(ACK_TIMEOUT_MS).emitWithAck('profile', profile);
  }

  private async hello(): Promise<void> {
    const socket = this.socket;
    if (!socket) return;
    const token = await this.deps.loadToken();
    const models = (await this.deps.inference?.held()) ?? [];
    const reply = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck('hello', {
      protocol: PROTOCOL_VERSION,
      ...(token ? { token } : {}),
      agent: { kind: this.deps.agentKind, userAgent: this.deps.userAgent },
      accepts: this.deps.inference ? ['matmul', 'benchmark', 'inference'] : ['matmul', 'benchmark'],
      ...(models.length ? { models: models.slice(-64) } : {}),
      adapter: this.deps.gpu.adapter,
      limits: this.deps.gpu.limits,
      ...(this.deps.tuning
        ? {
            benchmark: { matmulGflops: this.deps.tuning.gflops.medium },
            kernels: { configs: this.deps.tuning.configs, gflops: this.deps.tuning.gflops },
          }
        : {}),
    });
    if (!reply.ok) {
      this.deps.emit({ type: 'state', state: 'error', message: `${reply.error.code}: ${reply.error.message}` });
      return;
    }
    await this.deps.saveToken(reply.token);
    this.introduced = true;
    this.deps.emit({ type: 'identity', contributorId: reply.contributorId });
    this.deps.emit({ type: 'state', state: 'idle' });
    this.wakeUp();
  }

  /**
   * Keeps up to PIPELINE leases: while one tile computes, the next one's
   * panels are already downloading, so the GPU does not wait on the network.
   */
  private async run(): Promise<void> {
    const queue: { lease: Lease; panels: Promise<ArrayBuffer[] | null> }[] = [];
    while (this.running) {
      const socket = this.socket;
      if (!socket?.connected || !this.introduced) {
        queue.length = 0; // leases of a dropped connection were returned by the coordinator
        await this.waitForWake(1_000);
        continue;
      }
      if (this.deps.mayWork && !this.deps.mayWork()) {
        for (const { lease } of queue.splice(0)) socket.emit('lease:release', { shardId: lease.shardId, leaseToken: lease.leaseToken }, () => undefined);
        this.deps.emit({ type: 'state', state: 'idle', message: 'outside the allowed hours' });
        await this.waitForWake(60_000);
        continue;
      }
      try {
        if (queue.length < PIPELINE) {
          const reply = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck('lease:request', { max: PIPELINE - queue.length });
          if (!reply.ok) {
            this.deps.emit({ type: 'state', state: 'error', message: reply.error.message });
            await this.waitForWake(5_000);
            continue;
          }
          for (const lease of reply.leases) {
            if (lease.kind === 'inference') this.deps.inference?.prefetch(lease.model);
            const panels =
              lease.kind === 'matmul'
                ? Promise.all([this.blobs.get(lease.a), this.blobs.get(lease.b)])
                : lease.kind === 'inference'
                  ? Promise.all([this.blobs.get(lease.input)])
                  : Promise.resolve(null);
            panels.catch(() => undefined); // awaited below; avoid an unhandled rejection meanwhile
            queue.push({ lease, panels });
          }
          if (queue.length === 0) {
            this.deps.emit({ type: 'state', state: 'idle' });
            await this.waitForWake(reply.retryAfterMs ?? 5_000);
            continue;
          }
        }
        const next = queue.shift()!;
        const panels = await next.panels;
        if (next.lease.kind === 'benchmark') await this.benchmark(next.lease);
        else if (next.lease.kind === 'inference') await this.infer(next.lease, panels![0]!);
        else await this.work(next.lease, [panels![0]!, panels![1]!]);
      } catch (err) {
        // Ack timeouts, failed downloads and dropped connections land here; the socket reconnects by itself.
        this.deps.emit({ type: 'state', state: 'error', message: err instanceof Error ? err.message : String(err) });
        await sleep(1_000);
      }
    }
  }

  /** Result tiles go over HTTP like the panels; the socket carries control messages only. */
  private async sendResult(lease: Lease, c: Float32Array): Promise<ResultReply> {
    const url = new URL(`/api/v1/leases/${encodeURIComponent(lease.leaseToken)}/result`, this.serverUrl);
    const res = await fetch(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'x-shard-id': lease.shardId },
      body: new Uint8Array(c.buffer as ArrayBuffer, c.byteOffset, c.byteLength),
      signal: AbortSignal.timeout(ACK_TIMEOUT_MS),
    });
    const body = (await res.json().catch(() => undefined)) as ResultReply | { error?: { code?: string; message?: string } } | undefined;
    if (body && 'ok' in body) return body;
    return { ok: false, error: { code: 'INTERNAL', message: body?.error?.message ?? `HTTP ${res.status}` } };
  }

  /** A network benchmark: timed alone (the loop computes one lease at a time), answered over HTTP. */
  private async benchmark(lease: BenchmarkLease): Promise<void> {
    this.deps.emit({ type: 'state', state: 'working', message: `timing ${lease.kernel} for a network benchmark` });
    const result = await runBenchmarkLease(this.deps.kernel, lease);
    const res = await fetch(new URL(`/api/v1/leases/${encodeURIComponent(lease.leaseToken)}/benchmark`, this.serverUrl), {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(result),
      signal: AbortSignal.timeout(ACK_TIMEOUT_MS),
    });
    const body = (await res.json().catch(() => undefined)) as BenchmarkReply | { error?: { message?: string } } | undefined;
    const ok = res.ok && body !== undefined && 'ok' in body && body.ok;
    this.deps.emit({ type: 'benchmark', jobId: lease.jobId, ok, ...(ok ? {} : { message: (body && 'error' in body && body.error?.message) || `HTTP ${res.status}` }) });
  }

  private async work(lease: MatmulLease, [a, b]: [ArrayBuffer, ArrayBuffer]): Promise<void> {
    if (this.revoked.delete(lease.shardId)) return;
    this.deps.emit({ type: 'state', state: 'working' });
    const t0 = performance.now();
    const c = await this.deps.kernel.run(new Float32Array(a), new Float32Array(b), lease.rows, lease.k, lease.cols);
    await this.finish(lease, c, performance.now() - t0, 2 * lease.rows * lease.cols * lease.k);
  }

  private async infer(lease: InferenceLease, input: ArrayBuffer): Promise<void> {
    if (this.revoked.delete(lease.shardId)) return;
    if (!this.deps.inference) throw new Error('received an inference lease without an inference runner');
    this.deps.emit({ type: 'state', state: 'working', message: `inference on ${lease.rows} samples` });
    const t0 = performance.now();
    const { rows, flops } = await this.deps.inference.run(lease, input);
    await this.finish(lease, rows, performance.now() - t0, flops);
  }

  /** Sends a computed result back, reports it to the page, and rests as the duty cycle asks. */
  private async finish(lease: MatmulLease | InferenceLease, c: Float32Array, computeMs: number, flops: number): Promise<void> {
    const gflops = flops / (computeMs * 1e6);
    const duty = Math.min(1, Math.max(0.01, this.deps.duty?.() ?? 1));
    const rest = duty < 1 ? computeMs * (1 / duty - 1) : 0;
    if (this.revoked.delete(lease.shardId)) return;
    // The coordinator verifies a result before it answers; the GPU computes the next shard meanwhile.
    const sent = this.sendResult(lease, c)
      .catch((err: unknown): ResultReply => ({ ok: false, error: { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) } }))
      .then((reply) =>
        this.deps.emit({
          type: 'shard',
          shardId: lease.shardId,
          jobId: lease.jobId,
          ok: reply.ok,
          computeMs,
          gflops,
          ...(reply.ok ? {} : { message: `${reply.error.code}: ${reply.error.message}` }),
        }),
      );
    this.sending.add(sent);
    void sent.finally(() => this.sending.delete(sent));
    // Back-pressure: at most SENDING results in flight, so a slow coordinator slows the loop down.
    const limit = this.deps.serial ? 1 : SENDING;
    while (this.sending.size >= limit) await Promise.race(this.sending);
    if (rest > 0) await sleep(rest);
  }
}
